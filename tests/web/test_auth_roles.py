"""Roles on the server: every callback that writes is sent by each role over HTTP, exactly as the browser sends it;
the roles :data:`PERMISSIONS` names get their answer, the others 403 and nothing is written.

A new write callback adds a :class:`WriteCallback` to :data:`WRITE_CALLBACKS` (how to call it and how to see
whether it wrote); ``test_every_write_callback_checks_a_permission_and_is_in_the_table`` fails until it does.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import sqlite3
from collections.abc import Callable
from typing import Any

import pytest
from dash import Input, Output
from sqlalchemy import Engine, insert, select

from safety_dash.alerts.models import Alert
from safety_dash.db.engine import dispose_engine, get_engine
from safety_dash.db.models import AuditEvent, Comment, DerivedEvent, Review
from safety_dash.review import add_comment
from safety_dash.web import ids
from safety_dash.web.auth import PERMISSIONS, ROLES, create_user, has_permission
from safety_dash.web.components import guard
from safety_dash.web.dashcall import call_callback
from tests.web.conftest import PASSWORD, USERNAME, sign_in_client

USER_OF_ROLE = {"monitor": USERNAME, "committee": "roles.committee", "admin": "roles.admin"}


@dataclasses.dataclass(frozen=True)
class Target:
    """What the write callbacks act on in the test database: one open alert, one AE record (its version id and
    subject) and one open data query of the demo study's last cut."""

    engine: Engine
    study_id: str
    run_id: int
    alert_id: int
    version_id: int = 0
    usubjid: str = ""
    query_id: int = 0

    @property
    def search(self) -> str:
        return f"?study={self.study_id}&cut={self.run_id}"


@dataclasses.dataclass(frozen=True)
class WriteCallback:
    """A callback that writes: its permission, the output that names it, its inputs and state for ``target``, and
    whether it wrote (as ``username``)."""

    name: str
    permission: str
    output: str
    inputs: Callable[[Target], dict[str, Any]]
    state: Callable[[Target], dict[str, Any]]
    wrote: Callable[[Target, str], bool] | None  # None: it only reads (``answered`` says it answered)
    answered: Callable[[Any], bool] = lambda answer: True


def _acknowledged_by(target: Target, username: str) -> bool:
    with target.engine.connect() as connection:
        row = connection.execute(select(Alert.status, Alert.acknowledged_by).where(Alert.id == target.alert_id)).one()
    return row.status != "open" and row.acknowledged_by == username


def _reviews_by(target: Target, username: str, record_type: str) -> bool:
    with target.engine.connect() as connection:
        rows = connection.execute(
            select(Review.id).where(Review.username == username, Review.record_type == record_type)
        ).all()
    return bool(rows)


def _comments_by(target: Target, username: str, record_type: str, query_status: str | None) -> bool:
    with target.engine.connect() as connection:
        rows = connection.execute(
            select(Comment.id).where(Comment.username == username, Comment.record_type == record_type,
                                     Comment.query_status.is_(None) if query_status is None
                                     else Comment.query_status == query_status)
        ).all()  # fmt: skip
    return bool(rows)


def _query_moved_by(target: Target, username: str) -> bool:
    with target.engine.connect() as connection:
        rows = connection.execute(
            select(AuditEvent.id).where(AuditEvent.action == "query_status", AuditEvent.actor == username)
        ).all()
    return bool(rows)


def _shows(output: str, text: str) -> Callable[[Any], bool]:
    component, _, prop = output.rpartition(".")
    return lambda answer: text in json.dumps(answer.outputs.get(component, {}).get(prop))


