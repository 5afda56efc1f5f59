"""The email outbox: alerts become messages in the database, a sender delivers them over SMTP, retrying.

Rows and states (table ``alert_outbox``):

- ``alert``: one message per immediate alert, written in the transaction that opens the alert (so an alert never
  exists without its email, and an email never without its alert): pending -> sending -> sent;
- ``digest_item``: an alert of a ``delivery: digest`` rule, held until the study's daily digest time
  (``digest_at`` of the rule file, UTC): held -> digested (into a ``digest`` row);
- ``digest``: one message per study, day and recipient list gathering the due items: pending -> sending -> sent.

Delivery guarantee
------------------
*Nothing is lost*: a message leaves ``pending`` only by being accepted by the SMTP server (``sent``); a refused or
unreachable server puts it back to ``pending`` with the error and ``next_attempt_at`` after an exponential backoff
(1, 2, 4, ... minutes, at most 60), retried for as long as it takes.

*Never twice from two senders*: a sender claims a row with ``UPDATE ... SET status='sending' WHERE id = :id AND
status = 'pending'`` committed before it connects, and goes on only when that changed one row; the second sender's
update changes none (PostgreSQL re-checks the WHERE after the first commits; SQLite serialises writers). Every
later update of the row also requires ``status = 'sending' AND claimed_by = <this sender>``.

*Crash between the server's acceptance and the 'sent' record*: SMTP cannot make this exactly-once; the server may
have taken the message in the milliseconds before the process died. We choose **at-least-once with a stable
Message-ID** over at-most-once, because a lost safety alert is worse than a duplicate: a row left ``sending`` by a
process that no longer runs on this host, or claimed longer than :data:`SENDING_TIMEOUT` ago, goes back to
``pending`` marked ``redelivery``; it is sent again with the *same* Message-ID (derived from the study, alert key and
episode, or the digest's key), a header ``X-Safety-Dash-Redelivery`` and a line saying it may be a copy, so mail
systems and readers that deduplicate on Message-ID show it once. Outside that window (crash before the claim, during
connection or before the DATA reply, server refusal) each message is delivered exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import smtplib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage

from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.exc import IntegrityError

from safety_dash.alerts.models import Alert, OutboxMessage
from safety_dash.config import Settings
from safety_dash.db.models import utcnow
from safety_dash.processes import current_host, is_dead_here

log = logging.getLogger(__name__)

SENDING_TIMEOUT = dt.timedelta(minutes=15)  # far above an SMTP transaction (30 s timeout per command)
BACKOFF_FIRST, BACKOFF_MAX = dt.timedelta(minutes=1), dt.timedelta(minutes=60)
MAX_MESSAGES_PER_RUN = 100
SMTP_TIMEOUT_SECONDS = 30
MESSAGE_ID_DOMAIN = "safety-dash"


# --- enqueueing (called by evaluate, inside the evaluation's transaction) ----------------------------------------


def make_message_id(*parts: object) -> str:
    """A Message-ID derived only from ``parts``: the same alert always carries the same one."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@{MESSAGE_ID_DOMAIN}>"


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


