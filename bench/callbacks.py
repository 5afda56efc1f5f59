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

A cold worker (issue 14): ``--cold-workers N`` starts N fresh server processes one after the other, each as a
gunicorn worker starts (the app created, no cut read, no warm-up), and times in Chromium the first page of each until
fully drawn, then reads the worker's memory from ``/proc``: RSS, peak RSS (VmHWM), PSS (its share of pages it
shares with other processes, e.g. a memory-mapped read model in the page cache) and private memory (what it alone
holds). It then opens the other pages in that worker and reads its memory again. The workers stay up until the last
one is measured, so the PSS of each shows what they share.

Targets (issue 4): p95 under 150 ms, under 300 KB per response, first page under 3 s; (issue 14): first page of a
cold worker under 3 s, peak RSS per worker under 500 MB. Figures are printed, not asserted: this is a benchmark,
not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import os
import shutil
import subprocess
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
TARGET_MS, TARGET_BYTES, TARGET_FIRST_PAGE_S, TARGET_WORKER_MB = 150.0, 300_000, 3.0, 500.0
SECRET = "bench-secret"
OTHER_PAGES = ("/explorer", "/listings", "/rates", "/onset", "/signals", "/subject")
AE_COLUMNS = (
    "study_id, record_key, usubjid, content_hash, change, valid_from_run, valid_to_run, source_row, extra, aeseq, "
    "aespid, aeterm, aedecod, aebodsys, aetoxgr, aesev, aeser, aesdth, aeslife, aeshosp, aesdisab, aescong, aesmie, "
    "aerel, aeacn, aeout, aestdtc, aeendtc, aegrpid"
)
EVENT_COLUMNS = (
    "usubjid, soc, astdt, astdtf, astdy, trtemfl, window_label, after_cutoff, counted, after_death, event_id, grade, "
    "grade_source, serious, related, uncoded, record_change"
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
            # A copy is a record of its own: its episode is numbered by the copy's record ids.
            copied_events = EVENT_COLUMNS.replace("record_change", "'new'").replace("event_id", "event_id + :offset")
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


def prepare_read_models(url: str, rewrite_last: bool):
    """Write the read model of each cut where it is missing, and of the grown cut again when the database was just
    built (ingestion wrote it before the cut grew); print what the grown cut's costs: read from the database, write,
    size. Returns the newest cut's columns (for ``--compare-formats``)."""
    from safety_dash.web.data import resolve_state

    try:
        from safety_dash.readmodel import build_read_models, load_cut, read_model_root
        from safety_dash.readmodel.files import cut_folder, folder_megabytes, write_cut_files
        from safety_dash.readmodel.frames import read_cut_columns
    except ImportError:  # a version before the read model (for figures before and after)
        print("this version has no read model: every worker reads the cut from the database", flush=True)
        read_model = False
    else:
        read_model = True

    engine = get_engine(url)
    _, cut = resolve_state(engine, ViewState())
    if not read_model:
        return None
    started = time.perf_counter()
    columns = read_cut_columns(engine, cut.run_id)
    read_s = time.perf_counter() - started
    folder = cut_folder(read_model_root(), cut)
    if rewrite_last or not folder.is_dir():
        started = time.perf_counter()
        folder = write_cut_files(read_model_root(), cut, columns, replace=True)
        print(f"read model of cut {cut.run_id} ({len(columns.numbers['AE_ID']):,} AE records): read from the database "
              f"in {read_s:.1f} s, files written in {time.perf_counter() - started:.1f} s, "
              f"{folder_megabytes(folder):.0f} MB in {folder}", flush=True)  # fmt: skip
    for result in build_read_models(engine):
        if result.status != "present":
            print(f"read model of cut {result.run_id}: {result.status} in {result.seconds:.1f} s", flush=True)
    return load_cut(engine, cut.run_id), columns


def compare_formats(cut_and_columns, folder: Path) -> None:
    """Write the cut's events as Arrow IPC (uncompressed, lz4, zstd) and Parquet; print per format the size, the
    time to write, the time to open it and build the pages' frames, and the memory Arrow allocated for that (what
    each worker holds of its own: next to nothing when the file is read in place)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from safety_dash.readmodel.files import columns_from_tables, events_table, subjects_table
    from safety_dash.readmodel.frames import assemble_frames

    cut, columns = cut_and_columns
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    meta = {"format": 1, "study_id": cut.study_id, "run_id": cut.run_id, "derived_at": cut.derived_at}
    table, subjects = events_table(columns, meta), subjects_table(columns.subjects, meta)
    print("\nformats of the cut's events (open: read the file and build the frames; memory: allocated by Arrow)")
    for name, compression in (("Arrow IPC", None), ("Arrow IPC lz4", "lz4"), ("Arrow IPC zstd", "zstd"),
                              ("Parquet snappy", "parquet")):  # fmt: skip
        target = folder / (
            f"events-{compression}.parquet" if compression == "parquet" else f"events-{compression}.arrow"
        )
        started = time.perf_counter()
        if compression == "parquet":
            pq.write_table(table, str(target), row_group_size=table.num_rows)
        else:
            options = pa.ipc.IpcWriteOptions(compression=compression)
            with pa.OSFile(str(target), "wb") as sink, pa.ipc.new_file(sink, table.schema, options=options) as writer:
                writer.write_table(table, max_chunksize=table.num_rows)
        written = time.perf_counter() - started
        before = pa.total_allocated_bytes()
        started = time.perf_counter()
        if compression == "parquet":
            loaded = pq.read_table(str(target))
        else:
            with pa.memory_map(str(target), "r") as source:
                loaded = pa.ipc.open_file(source).read_all()
        frames = assemble_frames(cut, columns_from_tables(subjects, loaded), "file")
        opened = time.perf_counter() - started
        held = (pa.total_allocated_bytes() - before) / 1e6
        print(f"  {name:15} {target.stat().st_size / 1e6:6.0f} MB   write {written:5.2f} s   open {opened:5.2f} s   "
              f"memory {held:5.0f} MB   ({len(frames.events):,} events)")  # fmt: skip
        del frames, loaded
    shutil.rmtree(folder)


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


@contextlib.contextmanager
def chromium():
    """A headless Chromium driven by Selenium, closed on leaving."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options

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
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver, base: str) -> None:
    """Sign the browser in at ``base`` as the benchmark's user."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(base + "/login")
    driver.find_element(By.ID, "username").send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    WebDriverWait(driver, 60).until(lambda d: d.find_elements(By.ID, ids.PAGE_CONTENT))


def open_overview(driver, url: str) -> float:
    """Open the overview at ``url`` and wait until it is fully drawn (cards, cohort chart, no component loading);
    seconds from the start of the navigation."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 300, poll_frequency=0.02).until(
        lambda d: d.execute_script(
            "return document.querySelectorAll('#overview-cards .card').length === 8"
            " && document.querySelector('#overview-cohort-graph .main-svg .barlayer .trace') !== null"
            " && document.querySelector('[data-dash-is-loading=\"true\"]') === null"
        )
    )
    return driver.execute_script("return performance.now()") / 1000


