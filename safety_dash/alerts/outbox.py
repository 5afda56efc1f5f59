"""The email outbox: alerts become messages in the database, a sender delivers them over SMTP, recipient by
recipient, retrying.

Rows and states (table ``alert_outbox``):

- ``alert``: one message per immediate alert, written in the transaction that opens the alert (so an alert never
  exists without its email, and an email never without its alert): pending -> sending -> sent or failed;
- ``digest_item``: an alert of a ``delivery: digest`` rule, held until the study's daily digest time
  (``digest_at`` of the rule file, UTC): held -> digested (into a ``digest`` row);
- ``digest``: one message per study, day and recipient list gathering the due items: pending -> sending -> ...;
- ``failure_notice``: the email saying that a message could not be delivered to some recipients.

Each message has one row per recipient (table ``alert_outbox_recipients``), written when a sender first claims
the message (from the rule's recipients, else SAFETY_DASH_ALERT_RECIPIENTS):

- ``waiting``: not tried yet, or tried and refused for now (a 4xx reply, the server unreachable, or the answer lost
  after the message went out), with ``next_attempt_at`` after an exponential backoff (1, 2, 4, ... minutes, at most
  60);
- ``sent``: the server accepted the message for this recipient; it is never sent to it again;
- ``failed``: refused for good (a 5xx reply at MAIL, RCPT or DATA), or refused for now
  SAFETY_DASH_ALERT_MAX_ATTEMPTS times. A failure is reported once: a log line, the Alerts page, and a
  ``failure_notice`` to the admin address (SAFETY_DASH_ALERT_ADMIN) and the message's other recipients, written in
  the transaction that records the failure.

A message is ``pending`` while a recipient waits (due at the earliest ``next_attempt_at``), ``sent`` once every
recipient has it, ``failed`` when none waits and some failed. A retry goes only to the recipients still waiting:
one recipient's refusal never marks another's delivery nor holds it back.

Delivery guarantee
------------------
*Nothing is lost*: a recipient leaves ``waiting`` only by being accepted (``sent``) or by a failure that is reported.
An unreachable server is not held against a recipient (it was never asked): the message waits as long as it takes.

*Never twice from two senders*: a sender claims a message with ``UPDATE ... SET status='sending' WHERE id = :id AND
status = 'pending'`` committed before it connects, and goes on only when that changed one row; the second sender's
update changes none (PostgreSQL re-checks the WHERE after the first commits; SQLite serialises writers). Every
later update of the message also requires ``status = 'sending' AND claimed_by = <this sender>``.

*Answer lost after the message went out*: SMTP cannot make this exactly-once; the server may have stored the
message and then dropped the connection before its reply, or the process died between the server's acceptance and
the 'sent' record. We choose **at-least-once with a stable Message-ID** over at-most-once, because a lost safety
alert is worse than a duplicate. Such a delivery is marked ``redelivery``: a dropped connection at once, a claim left
by a process that no longer runs on this host or older than :data:`SENDING_TIMEOUT` when the next sender recovers
it (the recipients it was sending to still carry ``sending_since``). It is sent again with the *same* Message-ID
(derived from the study, alert key and episode, or the digest's key), the header ``X-Safety-Dash-Redelivery`` and a
line saying it may be a copy, so mail systems and readers that deduplicate on Message-ID show it once. Outside
that window (crash before the claim, during connection or before the end of DATA, a refusal) each recipient gets
each message exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage

from sqlalchemy import Connection, Engine, and_, func, select, update
from sqlalchemy.exc import IntegrityError

from safety_dash.alerts.deliveries import (
    backoff,
    count_waiting,
    insert_pending_message,
    make_message_id,
    record_answers,
)
from safety_dash.alerts.models import Alert, OutboxMessage, OutboxRecipient
from safety_dash.alerts.smtp import SmtpAnswer, send_over_smtp
from safety_dash.config import Settings
from safety_dash.db.models import utcnow
from safety_dash.processes import current_host, is_dead_here

log = logging.getLogger(__name__)

SENDING_TIMEOUT = dt.timedelta(minutes=15)  # far above an SMTP transaction (30 s timeout per command)
MAX_MESSAGES_PER_RUN = 100
EXIT_FAILED, EXIT_WAITING = 1, 3  # `alerts send`: a delivery failed in this call / deliveries still wait
# --- enqueueing (called by evaluate, inside the evaluation's transaction) ----------------------------------------


def next_digest_time(now: dt.datetime, digest_at: tuple[int, int]) -> dt.datetime:
    """The first daily digest time (UTC hour, minute) after ``now``."""
    now = _aware(now)
    at = now.replace(hour=digest_at[0], minute=digest_at[1], second=0, microsecond=0)
    return at if at > now else at + dt.timedelta(days=1)


def enqueue_alert(
    connection: Connection,
    alert_id: int,
    study_id: str,
    alert_key: str,
    episode: int,
    delivery: str,
    recipients: Iterable[str],
    digest_at: tuple[int, int],
    now: dt.datetime,
) -> int:
    """Put the email of a new alert in the outbox: pending at once, or held for the daily digest."""
    key = hashlib.sha256(f"{study_id}\x1f{alert_key}\x1f{episode}".encode()).hexdigest()
    immediate = delivery == "immediate"
    return connection.execute(
        OutboxMessage.__table__.insert()
        .values(
            study_id=study_id,
            kind="alert" if immediate else "digest_item",
            alert_id=alert_id,
            message_key=f"alert:{key}",
            message_id=make_message_id("alert", study_id, alert_key, episode),
            recipients=list(recipients),
            status="pending" if immediate else "held",
            hold_until=None if immediate else next_digest_time(now, digest_at),
            attempts=0,
            next_attempt_at=now,
            redelivery=False,
            created_at=now,
        )
        .returning(OutboxMessage.__table__.c.id)
    ).scalar_one()


# --- delivering ----------------------------------------------------------------------------------------------------

Delivery = tuple[int, str]  # (outbox message row id, recipient)


@dataclass
class DeliveryReport:
    """What one run of the sender did, recipient by recipient."""

    sent: list[Delivery] = field(default_factory=list)  # accepted by the server in this run
    deferred: list[Delivery] = field(default_factory=list)  # tried in this run, waiting for another attempt
    failed: list[Delivery] = field(default_factory=list)  # given up in this run (and reported)
    waiting: int = 0  # deliveries still waiting when the run ended: deferred now, or on their backoff
    skipped: list[int] = field(default_factory=list)  # messages claimed by another sender first
    recovered: list[int] = field(default_factory=list)  # messages an interrupted sender left 'sending'
    digests: list[int] = field(default_factory=list)  # digest messages put together this run
    notices: list[int] = field(default_factory=list)  # failure notices written this run
    errors: dict[str, str] = field(default_factory=dict)  # "<message id> to <recipient>" or "<message id>": why

    def to_json(self) -> dict:
        """The counts printed by ``alerts send --json``: recipient deliveries sent and failed in this run, and
        waiting when it ended."""
        return {"sent": len(self.sent), "waiting": self.waiting, "failed": len(self.failed)}

    @property
    def exit_code(self) -> int:
        """0 when nothing failed and nothing waits; 1 when a delivery failed in this run (even if others wait);
        3 when deliveries still wait for a retry."""
        return EXIT_FAILED if self.failed else EXIT_WAITING if self.waiting else 0

    @property
    def message(self) -> str:
        """One sentence for the log and the command line."""
        text = f"{len(self.sent)} sent, {self.waiting} waiting (will retry), {len(self.failed)} failed"
        if self.failed:
            text += f" (reported{f' in {len(self.notices)} failure notices' if self.notices else ''})"
        if self.skipped:
            text += f", {len(self.skipped)} taken by another sender"
        if self.recovered:
            text += f", {len(self.recovered)} interrupted deliveries put back"
        if self.digests:
            text += f", {len(self.digests)} digests put together"
        return text


SmtpSend = Callable[[Settings, EmailMessage, list[str]], dict[str, SmtpAnswer]]


def deliver_outbox(
    engine: Engine,
    settings: Settings,
    now: dt.datetime | None = None,
    limit: int = MAX_MESSAGES_PER_RUN,
    render_chart: Callable[[dict], bytes] | None = None,
    smtp_send: SmtpSend | None = None,
) -> DeliveryReport:
    """Deliver every due message of the outbox (at most ``limit``) to its recipients still waiting, then the
    failure notices this run wrote; safe to run in several processes at once.

    ``now`` (default: the clock) decides what is due; ``render_chart`` and ``smtp_send`` replace the chart
    renderer and the SMTP transaction (tests).
    """
    now = _aware(now or utcnow())
    smtp_send = smtp_send or send_over_smtp
    worker = f"{current_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    report = DeliveryReport()
    report.recovered = recover_interrupted_sends(engine, now)
    report.digests = compose_digests(engine, now)
    with engine.connect() as connection:
        due = (
            connection.execute(
                select(OutboxMessage.id)
                .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
            )
            .scalars()
            .all()
        )
    for message_row_id in due:
        deliver_message(engine, settings, message_row_id, worker, now, report, render_chart, smtp_send)
    for notice_id in list(report.notices):  # tell of a failure now, not a minute later
        if notice_id not in due:
            deliver_message(engine, settings, notice_id, worker, now, report, render_chart, smtp_send)
    with engine.connect() as connection:
        report.waiting = count_waiting(connection, settings)
    return report


class SmtpProblem(Exception):
    """A message that cannot be sent now for a reason outside SMTP itself (e.g. no recipients)."""


def deliver_message(engine, settings, message_row_id, worker, now, report, render_chart, smtp_send) -> None:
    """Claim one message, send it to its recipients that are due (those marked a possible redelivery in a
    transaction of their own, with the header) and record each recipient's answer."""
    if not claim_message(engine, message_row_id, worker, now, settings.alert_recipients):
        report.skipped.append(message_row_id)
        return
    answers: dict[str, SmtpAnswer] = {}
    try:
        with engine.connect() as connection:
            loaded = load_for_sending(connection, message_row_id)
        if not loaded.everyone:
            raise SmtpProblem("no recipients: the rule names none and SAFETY_DASH_ALERT_RECIPIENTS is empty")
        for redelivery in (False, True):
            group = [d.recipient for d in loaded.due if d.redelivery == redelivery]
            if group:
                message = build_email(loaded, settings, redelivery, render_chart)
                answers |= smtp_send(settings, message, group)
    except SmtpProblem as error:
        _record_failure(engine, message_row_id, worker, now, str(error))
        report.errors[str(message_row_id)] = str(error)
        log.warning("outbox message %s not delivered (will retry): %s", message_row_id, error)
        return
    except Exception as error:  # a bug must not leave the message 'sending' until the timeout
        if answers:  # what a first transaction delivered stays recorded: never sent again unmarked
            record_answers(engine, message_row_id, worker, now, answers, settings)
        else:
            _record_failure(engine, message_row_id, worker, now, f"{type(error).__name__}: {error}")
        raise
    recorded = record_answers(engine, message_row_id, worker, now, answers, settings)
    for recipient, answer in answers.items():
        state = recorded.states.get(recipient)
        if state == "sent":
            report.sent.append((message_row_id, recipient))
        elif state in ("waiting", "failed"):
            (report.deferred if state == "waiting" else report.failed).append((message_row_id, recipient))
            report.errors[f"{message_row_id} to {recipient}"] = answer.reply
            if state == "waiting":
                log.warning("outbox message %s to %s not delivered (will retry): %s", message_row_id, recipient,
                            answer.reply)  # fmt: skip
    report.notices += recorded.notices