REVIEW_CALLBACKS = [
    WriteCallback(
        name="review the ticked records",
        permission="review",
        output=f"{ids.LISTING_REVIEW_MESSAGE}.children",
        inputs=lambda target: {f"{ids.LISTING_REVIEW_BUTTON}.n_clicks": 1},
        state=lambda target: {
            f"{ids.LISTING_GRID}.selectedRows": [{"AE_ID": target.version_id}],
            "url.search": target.search,
            f"{ids.LISTING_REVIEW_REFRESH}.data": 0,
        },
        wrote=lambda target, username: _reviews_by(target, username, "ae"),
    ),
    WriteCallback(
        name="review a subject and all its records",
        permission="review",
        output=f"{ids.SUBJECT_REVIEW_MESSAGE}.children",
        inputs=lambda target: {f"{ids.SUBJECT_REVIEW_BUTTON}.n_clicks": 1},
        state=lambda target: {
            "url.search": f"{target.search}&subject={target.usubjid}",
            f"{ids.SUBJECT_REVIEW_REFRESH}.data": 0,
        },
        wrote=lambda target, username: _reviews_by(target, username, "subject") and _reviews_by(target, username, "ae"),
    ),
    WriteCallback(
        name="comment on a listed record",
        permission="comment",
        output=f"{ids.LISTING_COMMENT_MESSAGE}.children",
        inputs=lambda target: {f"{ids.LISTING_COMMENT_BUTTON}.n_clicks": 1},
        state=lambda target: {
            f"{ids.LISTING_RECORD}.data": target.version_id,
            f"{ids.LISTING_COMMENT_TEXT}.value": "Onset before the first dose?",
            f"{ids.LISTING_COMMENT_QUERY}.value": [],
            "url.search": target.search,
            f"{ids.LISTING_REVIEW_REFRESH}.data": 0,
        },
        wrote=lambda target, username: _comments_by(target, username, "ae", None),
    ),
    WriteCallback(
        name="raise a data query from the listing",
        permission="query",
        output=f"{ids.LISTING_COMMENT_MESSAGE}.children",
        inputs=lambda target: {f"{ids.LISTING_COMMENT_BUTTON}.n_clicks": 1},
        state=lambda target: {
            f"{ids.LISTING_RECORD}.data": target.version_id,
            f"{ids.LISTING_COMMENT_TEXT}.value": "Please check the grade against the CRF.",
            f"{ids.LISTING_COMMENT_QUERY}.value": ["query"],
            "url.search": target.search,
            f"{ids.LISTING_REVIEW_REFRESH}.data": 0,
        },
        wrote=lambda target, username: _comments_by(target, username, "ae", "open"),
    ),
    WriteCallback(
        name="comment on a subject",
        permission="comment",
        output=f"{ids.SUBJECT_COMMENT_MESSAGE}.children",
        inputs=lambda target: {f"{ids.SUBJECT_COMMENT_BUTTON}.n_clicks": 1},
        state=lambda target: {
            f"{ids.SUBJECT_RECORD}.data": None,
            f"{ids.SUBJECT_COMMENT_TEXT}.value": "Date of death missing in DM.",
            f"{ids.SUBJECT_COMMENT_QUERY}.value": [],
            "url.search": f"{target.search}&subject={target.usubjid}",
            f"{ids.SUBJECT_REVIEW_REFRESH}.data": 0,
        },
        wrote=lambda target, username: _comments_by(target, username, "subject", None),
    ),
    WriteCallback(
        name="move a data query on",
        permission="query",
        output=f"{ids.QUERIES_MESSAGE}.children",
        inputs=lambda target: {f"{ids.QUERIES_BUTTON}.n_clicks": 1},
        state=lambda target: {
            f"{ids.QUERIES_SELECTED}.data": target.query_id,
            f"{ids.QUERIES_NEW_STATUS}.value": "answered",
            f"{ids.QUERIES_REASON}.value": "The site corrected the onset date.",
            "url.search": target.search,
            f"{ids.QUERIES_REFRESH}.data": 0,
        },
        wrote=_query_moved_by,
    ),
    WriteCallback(
        name="read the audit trail",
        permission="audit",
        output=f"{ids.AUDIT_CHAIN}.children",
        inputs=lambda target: {f"{ids.AUDIT_ACTOR}.value": None},
        state=lambda target: {},
        wrote=None,
        answered=_shows(f"{ids.AUDIT_CHAIN}.children", "chain verified"),
    ),
    WriteCallback(
        name="page the audit trail",
        permission="audit",
        output=f"{ids.AUDIT_GRID}.getRowsResponse",
        inputs=lambda target: {f"{ids.AUDIT_GRID}.getRowsRequest": {"startRow": 0, "endRow": 50}},
        state=lambda target: {f"{ids.AUDIT_FILTERS}.data": {}},
        wrote=None,
        answered=_shows(f"{ids.AUDIT_GRID}.getRowsResponse", '"action": "user_created"'),
    ),
    WriteCallback(
        name="export the audit trail",
        permission="audit",
        output=f"{ids.AUDIT_DOWNLOAD}.data",
        inputs=lambda target: {f"{ids.AUDIT_EXPORT}.n_clicks": 1},
        state=lambda target: {f"{ids.AUDIT_FILTERS}.data": {}},
        wrote=None,
        answered=_shows(f"{ids.AUDIT_DOWNLOAD}.data", "prev_hash,row_hash"),
    ),
]

