"""Shared fixtures: the public test data beside the repository, and databases to run against."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CDISC_PILOT = SHARED_DATA / "cdiscpilot01"
SYNTHETIC_ONCOLOGY = SHARED_DATA / "random_cdisc_data_ab12345"


def require_shared(path: Path) -> Path:
    """Return ``path``, or skip the test with a visible reason when the shared data is absent.

    CI sets ``SAFETY_DASH_REQUIRE_SHARED=1``: there a missing file fails the test instead of skipping it.
    """
    if path.exists():
        return path
    if os.environ.get("SAFETY_DASH_REQUIRE_SHARED") == "1":
        pytest.fail(f"{path} is missing, and SAFETY_DASH_REQUIRE_SHARED=1 makes the shared test data mandatory")
    pytest.skip(f"public test data not found at {path} (clone the project beside ../shared to run this test)")


@pytest.fixture
def cdisc_pilot() -> Path:
    """The CDISC pilot study folder (SDTM and ADaM .xpt files), unmodified; credit: CDISC."""
    return require_shared(CDISC_PILOT)


@pytest.fixture
def synthetic_oncology() -> Path:
    """random.cdisc.data's synthetic ADaM set with CTCAE grades (.RData); Apache-2.0, F. Hoffmann-La Roche AG."""
    return require_shared(SYNTHETIC_ONCOLOGY)


POSTGRES_URL_VARIABLE = "SAFETY_DASH_TEST_POSTGRES_URL"


def _backends() -> list:
    backends = [pytest.param("sqlite", id="sqlite")]
    backends.append(pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres))
    return backends


@pytest.fixture(params=_backends())
def database_url(request, tmp_path) -> str:
    """A new, migrated, empty database: a SQLite file, or a fresh schema on PostgreSQL.

    PostgreSQL runs when SAFETY_DASH_TEST_POSTGRES_URL is set (CI sets it and requires the server);
    otherwise those tests skip with the reason.
    """
    from safety_dash.db.engine import dispose_engine, upgrade_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'safety_dash.db'}"
        upgrade_database(url)
        yield url
        dispose_engine(url)
        return
    base = os.environ.get(POSTGRES_URL_VARIABLE)
    if not base:
        pytest.skip(f"{POSTGRES_URL_VARIABLE} is not set; PostgreSQL tests need a server (CI sets it)")
    yield from _postgres_schema(base, request.node.name)


def _postgres_schema(base: str, test_name: str):
    import re
    import uuid

    from sqlalchemy import create_engine, text

    from safety_dash.db.engine import dispose_engine, upgrade_database

    schema = "t_" + re.sub(r"\W", "_", test_name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3D{schema}"
    try:
        upgrade_database(url)
        yield url
    finally:
        dispose_engine(url)
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
