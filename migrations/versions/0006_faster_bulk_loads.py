"""faster bulk loads: derived events without a foreign key to their run (a million per-row checks per cut, for rows
written in the transaction of their run by the one function that writes them), and the versions of study records
without their index on study_id alone (each table's index of current versions begins with study_id)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 01:45:00
"""

from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

VERSION_TABLES = ('subject_versions', 'exposure_versions', 'ae_versions', 'lb_versions')


def upgrade() -> None:
    with op.batch_alter_table('derived_events') as batch_op:
        batch_op.drop_constraint('fk_derived_events_run_id_ingestion_runs', type_='foreignkey')
    for table in VERSION_TABLES:
        op.drop_index(f'ix_{table}_study_id', table_name=table)


def downgrade() -> None:
    for table in VERSION_TABLES:
        op.create_index(f'ix_{table}_study_id', table, ['study_id'], unique=False)
    with op.batch_alter_table('derived_events') as batch_op:
        batch_op.create_foreign_key('fk_derived_events_run_id_ingestion_runs', 'ingestion_runs', ['run_id'], ['id'])
