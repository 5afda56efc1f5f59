"""Benchmark of the dashboard's main callbacks on a large study, and of the first page in headless Chromium.

    .venv/bin/python bench/callbacks.py                      # 20,000 subjects, 1,000,000 AE records
    .venv/bin/python bench/callbacks.py --subjects 2000 --events 100000 --repeats 3   # quicker
    .venv/bin/python bench/callbacks.py --reuse              # keep the database built last time

Builds (once, into bench/out/) the demo study at the asked size through the real ingestion pipeline (three cuts),
then adds copies of the last cut's AE records (and their derived rows) until the cut holds ``--events`` records;
a third of the copies get a variant PT name, so the cut has about a thousand distinct PTs, as a real study does.
It then signs in and calls each main callback over HTTP as the browser does, for a set of views (filters,
selections), and prints per callback the p50 and p95 server time and the largest response in bytes; the first
call of each view (results not yet cached) and the repeats (cached) are reported apart, and the one-off load of
the cut into memory separately. Last, it serves the app and times the first page until fully drawn in Chromium.
Targets (issue 4): p95 under 150 ms, under 300 KB per response, first page under 3 s. Figures are printed, not
asserted: this is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safety_dash.config import load_settings  # noqa: E402
from safety_dash.db.engine import get_engine, upgrade_database  # noqa: E402
from safety_dash.web import ids  # noqa: E402
from safety_dash.web.auth import create_user  # noqa: E402
from safety_dash.web.dashcall import call_callback  # noqa: E402
from safety_dash.web.state import ViewState, state_to_search  # noqa: E402

USER, PASSWORD = "bench", "bench-password"
TARGET_MS, TARGET_BYTES, TARGET_FIRST_PAGE_S = 150.0, 300_000, 3.0
AE_COLUMNS = (
    "study_id, record_key, usubjid, content_hash, change, valid_from_run, valid_to_run, source_row, extra, aeseq, "
    "aespid, aeterm, aedecod, aebodsys, aetoxgr, aesev, aeser, aesdth, aeslife, aeshosp, aesdisab, aescong, aesmie, "
    "aerel, aeacn, aeout, aestdtc, aeendtc, aegrpid"
)
EVENT_COLUMNS = (
    "usubjid, soc, astdt, astdtf, astdy, trtemfl, window_label, after_cutoff, grade, grade_source, serious, related, "
    "uncoded, record_change"
)


def build_database(workdir: Path, n_subjects: int, n_events: int) -> str:
    """The demo study at ``n_subjects`` ingested as three cuts, its last cut grown to ``n_events`` AE records."""
    from safety_dash.ingest.demo import write_demo_study
    from safety_dash.ingest.pipeline import ingest_extract

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    url = f"sqlite:///{workdir / 'bench.db'}"
    started = time.perf_counter()
    write_demo_study(workdir / "demo", n_subjects=n_subjects)
    upgrade_database(url)
    for cut in ("cut1", "cut2", "cut3"):
        result = ingest_extract(url, workdir / "demo" / cut)
        if result.status != "succeeded":
            raise SystemExit(f"ingestion of {cut} failed: {result.message}")
    print(f"built {n_subjects:,} subjects, three cuts, in {time.perf_counter() - started:.0f} s", flush=True)
    grow_last_cut(url, result.run_id, n_events)
    create_user(get_engine(url), USER, PASSWORD, "monitor")
    return url


def grow_last_cut(url: str, run_id: int, n_events: int) -> None:
    """Copy the cut's AE records (raw and derived) until it holds ``n_events``; one copy in three renames its PT."""
    engine = get_engine(url)
    with engine.begin() as connection:
        base = connection.execute(text("SELECT COUNT(*) FROM derived_events WHERE run_id = :r"), {"r": run_id}).scalar()
        stride = connection.execute(text("SELECT MAX(id) FROM ae_versions")).scalar() + 1
        copies = max(0, math.ceil(n_events / base) - 1)
        for k in range(1, copies + 1):
            limit = min(base, n_events - base * k)
            if limit <= 0:
                break
            offset = k * stride
            copied = {"record_key": "a.record_key || '#' || :k", "change": "'new'"}
            select_list = ", ".join(copied.get(c, f"a.{c}") for c in AE_COLUMNS.split(", "))
            # The column lists are constants of this file; every value is a bound parameter.
            insert_raw = f"INSERT INTO ae_versions (id, {AE_COLUMNS}) SELECT a.id + :offset, {select_list}"  # noqa: S608
            connection.execute(
                text(
                    insert_raw + " FROM ae_versions a JOIN derived_events d ON d.ae_version_id = a.id AND d.run_id = :r"
                    " WHERE a.id < :stride ORDER BY a.id LIMIT :limit"
                ),
                {"offset": offset, "k": k, "r": run_id, "limit": limit, "stride": stride},
            )
            copied_events = EVENT_COLUMNS.replace("record_change", "'new'")
            renamed_pt = (
                "CASE WHEN :k % 3 = 0 THEN pt || ' (variant ' || (:k * 7 + ae_version_id) % 29 || ')' ELSE pt END"
            )
            insert_derived = (
                f"INSERT INTO derived_events (run_id, ae_version_id, pt, {EVENT_COLUMNS}) "  # noqa: S608
                f"SELECT run_id, ae_version_id + :offset, {renamed_pt}, {copied_events} FROM derived_events "
                "WHERE run_id = :r AND ae_version_id < :stride ORDER BY ae_version_id LIMIT :limit"
            )
            connection.execute(
                text(insert_derived),
                {"offset": offset, "k": k, "r": run_id, "limit": limit, "stride": stride},
            )
        total = connection.execute(
            text("SELECT COUNT(*) FROM derived_events WHERE run_id = :r"), {"r": run_id}
        ).scalar()
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
    print(f"last cut grown from {base:,} to {total:,} AE records", flush=True)


