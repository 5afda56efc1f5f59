"""Dash components the pages share: ``build_*`` functions returning components, and the error guard of callbacks.

Styling lives in ``assets/style.css``; components only carry class names.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Sequence

import dash_ag_grid as dag
import flask
import flask_login
import pandas as pd
from dash import Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate
from werkzeug.exceptions import HTTPException

from safety_dash.web.auth import has_permission
from safety_dash.web.data import NoDataYet
from safety_dash.web.listing import PAGE_SIZE
from safety_dash.web.state import ViewState, state_href, state_to_search

log = logging.getLogger(__name__)

EMPTY_ROWS = {"rowData": [], "rowCount": 0}  # the answer of a grid with nothing to show
GRID_THEME = {
    "function": "themeQuartz.withParams({accentColor: '#1f4e79', fontSize: 13, "
    "headerFontSize: 12, headerFontWeight: 600, headerBackgroundColor: '#f8fafc', spacing: 6, "
    "borderColor: '#e4e7ec', wrapperBorderRadius: 10, rowHoverColor: '#f0f5fa', oddRowBackgroundColor: '#fcfcfd'})"
}


def build_alert(message: str, kind: str = "error", title: str | None = None) -> html.Div:
    """A visible message box: kind 'error', 'warning' or 'info'."""
    heading = title or {"error": "Something went wrong", "warning": "Please note", "info": "Note"}[kind]
    return html.Div(
        [html.Strong(heading), html.Span(message)],
        className=f"alert alert-{kind}",
        role="alert",
    )


def build_page_header(title: str, lede: str, actions: Sequence = ()) -> html.Div:
    """The title block of a page."""
    return html.Div(
        [html.Div([html.H1(title), html.P(lede, className="lede")]), html.Div(list(actions), className="page-actions")],
        className="page-header",
    )


def build_panel(title, children, subtitle=None, actions: Sequence = (), class_name: str = "", panel_id=None):
    """A white panel with a title line, used for every chart and grid."""
    head = [html.Div([html.H2(title, id=panel_id) if panel_id else html.H2(title)], className="panel-titles")]
    if subtitle is not None:
        head[0].children.append(html.P(subtitle, className="panel-subtitle"))
    if actions:
        head.append(html.Div(list(actions), className="panel-actions"))
    return html.Section([html.Div(head, className="panel-head"), *children], className=f"panel {class_name}".strip())


def build_card(label: str, value: str, detail: str = "", tone: str = "", href: str | None = None):
    """One figure of the overview: a label, a large value and a line of detail; a link when ``href`` is given."""
    body = [
        html.Div(label, className="card-label"),
        html.Div(value, className="card-value"),
        html.Div(detail, className="card-detail"),
    ]
    if href:
        return dcc.Link(body, href=href, className=f"card card-link {tone}".strip())
    return html.Div(body, className=f"card {tone}".strip())


def build_graph(graph_id: str, height: int = 360) -> dcc.Loading:  # height: reserved before the figure arrives
    """A graph with a loading indicator and no Plotly logo."""
    return dcc.Loading(
        dcc.Graph(
            id=graph_id,
            config={
                "displaylogo": False,
                "displayModeBar": "hover",
                "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"],
                "toImageButtonOptions": {"scale": 2},
            },
            style={"minHeight": f"{height}px"},
        ),
        type="dot",
        color="#1f4e79",
        delay_show=250,
    )


def build_grid(
    grid_id: str, columns: list[dict], height: int | None = 520, page_size: int = PAGE_SIZE, **options
) -> dag.AgGrid:
    """A grid that asks the server for one page of rows at a time (AG Grid infinite row model with paging);
    ``height`` None: as high as its rows (with ``dashGridOptions={"domLayout": "autoHeight"}``)."""
    grid_options = {
        "theme": GRID_THEME,
        "pagination": True,
        "paginationPageSize": page_size,
        "paginationPageSizeSelector": False,
        "cacheBlockSize": page_size,
        "maxBlocksInCache": 4,
        "rowBuffer": 0,
        "enableCellTextSelection": True,
        "tooltipShowDelay": 300,
        "animateRows": False,
        "suppressCellFocus": True,
        "suppressColumnVirtualisation": True,  # a page of rows and under 20 columns: draw them all
    }
    grid_options.update(options.pop("dashGridOptions", {}))
    default_column = {"resizable": True, "sortable": True, "filter": True, "minWidth": 80}
    default_column.update(options.pop("defaultColDef", {}))
    return dag.AgGrid(
        id=grid_id,
        columnDefs=columns,
        rowModelType="infinite",
        defaultColDef=default_column,
        dashGridOptions=grid_options,
        style={"height": f"{height}px", "width": "100%"} if height else {"width": "100%"},
        **options,
    )


def build_small_table(frame: pd.DataFrame, columns: dict[str, str], links: dict[str, Callable] | None = None):
    """A plain table for a handful of rows; ``links`` maps a column to a function giving each cell's href."""
    links = links or {}
    head = html.Thead(html.Tr([html.Th(label) for label in columns.values()]))
    body = []
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            text = "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
            if column in links and text:
                cells.append(html.Td(dcc.Link(text, href=links[column](row), className="table-link")))
            else:
                cells.append(html.Td(text))
        body.append(html.Tr(cells))
    return html.Div(html.Table([head, html.Tbody(body)], className="small-table"), className="table-wrap")


