"""What a committee pack reads from storage: the cut's stored derivations, its files, the study's DLT settings, the
AE values the derived tables do not carry (DLT flag, action taken), the records as they were at the ``since`` cut,
the signals and the open alerts.

Everything else in :mod:`safety_dash.report` is computed from these inputs by the metric functions, so the pack
shows the numbers the dashboard and the ``rates`` and ``signals`` commands show for the same cut.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, String, and_, or_, select, type_coerce

from safety_dash.analysis import GROUP_COLUMN, CutContext, load_derived_subjects, resolve_cut
from safety_dash.db.models import AdverseEventVersion, DerivedEvent, IngestionRun, Study
from safety_dash.metrics.rates import MISSING_GROUP
from safety_dash.signal_store import compute_cut_signals, load_previous_cut

DISCONTINUED_ACTION = "DRUG WITHDRAWN"
MIN_GRADES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class PackFilters:
    """The dashboard's filters a pack is made for: one cohort (None: all), events of grade >= ``min_grade``,
    serious only, related only. The filters restrict the counted events of every event table, as on the pages."""

    cohort: str | None = None
    min_grade: int | None = None
    serious: bool = False
    related: bool = False

    def __post_init__(self) -> None:
        if self.min_grade is not None and (isinstance(self.min_grade, bool) or self.min_grade not in MIN_GRADES):
            raise ValueError(f"filter min_grade must be a CTCAE grade 1..5 or None, not {self.min_grade!r}")
        if self.cohort is not None and (not isinstance(self.cohort, str) or not self.cohort.strip()):
            raise ValueError(f"filter cohort must be a cohort name or None, not {self.cohort!r}")

    @property
    def event_filters(self) -> dict:
        """Keyword arguments of the metric functions' event filters."""
        return {"min_grade": self.min_grade, "serious": self.serious, "related": self.related}

    def describe(self) -> str:
        """The filters in words, e.g. 'cohort Ph Ib NPC; grade >= 3; serious events'; 'none' without filters."""
        parts = [f"cohort {self.cohort}"] if self.cohort else []
        parts += [f"grade \u2265 {self.min_grade}"] if self.min_grade else []
        parts += ["serious events"] if self.serious else []
        parts += ["related events"] if self.related else []
        return "; ".join(parts) or "none"


@dataclass
class PackInputs:
    """The stored data of one pack: the cut, the ``since`` cut, the derived frames and the study's settings."""

    cut: CutContext
    since: tuple[int, dt.date] | None
    subjects: pd.DataFrame  # derived subjects of the cut (all of DM), restricted to the cohort filter
    events: pd.DataFrame  # derived events + DLT (bool) and AEACN, restricted to the cohort filter
    files: list[dict]
    run_finished_at: dt.datetime | None
    dlt_column: str
    dlt_days: int
    ctcae_version: str
    has_dlt_column: bool
    cohorts: list[str]  # every cohort of the cut (before the cohort filter)
    since_keys: pd.Index | None = None  # record keys of the AE records of the since cut
    previous_values: Callable[[list[str]], pd.DataFrame] | None = None  # those records' raw values, by key
    record_values: Callable[[list[int]], pd.DataFrame] | None = None  # this cut's raw listing values, by AE_ID


def resolve_pack_cuts(
    bind, study_id: str | None, run_id: int | None, since_run_id: int | None
) -> tuple[CutContext, tuple[int, dt.date] | None]:
    """The cut of the pack (``run_id``, else the study's latest) and the cut its listings start from
    (``since_run_id``, else the previous cut; None for a study's first cut). Fails with a sentence."""
    cut = resolve_cut(bind, study_id, run_id)
    if since_run_id is None:
        return cut, load_previous_cut(bind, cut.run_id)
    if since_run_id == cut.run_id or since_run_id > cut.run_id:
        raise ValueError(
            f"--since {since_run_id} is not an earlier cut than {cut.run_id}; name a cut made before it "
            "(default: the previous cut)"
        )
    since = resolve_cut(bind, cut.study_id, since_run_id)
    return cut, (since.run_id, since.cutoff)


