"""Per data cut: read the cut's records, run the metrics, store the derived tables.

Called inside the load transaction (so a cut never exists without its derivations) and again on demand;
recomputing deletes the cut's derived rows first, so it is idempotent. Views, alerts and the ``rates``
command all read these stored tables, so every one of them shows the same numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from sqlalchemy import Connection, Table, delete

from safety_dash.db.bulk import bulk_insert
from safety_dash.db.models import DerivedEvent, DerivedSubject
from safety_dash.db.queries import run_query
from safety_dash.metrics.baskets import parse_baskets
from safety_dash.metrics.events import derive_events
from safety_dash.metrics.exposure import derive_subject_exposure
from safety_dash.metrics.rates import compute_rate_table

GROUP_COLUMN = "COHORT_GROUP"


@dataclass(frozen=True)
class CutContext:
    """A data cut and the settings its derivations follow."""

    run_id: int
    study_id: str
    cutoff: dt.date
    window_days: int
    cohort_column: str | None
    related_values: frozenset[str]
    episode_key: str | None = None


def load_cut_context(connection, run_id: int) -> CutContext:
    """The study settings and cutoff of cut ``run_id``; fails with a sentence when there is no such run."""
    run = run_query(connection, "run", run_id=run_id)
    if run.empty:
        raise ValueError(f"data cut {run_id} does not exist; `python -m safety_dash ingest` lists the run ids it makes")
    row = run.iloc[0]
    return CutContext(
        run_id=run_id,
        study_id=row["study_id"],
        cutoff=pd.Timestamp(row["cutoff"]).date(),
        window_days=int(row["window_days"]),
        cohort_column=row["cohort_column"] or None,
        related_values=frozenset(v.strip().upper() for v in row["related_values"].split(",") if v.strip()),
        episode_key=row["episode_key"] or None,
    )


def load_cut_frames(connection: Connection, cut: CutContext) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """DM, EX and AE of the cut as loading returns them: upper-case SDTM names, text, '' for missing, AE's version id
    in ID (:func:`prepare_cut_frames` readies them for the metrics)."""
    params = {"study_id": cut.study_id, "run_id": cut.run_id}
    dm = run_query(connection, "cut_subjects", **params)
    dm = _with_extra_columns(_upper_text(dm))
    ex = _upper_text(run_query(connection, "cut_exposure", **params))
    ex["EXDOSE"] = pd.to_numeric(ex["EXDOSE"].replace("", None), errors="coerce")
    ae = _upper_text(run_query(connection, "cut_adverse_events", **params))
    return dm, ex, ae


def prepare_cut_frames(
    cut: CutContext, dm: pd.DataFrame, ex: pd.DataFrame, ae: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The cut's records, read back or as just loaded, with the grouping column and AE_ID the metrics use."""
    dm[GROUP_COLUMN] = dm[cohort_column_of(cut, dm)]
    ae = ae.rename(columns={"ID": "AE_ID"})
    ae["AE_ID"] = ae["AE_ID"].astype(int)
    return dm, ex, ae


def cohort_column_of(cut: CutContext, dm: pd.DataFrame) -> str:
    """The DM column that groups subjects: the study's setting, else COHORT when DM has it, else ACTARM."""
    if cut.cohort_column:
        if cut.cohort_column not in dm.columns:
            raise ValueError(f"study {cut.study_id}: cohort column {cut.cohort_column} is not a column of DM")
        return cut.cohort_column
    return "COHORT" if "COHORT" in dm.columns else "ACTARM"


@dataclass(frozen=True)
class DerivedCut:
    """What :func:`derive_cut` computed: the derivations in the metrics' naming, and the rows it stored from them
    (``derived_subjects`` and ``derived_events`` columns, lower-case)."""

    subjects: pd.DataFrame
    events: pd.DataFrame
    subject_rows: pd.DataFrame
    event_rows: pd.DataFrame


def derive_cut(connection: Connection, run_id: int, records: dict[str, pd.DataFrame] | None = None) -> DerivedCut:
    """Compute and store the subject- and event-level derivations and the signals of cut ``run_id``; return them.

    ``records`` are the cut's DM, EX and AE as loading returned them; without them they are read back from the
    database (recomputing a stored cut gives the same rows: a test holds the two paths together).
    """
    cut = load_cut_context(connection, run_id)
    if records is None:
        records = dict(zip(("dm", "ex", "ae"), load_cut_frames(connection, cut), strict=True))
    derived = compute_cut_derivations(cut, records)
    store_cut_derivations(connection, cut, derived)
    return derived


