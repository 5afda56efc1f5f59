"""The outbox against a real SMTP server: delivered once, retried with backoff, never lost, never twice."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket

import pytest
from sqlalchemy import select, update

from safety_dash.alerts.models import OutboxMessage, OutboxRecipient
from safety_dash.alerts.outbox import backoff, claim_message, deliver_outbox, make_message_id, next_digest_time
from safety_dash.alerts.smtp import send_over_smtp
from safety_dash.db.engine import get_engine
from safety_dash.db.models import utcnow
from tests.alerts.helpers import insert_alert


def outbox_row(database_url: str, row_id: int):
    with get_engine(database_url).connect() as connection:
        return connection.execute(select(OutboxMessage.__table__).where(OutboxMessage.id == row_id)).one()


def deliveries(database_url: str, row_id: int) -> list:
    """The recipient rows of outbox message ``row_id``, in the order they were written."""
    with get_engine(database_url).connect() as connection:
        return connection.execute(
            select(OutboxRecipient.__table__).where(OutboxRecipient.outbox_id == row_id).order_by(OutboxRecipient.id)
        ).fetchall()


def aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- once ------------------------------------------------------------------------------------------------------------


def test_deliver_outbox_sends_a_pending_alert_once_and_never_again(database_url, alert_settings, mail_server):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    first = deliver_outbox(engine, alert_settings)
    assert (first.sent, first.failed, first.waiting) == ([(row_id, "monitor@example.org")], [], 0)
    assert (first.to_json(), first.exit_code) == ({"sent": 1, "waiting": 0, "failed": 0}, 0)
    [message] = mail_server.messages
    assert message["To"] == "monitor@example.org"
    assert message["From"] == "safety-dash@test.example"
    assert message["Subject"] == "[safety-dash] T1: Grade 5 adverse event: Pneumonitis (grade 5) in T1-001"
    assert message["Message-ID"] == make_message_id("alert", "T1", "grade5|T1-001|1", 1)
    assert message["X-Safety-Dash-Redelivery"] is None
    row = outbox_row(database_url, row_id)
    assert (row.status, row.attempts, row.delivered_to) == ("sent", 1, ["monitor@example.org"])
    [delivery] = deliveries(database_url, row_id)
    assert (delivery.recipient, delivery.status, delivery.attempts, delivery.last_code) == (
        "monitor@example.org", "sent", 1, 250)  # fmt: skip

    second = deliver_outbox(engine, alert_settings, now=utcnow() + dt.timedelta(days=2))
    assert second.sent == [] and len(mail_server.messages) == 1


def test_deliver_outbox_sends_to_the_rule_recipients_instead_of_the_default(database_url, alert_settings, mail_server):
    insert_alert(database_url, recipients=("a@example.org", "b@example.org"))
    deliver_outbox(get_engine(database_url), alert_settings)
    [(mail_from, rcpt_tos)] = mail_server.envelopes
    assert (mail_from, rcpt_tos) == ("safety-dash@test.example", ["a@example.org", "b@example.org"])
    assert mail_server.messages[0]["To"] == "a@example.org, b@example.org"


# --- retries ----------------------------------------------------------------------------------------------------


def test_deliver_outbox_retries_after_the_server_was_down_and_delivers_once(
    database_url, alert_settings, stopped_mail_server
):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    start = utcnow()
    down = deliver_outbox(engine, alert_settings, now=start)  # nothing listens on the port
    assert (down.deferred, down.failed, down.sent) == ([(row_id, "monitor@example.org")], [], [])
    assert (down.waiting, down.exit_code) == (1, 3)
    assert "ConnectionRefusedError" in down.errors[f"{row_id} to monitor@example.org"]
    row = outbox_row(database_url, row_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert aware(row.next_attempt_at) == start + dt.timedelta(minutes=1)
    assert "ConnectionRefusedError" in row.last_error
    [delivery] = deliveries(database_url, row_id)
    assert (delivery.status, delivery.deferrals, delivery.redelivery) == ("waiting", 0, False)  # never asked

    stopped_mail_server.start()
    too_early = deliver_outbox(engine, alert_settings, now=start + dt.timedelta(seconds=30))
    assert too_early.sent == [] and stopped_mail_server.messages == []
    assert (too_early.waiting, too_early.exit_code) == (1, 3)  # waiting on its backoff

    up = deliver_outbox(engine, alert_settings, now=start + dt.timedelta(seconds=61))
    assert up.sent == [(row_id, "monitor@example.org")] and up.exit_code == 0
    assert len(stopped_mail_server.messages) == 1
    assert (outbox_row(database_url, row_id).status, outbox_row(database_url, row_id).attempts) == ("sent", 2)
    assert deliver_outbox(engine, alert_settings, now=start + dt.timedelta(hours=3)).sent == []
    assert len(stopped_mail_server.messages) == 1


def test_deliver_outbox_retries_a_temporary_refusal_at_data_with_growing_backoff(
    database_url, alert_settings, mail_server
):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    mail_server.data_replies = ["451 4.3.0 Try again later"]  # until the test clears it
    start = utcnow()
    monitor = [(row_id, "monitor@example.org")]
    assert deliver_outbox(engine, alert_settings, now=start).deferred == monitor
    assert "451 4.3.0 Try again later (at end of DATA)" in outbox_row(database_url, row_id).last_error
    assert deliver_outbox(engine, alert_settings, now=start + dt.timedelta(minutes=1)).deferred == monitor
    assert aware(outbox_row(database_url, row_id).next_attempt_at) == start + dt.timedelta(minutes=3)
    mail_server.data_replies = []
    assert deliver_outbox(engine, alert_settings, now=start + dt.timedelta(minutes=3)).sent == monitor
    assert len(mail_server.messages) == 1 and mail_server.data_attempts == 3
    assert outbox_row(database_url, row_id).attempts == 3
    [delivery] = deliveries(database_url, row_id)
    assert (delivery.status, delivery.attempts, delivery.deferrals) == ("sent", 3, 2)


def test_backoff_doubles_from_one_minute_up_to_an_hour():
    assert [backoff(n).total_seconds() / 60 for n in (1, 2, 3, 4, 6, 7, 20)] == [1, 2, 4, 8, 32, 60, 60]


def test_deliver_outbox_keeps_a_message_without_recipients_until_there_are_some(
    database_url, alert_settings, mail_server
):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    nobody = dataclasses.replace(alert_settings, alert_recipients=())
    report = deliver_outbox(engine, nobody)
    assert report.failed == [] and "no recipients" in report.errors[str(row_id)]
    assert (report.waiting, report.exit_code) == (1, 3)  # the message waits for somebody to send it to
    later = deliver_outbox(engine, alert_settings, now=utcnow() + dt.timedelta(minutes=2))
    assert later.sent == [(row_id, "monitor@example.org")]
    assert len(mail_server.messages) == 1


# --- two senders, and a sender that died -------------------------------------------------------------------------


def test_claim_message_lets_only_one_of_two_senders_take_a_row(database_url):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    now = utcnow()
    assert claim_message(engine, row_id, "host:1:a", now) is True
    assert claim_message(engine, row_id, "host:2:b", now) is False
    assert outbox_row(database_url, row_id).claimed_by == "host:1:a"


def test_deliver_outbox_skips_a_row_another_live_sender_is_sending(database_url, alert_settings, mail_server):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    claim_message(engine, row_id, f"{socket.gethostname()}:1:other", utcnow())  # pid 1 is alive
    report = deliver_outbox(engine, alert_settings)
    assert report.sent == [] and report.recovered == [] and mail_server.messages == []


class Killed(BaseException):
    """The sender's process dies (kill -9): nothing after this point of the sender runs."""


