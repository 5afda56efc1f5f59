"""Benchmark: laboratory grading, worst grades and the Hy's law screen on a large synthetic LB (not a test).

Takes the seeded synthetic study of ``bench/rates.py`` (20,000 subjects, Q3W dosing, deaths), derives the cut at
2024-06-30, and builds in memory an SDTM LB of about 4,000,000 records: 16 tests (the 14 of the criteria file, and
ALB and CA, which it does not grade) at a screening visit (LBBLFL = Y) and every two weeks from the first dose,
with times of day in LBDTC, text results in LBSTRESC, 0.1 % bounds ('<0.5'), 0.5 % records without a reference
range, and rare liver elevations so that some subjects are potential Hy's law cases. It then times, on those frames,

(a) derive_lab_values (baseline, window, x ULN, CTCAE grades) + compute_worst_grades + flag_hys_law, and
(b) compute_lab_table(group_col='COHORT') alone (it reruns worst grades and the Hy's law screen),

and prints seconds and peak traced memory. Target (issue 13): (a) well under 10 s.

With ``--callbacks`` it then measures the lab pages as the browser calls them (c): it builds (once, into
bench/out/labs/; ``--reuse`` keeps it) a SQLite database holding a study of ``--subjects`` subjects ingested through
the pipeline (bench/_study.py's DM, EX and a small AE) and the same synthetic LB, ``--records`` records with visits,
inserted into ``lb_versions`` as one cut's records; signs in and times the eDISH callback over HTTP (and the Labs
page's and the subject lab panel's) for several views, ``--repeats`` calls each: p50 / p95 server time of the first
call of a view and of the repeats, and the largest response. Targets (issue 13): eDISH p95 under 150 ms and under
300 KB per response.

Since the LB records are inserted behind ingestion's back, the cut's lab read model (empty: the extract had no LB)
is written again from the database the way ``readmodel build`` does it, in a child process (time and peak memory
printed). A fresh worker's first Labs page is then timed twice, each in a child process of its own so that its
peak memory is its own: **graded** (a worker without the lab read model grades the cut's LB records from the
database, as every worker did before; ``--skip-graded`` leaves it out: minutes and gigabytes) and **file** (the
worker opens the lab read model). The read model goes beside the database (``--workdir``/data).

Run: .venv/bin/python bench/labs.py [--subjects 20000] [--records 4000000] [--repeat 3]
     .venv/bin/python bench/labs.py --callbacks-only [--reuse] [--repeats 5] [--skip-graded]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Run as a script from a checkout: make the package and the bench folder importable without installing them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rates import CUTOFF, make_study, measure
from safety_dash.metrics.exposure import DEFAULT_WINDOW_DAYS, derive_subject_exposure
from safety_dash.metrics.labs import (
    CRITERIA_FILE,
    compute_lab_table,
    compute_worst_grades,
    derive_lab_values,
    flag_hys_law,
)

# (LBTESTCD, LBTEST, unit, LLN, ULN, typical value, coefficient of variation): SI units as the criteria expect.
TESTS = [
    ("ALT", "Alanine Aminotransferase", "U/L", 6, 34, 20, 0.35),
    ("AST", "Aspartate Aminotransferase", "U/L", 9, 34, 22, 0.3),
    ("ALP", "Alkaline Phosphatase", "U/L", 35, 115, 70, 0.3),
    ("BILI", "Bilirubin", "umol/L", 3, 21, 9, 0.4),
    ("CREAT", "Creatinine", "umol/L", 62, 124, 90, 0.2),
    ("NEUT", "Neutrophils", "10^9/L", 1.8, 7.5, 4.0, 0.4),
    ("PLAT", "Platelets", "10^9/L", 130, 394, 250, 0.3),
    ("HGB", "Hemoglobin", "g/L", 120, 170, 135, 0.12),
    ("LYM", "Lymphocytes", "10^9/L", 0.8, 3.0, 1.6, 0.4),
    ("WBC", "Leukocytes", "10^9/L", 3.8, 10.7, 6.5, 0.3),
    ("K", "Potassium", "mmol/L", 3.4, 5.4, 4.3, 0.08),
    ("SODIUM", "Sodium", "mmol/L", 135, 145, 140, 0.02),
    ("GLUC", "Glucose", "mmol/L", 3.9, 6.1, 5.2, 0.2),
    ("TSH", "Thyrotropin", "mU/L", 0.32, 5.0, 2.0, 0.6),
    ("ALB", "Albumin", "g/L", 35, 46, 41, 0.08),
    ("CA", "Calcium", "mmol/L", 2.1, 2.57, 2.35, 0.04),
]


def make_lb(subjects: pd.DataFrame, n_records: int, seed: int = 20240630) -> pd.DataFrame:
    """An SDTM LB frame of about ``n_records`` rows for the dosed subjects (text columns, '' for missing)."""
    rng = np.random.default_rng(seed)
    dosed = subjects.loc[subjects["SAFFL"]]
    n_subjects, n_tests = len(dosed), len(TESTS)
    n_visits = max(2, -(-n_records // (n_subjects * n_tests)))
    visit = np.tile(np.arange(n_visits), n_subjects)
    owner = np.repeat(np.arange(n_subjects), n_visits)
    first = dosed["TRTSDT"].to_numpy(dtype="datetime64[D]")[owner]
    day = np.where(visit == 0, -7, 14 * visit - 1 + rng.integers(-2, 3, len(visit)))
    minutes = rng.integers(7 * 60, 17 * 60, len(visit))
    stamp = (first + day.astype("timedelta64[D]")).astype("datetime64[m]") + minutes.astype("timedelta64[m]")
    lbdtc = np.datetime_as_string(stamp, unit="m").astype(object)

    size = len(visit) * n_tests
    test = np.tile(np.arange(n_tests), len(visit))
    row_visit = np.repeat(np.arange(len(visit)), n_tests)
    lln = np.array([t[3] for t in TESTS], dtype=float)[test]
    uln = np.array([t[4] for t in TESTS], dtype=float)[test]
    typical = np.array([t[5] for t in TESTS], dtype=float)[test]
    spread = np.array([t[6] for t in TESTS], dtype=float)[test]
    value = typical * rng.lognormal(0.0, 1.0, size) ** spread
    # Rare liver injury: ALT/AST to 3-8 x ULN, bilirubin to 2-4 x ULN on some later visits.
    liver = rng.random(size) < 0.004
    value = np.where(liver & (test <= 1), uln * rng.uniform(3, 8, size), value)
    value = np.where(liver & (test == 3), uln * rng.uniform(2, 4, size), value)
    value = np.round(value, 2)
    stresc = value.astype(str).astype(object)
    bound = rng.random(size) < 0.001
    stresc[bound] = "<0.5"
    stresn = np.where(bound, np.nan, value)
    no_range = rng.random(size) < 0.005
    lb = pd.DataFrame(
        {
            "USUBJID": dosed["USUBJID"].to_numpy(dtype=object)[owner][row_visit],
            "LBSEQ": np.tile(np.arange(1, n_visits * n_tests + 1), n_subjects),
            "LBTESTCD": np.array([t[0] for t in TESTS], dtype=object)[test],
            "LBTEST": np.array([t[1] for t in TESTS], dtype=object)[test],
            "LBSTRESC": stresc,
            "LBSTRESN": stresn,
            "LBSTRESU": np.array([t[2] for t in TESTS], dtype=object)[test],
            "LBSTNRLO": np.where(no_range, np.nan, lln),
            "LBSTNRHI": np.where(no_range, np.nan, uln),
            "LBDTC": lbdtc[row_visit],
            "LBBLFL": np.where(visit[row_visit] == 0, "Y", "").astype(object),
        }
    )
    return lb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--records", type=int, default=4_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--callbacks", action="store_true", help="also (c): the lab pages' callbacks over HTTP")
    parser.add_argument("--callbacks-only", action="store_true", help="only (c)")
    parser.add_argument("--repeats", type=int, default=5, help="(c): calls per callback and view (the first is cold)")
    parser.add_argument("--reuse", action="store_true", help="(c): use the database built by the last run")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).resolve().parent / "out" / "labs")
    parser.add_argument("--skip-graded", action="store_true", help="(c): do not time a worker grading the cut itself")
    parser.add_argument("--probe-worker", choices=("graded", "file"), help=argparse.SUPPRESS)
    parser.add_argument("--write-labs", type=int, metavar="RUN_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    # The read model goes beside the benchmark's database; the child processes inherit the setting.
    os.environ["SAFETY_DASH_DATA_DIR"] = str((args.workdir / "data").resolve())
    if args.probe_worker:
        probe_worker(args.workdir, args.probe_worker)
        return
    if args.write_labs:
        write_lab_read_model(args.workdir, args.write_labs)
        return
    if not args.callbacks_only:
        bench_metrics(args)
    if args.callbacks or args.callbacks_only:
        bench_callbacks(args)


def bench_metrics(args) -> None:
    """(a) and (b): grading, worst grades and the Hy's law screen on the generated frames."""

    start = time.perf_counter()
    dm, ex, _ = make_study(args.subjects, 1_000)
    subjects = derive_subject_exposure(dm, ex, CUTOFF)
    lb = make_lb(subjects, args.records)
    criteria = pd.read_csv(CRITERIA_FILE, dtype=str, keep_default_na=False)
    prepared = time.perf_counter() - start
    print(
        f"cut {CUTOFF}: {int(subjects['SAFFL'].sum()):,} safety subjects, {len(lb):,} LB records, "
        f"{lb['LBTESTCD'].nunique()} tests (generated in {prepared:.1f} s)"
    )

    def run_screen() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        values = derive_lab_values(lb, subjects, CUTOFF, DEFAULT_WINDOW_DAYS, criteria)
        return values, compute_worst_grades(values), flag_hys_law(values)

    values, worst, hys = run_screen()
    print(
        f"{int(values['ON_TREATMENT'].sum()):,} on-treatment records; {len(worst):,} subject x test x direction "
        f"rows, {int((worst['WORST_GRADE'] >= 3).sum()):,} of worst grade >= 3; {len(hys):,} subjects screened, "
        f"{int(hys['HYS_LAW'].sum())} potential Hy's law cases"
    )
    for name, function in (
        ("derive_lab_values", lambda: derive_lab_values(lb, subjects, CUTOFF, DEFAULT_WINDOW_DAYS, criteria)),
        ("compute_worst_grades", lambda: compute_worst_grades(values)),
        ("flag_hys_law", lambda: flag_hys_law(values)),
    ):
        seconds = min(_time(function) for _ in range(args.repeat))
        print(f"    {name:24s} {seconds:6.2f} s")
    screen_s, screen_mb = measure(run_screen, args.repeat)
    table_s, table_mb = measure(lambda: compute_lab_table(values, subjects, "COHORT"), args.repeat)
    print(f"(a) grading + worst grades + Hy's law screen: {screen_s:6.2f} s   peak {screen_mb:7.0f} MB traced")
    print(f"(b) compute_lab_table (from graded values):   {table_s:6.2f} s   peak {table_mb:7.0f} MB traced")
    print(f"target (a) < 10 s: {'met' if screen_s < 10 else 'NOT met'}")


