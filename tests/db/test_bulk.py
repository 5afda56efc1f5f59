"""Bulk inserts keep every value as it was: '' apart from NULL, quotes, separators and line breaks inside text,
NaN / NA / NaT as NULL, dates, flags and JSON (COPY in CSV on PostgreSQL, executemany on SQLite)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import JSON, Boolean, Column, Date, DateTime, Float, Integer, MetaData, Table, Text, select

from safety_dash.db.bulk import CHUNK_ROWS, bulk_insert
from safety_dash.db.engine import get_engine

PROBE = Table(
    "bulk_probe",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("text", Text),
    Column("number", Float),
    Column("whole", Integer),
    Column("day", Date),
    Column("moment", DateTime(timezone=True)),
    Column("flag", Boolean),
    Column("extra", JSON),
)

AWKWARD_TEXTS = ["plain", "", None, 'say "yes", then\nno', "back\\slash\\N", "tab\there\r\nCRLF", "Ölüm, 致命",
                 "\\.", ","]  # fmt: skip


def test_bulk_insert_keeps_every_value_as_it_was(database_url):
    n = len(AWKWARD_TEXTS)
    rows = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "text": AWKWARD_TEXTS,
            "number": [0.1, np.nan, -2.5, 1e-20, 3.0, np.nan, 7.25, 0.0, 1e300],
            "whole": pd.array([1, None, 3, None, 5, 6, 7, 8, 9], dtype="Int64"),
            "day": pd.to_datetime(["2024-02-29", None, "1999-12-31", None, None, None, None, None, "2026-01-01"]),
            "moment": [dt.datetime(2026, 11, 30, 12, 0, 1, 500, tzinfo=dt.UTC)] + [None] * (n - 1),
            "flag": [True, False] * 4 + [True],
            "extra": [{"COHORT": 'A "1"', "NOTE": "x\ny"}, None, {}, None, {"K": "\\"}, None, None, None, None],
        }
    )
    engine = get_engine(database_url)
    with engine.begin() as connection:
        PROBE.create(connection)
        bulk_insert(connection, PROBE, rows)
    with engine.connect() as connection:
        back = connection.execute(select(PROBE).order_by(PROBE.c.id)).mappings().all()
    assert [row["text"] for row in back] == AWKWARD_TEXTS  # '' stays '', None stays NULL
    numbers = [row["number"] for row in back]
    assert numbers[1] is None and numbers[5] is None
    assert [numbers[i] for i in (0, 2, 3, 4, 6, 7, 8)] == [0.1, -2.5, 1e-20, 3.0, 7.25, 0.0, 1e300]  # exact
    assert [row["whole"] for row in back] == [1, None, 3, None, 5, 6, 7, 8, 9]
    days = [row["day"] for row in back]
    days = [None if d is None else pd.Timestamp(d).date() for d in days]
    assert days == [dt.date(2024, 2, 29), None, dt.date(1999, 12, 31), None, None, None, None, None,
                    dt.date(2026, 1, 1)]  # fmt: skip
    moment = pd.Timestamp(back[0]["moment"])
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    assert moment == pd.Timestamp("2026-11-30 12:00:01.000500", tz="UTC")
    assert [bool(row["flag"]) for row in back] == [True, False] * 4 + [True]
    assert back[0]["extra"] == {"COHORT": 'A "1"', "NOTE": "x\ny"} and back[4]["extra"] == {"K": "\\"}
    assert back[1]["extra"] is None


def test_bulk_insert_writes_more_rows_than_one_chunk(database_url):
    n = CHUNK_ROWS + 7
    rows = pd.DataFrame({"id": np.arange(1, n + 1), "text": np.where(np.arange(n) % 2 == 0, "even", "")})
    engine = get_engine(database_url)
    with engine.begin() as connection:
        PROBE.create(connection)
        bulk_insert(connection, PROBE, rows)
    with engine.connect() as connection:
        found = connection.execute(select(PROBE.c.id, PROBE.c.text).order_by(PROBE.c.id)).fetchall()
    assert len(found) == n
    assert found[-1] == (n, "even" if (n - 1) % 2 == 0 else "")
    assert sum(1 for _, t in found if t == "") == n // 2
