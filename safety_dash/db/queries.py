"""Named SQL queries: ``queries/<name>.sql`` run with bound parameters, returning a DataFrame."""

from __future__ import annotations

import functools
from collections.abc import Iterator
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


def run_query_chunks(bind: Engine | Connection, name: str, chunk_rows: int, **params: Any) -> Iterator[pd.DataFrame]:
    """The rows of the named query as DataFrames of at most ``chunk_rows`` rows, streamed from the server (a
    server-side cursor on PostgreSQL): millions of rows are never held as Python row objects all at once."""
    statement = text(load_query_text(name))
    if isinstance(bind, Engine):
        with bind.connect() as connection:
            yield from _chunks(connection, statement, chunk_rows, params)
        return
    yield from _chunks(bind, statement, chunk_rows, params)


def _chunks(connection: Connection, statement, chunk_rows: int, params: dict) -> Iterator[pd.DataFrame]:
    # Options on the statement, not the connection (Connection.execution_options changes the connection itself).
    result = connection.execute(statement.execution_options(stream_results=True, yield_per=chunk_rows), params)
    columns = list(result.keys())
    empty = True
    for rows in result.partitions(chunk_rows):
        empty = False
        yield pd.DataFrame(rows, columns=columns)
    if empty:
        yield pd.DataFrame(columns=columns)