# --- (c) the lab pages' callbacks over HTTP --------------------------------------------------------------------

USER, PASSWORD = "bench", "bench-password"
TARGET_MS, TARGET_BYTES = 150.0, 300_000
LB_INSERT_COLUMNS = ("study_id", "record_key", "usubjid", "content_hash", "change", "valid_from_run", "source_row",
                     "lbseq", "lbtestcd", "lbtest", "lbcat", "lborres", "lborresu", "lbstresc", "lbstresn", "lbstresu",
                     "lbstnrlo", "lbstnrhi", "lbnrind", "lbblfl", "lblobxfl", "visitnum", "visit", "lbdtc")  # fmt: skip


def build_callback_database(workdir: Path, n_subjects: int, n_records: int) -> str:
    """A SQLite database with one cut of a ``n_subjects`` study (DM, EX and a small AE through the pipeline) and
    :func:`make_lb`'s LB of about ``n_records`` records (with VISIT and VISITNUM) inserted as that cut's records."""
    import shutil

    from bench._study import write_csv_study
    from safety_dash.analysis import load_derived_frames
    from safety_dash.db.engine import get_engine, upgrade_database
    from safety_dash.ingest.pipeline import ingest_extract
    from safety_dash.web.auth import create_user

    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    started = time.perf_counter()
    write_csv_study(workdir / "extract", n_subjects, n_ex=10 * n_subjects, n_ae=5 * n_subjects)
    url = f"sqlite:///{workdir / 'labs.db'}"
    upgrade_database(url)
    result = ingest_extract(url, workdir / "extract")
    if result.status != "succeeded":
        raise SystemExit(f"ingestion failed: {result.message}")
    engine = get_engine(url)
    subjects, _ = load_derived_frames(engine, result.run_id)
    lb = make_lb(subjects, n_records)
    visit = (lb["LBSEQ"].to_numpy() - 1) // len(TESTS)  # make_lb numbers each subject's records visit by visit
    lb["VISITNUM"] = (visit + 1).astype(str)
    lb["VISIT"] = np.where(visit == 0, "SCREENING", np.char.add("WEEK ", (2 * visit).astype(str))).astype(object)
    print(f"ingested {n_subjects:,} subjects in {time.perf_counter() - started:.0f} s; inserting {len(lb):,} LB "
          "records", flush=True)  # fmt: skip
    insert_lb(engine, result.study_id, result.run_id, lb)
    create_user(engine, USER, PASSWORD, "monitor")
    print(f"database built in {time.perf_counter() - started:.0f} s", flush=True)
    return url


