"""Listings: every AE record of the cut with its flags (treatment-emergent or outside the window, imputed onset,
grade from severity, new or changed in this cut), narrowed by the filter bar and the grid's column filters, one
page at a time, and exported whole to CSV."""

from __future__ import annotations

from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from safety_dash.web import ids
from safety_dash.web.components import (
    build_grid,
    build_page_header,
    build_panel,
    guard,
    guard_address,
    guard_rows,
    number_column,
    register_grid_refresh,
)
from safety_dash.web.listing import listing_count, listing_csv, listing_page
from safety_dash.web.pages import Page
from safety_dash.web.state import ViewState, state_href
from safety_dash.web.views import load_view

LISTING_COLUMNS = [
    {"field": "USUBJID", "headerName": "Subject", "cellClass": "cell-link", "pinned": "left", "minWidth": 175},
    {"field": "COHORT", "headerName": "Cohort", "minWidth": 130},
    {"field": "AESEQ", "headerName": "Seq", "maxWidth": 80},
    {"field": "PT", "headerName": "Preferred term", "minWidth": 190, "tooltipField": "PT"},
    {"field": "ASTDT", "headerName": "Onset", "minWidth": 110},
    number_column("ASTDY", "Day", 0, maxWidth=90),
    number_column("GRADE", "Grade", 0, maxWidth=95, cellClassRules={"cell-grade-high": "params.value >= 3"}),
    {"field": "SERIOUS", "headerName": "Serious", "maxWidth": 100,
     "cellClassRules": {"cell-flag": "params.value == 'Y'"}},
    {"field": "RELATED", "headerName": "Related", "maxWidth": 100},
    {"field": "WINDOW_LABEL", "headerName": "Window", "minWidth": 150,
     "cellClassRules": {"cell-muted": "params.value && params.value != 'treatment-emergent'"}},
    {"field": "RECORD_CHANGE", "headerName": "In this cut", "maxWidth": 120,
     "cellClassRules": {"cell-new": "params.value == 'new' || params.value == 'changed'"}},
    {"field": "FLAGS", "headerName": "Flags", "minWidth": 260, "sortable": False, "filter": False,
     "tooltipField": "FLAGS"},
    {"field": "AETERM", "headerName": "Reported term", "minWidth": 150},
    {"field": "SOC", "headerName": "System organ class", "minWidth": 200, "tooltipField": "SOC"},
    {"field": "AEENDTC", "headerName": "End", "minWidth": 110},
    {"field": "GRADE_SOURCE", "headerName": "Grade from", "maxWidth": 120},
    {"field": "AEOUT", "headerName": "Outcome", "minWidth": 150},
]  # fmt: skip


def layout():
    """The listings page."""
    return html.Div(
        [
            build_page_header(
                "Listings",
                "Every adverse event record of the cut with its flags. Filter with the bar above and the column menus.",
                actions=[
                    html.Button("Export CSV", id=ids.LISTING_EXPORT, className="button", n_clicks=0),
                    dcc.Download(id=ids.LISTING_DOWNLOAD),
                ],
            ),
            html.Div(id=ids.LISTING_ALERT),
            build_panel(
                html.Span(id=ids.LISTING_COUNT),
                [build_grid(ids.LISTING_GRID, LISTING_COLUMNS, height=640)],
                subtitle=html.Span(id=ids.LISTING_SCOPE),
            ),
        ]
    )


def describe_scope(state: ViewState) -> str:
    """The filters a listing applies, in words."""
    parts = [f"cohort {state.cohort}" if state.cohort else "all cohorts"]
    if state.min_grade:
        parts.append(f"grade ≥ {state.min_grade}")
    if state.serious:
        parts.append("serious")
    if state.related:
        parts.append("related")
    parts.append("within the risk window only" if state.window else "every record, inside the window or not")
    for label, value in (("SOC", state.soc), ("PT", state.pt), ("basket", state.basket)):
        if value:
            parts.append(f"{label} {value}")
    return " · ".join(parts) + " · click a subject to open the profile"


def _sort_model(column_state) -> list[dict]:
    ordered = sorted((c for c in column_state or [] if c.get("sort")), key=lambda c: c.get("sortIndex") or 0)
    return [{"colId": c["colId"], "sort": c["sort"]} for c in ordered]


def register_callbacks(app: Dash) -> None:
    """Count and scope from the address; paging; export; subject clicks."""

    @app.callback(
        Output(ids.LISTING_ALERT, "children"),
        Output(ids.LISTING_COUNT, "children"),
        Output(ids.LISTING_SCOPE, "children"),
        Input(ids.URL, "search"),
    )
    @guard(3)
    def update_scope(search):
        view = load_view(search)
        count = listing_count(view.key, view.state)
        return None, f"{count:,} AE records in data cut {view.cut.run_id}", describe_scope(view.state)

    @app.callback(
        Output(ids.LISTING_GRID, "getRowsResponse"),
        Input(ids.LISTING_GRID, "getRowsRequest"),
        State(ids.URL, "search"),
    )
    @guard_rows
    def page_listing(request, search):
        """One page of the listing (at most 100 rows) with the grid's sort and column filters."""
        if request is None:
            raise PreventUpdate
        view = load_view(search)
        return listing_page(view.key, view.state, request)

    register_grid_refresh(app, ids.LISTING_GRID, ids.URL)

    @app.callback(
        Output(ids.LISTING_DOWNLOAD, "data"),
        Output(ids.LISTING_ALERT, "children", allow_duplicate=True),
        Input(ids.LISTING_EXPORT, "n_clicks"),
        State(ids.URL, "search"),
        State(ids.LISTING_GRID, "filterModel"),
        State(ids.LISTING_GRID, "columnState"),
        prevent_initial_call=True,
    )
    @guard(2, alert_index=1)
    def export_csv(n_clicks, search, filter_model, column_state):
        """The whole filtered listing as a CSV file."""
        if not n_clicks:
            raise PreventUpdate
        view = load_view(search)
        text = listing_csv(view.key, view.state, filter_model, _sort_model(column_state))
        name = f"{view.cut.study_id}_cut{view.cut.run_id}_ae_listing.csv"
        return dcc.send_string(text, name, type="text/csv"), None

    @app.callback(
        Output(ids.URL, "href", allow_duplicate=True),
        Input(ids.LISTING_GRID, "cellClicked"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def open_subject(cell, search):
        """A click on a subject opens the subject's profile."""
        if (cell or {}).get("colId") != "USUBJID" or not cell.get("value"):
            return no_update
        return state_href("/subject", load_view(search).state.replace(subject=cell["value"]))


PAGE = Page(path="/listings", name="Listings", title="Listings", layout=layout, register_callbacks=register_callbacks)
