"""The review, comment, data query and audit callbacks answered over HTTP as the browser calls them, on a copy of
the demo study (as `make demo` loads it) whose cut 2 a monitor reviewed whole: cut 3's backlog is then its new and
changed records, counted here in SQL."""

from __future__ import annotations

import dataclasses
import io
import json
import re
import sqlite3

import pandas as pd
import pytest
from sqlalchemy import text

from safety_dash.db.engine import dispose_engine, get_engine
from safety_dash.review import load_cut_review_status, review_records
from safety_dash.web import ids
from safety_dash.web.auth import create_user
from safety_dash.web.dashcall import call_callback
from tests.web.conftest import PASSWORD, USERNAME, sign_in_client

STUDY = "QL1706-DEMO"
ADMIN, COMMITTEE = "review.admin", "review.committee"


@dataclasses.dataclass(frozen=True)
class Demo:
    engine: object
    run_ids: tuple[int, ...]

    def count(self, sql: str, **params) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(text(sql), params).scalar_one())

    @property
    def search(self) -> str:
        return f"?study={STUDY}&cut={self.run_ids[-1]}"


@pytest.fixture
def demo(signal_demo_db, tmp_path):
    """A copy of the 500-subject demo with an admin and a committee member; cut 2 reviewed whole by "mona"."""
    path = tmp_path / "review-web.db"
    with sqlite3.connect(signal_demo_db.url.removeprefix("sqlite:///")) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    url = f"sqlite:///{path}"
    engine = get_engine(url)
    create_user(engine, ADMIN, PASSWORD, "admin", actor="test")
    create_user(engine, COMMITTEE, PASSWORD, "committee", actor="test")
    for record_type in ("ae", "subject"):
        records = load_cut_review_status(engine, STUDY, signal_demo_db.run_ids[1], record_type)
        with engine.begin() as connection:
            review_records(connection, STUDY, record_type, zip(records["record_key"], records["version_id"],
                                                               strict=True), "mona")  # fmt: skip
    yield Demo(engine, signal_demo_db.run_ids)
    dispose_engine(url)


@pytest.fixture
def app(demo, settings):
    from safety_dash.web.app import create_app

    return create_app(dataclasses.replace(settings, database_url=str(demo.engine.url)), engine=demo.engine)


def _client(app, username=USERNAME):
    client = app.server.test_client()
    assert sign_in_client(client, username, PASSWORD).status_code == 302
    return client


@pytest.fixture
def call(app):
    """call(output, inputs, state, as_user=monitor) -> outputs; the answer must be 200."""
    clients = {}

    def _call(output, inputs, state=None, as_user=USERNAME):
        if as_user not in clients:
            clients[as_user] = _client(app, as_user)
        answer = call_callback(clients[as_user], app, output, inputs, state)
        assert answer.status == 200, (output, answer)
        return answer.outputs

    return _call


def _text(component) -> str:
    return json.dumps(component, ensure_ascii=False)


def _page(call, search: str, start: int = 0, end: int = 100) -> dict:
    out = call(f"{ids.LISTING_GRID}.getRowsResponse", {f"{ids.LISTING_GRID}.getRowsRequest": {"startRow": start,
                                                                                               "endRow": end}},
               {"url.search": search})  # fmt: skip
    return out[ids.LISTING_GRID]["getRowsResponse"]


NEW_OR_CHANGED = """SELECT count(*) FROM derived_events d JOIN ae_versions a ON a.id = d.ae_version_id
                    WHERE d.run_id = :run AND a.valid_from_run = :run"""
BY_CHANGE = "SELECT count(*) FROM derived_events WHERE run_id = :run AND record_change = :change"


# --- the backlog -------------------------------------------------------------------------------------------------


