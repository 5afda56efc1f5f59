"""The delivery of an outbox message to each of its recipients: recording the server's answer per recipient,
the message's state that follows, and the report of a delivery that failed for good.

See :mod:`safety_dash.alerts.outbox` for the states and the delivery guarantee; this module holds what happens
between one SMTP transaction and the next.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, exists, func, select, update

from safety_dash.alerts.models import OutboxMessage, OutboxRecipient
from safety_dash.alerts.smtp import DEFERRED, REFUSED, SENT, UNCONFIRMED, SmtpAnswer
from safety_dash.config import Settings

log = logging.getLogger(__name__)

BACKOFF_FIRST, BACKOFF_MAX = dt.timedelta(minutes=1), dt.timedelta(minutes=60)
MESSAGE_ID_DOMAIN = "safety-dash"


def make_message_id(*parts: object) -> str:
    """A Message-ID derived only from ``parts``: the same alert always carries the same one."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


def backoff(attempts: int) -> dt.timedelta:
    """Wait before the next attempt after ``attempts`` failed ones: 1, 2, 4, ... minutes, at most an hour."""
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


@dataclass
class Recorded:
    """What recording one transaction's answers changed."""

    states: dict[str, str] = field(default_factory=dict)  # recipient -> waiting, sent or failed
    notices: list[int] = field(default_factory=list)  # failure notices written