WRITE_CALLBACKS = [
    WriteCallback(
        name="acknowledge an alert",
        permission="acknowledge",
        output=f"{ids.ALERTS_ACK_MESSAGE}.children",
        inputs=lambda target: {f"{ids.ALERTS_ACK_BUTTON}.n_clicks": 1},
        state=lambda target: {
            f"{ids.ALERTS_SELECTED}.data": target.alert_id,
            f"{ids.ALERTS_COMMENT}.value": "Checked against the SAE form.",
            f"{ids.ALERTS_REFRESH}.data": 0,
        },
        wrote=_acknowledged_by,
    ),
    *REVIEW_CALLBACKS,
]


@pytest.fixture
def target(demo_db, tmp_path) -> Target:
    """A copy of the demo database with a committee member, an admin and one open alert."""
    path = tmp_path / "roles.db"
    # the backup API, not a file copy: the demo database is in WAL mode and its latest pages may be in the log
    with sqlite3.connect(demo_db.url.removeprefix("sqlite:///")) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    url = f"sqlite:///{path}"
    engine = get_engine(url)
    create_user(engine, USER_OF_ROLE["committee"], PASSWORD, "committee", actor="test")
    create_user(engine, USER_OF_ROLE["admin"], PASSWORD, "admin", actor="test")
    run_id = demo_db.run_ids[-1]
    with engine.begin() as connection:
        alert_id = connection.execute(
            insert(Alert)
            .values(study_id=demo_db.study_id, rule_id="roles-test", alert_key="roles-test", open_key="roles-test",
                    kind="event", delivery="immediate", title="A test alert", summary="For the roles test.",
                    scope={}, evidence={}, view_path="/alerts", status="open", condition_active=True, run_id=run_id,
                    last_run_id=run_id)
            .returning(Alert.id)
        ).scalar_one()  # fmt: skip
        record = connection.execute(
            select(DerivedEvent.ae_version_id, DerivedEvent.usubjid).where(DerivedEvent.run_id == run_id)
            .order_by(DerivedEvent.ae_version_id).limit(1)
        ).one()  # fmt: skip
    with engine.begin() as connection:  # an open query raised by someone else, for the roles to move on
        record_key = f"{record.usubjid}|x"  # a query's record key is not checked when it is moved on
        query_id = add_comment(connection, demo_db.study_id, "ae", record_key, record.usubjid,
                               record.ae_version_id, "roles.setup", "Setup query.", raise_query=True)  # fmt: skip
    yield Target(engine, demo_db.study_id, run_id, alert_id, record.ae_version_id, record.usubjid, query_id)
    dispose_engine(url)


