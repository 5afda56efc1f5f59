"""Fast bulk inserts of DataFrames: ``COPY`` on PostgreSQL, the driver's executemany with tuples on SQLite.

ORM ``add_all`` and Core inserts of dicts spend most of their time building Python objects per row; here each
column is converted once (dates, nullable integers, JSON) and rows travel to the driver as tuples. Column
names come from the table's metadata, values are always bound parameters.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Boolean, Connection, Date, DateTime, Table

CHUNK_ROWS = 100_000


def bulk_insert(connection: Connection, table: Table, rows: pd.DataFrame) -> None:
    """Insert every row of ``rows`` (columns named as the table's) in the caller's transaction."""
    if rows.empty:
        return
    unknown = [c for c in rows.columns if c not in table.c]
    if unknown:
        raise ValueError(f"{', '.join(unknown)} are not columns of table {table.name}")
    names = list(rows.columns)
    columns = [_python_values(rows[name], table.c[name].type, connection.dialect.name) for name in names]
    tuples = list(zip(*columns, strict=True))
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()
        quoted = ", ".join(f'"{n}"' for n in names)
        with cursor.copy(f"COPY {table.name} ({quoted}) FROM STDIN") as copy:
            for row in tuples:
                copy.write_row(row)
        return
    quoted = ", ".join(f'"{n}"' for n in names)
    statement = f"INSERT INTO {table.name} ({quoted}) VALUES ({', '.join('?' for _ in names)})"  # noqa: S608 (names from metadata)
    for start in range(0, len(tuples), CHUNK_ROWS):
        connection.exec_driver_sql(statement, tuples[start : start + CHUNK_ROWS])


def _python_values(values: pd.Series, column_type, dialect: str) -> list:
    """One column as Python values the driver takes: None for missing, ISO text for SQLite dates."""
    if isinstance(column_type, JSON):
        return [None if v is None or (isinstance(v, float) and np.isnan(v)) else json.dumps(v) for v in values]
    if isinstance(column_type, DateTime):
        return [None if pd.isna(v) else pd.Timestamp(v).to_pydatetime() for v in values]
    if isinstance(column_type, Date):
        days = pd.to_datetime(values)
        text = days.dt.strftime("%Y-%m-%d")
        out = text if dialect == "sqlite" else days.dt.date
        return out.astype(object).where(days.notna(), None).tolist()
    if isinstance(column_type, Boolean):
        return [bool(v) for v in values]
    if pd.api.types.is_extension_array_dtype(values.dtype) or pd.api.types.is_float_dtype(values.dtype):
        return values.astype(object).where(values.notna(), None).tolist()
    if not values.isna().any():
        return values.tolist()
    return values.astype(object).where(values.notna(), None).tolist()
