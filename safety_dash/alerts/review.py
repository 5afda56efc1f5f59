"""What the Alerts page needs: the alerts of a study with their evidence, the delivery of an alert's email to each
recipient, and acknowledging an alert.

Monitors acknowledge with a comment; who, in which role, when and the comment are recorded on the
alert. Committee members read alerts but cannot acknowledge them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Connection, select, update

from safety_dash.alerts.models import ALERT_STATUSES, Alert, OutboxMessage, OutboxRecipient
from safety_dash.audit import record_event
from safety_dash.db.models import utcnow
from safety_dash.db.queries import run_query

ACKNOWLEDGING_ROLES = ("monitor",)
READING_ROLES = ("committee",)
JSON_COLUMNS = ("scope", "evidence")
TIME_COLUMNS = ("created_at", "acknowledged_at", "resolved_at", "email_sent_at")


def list_alerts(connection: Connection, study_id: str, status: str | Iterable[str] | None = None) -> pd.DataFrame:
    """The alerts of ``study_id``, newest first; ``status`` one of open, acknowledged, resolved, or several.

    Columns: alert_id, study_id, rule_id, kind, delivery, title, summary, status, condition_active (as of the
    newest cut evaluated), run_id (the cut that fired it), cutoff, last_run_id, alert_key, episode, scope and
    evidence (dicts: numbers, subjects, records, cut, chart data), view_path (the dashboard page and filters: prefix
    SAFETY_DASH_BASE_URL or use as a relative link), created_at, acknowledged_by, acknowledged_role,
    acknowledged_at, ack_comment, resolved_at, resolved_run_id, email_status (held, pending, sending, sent or
    digested), email_sent_at, email_attempts, email_error.
    """
    wanted = [status] if isinstance(status, str) or status is None else list(status)
    for value in wanted:
        if value is not None and value not in ALERT_STATUSES:
            raise ValueError(f"status {value!r} is not an alert status; use one of {', '.join(ALERT_STATUSES)}")
    single = wanted[0] if len(wanted) == 1 else None
    frame = run_query(connection, "alerts_list", study_id=study_id, status=single)
    if len(wanted) > 1:
        frame = frame.loc[frame["status"].isin(wanted)].reset_index(drop=True)
    for column in JSON_COLUMNS:  # JSON comes back as text from SQLite, as dicts from PostgreSQL
        frame[column] = [json.loads(v) if isinstance(v, str) else v for v in frame[column]]
    frame["condition_active"] = frame["condition_active"].astype(bool)
    for column in TIME_COLUMNS:  # text from SQLite, aware datetimes from PostgreSQL: UTC timestamps for both
        frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    frame["cutoff"] = pd.to_datetime(frame["cutoff"]).dt.date
    return frame


def list_deliveries(connection: Connection, alert_id: int) -> list[dict]:
    """The deliveries of alert ``alert_id``'s email, one per recipient, in the order written: of its own message, or
    of the daily digest that carried it; [] while no sender has taken the message (or it is held for its digest).

    Keys: outbox_id and kind of the message, recipient, status (waiting, sent or failed), attempts, deferrals,
    next_attempt_at, sent_at, failed_at, reported_at (UTC datetimes or None), last_code and last_reply (the server's
    last answer), redelivery (sent again after an attempt whose outcome was unknown), notified_to (who the failure
    notice went to) and notice_status.
    """
    item = connection.execute(
        select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.digest_id)
        .where(OutboxMessage.alert_id == alert_id, OutboxMessage.kind.in_(("alert", "digest_item")))
        .order_by(OutboxMessage.id)
    ).first()
    message_id = None if item is None else item.digest_id if item.kind == "digest_item" else item.id
    if message_id is None:
        return []
    kind = connection.execute(select(OutboxMessage.kind).where(OutboxMessage.id == message_id)).scalar_one()
    rows = connection.execute(
        select(OutboxRecipient.__table__).where(OutboxRecipient.outbox_id == message_id).order_by(OutboxRecipient.id)
    ).fetchall()
    notice_ids = {row.notice_id for row in rows if row.notice_id is not None}
    notices = {
        notice.id: notice
        for notice in connection.execute(
            select(OutboxMessage.id, OutboxMessage.recipients, OutboxMessage.status).where(
                OutboxMessage.id.in_(notice_ids)
            )
        )
    }
    deliveries = []
    for row in rows:
        notice = notices.get(row.notice_id)
        recipients = notice.recipients if notice is not None else []
        deliveries.append(
            {
                "outbox_id": message_id,
                "kind": kind,
                "recipient": row.recipient,
                "status": row.status,
                "attempts": row.attempts,
                "deferrals": row.deferrals,
                "next_attempt_at": _utc(row.next_attempt_at),
                "sent_at": _utc(row.sent_at),
                "failed_at": _utc(row.failed_at),
                "reported_at": _utc(row.reported_at),
                "last_code": row.last_code,
                "last_reply": row.last_reply,
                "redelivery": bool(row.redelivery),
                "notified_to": json.loads(recipients) if isinstance(recipients, str) else list(recipients or []),
                "notice_status": notice.status if notice is not None else None,
            }
        )
    return deliveries


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives back naive datetimes; every stored time is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=dt.UTC)


def acknowledge_alert(connection: Connection, alert_id: int, username: str, role: str, comment: str) -> dict:
    """Acknowledge an open alert as ``username`` in ``role`` with ``comment``; return the alert as a dict.

    Only monitors acknowledge; a committee member gets a PermissionError with the reason. An alert whose
    condition is already gone is resolved at once (it can then fire again if the condition comes back). The
    acknowledgement is written to the audit trail (``alert_acknowledged``, the comment as its reason).
    """
    if role in READING_ROLES:
        raise PermissionError(
            f"{username} is a committee member: committee members can read alerts but not acknowledge them; "
            "ask a monitor to acknowledge this alert"
        )
    if role not in ACKNOWLEDGING_ROLES:
        raise ValueError(f"role {role!r} cannot acknowledge alerts; only {' and '.join(ACKNOWLEDGING_ROLES)} can")
    if not isinstance(username, str) or not username.strip():
        raise ValueError("username is empty; an acknowledgement must say who made it")
    if not isinstance(comment, str) or not comment.strip():
        raise ValueError("the comment is empty; say what was done or decided about this alert")
    row = connection.execute(select(Alert.__table__).where(Alert.id == alert_id)).first()
    if row is None:
        raise ValueError(f"alert {alert_id} does not exist")
    if row.status != "open":
        raise ValueError(
            f"alert {alert_id} is {row.status}, not open: acknowledged by {row.acknowledged_by} at "
            f"{row.acknowledged_at:%Y-%m-%d %H:%M} UTC"
            if row.acknowledged_at
            else f"alert {alert_id} is {row.status}, not open"
        )
    now = utcnow()
    values = {"status": "acknowledged", "acknowledged_by": username.strip(), "acknowledged_role": role,
              "acknowledged_at": now, "ack_comment": comment.strip()}  # fmt: skip
    if not row.condition_active:
        values |= {"status": "resolved", "open_key": None, "resolved_at": now, "resolved_run_id": row.last_run_id}
    result = connection.execute(update(Alert).where(Alert.id == alert_id, Alert.status == "open").values(**values))
    if result.rowcount != 1:
        raise ValueError(f"alert {alert_id} was acknowledged by someone else a moment ago; reload the page")
    record_event(connection, username.strip(), "alert_acknowledged", "alert", alert_id, study_id=row.study_id,
                 before={"status": "open"}, after={"status": values["status"]}, reason=comment.strip())  # fmt: skip
    return dict(connection.execute(select(Alert.__table__).where(Alert.id == alert_id)).one()._mapping)
