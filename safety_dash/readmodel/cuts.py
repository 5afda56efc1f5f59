"""Data cuts as the read model names them: run id, study, cutoff, and when the cut's derivations were written."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine

from safety_dash.db.queries import run_query

MAX_RUN_ID = 2**31 - 1  # run ids are 32-bit integer keys (PostgreSQL's integer)


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


def load_cut(engine: Engine | Connection, run_id: int) -> CutInfo | None:
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


def load_cuts(engine: Engine, study_id: str) -> pd.DataFrame:
    """The data cuts of ``study_id``, oldest first: run_id, cutoff, finished_at, derived_at."""
    return run_query(engine, "web_cuts", study_id=study_id)


def load_studies(engine: Engine) -> list[str]:
    """Studies with at least one data cut, the most recently loaded first."""
    return run_query(engine, "web_studies")["study_id"].tolist()