def build_subject_link(usubjid: str, state: ViewState) -> dcc.Link:
    """A link that opens the subject's profile with the current filters."""
    return dcc.Link(usubjid, href=state_href("/subject", state.replace(subject=usubjid)), className="table-link")


def build_chip(label: str, href: str) -> dcc.Link:
    """A selection shown as a chip; clicking it removes the selection."""
    return dcc.Link([html.Span(label), html.Span("×", className="chip-x")], href=href, className="chip", title="remove")


def error_message(error: Exception) -> tuple[str, str]:
    """The kind and text of the alert shown for ``error``: a ValueError carries a sentence for the user; anything
    else is logged with a reference the user can quote."""
    if isinstance(error, NoDataYet):
        return "info", str(error)
    if isinstance(error, ValueError):
        return "warning", str(error)
    reference = uuid.uuid4().hex[:8]
    log.exception("callback failed (reference %s)", reference)
    return "error", f"The view could not be computed (reference {reference}); the error is in the server log."


def guard(n_outputs: int, alert_index: int = 0):
    """Make a callback show an alert instead of failing: on an exception the output at ``alert_index`` becomes a
    visible alert and the others stay as they were. The wrapped callback returns its outputs, alert included
    (``None`` for no alert). A refusal (``require_permission``'s 403 or 401) stays the HTTP answer, unlogged."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except (PreventUpdate, HTTPException):
                raise
            except Exception as error:  # shown to the user, never a blank graph
                kind, message = error_message(error)
                outputs = [no_update] * n_outputs
                outputs[alert_index] = build_alert(message, kind)
                return tuple(outputs) if n_outputs > 1 else outputs[0]

        return wrapper

    return decorate


def register_grid_refresh(app, grid_id: str, url_id: str) -> None:
    """When the address changes, make the server-paged grid ``grid_id`` ask for its rows again."""
    app.clientside_callback(
        """function(search, gridId) {
            if (window.dash_ag_grid && window.dash_ag_grid.getApiAsync) {
                window.dash_ag_grid.getApiAsync(gridId).then(function(api) { api.purgeInfiniteCache(); });
            }
            return window.dash_clientside.no_update;
        }""",
        Output(grid_id, "className"),
        Input(url_id, "search"),
        State(grid_id, "id"),
        prevent_initial_call=True,
    )


def number_column(field: str, header: str, decimals: int = 1, **extra) -> dict:
    """A numeric grid column shown with ``decimals`` decimals, filtered as a number."""
    return {
        "field": field,
        "headerName": header,
        "type": "rightAligned",
        "filter": "agNumberColumnFilter",
        "valueFormatter": {"function": f"params.value == null ? '' : d3.format(',.{decimals}f')(params.value)"},
        **extra,
    }


def guard_figure(function):
    """Make a callback that returns one figure show the error's sentence in the figure instead of failing."""
    from safety_dash.web.figures import make_empty_figure

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except PreventUpdate:
            raise
        except Exception as error:  # shown in the graph
            return make_empty_figure(error_message(error)[1])

    return wrapper