def test_the_listing_counts_cut_3s_backlog_per_review_filter(call, demo):
    cut3 = demo.run_ids[-1]
    needs = demo.count(NEW_OR_CHANGED, run=cut3)
    new, changed = demo.count(BY_CHANGE, run=cut3, change="new"), demo.count(BY_CHANGE, run=cut3, change="changed")
    total = demo.count("SELECT count(*) FROM derived_events WHERE run_id = :run", run=cut3)
    assert (needs, new, changed, total) == (364, 294, 70, 1076)
    out = call(f"{ids.LISTING_COUNT}.children", {"url.search": demo.search + "&review=needs"})
    assert out[ids.LISTING_COUNT]["children"] == f"{needs} AE records in data cut {cut3} · needs review"
    links = _text(out[ids.LISTING_REVIEW_FILTER]["children"])
    for label, count in (("All records", total), ("Needs review", needs), ("Not reviewed", new),
                         ("Outdated", changed), ("Reviewed", total - needs)):  # fmt: skip
        assert f'"{label}"' in links and f'"{count:,}"' in links
    assert "review=outdated" in links and "review=needs" in links
    page = _page(call, demo.search + "&review=outdated")
    assert page["rowCount"] == changed and {row["REVIEW_STATUS"] for row in page["rowData"]} == {"outdated"}
    assert {row["REVIEWED_BY"] for row in page["rowData"]} == {"mona"}  # who reviewed the earlier version


def test_the_overview_shows_the_backlog(call, demo):
    out = call(f"{ids.OVERVIEW_REVIEW}.children", {"url.search": demo.search})
    panel = _text(out[ids.OVERVIEW_REVIEW]["children"])
    subjects = demo.count("""SELECT count(*) FROM derived_subjects d JOIN subject_versions s
                             ON s.id = d.subject_version_id WHERE d.run_id = :run AND s.valid_from_run = :run""",
                          run=demo.run_ids[-1])  # fmt: skip
    for label, value in (("AE records needing review", "364"), ("of which never reviewed", "294"),
                         ("of which changed since their review", "70"), ("AE records reviewed", "712"),
                         ("Subjects needing review", f"{subjects}"), ("Open data queries", "0")):  # fmt: skip
        assert re.search(re.escape(f'"{label}"') + r'.{0,160}"' + value + '"', panel), label
    assert "review=needs" in panel


# --- reviewing ---------------------------------------------------------------------------------------------------


def test_reviewing_ticked_records_takes_them_out_of_the_backlog_and_withdrawing_puts_them_back(call, demo):
    needs = demo.search + "&review=needs"
    before = _page(call, needs)
    ticked = before["rowData"][:2]
    assert before["rowCount"] == 364 and all(row["REVIEW_STATUS"] in ("not reviewed", "outdated") for row in ticked)
    out = call(f"{ids.LISTING_REVIEW_MESSAGE}.children", {f"{ids.LISTING_REVIEW_BUTTON}.n_clicks": 1},
               {f"{ids.LISTING_GRID}.selectedRows": ticked, "url.search": needs,
                f"{ids.LISTING_REVIEW_REFRESH}.data": 3})  # fmt: skip
    assert "2 of 2 selected records marked reviewed." in _text(out[ids.LISTING_REVIEW_MESSAGE]["children"])
    assert out[ids.LISTING_REVIEW_REFRESH]["data"] == 4 and out[ids.LISTING_GRID]["selectedRows"] == []
    after = _page(call, needs)
    assert after["rowCount"] == 362 and not {r["AE_ID"] for r in ticked} & {r["AE_ID"] for r in after["rowData"]}
    reviewed = _page(call, demo.search + "&review=reviewed", 0, 1)["rowCount"]
    assert reviewed == 712 + 2 and _page(call, demo.search, 0, 1)["rowCount"] == 1076
    rows = demo.count("SELECT count(*) FROM reviews WHERE username = :u AND reviewed", u=USERNAME)
    assert rows == 2
    out = call(f"{ids.LISTING_REVIEW_MESSAGE}.children", {f"{ids.LISTING_UNREVIEW_BUTTON}.n_clicks": 1},
               {f"{ids.LISTING_GRID}.selectedRows": ticked[:1], "url.search": needs,
                f"{ids.LISTING_REVIEW_REFRESH}.data": 4})  # fmt: skip
    assert "1 of 1 selected record withdrawn from review." in _text(out[ids.LISTING_REVIEW_MESSAGE]["children"])
    assert _page(call, needs)["rowCount"] == 363


