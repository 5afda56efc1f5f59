"""The pages' read API: data cuts, the derived frames of a cut, and the numbers each view shows.

Every number comes from the stored derivations of a cut (``derived_subjects``, ``derived_events``, read through the
named queries in ``queries/``) and the metric functions of :mod:`safety_dash.metrics`; nothing here derives a flag
or a rate of its own. Results are cached per process with :func:`functools.lru_cache`, keyed by the cut (its run id
and the time its derivations were written) and the filters, so every worker shows the same numbers for the same
address and a re-derived cut is read again. Cached frames are never modified after loading.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flask
import numpy as np
import pandas as pd
import yaml
from sqlalchemy import Engine, inspect

from safety_dash.db.queries import run_query
from safety_dash.metrics.baskets import parse_baskets
from safety_dash.web.state import ViewState

EXTENSION = "safety_dash"
GROUP_COLUMN = "COHORT_GROUP"  # the name safety_dash.analysis gives the study's grouping column
ANY_IMMUNE_BASKET = "Any immune-related"
FRAME_CACHE_SIZE = 4  # cuts held in memory per worker (the current one, the one before, a shared link's)
RESULT_CACHE_SIZE = 256
MAX_RUN_ID = 2**31 - 1  # run ids are 32-bit integer keys (PostgreSQL's integer)


class NoDataYet(ValueError):
    """The database holds no data cut yet."""


@dataclass(frozen=True)
class WebContext:
    """What the pages read from: the database engine and the AE baskets in force."""

    engine: Engine
    baskets: tuple[tuple[str, frozenset[str]], ...] = ()

    @property
    def basket_map(self) -> dict[str, frozenset[str]]:
        """The configured baskets and, last, their union as :data:`ANY_IMMUNE_BASKET`."""
        mapping = dict(self.baskets)
        if mapping:
            mapping[ANY_IMMUNE_BASKET] = frozenset().union(*mapping.values())
        return mapping


def load_baskets_file(path: Path) -> tuple[tuple[str, frozenset[str]], ...]:
    """The baskets of a YAML file (``name: [PT, ...]``), validated by :func:`parse_baskets`."""
    with Path(path).open(encoding="utf-8") as handle:
        return tuple(parse_baskets(yaml.safe_load(handle)).items())


def current_context() -> WebContext:
    """The context of the app answering the current request."""
    return flask.current_app.extensions[EXTENSION]


# --- data cuts --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutInfo:
    """A data cut as the views label it."""

    run_id: int
    study_id: str
    cutoff: dt.date
    status: str
    derived_at: str
    window_days: int
    ctcae_version: str
    finished_at: str | None = None
    message: str = ""
    counts: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def load_studies(engine: Engine) -> list[str]:
    """Studies with at least one data cut, the most recently loaded first."""
    return run_query(engine, "web_studies")["study_id"].tolist()


def load_cuts(engine: Engine, study_id: str) -> pd.DataFrame:
    """The data cuts of ``study_id``, oldest first: run_id, cutoff, finished_at, derived_at."""
    return run_query(engine, "web_cuts", study_id=study_id)


def load_cut(engine: Engine, run_id: int) -> CutInfo | None:
    """The cut ``run_id`` with its study settings, or None when there is no such run (a number no run id can be,
    e.g. from an edited link, is not sent to the database, which would refuse it)."""
    if not 0 < int(run_id) <= MAX_RUN_ID:
        return None
    rows = run_query(engine, "web_cut", run_id=run_id)
    if rows.empty:
        return None
    row = rows.iloc[0]
    counts = row["counts"]
    return CutInfo(
        run_id=int(row["run_id"]),
        study_id=str(row["study_id"]),
        cutoff=pd.Timestamp(row["cutoff"]).date(),
        status=str(row["status"]),
        derived_at=str(row["derived_at"] or row["finished_at"] or ""),
        window_days=int(row["window_days"]),
        ctcae_version=str(row["ctcae_version"]),
        finished_at=None if row["finished_at"] is None else str(row["finished_at"]),
        message=str(row["message"] or ""),
        counts=json.loads(counts) if isinstance(counts, str) else dict(counts or {}),
    )


def load_cohorts(engine: Engine, run_id: int) -> list[str]:
    """The cohorts of the safety population of cut ``run_id``."""
    return run_query(engine, "web_cohorts", run_id=run_id, saffl=True)["cohort"].tolist()


def load_latest_run(engine: Engine, study_id: str) -> dict[str, Any] | None:
    """The newest ingestion run of ``study_id`` whatever its status, as a dict, or None."""
    rows = run_query(engine, "web_latest_run", study_id=study_id)
    return None if rows.empty else rows.iloc[0].to_dict()


def resolve_state(engine: Engine, state: ViewState) -> tuple[ViewState, CutInfo]:
    """``state`` with its study and cut filled in (the newest cut when none is given), and that cut.

    Fails with a sentence when the database has no cut yet, or the cut asked for does not exist, has not
    succeeded, or belongs to another study.
    """
    if state.cut is None:
        latest = run_query(engine, "latest_cut", study_id=state.study)
        if latest.empty:
            if state.study is None:
                raise NoDataYet(
                    "No data cut yet. Load an extract with `python -m safety_dash ingest FOLDER` "
                    "(or `make run` for the demo study)."
                )
            raise ValueError(f"Study {state.study!r} has no data cut; choose another study in the filter bar.")
        state = state.replace(cut=int(latest.iloc[0]["run_id"]))
    cut = load_cut(engine, state.cut)
    if cut is None or cut.status != "succeeded":
        raise ValueError(f"Data cut {state.cut} does not exist or did not succeed; pick a cut in the filter bar.")
    if state.study is not None and state.study != cut.study_id:
        raise ValueError(f"Data cut {cut.run_id} belongs to study {cut.study_id}, not {state.study}.")
    return state.replace(study=cut.study_id), cut


def previous_cut(engine: Engine, cut: CutInfo) -> CutInfo | None:
    """The data cut of the same study just before ``cut``, or None for the first cut."""
    cuts = load_cuts(engine, cut.study_id)
    earlier = cuts.loc[cuts["run_id"] < cut.run_id, "run_id"]
    return None if earlier.empty else load_cut(engine, int(earlier.iloc[-1]))


# --- the derived frames of a cut ------------------------------------------------------------------------------


TextCodes = dict[str, tuple[np.ndarray, np.ndarray]]  # column -> (codes per row, distinct texts)


@dataclass(frozen=True, eq=False)
class CutFrames:
    """The derivations of one cut in metric naming, plus integer codes the views count with.

    ``events`` carries ``SUBJECT_POS`` (row of the subject in ``subjects``), ``SOC_CODE`` / ``PT_CODE`` (positions
    in ``socs`` / ``pts``) and the subject's ``COHORT_GROUP``.
    """

    cut: CutInfo
    subjects: pd.DataFrame
    events: pd.DataFrame
    socs: np.ndarray
    pts: np.ndarray
    pt_soc: np.ndarray  # the SOC code of each PT (the SOC of its first record)
    cohorts: tuple[str, ...]
    text: TextCodes  # codes of the text columns of ``events``, for filtering and sorting a million rows fast


def _factorized(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct texts of ``values``, missing read as ''."""
    codes, uniques = pd.factorize(values.fillna(""), sort=False)
    return codes.astype(np.int32), np.asarray(uniques, dtype=object)