def claim_message(
    engine: Engine, message_row_id: int, worker: str, now: dt.datetime, default_recipients: Iterable[str] = ()
) -> bool:
    """Take a pending message for this sender; False when another sender has it or it is not due.

    In the same transaction the message gets its recipient rows if it has none yet (its own list, else
    ``default_recipients``), and the recipients due now are marked as being sent (``sending_since``).
    """
    with engine.begin() as connection:
        result = connection.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_row_id,
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
            )
            .values(status="sending", claimed_at=now, claimed_by=worker, attempts=OutboxMessage.attempts + 1)
        )
        if result.rowcount != 1:
            return False
        row = connection.execute(
            select(OutboxMessage.recipients, OutboxMessage.redelivery).where(OutboxMessage.id == message_row_id)
        ).one()
        has_rows = connection.execute(
            select(func.count()).select_from(OutboxRecipient).where(OutboxRecipient.outbox_id == message_row_id)
        ).scalar_one()
        if not has_rows:
            addresses = list(dict.fromkeys(list(row.recipients or []) or list(default_recipients)))
            if addresses:
                connection.execute(
                    OutboxRecipient.__table__.insert(),
                    [{"outbox_id": message_row_id, "recipient": a, "status": "waiting", "attempts": 0, "deferrals": 0,
                      "next_attempt_at": now, "redelivery": bool(row.redelivery), "created_at": now}
                     for a in addresses],
                )  # fmt: skip
        connection.execute(
            update(OutboxRecipient)
            .where(
                OutboxRecipient.outbox_id == message_row_id,
                OutboxRecipient.status == "waiting",
                OutboxRecipient.next_attempt_at <= now,
            )
            .values(sending_since=now)
        )
        return True


