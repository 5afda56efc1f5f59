"""Benchmark: the committee pack of the demo study and of a 20,000-subject / 1,000,000-AE cut (not a test).

    .venv/bin/python bench/report.py                    # demo pack, then the large cut (built once into bench/out/)
    .venv/bin/python bench/report.py --reuse            # keep the large database built last time
    .venv/bin/python bench/report.py --subjects 2000 --events 100000    # quicker

The large cut is built as bench/callbacks.py builds its study: the demo study at ``--subjects`` through the real
ingestion pipeline (three cuts, alerts not evaluated), then the last cut grown by copies of its AE records (raw and
derived, every stored column) to ``--events``, a third of them under variant PT names (about a thousand PTs).
Each pack is made in a child process started fresh (imports included, as the ``report`` command runs), which
reports its phases; the parent
prints wall-clock and CPU seconds and the child's peak resident memory, and for the large cut the ratio to reading
the same cut and computing its PT rate table (``rates --by pt``), the least any pack must do.

Targets (issue 12): the demo pack under 20 s; the large cut's under 90 s and under 2 GB. Figures are printed, not
asserted: on a shared machine the wall clock depends on the neighbours, so CPU seconds are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = {"demo": (20.0, 2048.0), "large": (90.0, 2048.0)}


def make_pack(url: str, out: str, queue) -> None:
    """Child: import, make the pack of the latest cut, report phase times (what ``report`` does, timed)."""
    started = time.perf_counter()
    from safety_dash.analysis import load_baskets
    from safety_dash.config import DEFAULT_BASKETS_FILE
    from safety_dash.db.engine import get_engine
    from safety_dash.report import build
    from safety_dash.report.inputs import (
        PackFilters,
        load_pack_alerts,
        load_pack_inputs,
        load_pack_signals,
        resolve_pack_cuts,
    )
    from safety_dash.report.review_status import load_review_status

    phases = {"imports": time.perf_counter() - started}

    def lap(name: str) -> None:
        now = time.perf_counter()
        phases[name] = now - started - sum(phases.values())

    engine = get_engine(url)
    filters, baskets = PackFilters(), load_baskets(DEFAULT_BASKETS_FILE)
    cut, since = resolve_pack_cuts(engine, None, None, None)
    inputs = load_pack_inputs(engine, cut, since, filters)
    signals = load_pack_signals(engine, cut, filters)
    alerts = load_pack_alerts(engine, cut.study_id)
    review = load_review_status(engine, cut)
    lap("read the cut")
    sections = build.build_sections(inputs, filters, baskets, signals, alerts, review)
    lap("tables and figures")
    html = build.render_pack_html(build.build_context(inputs, filters, sections))
    pdf = build.write_pack_pdf(html)
    Path(out).write_bytes(pdf)
    lap("HTML and PDF")
    from pypdf import PdfReader

    queue.put(
        {
            "phases": phases,
            "pages": len(PdfReader(out).pages),
            "bytes": len(pdf),
            "events": len(inputs.events),
            "subjects": len(inputs.subjects),
        }
    )


def read_rates(url: str, queue) -> None:
    """Child: the baseline, ``rates --by pt`` of the latest cut (imports, reading the cut, the rate table)."""
    from safety_dash.analysis import compute_cut_rates, resolve_cut
    from safety_dash.db.engine import get_engine

    engine = get_engine(url)
    table = compute_cut_rates(engine, resolve_cut(engine), "pt")
    queue.put({"rows": len(table)})


def run_child(target, *args) -> tuple[dict, float, float, float]:
    """Run ``target(*args, queue)`` in a fresh process: (its report, wall s, CPU s, peak resident MB)."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: imports are part of the time
    queue = context.Queue()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    report = queue.get()
    process.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.exitcode != 0:
        raise SystemExit(f"{target.__name__} failed with exit code {process.exitcode}")
    return report, wall, cpu, after.ru_maxrss / 1024


def build_demo(workdir: Path) -> str:
    """The demo study at its default size (500 subjects), three cuts, alerts of the demo rules evaluated."""
    from safety_dash.alerts.evaluate import evaluate_alerts_for_cut
    from safety_dash.analysis import load_baskets
    from safety_dash.config import DEFAULT_BASKETS_FILE
    from safety_dash.db.engine import get_engine, upgrade_database
    from safety_dash.ingest.demo import write_demo_study
    from safety_dash.ingest.pipeline import ingest_extract

    write_demo_study(workdir / "demo")
    url = f"sqlite:///{workdir / 'demo.db'}"
    upgrade_database(url)
    rules = workdir / "rules"
    rules.mkdir()
    shutil.copy(ROOT / "safety_dash" / "alerts" / "demo_rules.yaml", rules / "QL1706-DEMO.yaml")
    for cut in ("cut1", "cut2", "cut3"):
        result = ingest_extract(url, workdir / "demo" / cut)
        with get_engine(url).begin() as connection:
            evaluate_alerts_for_cut(connection, result.run_id, rules, load_baskets(DEFAULT_BASKETS_FILE))
    return url


