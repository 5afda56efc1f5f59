"""The Alerts page: the demo study's alerts listed by status, one alert's evidence and its email's delivery to
each recipient, acknowledging as a monitor, refusals for a committee member and an empty comment (over HTTP), and a
monitor's path in headless Chromium."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.ui import WebDriverWait

from safety_dash.alerts.evaluate import evaluate_alerts_for_cut
from safety_dash.alerts.outbox import deliver_outbox
from safety_dash.alerts.review import list_alerts, list_deliveries
from safety_dash.analysis import load_baskets
from safety_dash.config import load_settings
from safety_dash.db.engine import get_engine, upgrade_database
from safety_dash.ingest.demo import write_demo_study
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.web import ids
from safety_dash.web.auth import create_user
from safety_dash.web.dashcall import call_callback
from safety_dash.web.pages.alerts import delivery_text
from safety_dash.web.state import ViewState, state_href, state_to_search
from tests.alerts.conftest import MailServer, find_free_port
from tests.web.conftest import DEMO_SUBJECTS, PASSWORD, USERNAME, sign_in_client

DEMO_RULES = Path(__file__).resolve().parents[2] / "safety_dash" / "alerts" / "demo_rules.yaml"
COMMITTEE = "committee1"
COMMENT = "Reviewed with the medical monitor; SAE form received."


@dataclasses.dataclass(frozen=True)
class AlertsDatabase:
    path: Path
    study_id: str
    run_ids: tuple[int, ...]


@pytest.fixture(scope="module")
def alerts_template(tmp_path_factory) -> AlertsDatabase:
    """The demo study's three cuts, each evaluated with the demo rules (as after every ingestion), a monitor and a
    committee member: built once, copied for each test (tests acknowledge alerts)."""
    root = tmp_path_factory.mktemp("alerts-web")
    write_demo_study(root / "demo", n_subjects=DEMO_SUBJECTS, seed=1706)
    rules_dir = root / "rules"
    rules_dir.mkdir()
    shutil.copy(DEMO_RULES, rules_dir / "QL1706-DEMO.yaml")
    path = root / "alerts.db"
    url = f"sqlite:///{path}"
    upgrade_database(url)
    engine = get_engine(url)
    baskets = load_baskets(load_settings().baskets_file)
    run_ids = []
    for cut in ("cut1", "cut2", "cut3"):
        result = ingest_extract(url, root / "demo" / cut)
        assert result.status == "succeeded", result.message
        with engine.begin() as connection:
            evaluate_alerts_for_cut(connection, result.run_id, rules_dir, baskets)
        run_ids.append(result.run_id)
    create_user(engine, USERNAME, PASSWORD, "monitor")
    create_user(engine, COMMITTEE, PASSWORD, "committee")
    engine.dispose()
    return AlertsDatabase(path, result.study_id, tuple(run_ids))


@pytest.fixture
def alerts_db(alerts_template, tmp_path) -> AlertsDatabase:
    """A copy of the template database for one test."""
    path = tmp_path / "alerts.db"
    shutil.copy(alerts_template.path, path)
    return dataclasses.replace(alerts_template, path=path)


@pytest.fixture
def alerts_app(alerts_db):
    from safety_dash.web.app import create_app

    settings = dataclasses.replace(
        load_settings(), database_url=f"sqlite:///{alerts_db.path}", secret_key="test-secret-key", session_minutes=30.0
    )
    return create_app(settings)


def _alerts(alerts_db, status=None):
    with get_engine(f"sqlite:///{alerts_db.path}").connect() as connection:
        return list_alerts(connection, alerts_db.study_id, status)


def _search(alerts_db) -> str:
    return state_to_search(ViewState(study=alerts_db.study_id, cut=alerts_db.run_ids[-1]))


def _text(component) -> str:
    return json.dumps(component)


def _caller(app, username):
    client = app.server.test_client()
    assert sign_in_client(client, username, PASSWORD).status_code == 302

    def call(output, inputs, state=None, changed=None):
        answer = call_callback(client, app, output, inputs, state, changed)
        assert answer.status == 200, (output, answer)
        return answer.outputs

    return call


@pytest.fixture
def monitor_call(alerts_app):
    return _caller(alerts_app, USERNAME)


@pytest.fixture
def committee_call(alerts_app):
    return _caller(alerts_app, COMMITTEE)


def _list(call, alerts_db, status):
    out = call(f"{ids.ALERTS_GRID}.rowData", {"url.search": _search(alerts_db), f"{ids.ALERTS_STATUS}.value": status,
                                              f"{ids.ALERTS_REFRESH}.data": 0})  # fmt: skip
    return out


def _detail(call, alerts_db, alert_id):
    inputs = {
        f"{ids.ALERTS_SELECTED}.data": alert_id,
        f"{ids.ALERTS_REFRESH}.data": 0,
        "url.search": _search(alerts_db),
    }
    return call(f"{ids.ALERTS_DETAIL}.children", inputs)


def _acknowledge(call, alert_id, comment):
    return call(
        f"{ids.ALERTS_ACK_MESSAGE}.children",
        {f"{ids.ALERTS_ACK_BUTTON}.n_clicks": 1},
        {f"{ids.ALERTS_SELECTED}.data": alert_id, f"{ids.ALERTS_COMMENT}.value": comment,
         f"{ids.ALERTS_REFRESH}.data": 0},
    )  # fmt: skip


# --- over HTTP -----------------------------------------------------------------------------------------------


def test_the_grid_lists_the_open_alerts_of_the_study(monitor_call, alerts_db):
    expected = _alerts(alerts_db, "open")
    assert len(expected) > 10  # the demo rules fire on every cut
    out = _list(monitor_call, alerts_db, "open")
    rows = out[ids.ALERTS_GRID]["rowData"]
    assert [row["alert_id"] for row in rows] == expected["alert_id"].tolist()
    assert {row["status"] for row in rows} == {"open"}
    assert out[ids.ALERTS_ALERT]["children"] is None
    assert out[ids.ALERTS_COUNT]["children"].startswith(f"{len(expected)} open alerts of {alerts_db.study_id}")
    # the cut each fired on, marked when it is the cut of the filter bar
    first = expected.iloc[0]
    assert rows[0]["cut_text"] == f"{first['run_id']} · {first['cutoff']}"
    assert {row["run_id"] for row in rows if row["in_view_cut"]} == {alerts_db.run_ids[-1]}
    everything = _list(monitor_call, alerts_db, "all")[ids.ALERTS_GRID]["rowData"]
    assert len(everything) == len(_alerts(alerts_db))
    assert _list(monitor_call, alerts_db, "acknowledged")[ids.ALERTS_GRID]["rowData"] == []


def test_the_cohort_filter_keeps_the_cohorts_alerts_and_the_whole_studys(monitor_call, alerts_db):
    every = _alerts(alerts_db)
    about = {int(a): (scope or {}).get("cohort") for a, scope in zip(every["alert_id"], every["scope"], strict=True)}
    own = [group for group in about.values() if group not in (None, "", "ALL")]
    cohort = max(set(own), key=own.count)  # the cohort with most alerts of its own
    wanted = {a for a, group in about.items() if group in (cohort, None, "", "ALL")}
    assert wanted != set(about)  # some alerts are about other cohorts: the filter has something to leave out
    search = state_to_search(ViewState(study=alerts_db.study_id, cut=alerts_db.run_ids[-1], cohort=cohort))
    out = monitor_call(f"{ids.ALERTS_GRID}.rowData", {"url.search": search, f"{ids.ALERTS_STATUS}.value": "all",
                                                      f"{ids.ALERTS_REFRESH}.data": 0})  # fmt: skip
    assert {row["alert_id"] for row in out[ids.ALERTS_GRID]["rowData"]} == wanted
    assert f"about cohort {cohort} or all cohorts" in out[ids.ALERTS_COUNT]["children"]


def test_the_detail_shows_numbers_subjects_records_and_the_view_link(monitor_call, alerts_db):
    alerts = _alerts(alerts_db, "open")
    alert = alerts.loc[alerts["rule_id"] == "irae-g3-incidence"].iloc[0]
    out = _detail(monitor_call, alerts_db, int(alert["alert_id"]))
    detail = _text(out[ids.ALERTS_DETAIL]["children"])
    assert alert["summary"] in detail
    assert "Crude incidence (%)" in detail and "Subjects with the event" in detail
    for usubjid in alert["evidence"]["subjects"]:
        subject_href = state_href("/subject", ViewState(study=alerts_db.study_id, cut=int(alert["run_id"]),
                                                        subject=usubjid))  # fmt: skip
        assert json.dumps(subject_href) in detail
    assert json.dumps(alert["view_path"]) in detail
    assert f"Records ({len(alert['evidence']['records'])})" in detail
    assert out[ids.ALERTS_ACK_FORM]["hidden"] is False  # a monitor may acknowledge an open alert
    assert out[ids.ALERTS_DETAIL_TITLE]["children"].startswith(f"Alert {alert['alert_id']}: ")


def test_the_detail_shows_the_delivery_to_each_recipient(monitor_call, alerts_db):
    url = f"sqlite:///{alerts_db.path}"
    server = MailServer(find_free_port()).start()
    server.rcpt_replies = {"b@example.org": ["550 5.1.1 <b@example.org>: User unknown"],
                           "c@example.org": ["451 4.7.1 Greylisted, try again later"]}  # fmt: skip
    settings = dataclasses.replace(
        load_settings(), database_url=url, smtp_host="127.0.0.1", smtp_port=server.port, smtp_user="",
        smtp_starttls=False, alert_recipients=("a@example.org", "b@example.org", "c@example.org"),
        alert_admin="admin@example.org",
    )  # fmt: skip
    try:
        report = deliver_outbox(get_engine(url), settings)
    finally:
        server.stop()
    assert report.sent and report.failed and report.deferred
    alerts = _alerts(alerts_db)
    alert_id = int(alerts.loc[alerts["delivery"] == "immediate", "alert_id"].iloc[0])
    with get_engine(url).connect() as connection:
        deliveries = {d["recipient"]: d for d in list_deliveries(connection, alert_id)}
    assert {r: d["status"] for r, d in deliveries.items()} == {"a@example.org": "sent", "b@example.org": "failed",
                                                               "c@example.org": "waiting"}  # fmt: skip
    detail = _text(_detail(monitor_call, alerts_db, alert_id)[ids.ALERTS_DETAIL]["children"])
    assert "Email delivery per recipient (email)" in detail
    for delivery in deliveries.values():
        assert json.dumps(delivery_text(delivery)) in detail
    assert "550 5.1.1 <b@example.org>: User unknown (at RCPT TO)" in detail
    assert "reported by email to admin@example.org, a@example.org, c@example.org" in detail
    next_attempt = deliveries["c@example.org"]["next_attempt_at"].strftime("%Y-%m-%d %H:%M")
    assert f"next attempt {next_attempt} UTC" in detail


def test_delivery_text_says_when_sent_when_next_tried_and_why_failed():
    at = dt.datetime(2024, 5, 1, 9, 30, tzinfo=dt.UTC)
    base = {"recipient": "b@example.org", "attempts": 1, "last_reply": None, "redelivery": False,
            "notified_to": [], "notice_status": None, "reported_at": None}  # fmt: skip
    cases = [
        # sent at once, after retries, and again after an interrupted attempt
        ({"status": "sent", "sent_at": at}, "sent 2024-05-01 09:30 UTC"),
        ({"status": "sent", "sent_at": at, "attempts": 3}, "sent 2024-05-01 09:30 UTC after 3 attempts"),
        ({"status": "sent", "sent_at": at, "attempts": 2, "redelivery": True},
         "sent 2024-05-01 09:30 UTC after 2 attempts · sent again after an interrupted attempt: the recipient may "
         "have two copies"),
        # waiting: not tried yet, or refused for now
        ({"status": "waiting", "attempts": 0, "next_attempt_at": at}, "not tried yet · due 2024-05-01 09:30 UTC"),
        ({"status": "waiting", "attempts": 2, "next_attempt_at": at, "last_reply": "451 4.7.1 Greylisted (at RCPT TO)"},
         "next attempt 2024-05-01 09:30 UTC · 2 attempts so far · last answer: 451 4.7.1 Greylisted (at RCPT TO)"),
        # failed: reported by email, or only in the log
        ({"status": "failed", "failed_at": at, "last_reply": "550 5.1.1 User unknown (at RCPT TO)",
          "notified_to": ["admin@example.org"], "notice_status": "sent", "reported_at": at},
         "failed 2024-05-01 09:30 UTC after 1 attempt · server's reply: 550 5.1.1 User unknown (at RCPT TO) · "
         "reported by email to admin@example.org (sent)"),
        ({"status": "failed", "failed_at": at, "last_reply": "550 5.7.1 Spam (at end of DATA)", "reported_at": at},
         "failed 2024-05-01 09:30 UTC after 1 attempt · server's reply: 550 5.7.1 Spam (at end of DATA) · reported "
         "in the log only (nobody else to tell; set SAFETY_DASH_ALERT_ADMIN)"),
    ]  # fmt: skip
    assert [delivery_text(base | delivery) for delivery, _ in cases] == [expected for _, expected in cases]


def test_a_monitor_acknowledges_with_a_comment(monitor_call, alerts_db):
    before = _alerts(alerts_db, "open")
    alert_id = int(before["alert_id"].iloc[0])
    out = _acknowledge(monitor_call, alert_id, COMMENT)
    assert f"Alert {alert_id} acknowledged by {USERNAME}" in _text(out[ids.ALERTS_ACK_MESSAGE]["children"])
    assert out[ids.ALERTS_REFRESH]["data"] == 1 and out[ids.ALERTS_COMMENT]["value"] == ""
    after = _alerts(alerts_db)
    row = after.loc[after["alert_id"] == alert_id].iloc[0]
    assert row["status"] in ("acknowledged", "resolved")
    assert (row["acknowledged_by"], row["acknowledged_role"], row["ack_comment"]) == (USERNAME, "monitor", COMMENT)
    assert row["acknowledged_at"] is not None and not str(row["acknowledged_at"]) == "NaT"
    assert len(_alerts(alerts_db, "open")) == len(before) - 1
    # the list and the detail show it: who, when, comment; no form any more
    rows = _list(monitor_call, alerts_db, "all")[ids.ALERTS_GRID]["rowData"]
    listed = next(r for r in rows if r["alert_id"] == alert_id)
    assert listed["acknowledged_by"] == USERNAME and listed["acknowledged"]
    detail = _detail(monitor_call, alerts_db, alert_id)
    assert f"Acknowledged by {USERNAME} (monitor)" in _text(detail[ids.ALERTS_DETAIL]["children"])
    assert COMMENT in _text(detail[ids.ALERTS_DETAIL]["children"])
    assert detail[ids.ALERTS_ACK_FORM]["hidden"] is True
    # twice is refused with a sentence
    again = _text(_acknowledge(monitor_call, alert_id, "again")[ids.ALERTS_ACK_MESSAGE]["children"])
    assert "not open" in again and f"acknowledged by {USERNAME}" in again


def test_a_committee_member_reads_but_cannot_acknowledge(committee_call, alerts_app, alerts_db):
    before = _alerts(alerts_db)
    alert_id = int(_alerts(alerts_db, "open")["alert_id"].iloc[0])
    detail = _detail(committee_call, alerts_db, alert_id)
    assert detail[ids.ALERTS_ACK_FORM]["hidden"] is True
    assert "committee members can read alerts but not acknowledge them" in _text(detail[ids.ALERTS_ACK_NOTE])
    assert _list(committee_call, alerts_db, "open")[ids.ALERTS_GRID]["rowData"]  # reading is allowed
    # the browser is not trusted: the server refuses the callback itself (403) and nothing is written
    client = alerts_app.server.test_client()
    assert sign_in_client(client, COMMITTEE, PASSWORD).status_code == 302
    answer = call_callback(
        client,
        alerts_app,
        f"{ids.ALERTS_ACK_MESSAGE}.children",
        {f"{ids.ALERTS_ACK_BUTTON}.n_clicks": 1},
        {f"{ids.ALERTS_SELECTED}.data": alert_id, f"{ids.ALERTS_COMMENT}.value": COMMENT,
         f"{ids.ALERTS_REFRESH}.data": 0},
    )  # fmt: skip
    assert answer.status == 403
    after = _alerts(alerts_db)
    assert after["status"].tolist() == before["status"].tolist()
    assert after["acknowledged_by"].isna().all()


def test_an_empty_comment_is_refused(monitor_call, alerts_db):
    alert_id = int(_alerts(alerts_db, "open")["alert_id"].iloc[0])
    for comment in ("", "   ", None):
        out = _acknowledge(monitor_call, alert_id, comment)
        assert "the comment is empty" in _text(out[ids.ALERTS_ACK_MESSAGE]["children"])
        assert ids.ALERTS_REFRESH not in out
    assert _alerts(alerts_db)["acknowledged_by"].isna().all()


def test_an_unknown_alert_shows_no_detail_and_cannot_be_acknowledged(monitor_call, alerts_db):
    out = _detail(monitor_call, alerts_db, 99999)
    assert out[ids.ALERTS_DETAIL]["children"] is None and out[ids.ALERTS_ACK_FORM]["hidden"] is True
    message = _text(_acknowledge(monitor_call, 99999, COMMENT)[ids.ALERTS_ACK_MESSAGE]["children"])
    assert "alert 99999 does not exist" in message


def test_a_missing_cut_shows_an_alert_not_a_blank_page(monitor_call, alerts_db):
    out = monitor_call(f"{ids.ALERTS_GRID}.rowData", {"url.search": "?cut=999", f"{ids.ALERTS_STATUS}.value": "open",
                                                      f"{ids.ALERTS_REFRESH}.data": 0})  # fmt: skip
    assert "does not exist" in _text(out[ids.ALERTS_ALERT]["children"])


def test_signed_out_get_alerts_goes_to_the_sign_in_form(alerts_app):
    response = alerts_app.server.test_client().get("/alerts")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login?next=")


def test_the_overview_card_links_to_the_alerts_page(monitor_call, alerts_db):
    out = monitor_call(f"{ids.OVERVIEW_CARDS}.children", {"url.search": _search(alerts_db)})
    card = next(c for c in out[ids.OVERVIEW_CARDS]["children"] if "Open alerts" in _text(c))
    assert card["props"]["href"].startswith("/alerts?")
    assert f'"{len(_alerts(alerts_db, "open"))}"' in _text(card)


# --- in the browser --------------------------------------------------------------------------------------------


def _wait(dash_duo, condition, timeout=20, message=""):
    wait = WebDriverWait(dash_duo.driver, timeout, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(lambda _driver: condition(), message)


def _row_ids(dash_duo) -> set[str]:
    rows = dash_duo.find_elements(f"#{ids.ALERTS_GRID} .ag-center-cols-container .ag-row")
    return {row.get_attribute("row-id") for row in rows}


def _scroll_to_row(dash_duo, row_id: str) -> bool:
    """Bring the grid's row into view (the grid draws only the rows on screen); True once it is drawn."""
    dash_duo.driver.execute_script(
        "const api = window.dash_ag_grid && dash_ag_grid.getApi(arguments[0]);"
        "const node = api && api.getRowNode(arguments[1]); if (node) { api.ensureNodeVisible(node, 'middle'); }",
        ids.ALERTS_GRID,
        row_id,
    )
    return row_id in _row_ids(dash_duo)