def test_reviewing_with_nothing_ticked_says_so(call, demo):
    out = call(f"{ids.LISTING_REVIEW_MESSAGE}.children", {f"{ids.LISTING_REVIEW_BUTTON}.n_clicks": 1},
               {f"{ids.LISTING_GRID}.selectedRows": [], "url.search": demo.search})  # fmt: skip
    assert "select the records first" in _text(out[ids.LISTING_REVIEW_MESSAGE]["children"])
    assert demo.count("SELECT count(*) FROM reviews WHERE username = :u", u=USERNAME) == 0


def test_a_monitor_reviews_a_subject_and_all_its_records_in_one_action(call, demo):
    usubjid = "QL1706-DEMO-01-0452"  # new in cut 3: its DM record and both AE records need review
    search = f"{demo.search}&subject={usubjid}"
    profile = call(f"{ids.SUBJECT_REVIEW}.children", {"url.search": search, f"{ids.SUBJECT_REVIEW_REFRESH}.data": 0})
    strip = _text(profile[ids.SUBJECT_REVIEW]["children"])
    assert '"not reviewed"' in strip and '"2 of 2"' in strip
    assert {row["REVIEW_STATUS"] for row in profile[ids.SUBJECT_EVENTS]["rowData"]} == {"not reviewed"}
    out = call(f"{ids.SUBJECT_REVIEW_MESSAGE}.children", {f"{ids.SUBJECT_REVIEW_BUTTON}.n_clicks": 1},
               {"url.search": search, f"{ids.SUBJECT_REVIEW_REFRESH}.data": 0})  # fmt: skip
    assert "Marked reviewed: the subject record and 2 AE records." in _text(out[ids.SUBJECT_REVIEW_MESSAGE])
    profile = call(f"{ids.SUBJECT_REVIEW}.children", {"url.search": search, f"{ids.SUBJECT_REVIEW_REFRESH}.data": 1})
    strip = _text(profile[ids.SUBJECT_REVIEW]["children"])
    assert '"reviewed"' in strip and f"by {USERNAME} on" in strip and '"0 of 2"' in strip
    assert {row["REVIEWED_BY"] for row in profile[ids.SUBJECT_EVENTS]["rowData"]} == {USERNAME}
    needs = call(f"{ids.SUBJECT_REVIEW}.children", {"url.search": search + "&review=needs",
                                                    f"{ids.SUBJECT_REVIEW_REFRESH}.data": 1})  # fmt: skip
    assert needs[ids.SUBJECT_EVENTS]["rowData"] == []


# --- comments, queries, the trail --------------------------------------------------------------------------------


