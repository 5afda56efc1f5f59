"""Signals: terms rising since the previous cut or out of line in a cohort (DOMAIN.md §7), flagged ones first, then
the rest by one-sided p; a forest plot of the rate ratios of the rows shown; a selected signal's numbers, its trend
across cuts, the subjects counted in x₁ (new since the previous cut, or of the cohort) and the term's listing with
their records marked first, each subject's profile one click away.

The grid pages on the server (a study of a million events has thousands of signal rows): each page is filtered and
sorted as the grid asks, the selected signal marked in its rows; the forest takes the same page of the same order.

The filter bar applies: the cohort keeps its own rows, grade / serious / related count only such events (the
signals are then computed from the stored derivations), "within window" narrows the listing. The selected signal
is in the address (``test``, ``group``, ``soc``, ``pt``), so a shared link opens it.
"""

from __future__ import annotations

import numbers

import dash_ag_grid as dag
import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from safety_dash.metrics.signals import TEST_RISING
from safety_dash.views.signals import (
    Signal,
    describe_parts,
    find_signal,
    listing_cohort,
    load_previous_label,
    load_signal_members,
    load_signal_rows,
    load_signal_trends,
    mark_signal_records,
    signal_from_key,
)
from safety_dash.web import ids
from safety_dash.web.components import (
    EMPTY_ROWS,
    build_graph,
    build_grid,
    build_page_header,
    build_panel,
    build_subject_link,
    guard,
    guard_address,
    guard_figure,
    guard_rows,
    number_column,
    register_grid_refresh,
    write_search,
)
from safety_dash.web.figures import make_empty_figure, make_signal_forest_figure, make_signal_trend_figure
from safety_dash.web.listing import listing_positions, listing_rows, page_frame, page_positions
from safety_dash.web.pages import Page
from safety_dash.web.state import ViewState, select_signal, signal_group, state_href
from safety_dash.web.views import load_view

