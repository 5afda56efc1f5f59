"""One SMTP transaction answered per recipient: the server's reply at each stage, against a real server."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage

import pytest

from safety_dash.alerts.smtp import (
    DEFERRED,
    REFUSED,
    SENT,
    UNCONFIRMED,
    UNREACHABLE,
    SmtpAnswer,
    classify_reply,
    send_over_smtp,
)
from safety_dash.config import load_settings

A, B, C = "a@example.org", "b@example.org", "c@example.org"


@pytest.fixture
def smtp_settings(mail_port):
    """The local test server, without login or TLS (no database needed)."""
    return dataclasses.replace(load_settings(), smtp_host="127.0.0.1", smtp_port=mail_port, smtp_user="",
                               smtp_starttls=False, smtp_from="safety-dash@test.example")  # fmt: skip


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = "test", "safety-dash@test.example", f"{A}, {B}, {C}"
    mail.set_content(".a line that starts with a dot\n")
    return mail


def test_classify_reply_tells_sent_temporary_and_permanent_apart():
    cases = [
        ((250, b"2.0.0 Ok: queued as 4F2"), SmtpAnswer(SENT, 250, "250 2.0.0 Ok: queued as 4F2 (at end of DATA)")),
        ((451, b"4.7.1 Wait,\n  later"), SmtpAnswer(DEFERRED, 451, "451 4.7.1 Wait, later (at end of DATA)")),
        ((421, "4.3.2 Shutting down"), SmtpAnswer(DEFERRED, 421, "421 4.3.2 Shutting down (at end of DATA)")),
        ((550, b"5.1.1 User unknown"), SmtpAnswer(REFUSED, 550, "550 5.1.1 User unknown (at end of DATA)")),
        ((554, b"5.7.1 Spam"), SmtpAnswer(REFUSED, 554, "554 5.7.1 Spam (at end of DATA)")),
        ((354, b"go ahead"), SmtpAnswer(DEFERRED, 354, "354 go ahead (at end of DATA)")),  # makes no sense there
    ]  # fmt: skip
    assert [classify_reply(*reply, "end of DATA") for reply, _ in cases] == [expected for _, expected in cases]


def test_send_over_smtp_answers_each_recipient_and_sends_to_the_accepted_ones(smtp_settings, mail_server):
    mail_server.rcpt_replies = {B: ["452 4.2.2 Mailbox full"], C: ["550 5.1.1 User unknown"]}
    answers = send_over_smtp(smtp_settings, message(), [A, B, C])
    assert answers == {
        A: SmtpAnswer(SENT, 250, "250 OK (at end of DATA)"),
        B: SmtpAnswer(DEFERRED, 452, "452 4.2.2 Mailbox full (at RCPT TO)"),
        C: SmtpAnswer(REFUSED, 550, "550 5.1.1 User unknown (at RCPT TO)"),
    }
    assert mail_server.envelopes == [("safety-dash@test.example", [A])]
    body = mail_server.messages[0].get_content().replace("\r\n", "\n")
    assert body == ".a line that starts with a dot\n"  # the leading dot survives DATA's dot-stuffing


def test_send_over_smtp_sends_nothing_when_every_recipient_is_refused(smtp_settings, mail_server):
    mail_server.rcpt_replies = {A: ["550 5.1.1 User unknown"], B: ["450 4.2.0 Busy"]}
    answers = send_over_smtp(smtp_settings, message(), [A, B])
    assert [answers[r].outcome for r in (A, B)] == [REFUSED, DEFERRED]
    assert mail_server.data_attempts == 0


def test_send_over_smtp_tells_a_connection_lost_after_the_message_went_out(smtp_settings, mail_server):
    mail_server.drop_after_storing = 1
    answers = send_over_smtp(smtp_settings, message(), [A, B])
    assert [answers[r].outcome for r in (A, B)] == [UNCONFIRMED, UNCONFIRMED]
    assert len(mail_server.messages) == 1  # stored, though the sender never heard so


def test_send_over_smtp_answers_unreachable_when_nothing_listens(smtp_settings, stopped_mail_server):
    answers = send_over_smtp(smtp_settings, message(), [A])
    assert answers[A].outcome == UNREACHABLE and answers[A].code is None
    assert answers[A].reply.startswith("ConnectionRefusedError")
