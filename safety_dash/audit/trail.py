"""The audit trail: one append-only table of who did what, when, to which object, with the values before and after.

Rows are only added (:func:`record_event`); triggers made by migration 0004 refuse UPDATE and DELETE on both
databases. Each row is chained to the one before it: ``row_hash`` = SHA-256 of the previous row's hash and this
row's canonical content (:func:`row_digest`), the first row chaining to 64 zeros. Altering or removing a row
around the triggers breaks the chain at that row, which :func:`verify_chain` finds (``audit verify``).

Times are UTC. ``actor`` is a user name, or ``cli`` / ``scheduler`` for the processes. Actions are the names in
:data:`ACTIONS`; the README's "Review and audit" section lists them in an auditor's words.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, insert, select, text

from safety_dash.db.models import AuditEvent, utcnow

GENESIS_HASH = "0" * 64
ACTIONS = (
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "review",
    "unreview",
    "comment",
    "query_status",
    "alert_acknowledged",
    "user_created",
    "user_role_changed",
    "user_disabled",
    "user_password_reset",
    "study_settings_changed",
    "rules_loaded",
    "ingestion_started",
    "ingestion_finished",
    "ingestion_large_change_accepted",
    "audit_exported",
)
HASHED_FIELDS = (
    "id",
    "occurred_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "study_id",
    "before",
    "after",
    "reason",
    "address",
)
EXPORT_COLUMNS = [*HASHED_FIELDS, "prev_hash", "row_hash"]


def _canonical_time(value: dt.datetime) -> str:
    """The instant as UTC ISO text to the microsecond (both databases give it back the same way)."""
    if value.tzinfo is None:  # SQLite gives naive datetimes back; they were stored as UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)


def row_digest(prev_hash: str, fields: dict[str, Any]) -> str:
    """SHA-256 (hex) of ``prev_hash`` and the row's :data:`HASHED_FIELDS` as canonical JSON."""
    content = {name: fields[name] for name in HASHED_FIELDS}
    content["occurred_at"] = _canonical_time(content["occurred_at"])
    payload = prev_hash + json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _take_write_lock(connection: Connection) -> None:
    """Serialise writers of the trail, so that each row chains to the row committed before it."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("LOCK TABLE audit_events IN SHARE ROW EXCLUSIVE MODE"))
    else:  # a write statement takes SQLite's write lock even when it changes no row
        connection.execute(text("UPDATE audit_events SET id = id WHERE 0"))


def record_event(
    connection: Connection,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    *,
    study_id: str | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
    address: str | None = None,
) -> int:
    """Append one event to the trail in ``connection``'s transaction; return its id.

    ``before`` / ``after`` are JSON-serialisable values (stored as JSON text). ``action`` must be one of
    :data:`ACTIONS` (``ValueError`` otherwise). The row commits or rolls back with the action it records.
    """
    if action not in ACTIONS:
        raise ValueError(f"audit action {action!r} is not one of {', '.join(ACTIONS)}")
    _take_write_lock(connection)
    last = connection.execute(
        select(AuditEvent.id, AuditEvent.row_hash).order_by(AuditEvent.id.desc()).limit(1)
    ).first()
    prev_hash = last.row_hash if last else GENESIS_HASH
    fields = {
        "id": (last.id if last else 0) + 1,
        "occurred_at": utcnow(),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "study_id": study_id,
        "before": _json_text(before),
        "after": _json_text(after),
        "reason": reason,
        "address": address,
    }
    connection.execute(insert(AuditEvent).values(**fields, prev_hash=prev_hash, row_hash=row_digest(prev_hash, fields)))
    return fields["id"]


@dataclass(frozen=True)
class ChainBreak:
    """The first row at which the trail stops verifying, and why."""

    row_id: int
    reason: str


def _rows(connection: Connection, batch: int = 5000) -> Iterator:
    last_id = 0
    while True:
        rows = connection.execute(
            select(AuditEvent.__table__).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id


def verify_chain(connection: Connection) -> tuple[int, ChainBreak | None]:
    """Walk the trail in id order; return (rows checked, the first break or None).

    A break is a row whose ``prev_hash`` is not the previous row's hash (a row removed or inserted), whose
    ``row_hash`` does not match its content (a row altered), or whose id skips one (a row removed at the end of
    a gap). A trail whose newest rows were removed cannot be told from a shorter one by the chain alone: the
    README says what the deployment adds (backups, a copy of the latest hash elsewhere).
    """
    expected_prev, expected_id, checked = GENESIS_HASH, 1, 0
    for row in _rows(connection):
        fields = {name: getattr(row, name) for name in HASHED_FIELDS}
        if row.id != expected_id:
            return checked, ChainBreak(row.id, f"row {expected_id} is missing (the next row is {row.id})")
        if row.prev_hash != expected_prev:
            return checked, ChainBreak(row.id, "its prev_hash is not the hash of the row before it")
        if row_digest(row.prev_hash, fields) != row.row_hash:
            return checked, ChainBreak(row.id, "its content does not match its row_hash (the row was altered)")
        expected_prev, expected_id, checked = row.row_hash, row.id + 1, checked + 1
    return checked, None


def export_events(connection: Connection, since: dt.date | None = None) -> pd.DataFrame:
    """The trail (from ``since``, UTC, inclusive) in id order, columns :data:`EXPORT_COLUMNS`; times as UTC ISO."""
    query = select(*(getattr(AuditEvent, name) for name in EXPORT_COLUMNS)).order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= dt.datetime.combine(since, dt.time(), dt.UTC))
    frame = pd.DataFrame(connection.execute(query).all(), columns=EXPORT_COLUMNS)
    frame["occurred_at"] = [_canonical_time(value) for value in frame["occurred_at"]]
    return frame
