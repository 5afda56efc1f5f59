"""Load test: signed-in monitors walking the dashboard at once, against gunicorn workers, while a new cut arrives.

    .venv/bin/python bench/load.py                     # 20,000 subjects, 1,000,000 AEs, 4 workers, 50 sessions, 5 min
    .venv/bin/python bench/load.py --subjects 2000 --events 100000 --sessions 10 --seconds 60 --database sqlite
    .venv/bin/python bench/load.py ... --ingest-during # a new cut of the study is ingested during the load

Command line (a contract for scripts): ``bench/load.py [--subjects N] [--events N] [--workers N] [--sessions N]
[--seconds S] [--database sqlite|postgresql] [--ingest-during]``; its last line is exactly
``load: <requests> requests, <errors> errors, p95 <ms> ms, cold first page <s> s, peak worker RSS <MB> MB`` and
it exits 1 when any request failed.

It builds the demo study at ``--subjects`` through the real ingestion (``python -m safety_dash ingest``, three cuts;
the third grown to ``--events`` AE records, a third of the copies under variant PT names, about a thousand PTs),
in a fresh SQLite file or PostgreSQL schema (``--postgres URL``, default SAFETY_DASH_TEST_POSTGRES_URL), dropped at
the end. It serves ``app:server`` with gunicorn and ``deploy/gunicorn.conf.py`` on 127.0.0.1 only, and when the
workers answer ``/healthz`` times one signed-in overview (**cold first page**: the workers are still reading the cut).
Then each session signs in once and walks a monitor's path until the time is up: overview (a full page load:
HTML, layout, callback map) -> explorer -> a term (SOC and PT) -> its listing -> a subject with that term ->
signals, each step posting the callbacks the browser posts (the page frame, the filter bar, the navigation links and
the page's own), up to six at a time as a browser does, then reads for ``--think`` seconds (default 3, drawn
between half and one and a half times that) before the next step. With ``--ingest-during`` a
new cut (changed outcomes and grades, new records, a later cutoff) is ingested by the command line once a tenth of
the time has passed, and requests are counted during the ingestion and after it apart (the new cut is read by each
worker on its first request for it).

Printed: per request kind and per step of the path the p50 / p95 / p99 in ms, errors (a status other than 200 / 204
/ the sign-in's 302, a request that failed, or a view showing "could not be computed"), and the workers' peak
resident memory (VmHWM). Targets (issue 14): p95 under 500 ms with no error, during the ingestion too; a cold
first page under 3 s; under 500 MB per worker. The client runs on the same machine as the workers and the database.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from safety_dash.web import ids  # noqa: E402
from safety_dash.web.state import ViewState, state_to_search  # noqa: E402

PASSWORD = "load-test-password"
TARGET_P95_MS, TARGET_FIRST_PAGE_S, TARGET_RSS_MB = 500.0, 3.0, 500.0
ROWS = {"startRow": 0, "endRow": 50, "sortModel": [], "filterModel": {}}
SIGNAL_ROWS = {"startRow": 0, "endRow": 12, "sortModel": [], "filterModel": {}}  # the signals grid pages by 12
SHOWN_ERROR = b"could not be computed"  # what a view shows when its callback failed (web.components.error_message)
BROWSER_CONNECTIONS = 6
POSTGRES_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SAMPLE_EVENTS = "SELECT soc, pt, usubjid FROM derived_events WHERE run_id = :r AND pt <> '' ORDER BY random() LIMIT 500"


def say(message: str) -> None:
    print(message, flush=True)


# --- the study -----------------------------------------------------------------------------------------------------


def open_database(kind: str, workdir: Path, postgres: str):
    """A new database: (url, drop) for a SQLite file in ``workdir`` or a schema of its own on PostgreSQL."""
    from sqlalchemy import create_engine, text

    if kind == "sqlite":
        return f"sqlite:///{workdir / 'load.db'}", lambda: None
    schema = f"load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return f"{postgres}{'&' if '?' in postgres else '?'}options=-csearch_path%3D{schema}", drop


def write_grown_extract(source: Path, target: Path, n_events: int, edit_seed: int | None = None) -> int:
    """``source`` (a demo cut) as a new extract whose AE holds ``n_events`` records: copies of the cut's AEs under
    new AESEQ (every third copy with a variant PT). With ``edit_seed``, the next cut of that extract: 1 % of the
    ongoing events resolved, 0.5 % of grade 1 events now grade 2, 0.5 % new records, a later cutoff."""
    import numpy as np
    import pandas as pd
    import pyreadstat

    target.mkdir(parents=True, exist_ok=True)
    for name in ("dm.xpt", "ex.xpt", "cutoff.txt"):
        shutil.copyfile(source / name, target / name)
    ae = pyreadstat.read_xport(str(source / "ae.xpt"))[0]
    ae["AESEQ"] = ae["AESEQ"].astype(int)
    copies = [ae]
    for k in range(1, math.ceil(n_events / len(ae))):
        copy = ae.assign(AESEQ=ae["AESEQ"] + 1000 * k)
        if k % 3 == 0:
            variant = " (variant " + ((k * 7 + np.arange(len(ae))) % 29).astype(str) + ")"
            copy["AEDECOD"] = np.where(copy["AEDECOD"] != "", copy["AEDECOD"] + variant, "")
        copies.append(copy)
    grown = pd.concat(copies, ignore_index=True).head(max(n_events, len(ae)))
    if edit_seed is not None:
        rng = np.random.default_rng(edit_seed)
        ongoing = grown.index[(grown["AEENDTC"] == "") & (rng.random(len(grown)) < 0.01)]
        grown.loc[ongoing, ["AEENDTC", "AEOUT"]] = ["2023-06-15", "RECOVERED/RESOLVED"]
        worse = grown.index[(grown["AETOXGR"].astype(str) == "1") & (rng.random(len(grown)) < 0.005)]
        grown.loc[worse, ["AETOXGR", "AESEV"]] = ["2", "MODERATE"]
        new = grown.sample(frac=0.005, random_state=edit_seed).assign(AESEQ=lambda f: f["AESEQ"] + 500)
        grown = pd.concat([grown, new], ignore_index=True)
        (target / "cutoff.txt").write_text("2023-06-30\n", encoding="utf-8")
    grown.to_csv(target / "ae.csv", index=False)
    return len(grown)


# The command line's ingest for several folders in one process (a process start costs seconds of imports).
INGEST_FOLDERS = """import sys
from safety_dash.cli import main
for folder in sys.argv[1:]:
    if main(["ingest", folder, "--json"]) != 0:
        sys.exit(1)
