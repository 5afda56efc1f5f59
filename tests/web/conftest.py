"""Fixtures of the web tests: a small demo study in a temporary SQLite database, a user, and headless Chromium.

The demo study (``write_demo_study``, 120 subjects, three data cuts) is ingested once per test session through
the real pipeline, so the views are tested on what ingestion stores.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from selenium.webdriver.chrome.options import Options

from safety_dash.config import load_settings
from safety_dash.db.engine import get_engine, upgrade_database
from safety_dash.ingest.demo import write_demo_study
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.web.auth import create_user

USERNAME, PASSWORD, ROLE = "monitor1", "correct horse battery", "monitor"
DEMO_SUBJECTS = 120


def pytest_setup_options():
    """Chromium for dash.testing: headless, and able to run as root in a container."""
    options = Options()
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--window-size=1500,1100",
    ):
        options.add_argument(argument)
    return options


@dataclasses.dataclass(frozen=True)
class DemoDatabase:
    """The test database: its URL, the run ids of the three cuts, the study id and the folder of the extracts."""

    url: str
    run_ids: tuple[int, ...]
    study_id: str
    folder: Path


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory) -> DemoDatabase:
    """A SQLite database holding the demo study's three cuts, ingested by the pipeline, and one user."""
    root = tmp_path_factory.mktemp("web")
    write_demo_study(root / "demo", n_subjects=DEMO_SUBJECTS, seed=1706)
    url = f"sqlite:///{root / 'web.db'}"
    upgrade_database(url)
    run_ids = []
    for cut in ("cut1", "cut2", "cut3"):
        result = ingest_extract(url, root / "demo" / cut)
        assert result.status == "succeeded", result.message
        run_ids.append(result.run_id)
    create_user(get_engine(url), USERNAME, PASSWORD, ROLE)
    return DemoDatabase(url, tuple(run_ids), result.study_id, root / "demo")


@pytest.fixture
def settings(demo_db):
    """Settings pointing at the demo database, with a fixed session key."""
    return dataclasses.replace(
        load_settings(), database_url=demo_db.url, secret_key="test-secret-key", session_minutes=30.0
    )


@pytest.fixture
def web_app(settings):
    """A fresh Dash app on the demo database."""
    from safety_dash.web.app import create_app

    return create_app(settings)


@pytest.fixture
def client(web_app):
    """A Flask test client of the app, signed out."""
    return web_app.server.test_client()


def sign_in_client(client, username: str = USERNAME, password: str = PASSWORD):
    """Sign ``client`` in through the form (fetching its CSRF token first); returns the POST response."""
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf_token"]
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token})


@pytest.fixture
def signed_in(client):
    """The test client, signed in as the monitor."""
    response = sign_in_client(client)
    assert response.status_code == 302
    return client


SIGNAL_DEMO_SUBJECTS = 500  # the demo study as `make demo` writes it: its planted signals are flagged at this size


@pytest.fixture(scope="session")
def signal_demo_db(tmp_path_factory) -> DemoDatabase:
    """The demo study with 500 subjects (seed 1706) in three cuts, as `make demo` loads it, and one user. Its flagged
    signals (DOMAIN.md §7): cut 2 (cohort, Ph Ib NPC, Hypothyroidism); cut 3 the same since cut 2, (cohort,
    Ph Ib NSCLC, Hepatitis), (rising, ALL, Hepatitis) and (rising, Ph Ib NSCLC, Hepatitis), since cut 3."""
    root = tmp_path_factory.mktemp("signals-web")
    write_demo_study(root / "demo", n_subjects=SIGNAL_DEMO_SUBJECTS, seed=1706)
    url = f"sqlite:///{root / 'signals.db'}"
    upgrade_database(url)
    run_ids = []
    for cut in ("cut1", "cut2", "cut3"):
        result = ingest_extract(url, root / "demo" / cut)
        assert result.status == "succeeded", result.message
        run_ids.append(result.run_id)
    create_user(get_engine(url), USERNAME, PASSWORD, ROLE)
    return DemoDatabase(url, tuple(run_ids), result.study_id, root / "demo")


@pytest.fixture
def signal_web_app(signal_demo_db):
    """A fresh Dash app on the 500-subject demo database."""
    from safety_dash.web.app import create_app

    settings = dataclasses.replace(
        load_settings(), database_url=signal_demo_db.url, secret_key="test-secret-key", session_minutes=30.0
    )
    return create_app(settings)
