"""AE explorer: SOC -> PT incidence, stacked by worst grade, and incidence / EAIR by cohort with their intervals.

Clicking a SOC narrows the PT chart and the grid to it; clicking a PT (bar or grid cell) opens its listing and
its time to onset below. Every click writes the address, so the browser's back button and a shared link work.
"""

from __future__ import annotations

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.web import ids
from safety_dash.web.components import (
    EMPTY_ROWS,
    REVIEW_CELL_CLASSES,
    build_graph,
    build_grid,
    build_page_header,
    build_panel,
    guard,
    guard_address,
    guard_figure,
    guard_rows,
    number_column,
    register_grid_refresh,
    write_search,
)
from safety_dash.web.figures import make_cumulative_incidence_figure, make_empty_figure, make_grade_bar_figure
from safety_dash.web.listing import listing_page, page_frame
from safety_dash.web.pages import Page
from safety_dash.web.state import select_pt, select_soc, state_href
from safety_dash.web.views import (
    GRADE_BUCKETS,
    load_onset_curve,
    load_pt_grades,
    load_rate_rows,
    load_soc_grades,
    load_view,
    soc_of_pt,
)

RATE_COLUMNS = [
    {"field": "pt", "headerName": "Preferred term", "pinned": "left", "minWidth": 190, "cellClass": "cell-link",
     "tooltipField": "pt"},
    {"field": "group", "headerName": "Cohort", "minWidth": 130},
    number_column("n_with_event", "n", 0, maxWidth=90),
    number_column("n_subjects", "N", 0, maxWidth=90),
    number_column("incidence_pct", "Incidence %", 1),
    {"field": "incidence_ci", "headerName": "95% CI", "sortable": False, "filter": False, "minWidth": 110},
    number_column("eair_per_100py", "EAIR /100 PY", 1),
    {"field": "eair_ci", "headerName": "95% CI (exact)", "sortable": False, "filter": False, "minWidth": 120},
    number_column("n_events", "Events", 0, maxWidth=100),
    number_column("patient_years_at_risk", "PY at risk", 1),
    number_column("median_onset_day", "Median onset day", 0),
    {"field": "soc", "headerName": "System organ class", "minWidth": 220, "tooltipField": "soc"},
]  # fmt: skip
TERM_LISTING_COLUMNS = [
    {"field": "USUBJID", "headerName": "Subject", "cellClass": "cell-link", "minWidth": 170, "pinned": "left"},
    {"field": "REVIEW_STATUS", "headerName": "Review", "minWidth": 120, "maxWidth": 130,
     "cellClassRules": REVIEW_CELL_CLASSES, "tooltipField": "REVIEWED_BY"},
    {"field": "COMMENTS", "headerName": "Comments", "minWidth": 110, "maxWidth": 150, "tooltipField": "LAST_COMMENT",
     "cellClassRules": {"cell-flag": "params.value && params.value.includes('open')"}},
    {"field": "COHORT", "headerName": "Cohort"},
    {"field": "AETERM", "headerName": "Reported term"},
    {"field": "ASTDT", "headerName": "Onset"},
    number_column("ASTDY", "Day", 0, maxWidth=90),
    number_column("GRADE", "Grade", 0, maxWidth=95, cellClassRules={"cell-grade-high": "params.value >= 3"}),
    {"field": "SERIOUS", "headerName": "Serious", "maxWidth": 100},
    {"field": "AEOUT", "headerName": "Outcome"},
    {"field": "FLAGS", "headerName": "Flags", "minWidth": 220, "sortable": False, "filter": False,
     "tooltipField": "FLAGS"},
]  # fmt: skip


def layout():
    """The explorer page."""
    return html.Div(
        [
            build_page_header(
                "AE explorer",
                "Incidence by system organ class and preferred term, stacked by each subject's worst grade. "
                "Click a SOC to narrow the terms, a term to open its listing and time to onset.",
            ),
            html.Div(id=ids.EXPLORER_ALERT),
            html.Div(
                [
                    build_panel(
                        "System organ classes",
                        [build_graph(ids.EXPLORER_SOC_GRAPH, 420)],
                        subtitle="% of subjects with a qualifying event in the SOC · click to select",
                    ),
                    build_panel(
                        "Preferred terms",
                        [build_graph(ids.EXPLORER_PT_GRAPH, 420)],
                        subtitle=html.Span(id=ids.EXPLORER_PT_TITLE),
                        actions=[dcc.Link("All SOCs", id=ids.EXPLORER_CLEAR_SOC, href="", className="ghost-button")],
                    ),
                ],
                className="grid-2",
            ),
            build_panel(
                "Incidence and exposure-adjusted incidence by cohort",
                [build_grid(ids.EXPLORER_GRID, RATE_COLUMNS, height=470)],
                subtitle=html.Span(id=ids.EXPLORER_GRID_TITLE),
            ),
            html.Div(
                [
                    build_panel(
                        "Time to onset",
                        [build_graph(ids.EXPLORER_TERM_ONSET, 340)],
                        subtitle="cumulative incidence of the first event (Aalen–Johansen, death competing)",
                        actions=[
                            dcc.Link("By cohort →", id=ids.EXPLORER_ONSET_LINK, href="/onset", className="ghost-button")
                        ],
                    ),
                    build_panel(
                        "Listing",
                        [build_grid(ids.EXPLORER_TERM_LISTING, TERM_LISTING_COLUMNS, height=380, page_size=20)],
                        subtitle="every record of the term with its review and comments (hover them) · click a "
                        "subject to open its profile",
                        actions=[
                            dcc.Link(
                                "All listings →",
                                id=ids.EXPLORER_LISTING_LINK,
                                href="/listings",
                                className="ghost-button",
                            )
                        ],
                        class_name="span-2",
                    ),
                ],
                id=ids.EXPLORER_TERM_PANEL,
                className="grid-3 term-panel",
                hidden=True,
            ),
        ]
    )