def open_page(driver, url: str) -> float:
    """Open any page at ``url`` and wait until no component has been loading for 0.3 s; seconds from the start of
    the navigation to the last moment something was loading."""
    driver.get(url)
    time.sleep(0.3)
    quiet_since = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        busy, now = driver.execute_script(
            "return [document.querySelector('[data-dash-is-loading=\"true\"]') !== null, performance.now()]"
        )
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since > 300:
            return quiet_since / 1000
        time.sleep(0.02)
    raise SystemExit(f"{url} still loading after 300 s")


def time_first_page(app, url_path: str, runs: int = 3) -> list[float]:
    """Serve the app on a free port and time, in headless Chromium, navigation to the overview until it is fully
    drawn (cards, cohort chart, no component loading); the first run finds the server's caches cold."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with chromium() as driver:
            sign_in(driver, base)
            return [open_overview(driver, base + url_path) for _ in range(runs)]
    finally:
        server.shutdown()


# --- a cold worker in its own process ------------------------------------------------------------------------


def read_memory(pid: int) -> dict[str, float]:
    """Memory of process ``pid`` in MB from /proc (Linux): rss, peak (VmHWM: the most it ever held), pss (its
    proportional share of shared pages) and private (pages no other process maps)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()

    def field(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
        return math.nan

    return {
        "rss": field(status, "VmRSS"),
        "peak": field(status, "VmHWM"),
        "pss": field(rollup, "Pss"),
        "private": field(rollup, "Private_Clean") + field(rollup, "Private_Dirty"),
    }


def serve_worker(url: str, port_file: Path) -> None:
    """Run one web worker (as gunicorn would: the app created, nothing read yet, no warm-up) on a free port, and
    write the port to ``port_file``. Runs until killed."""
    import logging

    from werkzeug.serving import make_server

    from safety_dash.web.app import create_app

    logging.basicConfig(level=logging.INFO, format="worker %(process)d %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    settings = dataclasses.replace(load_settings(), database_url=url, secret_key=SECRET, session_minutes=60.0)
    app = create_app(settings)
    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    port_file.write_text(str(server.server_port))
    server.serve_forever()


FIRST_PAGE_OUTPUTS = (  # the overview's callbacks, in the order the browser fires them
    f"{ids.FILTER_CUT}.value",
    f"{ids.OVERVIEW_CARDS}.children",
    f"{ids.OVERVIEW_SIGNALS}.children",
    f"{getattr(ids, 'OVERVIEW_REVIEW', '')}.children",
)


def probe_worker(url: str, search: str) -> None:
    """In a fresh process (as a worker starts): sign in, then call each first-page callback once, in order; print
    per callback the server time and the process's memory after it, as one JSON line."""
    import json

    from safety_dash.web.app import create_app

    settings = dataclasses.replace(load_settings(), database_url=url, secret_key=SECRET, session_minutes=60.0)
    app = create_app(settings)
    client = app.server.test_client()
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf_token"]
    client.post("/login", data={"username": USER, "password": PASSWORD, "csrf_token": token})
    steps = [{"callback": "(started)", "ms": 0.0, **read_memory(os.getpid())}]
    for output in FIRST_PAGE_OUTPUTS:
        if output.startswith("."):
            continue  # a callback this version does not have
        answer = call_callback(client, app, output, {"url.search": search}, {})
        steps.append({"callback": output, "ms": answer.seconds * 1000, "status": answer.status,
                      **read_memory(os.getpid())})  # fmt: skip
    print(json.dumps(steps))


def time_first_page_callbacks(url: str, search: str) -> None:
    """Run :func:`probe_worker` in a fresh process and print its figures."""
    import json

    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--probe-worker", search, "--url", url],
        capture_output=True, text=True, check=True, env=os.environ.copy(),
    )  # fmt: skip
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    print("\nfirst page's callbacks in a fresh worker process (server time; memory in MB after each):")
    for step in steps:
        print(f"  {step['callback']:32} {step['ms']:9.0f} ms   RSS {step['rss']:6.0f}   peak {step['peak']:6.0f}   "
              f"private {step['private']:6.0f}")  # fmt: skip


def start_worker(url: str, workdir: Path, number: int) -> tuple[subprocess.Popen, str]:
    """A fresh worker process serving the database at ``url``; returns it and its base address."""
    port_file = workdir / f"worker-{number}.port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve-worker", str(port_file), "--url", url],
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 120
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"worker {number} did not start")
        time.sleep(0.1)
    return process, f"http://127.0.0.1:{port_file.read_text().strip()}"