@pytest.fixture
def app(target, settings):
    from safety_dash.web.app import create_app

    return create_app(dataclasses.replace(settings, database_url=str(target.engine.url)), engine=target.engine)


def _client_of(app, role: str):
    client = app.server.test_client()
    assert sign_in_client(client, USER_OF_ROLE[role], PASSWORD).status_code == 302
    return client


# --- each write callback as each role --------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("callback", WRITE_CALLBACKS, ids=lambda callback: callback.name)
def test_each_write_callback_as_each_role(app, target, callback, role):
    username = USER_OF_ROLE[role]
    answer = call_callback(_client_of(app, role), app, callback.output, callback.inputs(target), callback.state(target))
    if role in PERMISSIONS[callback.permission]:
        assert answer.status == 200
        assert callback.answered(answer)
        assert callback.wrote is None or callback.wrote(target, username)
    else:
        assert answer.status == 403
        assert callback.wrote is None or not callback.wrote(target, username)


def test_every_write_callback_checks_a_permission_and_is_in_the_table(app):
    """A callback that opens a write transaction (``.begin()``) or records in the trail calls require_permission,
    and every callback that does is in :data:`WRITE_CALLBACKS`."""
    checked, unchecked = set(), set()
    for key, spec in app.callback_map.items():
        function = spec.get("callback")
        if function is None:
            continue
        source = inspect.getsource(inspect.unwrap(function))
        if "require_permission(" in source:
            checked.add(key)
        elif ".begin()" in source or "record_event(" in source:
            unchecked.add(key)
    assert unchecked == set()
    outputs = {key: key.strip(".").split("...") for key in checked}  # Dash's key of several outputs: ..a.b...c.d..
    tested = {key for key in checked for callback in WRITE_CALLBACKS if callback.output in outputs[key]}
    assert tested == checked and checked


# --- require_permission --------------------------------------------------------------------------------------------


def test_permissions_of_each_role():
    assert {role: sorted(p for p in PERMISSIONS if has_permission(role, p)) for role in ROLES} == {
        "monitor": ["acknowledge", "comment", "query", "review"],
        "committee": [],
        "admin": ["audit", "settings", "users"],
    }
    assert not has_permission("monitor", "no such permission")


PROBE_INPUT, PROBE_OUTPUT = "roles-probe-input", "roles-probe-output"


@pytest.fixture
def probe_app(settings):
    """The app with one more callback that needs ``permission`` (its input's value), inside ``guard``, which turns
    every exception into a message: the refusal must still be a 403."""
    from safety_dash.web.app import create_app
    from safety_dash.web.auth import require_permission

    app = create_app(settings)

    @app.callback(Output(PROBE_OUTPUT, "children"), Input(PROBE_INPUT, "value"))
    @guard(1)
    def probe(permission):
        user = require_permission(permission)
        return f"allowed: {user.username} ({user.role}, {type(user).__name__})"

    return app


@pytest.mark.parametrize(("permission", "status"), [("acknowledge", 200), ("users", 403), ("no such permission", 403)])
def test_require_permission_answers_403_even_inside_guard(probe_app, permission, status):
    client = probe_app.server.test_client()
    sign_in_client(client)
    answer = client.post(
        "/_dash-update-component",
        json={
            "output": f"{PROBE_OUTPUT}.children",
            "outputs": {"id": PROBE_OUTPUT, "property": "children"},
            "inputs": [{"id": PROBE_INPUT, "property": "value", "value": permission}],
            "state": [],
            "changedPropIds": [f"{PROBE_INPUT}.value"],
        },
    )
    assert answer.status_code == status
    assert answer.headers["Cache-Control"] == "no-store"
    if status == 200:
        assert "allowed: monitor1 (monitor, SignedInUser)" in answer.get_data(as_text=True)
    else:
        assert answer.get_json() == {"error": REFUSALS[permission]}


REFUSALS = {
    "users": "your role (monitor) does not allow 'users'; only admin may",
    "no such permission": "'no such permission' is not a permission",
}
