"""Users, passwords and the guard on the demo study: nothing of the app answers without a signed-in user, what the
browser may keep (no-store), cookies, cross-site requests, sign-out, and a cookie copied before sign-out."""

from __future__ import annotations

import dataclasses
import json
import time

import pytest
from sqlalchemy import select

from safety_dash.config import load_settings
from safety_dash.db.engine import get_engine
from safety_dash.db.models import User
from safety_dash.web import ids
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
        ("ok", "eleven char", "monitor", "at least 12"),
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


def test_login_page_answers_without_a_user_and_needs_no_asset(client):
    response = client.get("/login")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "/assets/" not in page and "<script" not in page and '<link rel="stylesheet"' not in page
    assert ".login-card {" in page and ".brand-mark {" in page  # its style is inline


@pytest.mark.parametrize("path", ["/assets/style.css", "/assets/session.js", "/assets/", "/assets/nothing.txt"])
def test_assets_are_refused_before_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 401
    assert response.get_json() == {"error": "sign in first", "reason": "signed out"}


def test_assets_are_served_after_sign_in(signed_in):
    assert "login-card" in signed_in.get("/assets/style.css").get_data(as_text=True)
    assert "/_dash-update-component" in signed_in.get("/assets/session.js").get_data(as_text=True)
    index = signed_in.get("/").get_data(as_text=True)
    assert "/assets/session.js" in index  # Dash puts the assets' scripts on every page


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


def test_a_password_needs_twelve_characters(demo_db):
    engine = get_engine(demo_db.url)
    with pytest.raises(ValueError, match="at least 12 characters"):
        create_user(engine, "eleven", "x" * 11, "monitor")
    create_user(engine, "twelve", "x" * 12, "monitor")
    assert verify_password(engine, "twelve", "x" * 12).username == "twelve"


# --- what the browser may keep --------------------------------------------------------------------------------


def test_pages_callbacks_and_refusals_are_not_stored_by_the_browser(client, signed_in, web_app, demo_db):
    assert client.get("/login").headers["Cache-Control"] == "no-store"
    page = signed_in.get("/subject")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert signed_in.get("/_dash-layout").headers["Cache-Control"] == "no-store"
    search = f"?study={demo_db.study_id}&cut={demo_db.run_ids[-1]}"
    callback = signed_in.post("/_dash-update-component", json=_overview_payload(web_app, search))
    assert callback.status_code == 200 and demo_db.study_id in callback.get_data(as_text=True)
    assert callback.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    # static files hold no study data: the browser may keep them
    assert signed_in.get("/assets/style.css").headers.get("Cache-Control") != "no-store"


def test_signed_out_answers_are_not_stored_either(client):
    assert client.get("/subject").headers["Cache-Control"] == "no-store"
    assert client.get("/_dash-layout").headers["Cache-Control"] == "no-store"


def _overview_payload(app, search: str) -> dict:
    """The body the browser POSTs for the overview's callback (the study's numbers for ``search``)."""
    from safety_dash.web.dashcall import find_callback

    key, spec = find_callback(app, f"{ids.OVERVIEW_CARDS}.children")
    outputs = [part.rpartition(".") for part in key.strip(".").split("...")]  # "..a.b...c.d.." or "a.b"
    outputs = [{"id": component, "property": prop.split("@")[0]} for component, _, prop in outputs]
    return {
        "output": key,
        "outputs": outputs if key.startswith("..") else outputs[0],
        "inputs": [{"id": i["id"], "property": i["property"], "value": search} for i in spec["inputs"]],
        "state": [],
        "changedPropIds": [f"{i['id']}.{i['property']}" for i in spec["inputs"]],
    }


