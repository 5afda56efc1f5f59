"""Users, passwords and the guard: nothing answers without a signed-in user."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from safety_dash.db.engine import get_engine
from safety_dash.db.models import User
from safety_dash.web.auth import SIGNED_IN_AT, _safe_next, create_user, load_user, verify_password
from safety_dash.web.pages import load_pages
from tests.web.conftest import PASSWORD, USERNAME, sign_in_client

PAGE_PATHS = [page.path for page in load_pages()]
DASH_ENDPOINTS = [
    ("GET", "/_dash-layout"),
    ("GET", "/_dash-dependencies"),
    ("POST", "/_dash-update-component"),
    ("GET", "/_dash-component-suites/dash/dcc/dash_core_components.js"),
    ("GET", "/_reload-hash"),
]


# --- users ---------------------------------------------------------------------------------------------------


def test_create_user_stores_a_salted_hash_not_the_password(demo_db):
    engine = get_engine(demo_db.url)
    create_user(engine, "committee1", "a long passphrase", "committee")
    with engine.connect() as connection:
        stored = connection.execute(select(User.password_hash, User.role).where(User.username == "committee1")).one()
    assert "a long passphrase" not in stored.password_hash
    assert stored.password_hash.startswith(("scrypt:", "pbkdf2:"))
    assert stored.role == "committee"


def test_verify_password_accepts_the_right_password_only(demo_db):
    engine = get_engine(demo_db.url)
    user = verify_password(engine, USERNAME, PASSWORD)
    assert user is not None and user.username == USERNAME and user.role == "monitor"
    assert verify_password(engine, USERNAME, PASSWORD + "x") is None
    assert verify_password(engine, "nobody", PASSWORD) is None
    assert load_user(engine, user.id) == user


@pytest.mark.parametrize(
    ("name", "password", "role", "message"),
    [
        ("bad name!", "long enough", "monitor", "not allowed"),
        ("ok", "short", "monitor", "at least 8"),
        ("ok", "long enough", "boss", "not a role"),
    ],
)
def test_create_user_refuses_bad_input_with_a_sentence(demo_db, name, password, role, message):
    with pytest.raises(ValueError, match=message):
        create_user(get_engine(demo_db.url), name, password, role)


def test_create_user_twice_fails_unless_replace(demo_db):
    engine = get_engine(demo_db.url)
    first = create_user(engine, "twice", "first password", "monitor")
    with pytest.raises(ValueError, match="exists already"):
        create_user(engine, "twice", "second password", "admin")
    assert create_user(engine, "twice", "second password", "admin", replace=True) == first
    assert verify_password(engine, "twice", "second password").role == "admin"


# --- the guard ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGE_PATHS)
def test_unauthenticated_page_redirects_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(("method", "path"), DASH_ENDPOINTS)
def test_unauthenticated_dash_endpoint_is_refused(client, method, path):
    response = client.open(path, method=method, json={"output": "x", "inputs": []})
    assert response.status_code == 401
    assert response.get_json()["error"] == "sign in first"


def test_login_page_and_assets_answer_without_a_user(client):
    assert client.get("/login").status_code == 200
    assert client.get("/assets/style.css").status_code == 200


def test_signed_in_user_reaches_pages_and_dash_endpoints(signed_in):
    for path in PAGE_PATHS:
        assert signed_in.get(path).status_code == 200, path
    layout = signed_in.get("/_dash-layout")
    assert layout.status_code == 200
    assert USERNAME in layout.get_data(as_text=True)
    assert signed_in.get("/_dash-dependencies").status_code == 200


def test_login_without_csrf_token_is_refused(client):
    client.get("/login")
    response = client.post("/login", data={"username": USERNAME, "password": PASSWORD})
    assert response.status_code == 400
    assert client.get("/_dash-layout").status_code == 401


def test_login_with_wrong_password_is_refused(client):
    response = sign_in_client(client, USERNAME, "wrong password")
    assert response.status_code == 401
    assert "wrong password" in response.get_data(as_text=True)
    assert client.get("/_dash-layout").status_code == 401


def test_login_redirects_to_next_on_this_site_only(client):
    client.get("/login")
    with client.session_transaction() as session:
        token = session["csrf_token"]
    data = {"username": USERNAME, "password": PASSWORD, "csrf_token": token}
    response = client.post("/login?next=/rates%3Fcut%3D1", data=data)
    assert response.headers["Location"] == "/rates?cut=1"
    assert _safe_next("//evil.example/x") == "/"
    assert _safe_next("https://evil.example/") == "/"


def test_session_cookie_is_httponly_and_samesite_lax(client):
    response = sign_in_client(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # a permanent session with a lifetime, not a browser-session cookie


def test_session_expires_after_its_lifetime(signed_in):
    assert signed_in.get("/_dash-layout").status_code == 200
    with signed_in.session_transaction() as session:
        session[SIGNED_IN_AT] = time.time() - 31 * 60  # the test settings give 30 minutes
    assert signed_in.get("/_dash-layout").status_code == 401
    assert signed_in.get("/").headers["Location"].startswith("/login")


def test_logout_needs_the_csrf_token_and_ends_the_session(signed_in):
    signed_in.post("/logout", data={})
    assert signed_in.get("/_dash-layout").status_code == 200  # a forged sign-out does nothing
    with signed_in.session_transaction() as session:
        token = session["csrf_token"]
    signed_in.post("/logout", data={"csrf_token": token})
    assert signed_in.get("/_dash-layout").status_code == 401


def test_deactivated_user_is_signed_out(signed_in, demo_db):
    engine = get_engine(demo_db.url)
    create_user(engine, "leaver", "leaver password", "monitor")
    signed_in.post("/logout", data={"csrf_token": _token(signed_in)})
    sign_in_client(signed_in, "leaver", "leaver password")
    assert signed_in.get("/_dash-layout").status_code == 200
    with engine.begin() as connection:
        connection.execute(User.__table__.update().where(User.username == "leaver").values(active=False))
    assert signed_in.get("/_dash-layout").status_code == 401


def _token(client) -> str:
    with client.session_transaction() as session:
        return session["csrf_token"]
