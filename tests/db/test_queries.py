"""Named queries: loaded by name, parameters bound, unknown names refused with a sentence."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from safety_dash.db.queries import QUERIES_DIR, load_query_text, run_query, run_query_chunks


def test_run_query_binds_parameters_instead_of_formatting_them(database_url):
    from safety_dash.db.engine import get_engine

    hostile = "T1' OR '1'='1"
    rows = run_query(get_engine(database_url), "latest_cut", study_id=hostile)
    assert rows.empty


def test_run_query_chunks_streams_in_chunks_and_leaves_the_connection_as_it_was(database_url):
    # Streaming options on the connection itself turned the next statement (a savepoint) into a cursor on PostgreSQL.
    from sqlalchemy import insert

    from safety_dash.db.engine import get_engine
    from safety_dash.db.models import IngestionRun, Study, utcnow

    engine = get_engine(database_url)
    with engine.begin() as connection:
        connection.execute(insert(Study.__table__).values(study_id="S1"))
        connection.execute(insert(IngestionRun.__table__), [
            {"source": "x", "trigger": "cli", "status": "succeeded", "study_id": "S1", "cutoff": utcnow().date(),
             "started_at": utcnow(), "derived_at": utcnow()} for _ in range(5)])  # fmt: skip
        chunks = list(run_query_chunks(connection, "web_cuts", 2, study_id="S1"))
        assert [len(chunk) for chunk in chunks] == [2, 2, 1]
        assert sorted(pd.concat(chunks)["run_id"]) == sorted(run_query(connection, "web_cuts", study_id="S1")["run_id"])
        with connection.begin_nested():  # a savepoint: a plain statement again
            assert run_query(connection, "web_cuts", study_id="S1").shape[0] == 5
    assert [len(c) for c in run_query_chunks(engine, "web_cuts", 10, study_id="nobody")] == [0]


def test_load_query_text_refuses_an_unknown_name():
    with pytest.raises(ValueError, match="query 'nope' does not exist"):
        load_query_text("nope")


@pytest.mark.parametrize("path", sorted(QUERIES_DIR.glob("*.sql")), ids=lambda p: p.stem)
def test_query_comments_hold_no_bind_parameters(path):
    # A ":name" inside a comment is still read as a bind parameter by SQLAlchemy's text().
    comments = [line for line in path.read_text().splitlines() if line.lstrip().startswith("--")]
    assert [c for c in comments if re.search(r"(?<!:):[A-Za-z_]", c)] == []