def _clicked_term(click_data) -> str | None:
    points = (click_data or {}).get("points") or []
    custom = points[0].get("customdata") if points else None
    return custom[0] if isinstance(custom, list) and custom else None


def register_callbacks(app: Dash) -> None:
    """Charts, grid paging, clicks to the address, and the term panel."""

    @app.callback(
        Output(ids.EXPLORER_ALERT, "children"),
        Output(ids.EXPLORER_SOC_GRAPH, "figure"),
        Output(ids.EXPLORER_PT_GRAPH, "figure"),
        Output(ids.EXPLORER_PT_TITLE, "children"),
        Output(ids.EXPLORER_GRID_TITLE, "children"),
        Output(ids.EXPLORER_CLEAR_SOC, "href"),
        Output(ids.EXPLORER_TERM_PANEL, "hidden"),
        Output(ids.EXPLORER_ONSET_LINK, "href"),
        Output(ids.EXPLORER_LISTING_LINK, "href"),
        Input(ids.URL, "search"),
    )
    @guard(9)
    def update_charts(search):
        view = load_view(search)
        state, key = view.state, view.key
        filters = (state.cohort, state.min_grade, state.serious, state.related)
        socs = load_soc_grades(key, *filters)
        pts = load_pt_grades(key, *filters, state.soc)
        scope = state.soc or "all SOCs (the 30 most frequent terms)"
        pt_title = f"{scope} · % of subjects · click a term to open it"
        population = state.cohort or "every cohort and all cohorts together"
        grid_title = (
            f"{state.soc or 'All SOCs'} · {population} · Clopper–Pearson and exact (Garwood) 95% intervals"
            " · click a term to open it"
        )
        return (
            None,
            make_grade_bar_figure(socs, GRADE_BUCKETS, state.soc),
            make_grade_bar_figure(pts, GRADE_BUCKETS, state.pt),
            pt_title,
            grid_title,
            state_href("/explorer", state.replace(soc=None, pt=None)),
            not state.pt,
            state_href("/onset", state),
            state_href("/listings", state),
        )

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.EXPLORER_SOC_GRAPH, "clickData"),
        Input(ids.EXPLORER_PT_GRAPH, "clickData"),
        Input(ids.EXPLORER_GRID, "cellClicked"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def select_from_click(soc_click, pt_click, cell, search):
        """A click on a SOC bar, a PT bar or a term in the grid selects it (clicking it again clears it); the new
        address names the study and cut, so it can be shared as it is."""
        view = load_view(search)
        if ctx.triggered_id == ids.EXPLORER_SOC_GRAPH:
            soc = _clicked_term(soc_click)
            if soc is None:
                raise PreventUpdate
            return write_search(search, select_soc(view.state, soc))
        if ctx.triggered_id == ids.EXPLORER_PT_GRAPH:
            pt = _clicked_term(pt_click)
        elif (cell or {}).get("colId") == "pt":
            pt = cell.get("value")
        else:
            raise PreventUpdate
        if not pt:
            raise PreventUpdate
        return write_search(search, select_pt(view.state, pt, soc_of_pt(view.key, pt)))

    @app.callback(
        Output(ids.EXPLORER_GRID, "getRowsResponse"),
        Input(ids.EXPLORER_GRID, "getRowsRequest"),
        State(ids.URL, "search"),
    )
    @guard_rows
    def page_rate_rows(request, search):
        """One page of PT x cohort rate rows."""
        if request is None:
            raise PreventUpdate
        view = load_view(search)
        return page_frame(load_rate_rows(view.key, view.state), request)

    register_grid_refresh(app, ids.EXPLORER_GRID, ids.URL)

    @app.callback(
        Output(ids.EXPLORER_TERM_LISTING, "getRowsResponse"),
        Input(ids.EXPLORER_TERM_LISTING, "getRowsRequest"),
        State(ids.URL, "search"),
    )
    @guard_rows
    def page_term_listing(request, search):
        """One page of the selected term's records; no rows while no term is selected (the panel is hidden, but its
        grid still asks, and a request left unanswered stalls the grid: see :func:`guard_rows`)."""
        if request is None:
            raise PreventUpdate
        view = load_view(search)
        if not view.state.pt:
            return dict(EMPTY_ROWS)
        return listing_page(view.key, view.state.replace(soc=None, basket=None), request)

    register_grid_refresh(app, ids.EXPLORER_TERM_LISTING, ids.URL)

    @app.callback(Output(ids.EXPLORER_TERM_ONSET, "figure"), Input(ids.URL, "search"))
    @guard_figure
    def update_term_onset(search):
        """Cumulative incidence of the selected term by cohort."""
        view = load_view(search)
        state = view.state
        if not state.pt:
            return make_empty_figure("Select a term")
        # One curve with its interval here (the selected cohort, else all cohorts); every cohort on the Onset page.
        curve = load_onset_curve(view.key, "pt", state.pt, state.min_grade, state.serious, state.related, state.cohort)
        return make_cumulative_incidence_figure(curve, state.cohort or ALL_GROUP, view.cut.window_days)

    @app.callback(
        Output(ids.URL, "href", allow_duplicate=True),
        Input(ids.EXPLORER_TERM_LISTING, "cellClicked"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def open_subject(cell, search):
        """A click on a subject in the term listing opens the subject's profile."""
        if (cell or {}).get("colId") != "USUBJID" or not cell.get("value"):
            return no_update
        return state_href("/subject", load_view(search).state.replace(subject=cell["value"]))


PAGE = Page(
    path="/explorer", name="AE explorer", title="AE explorer", layout=layout, register_callbacks=register_callbacks
)
