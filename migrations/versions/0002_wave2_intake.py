"""wave 2 intake: study guards and episode key, what a run read, counted events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 21:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('studies') as batch:
        batch.add_column(sa.Column('episode_key', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('max_removed_pct', sa.Float(), nullable=False, server_default='10'))
        batch.add_column(sa.Column('max_quarantined_pct', sa.Float(), nullable=False, server_default='10'))
    with op.batch_alter_table('ingestion_runs') as batch:
        batch.add_column(sa.Column('files', sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column('accepted_large_change', sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Cuts derived before these columns existed: counted = treatment-emergent and not after the cutoff (the
    # rule of wave 1), nothing flagged after death, every record its own event. Re-derive to apply wave 2.
    with op.batch_alter_table('derived_events') as batch:
        batch.add_column(sa.Column('counted', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('after_death', sa.Boolean(), nullable=True))
        batch.add_column(sa.Column('event_id', sa.Integer(), nullable=True))
    op.execute("UPDATE derived_events SET counted = (trtemfl AND NOT after_cutoff), after_death = "
               + ("false" if op.get_bind().dialect.name == "postgresql" else "0") + ", event_id = ae_version_id")
    with op.batch_alter_table('derived_events') as batch:
        batch.alter_column('counted', existing_type=sa.Boolean(), nullable=False)
        batch.alter_column('after_death', existing_type=sa.Boolean(), nullable=False)
        batch.alter_column('event_id', existing_type=sa.Integer(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('derived_events') as batch:
        batch.drop_column('event_id')
        batch.drop_column('after_death')
        batch.drop_column('counted')
    with op.batch_alter_table('ingestion_runs') as batch:
        batch.drop_column('accepted_large_change')
        batch.drop_column('files')
    with op.batch_alter_table('studies') as batch:
        batch.drop_column('max_quarantined_pct')
        batch.drop_column('max_removed_pct')
        batch.drop_column('episode_key')
