"""One ingestion run: read -> validate -> load -> derive, recorded from start to end.

The run record is written before anything is read, in its own transaction, so even a run that fails on its
first file is on record. Loading and deriving share one transaction: the cut appears whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from safety_dash.db.engine import get_engine
from safety_dash.db.models import IngestionRun, Study, utcnow
from safety_dash.ingest.load import COUNT_NAMES, load_extract
from safety_dash.ingest.readers import FileProblem, SourceFile, find_domain_files, read_domain_file
from safety_dash.ingest.sdtm import empty_exposure, map_adam
from safety_dash.ingest.validate import validate_extract
from safety_dash.processes import current_host, is_dead_here

CUTOFF_FILE = "cutoff.txt"
EXIT_OK, EXIT_ERROR, EXIT_FILE_PROBLEM = 0, 1, 2


@dataclass
class RunResult:
    """What one ingestion run did, as printed by ``ingest`` (``--json`` prints :meth:`to_json`)."""

    run_id: int
    status: str
    message: str
    study_id: str | None = None
    cutoff: dt.date | None = None
    domains: dict[str, dict[str, int]] = field(default_factory=dict)
    exit_code: int = EXIT_OK
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per phase: read, validate, load, derive and commit

    def to_json(self) -> dict[str, Any]:
        """The run summary in the documented JSON shape; a failed run loaded nothing, so it reports zeros."""
        zeros = dict.fromkeys(COUNT_NAMES, 0)
        domains = {domain: self.domains.get(domain, zeros) for domain in ("dm", "ex", "ae")}
        return {"run_id": self.run_id, "status": self.status, "message": self.message, "domains": domains}


def current_worker() -> str:
    """``host:pid`` of this process, written on the runs it starts."""
    return f"{current_host()}:{os.getpid()}"


def ingest_extract(
    database_url: str,
    folder: Path,
    study_id: str | None = None,
    cutoff: dt.date | None = None,
    trigger: str = "cli",
) -> RunResult:
    """Ingest the extract in ``folder`` as a new data cut and return the run's summary."""
    engine = get_engine(database_url)
    with engine.begin() as connection:
        mark_interrupted_runs(connection)
        run_id = connection.execute(
            IngestionRun.__table__.insert()
            .values(source=str(folder), trigger=trigger, worker=current_worker(), status="running", started_at=utcnow())
            .returning(IngestionRun.__table__.c.id)
        ).scalar_one()
    try:
        result = _run(engine, run_id, folder, study_id, cutoff)
    except FileProblem as problem:
        result = RunResult(run_id, "failed", str(problem), study_id, cutoff, exit_code=EXIT_FILE_PROBLEM)
    except Exception as error:  # recorded on the run, then reported to the caller
        result = RunResult(run_id, "failed", f"{type(error).__name__}: {error}", study_id, cutoff, exit_code=EXIT_ERROR)
    if result.status == "failed":
        with engine.begin() as connection:
            _finish_run(connection, run_id, "failed", result.message)
    return result


def _run(engine, run_id: int, folder: Path, study_id: str | None, cutoff: dt.date | None) -> RunResult:
    clock = _PhaseClock()
    sources = read_extract(folder)
    checksums = {s.path.name: s.sha256 for s in sources.values()}
    study_id = determine_study(sources, study_id)
    cutoff = cutoff or read_cutoff_file(folder) or dt.datetime.now(dt.UTC).date()
    study = ensure_study(engine, study_id)
    with engine.begin() as connection:
        connection.execute(
            update(IngestionRun)
            .where(IngestionRun.id == run_id)
            .values(study_id=study_id, cutoff=cutoff, checksums=checksums)
        )
    clock.lap("read")
    extract = validate_extract(sources, study_id, tuple(study.ae_key_columns.split(",")))
    clock.lap("validate")
    with engine.begin() as connection:
        lock_study(connection, study_id)
        loaded = load_extract(connection, run_id, study_id, extract)
        counts = loaded.counts
        del sources  # the cut's records live on in loaded.frames; free the rest before deriving
        clock.lap("load")
        from safety_dash import analysis  # the analysis floor sits above ingestion

        analysis.derive_cut(connection, run_id, loaded.frames)
        del loaded
        message = summarise_counts(counts)
        connection.execute(
            update(IngestionRun).where(IngestionRun.id == run_id).values(counts=counts, derived_at=utcnow())
        )
        _finish_run(connection, run_id, "succeeded", message)
    clock.lap("derive and commit")
    quarantine = extract.quarantine.drop(columns=["raw"]).to_dict("records")
    result = RunResult(run_id, "succeeded", message, study_id, cutoff, counts, quarantine=quarantine)
    result.seconds = clock.laps
    return result


