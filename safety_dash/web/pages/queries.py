"""Data queries: the queue of the study's queries to the sites (comments that raised a query), open, answered or
closed, each with its record, who raised it and when, and its last change. A monitor moves a query on (open ->
answered -> closed, or back to open) with a reason, which the audit trail keeps with the status before and after;
committee members and admins read the queue.
"""

from __future__ import annotations

import dash_ag_grid as dag
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from safety_dash.views.review import load_query_history, load_query_queue, next_query_statuses, save_query_status
from safety_dash.web import ids
from safety_dash.web.auth import require_permission
from safety_dash.web.components import (
    GRID_THEME,
    QUERY_BADGES,
    build_alert,
    build_page_header,
    build_panel,
    build_small_table,
    build_subject_link,
    client_address,
    error_message,
    guard,
    session_can,
)
from safety_dash.web.pages import Page
from safety_dash.web.views import load_view

STATUS_OPTIONS = [
    {"label": "Open", "value": "open"},
    {"label": "Answered", "value": "answered"},
    {"label": "Closed", "value": "closed"},
    {"label": "All", "value": "all"},
]
QUERY_COLUMNS = [
    {"field": "comment_id", "headerName": "#", "maxWidth": 70, "type": "rightAligned"},
    {"field": "usubjid", "headerName": "Subject", "minWidth": 170},
    {"field": "record", "headerName": "Record", "minWidth": 170, "tooltipField": "record"},
    {"field": "text", "headerName": "Query", "minWidth": 260, "flex": 3, "tooltipField": "text",
     "cellClass": "cell-link"},
    {"field": "query_status", "headerName": "Status", "maxWidth": 115,
     "cellClassRules": {"cell-flag": "params.value == 'open'", "cell-new": "params.value == 'answered'",
                        "cell-ok": "params.value == 'closed'"}},
    {"field": "raised_by", "headerName": "Raised by", "minWidth": 110},
    {"field": "raised_at", "headerName": "Raised (UTC)", "minWidth": 135},
    {"field": "changed_by", "headerName": "Last change by", "minWidth": 120},
    {"field": "changed_at", "headerName": "Last change (UTC)", "minWidth": 140},
    {"field": "reason", "headerName": "Reason", "minWidth": 180, "flex": 2, "tooltipField": "reason"},
]  # fmt: skip
NO_SELECTION = "Click a query in the list to see it and move it on."
READ_ONLY_NOTE = "Your role reads data queries; monitors move them on."
STATUS_WORDS = {"answered": "Answered by the site", "closed": "Closed", "open": "Open again"}


