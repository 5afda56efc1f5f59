"""Who may sign in: users with hashed passwords and a role, the sign-in form, and the guard on every request.

Users live in the ``users`` table (this module owns it). Passwords are stored only as salted hashes
(werkzeug's scrypt); a user is refused unless active. The guard (:func:`init_login`) lets nothing through without
a signed-in user except the sign-in form and the stylesheets it uses: pages redirect to ``/login``, Dash's own
endpoints (``/_dash-layout``, ``/_dash-update-component``, ...) answer 401. A session lasts
``SAFETY_DASH_SESSION_MINUTES`` from sign-in, whatever the user does in between.
"""

from __future__ import annotations

import hmac
import html
import logging
import re
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import flask
import flask_login
from sqlalchemy import Engine, insert, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from safety_dash.db.models import User

log = logging.getLogger(__name__)

ROLES = ("monitor", "committee", "admin")
MIN_PASSWORD_LENGTH = 8
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
LOGIN_PATH, LOGOUT_PATH = "/login", "/logout"
# Paths answered without a signed-in user: the form itself and the stylesheet it links.
PUBLIC_PATHS = frozenset({LOGIN_PATH})
PUBLIC_PREFIXES = ("/assets/",)
CSRF_FIELD = "csrf_token"
SIGNED_IN_AT = "signed_in_at"
# Compared against when the user does not exist, so an unknown name takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))
# An inline icon, so the sign-in page asks for nothing the guard would refuse.
FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='3' fill='%231f4e79'/%3E%3C/svg%3E"
)


@dataclass(frozen=True)
class SignedInUser(flask_login.UserMixin):
    """The signed-in user as flask-login sees it."""

    id: int
    username: str
    role: str

    def get_id(self) -> str:
        return str(self.id)


def check_username(username: str) -> str:
    """``username`` stripped, or a ValueError with a sentence saying what a user name may hold."""
    name = (username or "").strip()
    if not USERNAME_PATTERN.match(name):
        raise ValueError(
            f"user name {username!r} is not allowed: use 1 to 64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    """``role`` if it is one of :data:`ROLES`, else a ValueError naming them."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not a role; choose one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    """``password`` if it is long enough, else a ValueError saying how long it must be."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return password


def create_user(engine: Engine, username: str, password: str, role: str, replace: bool = False) -> int:
    """Create user ``username`` with ``role`` and return its id; the password is stored hashed.

    When the user exists, fail with a sentence, or with ``replace`` set its password and role and make it active.
    """
    name = check_username(username)
    check_role(role)
    password_hash = generate_password_hash(check_password(password))
    with engine.begin() as connection:
        existing = connection.execute(select(User.id).where(User.username == name)).scalar_one_or_none()
        if existing is not None:
            if not replace:
                raise ValueError(f"user {name!r} exists already; pass --replace to set a new password and role")
            connection.execute(
                update(User).where(User.id == existing).values(password_hash=password_hash, role=role, active=True)
            )
            return existing
        return connection.execute(
            insert(User).values(username=name, password_hash=password_hash, role=role, active=True).returning(User.id)
        ).scalar_one()


def verify_password(engine: Engine, username: str, password: str) -> SignedInUser | None:
    """The active user ``username`` if ``password`` is theirs, else None (same work whether or not they exist)."""
    name = (username or "").strip()
    with engine.connect() as connection:
        row = connection.execute(
            select(User.id, User.username, User.role, User.password_hash, User.active).where(User.username == name)
        ).first()
    if row is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(row.password_hash, password or "") or not row.active:
        return None
    return SignedInUser(row.id, row.username, row.role)


def load_user(engine: Engine, user_id: int) -> SignedInUser | None:
    """The active user with id ``user_id``, or None (deactivating a user ends their sessions at once)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(User.id, User.username, User.role).where(User.id == user_id, User.active.is_(True))
        ).first()
    return SignedInUser(row.id, row.username, row.role) if row is not None else None


def csrf_token() -> str:
    """This session's token against cross-site form posts (created on first use)."""
    token = flask.session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        flask.session[CSRF_FIELD] = token
    return token


def _csrf_ok() -> bool:
    sent = flask.request.form.get(CSRF_FIELD, "")
    expected = flask.session.get(CSRF_FIELD, "")
    return bool(sent) and bool(expected) and hmac.compare_digest(sent, expected)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never another host)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if target.startswith(LOGIN_PATH) or target.startswith(LOGOUT_PATH):
        return "/"
    return target