@dataclass
class Loaded:
    """What a sender needs to build a message: the row, its alerts, its recipients and, for a failure notice,
    the message it is about and the failed deliveries it reports."""

    row: object
    alerts: list
    everyone: list[str]  # every recipient of the message (its To header)
    due: list  # recipient rows to send to now
    about: object = None
    failures: list = field(default_factory=list)


def load_for_sending(connection: Connection, message_row_id: int) -> Loaded:
    """The message, its alerts and its recipients; the due ones are those this claim marked ``sending_since``."""
    recipients = connection.execute(
        select(OutboxRecipient.__table__)
        .where(OutboxRecipient.outbox_id == message_row_id)
        .order_by(OutboxRecipient.id)
    ).fetchall()
    due = [r for r in recipients if r.status == "waiting" and r.sending_since is not None]
    row, alerts = load_message(connection, message_row_id)
    loaded = Loaded(row, alerts, [r.recipient for r in recipients], due)
    if row.kind == "failure_notice":
        loaded.failures = connection.execute(
            select(OutboxRecipient.__table__)
            .where(OutboxRecipient.notice_id == message_row_id)
            .order_by(OutboxRecipient.id)
        ).fetchall()
        if loaded.failures:
            loaded.about, loaded.alerts = load_message(connection, loaded.failures[0].outbox_id)
    return loaded