def compute_cut_derivations(cut: CutContext, records: dict[str, pd.DataFrame]) -> DerivedCut:
    """The derivations of ``cut`` from its DM, EX and AE records (``records``), and the rows that store them; reads
    and writes nothing (ingestion computes them while the cut's records are still being written)."""
    dm, ex, ae = prepare_cut_frames(cut, records["dm"], records["ex"], records["ae"])
    subjects = derive_subject_exposure(dm, ex, cut.cutoff, cut.window_days)
    events = derive_events(ae, subjects, cut.cutoff, cut.window_days, cut.related_values, cut.episode_key)
    rows = stored_subject_rows(subjects, cut.run_id), stored_event_rows(events, cut.run_id)
    return DerivedCut(subjects, events, *rows)


def store_cut_derivations(connection: Connection, cut: CutContext, derived: DerivedCut) -> None:
    """Replace the stored derivations of ``cut`` with ``derived``, and derive and store its signals."""
    clear_cut_derivations(connection, cut)
    for table, rows in derivation_writes(derived):
        bulk_insert(connection, table, rows)
    from safety_dash.signal_store import derive_cut_signals  # signal_store reads cuts through this module

    derive_cut_signals(connection, cut, derived.subjects, derived.events)


def clear_cut_derivations(connection: Connection, cut: CutContext) -> None:
    """Delete what is stored of the derivations of ``cut`` (a cut derived again replaces them)."""
    connection.execute(delete(DerivedEvent).where(DerivedEvent.run_id == cut.run_id))
    connection.execute(delete(DerivedSubject).where(DerivedSubject.run_id == cut.run_id))


def derivation_writes(derived: DerivedCut) -> list[tuple[Table, pd.DataFrame]]:
    """The rows that store ``derived``, as (table, rows) for :func:`safety_dash.db.bulk.bulk_insert_meanwhile`.

    The rows are shallow copies: the inserting thread reads its own frames while the caller goes on reading
    ``derived`` (pandas may consolidate a frame's blocks on a read, which is not safe across threads).
    """
    return [(DerivedSubject.__table__, derived.subject_rows.copy(deep=False)),
            (DerivedEvent.__table__, derived.event_rows.copy(deep=False))]  # fmt: skip


def derived_read_model_columns(derived: DerivedCut):
    """The read model columns of a cut just derived (:class:`safety_dash.readmodel.frames.CutColumns`): the same as
    :func:`safety_dash.readmodel.frames.read_cut_columns` reads back once the cut is stored (a test holds the two
    equal), without reading a million rows back from the database."""
    from safety_dash.readmodel.frames import EVENT_TEXT_COLUMNS, columns_from_rows

    events = derived.event_rows.copy(deep=False)
    for column in EVENT_TEXT_COLUMNS:
        if column not in events.columns:  # the AE record's values a listing shows (aeseq, aeterm, ...)
            events[column] = derived.events[column.upper()].to_numpy()
    return columns_from_rows(derived.subject_rows, events)


def load_derived_subjects(bind, run_id: int) -> pd.DataFrame:
    """The stored subject derivations of cut ``run_id`` (the ``subjects`` of :func:`load_derived_frames`), without
    reading the cut's events (laboratory values need only the subjects)."""
    subjects = run_query(bind, "derived_subjects_dm", run_id=run_id)
    subjects = _with_extra_columns(_upper_text(subjects.rename(columns={"cohort": GROUP_COLUMN})))
    for column in ("TRTSDT", "TRTEDT", "DTHDT", "WINDOW_END"):
        subjects[column] = pd.to_datetime(subjects[column].replace("", None))
    subjects["SAFFL"] = subjects["SAFFL"].astype(bool)
    subjects["DAYS_AT_RISK"] = pd.to_numeric(subjects["DAYS_AT_RISK"]).astype("Int64")
    return subjects


