"""``python -m safety_dash users add NAME --role ROLE``: the password comes from standard input when piped."""

from __future__ import annotations

import io

import pytest

from safety_dash.cli import main
from safety_dash.db.engine import get_engine
from safety_dash.web.auth import verify_password


@pytest.fixture
def users_database_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", url)
    return url


def test_users_add_reads_the_password_from_piped_stdin(users_database_url, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("a piped password\n"))
    assert main(["users", "add", "alice", "--role", "committee"]) == 0
    assert "user alice (committee) created" in capsys.readouterr().out
    user = verify_password(get_engine(users_database_url), "alice", "a piped password")
    assert user is not None and user.role == "committee"


def test_users_add_twice_fails_with_a_sentence_unless_replace(users_database_url, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("first password\n"))
    assert main(["users", "add", "bob", "--role", "monitor"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("second password\n"))
    assert main(["users", "add", "bob", "--role", "admin"]) == 2
    assert "exists already" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("second password\n"))
    assert main(["users", "add", "bob", "--role", "admin", "--replace"]) == 0
    assert verify_password(get_engine(users_database_url), "bob", "second password").role == "admin"


def test_users_add_refuses_a_short_password(users_database_url, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["users", "add", "carol", "--role", "monitor"]) == 2
    assert "at least 12 characters" in capsys.readouterr().err


def test_users_add_refuses_an_unknown_role(users_database_url):
    with pytest.raises(SystemExit):
        main(["users", "add", "dave", "--role", "boss"])


def test_users_disable_set_role_and_reset_password_with_the_trail(users_database_url, monkeypatch, capsys):
    import json

    from safety_dash.audit import export_events

    monkeypatch.setattr("sys.stdin", io.StringIO("first password 1\n"))
    assert main(["users", "add", "dora", "--role", "committee"]) == 0
    assert main(["users", "set-role", "dora", "--role", "monitor"]) == 0
    assert "user dora is now monitor" in capsys.readouterr().out
    engine = get_engine(users_database_url)
    assert verify_password(engine, "dora", "first password 1").role == "monitor"
    monkeypatch.setattr("sys.stdin", io.StringIO("second password 2\n"))
    assert main(["users", "reset-password", "dora"]) == 0
    assert verify_password(engine, "dora", "first password 1") is None
    assert verify_password(engine, "dora", "second password 2").role == "monitor"
    assert main(["users", "disable", "dora"]) == 0
    assert verify_password(engine, "dora", "second password 2") is None
    assert main(["users", "disable", "dora"]) == 2
    assert "disabled already" in capsys.readouterr().err
    assert main(["users", "set-role", "nobody", "--role", "admin"]) == 2
    with engine.connect() as connection:
        trail = export_events(connection)
    actions = trail.loc[trail["object_id"] == "dora", ["actor", "action", "before", "after"]]
    assert actions["action"].tolist() == ["user_created", "user_role_changed", "user_password_reset", "user_disabled"]
    assert set(actions["actor"]) == {"cli"}
    role_change = actions.iloc[1]
    assert (json.loads(role_change["before"])["role"], json.loads(role_change["after"])["role"]) == (
        "committee",
        "monitor",
    )
