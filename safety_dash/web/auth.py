"""Who may sign in and what they may do: users and roles, signing in with a lockout, sessions the server can end,
and the guard on every request.

**Users** live in the ``users`` table (this module owns it), with a role of :data:`ROLES` and a salted scrypt hash
of a password of at least :data:`MIN_PASSWORD_LENGTH` characters. Creating a user, changing a role, disabling a
user and setting a new password are recorded in the audit trail with the values before and after.

**Signing in.** Every success (``sign_in``) and failure (``sign_in_failed``, naming the user name tried, whether or
not it exists) is recorded with the client's address. A user name is locked for 15 minutes after
:data:`LOCKOUT_FAILURES` failures within 15 minutes, counted in the trail since its last success
(:func:`find_lockout`); the answer is the same for a name that does not exist. An address with repeated failures
waits before its next try, 1 s doubling to 60 s (:func:`address_wait`).

**Sessions.** The signed session cookie holds the user id, the user's ``session_generation`` and the time of
sign-in. Signing out, disabling the user, a new role and a new password raise the generation, which ends every
session of that user at its next request, copies of the cookie included. A session also ends
``SAFETY_DASH_SESSION_MINUTES`` after sign-in, whatever the user does in between.

**The guard** (:func:`init_login`) lets nothing through without a signed-in user but the sign-in form (which
inlines its style) and sign-out: pages redirect to ``/login``; Dash's endpoints (``/_dash-layout``,
``/_dash-update-component``, ...) and ``/assets/`` answer 401, on which ``assets/session.js`` (served to signed-in
users only) loads the sign-in page. Sign-out is a POST with the session's CSRF token, and a POST from another site
(its ``Origin``) is refused.

**Roles** are enforced on the server: :data:`PERMISSIONS` says which roles may do what, and every callback that
writes starts with :func:`require_permission`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import html
import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlencode, urlsplit

import flask
import flask_login
from sqlalchemy import Connection, Engine, func, insert, select, update
from werkzeug.exceptions import Forbidden, Unauthorized
from werkzeug.security import check_password_hash, generate_password_hash

from safety_dash.audit import record_event
from safety_dash.db.models import AuditEvent, User, utcnow

log = logging.getLogger(__name__)

ROLES = ("monitor", "committee", "admin")
# Which roles may do what. Committee members read only; admins manage users, the audit trail and settings.
PERMISSIONS: dict[str, tuple[str, ...]] = {
    "review": ("monitor",),
    "comment": ("monitor",),
    "acknowledge": ("monitor",),
    "query": ("monitor",),
    "users": ("admin",),
    "audit": ("admin",),
    "settings": ("admin",),
}
MIN_PASSWORD_LENGTH = 12
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = dt.timedelta(minutes=15)  # failures this close together lock the name ...
LOCKOUT_DURATION = dt.timedelta(minutes=15)  # ... for this long after the last of them
ADDRESS_WINDOW = dt.timedelta(minutes=15)
ADDRESS_FREE_FAILURES = 3  # failures of one address in the window before it has to wait
ADDRESS_MAX_WAIT_SECONDS = 60
# Reasons of a sign_in_failed event; failures while locked do not count towards (nor extend) the lockout.
WRONG_PASSWORD, UNKNOWN_USER, USER_DISABLED, LOCKED = "wrong password", "unknown user name", "user disabled", "locked"
FAILED_MESSAGE = "Unknown user name or wrong password."
ANONYMOUS = "anonymous"  # the actor of a failed sign-in: nobody is signed in
LOGIN_PATH, LOGOUT_PATH = "/login", "/logout"
PUBLIC_PATHS = frozenset({LOGIN_PATH, LOGOUT_PATH})  # answered without a signed-in user
CSRF_FIELD = "csrf_token"
SIGNED_IN_AT = "signed_in_at"
GENERATION = "session_generation"
REFUSAL = "safety_dash_refusal"  # flask.g: set by require_permission, kept by the answer whatever catches it
STYLESHEET = Path(__file__).resolve().parents[2] / "assets" / "style.css"
# Compared against when the user does not exist, so an unknown name takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash(secrets.token_hex(16))
# An inline icon, so the sign-in page asks for nothing the guard would refuse.
FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' rx='3' fill='%231f4e79'/%3E%3C/svg%3E"
)
LOGIN_NOTE_STYLE = (
    ".login-note { background: var(--brand-soft); color: var(--brand-dark); padding: 8px 12px; border-radius: 8px; }\n"
)
Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class SignedInUser(flask_login.UserMixin):
    """The signed-in user as flask-login sees it; ``generation`` is the session generation signed in with."""

    id: int
    username: str
    role: str
    generation: int = 0

    def get_id(self) -> str:
        return str(self.id)


# --- checks ------------------------------------------------------------------------------------------------------


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


def check_actor(actor: str) -> str:
    """``actor`` (who makes a change: a user name, or ``cli``) stripped, or a ValueError."""
    name = (actor or "").strip() if isinstance(actor, str) else ""
    if not name or len(name) > 64:
        raise ValueError(f"actor {actor!r} is not allowed: name who makes the change in 1 to 64 characters")
    return name


# --- managing users ------------------------------------------------------------------------------------------


def _find_user(connection: Connection, username: str):
    name = check_username(username)
    row = connection.execute(
        select(User.id, User.username, User.role, User.active, User.session_generation).where(User.username == name)
    ).first()
    if row is None:
        raise ValueError(f"user {name!r} does not exist; create it with `users add {name} --role ROLE`")
    return row


def _end_sessions(connection: Connection, user_id: int, **values) -> int:
    """Raise the user's session generation (with ``values`` changed at the same time); return the new one."""
    return connection.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1, **values)
        .returning(User.session_generation)
    ).scalar_one()