"""


def ingest(folders: list[Path], env: dict[str, str]) -> list[dict]:
    """``python -m safety_dash ingest FOLDER --json`` for each folder in turn: their summaries."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", INGEST_FOLDERS, *map(str, folders)], cwd=ROOT, env=env,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"ingestion failed ({done.returncode}): {done.stdout[-800:]} {done.stderr[-800:]}")
    say(f"ingested {', '.join(f.name for f in folders)} in {time.perf_counter() - started:.1f} s")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def build_study(args, workdir: Path, env: dict[str, str]) -> tuple[str, int, list[tuple[str, str, str]]]:
    """The demo study ingested as three cuts, the third grown to ``--events``; (study, newest cut, samples of
    (SOC, PT, USUBJID) of its events), plus the next cut's extract when ``--ingest-during``."""
    from sqlalchemy import text

    from safety_dash.db.engine import get_engine
    from safety_dash.ingest.demo import write_demo_study
    from safety_dash.web.auth import create_user

    started = time.perf_counter()
    summary = write_demo_study(workdir / "demo", n_subjects=args.subjects)
    rows = write_grown_extract(workdir / "demo" / "cut3", workdir / "cut3", args.events)
    if args.ingest_during:
        write_grown_extract(workdir / "demo" / "cut3", workdir / "cut4", args.events, edit_seed=args.seed)
    say(f"wrote the study: {args.subjects:,} subjects, {rows:,} AE records in its third cut "
        f"({time.perf_counter() - started:.0f} s)")  # fmt: skip
    results = ingest([workdir / "demo" / "cut1", workdir / "demo" / "cut2", workdir / "cut3"], env)
    result = results[-1]
    say(f"newest cut: run {result['run_id']}, {result['domains']['ae']['loaded']:,} AE records")
    engine = get_engine(env["SAFETY_DASH_DATABASE_URL"])
    with engine.connect() as connection:
        samples = connection.execute(text(SAMPLE_EVENTS), {"r": result["run_id"]}).all()
    for number in range(args.sessions + 1):
        create_user(engine, f"load{number:03d}", PASSWORD, "monitor")
    engine.dispose()
    return summary["studyid"], result["run_id"], [tuple(row) for row in samples]