def _session_expired(lifetime_seconds: float) -> bool:
    signed_in_at = flask.session.get(SIGNED_IN_AT)
    return not isinstance(signed_in_at, (int, float)) or time.time() - signed_in_at > lifetime_seconds


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _refuse(path: str, reason: str):
    """401 for Dash's endpoints and anything that is not a page; a redirect to the form for pages."""
    if path.startswith("/_") or flask.request.method != "GET":
        return flask.jsonify({"error": "sign in first", "reason": reason}), 401
    query = {"next": flask.request.full_path.rstrip("?")}
    if reason == "expired":
        query["expired"] = "1"
    return flask.redirect(f"{LOGIN_PATH}?{urlencode(query)}")


def init_login(server: flask.Flask, engine: Engine, session_minutes: float) -> None:
    """Put the sign-in form, sign-out and the guard on every request onto ``server``."""
    lifetime = float(session_minutes) * 60.0
    manager = flask_login.LoginManager()
    manager.init_app(server)
    manager.session_protection = "basic"

    @manager.user_loader
    def _load(user_id: str) -> SignedInUser | None:
        return load_user(engine, int(user_id)) if user_id.isdigit() else None

    @server.before_request
    def require_signed_in_user():
        path = flask.request.path
        if _is_public(path):
            return None
        if flask_login.current_user.is_authenticated:
            if not _session_expired(lifetime):
                return None
            flask_login.logout_user()
            flask.session.clear()
            return _refuse(path, "expired")
        return _refuse(path, "signed out")

    @server.route(LOGIN_PATH, methods=["GET", "POST"])
    def login():
        message, status = "", 200
        if flask.request.args.get("expired"):
            message = "Your session expired. Please sign in again."
        username = ""
        if flask.request.method == "POST":
            username = flask.request.form.get("username", "")
            if not _csrf_ok():
                message, status = "The form expired. Please try again.", 400
            else:
                user = verify_password(engine, username, flask.request.form.get("password", ""))
                if user is None:
                    log.warning("failed sign-in for user %r from %s", username[:64], flask.request.remote_addr)
                    message, status = "Unknown user name or wrong password.", 401
                else:
                    flask.session.clear()  # a fresh session: no fixation of a token set before signing in
                    flask.session.permanent = True
                    flask_login.login_user(user, remember=False)
                    flask.session[SIGNED_IN_AT] = time.time()
                    csrf_token()
                    log.info("user %s (%s) signed in", user.username, user.role)
                    return flask.redirect(_safe_next(flask.request.args.get("next")))
        body = render_login_form(csrf_token(), username, message, flask.request.args.get("next", ""))
        return flask.Response(body, status=status, mimetype="text/html")

    @server.route(LOGOUT_PATH, methods=["POST"])
    def logout():
        if _csrf_ok():
            flask_login.logout_user()
            flask.session.clear()
        return flask.redirect(LOGIN_PATH)


def render_login_form(token: str, username: str, message: str, next_path: str) -> str:
    """The sign-in page (plain HTML: it must work before any Dash script may load)."""
    action = LOGIN_PATH + (f"?{urlencode({'next': next_path})}" if next_path else "")
    note = f'<p class="login-message" role="alert">{html.escape(message)}</p>' if message else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · safety-dash</title>
<link rel="icon" href="{FAVICON}">
<link rel="stylesheet" href="/assets/style.css">
</head><body class="login-body">
<main class="login-card">
  <div class="brand brand-login"><span class="brand-mark"></span>safety-dash</div>
  <h1>Sign in</h1>
  <p class="login-lede">Safety signal monitoring for clinical trials</p>
  {note}
  <form method="post" action="{html.escape(action)}">
    <input type="hidden" name="{CSRF_FIELD}" value="{html.escape(token)}">
    <label for="username">User name</label>
    <input id="username" name="username" autocomplete="username" required autofocus value="{html.escape(username)}">
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="current-password" required>
    <button id="sign-in" type="submit">Sign in</button>
  </form>
  <p class="login-foot">Access is restricted to study team members. Sessions end after a set time.</p>
</main>
</body></html>"""