def create_user(
    engine: Engine, username: str, password: str, role: str, replace: bool = False, *, actor: str = "cli"
) -> int:
    """Create user ``username`` with ``role`` and return its id; the password is stored hashed. ``actor`` (who
    creates it) is recorded in the audit trail (``user_created``).

    When the user exists, fail with a sentence, or with ``replace`` set its password and role and make it active:
    that ends its sessions and is recorded as ``user_password_reset`` (and ``user_role_changed`` for a new role).
    """
    name = check_username(username)
    check_role(role)
    actor = check_actor(actor)
    password_hash = generate_password_hash(check_password(password))
    with engine.begin() as connection:
        existing = connection.execute(select(User.id).where(User.username == name)).scalar_one_or_none()
        if existing is None:
            user_id = connection.execute(
                insert(User)
                .values(username=name, password_hash=password_hash, role=role, active=True)
                .returning(User.id)
            ).scalar_one()
            record_event(connection, actor, "user_created", "user", name, after={"role": role, "active": True})
            return user_id
        if not replace:
            raise ValueError(f"user {name!r} exists already; pass --replace to set a new password and role")
        old = _find_user(connection, name)
        generation = _end_sessions(connection, old.id, password_hash=password_hash, role=role, active=True)
        before = {"role": old.role, "active": old.active, "session_generation": old.session_generation}
        after = {"role": role, "active": True, "session_generation": generation}
        record_event(connection, actor, "user_password_reset", "user", name, before=before, after=after)
        if old.role != role:
            record_event(connection, actor, "user_role_changed", "user", name, before={"role": old.role},
                         after={"role": role})  # fmt: skip
        return old.id


def disable_user(engine: Engine, username: str, actor: str) -> None:
    """Disable ``username``: they can no longer sign in and their sessions end at once (``user_disabled``)."""
    actor = check_actor(actor)
    with engine.begin() as connection:
        user = _find_user(connection, username)
        if not user.active:
            raise ValueError(f"user {user.username!r} is disabled already; nothing was changed")
        generation = _end_sessions(connection, user.id, active=False)
        record_event(connection, actor, "user_disabled", "user", user.username,
                     before={"active": True, "session_generation": user.session_generation},
                     after={"active": False, "session_generation": generation})  # fmt: skip


