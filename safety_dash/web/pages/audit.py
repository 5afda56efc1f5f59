"""Audit trail (admins only): every row of the append-only trail, newest first, filtered by who, what, study, day
and text, one page at a time; whether the hash chain verifies (:func:`~safety_dash.audit.verify_chain`); and the
filtered rows exported to CSV with formulas neutralised, as ``audit export`` writes them.

Other roles see a sentence instead of the page, and every callback of the page refuses them on the server (403),
whatever the browser asks.
"""

from __future__ import annotations

import datetime as dt

import flask
from dash import Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate

from safety_dash.audit import ACTIONS, record_event
from safety_dash.views.review import audit_csv, check_audit_chain, filter_audit_events, load_audit_events
from safety_dash.web import ids
from safety_dash.web.auth import require_permission
from safety_dash.web.components import (
    build_alert,
    build_grid,
    build_page_header,
    build_panel,
    client_address,
    guard,
    guard_rows,
    number_column,
    register_grid_purge,
    session_can,
)
from safety_dash.web.data import current_context
from safety_dash.web.listing import page_frame
from safety_dash.web.pages import Page

AUDIT_COLUMNS = [
    number_column("id", "#", 0, maxWidth=85),
    {"field": "occurred_at", "headerName": "When (UTC)", "minWidth": 215},
    {"field": "actor", "headerName": "Who", "minWidth": 110},
    {"field": "action", "headerName": "Action", "minWidth": 140},
    {"field": "object_type", "headerName": "Object", "maxWidth": 110},
    {"field": "object_id", "headerName": "Object id", "minWidth": 200, "tooltipField": "object_id"},
    {"field": "study_id", "headerName": "Study", "minWidth": 120},
    {"field": "before", "headerName": "Before", "minWidth": 200, "tooltipField": "before"},
    {"field": "after", "headerName": "After", "minWidth": 260, "tooltipField": "after"},
    {"field": "reason", "headerName": "Reason", "minWidth": 160, "tooltipField": "reason"},
    {"field": "address", "headerName": "Address", "minWidth": 120},
    {"field": "row_hash", "headerName": "Row hash", "minWidth": 160, "tooltipField": "row_hash"},
]
FILTER_KEYS = ("actor", "action", "study", "since", "until", "text")
REFUSAL = "The audit trail is for administrators. Ask one to export it for you."


def _field(label: str, control, class_name: str = "") -> html.Div:
    return html.Div([html.Label(label, className="field-label"), control], className=f"field {class_name}".strip())


def build_audit_filters() -> html.Div:
    """Who, what, which study, from and to which day (UTC), and text anywhere in the object, values or reason."""
    date = {"display_format": "YYYY-MM-DD", "clearable": True, "first_day_of_week": 1}
    return html.Div(
        [
            _field("Who", dcc.Dropdown(id=ids.AUDIT_ACTOR, placeholder="Anyone"), "field-study"),
            _field("Action", dcc.Dropdown(id=ids.AUDIT_ACTION, placeholder="Any action",
                                          options=[{"label": a, "value": a} for a in ACTIONS]), "field-study"),
            _field("Study", dcc.Dropdown(id=ids.AUDIT_STUDY, placeholder="Any study"), "field-study"),
            _field("From (UTC)", dcc.DatePickerSingle(id=ids.AUDIT_SINCE, placeholder="first day", **date)),
            _field("To (UTC)", dcc.DatePickerSingle(id=ids.AUDIT_UNTIL, placeholder="last day", **date)),
            _field("Text", dcc.Input(id=ids.AUDIT_TEXT, type="search", debounce=True, className="text-input",
                                     placeholder="in object id, values, reason")),
        ],
        className="controls audit-filters",
    )  # fmt: skip


def layout():
    """The audit page for admins; a sentence for any other role (checked again by every callback)."""
    if flask.has_request_context() and not session_can("audit"):
        return html.Div([build_page_header("Audit trail", "Who did what, when, in safety-dash."),
                         build_alert(REFUSAL, "warning", title="Administrators only")])  # fmt: skip
    return html.Div(
        [
            build_page_header(
                "Audit trail",
                "Every action recorded in safety-dash, newest first: sign-ins, reviews, comments, data queries, "
                "acknowledgements, user changes, ingestion. Rows are only ever added; each is chained to the one "
                "before by its hash.",
                actions=[
                    html.Button("Export CSV", id=ids.AUDIT_EXPORT, className="button", n_clicks=0),
                    dcc.Download(id=ids.AUDIT_DOWNLOAD),
                ],
            ),
            html.Div(id=ids.AUDIT_ALERT),
            html.Div(id=ids.AUDIT_CHAIN, className="audit-chain"),
            dcc.Store(id=ids.AUDIT_FILTERS, data={}),
            build_audit_filters(),
            build_panel(
                html.Span(id=ids.AUDIT_COUNT),
                [build_grid(ids.AUDIT_GRID, AUDIT_COLUMNS, height=640)],
                subtitle="hover a cell for its whole text · the export holds the filtered rows, in trail order",
            ),
        ]
    )