@pytest.mark.browser
def test_a_monitor_acknowledges_an_alert_in_the_browser(dash_duo, alerts_app, alerts_db):
    open_alerts = _alerts(alerts_db, "open")
    with_records = open_alerts["evidence"].map(lambda evidence: bool((evidence or {}).get("records")))
    alert = open_alerts.loc[open_alerts["condition_active"] & with_records].iloc[0]  # signal alerts list no records
    alert_id = str(int(alert["alert_id"]))
    dash_duo.start_server(alerts_app, navigate=False)
    base = dash_duo.server.url.rstrip("/")
    dash_duo.driver.get(base + "/alerts")
    _wait(dash_duo, lambda: "/login" in dash_duo.driver.current_url, message="not sent to the sign-in form")
    dash_duo.find_element("#username").send_keys(USERNAME)
    dash_duo.find_element("#password").send_keys(PASSWORD)
    dash_duo.find_element("#sign-in").click()
    dash_duo.wait_for_element(f"#{ids.ALERTS_GRID} .ag-row", timeout=30)
    assert dash_duo.driver.current_url.split("?")[0].endswith("/alerts")
    _wait(dash_duo, lambda: _scroll_to_row(dash_duo, alert_id), message="the alert is not listed")

    dash_duo.find_element(f"#{ids.ALERTS_GRID} .ag-row[row-id='{alert_id}'] .ag-cell[col-id='rule']").click()
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_DETAIL_TITLE}", f"Alert {alert_id}:", timeout=20)
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_DETAIL}", alert["summary"][:60], timeout=20)
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_DETAIL}", "Records", timeout=20)
    subject_link = dash_duo.find_element(f"#{ids.ALERTS_DETAIL} .subject-links a")
    assert "/subject?" in subject_link.get_attribute("href")

    dash_duo.wait_for_element(f"#{ids.ALERTS_COMMENT}", timeout=10).send_keys(COMMENT)
    dash_duo.find_element(f"#{ids.ALERTS_ACK_BUTTON}").click()
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_ACK_MESSAGE}", f"acknowledged by {USERNAME}", timeout=20)
    dash_duo.wait_for_contains_text(f"#{ids.ALERTS_DETAIL}", f"Acknowledged by {USERNAME} (monitor)", timeout=20)
    _wait(dash_duo, lambda: alert_id not in _row_ids(dash_duo), message="still listed as open")

    dash_duo.find_element(f"#{ids.ALERTS_STATUS} input[value='all']").find_element("xpath", "./ancestor::label").click()
    _wait(dash_duo, lambda: alert_id in _row_ids(dash_duo), message="not listed under All")
    cell = f"#{ids.ALERTS_GRID} .ag-row[row-id='{alert_id}'] .ag-cell[col-id='acknowledged_by']"
    dash_duo.wait_for_text_to_equal(cell, USERNAME, timeout=20)
    assert _alerts(alerts_db, "acknowledged")["ack_comment"].tolist() == [COMMENT]
    assert dash_duo.get_logs() == []