def build_email(loaded: Loaded, settings: Settings, redelivery: bool, render_chart) -> EmailMessage:
    """The email of a loaded message, as sent to its due recipients."""
    from safety_dash.alerts.email import build_failure_notice_email, build_outbox_email  # email sits above

    if loaded.row.kind == "failure_notice":
        return build_failure_notice_email(loaded.row, loaded.about, loaded.alerts, loaded.failures, settings,
                                          loaded.everyone, redelivery=redelivery)  # fmt: skip
    return build_outbox_email(loaded.row, loaded.alerts, settings, loaded.everyone, render_chart=render_chart,
                              redelivery=redelivery)  # fmt: skip


def load_message(connection: Connection, message_row_id: int):
    """The outbox row and the alert rows its message carries (one, or a digest's items in order)."""
    row = connection.execute(select(OutboxMessage.__table__).where(OutboxMessage.id == message_row_id)).one()
    if row.kind == "digest":
        items = select(OutboxMessage.alert_id).where(OutboxMessage.digest_id == message_row_id)
        where = Alert.id.in_(items)
    else:
        where = Alert.id == row.alert_id
    alerts = connection.execute(select(Alert.__table__).where(where).order_by(Alert.created_at, Alert.id)).fetchall()
    return row, alerts


def _record_failure(engine: Engine, message_row_id: int, worker: str, now: dt.datetime, error: str) -> None:
    """The message could not be tried at all: back to pending after the backoff, its recipients untouched."""
    with engine.begin() as connection:
        attempts = connection.execute(
            select(OutboxMessage.attempts).where(OutboxMessage.id == message_row_id)
        ).scalar_one()
        next_attempt = now + backoff(attempts)
        result = connection.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_row_id,
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
            .values(status="pending", claimed_by=None, next_attempt_at=next_attempt, last_error=error[:2000])
        )
        if result.rowcount == 1:
            connection.execute(
                update(OutboxRecipient)
                .where(OutboxRecipient.outbox_id == message_row_id, OutboxRecipient.status == "waiting")
                .values(sending_since=None, next_attempt_at=next_attempt)
            )


