"""Review, comments and queries on stored cuts, on SQLite and PostgreSQL: status across cuts, and the audit trail."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sqlalchemy import select

from safety_dash.audit import verify_chain
from safety_dash.db.engine import get_engine
from safety_dash.db.models import AuditEvent
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.review import (
    add_comment,
    compute_review_backlog,
    load_comments,
    load_cut_review_status,
    review_records,
    set_query_status,
)
from tests.ingest.builders import standard_extract, write_extract

CUTOFF = pd.Timestamp("2021-06-30").date()


@pytest.fixture
def three_cuts(database_url, tmp_path):
    """Cut 1: the standard extract (4 AE records). Cut 2: the same extract again. Cut 3: T1-001's Rash (AESEQ 1)
    regraded from 2 to 3, everything else unchanged."""
    runs = []
    for name, regrade in (("cut1", False), ("cut2", False), ("cut3", True)):
        extract = standard_extract()
        if regrade:
            extract["ae"][0]["AETOXGR"] = "3"
        result = ingest_extract(database_url, write_extract(tmp_path / name, extract), cutoff=CUTOFF)
        assert result.status == "succeeded", result.message
        runs.append(result.run_id)
    return get_engine(database_url), runs


def test_review_stays_through_an_unchanged_cut_and_is_outdated_by_a_change(three_cuts):
    engine, (cut1, cut2, cut3) = three_cuts
    records = load_cut_review_status(engine, "T1", cut1)
    assert set(records["REVIEW_STATUS"]) == {"not reviewed"} and len(records) == 4
    with engine.begin() as connection:
        changed = review_records(
            connection, "T1", "ae", zip(records["record_key"], records["version_id"], strict=True), "mona"
        )
    assert changed == 4
    assert set(load_cut_review_status(engine, "T1", cut2)["REVIEW_STATUS"]) == {"reviewed"}  # no change: kept
    cut3_status = load_cut_review_status(engine, "T1", cut3)
    regraded = cut3_status["record_key"] == records["record_key"].iloc[0]  # T1-001's first record
    assert records["usubjid"].iloc[0] == "T1-001"
    assert cut3_status.loc[regraded, "REVIEW_STATUS"].tolist() == ["outdated"]
    assert cut3_status.loc[~regraded, "REVIEW_STATUS"].tolist() == ["reviewed"] * 3
    assert compute_review_backlog(cut3_status) == {"not reviewed": 0, "outdated": 1, "reviewed": 3, "needs review": 1}
    # Reviewing the same records again changes nothing and writes nothing.
    with engine.begin() as connection:
        assert (
            review_records(
                connection, "T1", "ae", zip(records["record_key"], records["version_id"], strict=True), "mona"
            )
            == 0
        )


def test_review_unreview_comment_and_query_are_in_the_trail_with_before_and_after(three_cuts):
    engine, (_, _, cut3) = three_cuts
    records = load_cut_review_status(engine, "T1", cut3)
    key, version = records["record_key"].iloc[0], int(records["version_id"].iloc[0])
    with engine.begin() as connection:
        review_records(connection, "T1", "ae", [(key, version)], "mona", address="10.0.0.7")
        review_records(connection, "T1", "ae", [(key, version)], "mona", reviewed=False)
        query = add_comment(connection, "T1", "ae", key, "T1-001", version, "mona", "Please confirm the grade.",
                            raise_query=True)  # fmt: skip
        add_comment(connection, "T1", "ae", key, "T1-001", version, "mona", "Looks like irAE.")
        set_query_status(connection, query, "answered", "mona", "Site: grade 3 confirmed")
        with pytest.raises(ValueError, match="query .* is answered; it can become closed or open, not answered"):
            set_query_status(connection, query, "answered", "mona", "again")
        set_query_status(connection, query, "closed", "mona", "Answer accepted")
    with engine.connect() as connection:
        rows = connection.execute(select(AuditEvent.__table__).order_by(AuditEvent.id)).all()
        assert verify_chain(connection) == (len(rows), None)
    actions = [(r.action, r.object_type, r.object_id) for r in rows if r.object_id == key]
    assert [a for a, _, _ in actions] == ["review", "unreview", "comment", "comment", "query_status", "query_status"]
    review, unreview = rows[-6], rows[-5]
    assert json.loads(review.before) == {"status": "not reviewed", "version_id": version}
    assert json.loads(review.after) == {"status": "reviewed", "version_id": version}
    assert (review.actor, review.address, review.study_id) == ("mona", "10.0.0.7", "T1")
    assert json.loads(unreview.after)["status"] == "not reviewed"
    closing = rows[-1]
    assert json.loads(closing.before)["query_status"] == "answered"
    assert (json.loads(closing.after)["query_status"], closing.reason) == ("closed", "Answer accepted")
    comments = load_comments(engine, "T1")
    assert comments["text"].tolist() == ["Looks like irAE.", "Please confirm the grade."]
    assert comments["query_status"].tolist() == [None, "closed"]


def test_comment_and_query_refuse_bad_input(three_cuts):
    engine, (_, _, cut3) = three_cuts
    with engine.begin() as connection:
        with pytest.raises(ValueError, match="the comment is empty"):
            add_comment(connection, "T1", "ae", "K", "T1-001", 1, "mona", "   ")
        plain = add_comment(connection, "T1", "subject", "T1-001", "T1-001", 1, "mona", "Check ECG.")
        with pytest.raises(ValueError, match=f"comment {plain} is not a data query"):
            set_query_status(connection, plain, "closed", "mona", "n/a")
        with pytest.raises(ValueError, match="record type 'lab' is not one of ae, subject"):
            review_records(connection, "T1", "lab", [("K", 1)], "mona")
