"""While the database is away the web app answers 503 with a short readable page, and it serves data again by
itself once the database is back (issue 9, item 5): a TCP proxy between the app and PostgreSQL is stopped and
started under a running app."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading

import pytest
from sqlalchemy.engine import make_url

from safety_dash.config import load_settings
from safety_dash.db.engine import dispose_engine, get_engine
from safety_dash.web import ids
from safety_dash.web.app import create_app
from safety_dash.web.auth import create_user
from safety_dash.web.dashcall import call_callback
from tests.alerts.helpers import ensure_cut
from tests.conftest import POSTGRES_URL_VARIABLE, _postgres_schema
from tests.web.conftest import PASSWORD, ROLE, USERNAME, sign_in_client

PAGE_TITLE = "The database cannot be reached"


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``stop`` closes the port and every connection through it (the
    database is away), ``start`` opens the same port again (it is back)."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.listener: socket.socket | None = None
        self.acceptor: threading.Thread | None = None

    def start(self) -> TcpProxy:
        self.stopping.clear()
        self.listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: the same port again
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.acceptor = threading.Thread(target=self._accept, args=(self.listener,), daemon=True)
        self.acceptor.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.acceptor is not None:
            self.acceptor.join()
        if self.listener is not None:
            self.listener.close()
        with self.lock:
            for connection in self.connections:
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                connection.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def postgres_url(request):
    """A fresh, migrated schema on the test PostgreSQL server holding study T1 with one cut, and one user."""
    base = os.environ.get(POSTGRES_URL_VARIABLE)
    if not base:
        pytest.skip(f"{POSTGRES_URL_VARIABLE} is not set; PostgreSQL tests need a server (CI sets it)")
    for url in _postgres_schema(base, request.node.name):
        with get_engine(url).begin() as connection:
            ensure_cut(connection, "T1")  # the study and a succeeded cut: what the filter bar reads
        create_user(get_engine(url), USERNAME, PASSWORD, ROLE)
        yield url


@pytest.fixture
def proxy(postgres_url):
    parsed = make_url(postgres_url)
    proxy = TcpProxy((parsed.host or "127.0.0.1", parsed.port or 5432)).start()
    yield proxy
    proxy.stop()


def app_on(database_url: str):
    settings = dataclasses.replace(
        load_settings(), database_url=database_url, secret_key="test-secret-key", session_minutes=30.0
    )
    return create_app(settings)


def ask_filter_bar(client, app):
    """The filter bar's callback, as the browser calls it on opening the app: it reads the studies and cuts."""
    return call_callback(client, app, f"{ids.FILTER_CUT}.value", {"url.search": ""})


def assert_unavailable_page(response) -> None:
    assert response.status_code == 503
    assert response.mimetype == "text/html" and response.headers["Retry-After"] == "30"
    body = response.get_data(as_text=True)
    assert f"<h1>{PAGE_TITLE}</h1>" in body
    for leak in ("T1", "Traceback", "OperationalError", "psycopg", "127.0.0.1", "SELECT"):
        assert leak not in body


@pytest.mark.postgres
def test_the_app_answers_503_while_the_database_is_away_and_recovers_when_it_returns(postgres_url, proxy):
    proxy_url = make_url(postgres_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    app = app_on(proxy_url)
    client = app.server.test_client()
    try:
        assert sign_in_client(client).status_code == 302
        answer = ask_filter_bar(client, app)
        assert answer.status == 200 and answer.outputs[ids.FILTER_STUDY]["value"] == "T1"

        proxy.stop()  # the database goes away; the pooled connections die with the proxy's
        assert_unavailable_page(client.get("/"))
        assert_unavailable_page(client.get("/rates?study=T1"))
        response = client.post("/_dash-update-component", json={})
        assert response.status_code == 503
        assert response.get_json() == {"error": "the database cannot be reached; try again in a minute"}
        assert ask_filter_bar(client, app).status == 503

        proxy.start()  # back on the same port: the same app, not restarted, serves data again
        assert client.get("/").status_code == 200
        answer = ask_filter_bar(client, app)
        assert answer.status == 200 and answer.outputs[ids.FILTER_STUDY]["value"] == "T1"

        # a blip between two requests (a restarted server): the pooled connection is dead, yet the next request is
        # served, because the pool pings a connection before handing it out
        proxy.stop()
        proxy.start()
        answer = ask_filter_bar(client, app)
        assert answer.status == 200 and answer.outputs[ids.FILTER_STUDY]["value"] == "T1"
    finally:
        dispose_engine(proxy_url)


def test_signing_in_while_the_database_is_down_shows_the_page_not_an_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
    app = app_on(url)
    try:
        client = app.server.test_client()
        assert client.get("/login").status_code == 200  # the form needs no database
        with client.session_transaction() as session:
            token = session["csrf_token"]
        response = client.post("/login", data={"username": USERNAME, "password": PASSWORD, "csrf_token": token})
        assert_unavailable_page(response)
    finally:
        dispose_engine(url)