def set_user_role(engine: Engine, username: str, role: str, actor: str) -> None:
    """Give ``username`` the role ``role``; their sessions end, so the new role holds from their next sign-in
    (``user_role_changed``)."""
    check_role(role)
    actor = check_actor(actor)
    with engine.begin() as connection:
        user = _find_user(connection, username)
        if user.role == role:
            raise ValueError(f"user {user.username!r} has the role {role} already; nothing was changed")
        generation = _end_sessions(connection, user.id, role=role)
        record_event(connection, actor, "user_role_changed", "user", user.username,
                     before={"role": user.role, "session_generation": user.session_generation},
                     after={"role": role, "session_generation": generation})  # fmt: skip


def reset_user_password(engine: Engine, username: str, password: str, actor: str) -> None:
    """Set a new password for ``username`` and end their sessions (``user_password_reset``; no hash is
    recorded)."""
    actor = check_actor(actor)
    password_hash = generate_password_hash(check_password(password))
    with engine.begin() as connection:
        user = _find_user(connection, username)
        generation = _end_sessions(connection, user.id, password_hash=password_hash)
        record_event(connection, actor, "user_password_reset", "user", user.username,
                     before={"session_generation": user.session_generation},
                     after={"session_generation": generation})  # fmt: skip


# --- signing in ----------------------------------------------------------------------------------------------


def check_credentials(engine: Engine, username: str, password: str) -> tuple[SignedInUser | None, str]:
    """(the user, "") when ``password`` is the active user ``username``'s; else (None, why: :data:`WRONG_PASSWORD`,
    :data:`UNKNOWN_USER` or :data:`USER_DISABLED`). The same work is done whether or not the user exists."""
    name = (username or "").strip()
    with engine.connect() as connection:
        row = connection.execute(
            select(User.id, User.username, User.role, User.password_hash, User.active, User.session_generation).where(
                User.username == name
            )
        ).first()
    if row is None:
        check_password_hash(_DUMMY_HASH, password or "")
        return None, UNKNOWN_USER
    if not check_password_hash(row.password_hash, password or ""):
        return None, WRONG_PASSWORD
    if not row.active:
        return None, USER_DISABLED
    return SignedInUser(row.id, row.username, row.role, row.session_generation), ""


def verify_password(engine: Engine, username: str, password: str) -> SignedInUser | None:
    """The active user ``username`` if ``password`` is theirs, else None (same work whether or not they exist)."""
    return check_credentials(engine, username, password)[0]


def load_user(engine: Engine, user_id: int, generation: int | None = None) -> SignedInUser | None:
    """The active user with id ``user_id``, or None; with ``generation``, None too when the user's sessions were
    ended since (sign-out, disabled, new role or password)."""
    with engine.connect() as connection:
        row = connection.execute(
            select(User.id, User.username, User.role, User.session_generation).where(
                User.id == user_id, User.active.is_(True)
            )
        ).first()
    if row is None or (generation is not None and row.session_generation != generation):
        return None
    return SignedInUser(row.id, row.username, row.role, row.session_generation)


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)  # SQLite: naive UTC


def tried_name(username: str | None) -> str:
    """The user name as counted and recorded for a sign-in attempt: stripped, at most 64 characters."""
    return (username or "").strip()[:64]