# --- the workers ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_workers(args, workdir: Path, env: dict[str, str], port: int) -> subprocess.Popen:
    """gunicorn with ``deploy/gunicorn.conf.py``, bound to 127.0.0.1 only."""
    command = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
               "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--threads", str(args.threads),
               "--access-logfile", str(workdir / "access.log"), "--error-logfile", str(workdir / "gunicorn.log"),
               "app:server"]  # fmt: skip
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip


def stop_workers(master: subprocess.Popen) -> None:
    if master.poll() is None:
        master.send_signal(signal.SIGTERM)
        try:
            master.wait(timeout=60)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()


class WorkerMemory(threading.Thread):
    """Samples the resident memory of the master's children (the workers) twice a second; keeps each one's peak."""

    def __init__(self, master_pid: int) -> None:
        super().__init__(daemon=True)
        self.master_pid, self.peak_kb, self.stopped = master_pid, {}, threading.Event()

    def workers(self) -> list[int]:
        pid = self.master_pid
        try:
            return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def sample(self) -> None:
        for pid in self.workers():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for key in ("VmHWM", "VmRSS"):
                found = re.search(rf"^{key}:\s+(\d+) kB", status, re.MULTILINE)
                if found:
                    self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), int(found.group(1)))

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            self.sample()

    def peak_mb(self) -> float:
        return max(self.peak_kb.values(), default=0) / 1024


# --- the sessions --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Sample:
    """One request (or one whole step of the path, or the cold first page): when, how long, and what went wrong."""

    kind: str
    started: float
    ms: float
    error: str | None = None


class Run:
    """What every session shares: the clock, the end of the run, the ingestion's window, and the samples."""

    def __init__(self, seconds: float) -> None:
        self.t0 = time.perf_counter()
        self.until = self.t0 + seconds
        self.requests: list[Sample] = []
        self.steps: list[Sample] = []
        self.ingest_window: tuple[float, float | None] | None = None
        self.ingest_result: str = ""

    def going(self) -> bool:
        ingesting = self.ingest_window is not None and self.ingest_window[1] is None
        return time.perf_counter() < self.until or ingesting