@dataclasses.dataclass
class Timing:
    """The calls of one callback: cold (first call for a view) and warm (repeats) times, and response sizes."""

    cold: list[float] = dataclasses.field(default_factory=list)
    warm: list[float] = dataclasses.field(default_factory=list)
    sizes: list[int] = dataclasses.field(default_factory=list)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else float("nan")


def view_states(study: str, cut: int, cohorts: list[str], soc: str, pt: str, subjects: list[str]) -> list[ViewState]:
    """The views the benchmark asks for: default, filtered, one cohort, a SOC, a PT, a basket, subjects."""
    base = ViewState(study=study, cut=cut)
    return [
        base,
        base.replace(min_grade=3),
        base.replace(serious=True),
        base.replace(related=True, min_grade=2),
        base.replace(cohort=cohorts[0]),
        base.replace(cohort=cohorts[-1], min_grade=3),
        base.replace(soc=soc),
        base.replace(soc=soc, pt=pt),
        base.replace(basket="skin"),
        base.replace(basket="endocrine", cohort=cohorts[len(cohorts) // 2]),
        base.replace(subject=subjects[0]),
        base.replace(subject=subjects[1], window=True),
    ]


def callbacks_for(search: str) -> dict[str, tuple[str, dict, dict]]:
    """Each main callback: (output, inputs, state) for the view at ``search``."""
    page = {"startRow": 0, "endRow": 50, "sortModel": [], "filterModel": {}}
    sorted_page = {
        "startRow": 50,
        "endRow": 100,
        "sortModel": [{"colId": "GRADE", "sort": "desc"}],
        "filterModel": {"PT": {"filterType": "text", "type": "contains", "filter": "a"}},
    }
    url = {"url.search": search}
    return {
        "filter bar": (f"{ids.FILTER_CUT}.value", url, {}),
        "overview": (f"{ids.OVERVIEW_CARDS}.children", url, {}),
        "explorer charts": (f"{ids.EXPLORER_SOC_GRAPH}.figure", url, {}),
        "explorer grid page": (
            f"{ids.EXPLORER_GRID}.getRowsResponse",
            {f"{ids.EXPLORER_GRID}.getRowsRequest": page},
            url,
        ),
        "explorer term onset": (f"{ids.EXPLORER_TERM_ONSET}.figure", url, {}),
        "rates": (f"{ids.RATES_FOREST}.figure", url, {}),
        "rates trend (3 cuts)": (f"{ids.RATES_TREND}.figure", url, {}),
        "onset": (f"{ids.ONSET_CURVES}.figure", url, {}),
        "subject": (f"{ids.SUBJECT_TIMELINE}.figure", url, {}),
        "listing count": (f"{ids.LISTING_COUNT}.children", url, {}),
        "listing page": (f"{ids.LISTING_GRID}.getRowsResponse", {f"{ids.LISTING_GRID}.getRowsRequest": page}, url),
        "listing page sorted+filtered": (
            f"{ids.LISTING_GRID}.getRowsResponse",
            {f"{ids.LISTING_GRID}.getRowsRequest": sorted_page},
            url,
        ),
        "data runs": (f"{ids.DATA_RUNS}.rowData", url, {}),
    }


def run_callbacks(app, client, states: list[ViewState], repeats: int) -> dict[str, Timing]:
    """Call every main callback for every view, ``repeats`` times; the first call of a view counts as cold."""
    timings: dict[str, Timing] = {}
    for state in states:
        for name, (output, inputs, extra) in callbacks_for(state_to_search(state)).items():
            timing = timings.setdefault(name, Timing())
            for repeat in range(repeats):
                answer = call_callback(client, app, output, inputs, extra)
                if answer.status != 200:
                    raise SystemExit(f"{name} answered {answer.status} for {state}")
                (timing.cold if repeat == 0 else timing.warm).append(answer.seconds * 1000)
                timing.sizes.append(answer.n_bytes)
    return timings


def print_table(timings: dict[str, Timing]) -> None:
    """The figures, one line per callback; a figure over its target carries a '*'."""
    print(f"\n{'callback':32} {'cold p50':>9} {'cold p95':>10} {'warm p50':>9} {'warm p95':>10} {'max bytes':>11}")
    for name, timing in timings.items():
        cold95, warm95 = percentile(timing.cold, 95), percentile(timing.warm, 95)
        largest = max(timing.sizes)

        def mark(value: float, limit: float) -> str:
            return "*" if value > limit else " "

        print(
            f"{name:32} {percentile(timing.cold, 50):9.1f} {cold95:9.1f}{mark(cold95, TARGET_MS)}"
            f" {percentile(timing.warm, 50):9.1f} {warm95:9.1f}{mark(warm95, TARGET_MS)}"
            f" {largest:10,}{mark(largest, TARGET_BYTES)}"
        )
    print(f"(ms; * = over the target: p95 {TARGET_MS:.0f} ms, {TARGET_BYTES:,} bytes per response)")


def time_first_page(app, url_path: str, runs: int = 3) -> list[float]:
    """Serve the app on a free port and time, in headless Chromium, navigation to the overview until it is fully
    drawn (cards, cohort chart, no component loading); the first run finds the server's caches cold."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    options = Options()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options)
    results = []
    try:
        driver.get(base + "/login")
        driver.find_element(By.ID, "username").send_keys(USER)
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "sign-in").click()
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.ID, ids.PAGE_CONTENT))
        for _ in range(runs):
            driver.get(base + url_path)
            WebDriverWait(driver, 120, poll_frequency=0.02).until(
                lambda d: d.execute_script(
                    "return document.querySelectorAll('#overview-cards .card').length === 8"
                    " && document.querySelector('#overview-cohort-graph .main-svg .barlayer .trace') !== null"
                    " && document.querySelector('[data-dash-is-loading=\"true\"]') === null"
                )
            )
            results.append(driver.execute_script("return performance.now()") / 1000)
    finally:
        driver.quit()
        server.shutdown()
    return results


def main(argv: list[str] | None = None) -> int:
    """Build or reuse the database, then print the callback figures and the first-page time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="calls per callback and view (the first is cold)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--reuse", action="store_true", help="use the database built by the last run")
    parser.add_argument("--no-browser", action="store_true", help="skip the first-page time in Chromium")
    args = parser.parse_args(argv)

    url = f"sqlite:///{args.workdir / 'bench.db'}"
    if not (args.reuse and (args.workdir / "bench.db").exists()):
        url = build_database(args.workdir, args.subjects, args.events)
    from safety_dash.web.app import create_app
    from safety_dash.web.data import load_cut_frames_for_views, resolve_state

    settings = dataclasses.replace(load_settings(), database_url=url, secret_key="bench-secret", session_minutes=60.0)
    app = create_app(settings)
    engine = get_engine(url)
    state, cut = resolve_state(engine, ViewState())

    started = time.perf_counter()
    subjects, events = load_cut_frames_for_views(engine, cut.run_id)
    load_seconds = time.perf_counter() - started
    print(f"cut {cut.run_id}: {len(subjects):,} subjects, {len(events):,} AE records; "
          f"loaded into memory once per worker in {load_seconds:.1f} s")  # fmt: skip

    client = app.server.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf_token"]
    client.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": token})

    cohorts = sorted(set(subjects.loc[subjects["SAFFL"], "COHORT_GROUP"]))
    soc = events["SOC"].value_counts().index[1]
    pt = events.loc[events["SOC"] == soc, "PT"].value_counts().index[0]
    dosed = subjects.loc[subjects["SAFFL"], "USUBJID"].tolist()
    states = view_states(cut.study_id, cut.run_id, cohorts, soc, pt, [dosed[7], dosed[len(dosed) // 2]])
    timings = run_callbacks(app, client, states, args.repeats)
    print_table(timings)

    if not args.no_browser:
        from safety_dash.web.data import clear_caches

        path = f"/{state_to_search(state)}"
        warm = time_first_page(create_app(settings), path)
        clear_caches()  # as a worker that has not read the cut yet (no warm-up thread)
        cold = time_first_page(create_app(settings), path, runs=1)
        print(f"\nfirst page (overview) fully drawn in headless Chromium, cut in memory: "
              f"{', '.join(f'{s:.2f} s' for s in warm)}; cut not yet read by the worker: {cold[0]:.2f} s "
              f"(target {TARGET_FIRST_PAGE_S:.0f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
