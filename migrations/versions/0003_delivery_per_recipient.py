"""delivery per recipient: alert_outbox_recipients

One row per (outbox message, recipient) with that recipient's delivery state. Messages already in the outbox:

- 'sent' rows: each address in ``delivered_to`` becomes a 'sent' delivery. The addresses the server refused (kept
  in ``last_error`` as "refused by the server: {json}") were never delivered: a 5xx refusal becomes a 'failed'
  delivery (reported by the next ``alerts send``, as any new failure), anything else a 'waiting' one, due now;
  such a message goes back to 'pending' so that the next ``alerts send`` finishes it.
- other rows (pending, sending, held, digested) get their recipient rows when a sender next claims them, from the
  rule's list or SAFETY_DASH_ALERT_RECIPIENTS as before.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00
"""

import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

REFUSED_PREFIX = "refused by the server: "


def upgrade() -> None:
    op.create_table(
        'alert_outbox_recipients',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('outbox_id', sa.Integer(), nullable=False),
        sa.Column('recipient', sa.String(length=320), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('deferrals', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sending_since', sa.DateTime(timezone=True), nullable=True),
        sa.Column('redelivery', sa.Boolean(), nullable=False),
        sa.Column('last_code', sa.Integer(), nullable=True),
        sa.Column('last_reply', sa.Text(), nullable=True),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reported_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('notice_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['notice_id'], ['alert_outbox.id'],
                                name=op.f('fk_alert_outbox_recipients_notice_id_alert_outbox')),
        sa.ForeignKeyConstraint(['outbox_id'], ['alert_outbox.id'],
                                name=op.f('fk_alert_outbox_recipients_outbox_id_alert_outbox')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_outbox_recipients')),
        sa.UniqueConstraint('outbox_id', 'recipient', name='uq_alert_outbox_recipients_outbox_recipient'),
    )
    with op.batch_alter_table('alert_outbox_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alert_outbox_recipients_notice_id'), ['notice_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_alert_outbox_recipients_outbox_id'), ['outbox_id'], unique=False)
        batch_op.create_index('ix_alert_outbox_recipients_status_next', ['status', 'next_attempt_at'],
                              unique=False)
    migrate_sent_messages()


def migrate_sent_messages() -> None:
    """Recipient rows for the messages already sent, from ``delivered_to`` and the refusals noted in last_error."""
    connection = op.get_bind()
    outbox = sa.table('alert_outbox', sa.column('id', sa.Integer), sa.column('status', sa.String),
                      sa.column('recipients', sa.JSON), sa.column('delivered_to', sa.JSON),
                      sa.column('last_error', sa.Text), sa.column('sent_at', sa.DateTime(timezone=True)),
                      sa.column('attempts', sa.Integer), sa.column('next_attempt_at', sa.DateTime(timezone=True)))
    recipients = sa.table('alert_outbox_recipients', *(sa.column(name) for name in (
        'outbox_id', 'recipient', 'status', 'attempts', 'deferrals', 'next_attempt_at', 'redelivery', 'last_code',
        'last_reply', 'sent_at', 'failed_at', 'created_at')))
    now = dt.datetime.now(dt.UTC)
    rows = connection.execute(sa.select(outbox).where(outbox.c.status == 'sent')).fetchall()
    for row in rows:
        delivered = _json_list(row.delivered_to)
        refused = _refusals(row.last_error)
        for address in _json_list(row.recipients):
            refused.setdefault(address, (None, "not delivered (refused before safety-dash kept each recipient)"))
        refused = {address: reply for address, reply in refused.items() if address not in delivered}
        sent_at = row.sent_at or now
        values = [dict(outbox_id=row.id, recipient=address, status='sent', attempts=row.attempts or 1, deferrals=0,
                       next_attempt_at=sent_at, redelivery=False, last_code=250, last_reply=None, sent_at=sent_at,
                       failed_at=None, created_at=now) for address in delivered]
        for address, (code, reply) in refused.items():
            permanent = code is not None and 500 <= code < 600
            values.append(dict(outbox_id=row.id, recipient=address, status='failed' if permanent else 'waiting',
                               attempts=row.attempts or 1, deferrals=0 if permanent else 1, next_attempt_at=now,
                               redelivery=False, last_code=code, last_reply=reply, sent_at=None,
                               failed_at=now if permanent else None, created_at=now))
        if values:
            connection.execute(recipients.insert(), values)
        if refused:  # the next `alerts send` delivers to the waiting ones and reports the failed ones
            connection.execute(sa.update(outbox).where(outbox.c.id == row.id)
                               .values(status='pending', next_attempt_at=now))


def _json_list(value) -> list:
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value or []]


def _refusals(note) -> dict:
    """{address: (code, reply)} from a note "refused by the server: {address: [code, reply]}"."""
    if not note or not note.startswith(REFUSED_PREFIX):
        return {}
    try:
        refused = json.loads(note[len(REFUSED_PREFIX):])
    except ValueError:
        return {}
    result = {}
    for address, answer in refused.items():
        code, reply = (answer + [None, None])[:2] if isinstance(answer, list) else (None, answer)
        reply = str(reply or "")
        if reply.startswith(("b'", 'b"')) and len(reply) >= 3:  # bytes written with str()
            reply = reply[2:-1]
        result[address] = (int(code) if isinstance(code, int) else None, f"{code} {reply}".strip())
    return result


def downgrade() -> None:
    with op.batch_alter_table('alert_outbox_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_outbox_recipients_status_next')
        batch_op.drop_index(batch_op.f('ix_alert_outbox_recipients_outbox_id'))
        batch_op.drop_index(batch_op.f('ix_alert_outbox_recipients_notice_id'))
    op.drop_table('alert_outbox_recipients')