def test_comment_and_query_show_beside_the_record_in_the_queue_and_in_the_trail(call, demo):
    search = demo.search + "&review=needs"
    record = _page(call, search, 0, 1)["rowData"][0]
    state = {f"{ids.LISTING_RECORD}.data": record["AE_ID"], "url.search": search,
             f"{ids.LISTING_REVIEW_REFRESH}.data": 0}  # fmt: skip
    for text_, query in (("Onset before the first dose?", []), ("=1+2 check the grade", ["query"])):
        out = call(f"{ids.LISTING_COMMENT_MESSAGE}.children", {f"{ids.LISTING_COMMENT_BUTTON}.n_clicks": 1},
                   {**state, f"{ids.LISTING_COMMENT_TEXT}.value": text_,
                    f"{ids.LISTING_COMMENT_QUERY}.value": query})  # fmt: skip
        assert out[ids.LISTING_COMMENT_TEXT]["value"] == ""
    assert "raised to the site" in _text(out[ids.LISTING_COMMENT_MESSAGE]["children"])
    detail = call(f"{ids.LISTING_RECORD_DETAIL}.children", {f"{ids.LISTING_RECORD}.data": record["AE_ID"],
                                                          f"{ids.LISTING_REVIEW_REFRESH}.data": 1,
                                                          "url.search": search})  # fmt: skip
    shown = _text(detail[ids.LISTING_RECORD_DETAIL]["children"])
    assert "Comments (2)" in shown and "=1+2 check the grade" in shown and "query open" in shown
    assert f"version {record['AE_ID']}" in shown
    row = next(r for r in _page(call, search, 0, 1)["rowData"] if r["AE_ID"] == record["AE_ID"])
    assert (row["COMMENTS"], row["LAST_COMMENT"]) == ("2 · 1 open query", "=1+2 check the grade")
    # The queue: the query, open; moved on with a reason.
    queue = call(f"{ids.QUERIES_GRID}.rowData", {"url.search": demo.search, f"{ids.QUERIES_STATUS}.value": "open",
                                                 f"{ids.QUERIES_REFRESH}.data": 0})  # fmt: skip
    (query,) = queue[ids.QUERIES_GRID]["rowData"]
    assert (query["usubjid"], query["text"], query["query_status"], query["raised_by"]) == (
        record["USUBJID"], "=1+2 check the grade", "open", USERNAME)  # fmt: skip
    out = call(f"{ids.QUERIES_MESSAGE}.children", {f"{ids.QUERIES_BUTTON}.n_clicks": 1},
               {f"{ids.QUERIES_SELECTED}.data": query["comment_id"], f"{ids.QUERIES_NEW_STATUS}.value": "answered",
                f"{ids.QUERIES_REASON}.value": "=2+3 the site answered", "url.search": demo.search})  # fmt: skip
    assert f"Query {query['comment_id']} is now answered." in _text(out[ids.QUERIES_MESSAGE])
    shown = call(f"{ids.QUERIES_DETAIL}.children", {f"{ids.QUERIES_SELECTED}.data": query["comment_id"],
                                                   "url.search": demo.search})  # fmt: skip
    assert "=2+3 the site answered" in _text(shown[ids.QUERIES_DETAIL]) and shown[ids.QUERIES_NEW_STATUS][
        "options"
    ] == [{"label": "Closed", "value": "closed"}, {"label": "Open again", "value": "open"}]
    # The listing's CSV holds the comment, neutralised.
    csv = call(f"{ids.LISTING_DOWNLOAD}.data", {f"{ids.LISTING_EXPORT}.n_clicks": 1}, {"url.search": search})
    exported = pd.read_csv(io.StringIO(csv[ids.LISTING_DOWNLOAD]["data"]["content"]), dtype=str,
                           keep_default_na=False)  # fmt: skip
    assert len(exported) == 364 and "'=1+2 check the grade" in exported["Latest comment"].tolist()
    # The admin's export of the trail: every action, formulas neutralised, the chain verified.
    chain = call(f"{ids.AUDIT_CHAIN}.children", {f"{ids.AUDIT_ACTOR}.value": USERNAME}, as_user=ADMIN)
    assert "chain verified" in _text(chain[ids.AUDIT_CHAIN]) and chain[ids.AUDIT_FILTERS]["data"]["actor"] == USERNAME
    out = call(f"{ids.AUDIT_DOWNLOAD}.data", {f"{ids.AUDIT_EXPORT}.n_clicks": 1},
               {f"{ids.AUDIT_FILTERS}.data": {"actor": USERNAME, "study": STUDY}}, as_user=ADMIN)  # fmt: skip
    trail = pd.read_csv(io.StringIO(out[ids.AUDIT_DOWNLOAD]["data"]["content"]), dtype=str, keep_default_na=False)
    assert trail["action"].tolist() == ["comment", "comment", "query_status"]
    assert trail["reason"].tolist() == ["", "", "'=2+3 the site answered"]
    assert json.loads(trail["after"].iloc[1])["text"] == "=1+2 check the grade"  # inside JSON text: safe as it is
    assert set(trail["object_id"]) == {demo_record_key(demo, record["AE_ID"])}