def load_pack_inputs(bind, cut: CutContext, since: tuple[int, dt.date] | None, filters: PackFilters) -> PackInputs:
    """Read what a pack of ``cut`` needs; the cohort filter must name a cohort of the cut."""
    subjects, events = load_pack_frames(bind, cut.run_id)
    cohorts = sorted({_cohort_label(v) for v in subjects.loc[subjects["SAFFL"], GROUP_COLUMN]})
    if filters.cohort is not None and filters.cohort not in cohorts:
        raise ValueError(
            f"cohort {filters.cohort!r} has no dosed subject in cut {cut.run_id}; choose one of {', '.join(cohorts)}"
        )
    settings = _load_study_settings(bind, cut.study_id)
    run = _load_run(bind, cut.run_id)
    extras = load_event_extras(bind, cut.run_id, settings["dlt_column"])
    events = attach_event_extras(events, extras)
    if filters.cohort is not None:
        keep = subjects[GROUP_COLUMN].map(_cohort_label) == filters.cohort
        subjects = subjects.loc[keep].reset_index(drop=True)
        events = events.loc[events["USUBJID"].isin(set(subjects["USUBJID"]))].reset_index(drop=True)
    since_keys = load_record_keys_at(bind, cut.study_id, since[0]) if since else None

    def previous_values(keys: list[str]) -> pd.DataFrame:
        return load_records_at(bind, cut.study_id, since[0], keys)

    return PackInputs(
        cut=cut,
        since=since,
        subjects=subjects,
        events=events,
        files=run["files"],
        run_finished_at=run["finished_at"],
        dlt_column=settings["dlt_column"],
        dlt_days=settings["dlt_days"],
        ctcae_version=settings["ctcae_version"],
        has_dlt_column=bool(extras["HAS_DLT_COLUMN"].any()) if len(extras) else False,
        cohorts=cohorts,
        since_keys=since_keys,
        previous_values=previous_values if since else None,
        record_values=lambda ae_ids: load_record_values(bind, ae_ids),
    )


EVENT_CHUNK_ROWS = 100_000
#: The event columns a pack reads for every record: what the metric functions and the listings' choice need.
PACK_EVENT_COLUMNS = {
    "AE_ID": DerivedEvent.ae_version_id, "RECORD_KEY": AdverseEventVersion.record_key, "USUBJID": DerivedEvent.usubjid,
    "SOC": DerivedEvent.soc, "PT": DerivedEvent.pt, "ASTDT": DerivedEvent.astdt, "ASTDY": DerivedEvent.astdy,
    "COUNTED": DerivedEvent.counted, "EVENT_ID": DerivedEvent.event_id, "GRADE": DerivedEvent.grade,
    "SERIOUS": DerivedEvent.serious, "RELATED": DerivedEvent.related,
    "VALID_FROM_RUN": AdverseEventVersion.valid_from_run, "RECORD_CHANGE": DerivedEvent.record_change,
}  # fmt: skip
#: Raw values a listing shows, read for the listed records only (:func:`load_record_values`).
LISTING_COLUMNS = ("AESEQ", "AETERM", "AETOXGR", "AESEV", "AESTDTC", "AEENDTC", "AEOUT", "AEREL")
UNIQUE_TEXT = ("RECORD_KEY",)  # one value per record: nothing to share


