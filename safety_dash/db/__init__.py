"""Storage: models, engine and sessions, migrations, named queries."""