def insert_lb(engine, study_id: str, run_id: int, lb: pd.DataFrame, chunk: int = 200_000) -> None:
    """``lb`` as the current records of cut ``run_id`` (a bare insert: no validation, no hashing)."""
    text = lb.astype({"LBSEQ": str})
    number = {c: lb[c].astype(object).where(lb[c].notna(), None) for c in ("LBSTRESN", "LBSTNRLO", "LBSTNRHI")}
    columns = [
        np.full(len(lb), study_id, dtype=object), text["USUBJID"] + "|" + text["LBSEQ"], text["USUBJID"],
        np.full(len(lb), "0" * 32, dtype=object), np.full(len(lb), "new", dtype=object), np.full(len(lb), run_id),
        np.arange(2, len(lb) + 2), text["LBSEQ"], lb["LBTESTCD"], lb["LBTEST"], np.full(len(lb), "", dtype=object),
        lb["LBSTRESC"], lb["LBSTRESU"], lb["LBSTRESC"], number["LBSTRESN"], lb["LBSTRESU"], number["LBSTNRLO"],
        number["LBSTNRHI"], np.full(len(lb), "", dtype=object), lb["LBBLFL"], np.full(len(lb), "", dtype=object),
        lb["VISITNUM"], lb["VISIT"], lb["LBDTC"],
    ]  # fmt: skip
    rows = pd.DataFrame(dict(zip(LB_INSERT_COLUMNS, columns, strict=True)))
    # The column names are this file's constants; every value is a bound parameter.
    statement = f"INSERT INTO lb_versions ({', '.join(LB_INSERT_COLUMNS)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    with engine.begin() as connection:
        for start in range(0, len(rows), chunk):
            part = rows.iloc[start : start + chunk]
            connection.exec_driver_sql(statement, list(part.itertuples(index=False, name=None)))
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")


