"""Sessions the server can end, the lockout and the wait between failures, and the sign-in trail, on SQLite and
PostgreSQL (``database_url``). The sign-in reads an injected clock: the tests move it instead of sleeping, while
the trail keeps stamping events with the real time."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import pytest
from sqlalchemy import select

from safety_dash.audit import record_event
from safety_dash.config import load_settings
from safety_dash.db.engine import get_engine
from safety_dash.db.models import AuditEvent, User, utcnow
from safety_dash.web.auth import (
    ANONYMOUS,
    LOCKED,
    UNKNOWN_USER,
    WRONG_PASSWORD,
    address_wait,
    create_user,
    disable_user,
    find_lockout,
    reset_user_password,
    set_user_role,
)

PASSWORD = "a long enough passphrase"
USERS = {"monitor1": "monitor", "committee1": "committee", "admin1": "admin"}
COOKIE = "safety_dash_session"


class MovableClock:
    """The real time plus ``offset``."""

    def __init__(self) -> None:
        self.offset = dt.timedelta(0)

    def __call__(self) -> dt.datetime:
        return utcnow() + self.offset

    def set_to(self, moment: dt.datetime) -> None:
        self.offset = moment - utcnow()


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def engine(database_url):
    engine = get_engine(database_url)
    for name, role in USERS.items():
        create_user(engine, name, PASSWORD, role, actor="test")
    return engine


@pytest.fixture
def app(database_url, engine, clock):
    from safety_dash.web.app import create_app

    settings = dataclasses.replace(
        load_settings(), database_url=database_url, secret_key="test-secret-key", session_minutes=30.0
    )
    return create_app(settings, engine=engine, clock=clock)


def _token(client) -> str:
    client.get("/login")
    with client.session_transaction() as session:
        return session["csrf_token"]


def sign_in(client, username: str, password: str = PASSWORD, address: str = "10.0.0.1"):
    """POST the sign-in form from ``address``; the response."""
    token = _token(client)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


def sign_out(client):
    with client.session_transaction() as session:
        token = session["csrf_token"]
    return client.post("/logout", data={"csrf_token": token})


def trail(engine, action: str | None = None) -> list:
    query = select(AuditEvent.__table__).order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    with engine.connect() as connection:
        return connection.execute(query).all()


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


# --- sign-out ends the session on the server -------------------------------------------------------------------


def test_a_cookie_saved_before_sign_out_is_refused_after_it(app, engine):
    client = app.server.test_client()
    assert sign_in(client, "monitor1").status_code == 302
    saved = client.get_cookie(COOKIE).value
    assert "monitor1" in client.get("/_dash-layout").get_data(as_text=True)

    response = sign_out(client)
    assert response.status_code == 302 and response.headers["Location"] == "/login?signed_out=1"
    assert client.get("/_dash-layout").status_code == 401

    copy = app.server.test_client()
    copy.set_cookie(COOKIE, saved)
    layout = copy.get("/_dash-layout")
    assert layout.status_code == 401 and "monitor1" not in layout.get_data(as_text=True)
    copy.set_cookie(COOKIE, saved)
    page = copy.get("/alerts")
    assert page.status_code == 302 and page.headers["Location"] == "/login?next=%2Falerts&ended=1"
    sign_out_row = trail(engine, "sign_out")[-1]
    assert (sign_out_row.actor, sign_out_row.object_id) == ("monitor1", "monitor1")
    assert json.loads(sign_out_row.before) == {"session_generation": 0}
    assert json.loads(sign_out_row.after) == {"session_generation": 1}


def test_signing_in_again_after_sign_out_works_and_the_old_cookie_stays_refused(app):
    client = app.server.test_client()
    sign_in(client, "monitor1")
    saved = client.get_cookie(COOKIE).value
    sign_out(client)
    assert sign_in(client, "monitor1").status_code == 302
    assert client.get("/_dash-layout").status_code == 200
    copy = app.server.test_client()
    copy.set_cookie(COOKIE, saved)
    assert copy.get("/_dash-layout").status_code == 401


@pytest.mark.parametrize(
    ("change", "action"),
    [
        (lambda engine: disable_user(engine, "monitor1", "admin1"), "user_disabled"),
        (lambda engine: set_user_role(engine, "monitor1", "committee", "admin1"), "user_role_changed"),
        (
            lambda engine: reset_user_password(engine, "monitor1", "another long passphrase", "admin1"),
            "user_password_reset",
        ),
    ],  # fmt: skip
    ids=["disabled", "new role", "new password"],
)
def test_disabling_a_new_role_or_password_end_the_users_sessions(app, engine, change, action):
    client = app.server.test_client()
    sign_in(client, "monitor1")
    assert client.get("/_dash-layout").status_code == 200
    change(engine)
    assert client.get("/_dash-layout").status_code == 401
    row = trail(engine, action)[-1]
    assert (row.actor, row.object_type, row.object_id) == ("admin1", "user", "monitor1")


def test_the_session_ends_after_its_lifetime_on_the_clock(app, clock):
    client = app.server.test_client()
    sign_in(client, "monitor1")
    clock.offset = dt.timedelta(minutes=29)
    assert client.get("/_dash-layout").status_code == 200
    clock.offset = dt.timedelta(minutes=31)
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/").headers["Location"] == "/login?next=%2F"  # the expired session was cleared


# --- the trail of signing in ----------------------------------------------------------------------------------


def test_every_sign_in_and_failure_is_in_the_trail_with_the_address(app, engine):
    client = app.server.test_client()
    assert sign_in(client, "monitor1", "wrong password!", address="10.1.1.1").status_code == 401
    assert sign_in(client, "nobody.here", PASSWORD, address="10.1.1.2").status_code == 401
    assert sign_in(client, "monitor1", address="10.1.1.3").status_code == 302
    rows = [(r.actor, r.action, r.object_id, r.reason, r.address) for r in trail(engine) if "sign" in r.action]
    assert rows == [
        (ANONYMOUS, "sign_in_failed", "monitor1", WRONG_PASSWORD, "10.1.1.1"),
        (ANONYMOUS, "sign_in_failed", "nobody.here", UNKNOWN_USER, "10.1.1.2"),
        ("monitor1", "sign_in", "monitor1", None, "10.1.1.3"),
    ]


def test_the_address_behind_a_trusted_proxy_is_the_one_the_proxy_saw(database_url, engine):
    from safety_dash.web.app import create_app

    settings = dataclasses.replace(
        load_settings(), database_url=database_url, secret_key="test-secret-key", trusted_proxies=1
    )
    client = create_app(settings, engine=engine).server.test_client()
    token = _token(client)
    client.post(
        "/login",
        data={"username": "monitor1", "password": PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-For": "203.0.113.7"},
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
    )
    assert trail(engine, "sign_in")[-1].address == "203.0.113.7"


# --- lockout after five failures ------------------------------------------------------------------------------


def _fail(client, name: str, times: int, first_address: int = 1):
    """``times`` wrong passwords for ``name``, each from its own address (so no address has to wait)."""
    for n in range(first_address, first_address + times):
        response = sign_in(client, name, "wrong password!", address=f"10.9.0.{n}")
        assert response.status_code == 401, response.get_data(as_text=True)


def test_the_name_is_locked_after_exactly_five_failures_for_fifteen_minutes(app, engine, clock):
    client = app.server.test_client()
    _fail(client, "monitor1", 4)
    assert sign_in(client, "monitor1", address="10.9.1.1").status_code == 302  # 4 failures: still allowed
    sign_out(client)
    _fail(client, "monitor1", 5, first_address=10)
    locked = sign_in(client, "monitor1", address="10.9.1.2")  # the right password, and still refused
    assert locked.status_code == 429
    assert "Too many failed sign-ins for this user name" in locked.get_data(as_text=True)
    assert 14 * 60 < int(locked.headers["Retry-After"]) <= 15 * 60
    assert client.get("/_dash-layout").status_code == 401

    fifth = _utc(trail(engine, "sign_in_failed")[-2].occurred_at)  # the last row is the refused attempt
    assert trail(engine, "sign_in_failed")[-1].reason == LOCKED
    clock.set_to(fifth + dt.timedelta(minutes=15) - dt.timedelta(seconds=2))
    assert sign_in(client, "monitor1", address="10.9.1.3").status_code == 429  # refusals did not extend it
    clock.set_to(fifth + dt.timedelta(minutes=15) + dt.timedelta(seconds=1))
    assert sign_in(client, "monitor1", address="10.9.1.4").status_code == 302
    assert client.get("/_dash-layout").status_code == 200


def test_a_lockout_reads_the_same_for_a_name_that_does_not_exist(app, clock):
    client = app.server.test_client()
    _fail(client, "monitor1", 5)
    _fail(client, "nobody.here", 5, first_address=20)
    real = sign_in(client, "monitor1", "wrong password!", address="10.9.2.1")
    unknown = sign_in(client, "nobody.here", "wrong password!", address="10.9.2.1")
    assert real.status_code == unknown.status_code == 429
    real_text = re.sub(r"\d\d:\d\d UTC", "HH:MM UTC", real.get_data(as_text=True)).replace("monitor1", "NAME")
    unknown_text = re.sub(r"\d\d:\d\d UTC", "HH:MM UTC", unknown.get_data(as_text=True)).replace("nobody.here", "NAME")
    assert real_text == unknown_text  # the same page but for the name typed in, up to the minute shown
    assert "Too many failed sign-ins for this user name. Try again after HH:MM UTC" in real_text
    fresh = sign_in(client, "committee1", "wrong password!", address="10.9.2.2")
    assert "Unknown user name or wrong password." in fresh.get_data(as_text=True)


def test_find_lockout_counts_failures_since_the_last_success_only(app, engine):
    client = app.server.test_client()
    _fail(client, "admin1", 3)
    assert sign_in(client, "admin1", address="10.9.3.1").status_code == 302
    sign_out(client)
    _fail(client, "admin1", 4, first_address=30)
    with engine.connect() as connection:
        assert find_lockout(connection, "admin1", utcnow()) is None  # 3 before the success do not count
    _fail(client, "admin1", 1, first_address=40)
    with engine.connect() as connection:
        until = find_lockout(connection, "admin1", utcnow())
    fifth = _utc(trail(engine, "sign_in_failed")[-1].occurred_at)
    assert until == fifth + dt.timedelta(minutes=15)


# --- one address failing again and again -------------------------------------------------------------------------


def test_an_address_with_repeated_failures_waits_longer_each_time(app, engine, clock):
    client = app.server.test_client()
    address = "10.7.7.7"
    for n, name in enumerate(["a.b", "c.d", "e.f"]):  # three failures on different names: no lockout
        assert sign_in(client, name, "wrong password!", address=address).status_code == 401, n
    third = _utc(trail(engine, "sign_in_failed")[-1].occurred_at)

    clock.set_to(third + dt.timedelta(milliseconds=500))
    waiting = sign_in(client, "monitor1", address=address)  # even the right password waits
    assert waiting.status_code == 429 and waiting.headers["Retry-After"] == "1"
    assert "Wait 1 second, then try again." in waiting.get_data(as_text=True)
    assert len(trail(engine, "sign_in_failed")) == 3  # a refusal without a look at the password is not recorded

    clock.set_to(third + dt.timedelta(seconds=1, milliseconds=100))
    assert sign_in(client, "g.h", "wrong password!", address=address).status_code == 401  # the 4th failure
    fourth = _utc(trail(engine, "sign_in_failed")[-1].occurred_at)
    clock.set_to(fourth + dt.timedelta(seconds=1))
    assert sign_in(client, "monitor1", address=address).headers["Retry-After"] == "1"  # 2 s after the 4th
    with engine.connect() as connection:
        assert address_wait(connection, address, fourth) == 2.0
        assert address_wait(connection, "10.7.7.8", fourth) == 0.0  # other addresses are not slowed
    assert sign_in(client, "monitor1", address="10.7.7.8").status_code == 302
    clock.set_to(fourth + dt.timedelta(seconds=2, milliseconds=100))
    assert sign_in(app.server.test_client(), "monitor1", address=address).status_code == 302


def test_the_wait_doubles_up_to_a_minute(engine):
    address = "10.6.6.6"
    waits = []
    for n in range(12):
        with engine.begin() as connection:  # failures as the form records them, without waiting between them
            record_event(connection, ANONYMOUS, "sign_in_failed", "user", f"user{n}", reason=WRONG_PASSWORD,
                         address=address)  # fmt: skip
        latest = _utc(trail(engine, "sign_in_failed")[-1].occurred_at)
        with engine.connect() as connection:
            waits.append(address_wait(connection, address, latest))
    assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    with engine.connect() as connection:
        assert address_wait(connection, address, latest + dt.timedelta(minutes=15, seconds=1)) == 0.0


# --- managing users --------------------------------------------------------------------------------------------


def test_user_changes_are_in_the_trail_with_before_and_after(engine):
    set_user_role(engine, "committee1", "monitor", "admin1")
    reset_user_password(engine, "committee1", "a brand new passphrase", "admin1")
    disable_user(engine, "committee1", "admin1")
    create_user(engine, "new.user", PASSWORD, "committee", actor="admin1")
    rows = [
        (r.actor, r.action, r.object_id, json.loads(r.before) if r.before else None, json.loads(r.after))
        for r in trail(engine)
        if r.object_id in ("committee1", "new.user")
    ]
    assert rows == [
        ("test", "user_created", "committee1", None, {"role": "committee", "active": True}),
        ("admin1", "user_role_changed", "committee1", {"role": "committee", "session_generation": 0},
         {"role": "monitor", "session_generation": 1}),
        ("admin1", "user_password_reset", "committee1", {"session_generation": 1}, {"session_generation": 2}),
        ("admin1", "user_disabled", "committee1", {"active": True, "session_generation": 2},
         {"active": False, "session_generation": 3}),
        ("admin1", "user_created", "new.user", None, {"role": "committee", "active": True}),
    ]  # fmt: skip
    with engine.connect() as connection:
        user = connection.execute(select(User.role, User.active).where(User.username == "committee1")).one()
    assert (user.role, user.active) == ("monitor", False)


def test_create_user_with_replace_is_a_password_reset_and_a_role_change(engine):
    create_user(engine, "monitor1", "a replaced passphrase", "admin", replace=True, actor="admin1")
    rows = [(r.action, json.loads(r.before), json.loads(r.after)) for r in trail(engine)[-2:]]
    assert rows == [
        ("user_password_reset", {"role": "monitor", "active": True, "session_generation": 0},
         {"role": "admin", "active": True, "session_generation": 1}),
        ("user_role_changed", {"role": "monitor"}, {"role": "admin"}),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda engine: disable_user(engine, "ghost", "admin1"), "user 'ghost' does not exist"),
        (lambda engine: set_user_role(engine, "ghost", "monitor", "admin1"), "user 'ghost' does not exist"),
        (lambda engine: reset_user_password(engine, "ghost", PASSWORD, "admin1"), "user 'ghost' does not exist"),
        (lambda engine: set_user_role(engine, "monitor1", "boss", "admin1"), "'boss' is not a role"),
        (lambda engine: set_user_role(engine, "monitor1", "monitor", "admin1"), "has the role monitor already"),
        (lambda engine: reset_user_password(engine, "monitor1", "short", "admin1"), "at least 12 characters"),
        (lambda engine: disable_user(engine, "monitor1", ""), "name who makes the change"),
    ],
    ids=["disable unknown", "role unknown", "password unknown", "bad role", "same role", "short", "no actor"],
)
def test_user_changes_refuse_bad_input_with_a_sentence(engine, change, message):
    before = trail(engine)
    with pytest.raises(ValueError, match=message):
        change(engine)
    assert trail(engine) == before


def test_disabling_twice_says_so(engine):
    disable_user(engine, "monitor1", "admin1")
    with pytest.raises(ValueError, match="disabled already"):
        disable_user(engine, "monitor1", "admin1")