def time_cold_workers(url: str, workdir: Path, search: str, n_workers: int) -> list[dict]:
    """Start ``n_workers`` fresh worker processes; in each, time the first page (the overview) in Chromium, read
    the worker's memory, open the other pages, read it again. Every worker stays up until all are measured."""
    workers, results = [], []
    try:
        with chromium() as driver:
            for number in range(n_workers):
                process, base = start_worker(url, workdir, number)
                workers.append(process)
                before = read_memory(process.pid)
                sign_in(driver, base)
                first = open_overview(driver, base + "/" + search)
                after_first = read_memory(process.pid)
                pages = {path: open_page(driver, base + path + search) for path in OTHER_PAGES}
                after_all = read_memory(process.pid)
                results.append({"first_page_s": first, "started": before, "after_first": after_first,
                                "pages_s": pages, "after_all": after_all})  # fmt: skip
            for result, process in zip(results, workers, strict=True):
                result["end"] = read_memory(process.pid)  # every worker up: PSS shows what they share
    finally:
        for process in workers:
            process.terminate()
            process.wait(timeout=30)
    return results


def print_cold_workers(results: list[dict]) -> None:
    """The cold-worker figures, one block per worker."""
    print("\ncold workers (a fresh process each; memory in MB from /proc):")
    for number, result in enumerate(results):
        first, started, after, whole, end = (result[k] for k in ("first_page_s", "started", "after_first",
                                                                  "after_all", "end"))  # fmt: skip
        mark = "*" if first > TARGET_FIRST_PAGE_S else " "
        peak_mark = "*" if whole["peak"] > TARGET_WORKER_MB else " "
        print(f"  worker {number}: first page {first:.2f} s{mark}; RSS at start {started['rss']:.0f}, "
              f"after the first page {after['rss']:.0f} (peak {after['peak']:.0f}, PSS {after['pss']:.0f}, "
              f"private {after['private']:.0f})")  # fmt: skip
        pages = ", ".join(f"{path} {seconds:.2f} s" for path, seconds in result["pages_s"].items())
        print(f"            other pages, first visit: {pages}")
        print(f"            after every page: RSS {whole['rss']:.0f}, peak {whole['peak']:.0f}{peak_mark}, "
              f"PSS {whole['pss']:.0f}, private {whole['private']:.0f}; with all {len(results)} workers up: "
              f"PSS {end['pss']:.0f}, private {end['private']:.0f}")  # fmt: skip
    print(f"(* = over the target: first page {TARGET_FIRST_PAGE_S:.0f} s, peak RSS {TARGET_WORKER_MB:.0f} MB)")


