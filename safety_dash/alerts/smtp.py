"""One SMTP transaction, answered per recipient: what the server said about each address, or why nobody knows.

``smtplib.SMTP.send_message`` answers a transaction as a whole: it returns the refused recipients only when another
one was accepted, raises for a refusal at DATA without telling a temporary reply from a permanent one, and cannot
tell a connection lost *before* the message went out from one lost *after* (when the server may have stored it).
The outbox needs each of these apart, so the transaction is spelled out here with smtplib's public commands.
"""

from __future__ import annotations

import io
import re
import smtplib
from dataclasses import dataclass
from email.generator import BytesGenerator
from email.message import EmailMessage

from safety_dash.config import Settings

SMTP_TIMEOUT_SECONDS = 30

# What became of a recipient in one transaction.
SENT = "sent"  # the server accepted the message for it (250 after the end of DATA)
DEFERRED = "deferred"  # a temporary refusal (4xx) at MAIL, RCPT or DATA: try again later
REFUSED = "refused"  # a permanent refusal (5xx): never try again
UNREACHABLE = "unreachable"  # no answer about it: connection, TLS or login problem before the message went out
UNCONFIRMED = "unconfirmed"  # the message went out but the server's answer never came: it may have stored it


@dataclass(frozen=True)
class SmtpAnswer:
    """The outcome of one recipient in one SMTP transaction, with the server's reply (or the problem)."""

    outcome: str
    code: int | None
    reply: str


def classify_reply(code: int, reply: bytes | str, stage: str) -> SmtpAnswer:
    """A server reply at ``stage`` (MAIL FROM, RCPT TO, DATA, end of DATA) as an answer: 2xx sent, 5xx refused,
    anything else (4xx, or a reply that makes no sense there) deferred."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    described = f"{code} {' '.join(text.split())} (at {stage})"
    if 200 <= code < 300:
        return SmtpAnswer(SENT, code, described)
    if 500 <= code < 600:
        return SmtpAnswer(REFUSED, code, described)
    return SmtpAnswer(DEFERRED, code, described)


def send_over_smtp(settings: Settings, message: EmailMessage, recipients: list[str]) -> dict[str, SmtpAnswer]:
    """Send ``message`` to ``recipients`` (the envelope) in one transaction with the configured server; return an
    answer for every recipient. Never raises for SMTP or network problems: they become answers."""
    answers: dict[str, SmtpAnswer] = {}
    went_out = False
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password)
            smtp.ehlo_or_helo_if_needed()
            international = not all(a.isascii() for a in [settings.smtp_from, *recipients])
            if international and not smtp.has_extn("smtputf8"):
                reply = "the server does not take non-ASCII addresses (no SMTPUTF8)"
                answers = {r: SmtpAnswer(REFUSED, None, reply) for r in recipients}
                return answers
            options = ["SMTPUTF8", "BODY=8BITMIME"] if international else []
            code, reply = smtp.mail(settings.smtp_from, options)
            if code != 250:
                answers = {r: classify_reply(code, reply, "MAIL FROM") for r in recipients}
                smtp.rset()
                return answers
            accepted = []
            for recipient in recipients:
                code, reply = smtp.rcpt(recipient)
                if code in (250, 251):
                    accepted.append(recipient)
                else:
                    answers[recipient] = classify_reply(code, reply, "RCPT TO")
            if not accepted:
                smtp.rset()
                return answers
            smtp.putcmd("data")
            code, reply = smtp.getreply()
            if code != 354:
                answers |= {r: classify_reply(code, reply, "DATA") for r in accepted}
                smtp.rset()
                return answers
            went_out = True  # from here a lost connection leaves the delivery unconfirmed
            smtp.send(_data_payload(message, international))
            code, reply = smtp.getreply()
            answers |= {r: classify_reply(code, reply, "end of DATA") for r in accepted}
    except (OSError, smtplib.SMTPException) as error:
        outcome = UNCONFIRMED if went_out else UNREACHABLE
        problem = f"{type(error).__name__}: {error}"
        if went_out:
            problem += " (after the message was sent: the server may have stored it)"
        answers |= {r: SmtpAnswer(outcome, None, problem) for r in recipients if r not in answers}
    return answers


def _data_payload(message: EmailMessage, international: bool) -> bytes:
    """The message as DATA carries it: CRLF lines, leading dots doubled, ended by a lone dot."""
    with io.BytesIO() as buffer:
        policy = message.policy.clone(utf8=True) if international else None
        BytesGenerator(buffer, policy=policy).flatten(message, linesep="\r\n")
        flat = buffer.getvalue()
    flat = re.sub(rb"(?m)^\.", b"..", flat)
    if not flat.endswith(b"\r\n"):
        flat += b"\r\n"
    return flat + b".\r\n"
