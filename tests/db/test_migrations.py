"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import safety_dash.alerts.models  # noqa: F401  (registers the alert tables)
from safety_dash.db.engine import alembic_config, get_engine, upgrade_database
from safety_dash.db.models import Base


def test_migrations_match_the_models(database_url):
    with get_engine(database_url).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_upgrade_database_is_idempotent(database_url):
    upgrade_database(database_url)  # the fixture already upgraded once
    with get_engine(database_url).connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    assert current == ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()


def test_the_newest_migration_goes_down_and_up_again(database_url):
    from alembic import command
    from sqlalchemy import inspect

    config = alembic_config(database_url)
    engine = get_engine(database_url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0005")
    inspector = inspect(engine)
    assert "ix_ae_versions_study_id" in {index["name"] for index in inspector.get_indexes("ae_versions")}
    assert [fk["referred_table"] for fk in inspector.get_foreign_keys("derived_events")] == ["ingestion_runs"]
    upgrade_database(database_url)
    inspector = inspect(engine)
    assert "ix_ae_versions_study_id" not in {index["name"] for index in inspector.get_indexes("ae_versions")}
    assert inspector.get_foreign_keys("derived_events") == []
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