def recover_interrupted_sends(engine: Engine, now: dt.datetime) -> list[int]:
    """Put back to pending the messages left 'sending' by a sender that is gone; the recipients it was sending to
    are marked as a possible redelivery.

    Gone: a process of this host that no longer runs, or any claim older than :data:`SENDING_TIMEOUT`.
    """
    recovered = []
    with engine.begin() as connection:
        rows = connection.execute(
            select(OutboxMessage.id, OutboxMessage.claimed_by, OutboxMessage.claimed_at).where(
                OutboxMessage.status == "sending"
            )
        ).fetchall()
        for row in rows:
            claim_host, _, rest = (row.claimed_by or "").partition(":")
            pid = rest.split(":", 1)[0]
            dead_here = pid.isdigit() and is_dead_here(claim_host, int(pid))
            stale = row.claimed_at is None or _aware(row.claimed_at) < now - SENDING_TIMEOUT
            if not (dead_here or stale):
                continue
            result = connection.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id == row.id,
                    OutboxMessage.status == "sending",
                    OutboxMessage.claimed_by == row.claimed_by,
                )
                .values(
                    status="pending",
                    claimed_by=None,
                    redelivery=True,  # a message claimed before recipient rows existed: its rows inherit it
                    next_attempt_at=now,
                    last_error=f"interrupted while sending (claimed by {row.claimed_by} at {row.claimed_at}); "
                    "sending again with the same Message-ID",
                )
            )
            if result.rowcount == 1:
                connection.execute(
                    update(OutboxRecipient)
                    .where(
                        and_(OutboxRecipient.outbox_id == row.id, OutboxRecipient.status == "waiting"),
                        OutboxRecipient.sending_since.is_not(None),
                    )
                    .values(sending_since=None, redelivery=True, next_attempt_at=now)
                )
                recovered.append(row.id)
                log.warning("outbox message %s: sender %s is gone; delivering again", row.id, row.claimed_by)
    return recovered


def compose_digests(engine: Engine, now: dt.datetime) -> list[int]:
    """Gather held digest items that are due into one message per study, day and recipient list."""
    with engine.connect() as connection:
        items = connection.execute(
            select(OutboxMessage.id, OutboxMessage.study_id, OutboxMessage.recipients, OutboxMessage.hold_until)
            .where(OutboxMessage.status == "held", OutboxMessage.hold_until <= now)
            .order_by(OutboxMessage.id)
        ).fetchall()
    groups: dict[tuple, list] = {}
    for item in items:
        recipients = tuple(sorted(item.recipients or []))
        groups.setdefault((item.study_id, _aware(item.hold_until).date(), recipients), []).append(item.id)
    digests = []
    for (study_id, day, recipients), ids in groups.items():
        key = f"digest:{study_id}:{day.isoformat()}:{','.join(recipients)}:{ids[0]}"
        key = "digest:" + hashlib.sha256(key.encode()).hexdigest()
        try:
            digest_id = _insert_digest(engine, study_id, key, list(recipients), ids, now)
        except (_Contended, IntegrityError):
            continue  # another sender took some of the items: the next run sees what is left
        digests.append(digest_id)
    return digests


class _Contended(Exception):
    pass


def _insert_digest(engine: Engine, study_id: str, key: str, recipients: list[str], ids: list[int], now) -> int:
    with engine.begin() as connection:
        digest_id = insert_pending_message(connection, study_id, "digest", key, recipients, now)
        taken = connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "held")
            .values(status="digested", digest_id=digest_id)
        ).rowcount
        if taken != len(ids):
            raise _Contended  # rolls back the digest row too
    return digest_id


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite gives back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