def read_filters(values: dict | None) -> dict:
    """The filters as :func:`~safety_dash.views.review.filter_audit_events` takes them; an unreadable day is
    dropped."""
    values = values or {}

    def day(text):
        try:
            return dt.date.fromisoformat(str(text)[:10]) if text else None
        except ValueError:
            return None

    return {
        "actor": values.get("actor") or None,
        "action": values.get("action") or None,
        "study_id": values.get("study") or None,
        "since": day(values.get("since")),
        "until": day(values.get("until")),
        "text": values.get("text") or None,
    }


def build_chain_status(checked: int, chain_break) -> html.Div:
    """Whether the trail's hash chain verifies, in a line an auditor reads."""
    if chain_break is None:
        badge = html.Span("chain verified", className="badge badge-ok")
        text = f" all {checked:,} rows chain to the one before; none was altered, removed or inserted"
    else:
        badge = html.Span("chain broken", className="badge badge-danger")
        text = f" at row {chain_break.row_id}: {chain_break.reason} ({checked:,} rows before it verify)"
    return html.Div([badge, html.Span(text, className="muted small")])


def _filtered(filters: dict | None):
    return filter_audit_events(load_audit_events(current_context().engine), **read_filters(filters))


def register_callbacks(app: Dash) -> None:
    """Filters to the store; chain and count; the grid's pages; the export. Every one refuses other roles."""

    @app.callback(
        Output(ids.AUDIT_ALERT, "children"),
        Output(ids.AUDIT_FILTERS, "data"),
        Output(ids.AUDIT_CHAIN, "children"),
        Output(ids.AUDIT_COUNT, "children"),
        Output(ids.AUDIT_ACTOR, "options"),
        Output(ids.AUDIT_STUDY, "options"),
        Input(ids.AUDIT_ACTOR, "value"),
        Input(ids.AUDIT_ACTION, "value"),
        Input(ids.AUDIT_STUDY, "value"),
        Input(ids.AUDIT_SINCE, "date"),
        Input(ids.AUDIT_UNTIL, "date"),
        Input(ids.AUDIT_TEXT, "value"),
    )
    @guard(6)
    def update_trail(*values):
        """The filters, whether the chain verifies, how many rows match, and who and which studies are in it."""
        require_permission("audit")
        filters = dict(zip(FILTER_KEYS, values, strict=True))
        engine = current_context().engine
        events = load_audit_events(engine)
        shown = filter_audit_events(events, **read_filters(filters))
        count = f"{len(shown):,} of {len(events):,} rows of the trail"
        actors = [{"label": a, "value": a} for a in sorted(events["actor"].dropna().unique())]
        studies = [{"label": s, "value": s} for s in sorted(events["study_id"].dropna().unique())]
        return None, filters, build_chain_status(*check_audit_chain(engine)), count, actors, studies

    @app.callback(
        Output(ids.AUDIT_GRID, "getRowsResponse"),
        Input(ids.AUDIT_GRID, "getRowsRequest"),
        State(ids.AUDIT_FILTERS, "data"),
    )
    @guard_rows
    def page_trail(request, filters):
        """One page of the filtered trail (at most 100 rows) with the grid's sort and column filters."""
        require_permission("audit")
        if request is None:
            raise PreventUpdate
        return page_frame(_filtered(filters), request)

    register_grid_purge(app, ids.AUDIT_GRID, ids.AUDIT_FILTERS)

    @app.callback(
        Output(ids.AUDIT_DOWNLOAD, "data"),
        Output(ids.AUDIT_ALERT, "children", allow_duplicate=True),
        Input(ids.AUDIT_EXPORT, "n_clicks"),
        State(ids.AUDIT_FILTERS, "data"),
        prevent_initial_call=True,
    )
    @guard(2, alert_index=1)
    def export_trail(n_clicks, filters):
        """The filtered rows as CSV, in trail order (formulas neutralised)."""
        user = require_permission("audit")
        if not n_clicks:
            raise PreventUpdate
        rows = _filtered(filters).sort_values("id")
        name = f"audit_trail_{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.csv"
        text = audit_csv(rows)
        with current_context().engine.begin() as connection:  # who took a copy of the trail, and of what
            record_event(connection, user.username, "audit_exported", "audit_trail", name,
                         after={"rows": len(rows), "filters": filters}, address=client_address())  # fmt: skip
        return dcc.send_string(text, name, type="text/csv"), None


PAGE = Page(
    path="/audit",
    name="Audit",
    title="Audit trail",
    layout=layout,
    register_callbacks=register_callbacks,
    permission="audit",
)