def _as_bool(values: pd.Series) -> np.ndarray:
    return values.fillna(False).astype(bool).to_numpy()


def _as_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce").astype("datetime64[ns]")


def frame_subjects(derived: pd.DataFrame) -> pd.DataFrame:
    """``derived_subjects`` rows (lower-case columns) in metric naming."""
    return pd.DataFrame(
        {
            "USUBJID": derived["usubjid"].astype(str).to_numpy(dtype=object),
            GROUP_COLUMN: derived["cohort"].fillna("").astype(str).to_numpy(dtype=object),
            "TRTSDT": _as_dates(derived["trtsdt"]),
            "TRTEDT": _as_dates(derived["trtedt"]),
            "DTHDT": _as_dates(derived["dthdt"]),
            "SAFFL": _as_bool(derived["saffl"]),
            "WINDOW_END": _as_dates(derived["window_end"]),
            "DAYS_AT_RISK": pd.array(derived["days_at_risk"], dtype="Int64"),
            "N_DOSES": pd.to_numeric(derived["n_doses"]).fillna(0).astype(int).to_numpy(),
        }
    )


EVENT_TEXT_COLUMNS = {
    "window_label": "WINDOW_LABEL",
    "grade_source": "GRADE_SOURCE",
    "record_change": "RECORD_CHANGE",
    "aeseq": "AESEQ",
    "aeterm": "AETERM",
    "aetoxgr": "AETOXGR",
    "aesev": "AESEV",
    "aestdtc": "AESTDTC",
    "aeendtc": "AEENDTC",
    "aeout": "AEOUT",
    "aerel": "AEREL",
}