PAGE_SIZE = 12
P_FORMAT = "params.value == null ? '' : (params.value < 0.001 ? d3.format('.1e')(params.value) : d3.format('.3f')(params.value))"  # noqa: E501
# "x / PY" of a part; an infinite-model row has no data until its page arrives, hence the checks on params.data.
PARTS_FORMAT = "params.data ? params.data.{x} + ' / ' + d3.format('.1f')(params.data.{py}) : ''"
SIGNAL_COLUMNS = [
    {"field": "flagged", "headerName": "", "width": 86, "minWidth": 86, "maxWidth": 86, "pinned": "left",
     "cellDataType": False, "valueFormatter": {"function": "params.value ? '⚑ flagged' : ''"},
     "cellClass": "cell-flag", "filter": False,
     "headerTooltip": "flagged: q ≤ 0.10 for the PT and its SOC, and at least 2 subjects in x₁"},
    {"field": "pt", "headerName": "Preferred term", "pinned": "left", "width": 175, "cellClass": "cell-link",
     "tooltipField": "soc", "headerTooltip": "the term (MedDRA PT); its SOC in the tooltip · click to open it"},
    {"field": "baskets", "headerName": "irAE basket", "minWidth": 100, "flex": 1,
     "headerTooltip": "the immune-related AE baskets that hold the PT"},
    {"field": "test_label", "headerName": "Test", "width": 96,
     "headerTooltip": "Rising: since the previous cut against the time before it · Out of line: the cohort against "
     "the other cohorts"},
    {"field": "group", "headerName": "Group", "minWidth": 120, "flex": 1},
    number_column("x1", "x₁ / PY₁", 0, width=92,
                  headerTooltip="subjects with a first event in the period (rising: since the previous cut) or "
                  "cohort (out of line), over their patient-years at risk",
                  valueFormatter={"function": PARTS_FORMAT.format(x="x1", py="py1")}),
    number_column("x0", "x₀ / PY₀", 0, width=92,
                  headerTooltip="the same before the previous cut (rising) or in the other cohorts (out of line)",
                  valueFormatter={"function": PARTS_FORMAT.format(x="x0", py="py0")}),
    number_column("rr_sort", "Rate ratio (CI)", 2, width=145,
                  headerTooltip="(x₁/PY₁) ÷ (x₀/PY₀) with the exact conditional 95% interval; ∞ when x₀ is 0",
                  valueFormatter={"function": "params.data ? params.data.rr_text : ''"}),
    number_column("p_one_sided", "p", 3, width=80, valueFormatter={"function": P_FORMAT},
                  headerTooltip="one-sided p: the chance of an x₁ this large or larger if the rates were equal"),
    number_column("q_pt", "q PT", 3, width=80, valueFormatter={"function": P_FORMAT},
                  headerTooltip="p adjusted among the PTs of its SOC (Benjamini–Hochberg)"),
    number_column("q_soc", "q SOC", 3, width=80, valueFormatter={"function": P_FORMAT},
                  headerTooltip="the SOC's best q adjusted across the SOCs (double FDR)"),
    {"field": "trend", "headerName": "Trend", "cellRenderer": "SignalTrend", "sortable": False, "filter": False,
     "cellDataType": False, "width": 96,
     "headerTooltip": "x₁ per 100 PY₁ at each cut up to this one; red: flagged"},
    {"field": "since", "headerName": "Flagged since", "width": 135,
     "headerTooltip": "the first cut that flagged this test, group and term"},
]  # fmt: skip
LISTING_COLUMNS = [
    {"field": "SIGNAL_PART", "headerName": "Counted in", "minWidth": 220, "pinned": "left", "sortable": False,
     "cellClassRules": {"cell-new": "params.data && params.data.X1"}},
    {"field": "USUBJID", "headerName": "Subject", "cellClass": "cell-link", "minWidth": 175, "pinned": "left"},
    {"field": "COHORT", "headerName": "Cohort", "minWidth": 130},
    {"field": "AETERM", "headerName": "Reported term", "minWidth": 150},
    {"field": "ASTDT", "headerName": "Onset", "minWidth": 110},
    number_column("ASTDY", "Day", 0, maxWidth=90),
    number_column("GRADE", "Grade", 0, maxWidth=95, cellClassRules={"cell-grade-high": "params.value >= 3"}),
    {"field": "SERIOUS", "headerName": "Serious", "maxWidth": 100},
    {"field": "RECORD_CHANGE", "headerName": "In this cut", "maxWidth": 120,
     "cellClassRules": {"cell-new": "params.value == 'new' || params.value == 'changed'"}},
    {"field": "AEOUT", "headerName": "Outcome", "minWidth": 150},
    {"field": "FLAGS", "headerName": "Flags", "minWidth": 240, "sortable": False, "filter": False,
     "tooltipField": "FLAGS"},
]  # fmt: skip
# The grid's fields; the cohort's label goes out as "group", a column the server sorts in natural order (dose levels
# by dose: safety_dash.web.listing.NATURAL_ORDER_COLUMNS).
GRID_FIELDS = ["key", "flagged", "pt", "soc", "baskets", "test_label", "group_label", "x1", "py1", "x0", "py0",
               "rr_sort", "rr_text", "p_one_sided", "q_pt", "q_soc", "trend", "since"]  # fmt: skip


def build_signal_grid() -> dag.AgGrid:
    """The signal rows, one page at a time from the server (thousands on a large study); flagged rows tinted, the
    selected one (marked ``selected`` by the server) highlighted."""
    return build_grid(
        ids.SIGNALS_GRID,
        SIGNAL_COLUMNS,
        height=None,  # as high as its page: 12 rows, whatever the width (a horizontal scroll bar included)
        dashGridOptions={"domLayout": "autoHeight"},
        page_size=PAGE_SIZE,
        getRowId="params.data.key",
        rowClassRules={"row-flagged": "params.data && params.data.flagged",
                       "row-selected": "params.data && params.data.selected"},
        defaultColDef={"minWidth": 70},
    )  # fmt: skip


