"""The pages' read API: data cuts, the derived frames of a cut, and the numbers each view shows.

Every number comes from the stored derivations of a cut and the metric functions of :mod:`safety_dash.metrics`;
nothing here derives a flag or a rate of its own. A cut's frames come from its read model
(:mod:`safety_dash.readmodel`: a file per cut written at ingestion, memory-mapped and shared by every worker; the
database when the cut has no file yet), cached per process and cut (its run id and the time its derivations were
written), so every worker shows the same numbers for the same address and a re-derived cut is read again. Results
are cached per process with :func:`functools.lru_cache`, keyed by the cut and the filters. Cached frames are never
modified after loading.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask
import numpy as np
import pandas as pd
import yaml
from sqlalchemy import Engine, inspect

from safety_dash import readmodel
from safety_dash.db.queries import run_query
from safety_dash.metrics.baskets import parse_baskets
from safety_dash.readmodel import FRAME_CACHE_SIZE as FRAME_CACHE_SIZE  # re-exported for the pages and tests
from safety_dash.readmodel import GROUP_COLUMN as GROUP_COLUMN
from safety_dash.readmodel import MAX_RUN_ID as MAX_RUN_ID
from safety_dash.readmodel import CutFrames, CutInfo, load_cut, load_cuts
from safety_dash.readmodel import TextCodes as TextCodes
from safety_dash.readmodel import load_studies as load_studies
from safety_dash.web.state import ViewState

EXTENSION = "safety_dash"
ANY_IMMUNE_BASKET = "Any immune-related"
RESULT_CACHE_SIZE = 256


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


def load_frames_locked(engine: Engine, run_id: int, derived_at: str) -> CutFrames:
    """The derived frames of cut ``run_id`` from its read model (or the database), once per process and cut;
    requests arriving while a cut loads wait for it instead of reading it again."""
    return readmodel.load_frames(engine, run_id, derived_at)


def load_frames(engine: Engine, cut: CutInfo) -> CutFrames:
    """The derived frames of ``cut``, read once per process and cut (and again if the cut is re-derived)."""
    return readmodel.load_frames(engine, cut.run_id, cut.derived_at)


def load_cut_frames_for_views(engine: Engine, run_id: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Subjects and events of cut ``run_id`` in metric naming (USUBJID, TRTSDT, ..., COHORT_GROUP; AE_ID, PT, ...).

    The frames are shared by every view of the process: treat them as read-only.
    """
    cut = load_cut(engine, run_id)
    if cut is None:
        raise ValueError(f"data cut {run_id} does not exist; `python -m safety_dash ingest` lists the run ids it makes")
    frames = load_frames(engine, cut)
    return frames.subjects, frames.events


_RESULT_CACHES: list[Callable[[], None]] = []


def register_result_cache(clear: Callable[[], None]) -> None:
    """Have :func:`clear_caches` call ``clear`` too (the views register the caches of their results here, so this
    module need not import them)."""
    if clear not in _RESULT_CACHES:
        _RESULT_CACHES.append(clear)


def clear_caches() -> None:
    """Forget every cached frame and result (tests, and after deleting data)."""
    from safety_dash.views.labs import clear_lab_caches
    from safety_dash.views.signals import clear_signal_caches

    readmodel.clear_frames()
    for clear in _RESULT_CACHES:
        clear()
    clear_signal_caches()
    clear_lab_caches()


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