def callback_views(study: str, cut: int, cohorts: list[str], subjects: list[str]) -> list[tuple[str, str, dict]]:
    """(name, output, inputs) of each call: the eDISH plot for every cohort and filter, the Labs page's table and
    test panels for a few tests, the subject lab panel for a few subjects."""
    from safety_dash.web import ids
    from safety_dash.web.state import ViewState, state_to_search

    base = ViewState(study=study, cut=cut)
    edish = [base, base.replace(min_grade=3), *[base.replace(cohort=c) for c in cohorts]]
    calls = [("eDISH", f"{ids.EDISH_GRAPH}.figure", {"url.search": state_to_search(s)}) for s in edish]
    for state in (base, base.replace(lab="ALT"), base.replace(lab="K", lab_dir="low", cohort=cohorts[0])):
        search = {"url.search": state_to_search(state)}
        calls += [("labs table", f"{ids.LABS_TABLE}.rowData", search), ("labs test", f"{ids.LABS_BOX}.figure", search)]
    calls += [("subject lab panel", f"{ids.SUBJECT_LAB_PANEL}.children",
               {"url.search": state_to_search(base.replace(subject=s))}) for s in subjects]  # fmt: skip
    return calls


def _database_url(workdir: Path) -> str:
    return f"sqlite:///{workdir / 'labs.db'}"