@dataclass
class DeliveryReport:
    """What one run of the sender did."""

    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # attempts that failed; the rows wait for their retry
    skipped: list[int] = field(default_factory=list)  # claimed by another sender first
    recovered: list[int] = field(default_factory=list)  # rows an interrupted sender left 'sending'
    digests: list[int] = field(default_factory=list)  # digest messages put together this run
    errors: dict[int, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        """The report as printed by ``alerts send --json``."""
        return {name: getattr(self, name) for name in ("sent", "failed", "skipped", "recovered", "digests", "errors")}

    @property
    def message(self) -> str:
        """One sentence for the log and the command line."""
        text = f"{len(self.sent)} sent, {len(self.failed)} failed (will retry), {len(self.skipped)} taken by another"
        if self.recovered:
            text += f", {len(self.recovered)} interrupted deliveries put back"
        if self.digests:
            text += f", {len(self.digests)} digests put together"
        return text


SmtpSend = Callable[[Settings, EmailMessage, list[str]], dict]


def deliver_outbox(
    engine: Engine,
    settings: Settings,
    now: dt.datetime | None = None,
    limit: int = MAX_MESSAGES_PER_RUN,
    render_chart: Callable[[dict], bytes] | None = None,
    smtp_send: SmtpSend | None = None,
) -> DeliveryReport:
    """Deliver every due message of the outbox (at most ``limit``); safe to run in several processes at once.

    ``now`` (default: the clock) decides what is due; ``render_chart`` and ``smtp_send`` replace the chart
    renderer and the SMTP transaction (tests).
    """
    from safety_dash.alerts.email import build_outbox_email  # email sits above the outbox

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
        if not claim_message(engine, message_row_id, worker, now):
            report.skipped.append(message_row_id)
            continue
        try:
            with engine.connect() as connection:
                row, alerts = load_message(connection, message_row_id)
            recipients = list(row.recipients or []) or list(settings.alert_recipients)
            if not recipients:
                raise SmtpProblem("no recipients: the rule names none and SAFETY_DASH_ALERT_RECIPIENTS is empty")
            message = build_outbox_email(row, alerts, settings, recipients, render_chart=render_chart)
            refused = smtp_send(settings, message, recipients)
        except (OSError, smtplib.SMTPException, SmtpProblem) as error:
            text = f"{type(error).__name__}: {error}"
            _record_failure(engine, message_row_id, worker, now, text)
            report.failed.append(message_row_id)
            report.errors[message_row_id] = text
            log.warning("outbox message %s not delivered (will retry): %s", message_row_id, text)
            continue
        except Exception as error:  # a bug must not leave the row 'sending' until the timeout
            _record_failure(engine, message_row_id, worker, now, f"{type(error).__name__}: {error}")
            raise
        delivered = [r for r in recipients if r not in refused]
        note = f"refused by the server: {json.dumps(refused, default=str)}" if refused else None
        _record_sent(engine, message_row_id, worker, delivered, note)
        report.sent.append(message_row_id)
    return report


class SmtpProblem(Exception):
    """A message that cannot be sent now for a reason outside SMTP itself (e.g. no recipients)."""


def claim_message(engine: Engine, message_row_id: int, worker: str, now: dt.datetime) -> bool:
    """Take a pending message for this sender; False when another sender has it or it is not due."""
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
        return result.rowcount == 1


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


def backoff(attempts: int) -> dt.timedelta:
    """Wait before the next attempt after ``attempts`` failed ones: 1, 2, 4, ... minutes, at most an hour."""
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def _record_failure(engine: Engine, message_row_id: int, worker: str, now: dt.datetime, error: str) -> None:
    with engine.begin() as connection:
        attempts = connection.execute(
            select(OutboxMessage.attempts).where(OutboxMessage.id == message_row_id)
        ).scalar_one()
        connection.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_row_id,
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
            .values(status="pending", claimed_by=None, next_attempt_at=now + backoff(attempts), last_error=error[:2000])
        )


def _record_sent(engine: Engine, message_row_id: int, worker: str, delivered: list[str], note: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_row_id,
                OutboxMessage.status == "sending",
                OutboxMessage.claimed_by == worker,
            )
            .values(status="sent", sent_at=utcnow(), delivered_to=delivered, last_error=note)
        )


def recover_interrupted_sends(engine: Engine, now: dt.datetime) -> list[int]:
    """Put back to pending, marked as a possible redelivery, the rows left 'sending' by a sender that is gone.

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
                    redelivery=True,
                    next_attempt_at=now,
                    last_error=f"interrupted while sending (claimed by {row.claimed_by} at {row.claimed_at}); "
                    "sending again with the same Message-ID",
                )
            )
            if result.rowcount == 1:
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
        digest_id = connection.execute(
            OutboxMessage.__table__.insert()
            .values(
                study_id=study_id,
                kind="digest",
                message_key=key,
                message_id=make_message_id(key),
                recipients=recipients,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                redelivery=False,
                created_at=now,
            )  # fmt: skip
            .returning(OutboxMessage.__table__.c.id)
        ).scalar_one()
        taken = connection.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.status == "held")
            .values(status="digested", digest_id=digest_id)
        ).rowcount
        if taken != len(ids):
            raise _Contended  # rolls back the digest row too
    return digest_id


def send_over_smtp(settings: Settings, message: EmailMessage, recipients: list[str]) -> dict:
    """One SMTP transaction with the configured server; returns the recipients it refused (all refused raises)."""
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        return smtp.send_message(message, from_addr=settings.smtp_from, to_addrs=recipients)


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite gives back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
