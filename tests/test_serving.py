"""Serving a programme (issue 14, part 3): the load balancer's health check, the dashboard's address in email links
following the address served, the database pool sizes, and the shipped gunicorn settings and `make run`."""

from __future__ import annotations

import dataclasses
import runpy
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from safety_dash.config import follow_served_address, load_pool_options, load_settings
from safety_dash.db.engine import dispose_engine, get_engine, upgrade_database
from safety_dash.web.app import create_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings(tmp_path, monkeypatch):
    """Settings on a new, empty SQLite database, with a fixed session key."""
    for name in ("SAFETY_DASH_BASE_URL", "SAFETY_DASH_DB_POOL_SIZE", "SAFETY_DASH_DB_MAX_OVERFLOW",
                 "SAFETY_DASH_DB_POOL_TIMEOUT"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    upgrade_database(url)
    yield dataclasses.replace(load_settings(), database_url=url, secret_key="test-secret-key")
    dispose_engine(url)


# --- the health check ----------------------------------------------------------------------------------------------


def test_healthz_answers_ok_without_a_session_and_says_nothing_else(settings):
    client = create_app(settings).server.test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}  # no study, no user, no version
    assert "Set-Cookie" not in response.headers  # no session is started for the load balancer
    assert response.headers["Cache-Control"] == "no-store"
    assert client.head("/healthz").status_code == 200


def test_healthz_answers_503_while_the_database_cannot_be_reached(settings):
    away = create_engine("postgresql+psycopg://safety@127.0.0.1:1/none", connect_args={"connect_timeout": 2})
    client = create_app(settings, engine=away).server.test_client()
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"status": "database unavailable"}
    assert response.headers["Retry-After"] == "30"
    away.dispose()


def test_healthz_refuses_other_methods_and_opens_no_other_path(settings):
    client = create_app(settings).server.test_client()
    assert client.post("/healthz").status_code == 405
    # the sign-in guard still holds everywhere else
    assert client.get("/healthz/studies").status_code == 302
    assert client.get("/").status_code == 302
    assert client.get("/_dash-layout").status_code == 401


# --- the dashboard's address in email links ----------------------------------------------------------------------


def test_base_url_follows_the_address_served_when_it_is_not_set(settings):
    assert not settings.base_url_configured
    assert follow_served_address(settings, "127.0.0.1", 8051).base_url == "http://127.0.0.1:8051"
    assert follow_served_address(settings, "::1", 8051).base_url == "http://[::1]:8051"
    assert follow_served_address(settings, "0.0.0.0", 8050).base_url == f"http://{socket.gethostname()}:8050"


def test_base_url_set_in_the_environment_wins_over_the_address_served(monkeypatch):
    monkeypatch.setenv("SAFETY_DASH_BASE_URL", "https://safety.example.org/")
    settings = load_settings()
    assert settings.base_url_configured
    assert follow_served_address(settings, "127.0.0.1", 8051).base_url == "https://safety.example.org"


# --- pool sizes ------------------------------------------------------------------------------------------------------


def test_pool_sizes_come_from_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("SAFETY_DASH_DB_POOL_SIZE", "3")
    monkeypatch.setenv("SAFETY_DASH_DB_MAX_OVERFLOW", "0")
    monkeypatch.setenv("SAFETY_DASH_DB_POOL_TIMEOUT", "2.5")
    settings = load_settings()
    assert (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_timeout) == (3, 0, 2.5)
    url = f"sqlite:///{tmp_path / 'pool.db'}"
    engine = get_engine(url)
    try:
        assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._timeout) == (3, 0, 2.5)
    finally:
        dispose_engine(url)


def test_pool_sizes_default_to_five_and_ten_more(monkeypatch):
    for name in ("SAFETY_DASH_DB_POOL_SIZE", "SAFETY_DASH_DB_MAX_OVERFLOW", "SAFETY_DASH_DB_POOL_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    options = load_pool_options()
    assert (options.size, options.max_overflow, options.timeout) == (5, 10, 30.0)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SAFETY_DASH_DB_POOL_SIZE", "0", "SAFETY_DASH_DB_POOL_SIZE must be at least 1, not 0"),
        ("SAFETY_DASH_DB_POOL_SIZE", "many", "SAFETY_DASH_DB_POOL_SIZE must be a whole number of at least 1"),
        ("SAFETY_DASH_DB_MAX_OVERFLOW", "-1", "SAFETY_DASH_DB_MAX_OVERFLOW must be 0 or more, not -1"),
        ("SAFETY_DASH_DB_POOL_TIMEOUT", "0", "SAFETY_DASH_DB_POOL_TIMEOUT must be a number of seconds above 0"),
    ],
)
def test_a_bad_pool_setting_is_refused_with_a_sentence(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        load_settings()


def test_an_in_memory_sqlite_database_keeps_its_own_pool(monkeypatch):
    monkeypatch.setenv("SAFETY_DASH_DB_POOL_SIZE", "2")
    engine = get_engine("sqlite://")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        dispose_engine("sqlite://")


# --- what ships for serving --------------------------------------------------------------------------------------


def test_the_gunicorn_settings_serve_on_loopback_with_workers_that_load_the_app_themselves():
    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert config["bind"].startswith("127.0.0.1:")  # behind the HTTPS proxy
    assert config["preload_app"] is False  # each worker: its own pool and warm-up
    assert config["worker_class"] == "gthread" and config["timeout"] >= 60
    assert config["control_socket_disable"] is True
    assert "%(q)s" not in config["access_log_format"] and "%(r)s" not in config["access_log_format"]


def test_the_gunicorn_workers_cap_their_malloc_arenas():
    import platform

    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert callable(config["post_fork"])
    if platform.libc_ver()[0] != "glibc":
        pytest.skip(f"the C library here is {platform.libc_ver()[0] or 'unknown'}, not glibc: nothing to cap")
    assert config["limit_malloc_arenas"](8) is True  # glibc accepted the setting (8: its default on 1 core)


def test_the_systemd_units_run_the_web_workers_and_the_scheduler_apart():
    web = (ROOT / "deploy" / "safety-dash-web.service").read_text(encoding="utf-8")
    scheduler = (ROOT / "deploy" / "safety-dash-scheduler.service").read_text(encoding="utf-8")
    assert "gunicorn -c deploy/gunicorn.conf.py app:server" in web and "scheduler" not in web.split("[Service]")[1]
    assert "-m safety_dash scheduler" in scheduler and "gunicorn" not in scheduler
    assert "EnvironmentFile=/etc/safety-dash/safety-dash.env" in web and "EnvironmentFile" in scheduler


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_installs_the_runtime_requirements_only_and_serves_on_the_port_asked():
    done = subprocess.run(["make", "-n", "-B", "run", "PORT=8051", "VENV=/nonexistent-venv"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pip install -q -r requirements.txt" in done.stdout
    assert "requirements-dev.txt" not in done.stdout
    assert "serve --host 127.0.0.1 --port 8051" in done.stdout