class _TextColumn:
    """Codes of one text column read in chunks, against one growing list of its distinct texts."""

    def __init__(self) -> None:
        self.texts = pd.Index([], dtype=object)
        self.parts: list[np.ndarray] = []

    def add(self, values: pd.Series) -> None:
        codes, uniques = pd.factorize(values.astype(object).fillna(""), sort=False)
        uniques = np.asarray(uniques, dtype=object)
        known = self.texts.get_indexer(uniques)
        new = known < 0
        if new.any():
            known[new] = np.arange(len(self.texts), len(self.texts) + int(new.sum()))
            self.texts = self.texts.append(pd.Index(uniques[new], dtype=object))
        self.parts.append(known[codes].astype(np.int32))

    def finish(self, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.int32)
        return codes[order], np.asarray(self.texts, dtype=object)


EVENT_TEXT_SOURCES = {"usubjid": "USUBJID", "soc": "SOC", "pt": "PT", "astdtf": "ASTDTF", **EVENT_TEXT_COLUMNS}
EVENT_FLAG_SOURCES = {"trtemfl": "TRTEMFL", "after_cutoff": "AFTER_CUTOFF", "counted": "COUNTED",
                      "after_death": "AFTER_DEATH", "serious": "SERIOUS", "related": "RELATED",
                      "uncoded": "UNCODED"}  # fmt: skip


def frame_events(chunks, subjects: pd.DataFrame) -> tuple[pd.DataFrame, TextCodes]:
    """``derived_events`` rows with the raw listing values (a DataFrame, or an iterable of chunks of one) in metric
    naming, ordered by subject, onset and record, plus the subject's row and cohort; and the codes of every text
    column. Equal texts share one Python object, so a million records take a few hundred MB."""
    chunks = [chunks] if isinstance(chunks, pd.DataFrame) else chunks
    text_columns = {target: _TextColumn() for target in EVENT_TEXT_SOURCES.values()}
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in ("AE_ID", "EVENT_ID", "ASTDT", "ASTDY", "GRADE", *EVENT_FLAG_SOURCES.values())
    }
    for chunk in chunks:
        for source, target in EVENT_TEXT_SOURCES.items():
            text_columns[target].add(chunk[source])
        parts["AE_ID"].append(pd.to_numeric(chunk["ae_version_id"]).to_numpy(dtype=np.int64))
        parts["EVENT_ID"].append(pd.to_numeric(chunk["event_id"]).to_numpy(dtype=np.int64))
        parts["ASTDT"].append(_as_dates(chunk["astdt"]).to_numpy())
        parts["ASTDY"].append(pd.to_numeric(chunk["astdy"]).to_numpy(dtype="float64", na_value=np.nan))
        parts["GRADE"].append(pd.to_numeric(chunk["grade"]).to_numpy(dtype="float64", na_value=np.nan))
        for source, target in EVENT_FLAG_SOURCES.items():
            parts[target].append(_as_bool(chunk[source]))
    joined = {
        name: np.concatenate(values) if values else np.zeros(0, dtype="datetime64[ns]" if name == "ASTDT" else float)
        for name, values in parts.items()
    }
    # The listing order: by subject, onset date, record.
    subject_codes, subject_texts = text_columns["USUBJID"].finish(np.arange(len(joined["AE_ID"])))
    rank = np.empty(len(subject_texts), dtype=np.int64)
    rank[np.argsort(subject_texts.astype(str), kind="stable")] = np.arange(len(subject_texts))
    onset = joined["ASTDT"].astype("datetime64[ns]").view(np.int64)
    order = np.lexsort((joined["AE_ID"], onset, rank[subject_codes] if len(rank) else subject_codes))

    text: TextCodes = {target: column.finish(order) for target, column in text_columns.items()}
    events = pd.DataFrame(
        {
            "AE_ID": joined["AE_ID"][order],
            "EVENT_ID": joined["EVENT_ID"][order].astype(np.int64),
            "USUBJID": text["USUBJID"][1][text["USUBJID"][0]],
            "SOC": text["SOC"][1][text["SOC"][0]],
            "PT": text["PT"][1][text["PT"][0]],
            "ASTDT": pd.Series(joined["ASTDT"][order]).astype("datetime64[ns]"),
            "ASTDTF": text["ASTDTF"][1][text["ASTDTF"][0]],
            "ASTDY": pd.array(joined["ASTDY"][order], dtype="Float64").astype("Int64"),
            "GRADE": pd.array(joined["GRADE"][order], dtype="Float64").astype("Int64"),
            **{name: joined[name][order].astype(bool) for name in EVENT_FLAG_SOURCES.values()},
        }
    )
    for target in EVENT_TEXT_COLUMNS.values():
        codes, texts = text[target]
        events[target] = texts[codes]
    position = pd.Index(subjects["USUBJID"]).get_indexer(events["USUBJID"])
    events["SUBJECT_POS"] = position
    cohort_codes, cohorts = _factorized(subjects[GROUP_COLUMN])
    text[GROUP_COLUMN] = (cohort_codes[np.maximum(position, 0)], cohorts)
    events[GROUP_COLUMN] = cohorts[text[GROUP_COLUMN][0]]
    return events, text