@pytest.mark.parametrize(
    ("secure", "base_url", "expected"),
    [
        (None, "http://127.0.0.1:8050", False),
        (None, "https://safety.example.org", True),
        ("auto", "https://safety.example.org", True),
        ("true", "http://127.0.0.1:8050", True),
        ("false", "https://safety.example.org", False),
    ],
)
def test_secure_cookies_setting(monkeypatch, secure, base_url, expected):
    monkeypatch.setenv("SAFETY_DASH_BASE_URL", base_url)
    if secure is None:
        monkeypatch.delenv("SAFETY_DASH_SECURE_COOKIES", raising=False)
    else:
        monkeypatch.setenv("SAFETY_DASH_SECURE_COOKIES", secure)
    assert load_settings().secure_cookies is expected


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SAFETY_DASH_SECURE_COOKIES", "maybe", "must be true, false or auto, not 'maybe'"),
        ("SAFETY_DASH_TRUSTED_PROXIES", "-1", "must be 0 or more, not -1"),
        ("SAFETY_DASH_TRUSTED_PROXIES", "one", "must be a whole number"),
    ],
)
def test_security_settings_refuse_bad_values_with_a_sentence(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        load_settings()


def test_session_cookie_is_secure_when_the_setting_says_so(settings):
    from safety_dash.web.app import create_app

    insecure = sign_in_client(create_app(settings).server.test_client())
    assert "Secure" not in insecure.headers["Set-Cookie"]
    app = create_app(dataclasses.replace(settings, secure_cookies=True))
    cookie = sign_in_client(app.server.test_client()).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


# --- cross-site requests ----------------------------------------------------------------------------------------


def test_a_cross_site_callback_is_refused(signed_in, web_app, demo_db):
    payload = _overview_payload(web_app, f"?study={demo_db.study_id}")
    evil = signed_in.post("/_dash-update-component", json=payload, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert evil.get_json() == {"error": "cross-site request refused"}
    fetched = signed_in.post("/_dash-update-component", json=payload, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetched.status_code == 403
    # what a cross-site form can send without asking first: not JSON, so Dash refuses it
    form = signed_in.post("/_dash-update-component", data=json.dumps(payload), content_type="text/plain")
    assert form.status_code == 415
    own = signed_in.post("/_dash-update-component", json=payload, headers={"Origin": "http://localhost"})
    assert own.status_code == 200


def test_a_cross_site_sign_out_is_refused(signed_in):
    token = _token(signed_in)
    response = signed_in.post("/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert signed_in.get("/_dash-layout").status_code == 200


def test_get_logout_shows_a_sign_out_button(signed_in, client):
    page = signed_in.get("/logout")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert '<form method="post" action="/logout">' in body and _token(signed_in) in body
    assert signed_in.get("/_dash-layout").status_code == 200  # a GET signs nobody out
    stale = signed_in.post("/logout", data={"csrf_token": "not the token"})
    assert stale.status_code == 400 and signed_in.get("/_dash-layout").status_code == 200
    done = signed_in.post("/logout", data={"csrf_token": _token(signed_in)})
    assert done.status_code == 302 and done.headers["Location"] == "/login?signed_out=1"
    assert "You are signed out." in signed_in.get(done.headers["Location"]).get_data(as_text=True)
    assert signed_in.get("/logout").headers["Location"] == "/login"  # signed out: nothing to confirm


def test_the_frame_signs_out_by_post_with_the_token(signed_in):
    layout = signed_in.get("/_dash-layout").get_json()
    text = json.dumps(layout)
    assert '"action": "/logout"' in text and '"method": "post"' in text
    assert _token(signed_in) in text


# --- a copied cookie --------------------------------------------------------------------------------------------


def test_a_cookie_saved_before_sign_out_shows_no_data_after_it(web_app, signed_in, demo_db):
    saved = signed_in.get_cookie("safety_dash_session").value
    search = f"?study={demo_db.study_id}&cut={demo_db.run_ids[-1]}"
    payload = _overview_payload(web_app, search)
    assert signed_in.post("/_dash-update-component", json=payload).status_code == 200
    assert signed_in.post("/logout", data={"csrf_token": _token(signed_in)}).status_code == 302

    thief = web_app.server.test_client()
    thief.set_cookie("safety_dash_session", saved)
    answer = thief.post("/_dash-update-component", json=payload)
    assert answer.status_code == 401
    assert demo_db.study_id not in answer.get_data(as_text=True)
    thief.set_cookie("safety_dash_session", saved)
    page = thief.get(f"/subject{search}")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login?next=%2Fsubject%3Fstudy%3D")
    assert page.headers["Location"].endswith("&ended=1")
    assert "Your session was ended" in thief.get(page.headers["Location"]).get_data(as_text=True)