def _bench_app(url: str):
    """The web app on ``url`` and a test client signed in as the benchmark's user."""
    import dataclasses

    from safety_dash.config import load_settings
    from safety_dash.web.app import create_app

    settings = dataclasses.replace(load_settings(), database_url=url, secret_key="bench-secret", session_minutes=60.0)
    app = create_app(settings)
    client = app.server.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf_token"]
    client.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": token})
    return app, client


def _lab_file_state(url: str) -> tuple[int, str]:
    """The newest cut's run id and its lab read model: 'missing', 'empty' (no LB record) or 'present'."""
    import pyarrow as pa

    from safety_dash.db.engine import get_engine
    from safety_dash.readmodel import load_cut, read_model_root
    from safety_dash.readmodel.labs import RECORDS_FILE, lab_folder
    from safety_dash.web.data import resolve_state
    from safety_dash.web.state import ViewState

    engine = get_engine(url)
    _, cut = resolve_state(engine, ViewState())
    path = lab_folder(read_model_root(), load_cut(engine, cut.run_id)) / RECORDS_FILE
    if not path.is_file():
        return cut.run_id, "missing"
    with pa.memory_map(str(path)) as source:  # the row count only: nothing of the file is read into this process
        rows = sum(batch.num_rows for batch in pa.ipc.open_file(source).read_all().to_batches())
    return cut.run_id, "present" if rows else "empty"


def write_lab_read_model(workdir: Path, run_id: int) -> None:
    """(child process) ``readmodel build --cut run_id``, after removing the cut's lab read model written at
    ingestion (the LB records were inserted afterwards); then this process's peak memory, as JSON."""
    import shutil

    from safety_dash.db.engine import get_engine
    from safety_dash.readmodel import load_cut, read_model_root, run_build_command
    from safety_dash.readmodel.labs import lab_folder

    url = _database_url(workdir)
    shutil.rmtree(lab_folder(read_model_root(), load_cut(get_engine(url), run_id)), ignore_errors=True)
    started = time.perf_counter()
    code = run_build_command(url, None, run_id, False)
    print(json.dumps({"exit": code, "seconds": time.perf_counter() - started, "peak_mb": _resident_mb("VmHWM")}))


def probe_worker(workdir: Path, mode: str) -> None:
    """(child process) A fresh worker's first Labs page: the cut's lab values read into it (``mode`` 'graded': from
    the database, as without a lab read model; 'file': from the read model), then the page's two callbacks (table,
    test panels); seconds and memory, as JSON."""
    from safety_dash.db.engine import get_engine
    from safety_dash.views import labs as views
    from safety_dash.web import ids
    from safety_dash.web.dashcall import call_callback
    from safety_dash.web.data import resolve_state
    from safety_dash.web.state import ViewState, state_to_search

    if mode == "graded":
        views.open_lab_cut = lambda root, cut: None  # a worker of before: no lab read model to open
    url = _database_url(workdir)
    app, client = _bench_app(url)
    engine = get_engine(url)
    _, cut = resolve_state(engine, ViewState())
    search = {"url.search": state_to_search(ViewState(study=cut.study_id, cut=cut.run_id))}
    before_mb = _resident_mb()
    started = time.perf_counter()
    lab = views.load_lab_cut(engine, cut.run_id, cut.derived_at)
    ready = time.perf_counter() - started
    answers = [call_callback(client, app, output, search) for output in (f"{ids.LABS_TABLE}.rowData",
                                                                        f"{ids.LABS_BOX}.figure")]  # fmt: skip
    if any(answer.status != 200 for answer in answers):
        raise SystemExit(f"the Labs page answered {[answer.status for answer in answers]}")
    print(json.dumps({"mode": mode, "records": len(lab.records), "ready_s": ready,
                      "page_s": time.perf_counter() - started, "callbacks_s": [a.seconds for a in answers],
                      "before_mb": before_mb, "after_mb": _resident_mb(), "peak_mb": _resident_mb("VmHWM"),
                      "own_mb": _resident_mb("RssAnon"), "kept_mb": _kept_mb(lab)}))  # fmt: skip