def dying_after_the_transaction(settings, message, recipients):
    """A real SMTP transaction, after which the sender dies before it records the server's acceptance."""
    send_over_smtp(settings, message, recipients)
    raise Killed


def test_deliver_outbox_sends_again_with_the_same_message_id_after_a_sender_died(
    database_url, alert_settings, mail_server
):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    with pytest.raises(Killed):
        deliver_outbox(engine, alert_settings, smtp_send=dying_after_the_transaction)
    [first] = mail_server.messages
    assert first["X-Safety-Dash-Redelivery"] is None
    assert outbox_row(database_url, row_id).status == "sending"
    [delivery] = deliveries(database_url, row_id)
    assert (delivery.status, delivery.sending_since is not None) == ("waiting", True)

    fresh = deliver_outbox(engine, alert_settings)
    assert fresh.recovered == [] and fresh.sent == []  # the claim is fresh and its process (this one) runs

    later = deliver_outbox(engine, alert_settings, now=utcnow() + dt.timedelta(minutes=16))
    assert later.recovered == [row_id] and later.sent == [(row_id, "monitor@example.org")]
    second = mail_server.messages[1]
    assert second["Message-ID"] == first["Message-ID"]
    assert second["X-Safety-Dash-Redelivery"] == "possible duplicate of an interrupted delivery"
    assert "may be a second copy" in second.get_body(("plain",)).get_content()
    assert "may be a second copy" not in first.get_body(("plain",)).get_content()
    row = outbox_row(database_url, row_id)
    assert (row.status, row.redelivery) == ("sent", True)
    [delivery] = deliveries(database_url, row_id)
    assert (delivery.status, delivery.redelivery, delivery.sending_since) == ("sent", True, None)