CHUNK_ROWS = 100_000


def read_event_chunks(engine: Engine, run_id: int, chunk_rows: int = CHUNK_ROWS):
    """The cut's event rows in chunks of ``chunk_rows``, read by record id (``web_cut_events_chunk``)."""
    after = 0
    while True:
        chunk = run_query(engine, "web_cut_events_chunk", run_id=run_id, after=after, limit=chunk_rows)
        if chunk.empty:
            return
        yield chunk
        if len(chunk) < chunk_rows:
            return
        after = int(chunk["ae_version_id"].iloc[-1])


@functools.lru_cache(maxsize=FRAME_CACHE_SIZE)
def _load_frames(engine: Engine, run_id: int, derived_at: str) -> CutFrames:
    cut = load_cut(engine, run_id)
    subjects = frame_subjects(run_query(engine, "derived_subjects", run_id=run_id))
    events, text = frame_events(read_event_chunks(engine, run_id), subjects)
    soc_code, socs = pd.factorize(events["SOC"], sort=True)
    pt_code, pts = pd.factorize(events["PT"], sort=True)
    events["SOC_CODE"] = soc_code
    events["PT_CODE"] = pt_code
    pt_soc = np.zeros(len(pts), dtype=np.int64)
    if len(pts):
        first = pd.Series(soc_code).groupby(pt_code).first()
        pt_soc[first.index.to_numpy()] = first.to_numpy()
    cohorts = tuple(sorted(set(subjects.loc[subjects["SAFFL"], GROUP_COLUMN]) - {""}))
    return CutFrames(
        cut, subjects, events, np.asarray(socs, dtype=object), np.asarray(pts, dtype=object), pt_soc, cohorts, text
    )


_LOCKS_GUARD = threading.Lock()
_LOAD_LOCKS: dict[tuple, threading.Lock] = {}


def load_frames_locked(engine: Engine, run_id: int, derived_at: str) -> CutFrames:
    """:func:`_load_frames` with one loader per cut: requests arriving while a cut loads wait for it instead of
    reading it again."""
    with _LOCKS_GUARD:
        lock = _LOAD_LOCKS.setdefault((engine, run_id, derived_at), threading.Lock())
    with lock:
        return _load_frames(engine, run_id, derived_at)


def load_frames(engine: Engine, cut: CutInfo) -> CutFrames:
    """The derived frames of ``cut``, read once per process and cut (and again if the cut is re-derived)."""
    return load_frames_locked(engine, cut.run_id, cut.derived_at)