def record_answers(
    engine: Engine,
    message_row_id: int,
    worker: str,
    now: dt.datetime,
    answers: dict[str, SmtpAnswer],
    settings: Settings,
) -> Recorded:
    """Record each recipient's answer and the message's state; report new failures (log line, failure notice) in
    the same transaction, so each is reported once."""
    recorded = Recorded()
    with engine.begin() as connection:
        row = connection.execute(
            select(OutboxMessage.__table__).where(
                OutboxMessage.id == message_row_id,
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
        ).first()
        if row is None:  # another sender recovered it as stale: its record wins
            log.warning("outbox message %s: claim lost before the answers were recorded", message_row_id)
            return recorded
        deliveries = {d.recipient: d for d in connection.execute(
            select(OutboxRecipient.__table__).where(OutboxRecipient.outbox_id == message_row_id))}  # fmt: skip
        for recipient, answer in answers.items():
            delivery = deliveries.get(recipient)
            if delivery is None or delivery.status != "waiting":
                continue
            values = _answer_values(delivery, answer, now, settings.alert_max_attempts)
            connection.execute(update(OutboxRecipient).where(OutboxRecipient.id == delivery.id).values(**values))
            recorded.states[recipient] = values["status"]
        connection.execute(
            update(OutboxRecipient)
            .where(OutboxRecipient.outbox_id == message_row_id, OutboxRecipient.sending_since.is_not(None))
            .values(sending_since=None)
        )
        recorded.notices = report_failures(connection, row, settings, now)
        _settle_message(connection, message_row_id, now)
    return recorded


def _answer_values(delivery, answer: SmtpAnswer, now: dt.datetime, max_attempts: int) -> dict:
    attempts = delivery.attempts + 1
    values = {"attempts": attempts, "last_code": answer.code, "last_reply": answer.reply[:2000], "sending_since": None}
    if answer.outcome == SENT:
        return values | {"status": "sent", "sent_at": now}
    if answer.outcome == REFUSED:
        return values | {"status": "failed", "failed_at": now}
    deferrals = delivery.deferrals + (answer.outcome == DEFERRED)
    values |= {"deferrals": deferrals, "next_attempt_at": now + backoff(attempts)}
    if answer.outcome == UNCONFIRMED:
        values["redelivery"] = True
    if deferrals >= max_attempts:
        reply = f"{answer.reply}; given up after {deferrals} temporary refusals"
        return values | {"status": "failed", "failed_at": now, "last_reply": reply[:2000]}
    return values | {"status": "waiting"}


def report_failures(connection: Connection, row, settings: Settings, now: dt.datetime) -> list[int]:
    """Report the message's failed deliveries not reported yet: a log line each, and one failure notice to the
    admin address and the message's recipients who did not fail (none for a failure notice that failed)."""
    unreported = connection.execute(
        select(OutboxRecipient.__table__)
        .where(
            OutboxRecipient.outbox_id == row.id,
            OutboxRecipient.status == "failed",
            OutboxRecipient.reported_at.is_(None),
        )
        .order_by(OutboxRecipient.id)
    ).fetchall()
    if not unreported:
        return []
    for failure in unreported:
        log.warning("outbox message %s (%s) to %s failed for good: %s", row.id, row.kind, failure.recipient,
                    failure.last_reply)  # fmt: skip
    notice_id = None
    if row.kind != "failure_notice":
        others = connection.execute(
            select(OutboxRecipient.recipient)
            .where(OutboxRecipient.outbox_id == row.id, OutboxRecipient.status != "failed")
            .order_by(OutboxRecipient.id)
        ).scalars()
        tell = list(dict.fromkeys(([settings.alert_admin] if settings.alert_admin else []) + list(others)))
        tell = [a for a in tell if a not in {f.recipient for f in unreported}]
        if tell:
            notice_id = _insert_notice(connection, row, tell, unreported[0].id, now)
        else:
            log.warning("outbox message %s: nobody else to tell of the failure; set SAFETY_DASH_ALERT_ADMIN", row.id)
    connection.execute(
        update(OutboxRecipient)
        .where(OutboxRecipient.id.in_([f.id for f in unreported]))
        .values(reported_at=now, notice_id=notice_id)
    )
    return [notice_id] if notice_id is not None else []


def _insert_notice(connection: Connection, row, recipients: list[str], first_failure_id: int, now) -> int:
    key = f"notice:{row.id}:{first_failure_id}"
    return insert_pending_message(connection, row.study_id, "failure_notice", key, recipients, now)


def insert_pending_message(
    connection: Connection, study_id: str, kind: str, key: str, recipients: list[str], now: dt.datetime
) -> int:
    """A new outbox message of ``kind`` waiting to be sent now (its Message-ID from ``key``); returns its id."""
    return connection.execute(
        OutboxMessage.__table__.insert()
        .values(
            study_id=study_id,
            kind=kind,
            message_key=key,
            message_id=make_message_id(key),
            recipients=recipients,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            redelivery=False,
            created_at=now,
        )
        .returning(OutboxMessage.__table__.c.id)
    ).scalar_one()


def _settle_message(connection: Connection, message_row_id: int, now: dt.datetime) -> None:
    """The message's state from its recipients': pending (due at the earliest retry), sent or failed."""
    deliveries = connection.execute(
        select(OutboxRecipient.__table__)
        .where(OutboxRecipient.outbox_id == message_row_id)
        .order_by(OutboxRecipient.id)
    ).fetchall()
    waiting = [d for d in deliveries if d.status == "waiting"]
    sent = [d for d in deliveries if d.status == "sent"]
    problems = [f"{d.recipient}: {d.status}, {d.last_reply}" for d in deliveries if d.status != "sent" and d.last_reply]
    values = {
        "claimed_by": None,
        "delivered_to": [d.recipient for d in sent],
        "last_error": "; ".join(problems)[:2000] or None,
        "redelivery": any(d.redelivery for d in deliveries),
    }
    if any(_aware(d.sent_at) == now for d in sent if d.sent_at is not None):
        values["sent_at"] = now
    if waiting:
        values |= {"status": "pending", "next_attempt_at": min(_aware(d.next_attempt_at) for d in waiting)}
    else:
        values["status"] = "failed" if len(sent) < len(deliveries) else "sent"
    connection.execute(update(OutboxMessage).where(OutboxMessage.id == message_row_id).values(**values))


def count_waiting(connection: Connection, settings: Settings) -> int:
    """Deliveries not done yet: recipients waiting (due or on their backoff), and the recipients of due messages
    no sender has claimed yet (at least one each)."""
    waiting = connection.execute(
        select(func.count()).select_from(OutboxRecipient).where(OutboxRecipient.status == "waiting")
    ).scalar_one()
    unclaimed = connection.execute(
        select(OutboxMessage.recipients).where(
            OutboxMessage.status.in_(("pending", "sending")),
            ~exists().where(OutboxRecipient.outbox_id == OutboxMessage.id),
        )
    ).scalars()
    return waiting + sum(max(len(r or []) or len(settings.alert_recipients), 1) for r in unclaimed)


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite gives back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
