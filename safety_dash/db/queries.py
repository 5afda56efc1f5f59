"""Named SQL queries: ``queries/<name>.sql`` run with bound parameters, returning a DataFrame."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, text

QUERIES_DIR = Path(__file__).resolve().parents[2] / "queries"


@functools.cache
def load_query_text(name: str) -> str:
    """The SQL text of the named query; fails with a sentence when no such file exists."""
    path = QUERIES_DIR / f"{name}.sql"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in QUERIES_DIR.glob("*.sql")))
        raise ValueError(f"query {name!r} does not exist: no file {path}; known queries: {known}")
    return path.read_text(encoding="utf-8")


def run_query(bind: Engine | Connection, name: str, **params: Any) -> pd.DataFrame:
    """Run the named query with ``params`` bound (never formatted into the SQL) and return its rows."""
    statement = text(load_query_text(name))
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            result = connection.execute(statement, params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    result = bind.execute(statement, params)
    return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