class _PhaseClock:
    """Seconds spent in each phase of a run (the benchmark prints them; logs may too)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.laps[phase] = now - self._last
        self._last = now


def read_extract(folder: Path) -> dict[str, SourceFile]:
    """Read the DM, EX and AE (or ADSL and ADAE) files of an extract folder."""
    files = find_domain_files(folder)
    sources: dict[str, SourceFile] = {}
    for name, path in files.items():
        source = read_domain_file(name, path)
        domain, source.frame = map_adam(name, source.frame)
        if domain in sources:
            raise FileProblem(path.name, f"both SDTM and ADaM files for {domain}; send one of them")
        source.domain = domain
        sources[domain] = source
    for domain in ("dm", "ae"):
        if domain not in sources:
            expected = f"{domain}.xpt, {domain}.sas7bdat or {domain}.csv" + (
                " (or adsl)" if domain == "dm" else " (or adae)"
            )
            raise FileProblem(str(folder), f"no {domain.upper()} file: expected {expected}")
    if "ex" not in sources:
        if "adsl" not in {p.stem.lower() for p in files.values()}:
            raise FileProblem(str(folder), "no EX file: expected ex.xpt, ex.sas7bdat or ex.csv")
        sources["ex"] = SourceFile("ex", folder / "ex (none: ADaM input)", empty_exposure(), "", "")
    return sources


def determine_study(sources: dict[str, SourceFile], study_id: str | None) -> str:
    """The study the extract belongs to: ``--study``, else the single STUDYID of DM."""
    if study_id:
        return study_id
    dm = sources["dm"].frame
    if "STUDYID" not in dm.columns:
        raise FileProblem(sources["dm"].path.name, "no STUDYID column; pass --study", column="STUDYID")
    studies = sorted(set(dm["STUDYID"]) - {""})
    if len(studies) != 1:
        raise FileProblem(
            sources["dm"].path.name,
            f"holds {len(studies)} studies ({', '.join(studies)}); pass --study",
            column="STUDYID",
        )
    return studies[0]


def read_cutoff_file(folder: Path) -> dt.date | None:
    """The cutoff date written in the extract's ``cutoff.txt``, if there is one."""
    path = folder / CUTOFF_FILE
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8").strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise FileProblem(path.name, f"{text!r} is not a date YYYY-MM-DD") from None


def ensure_study(engine, study_id: str) -> Study:
    """The study's row, created with the default settings on its first extract."""
    with engine.begin() as connection:
        row = connection.execute(select(Study.__table__).where(Study.study_id == study_id)).first()
        if row is None:
            try:
                with connection.begin_nested():
                    connection.execute(Study.__table__.insert().values(study_id=study_id))  # the model's defaults
            except IntegrityError:
                pass  # another process created it first
            row = connection.execute(select(Study.__table__).where(Study.study_id == study_id)).one()
    return Study(**row._mapping)


def lock_study(connection: Connection, study_id: str) -> None:
    """Serialise loads of one study: the first write of the transaction takes the study's lock."""
    connection.execute(update(Study).where(Study.study_id == study_id).values(last_load_at=utcnow()))


def mark_interrupted_runs(connection: Connection) -> None:
    """Mark runs left 'running' by a process of this host that no longer exists as failed."""
    host = current_host()
    rows = connection.execute(
        select(IngestionRun.id, IngestionRun.worker).where(
            IngestionRun.status == "running", IngestionRun.worker.like(f"{host}:%")
        )
    ).fetchall()
    for run_id, worker in rows:
        if is_dead_here(host, int(worker.rsplit(":", 1)[1])):
            _finish_run(connection, run_id, "failed", f"interrupted: process {worker} ended before the run finished")


def _finish_run(connection: Connection, run_id: int, status: str, message: str) -> None:
    connection.execute(
        update(IngestionRun)
        .where(IngestionRun.id == run_id)
        .values(status=status, message=message, finished_at=utcnow())
    )


def summarise_counts(counts: dict[str, dict[str, int]]) -> str:
    """One sentence on what a run loaded, for the run record and the summary's first line."""
    loaded = sum(c["loaded"] for c in counts.values())
    read = sum(c["read"] for c in counts.values())
    quarantined = sum(c["quarantined"] for c in counts.values())
    changes = {name: sum(c[name] for c in counts.values()) for name in COUNT_NAMES[3:]}
    if not changes["new"] and not changes["changed"] and not changes["removed"]:
        change_text = "no record changed since the previous cut"
    else:
        change_text = ", ".join(f"{v} {k}" for k, v in changes.items() if k != "unchanged") + " records"
    return f"loaded {loaded} of {read} rows, {quarantined} quarantined; {change_text}"
