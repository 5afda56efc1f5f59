"""Alembic environment: runs migrations on the connection safety-dash hands over (or the configured URL)."""

from alembic import context
from sqlalchemy import create_engine

import safety_dash.alerts.models  # noqa: F401  (registers the alert tables on Base.metadata)
from safety_dash.db.models import Base

target_metadata = Base.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