class Session:
    """One signed-in browser: its cookie, the app's layout ids and callback map, up to six requests at a time."""

    def __init__(self, base: str, user: str, run: Run, samples: list[Sample]) -> None:
        import httpx

        # An idle connection is dropped before gunicorn's keepalive (5 s) closes it under a request being sent.
        limits = httpx.Limits(max_connections=BROWSER_CONNECTIONS, max_keepalive_connections=BROWSER_CONNECTIONS,
                              keepalive_expiry=2.0)  # fmt: skip
        self.client = httpx.AsyncClient(base_url=base, timeout=180.0, limits=limits)
        self.user, self.run, self.samples = user, run, samples
        self.mine: list[Sample] = []  # this session's requests (a step's errors are its own)
        self.callbacks: dict[str, tuple[str, dict]] = {}
        self.layout_ids: list = []

    async def request(self, kind: str, method: str, path: str, ok=(200,), **options):
        import httpx

        started = time.perf_counter()
        try:
            response = await self.client.request(method, path, **options)
        except httpx.HTTPError as error:
            sent = f" (request body {len(json.dumps(options['json'])):,} bytes)" if "json" in options else ""
            self.record(Sample(kind, started, (time.perf_counter() - started) * 1000, repr(error)[:200] + sent))
            return None
        error = None
        if response.status_code not in ok:
            error = f"HTTP {response.status_code}: {response.text[:160]!r}"
        elif SHOWN_ERROR in response.content:
            error = "the view shows an error: " + response.text[:160]
        self.record(Sample(kind, started, (time.perf_counter() - started) * 1000, error))
        return None if error else response

    def record(self, sample: Sample) -> None:
        self.samples.append(sample)
        self.mine.append(sample)

    async def sign_in(self) -> bool:
        form = await self.request("sign-in form", "GET", "/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text) if form is not None else None
        if token is None:
            return False
        data = {"username": self.user, "password": PASSWORD, "csrf_token": token.group(1)}
        return await self.request("sign-in", "POST", "/login", ok=(302,), data=data) is not None

    async def open_app(self, path: str) -> None:
        """A full page load: the HTML, the layout (ids of the frame) and the callback map."""
        await self.request("page html", "GET", path)
        layout = await self.request("dash layout", "GET", "/_dash-layout")
        dependencies = await self.request("dash dependencies", "GET", "/_dash-dependencies")
        if layout is not None:
            self.layout_ids = list(walk_ids(layout.json()))
        for spec in dependencies.json() if dependencies is not None else []:
            if "clientside_function" in spec and spec["clientside_function"]:
                continue
            for part in split_outputs(spec["output"]):
                self.callbacks.setdefault(part, (spec["output"], spec))

    async def callback(self, kind: str, output: str, inputs: dict, state: dict | None = None) -> dict:
        """POST the callback with ``output`` as the browser does; its outputs by component id ({} on failure)."""
        if output not in self.callbacks:
            self.record(Sample(kind, time.perf_counter(), 0.0, f"no callback has the output {output}"))
            return {}
        key, spec = self.callbacks[output]
        body = {
            "output": key,
            "outputs": [self.output_spec(part) for part in split_outputs(key)],
            "inputs": [dict(i, value=inputs.get(f"{i['id']}.{i['property']}")) for i in spec["inputs"]],
            "state": [dict(s, value=(state or {}).get(f"{s['id']}.{s['property']}")) for s in spec.get("state", [])],
            "changedPropIds": list(inputs),
        }
        if not key.startswith(".."):
            body["outputs"] = body["outputs"][0]
        response = await self.request(kind, "POST", "/_dash-update-component", ok=(200, 204), json=body)
        if response is None or response.status_code == 204:
            return {}
        return response.json().get("response", {})

    def output_spec(self, part: str):
        """{'id', 'property'} of an output, or the list of them for a wildcard id ({"page": ["ALL"], ...})."""
        component, _, prop = part.rpartition(".")
        if not component.startswith("{"):
            return {"id": component, "property": prop}
        pattern = json.loads(component)
        matches = [i for i in self.layout_ids if isinstance(i, dict) and i.keys() == pattern.keys()
                   and all(v == ["ALL"] or i[k] == v for k, v in pattern.items())]  # fmt: skip
        return [{"id": i, "property": prop} for i in matches]

    async def step(self, name: str, pathname: str, state: ViewState, new_page: bool, full_load: bool = False):
        """One step of the path: what the browser asks when the address becomes ``pathname`` + ``state``."""
        search = state_to_search(state)
        started, first = time.perf_counter(), len(self.mine)
        if full_load:
            await self.open_app(pathname + search)
        if new_page or full_load:
            await self.callback("page frame", f"{ids.PAGE_CONTENT}.children", {"url.pathname": pathname})
        url = {"url.search": search}
        calls = [
            ("filter bar", f"{ids.FILTER_CUT}.value", url, None),
            ("nav links", f"{ids.SHARE_HREF}.data", {"url.pathname": pathname, "url.search": search}, None),
            *page_callbacks(name, search),
        ]
        answers = await asyncio.gather(*(self.callback(*call) for call in calls))
        if name == "signals":  # the forest follows the grid: its first page, in the order of its request
            rows = next((a[ids.SIGNALS_GRID].get("getRowsResponse") for a in answers if ids.SIGNALS_GRID in a), None)
            count = (rows or {}).get("rowCount") or 0
            size = SIGNAL_ROWS["endRow"]
            pages = {"currentPage": 0, "pageSize": size, "totalPages": -(-count // size), "rowCount": count,
                     "isLastPageFound": True}  # fmt: skip
            shown = {f"{ids.SIGNALS_GRID}.paginationInfo": pages, f"{ids.SIGNALS_GRID}.getRowsRequest": SIGNAL_ROWS}
            await self.callback("signals forest", f"{ids.SIGNALS_FOREST}.figure", shown | url)
        errors = [s.error for s in self.mine[first:] if s.error]
        return Sample(name, started, (time.perf_counter() - started) * 1000, errors[0] if errors else None)

    async def walk(self, study: str, samples: list[tuple[str, str, str]], think: float, rng: random.Random) -> None:
        """The monitor's path, again and again until the run ends."""
        while self.run.going():
            soc, pt, subject = rng.choice(samples)
            overview = ViewState(study=study)
            term = dataclasses.replace(overview, soc=soc, pt=pt)
            path = [("overview", "/", overview, True, True), ("explorer", "/explorer", overview, True, False),
                    ("term", "/explorer", term, False, False), ("listing", "/listings", term, True, False),
                    ("subject", "/subject", dataclasses.replace(term, subject=subject), True, False),
                    ("signals", "/signals", overview, True, False)]  # fmt: skip
            for name, pathname, state, new_page, full_load in path:
                if not self.run.going():
                    return
                self.run.steps.append(await self.step(name, pathname, state, new_page, full_load))
                await asyncio.sleep(think * rng.uniform(0.5, 1.5))


def split_outputs(key: str) -> list[str]:
    """'id.property' of each output of a callback-map key (``..a.x...b.y..`` or ``a.x@hash``)."""
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    return [part.split("@")[0] for part in parts]


def walk_ids(node):
    """Every component id in a layout (Dash's JSON)."""
    if isinstance(node, dict):
        if "props" in node and "id" in node["props"]:
            yield node["props"]["id"]
        for value in node.values():
            yield from walk_ids(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_ids(value)


def page_callbacks(name: str, search: str) -> list[tuple]:
    """The page's own callbacks for a step: (kind, output, inputs, state)."""
    url = {"url.search": search}

    def grid(kind: str, grid_id: str, request: dict = ROWS) -> tuple:
        return kind, f"{grid_id}.getRowsResponse", {f"{grid_id}.getRowsRequest": request}, url

    charts = ("explorer charts", f"{ids.EXPLORER_SOC_GRAPH}.figure", url, None)
    explorer = [charts, grid("explorer grid", ids.EXPLORER_GRID)]
    picker = {f"{ids.SUBJECT_PICKER}.search_value": None} | url
    return {
        "overview": [("overview cards", f"{ids.OVERVIEW_CARDS}.children", url, None),
                     ("overview signals", f"{ids.OVERVIEW_SIGNALS}.children", url, None)],
        "explorer": explorer,
        "term": [*explorer, ("term onset", f"{ids.EXPLORER_TERM_ONSET}.figure", url, None),
                 grid("term listing", ids.EXPLORER_TERM_LISTING)],
        "listing": [("listing count", f"{ids.LISTING_COUNT}.children", url, None),
                    grid("listing page", ids.LISTING_GRID)],
        "subject": [("subject profile", f"{ids.SUBJECT_TIMELINE}.figure", url, None),
                    ("subject picker", f"{ids.SUBJECT_PICKER}.options", picker, None)],
        "signals": [("signals summary", f"{ids.SIGNALS_COUNT}.children", url, None),
                    grid("signals table", ids.SIGNALS_GRID, SIGNAL_ROWS)],
    }[name]  # fmt: skip


# --- the run -------------------------------------------------------------------------------------------------------


async def wait_until_serving(base: str, master: subprocess.Popen, limit: float = 600.0) -> float:
    import httpx

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=5.0) as client:
        while time.perf_counter() - started < limit:
            if master.poll() is not None:
                raise SystemExit(f"gunicorn stopped (exit {master.returncode}); see its log")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"the workers did not answer /healthz within {limit:.0f} s")


async def ingest_during(run: Run, folder: Path, env: dict[str, str], after: float) -> None:
    """Ingest ``folder`` with the command line once ``after`` seconds of the load have passed."""
    await asyncio.sleep(after)
    started = time.perf_counter()
    run.ingest_window = (started, None)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "safety_dash", "ingest", str(folder), "--json", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    stdout, stderr = await process.communicate()
    ended = time.perf_counter()
    run.ingest_window = (started, ended)
    # The workers read the new cut on their first request for it: keep the load on a while after the commit.
    run.until = max(run.until, ended + min(15.0, (run.until - run.t0) / 4))
    try:
        outcome = json.loads(stdout)["status"]
    except (ValueError, KeyError):
        outcome = f"no summary: {stderr.decode()[-300:]}"
    run.ingest_result = f"exit {process.returncode}, {outcome}, {ended - started:.1f} s"


async def load(args, base: str, study: str, samples, env: dict[str, str], workdir: Path) -> tuple[Run, Sample]:
    """The cold first page, then the sessions (and the ingestion) until the time is up."""
    cold_samples: list[Sample] = []
    probe_run = Run(0)
    probe = Session(base, "load000", probe_run, cold_samples)
    if not await probe.sign_in():
        raise SystemExit(f"the first sign-in failed: {cold_samples[-1].error}")
    cold = await probe.step("overview", "/", ViewState(study=study), True, full_load=True)
    await probe.client.aclose()
    say(f"cold first page (overview, signed in, workers still reading the cut): {cold.ms / 1000:.2f} s"
        + (f"; error: {cold.error}" if cold.error else ""))  # fmt: skip

    run = Run(args.seconds)
    sessions = [Session(base, f"load{n:03d}", run, run.requests) for n in range(1, args.sessions + 1)]
    signed_in = await asyncio.gather(*(s.sign_in() for s in sessions))
    say(f"{sum(signed_in)} of {len(sessions)} sessions signed in; walking the path for {args.seconds:.0f} s")
    tasks = [asyncio.create_task(s.walk(study, samples, args.think, random.Random(args.seed + n)))
             for n, s in enumerate(sessions) if signed_in[n]]  # fmt: skip
    if args.ingest_during:
        tasks.append(asyncio.create_task(ingest_during(run, workdir / "cut4", env, max(2.0, args.seconds / 10))))
    await asyncio.gather(*tasks)
    await asyncio.gather(*(s.client.aclose() for s in sessions))
    return run, cold


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else float("nan")


def print_figures(rows: list[Sample], title: str) -> None:
    say(f"\n{title:28} {'count':>7} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for kind in dict.fromkeys(r.kind for r in rows):
        mine = [r for r in rows if r.kind == kind]
        times = [r.ms for r in mine]
        errors = sum(1 for r in mine if r.error)
        say(f"{kind:28} {len(mine):7,} {errors:7,} {percentile(times, 50):8.0f} {percentile(times, 95):8.0f} "
            f"{percentile(times, 99):8.0f} {max(times):8.0f}")  # fmt: skip


def report(run: Run, cold: Sample, peak_mb: float, args) -> int:
    """Print the figures and the last line; the number of failed requests."""
    requests = run.requests
    print_figures(requests, "request kind")
    print_figures(run.steps, "step of the path (whole)")
    if run.ingest_window is not None:
        start, end = run.ingest_window[0], run.ingest_window[1] or time.perf_counter()
        for label, chosen in (("before the ingestion", [r for r in requests if r.started < start]),
                              ("during the ingestion", [r for r in requests if start <= r.started < end]),
                              ("after the new cut", [r for r in requests if r.started >= end])):  # fmt: skip
            times = [r.ms for r in chosen]
            say(f"{label:28} {len(chosen):7,} requests, {sum(1 for r in chosen if r.error)} errors, "
                f"p95 {percentile(times, 95):.0f} ms, p99 {percentile(times, 99):.0f} ms")  # fmt: skip
        say(f"ingestion of the new cut during the load: {run.ingest_result or 'did not finish'}")
    failed = [r for r in requests if r.error]
    for sample in failed[:5]:
        say(f"error: {sample.kind} at {sample.started - run.t0:.1f} s: {sample.error}")
    seconds = max((r.started + r.ms / 1000 for r in requests), default=run.t0) - run.t0
    p95 = percentile([r.ms for r in requests], 95)
    say(f"\n{len(requests):,} requests in {seconds:.0f} s ({len(requests) / max(seconds, 1e-9):.0f} per second), "
        f"{args.sessions} sessions, think time {args.think:g} s (x 0.5-1.5) between steps; targets: p95 < "
        f"{TARGET_P95_MS:.0f} ms with no error, cold first page < {TARGET_FIRST_PAGE_S:.0f} s, "
        f"< {TARGET_RSS_MB:.0f} MB per worker")  # fmt: skip
    errors = len(failed) + (1 if cold.error else 0)
    print(f"load: {len(requests)} requests, {errors} errors, p95 {p95:.0f} ms, cold first page {cold.ms / 1000:.1f} s, "
          f"peak worker RSS {peak_mb:.0f} MB", flush=True)  # fmt: skip
    return errors


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000, help="AE records in the newest cut")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--sessions", type=int, default=50, help="signed-in monitors at once")
    parser.add_argument("--seconds", type=float, default=300.0, help="how long the sessions walk")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--postgres", default=os.environ.get("SAFETY_DASH_TEST_POSTGRES_URL", POSTGRES_DEFAULT))
    parser.add_argument("--ingest-during", action="store_true", help="ingest a new cut while the sessions walk")
    parser.add_argument("--think", type=float, default=3.0, help="seconds a monitor looks at a step (mean)")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--workdir", type=Path, help="default: a new folder under bench/out/")
    args = parser.parse_args(argv)
    for name in ("subjects", "events", "workers", "threads", "sessions", "seconds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be above 0, not {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Build the study, serve it, walk it; print the figures. Exit 1 when any request failed."""
    args = parse_arguments(argv)
    workdir = args.workdir or ROOT / "bench" / "out" / f"load-{args.database}-{uuid.uuid4().hex[:6]}"
    workdir.mkdir(parents=True, exist_ok=True)
    url, drop = open_database(args.database, workdir, args.postgres)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFETY_DASH_")}
    env |= {"SAFETY_DASH_DATABASE_URL": url, "SAFETY_DASH_DATA_DIR": str(workdir / "data"),
            "SAFETY_DASH_SECRET_KEY": uuid.uuid4().hex, "SAFETY_DASH_BASE_URL": f"http://127.0.0.1:{port}"}  # fmt: skip
    master, failed = None, True
    try:
        study, _cut, samples = build_study(args, workdir, env)
        master = start_workers(args, workdir, env, port)
        memory = WorkerMemory(master.pid)
        memory.start()
        base = f"http://127.0.0.1:{port}"
        serving = asyncio.run(wait_until_serving(base, master))
        say(f"{args.workers} workers x {args.threads} threads ({args.database}) answer /healthz after {serving:.1f} s")
        run, cold = asyncio.run(load(args, base, study, samples, env, workdir))
        memory.sample()
        memory.stopped.set()
        restarted = len(memory.peak_kb) - args.workers
        if restarted > 0:
            say(f"warning: {restarted} workers were restarted during the run (see {workdir / 'gunicorn.log'})")
        failed = report(run, cold, memory.peak_mb(), args) > 0
        return 1 if failed else 0
    finally:
        if master is not None:
            stop_workers(master)
        drop()
        if args.workdir is None and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
        elif failed:  # on stderr: the last line of standard output stays the figures
            print(f"the workers' log and the extracts are kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
