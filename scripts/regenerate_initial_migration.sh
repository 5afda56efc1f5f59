#!/usr/bin/env bash
# Regenerates the single initial migration from the models (allowed until the first release).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -f migrations/versions/0001_initial_schema.py /tmp/regen-$$.db
.venv/bin/python - <<PY
from alembic import command
from safety_dash.db.engine import alembic_config
command.revision(alembic_config("sqlite:////tmp/regen-$$.db"), message="initial schema", autogenerate=True, rev_id="0001")
PY
rm -f /tmp/regen-$$.db