def _child(workdir: Path, *options: str) -> dict:
    """Run this script with ``options`` in a child process; the JSON of its last line."""
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--workdir", str(workdir), *options],
                          capture_output=True, text=True, env=os.environ.copy(), check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(options)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:
        print(f"    {line}", flush=True)
    return json.loads(lines[-1])


def bench_first_labs_page(args, url: str, built: bool) -> None:
    """Write the cut's lab read model where it is stale or missing (as ``readmodel build`` does), then time a fresh
    worker's first Labs page graded from the database and opened from the file, each in its own process."""
    run_id, state = _lab_file_state(url)
    if built or state != "present":
        print(f"\nlab read model of cut {run_id} ({state}, the LB records inserted after ingestion): written from the "
              "database as `readmodel build` does", flush=True)  # fmt: skip
        written = _child(args.workdir, "--write-labs", str(run_id))
        if written["exit"] != 0:
            raise SystemExit("readmodel build failed")
        print(f"    readmodel build: {written['seconds']:.1f} s, peak {written['peak_mb']:,.0f} MB", flush=True)
    print("\na fresh worker's first Labs page (lab values into the worker, then the table and test callbacks):")
    for mode in ("graded", "file"):
        if mode == "graded" and args.skip_graded:
            print("  graded: skipped (--skip-graded)")
            continue
        probe = _child(args.workdir, "--probe-worker", mode)
        print(f"  {mode:6} ({'from the database' if mode == 'graded' else 'lab read model'}): {probe['records']:,} "
              f"records ready in {probe['ready_s']:.2f} s, first Labs page {probe['page_s']:.2f} s; resident "
              f"{probe['before_mb']:,.0f} MB before, {probe['after_mb']:,.0f} MB after ({probe['own_mb']:,.0f} MB "
              f"its own, the rest mapped files and libraries), peak {probe['peak_mb']:,.0f} MB; the cut's frames "
              f"{probe['kept_mb']:,.0f} MB "
              f"({'its own' if mode == 'graded' else 'records mapped from the file: shared'})",
              flush=True)  # fmt: skip