def find_lockout(connection: Connection, username: str, now: dt.datetime) -> dt.datetime | None:
    """When the lockout of ``username`` ends, if it is locked at ``now``; else None.

    Locked: :data:`LOCKOUT_FAILURES` failed sign-ins within :data:`LOCKOUT_WINDOW` of each other, since the name's
    last successful sign-in, the last of them less than :data:`LOCKOUT_DURATION` ago. Attempts refused while locked
    do not count, so the lockout ends 15 minutes after the failure that caused it. Names that do not exist are
    counted alike, so a lockout says nothing about whether a name exists.
    """
    name, now = tried_name(username), _utc(now)
    events = AuditEvent.__table__.c
    since = now - LOCKOUT_WINDOW - LOCKOUT_DURATION
    last_success = connection.execute(
        select(func.max(events.occurred_at)).where(events.action == "sign_in", events.object_id == name)
    ).scalar()
    if last_success is not None:
        since = max(since, _utc(last_success))
    failures = [
        _utc(value)
        for value in connection.execute(
            select(events.occurred_at)
            .where(events.action == "sign_in_failed", events.object_id == name, events.occurred_at > since)
            .where(events.reason.is_distinct_from(LOCKED))
            .order_by(events.occurred_at)
        ).scalars()
    ]
    ends = [
        failures[last] + LOCKOUT_DURATION
        for last in range(LOCKOUT_FAILURES - 1, len(failures))
        if failures[last] - failures[last - LOCKOUT_FAILURES + 1] <= LOCKOUT_WINDOW
    ]
    return max(ends) if ends and max(ends) > now else None


def address_wait(connection: Connection, address: str, now: dt.datetime) -> float:
    """Seconds the client at ``address`` must still wait before its next sign-in attempt: none after fewer than
    :data:`ADDRESS_FREE_FAILURES` failures in the last 15 minutes, then 1 s after its latest failure, doubling
    with each further failure up to :data:`ADDRESS_MAX_WAIT_SECONDS`."""
    now = _utc(now)
    events = AuditEvent.__table__.c
    failures = [
        _utc(value)
        for value in connection.execute(
            select(events.occurred_at).where(
                events.action == "sign_in_failed",
                events.occurred_at > now - ADDRESS_WINDOW,
                events.address == address,
            )
        ).scalars()
    ]
    if len(failures) < ADDRESS_FREE_FAILURES:
        return 0.0
    wait = min(2 ** (len(failures) - ADDRESS_FREE_FAILURES), ADDRESS_MAX_WAIT_SECONDS)
    return max(0.0, (max(failures) + dt.timedelta(seconds=wait) - now).total_seconds())


@dataclass(frozen=True)
class SignInAttempt:
    """The outcome of one sign-in: the user, or why not (``failed``, ``locked``, ``throttled``) and for how long."""

    user: SignedInUser | None
    refusal: str = ""
    retry_after: float = 0.0
    locked_until: dt.datetime | None = None


def attempt_sign_in(engine: Engine, username: str, password: str, address: str, now: dt.datetime) -> SignInAttempt:
    """Check one sign-in from ``address`` at ``now`` and record it in the audit trail.

    In this order: an address that must wait (:func:`address_wait`) is refused without looking at the password
    and without a trail row (so a flood cannot fill the trail); a locked name (:func:`find_lockout`) is refused
    and recorded as a failure (reason ``locked``); then the password is checked, and the success or failure is
    recorded with the reason.
    """
    name = tried_name(username)
    with engine.connect() as connection:
        wait = address_wait(connection, address, now)
        locked_until = None if wait else find_lockout(connection, name, now)
    if wait:
        log.warning("sign-in for %r from %s refused: the address must wait %.0f s", name, address, wait)
        return SignInAttempt(None, "throttled", wait)
    if locked_until is not None:
        with engine.begin() as connection:
            record_event(connection, ANONYMOUS, "sign_in_failed", "user", name, reason=LOCKED, address=address)
        log.warning("sign-in for %r from %s refused: locked until %s", name, address, locked_until)
        return SignInAttempt(None, "locked", (locked_until - _utc(now)).total_seconds(), locked_until)
    user, reason = check_credentials(engine, name, password)
    with engine.begin() as connection:
        if user is None:
            record_event(connection, ANONYMOUS, "sign_in_failed", "user", name, reason=reason, address=address)
        else:
            record_event(connection, user.username, "sign_in", "user", user.username, address=address)
    if user is None:
        log.warning("failed sign-in for %r from %s: %s", name, address, reason)
        return SignInAttempt(None, "failed")
    log.info("user %s (%s) signed in from %s", user.username, user.role, address)
    return SignInAttempt(user)


