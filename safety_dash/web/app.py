"""The Dash app factory: a Flask server with the sign-in guard, the page frame, every page and its callbacks.

``create_app(settings)`` returns the Dash app; ``app.server`` is the WSGI application (``gunicorn app:server``).
The app never starts the scheduler and never writes study data.

Every answer but the static files (``/assets/``, Dash's component scripts) carries ``Cache-Control: no-store``, so
the browser keeps no copy of a page or a callback's data to show after sign-out (the Back button asks the server
again, which sends a signed-out browser to the sign-in page), and none may be shown in a frame of another site.

``GET /healthz`` is the load balancer's health check, answered without a session: 200 ``{"status": "ok"}`` when
this worker can reach the database, else 503 ``{"status": "database unavailable"}``. It tells nothing about studies,
users or the software's version, sets no cookie, and is answered before the sign-in guard (registered ahead of it).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

import flask
import flask_login
from dash import Dash
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.middleware.proxy_fix import ProxyFix

from safety_dash.config import Settings
from safety_dash.db.engine import get_engine
from safety_dash.db.errors import DatabaseUnavailable, describe_database_error, is_database_unavailable
from safety_dash.db.models import utcnow
from safety_dash.web import views
from safety_dash.web.auth import csrf_token, init_login, login_stylesheet
from safety_dash.web.data import EXTENSION, WebContext, load_baskets_file
from safety_dash.web.layout import build_shell, register_shell_callbacks
from safety_dash.web.pages import load_pages

log = logging.getLogger(__name__)

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
RETRY_AFTER_SECONDS = 30
HEALTH_PATH = "/healthz"
# Static files: the same for every user and holding no study data, so the browser may keep them.
CACHEABLE_PREFIXES = ("/assets/", "/_dash-component-suites/")


def create_server(settings: Settings) -> flask.Flask:
    """The Flask server with signed, HttpOnly, SameSite=Lax session cookies that expire (Secure with
    ``SAFETY_DASH_SECURE_COOKIES``); behind ``SAFETY_DASH_TRUSTED_PROXIES`` proxies, the client's address and scheme
    are the ones the proxy saw."""
    server = flask.Flask("safety_dash.web")
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        server.wsgi_app = ProxyFix(server.wsgi_app, x_for=n, x_proto=n, x_host=0, x_port=0, x_prefix=0)
    secret = settings.secret_key
    if not secret:
        secret = secrets.token_hex(32)
        log.warning(
            "SAFETY_DASH_SECRET_KEY is not set: using a random key, so sessions end when this process stops and "
            "several workers cannot share them. Set it outside `make run`."
        )
    server.config.update(
        SECRET_KEY=secret,
        PERMANENT_SESSION_LIFETIME=dt.timedelta(minutes=float(settings.session_minutes)),
        SESSION_COOKIE_NAME="safety_dash_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        REMEMBER_COOKIE_DURATION=dt.timedelta(seconds=0),
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,  # callbacks send filters, not files
    )
    init_response_headers(server)
    return server


def init_response_headers(server: flask.Flask) -> None:
    """``Cache-Control: no-store`` on every answer but static files (pages, callbacks, redirects and refusals
    alike), and no framing by other sites."""

    @server.after_request
    def protect_response(response: flask.Response) -> flask.Response:
        if response.status_code != 200 or not flask.request.path.startswith(CACHEABLE_PREFIXES):
            response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def create_app(
    settings: Settings,
    engine: Engine | None = None,
    warm_up: bool = False,
    clock: Callable[[], dt.datetime] = utcnow,
) -> Dash:
    """The dashboard for the database of ``settings`` (or ``engine``), behind a sign-in.

    With ``warm_up``, a background thread reads the newest cut of each study and computes the default views as the
    worker starts (a cut of a million AE records takes seconds to read; better before the first visitor than in
    front of them). The production entry point ``app.py`` asks for it. ``clock`` gives the time in UTC to the
    sign-in (lockouts, session lifetime): tests move it instead of sleeping.
    """
    engine = engine if engine is not None else get_engine(settings.database_url)
    server = create_server(settings)
    context = WebContext(engine=engine, baskets=load_baskets_file(settings.baskets_file))
    server.extensions[EXTENSION] = context
    if warm_up:
        threading.Thread(target=views.warm_up, args=(context,), name="safety-dash-warm-up", daemon=True).start()
    init_health_check(server, engine)  # before the sign-in guard: the load balancer has no session
    init_login(server, engine, settings.session_minutes, base_url=settings.base_url, clock=clock)
    init_database_unavailable(server, engine)

    pages = load_pages()
    app = Dash(
        __name__,
        server=server,
        use_pages=False,  # routing is ours: pages re-render on a new path, not on every filter change
        assets_folder=str(ASSETS_DIR),
        title="safety-dash",
        update_title=None,
        suppress_callback_exceptions=False,
        serve_locally=True,
        compress=False,
    )

    def serve_layout():
        user = flask_login.current_user
        if not getattr(user, "is_authenticated", False):  # the guard refuses earlier; this is a second lock
            return build_shell([], "", "", "")
        return build_shell(pages, user.username, user.role, csrf_token())

    app.layout = serve_layout
    app.validation_layout = build_validation_layout(pages)
    register_shell_callbacks(app, pages)
    for page in pages:
        page.register_callbacks(app)
    return app


def init_health_check(server: flask.Flask, engine: Engine) -> None:
    """Answer ``GET /healthz`` (and HEAD) before any other request hook, so without a session: 200 when a pooled
    connection to the database answers ``SELECT 1``, else 503. Must be registered before :func:`init_login`'s guard
    (Flask runs request hooks in the order they were registered, and the first answer ends the request)."""

    @server.before_request
    def answer_health_check():
        if flask.request.path != HEALTH_PATH:
            return None
        if flask.request.method not in ("GET", "HEAD"):
            return flask.jsonify({"status": "method not allowed"}), 405, {"Allow": "GET, HEAD"}
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except Exception as error:  # anything that keeps this worker from its database: not healthy
            log.warning("health check: %s", describe_database_error(error, engine.url.render_as_string()))
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            return flask.jsonify({"status": "database unavailable"}), 503, headers
        return flask.jsonify({"status": "ok"})


def init_database_unavailable(server: flask.Flask, engine: Engine) -> None:
    """Answer 503 with a short page while the database cannot be reached; the pool's pre-ping reconnects by itself
    once it is back, so no restart is needed. Other database errors stay errors (500, logged with their traceback).
    """

    def database_unavailable(error: Exception):
        if not is_database_unavailable(error):
            raise error
        log.warning("answering 503: %s", describe_database_error(error, engine.url.render_as_string()))
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"}
        if flask.request.path.startswith("/_"):  # Dash's own endpoints: the page's script reads JSON
            return flask.jsonify({"error": "the database cannot be reached; try again in a minute"}), 503, headers
        return flask.Response(render_database_unavailable(), status=503, mimetype="text/html", headers=headers)

    for kind in (DBAPIError, DatabaseUnavailable, PoolTimeoutError):
        server.register_error_handler(kind, database_unavailable)


def render_database_unavailable() -> str:
    """The page shown while the database is away: what happened and what the reader may do; no data, no detail."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{RETRY_AFTER_SECONDS}">
<title>Database unavailable · safety-dash</title>
<style>{login_stylesheet()}</style>
</head><body class="login-body">
<main class="login-card">
  <div class="brand brand-login"><span class="brand-mark"></span>safety-dash</div>
  <h1>The database cannot be reached</h1>
  <p class="login-message" role="alert">The dashboard cannot read its database right now, so no data is shown.</p>
  <p>This page tries again every {RETRY_AFTER_SECONDS} seconds and shows the dashboard as soon as the database is
  back. If it stays like this, tell the administrator.</p>
</main>
</body></html>"""


def build_validation_layout(pages):
    """Every component any page may show, so Dash can check each callback's ids when the app starts."""
    from dash import html

    return html.Div([build_shell(pages, "", "", ""), *[page.layout() for page in pages]])