def bench_callbacks(args) -> None:
    """(c): build or reuse the database, write the cut's lab read model, time a fresh worker's first Labs page both
    ways, then open the cut in this process and time the callbacks."""
    from bench.callbacks import percentile
    from safety_dash.db.engine import get_engine
    from safety_dash.readmodel.cuts import load_cut
    from safety_dash.readmodel.files import read_model_root
    from safety_dash.readmodel.labs import lab_folder
    from safety_dash.views.labs import load_lab_cut
    from safety_dash.web.dashcall import call_callback
    from safety_dash.web.data import resolve_state
    from safety_dash.web.state import ViewState

    url = _database_url(args.workdir)
    built = not (args.reuse and (args.workdir / "labs.db").exists())
    if built:
        url = build_callback_database(args.workdir, args.subjects, args.records)
    bench_first_labs_page(args, url, built)
    app, client = _bench_app(url)
    engine = get_engine(url)
    _, cut = resolve_state(engine, ViewState())
    from_file = (lab_folder(read_model_root(), load_cut(engine, cut.run_id)) / "records.arrow").is_file()
    before_mb = _resident_mb()
    started = time.perf_counter()
    lab = load_lab_cut(engine, cut.run_id, cut.derived_at)
    n_records = len(lab.records)
    how = "opened from its lab read model" if from_file else "graded into the worker"
    print(f"\n(c) cut {cut.run_id}: {n_records:,} LB records of {len(lab.subject_ids):,} subjects {how} in "
          f"{time.perf_counter() - started:.1f} s; kept: {_kept_mb(lab):.0f} MB; resident "
          f"{before_mb:.0f} MB before, {_resident_mb():.0f} MB after, peak {_resident_mb('VmHWM'):.0f} MB"
          f"{'' if args.reuse else ' (the peak includes building the database: use --reuse)'}")  # fmt: skip

    cohorts = [g for g in lab.groups if g != "(missing)"]
    cases = lab.hys_law.loc[lab.hys_law["HYS_LAW"], "USUBJID"].tolist()
    subjects = (cases[:1] + lab.subject_ids[[7, len(lab.subject_ids) // 2]].tolist())[:3]
    timings: dict[str, dict[str, list]] = {}
    for name, output, inputs in callback_views(cut.study_id, cut.run_id, cohorts, subjects):
        timing = timings.setdefault(name, {"cold": [], "warm": [], "bytes": [], "cpu": []})
        for repeat in range(args.repeats):
            cpu = time.thread_time()  # the test client answers in this thread: its CPU time, whatever the load
            answer = call_callback(client, app, output, inputs)
            timing["cpu"].append((time.thread_time() - cpu) * 1000)
            if answer.status != 200:
                raise SystemExit(f"{name} answered {answer.status} for {inputs}")
            timing["cold" if repeat == 0 else "warm"].append(answer.seconds * 1000)
            timing["bytes"].append(answer.n_bytes)
    print(f"{'callback':20} {'calls':>6} {'cold p50':>9} {'cold p95':>10} {'warm p50':>9} {'warm p95':>10} "
          f"{'all p95':>9} {'CPU p95':>9} {'max bytes':>11}")  # fmt: skip
    for name, timing in timings.items():
        every = timing["cold"] + timing["warm"]
        marks = {k: "*" if v > TARGET_MS else " " for k, v in (("c", percentile(timing["cold"], 95)),
                                                                ("w", percentile(timing["warm"], 95)),
                                                                ("a", percentile(every, 95)))}  # fmt: skip
        largest = max(timing["bytes"])
        print(
            f"{name:20} {len(every):6} {percentile(timing['cold'], 50):9.1f} {percentile(timing['cold'], 95):9.1f}"
            f"{marks['c']} {percentile(timing['warm'], 50):9.1f} {percentile(timing['warm'], 95):9.1f}{marks['w']}"
            f" {percentile(every, 95):8.1f}{marks['a']} {percentile(timing['cpu'], 95):9.1f}"
            f" {largest:10,}{'*' if largest > TARGET_BYTES else ' '}"
        )
    edish = timings["eDISH"]
    p95, largest = percentile(edish["cold"] + edish["warm"], 95), max(edish["bytes"])
    print(f"(ms of server time; * = over the target: p95 {TARGET_MS:.0f} ms, {TARGET_BYTES:,} bytes per response; "
          f"CPU: the call's CPU time, which a busy machine does not inflate; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores)")  # fmt: skip
    print(
        f"target eDISH p95 < {TARGET_MS:.0f} ms and < {TARGET_BYTES:,} bytes: "
        f"{'met' if p95 < TARGET_MS and largest < TARGET_BYTES else 'NOT met'} ({p95:.1f} ms, {largest:,} bytes)"
    )


def _resident_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS), its peak (VmHWM) or its own part (RssAnon) in MB, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _kept_mb(lab) -> float:
    frames = (lab.tests, lab.table, lab.shifts, lab.hys_law, lab.worst, lab.records)
    arrays = (lab.subject_ids, lab.subject_groups, lab.worst_start, lab.record_start)
    return (sum(f.memory_usage(deep=True).sum() for f in frames) + sum(a.nbytes for a in arrays)) / 2**20


def _time(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