def sign_out(engine: Engine, user: SignedInUser, address: str) -> None:
    """End every session of ``user`` on the server (a copied cookie is refused from now on) and record it."""
    with engine.begin() as connection:
        generation = _end_sessions(connection, user.id)
        record_event(connection, user.username, "sign_out", "user", user.username, address=address,
                     before={"session_generation": generation - 1},
                     after={"session_generation": generation})  # fmt: skip
    log.info("user %s signed out", user.username)


# --- roles ---------------------------------------------------------------------------------------------------


def has_permission(role: str, permission: str) -> bool:
    """Whether ``role`` may do ``permission`` (a key of :data:`PERMISSIONS`), e.g. to show or hide a form."""
    return role in PERMISSIONS.get(permission, ())


def _refuse_request(status: int, message: str) -> NoReturn:
    flask.g.setdefault(REFUSAL, (status, message))
    raise (Forbidden if status == 403 else Unauthorized)(description=message)


def require_permission(permission: str) -> SignedInUser:
    """The signed-in user of this request if their role has ``permission`` (a key of :data:`PERMISSIONS`);
    otherwise the request ends with 403 (401 when nobody is signed in). Call it first in every callback that
    writes; the browser is never trusted to hide a button::

        @app.callback(Output(ids.REVIEW_MESSAGE, "children"), Input(ids.REVIEW_BUTTON, "n_clicks"), ...)
        def review(n_clicks, ...):
            user = require_permission("review")
            ...  # write as user.username

    It raises werkzeug's ``Forbidden``, which Dash passes on as the HTTP answer (checked with Dash 4). The refusal
    is also noted on the request, so a wrapper that turns exceptions into a message (``components.guard``) cannot
    make it a 200: the answer is 403 whatever the callback returns. An unknown permission refuses too (and is
    logged as an error): add new permissions to :data:`PERMISSIONS`.
    """
    if not flask.has_request_context():
        raise Forbidden(description=f"{permission!r} needs a signed-in user's request")
    if permission not in PERMISSIONS:
        log.error("require_permission(%r): not a permission; add it to PERMISSIONS in %s", permission, __name__)
        _refuse_request(403, f"{permission!r} is not a permission")
    user = flask_login.current_user
    if not getattr(user, "is_authenticated", False):
        _refuse_request(401, "sign in first")
    if user.role not in PERMISSIONS[permission]:
        allowed = " or ".join(PERMISSIONS[permission])
        log.warning("refused %r to %s (%s) on %s", permission, user.username, user.role, flask.request.path)
        _refuse_request(403, f"your role ({user.role}) does not allow {permission!r}; only {allowed} may")
    return user._get_current_object()  # the SignedInUser, not flask-login's proxy of it


# --- the web side ----------------------------------------------------------------------------------------------


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


def _client_address() -> str:
    return (flask.request.remote_addr or "")[:64]