def guard_address(function):
    """Make a callback that writes the address (a click or a picker that selects something, a link that opens a
    subject) do nothing instead of failing when the address it starts from cannot be read: a cut that is gone, a
    cut of another study. The page's own alert already says what is wrong with the address; anything unexpected is
    logged with a reference."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except PreventUpdate:
            raise
        except Exception as error:  # nothing to select on a view that could not be read
            error_message(error)
            raise PreventUpdate from error

    return wrapper


def guard_rows(function):
    """Make a grid's row callback answer an empty page instead of failing (the page's alert says why).

    A row callback must answer every request it gets (``EMPTY_ROWS`` when there is nothing to show), never
    ``PreventUpdate``: AG Grid's infinite row model keeps an unanswered request in flight, and once two are (its
    ``maxConcurrentDatasourceRequests``) it asks for no more rows, so the grid stays at "1 to ? of more". A refusal
    (``require_permission``'s 403 or 401) stays the HTTP answer."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (PreventUpdate, HTTPException):
            raise
        except Exception as error:  # the grid shows no rows; the reason is logged or shown by the page
            error_message(error)
            return dict(EMPTY_ROWS)

    return wrapper


def write_search(current: str | None, state: ViewState) -> str:
    """The query string of ``state`` for the address bar; PreventUpdate when the address already says it (a
    callback that echoes the address must not add a history entry)."""
    search = state_to_search(state)
    if search == (current or "") or (search == "" and current in (None, "", "?")):
        raise PreventUpdate
    return search or "?"


def build_client_grid(grid_id: str, columns: list[dict], **options) -> dag.AgGrid:
    """A grid whose (few) rows are sent whole and shown at their height: one subject's records, the runs.
    ``options`` go to the grid as they are (e.g. ``getRowId``)."""
    return dag.AgGrid(
        id=grid_id,
        columnDefs=columns,
        rowData=[],
        defaultColDef={"resizable": True, "sortable": True, "filter": True, "minWidth": 80},
        dashGridOptions={"theme": GRID_THEME, "enableCellTextSelection": True, "animateRows": False,
                         "tooltipShowDelay": 300, "suppressCellFocus": True, "domLayout": "autoHeight"},
        style={"width": "100%"},
        **options,
    )  # fmt: skip


# --- review, comments and data queries (issue 11) ------------------------------------------------------------

REVIEW_BADGES = {"reviewed": "badge-ok", "outdated": "badge-warn", "not reviewed": "badge-info"}
REVIEW_CELL_CLASSES = {"cell-ok": "params.value == 'reviewed'", "cell-warn": "params.value == 'outdated'"}
QUERY_BADGES = {"open": "badge-danger", "answered": "badge-warn", "closed": "badge-ok"}
MAX_COMMENT_CHARS = 4000  # as safety_dash.review.store keeps them


def session_can(permission: str) -> bool:
    """Whether the signed-in user of this request may ``permission`` (to show or hide a form; the callback that
    writes checks again with ``require_permission``). False outside a request or signed out."""
    if not flask.has_request_context():
        return False
    user = flask_login.current_user
    return bool(getattr(user, "is_authenticated", False)) and has_permission(user.role, permission)


def client_address() -> str | None:
    """The address of this request's client, as the audit trail records it (as the sign-in does)."""
    return (flask.request.remote_addr or "")[:64] if flask.has_request_context() else None


def build_review_badge(status: str | None) -> html.Span:
    """A record's review status as a badge."""
    status = status or "not reviewed"
    return html.Span(status, className=f"badge {REVIEW_BADGES.get(status, 'badge-info')}")


def build_review_filter(
    counts: dict[str, int], active: str, href_of: Callable[[str], str], labels: dict[str, str]
) -> html.Nav:
    """The review filter as links with their counts (``counts`` by filter key); the ``active`` one marked."""
    links = [
        dcc.Link([html.Span(label), html.Span(f"{counts.get(key, 0):,}", className="review-filter-count")],
                 href=href_of(key), className="review-filter-link" + (" active" if key == active else ""))
        for key, label in labels.items()
    ]  # fmt: skip
    return html.Nav(links, className="review-filter", **{"aria-label": "Review status"})


def build_comment_list(comments: pd.DataFrame, current_versions: dict | None = None, labels: dict | None = None):
    """Comments newest first: author, time (UTC), the record version, the data query's status and the text.
    ``current_versions`` maps (record_type, record_key) to the version in the cut shown, so a comment on an earlier
    version says so; ``labels`` the same keys to a record's name (on a profile: which AE record)."""
    if comments.empty:
        return html.P("No comments yet.", className="muted small")
    items = []
    for row in comments.itertuples(index=False):
        key = (row.record_type, row.record_key)
        current = (current_versions or {}).get(key)
        version = f"version {int(row.version_id)}" + (" (an earlier version)" if current and current != row.version_id
                                                       else "")  # fmt: skip
        head = [html.Strong(row.username), html.Span(f"{pd.Timestamp(row.created_at):%Y-%m-%d %H:%M} UTC"),
                html.Span(version)]  # fmt: skip
        if labels and key in labels:
            head.insert(0, html.Span(labels[key], className="comment-record"))
        if row.query_status:
            head.append(html.Span(f"query {row.query_status}", className=f"badge {QUERY_BADGES[row.query_status]}"))
        items.append(html.Li([html.Div(head, className="comment-head"), html.P(row.text, className="comment-text")],
                             className="comment"))  # fmt: skip
    return html.Ul(items, className="comment-list")


def build_comment_form(form_id: str, text_id: str, query_id: str, button_id: str, hidden: bool) -> html.Div:
    """The comment box, "raise a data query to the site" and the button (hidden for roles that cannot comment)."""
    return html.Div(
        [
            dcc.Textarea(id=text_id, placeholder="What you noticed, or what the site should check",
                         maxLength=MAX_COMMENT_CHARS, className="ack-comment"),
            dcc.Checklist(id=query_id, options=[{"label": " Raise a data query to the site", "value": "query"}],
                          value=[], className="query-check"),
            html.Div(html.Button("Add comment", id=button_id, className="button", n_clicks=0)),
        ],
        id=form_id,
        className="ack-form",
        hidden=hidden,
    )  # fmt: skip


def register_grid_purge(app, grid_id: str, trigger_id: str, trigger_property: str = "data") -> None:
    """Make the server-paged grid ``grid_id`` ask for its rows again when ``trigger_id``'s property changes (a
    refresh counter after a write)."""
    app.clientside_callback(
        """function(_value, gridId) {
            if (window.dash_ag_grid && window.dash_ag_grid.getApiAsync) {
                window.dash_ag_grid.getApiAsync(gridId).then(function(api) { api.purgeInfiniteCache(); });
            }
            return window.dash_clientside.no_update;
        }""",
        Output(grid_id, "className", allow_duplicate=True),
        Input(trigger_id, trigger_property),
        State(grid_id, "id"),
        prevent_initial_call=True,
    )


def register_subject_click(app, graph_id: str) -> None:
    """A click on a point of graph ``graph_id`` whose ``customdata`` is a USUBJID opens that subject's profile with
    the current filters (onset distribution, eDISH, lab box plots)."""
    from safety_dash.web import ids
    from safety_dash.web.views import load_view  # the views stand on this module: read them when clicked

    @app.callback(
        Output(ids.URL, "href", allow_duplicate=True),
        Input(graph_id, "clickData"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def open_subject(click, search):
        points = (click or {}).get("points") or []
        subject = points[0].get("customdata") if points else None
        if not isinstance(subject, str):
            return no_update
        return state_href("/subject", load_view(search).state.replace(subject=subject))