def load_cut_frames_for_views(engine: Engine, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Subjects and events of cut ``run_id`` in metric naming (USUBJID, TRTSDT, ..., COHORT_GROUP; AE_ID, PT, ...).

    The frames are shared by every view of the process: treat them as read-only.
    """
    cut = load_cut(engine, run_id)
    if cut is None:
        raise ValueError(f"data cut {run_id} does not exist; `python -m safety_dash ingest` lists the run ids it makes")
    frames = load_frames(engine, cut)
    return frames.subjects, frames.events


def clear_caches() -> None:
    """Forget every cached frame and result (tests, and after deleting data)."""
    _load_frames.cache_clear()
    from safety_dash.views.signals import clear_signal_caches
    from safety_dash.web import views  # the result caches live beside the views that fill them

    views.clear_result_caches()
    clear_signal_caches()


# --- alerts, runs, quarantine -----------------------------------------------------------------------------------


_ALERT_TABLE_SEEN: dict[Engine, float] = {}  # engine -> when the alerts table was last found missing
ALERT_TABLE_RECHECK_SECONDS = 60.0


def has_alert_table(engine: Engine) -> bool:
    """Whether the alerts table exists; a missing table is looked for again at most once a minute."""
    missing_since = _ALERT_TABLE_SEEN.get(engine)
    if missing_since is not None and time.monotonic() - missing_since < ALERT_TABLE_RECHECK_SECONDS:
        return False
    if inspect(engine).has_table("alerts"):
        _ALERT_TABLE_SEEN.pop(engine, None)
        return True
    _ALERT_TABLE_SEEN[engine] = time.monotonic()
    return False


def load_open_alert_count(engine: Engine, study_id: str) -> tuple[int, str]:
    """Unresolved alerts of ``study_id`` and a note: (0, 'alerts not configured') while the alerts tables do not
    exist."""
    if not has_alert_table(engine):
        return 0, "alerts not configured"
    counts = run_query(engine, "web_open_alerts", study_id=study_id)
    by_status = dict(zip(counts["status"], counts["n"], strict=True))
    n_open, n_ack = int(by_status.get("open", 0)), int(by_status.get("acknowledged", 0))
    return n_open, f"{n_ack} acknowledged, not yet resolved" if n_ack else "none acknowledged"


def load_runs(engine: Engine, study_id: str, limit: int = 200) -> pd.DataFrame:
    """The newest ``limit`` ingestion runs of ``study_id`` (and runs whose study was never known)."""
    runs = run_query(engine, "web_runs", study_id=study_id, limit=limit)
    runs["counts"] = [json.loads(v) if isinstance(v, str) else (v or {}) for v in runs["counts"]]
    return runs


def load_quarantine_page(engine: Engine, run_id: int, offset: int, limit: int) -> tuple[pd.DataFrame, int]:
    """One page of the quarantined rows of run ``run_id`` and how many there are in all."""
    total = int(run_query(engine, "web_quarantine_count", run_id=run_id)["n"].iloc[0])
    rows = run_query(engine, "web_quarantine_page", run_id=run_id, offset=int(offset), limit=int(limit))
    rows["raw"] = [v if isinstance(v, str) else json.dumps(v, default=str) for v in rows["raw"]]
    return rows, total


def _raw_subject(raw) -> str | None:
    """The USUBJID inside a quarantined row as read (a dict, or its JSON text), or None."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    value = raw.get("USUBJID") if isinstance(raw, dict) else None
    return str(value).strip() if value not in (None, "") else None


def load_quarantine_of_cohort(
    engine: Engine, run_id: int, offset: int, limit: int, cohort: str, subject_cohorts: pd.Series
) -> tuple[pd.DataFrame, int, int]:
    """One page of the quarantined rows of run ``run_id`` that may concern ``cohort``, how many there are, and how
    many rows of other cohorts' subjects were left out.

    ``subject_cohorts`` maps USUBJID to cohort (the subjects of the cut shown). A row is kept when its subject is in
    ``cohort``, or when it names no subject of the cut (e.g. a USUBJID missing from DM: it cannot be placed, so
    every cohort sees it).
    """
    rows = run_query(engine, "web_quarantine_rows", run_id=run_id)
    subjects = [_raw_subject(raw) for raw in rows["raw"]]
    groups = [subject_cohorts.get(s) if s is not None else None for s in subjects]
    keep = np.array([group is None or group == cohort for group in groups], dtype=bool)
    kept = rows.loc[keep].reset_index(drop=True)
    page = kept.iloc[int(offset) : int(offset) + int(limit)].copy()
    page["raw"] = [v if isinstance(v, str) else json.dumps(v, default=str) for v in page["raw"]]
    return page, len(kept), int((~keep).sum())


def load_subject_record(engine: Engine, cut: CutInfo, usubjid: str) -> dict[str, Any] | None:
    """The DM record and derived dates of one subject in ``cut``, or None when the cut has no such subject."""
    rows = run_query(engine, "web_subject", study_id=cut.study_id, run_id=cut.run_id, usubjid=usubjid)
    if rows.empty:
        return None
    record = rows.iloc[0].to_dict()
    extra = record.pop("extra", None)
    record["extra"] = json.loads(extra) if isinstance(extra, str) else (extra or {})
    return record


def load_subject_exposure(engine: Engine, cut: CutInfo, usubjid: str) -> pd.DataFrame:
    """The EX records of one subject in ``cut``, in time order."""
    return run_query(engine, "web_subject_exposure", study_id=cut.study_id, run_id=cut.run_id, usubjid=usubjid)
