"""The audit trail on SQLite and PostgreSQL: append-only in the database, hash-chained, verified and exported."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from safety_dash.audit import ACTIONS, export_events, record_event, verify_chain
from safety_dash.audit.trail import EXPORT_COLUMNS, GENESIS_HASH, row_digest
from safety_dash.cli import main
from safety_dash.db.engine import get_engine


def _three_events(engine) -> None:
    with engine.begin() as connection:
        record_event(connection, "ann", "sign_in", "user", "ann", address="10.0.0.1")
        record_event(connection, "ann", "review", "ae", "T1|T1-001|1", study_id="T1",
                     before={"status": "not reviewed"}, after={"status": "reviewed"})  # fmt: skip
        record_event(connection, "ann", "alert_acknowledged", "alert", 7, study_id="T1", reason="SAE =1+2 noted")


def test_record_event_chains_each_row_to_the_one_before(database_url):
    engine = get_engine(database_url)
    _three_events(engine)
    with engine.connect() as connection:
        events = export_events(connection)
        assert verify_chain(connection) == (3, None)
    assert list(events.columns) == EXPORT_COLUMNS
    assert events["id"].tolist() == [1, 2, 3]
    assert events["prev_hash"].iloc[0] == GENESIS_HASH
    assert events["prev_hash"].tolist()[1:] == events["row_hash"].tolist()[:2]
    # The hash is SHA-256 over the previous hash and the row's fields, recomputed here from the exported row.
    first = events.iloc[0].to_dict()
    first["occurred_at"] = pd.Timestamp(first["occurred_at"]).to_pydatetime()
    assert row_digest(GENESIS_HASH, first) == events["row_hash"].iloc[0]
    assert json.loads(events["after"].iloc[1]) == {"status": "reviewed"}
    assert events["occurred_at"].str.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$").all()


def test_record_event_refuses_an_unknown_action(database_url):
    engine = get_engine(database_url)
    with engine.begin() as connection, pytest.raises(ValueError, match="audit action 'deleted' is not one of"):
        record_event(connection, "ann", "deleted", "ae", "K")
    assert "sign_in_failed" in ACTIONS


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET actor = 'eve' WHERE id = 2",
                                       "DELETE FROM audit_events WHERE id = 2"])  # fmt: skip
def test_the_database_refuses_update_and_delete(database_url, statement):
    engine = get_engine(database_url)
    _three_events(engine)
    with pytest.raises(DBAPIError, match="audit_events is append-only"):
        with engine.begin() as connection:
            connection.execute(text(statement))
    with engine.connect() as connection:
        assert verify_chain(connection) == (3, None)


def _drop_triggers(connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    else:
        connection.execute(text("DROP TRIGGER audit_events_no_update"))
        connection.execute(text("DROP TRIGGER audit_events_no_delete"))


def test_audit_verify_finds_a_row_altered_or_removed_around_the_triggers(database_url, monkeypatch, capsys):
    engine = get_engine(database_url)
    _three_events(engine)
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", database_url)
    assert main(["audit", "verify"]) == 0
    assert capsys.readouterr().out == "audit trail verified: 3 rows, each chained to the one before it\n"
    with engine.begin() as connection:
        _drop_triggers(connection)
        connection.execute(text('UPDATE audit_events SET after = \'{"status": "not reviewed"}\' WHERE id = 2'))
    assert main(["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("audit trail broken at row 2: its content does not match its row_hash")
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = 2"))
    assert main(["audit", "verify"]) == 1
    assert capsys.readouterr().out.startswith("audit trail broken at row 3: row 2 is missing")


def test_audit_export_csv_and_json_since_a_date(database_url, monkeypatch, capsys):
    engine = get_engine(database_url)
    _three_events(engine)
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", database_url)
    assert main(["audit", "export", "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out), keep_default_na=False, dtype=str)
    assert list(table.columns) == EXPORT_COLUMNS
    assert table["action"].tolist() == ["sign_in", "review", "alert_acknowledged"]
    assert main(["audit", "export", "--since", "2999-01-01", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    with engine.connect() as connection:  # each export is itself in the trail, after the rows it wrote out
        trail = export_events(connection)
    assert trail["action"].tolist() == ["sign_in", "review", "alert_acknowledged", "audit_exported", "audit_exported"]
    assert json.loads(trail["after"].iloc[3]) == {"rows": 3, "since": None, "format": "csv"}