def layout():
    """The Signals page."""
    return html.Div(
        [
            build_page_header(
                "Signals",
                "Terms rising since the previous cut or out of line in a cohort, with double-FDR flags: flagged first, "
                "then by p. Click a row or a point to see its numbers, its trend and its subjects.",
            ),
            html.P(id=ids.SIGNALS_SCOPE, className="scope-line"),
            html.Div(id=ids.SIGNALS_ALERT),
            build_panel("Signals by preferred term", [build_signal_grid()], subtitle=html.Span(id=ids.SIGNALS_COUNT)),
            html.Div(
                [
                    build_panel(
                        "Rate ratios of the rows shown",
                        [build_graph(ids.SIGNALS_FOREST, 380)],
                        subtitle="the grid's page, in its order · red: flagged · click a point to open it",
                    ),
                    build_panel(
                        html.Span(id=ids.SIGNALS_DETAIL_TITLE),
                        [html.Div(id=ids.SIGNALS_DETAIL), build_graph(ids.SIGNALS_TREND, 260)],
                        class_name="signal-detail",
                    ),
                ],
                className="grid-2",
            ),
            html.Div(
                build_panel(
                    html.Span(id=ids.SIGNALS_LISTING_TITLE),
                    [
                        build_grid(
                            ids.SIGNALS_LISTING,
                            LISTING_COLUMNS,
                            height=420,
                            page_size=20,
                            rowClassRules={"row-x1": "params.data && params.data.X1"},
                        )
                    ],
                    subtitle="every record of the term in the signal's cohorts · the subjects of x₁ first and marked · "
                    "click a subject to open the profile",
                ),  # fmt: skip
                id=ids.SIGNALS_LISTING_PANEL,
                hidden=True,
            ),
        ]
    )


def describe_scope(view, previous) -> str:
    """The cut compared, the cohort and the events counted, in words."""
    state = view.state
    parts = [f"cut {view.cut.run_id} ({view.cut.cutoff:%Y-%m-%d})"]
    parts.append(f"rising: since cut {previous.run_id} ({previous.cutoff:%Y-%m-%d})" if previous else
                 "the study's first cut: no rising test")  # fmt: skip
    parts.append(f"cohort {state.cohort}" if state.cohort else "every cohort and all cohorts together")
    counted = ["treatment-emergent events within the risk window"]
    if state.min_grade:
        counted.append(f"grade ≥ {state.min_grade}" if state.min_grade < 5 else "grade 5")
    if state.serious:
        counted.append("serious")
    if state.related:
        counted.append("related")
    return " · ".join(parts) + " · counting " + ", ".join(counted)


def selected_signal(view, rows: pd.DataFrame) -> Signal | None:
    """The signal the address selects, its SOC looked up when the address names only the PT; None without one."""
    state = view.state
    if not state.test or not (state.pt or state.soc):
        return None
    group = signal_group(state)
    if state.soc and state.pt:
        return Signal(state.test, group, state.soc, state.pt)
    found = rows.loc[(rows["test"] == state.test) & (rows["group"] == group) & (rows["pt"] == (state.pt or ""))]
    return Signal(state.test, group, str(found.iloc[0]["soc"]) if not found.empty else state.soc or "", state.pt or "")


def _filters(state: ViewState) -> tuple:
    return state.min_grade, state.serious, state.related


def signal_grid_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """The grid's columns of signal rows, in the same order (the positions of one are those of the other)."""
    return rows[GRID_FIELDS].rename(columns={"group_label": "group"})


