"""Delivery per recipient against a real SMTP server (aiosmtpd): a refusal concerns only the recipient refused, a
temporary one is retried for that recipient only, a permanent one is given up and reported once, and a message whose
answer was lost after it went out is sent again marked as a possible copy. Also: an outbox written before delivery
per recipient, migrated."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging

from alembic import command
from sqlalchemy import select, update

from safety_dash.alerts.models import OutboxMessage, OutboxRecipient
from safety_dash.alerts.outbox import deliver_outbox, make_message_id
from safety_dash.db.engine import alembic_config, get_engine, upgrade_database
from safety_dash.db.models import utcnow
from tests.alerts.helpers import insert_alert

A, B, ADMIN = "a@example.org", "b@example.org", "admin@example.org"
REDELIVERY = "possible duplicate of an interrupted delivery"


def deliveries(database_url: str, row_id: int) -> dict[str, object]:
    """{recipient: its row} of outbox message ``row_id``."""
    with get_engine(database_url).connect() as connection:
        rows = connection.execute(select(OutboxRecipient.__table__).where(OutboxRecipient.outbox_id == row_id))
        return {row.recipient: row for row in rows}


def outbox_rows(database_url: str, kind: str) -> list:
    with get_engine(database_url).connect() as connection:
        return connection.execute(
            select(OutboxMessage.__table__).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)
        ).fetchall()


def later(start: dt.datetime, minutes: float) -> dt.datetime:
    return start + dt.timedelta(minutes=minutes)


# --- a temporary refusal at RCPT -----------------------------------------------------------------------------------


def test_a_recipient_refused_for_now_at_rcpt_gets_the_alert_later_and_the_other_only_once(
    database_url, alert_settings, mail_server
):
    _, row_id = insert_alert(database_url, recipients=(A, B))
    engine = get_engine(database_url)
    mail_server.rcpt_replies = {B: ["451 4.2.1 Mailbox busy, try later", "250 OK"]}
    start = utcnow()

    first = deliver_outbox(engine, alert_settings, now=start)
    assert (first.sent, first.deferred, first.failed) == ([(row_id, A)], [(row_id, B)], [])
    assert (first.to_json(), first.exit_code) == ({"sent": 1, "waiting": 1, "failed": 0}, 3)
    assert mail_server.envelopes == [("safety-dash@test.example", [A])]
    states = deliveries(database_url, row_id)
    assert (states[A].status, states[B].status, states[B].deferrals) == ("sent", "waiting", 1)
    assert states[B].last_reply == "451 4.2.1 Mailbox busy, try later (at RCPT TO)"
    assert outbox_rows(database_url, "alert")[0].status == "pending"

    waiting = deliver_outbox(engine, alert_settings, now=later(start, 0.5))  # B's backoff is one minute
    assert (waiting.to_json(), waiting.exit_code) == ({"sent": 0, "waiting": 1, "failed": 0}, 3)

    second = deliver_outbox(engine, alert_settings, now=later(start, 1))
    assert (second.sent, second.to_json(), second.exit_code) == ([(row_id, B)], {"sent": 1, "waiting": 0,
                                                                                   "failed": 0}, 0)  # fmt: skip
    assert [envelope[1] for envelope in mail_server.envelopes] == [[A], [B]]  # A never twice
    assert [m["To"] for m in mail_server.messages] == [f"{A}, {B}", f"{A}, {B}"]  # the same message, both readers
    assert mail_server.messages[1]["X-Safety-Dash-Redelivery"] is None  # B never had it: not a copy
    row = outbox_rows(database_url, "alert")[0]
    assert (row.status, row.delivered_to) == ("sent", [A, B])
    assert deliver_outbox(engine, alert_settings, now=later(start, 120)).sent == []
    assert len(mail_server.messages) == 2


def test_a_recipient_refused_for_now_every_time_fails_after_the_configured_attempts(
    database_url, alert_settings, mail_server
):
    settings = dataclasses.replace(alert_settings, alert_max_attempts=3)
    _, row_id = insert_alert(database_url, recipients=(A, B))
    engine = get_engine(database_url)
    mail_server.rcpt_replies = {B: ["452 4.2.2 Mailbox full"]}
    start = utcnow()
    reports = [deliver_outbox(engine, settings, now=later(start, minutes)) for minutes in (0, 1, 3, 7, 15)]
    assert [r.to_json() for r in reports] == [
        {"sent": 1, "waiting": 1, "failed": 0},
        {"sent": 0, "waiting": 1, "failed": 0},
        {"sent": 1, "waiting": 0, "failed": 1},  # B given up; A gets the failure notice
        {"sent": 0, "waiting": 0, "failed": 0},
        {"sent": 0, "waiting": 0, "failed": 0},
    ]
    assert [r.exit_code for r in reports] == [3, 3, 1, 0, 0]
    assert mail_server.rcpt_log.count(B) == 3
    failed = deliveries(database_url, row_id)[B]
    assert (failed.status, failed.attempts, failed.deferrals) == ("failed", 3, 3)
    assert failed.last_reply == "452 4.2.2 Mailbox full (at RCPT TO); given up after 3 temporary refusals"


# --- a permanent refusal -----------------------------------------------------------------------------------------


def test_a_recipient_refused_for_good_at_rcpt_is_reported_once_to_the_others_and_the_admin(
    database_url, alert_settings, mail_server, caplog
):
    settings = dataclasses.replace(alert_settings, alert_admin=ADMIN)
    _, row_id = insert_alert(database_url, recipients=(A, B))
    engine = get_engine(database_url)
    mail_server.rcpt_replies = {B: ["550 5.1.1 <b@example.org>: Recipient address rejected: User unknown"]}
    start = utcnow()
    with caplog.at_level(logging.WARNING, logger="safety_dash.alerts"):
        first = deliver_outbox(engine, settings, now=start)
    [notice] = outbox_rows(database_url, "failure_notice")
    assert first.notices == [notice.id]
    assert first.failed == [(row_id, B)]
    assert first.sent == [(row_id, A), (notice.id, ADMIN), (notice.id, A)]
    assert (first.to_json(), first.exit_code) == ({"sent": 3, "waiting": 0, "failed": 1}, 1)
    reason = "550 5.1.1 <b@example.org>: Recipient address rejected: User unknown (at RCPT TO)"
    assert f"outbox message {row_id} (alert) to {B} failed for good: {reason}" in caplog.text

    alert_message, notice_message = mail_server.messages
    assert mail_server.envelopes == [("safety-dash@test.example", [A]), ("safety-dash@test.example", [ADMIN, A])]
    assert notice_message["Subject"] == (
        f"[safety-dash] T1: not delivered to {B}: alert 'Grade 5 adverse event: Pneumonitis (grade 5) in T1-001'"
    )
    assert notice_message["Message-ID"] == make_message_id(f"notice:{row_id}:{deliveries(database_url, row_id)[B].id}")
    text = notice_message.get_body(("plain",)).get_content()
    assert f"  {B}: {reason}" in text
    assert alert_message["Message-ID"] in text
    assert "http://dash.test/alerts?study=T1" in text

    failed = deliveries(database_url, row_id)[B]
    assert (failed.status, failed.attempts, failed.last_code, failed.notice_id) == ("failed", 1, 550, notice.id)
    assert failed.reported_at is not None
    row = outbox_rows(database_url, "alert")[0]
    assert (row.status, row.delivered_to) == ("failed", [A])  # nobody waits; one recipient failed
    assert reason in row.last_error

    # once: later runs neither try B again nor report it again
    caplog.clear()
    for minutes in (1, 60, 24 * 60):
        again = deliver_outbox(engine, settings, now=later(start, minutes))
        assert (again.to_json(), again.exit_code) == ({"sent": 0, "waiting": 0, "failed": 0}, 0)
    assert mail_server.rcpt_log.count(B) == 1 and len(mail_server.messages) == 2
    assert len(outbox_rows(database_url, "failure_notice")) == 1
    assert "failed for good" not in caplog.text


def test_a_550_at_data_is_given_up_at_once_and_reported_to_the_admin(database_url, alert_settings, mail_server):
    settings = dataclasses.replace(alert_settings, alert_admin=ADMIN)
    _, row_id = insert_alert(database_url)  # to SAFETY_DASH_ALERT_RECIPIENTS: monitor@example.org
    engine = get_engine(database_url)
    mail_server.data_replies = ["550 5.7.1 Message rejected as spam", "250 OK"]  # the notice is accepted
    start = utcnow()
    first = deliver_outbox(engine, settings, now=start)
    assert first.failed == [(row_id, "monitor@example.org")]
    assert (first.to_json(), first.exit_code) == ({"sent": 1, "waiting": 0, "failed": 1}, 1)  # sent: the notice
    [notice] = mail_server.messages
    assert mail_server.envelopes[0][1] == [ADMIN]
    assert "monitor@example.org: 550 5.7.1 Message rejected as spam (at end of DATA)" in notice.get_content()
    mail_server.data_replies = ["550 5.7.1 Message rejected as spam"]
    for minutes in (1, 3, 60, 24 * 60):
        assert deliver_outbox(engine, settings, now=later(start, minutes)).to_json() == {"sent": 0, "waiting": 0,
                                                                                          "failed": 0}  # fmt: skip
    assert mail_server.data_attempts == 2  # the alert once, the notice once; never retried
    assert outbox_rows(database_url, "alert")[0].status == "failed"


def test_a_permanent_failure_without_anybody_else_to_tell_is_logged_and_kept_once(
    database_url, alert_settings, mail_server, caplog
):
    _, row_id = insert_alert(database_url)  # one recipient, no admin address
    engine = get_engine(database_url)
    mail_server.rcpt_replies = {"monitor@example.org": ["550 5.1.1 User unknown"]}
    with caplog.at_level(logging.WARNING, logger="safety_dash.alerts"):
        report = deliver_outbox(engine, alert_settings)
    assert (report.failed, report.notices, report.exit_code) == ([(row_id, "monitor@example.org")], [], 1)
    assert "nobody else to tell of the failure; set SAFETY_DASH_ALERT_ADMIN" in caplog.text
    assert outbox_rows(database_url, "failure_notice") == [] and mail_server.messages == []
    assert deliveries(database_url, row_id)["monitor@example.org"].reported_at is not None


def test_a_failure_notice_that_fails_is_not_reported_by_another_notice(database_url, alert_settings, mail_server):
    settings = dataclasses.replace(alert_settings, alert_admin=ADMIN)
    insert_alert(database_url)
    engine = get_engine(database_url)
    mail_server.rcpt_replies = {"monitor@example.org": ["550 5.1.1 User unknown"], ADMIN: ["550 5.1.1 No admin"]}
    report = deliver_outbox(engine, settings)
    [notice] = outbox_rows(database_url, "failure_notice")
    assert report.failed == [(notice.id - 1, "monitor@example.org"), (notice.id, ADMIN)]
    assert len(outbox_rows(database_url, "failure_notice")) == 1 and notice.status == "failed"
    assert deliveries(database_url, notice.id)[ADMIN].reported_at is not None


# --- the answer lost after the message went out -----------------------------------------------------------------


def test_a_message_stored_by_a_server_that_dropped_the_connection_is_sent_again_marked_as_a_copy(
    database_url, alert_settings, mail_server
):
    _, row_id = insert_alert(database_url, recipients=(A, B))
    engine = get_engine(database_url)
    mail_server.drop_after_storing = 1
    start = utcnow()
    first = deliver_outbox(engine, alert_settings, now=start)
    assert (first.sent, first.deferred, first.exit_code) == ([], [(row_id, A), (row_id, B)], 3)
    assert "the server may have stored it" in first.errors[f"{row_id} to {A}"]
    states = deliveries(database_url, row_id)
    assert [(states[r].status, states[r].redelivery, states[r].deferrals) for r in (A, B)] == [
        ("waiting", True, 0), ("waiting", True, 0)]  # fmt: skip

    second = deliver_outbox(engine, alert_settings, now=later(start, 1))
    assert second.sent == [(row_id, A), (row_id, B)] and second.exit_code == 0
    stored, again = mail_server.messages
    assert stored["X-Safety-Dash-Redelivery"] is None
    assert again["X-Safety-Dash-Redelivery"] == REDELIVERY
    assert again["Message-ID"] == stored["Message-ID"]
    assert "may be a second copy" in again.get_body(("plain",)).get_content()
    assert deliver_outbox(engine, alert_settings, now=later(start, 60)).sent == []
    assert len(mail_server.messages) == 2


def test_a_connection_refused_before_the_message_went_out_is_no_redelivery(
    database_url, alert_settings, stopped_mail_server
):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    start = utcnow()
    for minutes in (0, 1, 3, 7, 15, 31):  # the server is down for half an hour: more tries than the limit
        assert deliver_outbox(engine, alert_settings, now=later(start, minutes)).exit_code == 3
    stopped_mail_server.start()
    report = deliver_outbox(engine, alert_settings, now=later(start, 63))
    assert report.sent == [(row_id, "monitor@example.org")]
    [message] = stopped_mail_server.messages
    assert message["X-Safety-Dash-Redelivery"] is None
    delivery = deliveries(database_url, row_id)["monitor@example.org"]
    assert (delivery.attempts, delivery.deferrals, delivery.redelivery) == (7, 0, False)


# --- an outbox written before delivery per recipient (migration 0003) ---------------------------------------------


def test_migration_0003_turns_the_refusals_of_sent_messages_into_waiting_and_failed_deliveries(
    database_url, alert_settings, mail_server
):
    C = "c@example.org"
    engine = get_engine(database_url)
    _, partly = insert_alert(database_url, key="grade5|T1-001|1", recipients=(A, B, C))
    _, whole = insert_alert(database_url, key="grade5|T1-002|1")  # to the default recipients
    _, pending = insert_alert(database_url, key="grade5|T1-003|1")
    config = alembic_config(database_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    # what the sender of one state per message wrote: smtplib's refused dict, as json.dumps(default=str) wrote it
    refused = {B: (451, b"4.2.1 Mailbox busy"), C: (550, b"5.1.1 User unknown")}
    sent_at = utcnow() - dt.timedelta(days=1)
    with engine.begin() as connection:
        connection.execute(update(OutboxMessage).where(OutboxMessage.id == partly).values(
            status="sent", attempts=1, sent_at=sent_at, delivered_to=[A],
            last_error=f"refused by the server: {json.dumps(refused, default=str)}"))  # fmt: skip
        connection.execute(update(OutboxMessage).where(OutboxMessage.id == whole).values(
            status="sent", attempts=2, sent_at=sent_at, delivered_to=["monitor@example.org"]))  # fmt: skip
    upgrade_database(database_url)

    migrated = deliveries(database_url, partly)
    assert {r: (d.status, d.last_code, d.last_reply) for r, d in migrated.items()} == {
        A: ("sent", 250, None),
        B: ("waiting", 451, "451 4.2.1 Mailbox busy"),
        C: ("failed", 550, "550 5.1.1 User unknown"),
    }
    assert {r: (d.status, d.attempts) for r, d in deliveries(database_url, whole).items()} == {
        "monitor@example.org": ("sent", 2)}  # fmt: skip
    assert deliveries(database_url, pending) == {}  # written when a sender claims it
    statuses = {row.id: row.status for row in outbox_rows(database_url, "alert")}
    assert statuses == {partly: "pending", whole: "sent", pending: "pending"}

    report = deliver_outbox(engine, alert_settings)
    [notice] = outbox_rows(database_url, "failure_notice")
    assert report.failed == [] and report.notices == [notice.id]  # C failed before; reported now, once
    assert sorted(report.sent) == sorted([(partly, B), (pending, "monitor@example.org"), (notice.id, A),
                                          (notice.id, B)])  # fmt: skip
    assert deliveries(database_url, partly)[C].notice_id == notice.id
    assert deliver_outbox(engine, alert_settings, now=utcnow() + dt.timedelta(hours=1)).sent == []
