"""The pages' review numbers: the backlog of the demo's cut 3 (counted independently in SQL), statuses joined to
records, comment summaries, the query queue and its history, and the audit trail's filters and CSV."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import sqlite3
from types import SimpleNamespace

import pandas as pd
import pytest
from sqlalchemy import text

from safety_dash.db.engine import dispose_engine, get_engine
from safety_dash.review import load_cut_review_status, review_records
from safety_dash.views.review import (
    audit_csv,
    comments_text,
    compute_ae_backlog,
    compute_subject_backlog,
    derive_review_columns,
    filter_audit_events,
    flag_review_status,
    load_cut_review,
    load_query_history,
    load_query_queue,
    load_review_token,
    save_comment,
    save_query_status,
    save_reviews,
    save_subject_review,
    summarise_comments,
)

STUDY = "QL1706-DEMO"


@pytest.fixture
def demo(signal_demo_db, tmp_path):
    """A copy of the demo study (500 subjects, three cuts, as `make demo` loads it): (engine, run ids)."""
    path = tmp_path / "review.db"
    with sqlite3.connect(signal_demo_db.url.removeprefix("sqlite:///")) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    url = f"sqlite:///{path}"
    yield get_engine(url), signal_demo_db.run_ids
    dispose_engine(url)


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


CUT_RECORDS = "SELECT count(*) FROM derived_events WHERE run_id = :run"
CUT_RECORDS_FROM = """SELECT count(*) FROM derived_events d JOIN ae_versions a ON a.id = d.ae_version_id
                      WHERE d.run_id = :run AND a.valid_from_run {op} :run"""
CUT_CHANGE = "SELECT count(*) FROM derived_events WHERE run_id = :run AND record_change = :change"
CUT_SUBJECTS = "SELECT count(*) FROM derived_subjects WHERE run_id = :run"


def _review_whole_cut(engine, run_id: int, username: str = "mona") -> None:
    for record_type in ("ae", "subject"):
        records = load_cut_review_status(engine, STUDY, run_id, record_type)
        with engine.begin() as connection:
            review_records(connection, STUDY, record_type, zip(records["record_key"], records["version_id"],
                                                               strict=True), username)  # fmt: skip


# --- the backlog of the demo's cut 3 ---------------------------------------------------------------------------


def test_backlog_of_cut_3_with_nothing_reviewed_is_every_record(demo):
    engine, (_, _, cut3) = demo
    review = load_cut_review(engine, STUDY, cut3)
    n_records, n_subjects = _count(engine, CUT_RECORDS, run=cut3), _count(engine, CUT_SUBJECTS, run=cut3)
    assert n_records == 1076 and n_subjects == 500  # the demo as `make demo` loads it
    assert compute_ae_backlog(review, review.ae.index) == {
        "not reviewed": n_records, "outdated": 0, "reviewed": 0, "needs review": n_records
    }  # fmt: skip
    assert compute_subject_backlog(review)["needs review"] == n_subjects


def test_backlog_of_cut_3_after_cut_2_was_reviewed_is_its_new_and_changed_records(demo):
    engine, (_, cut2, cut3) = demo
    _review_whole_cut(engine, cut2)
    review = load_cut_review(engine, STUDY, cut3)
    made_by_cut3 = _count(engine, CUT_RECORDS_FROM.format(op="="), run=cut3)
    kept_from_before = _count(engine, CUT_RECORDS_FROM.format(op="<"), run=cut3)
    new, changed = _count(engine, CUT_CHANGE, run=cut3, change="new"), _count(engine, CUT_CHANGE, run=cut3,
                                                                              change="changed")  # fmt: skip
    assert (made_by_cut3, new, changed) == (364, 294, 70)
    assert compute_ae_backlog(review, review.ae.index) == {
        "not reviewed": new, "outdated": changed, "reviewed": kept_from_before, "needs review": made_by_cut3
    }  # fmt: skip


def test_the_backlog_of_some_records_counts_only_them(demo):
    engine, (_, cut2, cut3) = demo
    _review_whole_cut(engine, cut2)
    review = load_cut_review(engine, STUDY, cut3)
    with engine.connect() as connection:
        new = connection.execute(
            text(
                "SELECT ae_version_id FROM derived_events WHERE run_id = :run AND "
                "record_change = 'new' ORDER BY ae_version_id LIMIT 5"
            ),
            {"run": cut3},
        ).scalars()
        new = list(new)  # fmt: skip
    assert compute_ae_backlog(review, new) == {"not reviewed": 5, "outdated": 0, "reviewed": 0, "needs review": 5}
    assert flag_review_status(review, new, "needs").tolist() == [True] * 5
    assert flag_review_status(review, new, "reviewed").tolist() == [False] * 5
    with pytest.raises(ValueError, match="review filter 'nope' is not one of"):
        flag_review_status(review, new, "nope")


@dataclasses.dataclass(frozen=True, eq=False)
class CutSource:
    """What a page holds of a cut: its engine, run id, study and events (AE_ID, USUBJID)."""

    context: SimpleNamespace
    run_id: int
    frames: SimpleNamespace


def _source(engine, run_id: int) -> CutSource:
    with engine.connect() as connection:
        events = pd.DataFrame(connection.execute(text(
            "SELECT ae_version_id AS AE_ID, usubjid AS USUBJID FROM derived_events WHERE run_id = :run ORDER BY 2, 1"
        ), {"run": run_id}).all(), columns=["AE_ID", "USUBJID"])  # fmt: skip
    return CutSource(SimpleNamespace(engine=engine), run_id, SimpleNamespace(events=events))


STATUS = ["record_key", "version_id", "usubjid", "REVIEW_STATUS", "REVIEWED_BY", "REVIEWED_AT", "REVIEWED_VERSION"]


def test_the_statuses_are_those_of_the_review_package_with_or_without_a_cut_source(demo):
    engine, (_, cut2, cut3) = demo
    _review_whole_cut(engine, cut2)
    with engine.connect() as connection:
        new = list(connection.execute(text(
            "SELECT ae_version_id FROM derived_events WHERE run_id = :run AND record_change <> 'unchanged' "
            "ORDER BY ae_version_id LIMIT 5"), {"run": cut3}).scalars())  # fmt: skip
    assert save_reviews(engine, STUDY, cut3, new[:4], "ana") == 4
    assert save_reviews(engine, STUDY, cut3, new[:1], "ana", reviewed=False) == 1  # withdrawn
    save_comment(engine, STUDY, cut3, "ana", "Only a comment.", version_id=new[4])
    expected = load_cut_review_status(engine, STUDY, cut3).set_index("version_id", drop=False).sort_index()
    assert expected["REVIEW_STATUS"].value_counts()["reviewed"] == 712 + 3
    for source in (None, _source(engine, cut3)):
        review = load_cut_review(engine, STUDY, cut3, source=source)
        shown = review.ae.sort_index()
        assert shown.index.tolist() == expected.index.tolist()
        for column in ("REVIEW_STATUS", "REVIEWED_BY", "usubjid"):
            assert shown[column].astype(object).tolist() == expected[column].astype(object).tolist(), column
        assert shown["REVIEWED_VERSION"].astype("Float64").equals(expected["REVIEWED_VERSION"].astype("Float64"))
        assert shown["REVIEWED_AT"].tolist() == expected["REVIEWED_AT"].tolist()
        known = shown["record_key"].notna()  # from a source: the keys of records with a review or a comment
        assert (shown.loc[known, "record_key"] == expected.loc[known, "record_key"]).all()
        assert known[shown["REVIEW_STATUS"] != "not reviewed"].all() and known[new[4]]
        subjects = load_cut_review_status(engine, STUDY, cut3, "subject").set_index("usubjid")
        assert review.subjects["REVIEW_STATUS"].sort_index().tolist() == subjects["REVIEW_STATUS"].sort_index().tolist()


# --- writing through the views ------------------------------------------------------------------------------


def test_save_reviews_changes_the_status_of_those_records_only(demo):
    engine, (_, _, cut3) = demo
    before = load_cut_review(engine, STUDY, cut3)
    chosen = list(before.ae.index[:3])
    token = load_review_token(engine)
    assert save_reviews(engine, STUDY, cut3, [str(v) for v in chosen], "mona", address="10.0.0.7") == 3
    assert load_review_token(engine) == (token[0] + 3, *token[1:])  # one review row per record
    after = load_cut_review(engine, STUDY, cut3)
    columns = derive_review_columns(after, chosen + [before.ae.index[3]])
    assert columns["REVIEW_STATUS"].tolist() == ["reviewed", "reviewed", "reviewed", "not reviewed"]
    assert columns["REVIEWED_BY"].tolist() == ["mona", "mona", "mona", None]
    assert compute_ae_backlog(after, after.ae.index)["reviewed"] == 3
    # Withdrawn: back to not reviewed; again: nothing changes.
    assert save_reviews(engine, STUDY, cut3, chosen[:1], "mona", reviewed=False) == 1
    assert save_reviews(engine, STUDY, cut3, chosen[:1], "mona", reviewed=False) == 0
    assert derive_review_columns(load_cut_review(engine, STUDY, cut3), chosen[:1])["REVIEW_STATUS"].tolist() == [
        "not reviewed"
    ]


@pytest.mark.parametrize(
    ("versions", "message"),
    [([], "select the records first"), ([999999999], "not in data cut"), (["x"], "not a record of this cut")],
)
def test_save_reviews_refuses_with_a_sentence(demo, versions, message):
    engine, (_, _, cut3) = demo
    with pytest.raises(ValueError, match=message):
        save_reviews(engine, STUDY, cut3, versions, "mona")


def test_save_subject_review_reviews_the_subject_and_every_record_of_it(demo):
    engine, (_, _, cut3) = demo
    usubjid = "QL1706-DEMO-01-0452"
    n_records = _count(engine, "SELECT count(*) FROM derived_events WHERE run_id = :run AND usubjid = :s",
                       run=cut3, s=usubjid)  # fmt: skip
    assert n_records == 2
    assert save_subject_review(engine, STUDY, cut3, usubjid, "mona") == (1, 2)
    review = load_cut_review(engine, STUDY, cut3)
    assert review.subjects.loc[usubjid, "REVIEW_STATUS"] == "reviewed"
    records = review.ae.loc[review.ae["usubjid"] == usubjid]
    assert records["REVIEW_STATUS"].tolist() == ["reviewed", "reviewed"]
    assert compute_ae_backlog(review, review.ae.index)["reviewed"] == 2
    assert save_subject_review(engine, STUDY, cut3, usubjid, "mona") == (0, 0)


def test_comments_queue_and_history(demo):
    engine, (_, _, cut3) = demo
    version = int(load_cut_review(engine, STUDY, cut3).ae.index[0])
    save_comment(engine, STUDY, cut3, "mona", "Looks fine.", version_id=version)
    query_id = save_comment(engine, STUDY, cut3, "mona", "=1+2 please check", version_id=version, raise_query=True)
    save_comment(engine, STUDY, cut3, "mona", "DM date of death?", usubjid="QL1706-DEMO-01-0452", raise_query=True)
    review = load_cut_review(engine, STUDY, cut3)
    key = review.ae.loc[version, "record_key"]
    assert derive_review_columns(review, [version])[["COMMENTS", "LAST_COMMENT"]].values.tolist() == [
        ["2 · 1 open query", "=1+2 please check"]
    ]
    queue = load_query_queue(engine, STUDY)
    assert queue["query_status"].tolist() == ["open", "open"]
    assert queue["record"].tolist()[0] == "Subject" and queue["record"].tolist()[1].startswith("AE 1 · ")
    assert queue.loc[queue["comment_id"] == query_id, "usubjid"].item() == review.ae.loc[version, "usubjid"]
    save_query_status(engine, STUDY, query_id, "answered", "ana", "Site corrected it.")
    save_query_status(engine, STUDY, query_id, "closed", "ana", "Verified.")
    history = load_query_history(engine, STUDY, query_id)
    assert history[["who", "from", "to", "reason"]].values.tolist() == [
        ["ana", "open", "answered", "Site corrected it."],
        ["ana", "answered", "closed", "Verified."],
    ]
    assert load_query_queue(engine, STUDY, "closed")[["comment_id", "changed_by", "reason"]].values.tolist() == [
        [query_id, "ana", "Verified."]
    ]
    assert key.startswith(review.ae.loc[version, "usubjid"])
    with pytest.raises(ValueError, match="is not a query of study OTHER"):
        save_query_status(engine, "OTHER", query_id, "open", "ana", "reopen")
    with pytest.raises(ValueError, match="the comment is empty"):
        save_comment(engine, STUDY, cut3, "mona", "  ", version_id=version)


# --- small tables ---------------------------------------------------------------------------------------------


def test_summarise_comments_counts_comments_and_open_queries():
    at = pd.Timestamp("2024-05-01 09:30", tz="UTC")
    comments = pd.DataFrame(
        [
            # comment_id, record_type, record_key, username, created_at, text, query_status
            (1, "ae", "S1|1", "mona", at, "first", None),
            (2, "ae", "S1|1", "mona", at, "a query", "open"),
            (3, "ae", "S1|1", "ana", at + pd.Timedelta(hours=1), "second query", "closed"),
            (4, "subject", "S1", "mona", at, "on the subject", "open"),
        ],
        columns=["comment_id", "record_type", "record_key", "username", "created_at", "text", "query_status"],
    )
    summary = summarise_comments(comments)
    assert summary.loc[("ae", "S1|1")].tolist() == [
        3,
        1,
        "second query",
        "ana, 2024-05-01 10:30 UTC",
        "3 · 1 open query",
    ]
    assert summary.loc[("subject", "S1")].tolist() == [
        1,
        1,
        "on the subject",
        "mona, 2024-05-01 09:30 UTC",
        "1 · 1 open query",
    ]
    assert summarise_comments(comments.iloc[:0]).empty


@pytest.mark.parametrize(
    ("n_comments", "n_open", "expected"),
    [(None, None, ""), (0, 0, ""), (2, 0, "2"), (2, 1, "2 · 1 open query"), (3, 2, "3 · 2 open queries")],
)
def test_comments_text(n_comments, n_open, expected):
    assert comments_text(n_comments, n_open) == expected


def _trail() -> pd.DataFrame:
    rows = [
        # id, occurred_at, actor, action, object_type, object_id, study_id, before, after, reason
        (1, "2024-05-01T08:00:00.000000Z", "mona", "sign_in", "user", "mona", None, None, None, None),
        (2, "2024-05-01T09:00:00.000000Z", "mona", "review", "ae", "S1|1", "T1", '{"status": "not reviewed"}',
         '{"status": "reviewed"}', None),
        (3, "2024-05-02T10:00:00.000000Z", "mona", "comment", "ae", "S1|1", "T1", None, '{"text": "Rash?"}', None),
        (4, "2024-05-03T11:00:00.000000Z", "ana", "query_status", "ae", "S1|1", "T2", None, None, "=1+2"),
    ]  # fmt: skip
    frame = pd.DataFrame(rows, columns=["id", "occurred_at", "actor", "action", "object_type", "object_id",
                                        "study_id", "before", "after", "reason"])  # fmt: skip
    return frame.assign(address="10.0.0.1", prev_hash="0" * 64, row_hash="a" * 64)


@pytest.mark.parametrize(
    ("filters", "expected_ids"),
    [
        ({}, [4, 3, 2, 1]),  # newest first
        ({"actor": "mona"}, [3, 2, 1]),
        ({"action": "review"}, [2]),
        ({"study_id": "T1"}, [3, 2]),
        ({"since": dt.date(2024, 5, 2)}, [4, 3]),  # both days inclusive
        ({"until": dt.date(2024, 5, 2)}, [3, 2, 1]),
        ({"since": dt.date(2024, 5, 2), "until": dt.date(2024, 5, 2)}, [3]),
        ({"text": "rash"}, [3]),  # in the values, case-insensitive
        ({"text": "s1|1", "actor": "ana"}, [4]),
        ({"text": "   "}, [4, 3, 2, 1]),
    ],
)
def test_filter_audit_events(filters, expected_ids):
    assert filter_audit_events(_trail(), **filters)["id"].tolist() == expected_ids


def test_audit_csv_neutralises_formulas_and_keeps_every_column():
    frame = pd.read_csv(io.StringIO(audit_csv(_trail())), dtype=str, keep_default_na=False)
    assert list(frame.columns)[-2:] == ["prev_hash", "row_hash"] and len(frame.columns) == 13
    assert frame["reason"].tolist() == ["", "", "", "'=1+2"]