def test_deliver_outbox_recovers_at_once_a_row_of_a_dead_process_of_this_host(
    database_url, alert_settings, mail_server
):
    _, row_id = insert_alert(database_url)
    engine = get_engine(database_url)
    # a claim written before the recipients had rows of their own (an outbox from before delivery per recipient)
    with engine.begin() as connection:
        connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(status="sending", claimed_by=f"{socket.gethostname()}:999999999:dead", claimed_at=utcnow())
        )
    report = deliver_outbox(engine, alert_settings)
    assert report.recovered == [row_id] and report.sent == [(row_id, "monitor@example.org")]
    [message] = mail_server.messages
    assert message["X-Safety-Dash-Redelivery"] == "possible duplicate of an interrupted delivery"


def test_deliver_outbox_does_not_mark_recipients_a_dead_sender_was_not_sending_to(
    database_url, alert_settings, mail_server
):
    _, row_id = insert_alert(database_url, recipients=("a@example.org", "b@example.org"))
    engine = get_engine(database_url)
    mail_server.rcpt_replies = {"b@example.org": ["451 4.2.0 Mailbox busy"]}
    start = utcnow()
    deliver_outbox(engine, alert_settings, now=start)  # a has it; b waits a minute
    with pytest.raises(Killed):  # b's retry: delivered, then the sender dies
        mail_server.rcpt_replies = {}
        deliver_outbox(engine, alert_settings, now=start + dt.timedelta(minutes=1),
                       smtp_send=dying_after_the_transaction)  # fmt: skip
    recovered = deliver_outbox(engine, alert_settings, now=start + dt.timedelta(minutes=17))
    assert recovered.sent == [(row_id, "b@example.org")]
    assert [envelope[1] for envelope in mail_server.envelopes] == [["a@example.org"], ["b@example.org"],
                                                                   ["b@example.org"]]  # fmt: skip
    headers = [m["X-Safety-Dash-Redelivery"] is not None for m in mail_server.messages]
    assert headers == [False, False, True]
    assert [(d.recipient, d.redelivery) for d in deliveries(database_url, row_id)] == [
        ("a@example.org", False), ("b@example.org", True)]  # fmt: skip


# --- digest ----------------------------------------------------------------------------------------------------------


def test_next_digest_time_is_the_next_daily_time_after_now():
    at_six = dt.datetime(2024, 5, 1, 6, 0, tzinfo=dt.UTC)
    assert next_digest_time(at_six, (7, 0)) == dt.datetime(2024, 5, 1, 7, 0, tzinfo=dt.UTC)
    assert next_digest_time(at_six.replace(hour=7), (7, 0)) == dt.datetime(2024, 5, 2, 7, 0, tzinfo=dt.UTC)


def test_digest_alerts_wait_for_the_daily_digest_and_go_out_as_one_message(database_url, alert_settings, mail_server):
    created = dt.datetime.now(dt.UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    for n in (1, 2, 3):
        insert_alert(database_url, key=f"serious|T1-00{n}|1", title=f"Serious event in T1-00{n}", delivery="digest",
                     now=created)  # fmt: skip
    engine = get_engine(database_url)
    same_day = deliver_outbox(engine, alert_settings, now=created + dt.timedelta(hours=3))
    assert same_day.sent == [] and same_day.digests == [] and mail_server.messages == []

    next_morning = created.replace(hour=7, minute=1) + dt.timedelta(days=1)
    report = deliver_outbox(engine, alert_settings, now=next_morning)
    assert len(report.digests) == 1 and report.sent == [(report.digests[0], "monitor@example.org")]
    [message] = mail_server.messages
    assert message["Subject"] == f"[safety-dash] T1: daily digest, 3 alerts ({created.date().isoformat()})"
    text = message.get_body(("plain",)).get_content()
    assert [f"Serious event in T1-00{n}" in text for n in (1, 2, 3)] == [True, True, True]
    assert deliver_outbox(engine, alert_settings, now=next_morning + dt.timedelta(days=1)).sent == []
    assert len(mail_server.messages) == 1
