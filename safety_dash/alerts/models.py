"""Tables owned by the alerts package: alerts (one row per episode), evaluations (one per rules x cut) and the
email outbox.

An alert's ``alert_key`` is its rule id plus its scope (cohort and term, or the AE record); it is the same in
every cut. One key can have several *episodes*: a new one only after the previous one was resolved and the
condition came back. ``open_key`` holds the key while the episode is open or acknowledged and is NULL once it is
resolved; the unique constraint on (study_id, open_key) lets at most one unresolved episode exist per key, even
when two evaluations of the same cut run at once (NULLs never collide, on SQLite and on PostgreSQL).

The outbox holds one row per email message (``kind`` 'alert', 'digest' or 'failure_notice') and one row per alert
that waits for its daily digest ('digest_item'); each message has one row per recipient in
``alert_outbox_recipients`` with that recipient's delivery state. See :mod:`safety_dash.alerts.outbox` for the
states and the delivery guarantee.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from safety_dash.db.models import Base, RunId, StudyId, utcnow

ALERT_STATUSES = ("open", "acknowledged", "resolved")
OUTBOX_KINDS = ("alert", "digest_item", "digest", "failure_notice")
# A message is 'sent' when every recipient has it, 'failed' when no recipient waits and at least one failed.
OUTBOX_STATUSES = ("held", "pending", "sending", "sent", "failed", "digested")
DELIVERY_STATES = ("waiting", "sent", "failed")  # of one recipient of one message


class Alert(Base):
    """One episode of an alert: fired on a data cut, open until acknowledged, resolved when the condition is gone."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[StudyId]
    rule_id: Mapped[str] = mapped_column(String(64))
    alert_key: Mapped[str] = mapped_column(String(500))
    episode: Mapped[int] = mapped_column(Integer, default=1)
    open_key: Mapped[str | None] = mapped_column(String(500))  # = alert_key until resolved, then NULL
    kind: Mapped[str] = mapped_column(String(16))  # event | incidence | eair | count | bayesian
    delivery: Mapped[str] = mapped_column(String(16))  # immediate | digest
    title: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    scope: Mapped[dict[str, Any]]  # cohort, term, usubjid, record_key: what the key is made of
    evidence: Mapped[dict[str, Any]]  # numbers, subjects and records as the firing cut showed them
    view_path: Mapped[str] = mapped_column(Text)  # dashboard page and filters, e.g. /rates?study=...&cut=...
    status: Mapped[str] = mapped_column(String(16), default="open")
    condition_active: Mapped[bool] = mapped_column(Boolean, default=True)  # as of last_run_id
    run_id: Mapped[RunId]  # the data cut that fired it
    last_run_id: Mapped[int] = mapped_column(Integer)  # the newest cut it was evaluated on
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_role: Mapped[str | None] = mapped_column(String(16))
    acknowledged_at: Mapped[dt.datetime | None]
    ack_comment: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[dt.datetime | None]
    resolved_run_id: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        UniqueConstraint("study_id", "open_key", name="uq_alerts_study_open_key"),
        UniqueConstraint("study_id", "alert_key", "episode", name="uq_alerts_study_key_episode"),
        Index("ix_alerts_study_status", "study_id", "status"),
    )


class AlertEvaluation(Base):
    """One evaluation of a study's rules on a data cut: event rules look at records new since the last one."""

    __tablename__ = "alert_evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[StudyId]
    run_id: Mapped[RunId]
    rules_file: Mapped[str | None] = mapped_column(Text)
    n_rules: Mapped[int] = mapped_column(Integer)
    n_fired: Mapped[int] = mapped_column(Integer)
    n_resolved: Mapped[int] = mapped_column(Integer)
    evaluated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_alert_evaluations_study_run", "study_id", "run_id"),)


class OutboxMessage(Base):
    """An email to deliver (kind 'alert' or 'digest'), or an alert held for its daily digest ('digest_item')."""

    __tablename__ = "alert_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[StudyId]
    kind: Mapped[str] = mapped_column(String(16))
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id"), index=True)
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("alert_outbox.id"), index=True)
    message_key: Mapped[str] = mapped_column(String(600), unique=True)
    message_id: Mapped[str] = mapped_column(String(300))  # the Message-ID header, the same on every attempt
    recipients: Mapped[list[str]] = mapped_column(JSON, default=list)  # the rule's; empty: SAFETY_DASH_ALERT_RECIPIENTS
    status: Mapped[str] = mapped_column(String(16))
    hold_until: Mapped[dt.datetime | None]  # digest items: when their digest is put together
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # host:pid of the sender holding it
    redelivery: Mapped[bool] = mapped_column(Boolean, default=False)  # an earlier attempt may have been delivered
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_to: Mapped[list[str] | None] = mapped_column(JSON)
    sent_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_alert_outbox_status_next", "status", "next_attempt_at"),)


class OutboxRecipient(Base):
    """The delivery of one outbox message to one recipient: waiting (not yet tried, or a temporary failure with
    its next attempt), sent (the server accepted it for this recipient) or failed (refused for good)."""

    __tablename__ = "alert_outbox_recipients"

    id: Mapped[int] = mapped_column(primary_key=True)
    outbox_id: Mapped[int] = mapped_column(ForeignKey("alert_outbox.id"), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16))  # one of DELIVERY_STATES
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # SMTP transactions that included this recipient
    deferrals: Mapped[int] = mapped_column(Integer, default=0)  # temporary (4xx) answers about this recipient
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Set when a sender takes the delivery, cleared when it records the outcome: still set on a delivery a sender
    # abandoned (it died), whose message the server may have stored.
    sending_since: Mapped[dt.datetime | None]
    redelivery: Mapped[bool] = mapped_column(Boolean, default=False)  # an earlier attempt may have been delivered
    last_code: Mapped[int | None] = mapped_column(Integer)  # the server's reply code of the last attempt
    last_reply: Mapped[str | None] = mapped_column(Text)  # and its text, or the connection problem
    sent_at: Mapped[dt.datetime | None]
    failed_at: Mapped[dt.datetime | None]
    reported_at: Mapped[dt.datetime | None]  # failed deliveries: when the failure was reported (once)
    notice_id: Mapped[int | None] = mapped_column(ForeignKey("alert_outbox.id"), index=True)  # the email about it
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("outbox_id", "recipient", name="uq_alert_outbox_recipients_outbox_recipient"),
        Index("ix_alert_outbox_recipients_status_next", "status", "next_attempt_at"),
    )