def load_pack_frames(bind, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored derivations of cut ``run_id`` as :func:`safety_dash.analysis.load_derived_frames` gives them, with
    the event columns of :data:`PACK_EVENT_COLUMNS` only (the same rows, values and types; a test holds the two
    together). Read in chunks of :data:`EVENT_CHUNK_ROWS` records with each repeated text held once, so a million
    records take a fraction of the time and memory of reading every column at once (2.5 GB at the peak).
    """
    columns = list(PACK_EVENT_COLUMNS)
    selected = [
        type_coerce(column, String).label(name) if name == "ASTDT" else column.label(name)
        for name, column in PACK_EVENT_COLUMNS.items()
    ]
    statement = (
        select(*selected)
        .join(AdverseEventVersion, AdverseEventVersion.id == DerivedEvent.ae_version_id)
        .where(DerivedEvent.run_id == run_id)
        .order_by(DerivedEvent.usubjid, DerivedEvent.astdt, DerivedEvent.ae_version_id)
    )
    chunks = []
    with _connection(bind) as connection:
        # Streaming set on the statement: on a caller's connection it would outlast this read.
        result = connection.execute(statement.execution_options(stream_results=True))
        shared: dict[str, dict] = {}
        while rows := result.fetchmany(EVENT_CHUNK_ROWS):
            chunks.append(_event_chunk(pd.DataFrame(rows, columns=columns), shared))
    events = pd.concat(chunks, ignore_index=True) if chunks else _event_chunk(pd.DataFrame(columns=columns), {})
    subjects = load_derived_subjects(bind, run_id)
    return subjects, events


def _event_chunk(frame: pd.DataFrame, shared: dict[str, dict]) -> pd.DataFrame:
    """One chunk of events typed as load_derived_frames types them; every text seen before (a subject id, a term)
    is replaced by the one object already held."""
    for column in ("USUBJID", "SOC", "PT", "RECORD_CHANGE", "RECORD_KEY"):
        values = frame[column].astype(object).fillna("")
        if column not in UNIQUE_TEXT:
            pool = shared.setdefault(column, {})
            codes, uniques = pd.factorize(values.to_numpy(dtype=object))
            held = np.array([pool.setdefault(v, v) for v in uniques], dtype=object)
            values = pd.Series(held[codes] if len(codes) else values.to_numpy(), index=frame.index, dtype=object)
        frame[column] = values
    for column in ("AE_ID", "VALID_FROM_RUN", "EVENT_ID"):
        frame[column] = frame[column].astype(int)
    frame["ASTDT"] = pd.to_datetime(frame["ASTDT"].astype(object).where(frame["ASTDT"].notna(), None))
    for column in ("ASTDY", "GRADE"):
        frame[column] = pd.to_numeric(frame[column]).astype("Int64")
    for column in ("COUNTED", "SERIOUS", "RELATED"):
        frame[column] = frame[column].astype(bool)
    return frame


def load_record_values(bind, ae_ids) -> pd.DataFrame:
    """AE_ID and the raw :data:`LISTING_COLUMNS` of the AE versions ``ae_ids`` ('' for missing)."""
    table = AdverseEventVersion
    columns = [table.id.label("AE_ID")] + [getattr(table, name.lower()).label(name) for name in LISTING_COLUMNS]
    ids = [int(i) for i in ae_ids]
    rows = []
    with _connection(bind) as connection:
        for start in range(0, len(ids), 500):  # bounded IN lists
            statement = select(*columns).where(table.id.in_(ids[start : start + 500]))
            rows.extend(connection.execute(statement).fetchall())
    return pd.DataFrame(rows, columns=["AE_ID", *LISTING_COLUMNS]).fillna("")


def _cohort_label(value) -> str:
    text = "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()
    return text or MISSING_GROUP


def _load_study_settings(bind, study_id: str) -> dict:
    statement = select(Study.dlt_column, Study.dlt_days, Study.ctcae_version).where(Study.study_id == study_id)
    with _connection(bind) as connection:
        row = connection.execute(statement).one()
    return {
        "dlt_column": (row.dlt_column or "AEDLT").upper(),
        "dlt_days": int(row.dlt_days or 21),
        "ctcae_version": row.ctcae_version or "5.0",
    }


def _load_run(bind, run_id: int) -> dict:
    statement = select(IngestionRun.files, IngestionRun.checksums, IngestionRun.finished_at).where(
        IngestionRun.id == run_id
    )
    with _connection(bind) as connection:
        row = connection.execute(statement).one()
    files = row.files if isinstance(row.files, list) else json.loads(row.files) if row.files else []
    if not files and row.checksums:  # runs made before the file list was kept: names and checksums only
        files = [{"domain": "", "path": name, "sha256": sha, "rows": None} for name, sha in row.checksums.items()]
    return {"files": files, "finished_at": row.finished_at}


def load_event_extras(bind, run_id: int, dlt_column: str) -> pd.DataFrame:
    """Per AE version of cut ``run_id`` that has a non-standard column or a drug-withdrawn action: AE_ID, AEACN,
    DLT (the study's DLT column = Y), HAS_DLT_COLUMN (the record carries the column at all)."""
    withdrawn = AdverseEventVersion.aeacn.ilike(f"%{DISCONTINUED_ACTION}%")
    statement = (
        select(AdverseEventVersion.id, AdverseEventVersion.aeacn, AdverseEventVersion.extra)
        .join(DerivedEvent, and_(DerivedEvent.ae_version_id == AdverseEventVersion.id, DerivedEvent.run_id == run_id))
        .where(or_(AdverseEventVersion.extra.is_not(None), withdrawn))
    )
    with _connection(bind) as connection:
        rows = connection.execute(statement).fetchall()
    ids, actions, flags, present = [], [], [], []
    for version_id, action, extra in rows:
        values = extra if isinstance(extra, dict) else json.loads(extra) if extra else None
        values = {str(k).upper(): v for k, v in (values or {}).items()}
        flag = values.get(dlt_column)
        ids.append(int(version_id))
        actions.append((action or "").strip().upper())
        present.append(flag is not None and str(flag).strip() != "")
        flags.append(str(flag).strip().upper() in ("Y", "YES") if flag is not None else False)
    return pd.DataFrame(
        {"AE_ID": np.array(ids, dtype=np.int64), "AEACN": actions, "DLT": flags, "HAS_DLT_COLUMN": present}
    )


def attach_event_extras(events: pd.DataFrame, extras: pd.DataFrame) -> pd.DataFrame:
    """``events`` with AEACN (text, '' when not withdrawn) and DLT (bool) from :func:`load_event_extras`."""
    position = pd.Index(extras["AE_ID"]).get_indexer(events["AE_ID"]) if len(extras) else np.full(len(events), -1)
    found = position >= 0
    action = np.full(len(events), "", dtype=object)
    dlt = np.zeros(len(events), dtype=bool)
    if found.any():
        action[found] = extras["AEACN"].to_numpy(dtype=object)[position[found]]
        dlt[found] = extras["DLT"].to_numpy(dtype=bool)[position[found]]
    return events.assign(AEACN=action, DLT=dlt)


def _valid_at(run_id: int):
    table = AdverseEventVersion
    return and_(table.valid_from_run <= run_id, or_(table.valid_to_run.is_(None), table.valid_to_run > run_id))


def load_record_keys_at(bind, study_id: str, run_id: int) -> pd.Index:
    """The record keys of ``study_id``'s AE records in cut ``run_id``."""
    table = AdverseEventVersion
    statement = select(table.record_key).where(table.study_id == study_id, _valid_at(run_id))
    with _connection(bind) as connection:
        return pd.Index([row[0] for row in connection.execute(statement)], dtype=object)


def load_records_at(bind, study_id: str, run_id: int, keys: list[str]) -> pd.DataFrame:
    """The AE records of ``study_id`` with record keys ``keys`` as they were in cut ``run_id``: RECORD_KEY, USUBJID,
    AESEQ and the raw AEDECOD, AETOXGR, AESEV, AESER, AEOUT, AEENDTC, AEREL."""
    table = AdverseEventVersion
    columns = (table.record_key, table.usubjid, table.aeseq, table.aedecod, table.aetoxgr, table.aesev, table.aeser,
               table.aeout, table.aeendtc, table.aerel)  # fmt: skip
    names = [column.name.upper() for column in columns]
    rows = []
    with _connection(bind) as connection:
        for start in range(0, len(keys), 500):  # bounded IN lists
            part = keys[start : start + 500]
            statement = select(*columns).where(
                table.study_id == study_id, _valid_at(run_id), table.record_key.in_(part)
            )
            rows.extend(connection.execute(statement).fetchall())
    return pd.DataFrame(rows, columns=names).fillna("")


def load_pack_signals(bind, cut: CutContext, filters: PackFilters) -> dict[str, pd.DataFrame]:
    """The signals of the cut by PT and by SOC, as the ``signals`` command computes them with the same filters."""
    return {by: compute_cut_signals(bind, cut, by, **filters.event_filters) for by in ("pt", "soc")}


def load_pack_alerts(bind, study_id: str) -> pd.DataFrame:
    """The study's open alerts (newest first), as the Alerts page lists them; empty when alerts are not set up."""
    from safety_dash.alerts.review import list_alerts

    with _connection(bind) as connection:
        return list_alerts(connection, study_id, "open")


@contextlib.contextmanager
def _connection(bind):
    """A connection of an engine (opened and closed here), or the connection given."""
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            yield connection
    else:
        yield bind