def layout():
    """The data queries page; the form only for a role that may move a query on."""
    status = dcc.RadioItems(id=ids.QUERIES_STATUS, options=STATUS_OPTIONS, value="open", inline=True,
                            className="segmented")  # fmt: skip
    grid = dag.AgGrid(
        id=ids.QUERIES_GRID, columnDefs=QUERY_COLUMNS, rowData=[], getRowId="params.data.row_id",
        defaultColDef={"resizable": True, "sortable": True, "filter": True, "minWidth": 70},
        dashGridOptions={"theme": GRID_THEME, "enableCellTextSelection": True, "animateRows": False,
                         "tooltipShowDelay": 300, "suppressCellFocus": True,
                         "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True}},
        style={"height": "360px", "width": "100%"},
    )  # fmt: skip
    form = html.Div(
        [
            html.Label("New status", htmlFor=ids.QUERIES_NEW_STATUS, className="field-label"),
            dcc.Dropdown(id=ids.QUERIES_NEW_STATUS, clearable=False, searchable=False),
            html.Label("Reason", htmlFor=ids.QUERIES_REASON, className="field-label"),
            dcc.Textarea(id=ids.QUERIES_REASON, placeholder="The site's answer, or why the query is closed (required)",
                         maxLength=2000, className="ack-comment"),
            html.Div(html.Button("Change status", id=ids.QUERIES_BUTTON, className="button", n_clicks=0)),
        ],
        id=ids.QUERIES_FORM,
        className="ack-form",
        hidden=True,
    )  # fmt: skip
    return html.Div(
        [
            build_page_header(
                "Data queries",
                "Questions to the sites raised from a comment on an AE record or a subject. Click a query to see "
                "its history; monitors record the site's answer and close it, always with a reason.",
                actions=[html.Div([html.Label("Status", className="field-label"), status], className="field")],
            ),
            html.Div(id=ids.QUERIES_ALERT),
            dcc.Store(id=ids.QUERIES_SELECTED),
            dcc.Store(id=ids.QUERIES_REFRESH, data=0),
            build_panel("Queries of the study", [grid], subtitle=html.Span(id=ids.QUERIES_COUNT)),
            build_panel(
                html.Span(NO_SELECTION, id=ids.QUERIES_DETAIL_TITLE),
                [
                    html.Div(
                        [
                            html.Div(id=ids.QUERIES_DETAIL),
                            html.Aside(
                                [html.Div(id=ids.QUERIES_MESSAGE), html.Div(id=ids.QUERIES_NOTE), form],
                                className="ack-side",
                            ),
                        ],
                        className="alert-detail-body",
                    )
                ],
            ),
        ]
    )


def query_rows(queue) -> list[dict]:
    """The grid's rows: one per query, plain JSON values."""
    rows = queue.astype(object).where(queue.notna(), None).to_dict("records")
    for row in rows:
        row["comment_id"] = int(row["comment_id"])
        row["version_id"] = int(row["version_id"])
        row["row_id"] = str(row["comment_id"])
    return rows


def build_query_detail(query: dict, history, state) -> list:
    """One query: its record and subject, who raised it, its text, its status and every change with the reason."""
    badge = html.Span(query["query_status"], className=f"badge {QUERY_BADGES.get(query['query_status'], '')}")
    facts = html.Div(
        [
            html.Div([html.Span("Subject", className="fact-label"), build_subject_link(query["usubjid"], state)],
                     className="fact"),
            html.Div([html.Span("Record", className="fact-label"),
                      html.Span(f"{query['record']} · version {query['version_id']}", className="fact-value")],
                     className="fact"),
            html.Div([html.Span("Raised", className="fact-label"),
                      html.Span(f"{query['raised_by']} · {query['raised_at']} UTC", className="fact-value")],
                     className="fact"),
            html.Div([html.Span("Status", className="fact-label"), badge], className="fact"),
        ],
        className="facts facts-4",
    )  # fmt: skip
    children = [facts, html.Blockquote(query["text"], className="ack-comment-text query-text")]
    if not history.empty:
        children += [
            html.H3("History", className="minor"),
            build_small_table(history, {"when": "When (UTC)", "who": "Who", "from": "From", "to": "To",
                                        "reason": "Reason"}),
        ]  # fmt: skip
    return children


def _find_query(view, comment_id) -> dict | None:
    queue = load_query_queue(view.context.engine, view.cut.study_id)
    found = queue.loc[queue["comment_id"] == int(comment_id)]
    return query_rows(found)[0] if not found.empty else None


def register_callbacks(app: Dash) -> None:
    """The queue from the study and the status; a selected query's detail and history; moving it on."""

    @app.callback(
        Output(ids.QUERIES_ALERT, "children"),
        Output(ids.QUERIES_GRID, "rowData"),
        Output(ids.QUERIES_COUNT, "children"),
        Input(ids.URL, "search"),
        Input(ids.QUERIES_STATUS, "value"),
        Input(ids.QUERIES_REFRESH, "data"),
    )
    @guard(3)
    def update_queue(search, status, _refresh):
        view = load_view(search)
        wanted = None if status in (None, "all") else status
        queue = load_query_queue(view.context.engine, view.cut.study_id, wanted)
        label = "" if wanted is None else f"{wanted} "
        count = f"{len(queue)} {label}quer{'y' if len(queue) == 1 else 'ies'} of {view.cut.study_id}, newest first"
        return None, query_rows(queue), count

    @app.callback(
        Output(ids.QUERIES_SELECTED, "data"),
        Input(ids.QUERIES_GRID, "selectedRows"),
        prevent_initial_call=True,
    )
    def select_query(rows):
        """Clicking a query selects it; a selection lost to a refresh keeps the query shown."""
        if not rows or not isinstance(rows[0], dict) or rows[0].get("comment_id") is None:
            raise PreventUpdate
        return int(rows[0]["comment_id"])

    @app.callback(
        Output(ids.QUERIES_DETAIL_TITLE, "children"),
        Output(ids.QUERIES_DETAIL, "children"),
        Output(ids.QUERIES_FORM, "hidden"),
        Output(ids.QUERIES_NEW_STATUS, "options"),
        Output(ids.QUERIES_NEW_STATUS, "value"),
        Output(ids.QUERIES_NOTE, "children"),
        Input(ids.QUERIES_SELECTED, "data"),
        Input(ids.QUERIES_REFRESH, "data"),
        Input(ids.URL, "search"),
    )
    @guard(6, alert_index=1)
    def show_query(comment_id, _refresh, search):
        if comment_id is None:
            return NO_SELECTION, None, True, [], None, None
        view = load_view(search)
        query = _find_query(view, comment_id)
        if query is None:
            return NO_SELECTION, None, True, [], None, None
        history = load_query_history(view.context.engine, view.cut.study_id, int(comment_id))
        allowed = next_query_statuses(query["query_status"])
        options = [{"label": STATUS_WORDS[status], "value": status} for status in allowed]
        can_move = session_can("query")
        note = None if can_move else html.P(READ_ONLY_NOTE, className="read-only-note")
        title = f"Query {query['comment_id']} on {query['usubjid']}"
        detail = build_query_detail(query, history, view.state)
        return title, detail, not can_move, options, allowed[0] if allowed else None, note

    @app.callback(
        Output(ids.QUERIES_MESSAGE, "children", allow_duplicate=True),
        Output(ids.QUERIES_REASON, "value", allow_duplicate=True),
        Input(ids.QUERIES_SELECTED, "data"),
        prevent_initial_call=True,
    )
    def clear_message(_comment_id):
        """Another query: no message of the previous one, an empty reason."""
        return None, ""

    @app.callback(
        Output(ids.QUERIES_MESSAGE, "children"),
        Output(ids.QUERIES_REFRESH, "data"),
        Output(ids.QUERIES_REASON, "value"),
        Input(ids.QUERIES_BUTTON, "n_clicks"),
        State(ids.QUERIES_SELECTED, "data"),
        State(ids.QUERIES_NEW_STATUS, "value"),
        State(ids.QUERIES_REASON, "value"),
        State(ids.URL, "search"),
        State(ids.QUERIES_REFRESH, "data"),
        prevent_initial_call=True,
    )
    def change_status(n_clicks, comment_id, status, reason, search, refresh):
        """Move the selected query to the chosen status with the reason, as the signed-in monitor."""
        user = require_permission("query")  # 403 for any other role, whatever the browser shows
        if not n_clicks or ctx.triggered_id != ids.QUERIES_BUTTON:
            raise PreventUpdate
        try:
            view = load_view(search)
            save_query_status(view.context.engine, view.cut.study_id, comment_id, status, user.username,
                              reason or "", client_address())  # fmt: skip
        except Exception as error:  # a sentence for the user (ValueError) or a logged reference
            kind, message = error_message(error)
            return build_alert(message, kind, title="Not changed"), no_update, no_update
        text = f"Query {int(comment_id)} is now {status}."
        return build_alert(text, "info", title="Done"), (refresh or 0) + 1, ""


PAGE = Page(path="/queries", name="Queries", title="Data queries", layout=layout, register_callbacks=register_callbacks)