def _same_origin(allowed_hosts: frozenset[str]) -> bool:
    """False for a request a browser says came from another site (``Sec-Fetch-Site``, ``Origin``)."""
    if flask.request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    origin = flask.request.headers.get("Origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() in allowed_hosts | {flask.request.host.lower()}


def _refuse(path: str, reason: str):
    """401 for Dash's endpoints, assets and anything that is not a page; a redirect to the form for pages."""
    if path.startswith(("/_", "/assets/")) or flask.request.method != "GET":
        return flask.jsonify({"error": "sign in first", "reason": reason}), 401
    query = {"next": flask.request.full_path.rstrip("?")}
    if reason in ("expired", "ended"):
        query[reason] = "1"
    return flask.redirect(f"{LOGIN_PATH}?{urlencode(query)}")


def init_login(
    server: flask.Flask, engine: Engine, session_minutes: float, *, base_url: str = "", clock: Clock = utcnow
) -> None:
    """Put the sign-in form, sign-out, the guard on every request and the refusal of cross-site posts onto
    ``server``. ``base_url`` is the dashboard's public address (its host is accepted as an ``Origin`` besides the
    request's own); ``clock`` gives the time in UTC (tests move it instead of sleeping)."""
    lifetime = float(session_minutes) * 60.0
    allowed_hosts = frozenset({urlsplit(base_url).netloc.lower()} - {""})
    manager = flask_login.LoginManager()
    manager.init_app(server)
    manager.session_protection = "basic"

    @manager.user_loader
    def _load(user_id: str) -> SignedInUser | None:
        generation = flask.session.get(GENERATION)
        if not user_id.isdigit() or type(generation) is not int:
            return None
        return load_user(engine, int(user_id), generation)

    @server.before_request
    def require_signed_in_user():
        path = flask.request.path
        if flask.request.method not in ("GET", "HEAD", "OPTIONS") and not _same_origin(allowed_hosts):
            log.warning("refused a cross-site %s to %s from %s", flask.request.method, path, _client_address())
            return flask.jsonify({"error": "cross-site request refused"}), 403
        if path in PUBLIC_PATHS:
            return None
        if flask_login.current_user.is_authenticated:
            signed_in_at = flask.session.get(SIGNED_IN_AT)
            if isinstance(signed_in_at, (int, float)) and clock().timestamp() - signed_in_at <= lifetime:
                return None
            flask_login.logout_user()
            flask.session.clear()
            return _refuse(path, "expired")
        if "_user_id" in flask.session:  # ended on the server: signed out elsewhere, disabled, new role or password
            flask.session.clear()
            return _refuse(path, "ended")
        return _refuse(path, "signed out")

    @server.after_request
    def keep_refusals(response: flask.Response) -> flask.Response:
        """A refusal of :func:`require_permission` stays a refusal, whatever caught the exception."""
        refusal = flask.g.get(REFUSAL)
        if refusal is not None and response.status_code != refusal[0]:
            response.status_code = refusal[0]
            response.set_data(flask.json.dumps({"error": refusal[1]}))
            response.mimetype = "application/json"
        return response

    def refused(error):
        if not flask.request.path.startswith("/_"):
            return error
        return flask.jsonify({"error": error.description}), error.code

    server.register_error_handler(401, refused)
    server.register_error_handler(403, refused)

    @server.route(LOGIN_PATH, methods=["GET", "POST"])
    def login():
        message, status, headers = _notice(flask.request.args), 200, {}
        username = ""
        if flask.request.method == "POST":
            username = flask.request.form.get("username", "")
            if not _csrf_ok():
                message, status = ("error", "The form expired. Please try again."), 400
            else:
                attempt = attempt_sign_in(engine, username, flask.request.form.get("password", ""),
                                          _client_address(), clock())  # fmt: skip
                if attempt.user is not None:
                    _start_session(attempt.user, clock())
                    return flask.redirect(_safe_next(flask.request.args.get("next")))
                message, status = ("error", _refusal_message(attempt)), 401 if attempt.refusal == "failed" else 429
                if attempt.retry_after:
                    headers["Retry-After"] = str(math.ceil(attempt.retry_after))
        body = render_login_form(csrf_token(), username, message, flask.request.args.get("next", ""))
        return flask.Response(body, status=status, mimetype="text/html", headers=headers)

    @server.route(LOGOUT_PATH, methods=["GET", "POST"])
    def logout():
        user = flask_login.current_user
        if not user.is_authenticated:
            flask.session.clear()
            return flask.redirect(LOGIN_PATH)
        if flask.request.method == "GET":
            return flask.Response(render_sign_out_page(csrf_token()), mimetype="text/html")
        if not _csrf_ok():
            return flask.Response(render_sign_out_page(csrf_token(), expired=True), status=400, mimetype="text/html")
        sign_out(engine, user, _client_address())
        flask_login.logout_user()
        flask.session.clear()
        return flask.redirect(f"{LOGIN_PATH}?signed_out=1")


def _start_session(user: SignedInUser, now: dt.datetime) -> None:
    flask.session.clear()  # a fresh session: no fixation of a token set before signing in
    flask.session.permanent = True
    flask_login.login_user(user, remember=False)
    flask.session[GENERATION] = user.generation
    flask.session[SIGNED_IN_AT] = now.timestamp()
    csrf_token()


def _notice(args) -> tuple[str, str] | None:
    """The note the sign-in page opens with after a redirect: expired, ended elsewhere, or signed out."""
    if args.get("expired"):
        return "error", "Your session expired. Please sign in again."
    if args.get("ended"):
        return "error", "Your session was ended. Please sign in again."
    if args.get("signed_out"):
        return "note", "You are signed out."
    return None


def _refusal_message(attempt: SignInAttempt) -> str:
    if attempt.refusal == "throttled":
        seconds = math.ceil(attempt.retry_after)
        wait = f"{seconds} second{'s' * (seconds != 1)}"
        return f"Too many failed sign-ins from your address. Wait {wait}, then try again."
    if attempt.refusal == "locked":
        after = attempt.locked_until + dt.timedelta(minutes=1)  # the minute shown is never before the end
        return (
            f"Too many failed sign-ins for this user name. Try again after {after:%H:%M} UTC, or ask an administrator."
        )
    return FAILED_MESSAGE


# --- pages shown before sign-in ------------------------------------------------------------------------------


@functools.cache
def login_stylesheet() -> str:
    """The part of ``assets/style.css`` the sign-in page uses, to inline in it (``/assets/`` needs a user)."""
    try:
        text = STYLESHEET.read_text(encoding="utf-8")
    except OSError:
        log.warning("%s cannot be read: the sign-in page is shown without its style", STYLESHEET)
        return ""
    head, _, frame = text.partition("/* --- frame")
    brand = re.findall(r"^\.brand(?:-mark)? \{.*?\}\n", frame, flags=re.MULTILINE | re.DOTALL)
    return (head + "".join(brand) + LOGIN_NOTE_STYLE).replace("</", "<\\/")


def _page(title: str, body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · safety-dash</title>
<link rel="icon" href="{FAVICON}">
<style>{login_stylesheet()}</style>
</head><body class="login-body">
<main class="login-card">
  <div class="brand brand-login"><span class="brand-mark"></span>safety-dash</div>
{body}
</main>
</body></html>"""


def render_login_form(token: str, username: str, message: tuple[str, str] | str | None, next_path: str) -> str:
    """The sign-in page (plain HTML with its style inline: it must work before any Dash script or asset may load).
    ``message`` is ("error" or "note", text), or a text shown as an error."""
    action = LOGIN_PATH + (f"?{urlencode({'next': next_path})}" if next_path else "")
    kind, text = message if isinstance(message, tuple) else ("error", message or "")
    css = "login-message" if kind == "error" else "login-note"
    note = f'<p class="{css}" role="alert">{html.escape(text)}</p>' if text else ""
    return _page(
        "Sign in",
        f"""  <h1>Sign in</h1>
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
  <p class="login-foot">Access is restricted to study team members. Sessions end after a set time.</p>""",
    )


def render_sign_out_page(token: str, expired: bool = False) -> str:
    """The page of ``GET /logout``: one button that signs out (a POST with the session's token)."""
    note = '<p class="login-message" role="alert">The form expired. Please try again.</p>' if expired else ""
    return _page(
        "Sign out",
        f"""  <h1>Sign out</h1>
  {note}
  <form method="post" action="{LOGOUT_PATH}">
    <input type="hidden" name="{CSRF_FIELD}" value="{html.escape(token)}">
    <button id="sign-out" type="submit">Sign out</button>
  </form>
  <p class="login-foot"><a href="/">Back to the dashboard</a></p>""",
    )
