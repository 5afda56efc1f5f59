"""One ingestion run: read -> validate -> load -> derive, recorded from start to end.

The run record is written before anything is read, in its own transaction, so even a run that fails on its
first file is on record. Loading and deriving share one transaction: the cut appears whole or not at all.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from safety_dash.audit import record_event
from safety_dash.db.bulk import bulk_insert_meanwhile
from safety_dash.db.engine import get_engine
from safety_dash.db.models import IngestionRun, Study, utcnow
from safety_dash.identifiers import IdentifierError, check_identifier
from safety_dash.ingest.load import COUNT_NAMES, load_extract
from safety_dash.ingest.readers import FileProblem, SourceFile, find_domain_files, read_domain_file
from safety_dash.ingest.sdtm import OPTIONAL_DOMAINS, empty_exposure, map_adam
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
    seconds: dict[str, float] = field(default_factory=dict)  # per phase (see _run's clock.lap calls)
    files: list[dict[str, Any]] = field(default_factory=list)  # what the run read: see :func:`describe_files`
    accepted_large_change: bool = False

    def to_json(self) -> dict[str, Any]:
        """The run summary in the documented JSON shape; a failed run loaded nothing, so it reports zeros."""
        zeros = dict.fromkeys(COUNT_NAMES, 0)
        domains = {domain: self.domains.get(domain, zeros) for domain in ("dm", "ex", "ae")}
        domains |= {domain: counts for domain, counts in self.domains.items() if domain in OPTIONAL_DOMAINS}
        return {
            "run_id": self.run_id,
            "status": self.status,
            "message": self.message,
            "domains": domains,
            "files": self.files,
        }


class LargeChange(FileProblem):
    """A run that would remove or quarantine more of a domain than the study allows; nothing is changed."""

    def __init__(self, findings: list[str]):
        Exception.__init__(
            self,
            "refused, nothing was changed: the run would " + "; ".join(findings)
            + ". Check the extract; if the change is real, run again with --accept-large-change",
        )  # fmt: skip


#: Called with the run id between validating and loading (tests use it to interleave two runs).
before_load_hook: Callable[[int], None] | None = None


def current_worker() -> str:
    """``host:pid`` of this process, written on the runs it starts."""
    return f"{current_host()}:{os.getpid()}"


def ingest_extract(
    database_url: str,
    folder: Path,
    study_id: str | None = None,
    cutoff: dt.date | None = None,
    trigger: str = "cli",
    accept_large_change: bool = False,
) -> RunResult:
    """Ingest the extract in ``folder`` as a new data cut and return the run's summary.

    A file-level problem (unreadable, truncated, another study's, a large change refused) fails the run with
    exit code 2; anything else that fails it (the database, say) with 1. Either way nothing of the extract is
    stored, and the run record says why.
    """
    engine = get_engine(database_url)
    with engine.begin() as connection:
        mark_interrupted_runs(connection)
        run_id = connection.execute(
            IngestionRun.__table__.insert()
            .values(source=str(folder), trigger=trigger, worker=current_worker(), status="running", started_at=utcnow())
            .returning(IngestionRun.__table__.c.id)
        ).scalar_one()
        record_event(connection, trigger, "ingestion_started", "ingestion_run", run_id,
                     after={"source": str(folder), "trigger": trigger, "worker": current_worker()})  # fmt: skip
    read: dict[str, Any] = {}  # what _run learnt before it failed: study, cutoff, files
    try:
        result = _run(engine, run_id, folder, study_id, cutoff, accept_large_change, read)
    except FileProblem as problem:
        result = RunResult(run_id, "failed", str(problem), exit_code=EXIT_FILE_PROBLEM, **read)
    except Exception as error:  # recorded on the run, then reported to the caller
        result = RunResult(run_id, "failed", f"{type(error).__name__}: {error}", exit_code=EXIT_ERROR, **read)
    if result.status == "failed":
        with engine.begin() as connection:
            _finish_run(connection, run_id, "failed", result.message)
    # In its own short transaction after the load's: the trail's writers never wait for a long load.
    with engine.begin() as connection:
        record_ingestion_finished(connection, trigger, result)
    return result


def record_ingestion_finished(connection: Connection, actor: str, result: RunResult) -> None:
    """The trail's record of a finished run (and of a large change accepted with ``--accept-large-change``)."""
    files = {item["path"]: item["sha256"] for item in result.files or []}
    after = {"status": result.status, "study_id": result.study_id, "cutoff": result.cutoff, "message": result.message,
             "files_sha256": files}  # fmt: skip
    record_event(connection, actor, "ingestion_finished", "ingestion_run", result.run_id, study_id=result.study_id,
                 after=after)  # fmt: skip
    if result.status == "succeeded" and result.accepted_large_change:
        record_event(connection, actor, "ingestion_large_change_accepted", "ingestion_run", result.run_id,
                     study_id=result.study_id, reason=result.message)  # fmt: skip


def _run(
    engine,
    run_id: int,
    folder: Path,
    study_id: str | None,
    cutoff: dt.date | None,
    accept_large_change: bool,
    read: dict[str, Any],
) -> RunResult:
    clock = _PhaseClock()
    read.update(study_id=study_id, cutoff=cutoff)
    sources = read_extract(folder)
    files = describe_files(sources)
    read["files"] = files
    study_id = determine_study(sources, study_id)
    cutoff = cutoff or read_cutoff_file(folder) or dt.datetime.now(dt.UTC).date()
    read.update(study_id=study_id, cutoff=cutoff)
    study = ensure_study(engine, study_id)
    with engine.begin() as connection:
        connection.execute(
            update(IngestionRun)
            .where(IngestionRun.id == run_id)
            .values(study_id=study_id, cutoff=cutoff, checksums=compute_checksums(sources), files=files)
        )
    clock.lap("read")
    key_columns = {"ae_key_columns": tuple(study.ae_key_columns.split(",")),
                   "lb_key_columns": tuple(study.lb_key_columns.split(","))}  # fmt: skip
    extract = validate_extract(sources, study_id, **key_columns)
    findings = find_large_quarantine(extract, study)
    if findings and not accept_large_change:
        raise LargeChange(findings)
    clock.lap("validate")
    if before_load_hook is not None:
        before_load_hook(run_id)
    from safety_dash import analysis, lab_values, signal_store  # the analysis floor sits above ingestion
    from safety_dash.readmodel import compute_new_cut_columns, remove_read_model_folder, save_read_model_of_new_cut
    from safety_dash.readmodel import labs as lab_model

    folder = lab_folder = None  # the cut's read model, written before the commit: removed when the commit fails
    try:
        with engine.begin() as connection:
            lock_study(connection, study_id)
            run_id = claim_cut_number(connection, run_id, study_id)
            loaded = load_extract(connection, run_id, study_id, extract)
            counts = loaded.counts
            findings += find_large_removal(loaded, study)
            if findings and not accept_large_change:
                raise LargeChange(findings)  # rolls the load back
            del sources  # the cut's records live on in loaded.frames; free the rest before deriving
            cut = analysis.load_cut_context(connection, run_id)
            # The new versions are written while the derivations are computed from the frames in hand (on
            # PostgreSQL the server's COPY runs on one core, this on the other).
            with bulk_insert_meanwhile(connection, loaded.versions):
                derived = analysis.compute_cut_derivations(cut, loaded.frames)
                clock.lap("load, derivations computed meanwhile")
                # The lab pages' read model, graded from the LB records in hand while their versions are written;
                # DM, EX and AE are derived, their frames let go first (the rows being written are apart).
                lb_kept = "lb" not in loaded.frames  # an extract without LB leaves the stored LB records as they were
                frames = {"lb": loaded.frames["lb"]} if not lb_kept else {}
                loaded.frames.clear()
                lab = None
                if frames:
                    lab = lab_model.compute_new_cut_lab(
                        functools.partial(_grade_loaded_lab_cut, cut, frames, derived.subject_rows)
                    )
                    clock.lap("lab values graded meanwhile")
            del loaded
            clock.lap("load written")
            if lb_kept:  # read back (they are the earlier cuts'), graded while the derivations are written
                lb_records = lab_model.compute_new_cut_lab(lambda: lab_values.load_cut_lab_records(connection, cut))
                clock.lap("lab records read")
            # The same for the derivations: meanwhile the web workers' columns of the cut (built once the load's
            # frames are let go: the peak memory stays under 2 GB) and its signals are computed.
            analysis.clear_cut_derivations(connection, cut)
            history = signal_store.read_signal_history(connection, cut)
            with bulk_insert_meanwhile(connection, analysis.derivation_writes(derived)):
                columns = compute_new_cut_columns(functools.partial(analysis.derived_read_model_columns, derived))
                signals = signal_store.compute_stored_signals(cut, derived.subjects, derived.events, history)
                if lb_kept and lb_records is not None:
                    lab = lab_model.compute_new_cut_lab(
                        functools.partial(_grade_lab_cut, cut, lb_records, derived.subject_rows)
                    )
                    del lb_records
            del derived
            signal_store.store_signal_tables(connection, cut, signals)
            message = summarise_counts(counts)
            if findings:
                message += "; accepted with --accept-large-change: the run would " + "; ".join(findings)
            connection.execute(
                update(IngestionRun)
                .where(IngestionRun.id == run_id)
                .values(counts=counts, derived_at=utcnow(), accepted_large_change=bool(findings))
            )
            _finish_run(connection, run_id, "succeeded", message)
            clock.lap("derivations stored, read model and signals computed meanwhile")
            # The web workers' file of the cut, in place when the cut becomes visible; a failure is logged only.
            if columns is not None:
                folder = save_read_model_of_new_cut(connection, run_id, columns)
            clock.lap("read model written")
            if lab is not None:
                lab_folder = lab_model.save_lab_read_model_of_new_cut(connection, run_id, lab)
            del lab
            clock.lap("lab read model written")
    except BaseException:
        if folder is not None:
            remove_read_model_folder(folder)  # the lab read model with it: it is a folder inside
        if lab_folder is not None:
            lab_model.remove_lab_read_model_folder(lab_folder)
        raise
    clock.lap("commit")
    quarantine = extract.quarantine.drop(columns=["raw"]).to_dict("records")
    result = RunResult(
        run_id, "succeeded", message, study_id, cutoff, counts, quarantine=quarantine, files=files,
        accepted_large_change=bool(findings),
    )  # fmt: skip
    result.seconds = clock.laps
    return result


def _grade_lab_cut(cut, records, subject_rows):
    """The lab read model (:class:`~safety_dash.readmodel.labcut.LabCut`) of the cut being loaded: its LB
    ``records`` (in the shape :func:`~safety_dash.lab_values.load_cut_lab_records` gives them) graded against its
    derived subjects (``subject_rows``, as they are being stored, given the shape the database gives them), so that
    the file equals what ``readmodel build`` would grade from the database. Reads nothing from the database (it
    runs while the cut's rows are written)."""
    from safety_dash import lab_values  # the analysis and read model floors sit above ingestion
    from safety_dash.readmodel.labcut import compute_lab_cut

    return compute_lab_cut(records, lab_values.prepare_lab_subjects(subject_rows), cut)


def _grade_loaded_lab_cut(cut, frames, subject_rows):
    """:func:`_grade_lab_cut` of the LB records just loaded, ``frames["lb"]``: taken out of ``frames`` and let go
    once they are in the database's shape (:func:`~safety_dash.lab_values.prepare_lab_records`)."""
    from safety_dash import lab_values

    loaded = frames.pop("lb")
    records = lab_values.prepare_lab_records(loaded)
    del loaded
    return _grade_lab_cut(cut, records, subject_rows)


def describe_files(sources: dict[str, SourceFile]) -> list[dict[str, Any]]:
    """What a run read, per domain file: ``{"domain", "path", "sha256", "encoding", "rows"}`` (the ``--json``
    shape); ADaM input without EX lists no EX file."""
    return [
        {"domain": domain, "path": str(s.path), "sha256": s.sha256, "encoding": s.encoding, "rows": len(s.frame)}
        for domain, s in sources.items()
        if s.sha256
    ]


def compute_checksums(sources: dict[str, SourceFile]) -> dict[str, str]:
    """File name -> SHA-256 of the files a run read (kept on the run; the scheduler matches extracts by it)."""
    return {s.path.name: s.sha256 for s in sources.values() if s.sha256}


def find_large_quarantine(extract, study: Study) -> list[str]:
    """Sentences for each domain whose quarantined share of rows is above the study's ``max_quarantined_pct``."""
    shares = {domain: (extract.quarantined_rows(domain), extract.read[domain]) for domain in extract.read}
    return _shares_above(shares, study.max_quarantined_pct, "quarantine {part} of {whole} {domain} rows")


def find_large_removal(loaded, study: Study) -> list[str]:
    """Sentences for each domain whose removed share of the previous cut's records is above ``max_removed_pct``."""
    shares = {domain: (loaded.counts[domain]["removed"], loaded.previous[domain]) for domain in loaded.counts}
    return _shares_above(
        shares, study.max_removed_pct, "mark {part} of the previous cut's {whole} {domain} records removed"
    )


def _shares_above(shares: dict[str, tuple[int, int]], limit: float, action: str) -> list[str]:
    """``action`` filled in, with the share and the limit, for each domain whose part / whole is above ``limit`` %."""
    return [
        action.format(part=part, whole=whole, domain=domain.upper())
        + f" ({100 * part / whole:.1f} %, limit {limit:g} %)"
        for domain, (part, whole) in shares.items()
        if whole and 100 * part / whole > limit
    ]


def claim_cut_number(connection: Connection, run_id: int, study_id: str) -> int:
    """The run id this cut commits as, decided under the study's lock so that cut order is commit order.

    Run ids are taken when runs start, but runs commit in the order they get the study's lock. When a run that
    started later has already committed a cut of the study, this run continues under a new run id, taken now
    (above every committed one); the first record is closed as ``renumbered`` and names its successor.
    Versions, derivations and quarantine are all written under the returned id.
    """
    newest = connection.execute(
        select(func.max(IngestionRun.id)).where(IngestionRun.study_id == study_id, IngestionRun.status == "succeeded")
    ).scalar()
    if newest is None or newest < run_id:
        return run_id
    table = IngestionRun.__table__
    first = connection.execute(select(table).where(table.c.id == run_id)).mappings().one()
    carried = {k: first[k] for k in ("source", "trigger", "worker", "study_id", "cutoff", "checksums", "files")}
    new_id = connection.execute(
        table.insert()
        .values(**carried, status="running", started_at=first["started_at"], message=f"continues run {run_id}")
        .returning(table.c.id)
    ).scalar_one()
    _finish_run(
        connection, run_id, "renumbered",
        f"continued as run {new_id}: cut {newest} of study {study_id} was committed while this run read its extract",
    )  # fmt: skip
    return new_id


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
    """Read the DM, EX, AE and optional LB (or ADSL, ADAE, ADLB) files of an extract folder."""
    files = find_domain_files(folder)
    if not files:
        raise FileProblem(
            str(folder), "holds no dm, ex or ae file (.xpt, .sas7bdat or .csv; or adsl and adae): nothing to ingest"
        )
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
    """The study the extract belongs to: ``--study``, else the single STUDYID of DM; an id that could not name a
    file safely (the rules file is ``<STUDYID>.yaml``) fails the run as a file-level problem."""
    if study_id:
        return _checked_study_id(study_id, "--study")
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
    return _checked_study_id(studies[0], sources["dm"].path.name)


def _checked_study_id(study_id: str, where: str) -> str:
    try:
        return check_identifier(study_id, "study id")
    except IdentifierError as error:
        raise FileProblem(where, str(error), column="STUDYID") from None


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