def _whole(value, default: int) -> int:
    return int(value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else default


def grid_request(request) -> dict:
    """A grid's ``getRowsRequest`` as :func:`page_positions` reads it: the rows asked for (whole numbers), the sort
    (a list of column and direction) and the column filters (by column); anything else in it is left out."""
    request = request if isinstance(request, dict) else {}
    start = max(_whole(request.get("startRow"), 0), 0)
    sort = request.get("sortModel")
    filters = request.get("filterModel")
    return {
        "startRow": start,
        "endRow": _whole(request.get("endRow"), start + PAGE_SIZE),
        "sortModel": [item for item in sort if isinstance(item, dict)] if isinstance(sort, list) else [],
        "filterModel": filters if isinstance(filters, dict) else {},
    }


def forest_request(pagination, request) -> dict:
    """The request of the page the grid shows: the page of its ``paginationInfo`` (the first without one) in the
    sort and filters of its latest ``getRowsRequest``."""
    pagination = pagination if isinstance(pagination, dict) else {}
    page = max(_whole(pagination.get("currentPage"), 0), 0)
    size = _whole(pagination.get("pageSize"), PAGE_SIZE)
    size = size if 0 < size <= PAGE_SIZE else PAGE_SIZE  # the grid pages by PAGE_SIZE; the forest draws no more
    return grid_request(request) | {"startRow": page * size, "endRow": (page + 1) * size}


def _fact(label: str, value) -> html.Div:
    return html.Div([html.Span(label, className="fact-label"), html.Span(value, className="fact-value")],
                    className="fact")  # fmt: skip


def _rate(x: int, py: float) -> str:
    return f"{x} / {py:.1f} PY = {100 * x / py:.1f} per 100 PY" if py > 0 else f"{x} / 0 PY"


def _p(value) -> str:
    return "–" if pd.isna(value) else f"{value:.1e}" if value < 0.001 else f"{value:.3f}"


def build_signal_detail(view, signal: Signal, row: pd.Series | None, members: pd.DataFrame, previous) -> list:
    """The selected signal: what x₁ and x₀ are, the numbers, since when it is flagged, and x₁'s subjects."""
    if row is None:
        where = "this cohort" if view.state.cohort else "this cut"
        return [html.P(f"{signal.label}: no such signal in {where} with these filters (no subject with the event "
                       "in either part).", className="muted")]  # fmt: skip
    x1_text, x0_text = describe_parts(signal, previous)
    facts = [
        _fact(f"x₁ · {x1_text}", _rate(int(row["x1"]), float(row["py1"]))),
        _fact(f"x₀ · {x0_text}", _rate(int(row["x0"]), float(row["py0"]))),
        _fact("Rate ratio (exact 95% CI)", row["rr_text"]),
        _fact("p · q PT · q SOC", f"{_p(row['p_one_sided'])} · {_p(row['q_pt'])} · {_p(row['q_soc'])}"),
        _fact("System organ class", row["soc"]),
        _fact("irAE basket", row["baskets"] or "–"),
    ]
    badge = (html.Span(f"flagged since {row['since']}", className="badge badge-danger") if row["flagged"]
             else html.Span("not flagged", className="badge badge-info"))  # fmt: skip
    new = members.loc[members["PART"] == 1, "USUBJID"].tolist()
    state = view.state.replace(test=None, group=None)
    links = [
        dcc.Link("Open in the AE explorer →", href=state_href("/explorer", state), className="more"),
        dcc.Link("Rates by cohort →", href=state_href("/rates", state), className="more"),
    ]  # fmt: skip
    return [
        html.Div([badge, *links], className="signal-badges"),
        html.Div(facts, className="facts facts-3"),
        html.H3(f"Subjects of x₁ ({len(new)}) · {x1_text}", className="minor"),
        html.Div([build_subject_link(s, state) for s in new] or [html.Span("none", className="muted")],
                 className="subject-links"),
    ]  # fmt: skip


def register_callbacks(app: Dash) -> None:
    """Rows, detail and trend from the address; the forest of the grid's page; clicks to the address; the listing."""

    @app.callback(
        Output(ids.SIGNALS_ALERT, "children"),
        Output(ids.SIGNALS_SCOPE, "children"),
        Output(ids.SIGNALS_COUNT, "children"),
        Output(ids.SIGNALS_DETAIL_TITLE, "children"),
        Output(ids.SIGNALS_DETAIL, "children"),
        Output(ids.SIGNALS_TREND, "figure"),
        Output(ids.SIGNALS_LISTING_PANEL, "hidden"),
        Output(ids.SIGNALS_LISTING_TITLE, "children"),
        Input(ids.URL, "search"),
    )
    @guard(8)
    def update_signals(search):
        """The scope, the row count and the selected signal's numbers, trend and listing title (the grid asks for
        its rows itself)."""
        view = load_view(search)
        state, key = view.state, view.key
        previous = load_previous_label(view.context.engine, view.cut.run_id)
        rows = load_signal_rows(key, state.cohort, *_filters(state))
        n_flagged = int(rows["flagged"].sum())
        count = (f"{n_flagged} flagged of {len(rows)} rows (test × group × term with a subject in x₁ or x₀) · "
                 "tinted: flagged · hover a column title for its meaning")  # fmt: skip
        signal = selected_signal(view, load_signal_rows(key, None, *_filters(state)))
        if signal is None:
            empty = make_empty_figure("Click a signal row or point", height=240)
            prompt = html.P("Click a row of the grid or a point of the forest plot.", className="muted")
            return None, describe_scope(view, previous), count, "No signal selected", prompt, empty, True, ""
        every = load_signal_rows(key, None, *_filters(state))
        row = find_signal(every, signal)
        members = load_signal_members(key, signal, *_filters(state)) if row is not None else pd.DataFrame(
            columns=["USUBJID", "PART"])  # fmt: skip
        trends = load_signal_trends(key, *_filters(state))
        trend = trends.loc[(trends["test"] == signal.test) & (trends["group"] == signal.group)
                           & (trends["soc"] == signal.soc) & (trends["pt"] == signal.pt)]  # fmt: skip
        rising = signal.test == TEST_RISING
        figure = make_signal_trend_figure(trend, "x₁: since the cut before" if rising else f"x₁: {signal.group}",
                                          "x₀: before it" if rising else "x₀: other cohorts")  # fmt: skip
        listing_title = f"{signal.pt or signal.soc}: records of {listing_cohort(signal) or 'every cohort'}"
        return (
            None,
            describe_scope(view, previous),
            count,
            signal.label,
            build_signal_detail(view, signal, row, members, previous),
            figure,
            row is None,
            listing_title,
        )

    @app.callback(
        Output(ids.SIGNALS_GRID, "getRowsResponse"),
        Input(ids.SIGNALS_GRID, "getRowsRequest"),
        State(ids.URL, "search"),
    )
    @guard_rows
    def page_signals(request, search):
        """One page of the signal rows, filtered and sorted as the grid asks (flagged first, then by p, when it
        asks for no sort), the selected signal's row marked ``selected``."""
        if request is None:
            raise PreventUpdate
        view = load_view(search)
        rows = load_signal_rows(view.key, view.state.cohort, *_filters(view.state))
        signal = selected_signal(view, load_signal_rows(view.key, None, *_filters(view.state)))
        page = page_frame(signal_grid_frame(rows), grid_request(request))
        for row in page["rowData"]:
            row["selected"] = signal is not None and row["key"] == signal.key
        return page

    register_grid_refresh(app, ids.SIGNALS_GRID, ids.URL)  # the selection and the filters are in the address

    @app.callback(
        Output(ids.SIGNALS_FOREST, "figure"),
        Input(ids.SIGNALS_GRID, "paginationInfo"),
        Input(ids.SIGNALS_GRID, "getRowsRequest"),
        Input(ids.URL, "search"),
    )
    @guard_figure
    def update_forest(pagination, request, search):
        """The rate ratios of the rows on the grid's page, in the grid's order: the page of its pagination in the
        sort and filters of its latest request (the first page, flagged first, before it says)."""
        view = load_view(search)
        rows = load_signal_rows(view.key, view.state.cohort, *_filters(view.state))
        positions, _ = page_positions(signal_grid_frame(rows), forest_request(pagination, request))
        signal = selected_signal(view, load_signal_rows(view.key, None, *_filters(view.state)))
        return make_signal_forest_figure(rows.iloc[positions], signal.key if signal else None)

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.SIGNALS_GRID, "cellClicked"),
        Input(ids.SIGNALS_FOREST, "clickData"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def select_from_click(cell, click, search):
        """A click on a row of the grid or a point of the forest plot selects that signal (again: clears it)."""
        if ctx.triggered_id == ids.SIGNALS_GRID:
            key = (cell or {}).get("rowId")
        else:
            points = (click or {}).get("points") or []
            custom = points[0].get("customdata") if points else None
            key = custom[0] if isinstance(custom, list) and custom else None
        signal = signal_from_key(key) if isinstance(key, str) else None
        if signal is None:
            raise PreventUpdate
        state = load_view(search).state
        return write_search(search, select_signal(state, signal.test, signal.group, signal.soc, signal.pt))

    @app.callback(
        Output(ids.SIGNALS_LISTING, "getRowsResponse"),
        Input(ids.SIGNALS_LISTING, "getRowsRequest"),
        State(ids.URL, "search"),
    )
    @guard_rows
    def page_listing(request, search):
        """One page of the selected signal's term listing, x₁'s subjects first (every request answered)."""
        if request is None:
            raise PreventUpdate
        view = load_view(search)
        state = view.state
        signal = selected_signal(view, load_signal_rows(view.key, None, *_filters(state)))
        if signal is None:
            return dict(EMPTY_ROWS)
        return page_frame(signal_listing(view, signal), request)

    register_grid_refresh(app, ids.SIGNALS_LISTING, ids.URL)

    @app.callback(
        Output(ids.URL, "href", allow_duplicate=True),
        Input(ids.SIGNALS_LISTING, "cellClicked"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def open_subject(cell, search):
        """A click on a subject in the listing opens the subject's profile."""
        if (cell or {}).get("colId") != "USUBJID" or not cell.get("value"):
            return no_update
        state = load_view(search).state.replace(test=None, group=None)
        return state_href("/subject", state.replace(subject=cell["value"]))


def signal_listing(view, signal: Signal) -> pd.DataFrame:
    """Every record of the signal's PT in its cohorts (with the filter bar's grade / serious / related / window), the
    records of x₁'s subjects first and marked."""
    state, key = view.state, view.key
    members = load_signal_members(key, signal, *_filters(state))
    positions = listing_positions(key, listing_cohort(signal), state.min_grade, state.serious, state.related,
                                  state.window, None, signal.pt, None)  # fmt: skip
    rows = listing_rows(key.frames.events, positions)
    previous = load_previous_label(view.context.engine, view.cut.run_id)
    return mark_signal_records(rows, members, signal, previous)


def top_signals(view, limit: int = 3) -> tuple[int, int, list[tuple[Signal, pd.Series]]]:
    """For the overview: how many rows are flagged, how many rows there are, and the first ``limit`` flagged."""
    rows = load_signal_rows(view.key, view.state.cohort, *_filters(view.state))
    flagged = rows.loc[rows["flagged"]]
    top = [(Signal(r["test"], r["group"], r["soc"], r["pt"]), r) for _, r in flagged.head(limit).iterrows()]
    return len(flagged), len(rows), top


def signal_href(state: ViewState, signal: Signal) -> str:
    """The Signals page with ``signal`` selected."""
    return state_href("/signals", select_signal(state.replace(test=None, group=None), signal.test, signal.group,
                                                signal.soc, signal.pt))  # fmt: skip


PAGE = Page(path="/signals", name="Signals", title="Signals", layout=layout, register_callbacks=register_callbacks)