def build_large(workdir: Path, n_subjects: int, n_events: int) -> str:
    """The demo study at ``n_subjects`` ingested as three cuts, its last cut grown to ``n_events`` AE records."""
    from safety_dash.db.engine import upgrade_database
    from safety_dash.ingest.demo import write_demo_study
    from safety_dash.ingest.pipeline import ingest_extract

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    url = f"sqlite:///{workdir / 'building.db'}"
    write_demo_study(workdir / "demo", n_subjects=n_subjects)
    upgrade_database(url)
    for cut in ("cut1", "cut2", "cut3"):
        result = ingest_extract(url, workdir / "demo" / cut)
        if result.status != "succeeded":
            raise SystemExit(f"ingestion of {cut} failed: {result.message}")
    grow_cut(url, result.run_id, n_events)
    from safety_dash.db.engine import dispose_engine

    dispose_engine(url)
    (workdir / "building.db").rename(workdir / "bench.db")  # only a finished database is reused
    return f"sqlite:///{workdir / 'bench.db'}"


def grow_cut(url: str, run_id: int, n_events: int) -> None:
    """Copy the cut's AE records (raw and derived, every column) until it holds ``n_events``; one copy in three
    renames its PT. The column lists come from the models; every value is a bound parameter."""
    from sqlalchemy import text

    from safety_dash.db.engine import get_engine
    from safety_dash.db.models import AdverseEventVersion, DerivedEvent

    raw = [c.name for c in AdverseEventVersion.__table__.columns if c.name != "id"]
    special = ("run_id", "ae_version_id", "pt", "event_id", "record_change")
    derived = [c.name for c in DerivedEvent.__table__.columns if c.name not in special]
    selected = ", ".join({"record_key": "a.record_key || '#' || :k", "change": "'new'"}.get(c, f"a.{c}") for c in raw)
    # SQLite binds || tighter than %: the remainder needs its own parentheses.
    renamed = "CASE WHEN :k % 3 = 0 THEN pt || ' (variant ' || ((:k * 7 + ae_version_id) % 29) || ')' ELSE pt END"
    insert_raw = (
        f"INSERT INTO ae_versions (id, {', '.join(raw)}) SELECT a.id + :offset, {selected} FROM ae_versions a "  # noqa: S608
        "JOIN derived_events d ON d.ae_version_id = a.id AND d.run_id = :r WHERE a.id < :stride ORDER BY a.id "
        "LIMIT :limit"
    )
    insert_derived = (
        f"INSERT INTO derived_events ({', '.join(special)}, {', '.join(derived)}) "  # noqa: S608
        f"SELECT run_id, ae_version_id + :offset, {renamed}, event_id + :offset, 'new', {', '.join(derived)} "
        "FROM derived_events WHERE run_id = :r AND ae_version_id < :stride ORDER BY ae_version_id LIMIT :limit"
    )
    engine = get_engine(url)
    with engine.begin() as connection:
        count = text("SELECT COUNT(*) FROM derived_events WHERE run_id = :r")
        base = connection.execute(count, {"r": run_id}).scalar()
        stride = connection.execute(text("SELECT MAX(id) FROM ae_versions")).scalar() + 1
        for k in range(1, -(-n_events // base)):
            limit = min(base, n_events - base * k)
            values = {"offset": k * stride, "k": k, "r": run_id, "limit": limit, "stride": stride}
            connection.execute(text(insert_raw), values)
            connection.execute(text(insert_derived), values)
        total = connection.execute(count, {"r": run_id}).scalar()
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    print(f"last cut grown from {base:,} to {total:,} AE records", flush=True)


def report_line(name: str, report: dict, wall: float, cpu: float, peak_mb: float) -> None:
    limit_s, limit_mb = TARGETS[name]
    phases = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in report["phases"].items())
    print(
        f"{name} pack: {report['subjects']:,} subjects, {report['events']:,} AE records -> {report['pages']} pages, "
        f"{report['bytes'] / 1024:.0f} KB"
    )
    print(f"  {wall:6.1f} s wall, {cpu:6.1f} s CPU, peak {peak_mb:6.0f} MB resident   ({phases})")
    verdict = "met" if wall < limit_s and peak_mb < limit_mb else "NOT met"
    print(f"  target under {limit_s:.0f} s and {limit_mb / 1024:.0f} GB: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "report")
    parser.add_argument("--reuse", action="store_true", help="use the large database built by the last run")
    parser.add_argument("--skip-demo", action="store_true", help="only the large cut")
    parser.add_argument("--skip-large", action="store_true", help="only the demo study")
    args = parser.parse_args(argv)

    if not args.skip_demo:
        with tempfile.TemporaryDirectory() as folder:
            url = build_demo(Path(folder))
            report_line("demo", *run_child(make_pack, url, str(Path(folder) / "pack.pdf")))

    if args.skip_large:
        return 0
    database = args.workdir / "bench.db"
    if not (args.reuse and database.exists()):
        started = time.perf_counter()
        build_large(args.workdir, args.subjects, args.events)
        print(f"large study built in {time.perf_counter() - started:.0f} s", flush=True)
    url = f"sqlite:///{database}"
    pack = run_child(make_pack, url, str(args.workdir / "pack.pdf"))
    report_line("large", *pack)
    rates, rates_wall, rates_cpu, rates_mb = run_child(read_rates, url)
    print(
        f"  baseline rates --by pt on the same cut: {rates_wall:.1f} s wall, {rates_cpu:.1f} s CPU "
        f"({rates['rows']:,} rows); pack / rates: {pack[1] / rates_wall:.1f} x wall, {pack[2] / rates_cpu:.1f} x CPU"
    )
    print(json.dumps({"large_pack_pdf": str(args.workdir / "pack.pdf")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