def load_derived_frames(bind, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored derivations of cut ``run_id`` in the metrics' naming: (subjects, events).

    ``subjects`` carries every DM column of the subject's record in that cut (for ``--group``) and
    ``COHORT_GROUP``; ``events`` carries the derived flags, RECORD_KEY (stable across cuts), RECORD_CHANGE (new,
    changed or unchanged against the previous cut), VALID_FROM_RUN and the raw values a listing shows. Views,
    alerts and the ``rates`` command all start here, so they all count the same events.
    """
    subjects = load_derived_subjects(bind, run_id)
    events = _upper_text(run_query(bind, "derived_events", run_id=run_id)).rename(columns={"AE_VERSION_ID": "AE_ID"})
    for column in ("AE_ID", "VALID_FROM_RUN", "EVENT_ID"):
        events[column] = events[column].astype(int)
    events["ASTDT"] = pd.to_datetime(events["ASTDT"].replace("", None))
    for column in ("ASTDY", "GRADE"):
        events[column] = pd.to_numeric(events[column]).astype("Int64")
    for column in ("TRTEMFL", "AFTER_CUTOFF", "COUNTED", "AFTER_DEATH", "SERIOUS", "RELATED", "UNCODED"):
        events[column] = events[column].astype(bool)
    return subjects, events


def resolve_cut(bind, study_id: str | None = None, run_id: int | None = None) -> CutContext:
    """The data cut asked for: ``run_id`` if given (it must have succeeded), else the study's latest cut."""
    if run_id is None:
        latest = run_query(bind, "latest_cut", study_id=study_id)
        if latest.empty:
            where = f"study {study_id}" if study_id else "any study"
            raise ValueError(f"no succeeded data cut of {where}; ingest an extract first")
        run_id = int(latest.iloc[0]["run_id"])
    run = run_query(bind, "run_status", run_id=run_id)
    if run.empty:
        raise ValueError(f"data cut {run_id} does not exist; `python -m safety_dash ingest` prints its run ids")
    if run.iloc[0]["status"] != "succeeded":
        raise ValueError(f"run {run_id} is {run.iloc[0]['status']}, not a data cut; only a succeeded run is one")
    cut = load_cut_context(bind, run_id)
    if study_id and cut.study_id != study_id:
        raise ValueError(f"data cut {run_id} belongs to study {cut.study_id}, not {study_id}")
    return cut


def compute_cut_rates(
    bind,
    cut: CutContext,
    by: str,
    group: str | None = None,
    baskets: dict[str, frozenset[str]] | None = None,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> pd.DataFrame:
    """The rate table of a data cut (the ``rates`` command's output), grouped by ``group`` or the cohort."""
    subjects, events = load_derived_frames(bind, cut.run_id)
    group_col = GROUP_COLUMN if group is None else group.upper()
    if group_col not in subjects.columns:
        raise ValueError(f"--group {group} is not a DM column of study {cut.study_id}")
    return compute_rate_table(events, subjects, by, group_col, baskets, min_grade, serious, related)


def load_baskets(path: Path) -> dict[str, frozenset[str]]:
    """The AE baskets of a YAML file (named lists of PTs), validated."""
    with path.open(encoding="utf-8") as handle:
        return parse_baskets(yaml.safe_load(handle))


def stored_subject_rows(subjects: pd.DataFrame, run_id: int) -> pd.DataFrame:
    """The ``derived_subjects`` rows of ``subjects`` (lower-case columns, '' cohort as NULL)."""
    frame = pd.DataFrame(
        {
            "run_id": run_id,
            "usubjid": subjects["USUBJID"],
            "subject_version_id": subjects["ID"].astype(int),
            "cohort": subjects[GROUP_COLUMN].replace("", None),
            "trtsdt": subjects["TRTSDT"],
            "trtedt": subjects["TRTEDT"],
            "dthdt": subjects["DTHDT"],
            "saffl": subjects["SAFFL"].astype(bool),
            "window_end": subjects["WINDOW_END"],
            "days_at_risk": subjects["DAYS_AT_RISK"].astype("Int64"),
            "n_doses": subjects["N_DOSES"].astype(int),
        }
    )
    return frame


def stored_event_rows(events: pd.DataFrame, run_id: int) -> pd.DataFrame:
    """The ``derived_events`` rows of ``events``; RECORD_CHANGE is 'unchanged' for a version of an earlier cut."""
    change = events["CHANGE"].where(events["VALID_FROM_RUN"].astype(int) == run_id, "unchanged")
    frame = pd.DataFrame(
        {
            "run_id": run_id,
            "ae_version_id": events["AE_ID"].astype(int),
            "usubjid": events["USUBJID"],
            "soc": events["SOC"],
            "pt": events["PT"],
            "astdt": events["ASTDT"],
            "astdtf": events["ASTDTF"].replace("", None),
            "astdy": events["ASTDY"].astype("Int64"),
            "trtemfl": events["TRTEMFL"].astype(bool),
            "window_label": events["WINDOW_LABEL"],
            "after_cutoff": events["AFTER_CUTOFF"].astype(bool),
            "counted": events["COUNTED"].astype(bool),
            "after_death": events["AFTER_DEATH"].astype(bool),
            "event_id": events["EVENT_ID"].astype(int),
            "grade": events["GRADE"].astype("Int64"),
            "grade_source": events["GRADE_SOURCE"],
            "serious": events["SERIOUS"].astype(bool),
            "related": events["RELATED"].astype(bool),
            "uncoded": events["UNCODED"].astype(bool),
            "record_change": change,
        }
    )
    return frame


def _upper_text(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.rename(columns=str.upper)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].fillna("")
    return frame


def _with_extra_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """DM records with their stored EXTRA (the file's non-standard columns, e.g. COHORT) spread into columns."""
    extra = pd.DataFrame([_as_dict(v) for v in frame.pop("EXTRA")], index=frame.index).fillna("")
    return pd.concat([frame, extra[[c for c in extra.columns if c not in frame.columns]]], axis=1)


def _as_dict(value) -> dict:
    if value is None or value == "":
        return {}
    return value if isinstance(value, dict) else json.loads(value)