def demo_record_key(demo: Demo, version_id: int) -> str:
    with demo.engine.connect() as connection:
        return connection.execute(text("SELECT record_key FROM ae_versions WHERE id = :v"), {"v": version_id}).scalar()


def test_comment_on_a_subject_and_on_a_clicked_record_of_the_profile(call, demo):
    usubjid = "QL1706-DEMO-01-0452"
    search = f"{demo.search}&subject={usubjid}"
    rows = call(f"{ids.SUBJECT_REVIEW}.children", {"url.search": search})[ids.SUBJECT_EVENTS]["rowData"]
    for version, words in ((None, "DM: date of death?"), (rows[1]["AE_ID"], "Second record: end date?")):
        call(f"{ids.SUBJECT_COMMENT_MESSAGE}.children", {f"{ids.SUBJECT_COMMENT_BUTTON}.n_clicks": 1},
             {f"{ids.SUBJECT_RECORD}.data": version, f"{ids.SUBJECT_COMMENT_TEXT}.value": words,
              f"{ids.SUBJECT_COMMENT_QUERY}.value": [], "url.search": search})  # fmt: skip
    out = call(f"{ids.SUBJECT_COMMENTS}.children", {f"{ids.SUBJECT_RECORD}.data": rows[1]["AE_ID"],
                                                   "url.search": search})  # fmt: skip
    shown = _text(out[ids.SUBJECT_COMMENTS]["children"])
    assert shown.index("Second record: end date?") < shown.index("DM: date of death?")  # newest first
    assert '"Subject"' in shown and f'"AE {rows[1]["AESEQ"]} · {rows[1]["PT"]}"' in shown
    assert f"AE {rows[1]['AESEQ']} · {rows[1]['PT']}" in _text(out[ids.SUBJECT_COMMENT_TARGET])
    assert out[ids.SUBJECT_COMMENT_SUBJECT]["hidden"] is False
    with demo.engine.connect() as connection:
        stored = connection.execute(text("SELECT record_type, version_id FROM comments ORDER BY id")).all()
    subject_version = demo.count("SELECT subject_version_id FROM derived_subjects WHERE run_id = :run AND "
                                 "usubjid = :s", run=demo.run_ids[-1], s=usubjid)  # fmt: skip
    assert [tuple(row) for row in stored] == [("subject", subject_version), ("ae", rows[1]["AE_ID"])]


# --- who sees what -----------------------------------------------------------------------------------------------


def test_committee_members_read_without_the_buttons_and_others_do_not_open_the_audit_page(call):
    def listings_page(user):
        return call(f"{ids.PAGE_CONTENT}.children", {"url.pathname": "/listings"}, as_user=user)[ids.PAGE_CONTENT]

    committee, monitor = listings_page(COMMITTEE)["children"], listings_page(USERNAME)["children"]
    assert _find(committee, ids.LISTING_REVIEW_ACTIONS)["props"]["hidden"] is True
    assert _find(monitor, ids.LISTING_REVIEW_ACTIONS)["props"]["hidden"] is False
    assert "monitors review, comment and raise data queries" in _text(committee)
    for user in (USERNAME, COMMITTEE):
        audit = _text(call(f"{ids.PAGE_CONTENT}.children", {"url.pathname": "/audit"}, as_user=user))
        assert "The audit trail is for administrators." in audit and ids.AUDIT_GRID not in audit
    assert ids.AUDIT_GRID in _text(call(f"{ids.PAGE_CONTENT}.children", {"url.pathname": "/audit"}, as_user=ADMIN))


def _find(component, component_id: str):
    """The serialised component with ``component_id`` inside ``component``."""
    if isinstance(component, dict):
        if component.get("props", {}).get("id") == component_id:
            return component
        children = component.get("props", {}).get("children")
        return _find(children, component_id) if children is not None else None
    if isinstance(component, list):
        for child in component:
            found = _find(child, component_id)
            if found is not None:
                return found
    return None
