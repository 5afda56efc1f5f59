"""A database that is down, an unparsable URL, a SQLite folder that cannot be made: one line, exit 1, no traceback
(issue 9, item 5), for every command that touches the database, run as the operator runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from safety_dash.db.engine import dispose_engine, get_engine
from safety_dash.db.errors import DatabaseUnavailable, describe_database_error, is_database_unavailable, mask_url

PASSWORD = "s3cret-pw"


def free_port() -> int:
    """A local TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def down_url() -> str:
    """A PostgreSQL URL (with a password) where no server listens."""
    return f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{free_port()}/test"


def masked(url: str) -> str:
    return url.replace(f":{PASSWORD}@", ":***@")


# --- mask_url --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://postgres:pw@db:5432/safety", "postgresql+psycopg://postgres:***@db:5432/safety"),
        ("postgresql+psycopg://postgres@127.0.0.1:5999/test", "postgresql+psycopg://postgres@127.0.0.1:5999/test"),
        ("postgresql://u:p%40ss@h:notaport/db", "postgresql://u:***@h:notaport/db"),  # unparsable: masked anyway
        ("sqlite:////var/lib/safety_dash.db", "sqlite:////var/lib/safety_dash.db"),
        ("notaurl", "notaurl"),
    ],
)
def test_mask_url_hides_the_password_only(url, expected):
    assert mask_url(url) == expected


# --- describe_database_error ------------------------------------------------------------------------------------------


def test_describe_database_error_of_a_server_that_is_down(down_url):
    with pytest.raises(OperationalError) as raised:
        get_engine(down_url).connect()
    dispose_engine(down_url)
    assert is_database_unavailable(raised.value)
    assert describe_database_error(raised.value, down_url) == (
        f"cannot reach the database at {masked(down_url)}: connection refused"
    )


def test_describe_database_error_of_an_unparsable_url():
    with pytest.raises(DatabaseUnavailable) as raised:
        get_engine("notaurl")
    assert describe_database_error(raised.value, "notaurl") == (
        "the database URL 'notaurl' (SAFETY_DASH_DATABASE_URL) cannot be used: Could not parse SQLAlchemy URL from "
        "given URL string; write it as postgresql+psycopg://user@host:5432/database or "
        "sqlite:////absolute/path/safety_dash.db"
    )


def test_describe_database_error_of_a_sqlite_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "plain-file").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'plain-file' / 'data' / 'safety_dash.db'}"
    with pytest.raises(DatabaseUnavailable) as raised:
        get_engine(url)
    assert describe_database_error(raised.value, url) == (
        f"cannot create the folder {tmp_path / 'plain-file' / 'data'} of the database at {url}: "
        "a file stands where a folder is needed"
    )


def test_a_query_error_is_not_taken_for_a_database_that_is_away(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(OperationalError) as raised, get_engine(url).connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))
    dispose_engine(url)
    assert not is_database_unavailable(raised.value)  # the web app answers 500 for it, not 503
    assert describe_database_error(raised.value, url) == f"the database at {url} failed: no such table: no_such_table"


# --- every command, as a subprocess --------------------------------------------------------------------------------

COMMANDS = {
    "ingest": ["ingest", "{tmp}"],
    "rates": ["rates", "--by", "pt"],
    "study set": ["study", "set", "T1", "--window-days", "30"],
    "db upgrade": ["db", "upgrade"],
    "alerts check": ["alerts", "check"],
    "alerts send": ["alerts", "send"],
    "users add": ["users", "add", "monitor1", "--role", "monitor"],
    "serve": ["serve", "--port", "0"],
    "scheduler": ["scheduler"],
}
PROMPT_SECONDS = 30  # serve and scheduler must give up at once, not wait or retry


def run_command(args: list[str], database_url: str, tmp_path) -> tuple[subprocess.CompletedProcess, float]:
    """``python -m safety_dash ARGS`` with only this database URL and a data folder in ``tmp_path`` set."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SAFETY_DASH_")}
    env |= {"SAFETY_DASH_DATABASE_URL": database_url, "SAFETY_DASH_DATA_DIR": str(tmp_path / "data")}
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "safety_dash", *(a.format(tmp=tmp_path) for a in args)],
        input="correct horse battery\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return completed, time.monotonic() - started


def assert_one_line(completed: subprocess.CompletedProcess, expected: str) -> None:
    assert "Traceback" not in completed.stderr, completed.stderr
    assert completed.stderr.splitlines() == [f"error: {expected}"], completed.stderr
    assert completed.returncode == 1


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_says_in_one_line_that_the_database_cannot_be_reached(command, down_url, tmp_path):
    completed, seconds = run_command(COMMANDS[command], down_url, tmp_path)
    assert_one_line(completed, f"cannot reach the database at {masked(down_url)}: connection refused")
    assert PASSWORD not in completed.stderr + completed.stdout
    assert seconds < PROMPT_SECONDS


def test_the_database_url_of_the_issue_is_shown_as_given(tmp_path):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    completed, _ = run_command(COMMANDS["db upgrade"], url, tmp_path)
    assert_one_line(completed, f"cannot reach the database at {url}: connection refused")


@pytest.mark.parametrize("command", ["db upgrade", "rates", "serve", "scheduler"])
def test_an_unparsable_database_url_is_one_line(command, tmp_path):
    completed, seconds = run_command(COMMANDS[command], "notaurl", tmp_path)
    assert_one_line(completed, "the database URL 'notaurl' (SAFETY_DASH_DATABASE_URL) cannot be used: Could not "
                    "parse SQLAlchemy URL from given URL string; write it as postgresql+psycopg://user@host:5432/"
                    "database or sqlite:////absolute/path/safety_dash.db")  # fmt: skip
    assert seconds < PROMPT_SECONDS


def test_a_database_url_with_an_unknown_driver_is_one_line_without_its_password(tmp_path):
    completed, _ = run_command(COMMANDS["db upgrade"], f"postgresql+nodriver://u:{PASSWORD}@h/db", tmp_path)
    expected = (
        "the database URL 'postgresql+nodriver://u:***@h/db' (SAFETY_DASH_DATABASE_URL) cannot be used: Can't load "
        "plugin: sqlalchemy.dialects:postgresql.nodriver; write it as postgresql+psycopg://user@host:5432/database or "
        "sqlite:////absolute/path/safety_dash.db"
    )
    assert_one_line(completed, expected)


@pytest.mark.parametrize("command", ["db upgrade", "rates", "serve"])
def test_a_sqlite_folder_that_cannot_be_made_is_one_line(command, tmp_path):
    (tmp_path / "plain-file").write_text("not a folder")
    folder = tmp_path / "plain-file" / "data"
    url = f"sqlite:///{folder / 'safety_dash.db'}"
    completed, _ = run_command(COMMANDS[command], url, tmp_path)
    assert_one_line(completed, f"cannot create the folder {folder} of the database at {url}: "
                    "a file stands where a folder is needed")  # fmt: skip