def main(argv: list[str] | None = None) -> int:
    """Build or reuse the database, then print the callback figures and the first-page time."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="calls per callback and view (the first is cold)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "callbacks")
    parser.add_argument("--reuse", action="store_true", help="use the database built by the last run")
    parser.add_argument("--no-browser", action="store_true", help="skip the first-page time in Chromium")
    parser.add_argument("--cold-workers", type=int, default=2, help="fresh worker processes to time (0: none)")
    parser.add_argument("--only-cold", action="store_true", help="time fresh workers only, not the callbacks")
    parser.add_argument("--compare-formats", action="store_true",
                        help="write the cut as Parquet and compressed Arrow too; time opening each")  # fmt: skip
    parser.add_argument("--serve-worker", type=Path, help=argparse.SUPPRESS)  # the child process of a cold worker
    parser.add_argument("--probe-worker", help=argparse.SUPPRESS)  # the child process of the callback probe
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_worker:
        serve_worker(args.url, args.serve_worker)
        return 0
    if args.probe_worker:
        probe_worker(args.url, args.probe_worker)
        return 0

    # The read model goes beside the benchmark's database; the cold workers inherit the setting.
    os.environ["SAFETY_DASH_DATA_DIR"] = str(args.workdir.resolve())
    url = f"sqlite:///{args.workdir / 'bench.db'}"
    built = not (args.reuse and (args.workdir / "bench.db").exists())
    if built:
        url = build_database(args.workdir, args.subjects, args.events)
    columns = prepare_read_models(url, rewrite_last=built)
    if args.compare_formats and columns is not None:
        compare_formats(columns, args.workdir / "formats")
    if args.only_cold:
        from safety_dash.web.data import resolve_state

        _, cut = resolve_state(get_engine(url), ViewState())
        search = state_to_search(ViewState(study=cut.study_id, cut=cut.run_id))
        time_first_page_callbacks(url, search)
        if args.cold_workers:
            print_cold_workers(time_cold_workers(url, args.workdir, search, args.cold_workers))
        return 0
    from safety_dash.web.app import create_app
    from safety_dash.web.data import load_cut_frames_for_views, load_frames, resolve_state

    settings = dataclasses.replace(load_settings(), database_url=url, secret_key=SECRET, session_minutes=60.0)
    app = create_app(settings)
    engine = get_engine(url)
    state, cut = resolve_state(engine, ViewState())

    started = time.perf_counter()
    subjects, events = load_cut_frames_for_views(engine, cut.run_id)
    load_seconds = time.perf_counter() - started
    source = getattr(load_frames(engine, cut), "source", "database")  # versions before the read model: the database
    print(f"cut {cut.run_id}: {len(subjects):,} subjects, {len(events):,} AE records; "
          f"opened once per worker in {load_seconds:.2f} s (from the {source})")  # fmt: skip

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
    time_first_page_callbacks(url, state_to_search(state))
    if args.cold_workers:
        search = state_to_search(state)
        print_cold_workers(time_cold_workers(url, args.workdir, search, args.cold_workers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
