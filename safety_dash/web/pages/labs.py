"""Laboratory safety (DOMAIN.md §8): the worst on-treatment CTCAE grade of every graded test, and for the test
chosen its worst grades by cohort, the shift from the baseline grade and its values (×ULN) by visit.

The numbers are those of the ``labs`` command (:mod:`safety_dash.views.labs`). The filter bar applies: the cohort
narrows every panel, the grade keeps the tests where a subject of the group shown reached it; serious, related and
within-window concern adverse events only. The test and direction are in the address (``lab``, ``dir``).
"""

from __future__ import annotations

import json

import dash_ag_grid as dag
import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from safety_dash.metrics.labs import DIRECTIONS
from safety_dash.metrics.rates import MISSING_GROUP
from safety_dash.views.labs import (
    DIRECTION_WORDS,
    choose_lab_test,
    lab_test_options,
    load_lab_cut,
    load_shift,
    load_visit_boxes,
    load_worst_grade_distribution,
    load_worst_grade_view,
)
from safety_dash.web import ids
from safety_dash.web.components import (
    GRID_THEME,
    build_alert,
    build_graph,
    build_page_header,
    build_panel,
    guard,
    guard_address,
    number_column,
    register_subject_click,
    write_search,
)
from safety_dash.web.figures import cohort_colours, make_empty_figure
from safety_dash.web.figures_labs import make_lab_box_figure, make_worst_grade_figure
from safety_dash.web.lab_panel import register_lab_panel
from safety_dash.web.listing import json_records
from safety_dash.web.pages import Page
from safety_dash.web.views import load_view

NO_LAB_DATA = "This cut has no laboratory data (no LB or ADLB records were loaded for the study)."
GRADE_HEADERS = {k: f"worst on-treatment grade {k}: subjects" for k in (1, 2, 3, 4)}
TABLE_COLUMNS = [
    {"field": "label", "headerName": "Test", "minWidth": 300, "flex": 1, "cellClass": "cell-link",
     "headerTooltip": "the test and the direction graded (CTCAE v5.0) · click to open it"},
    number_column("n_with_value", "With a value", 0, width=115,
                  headerTooltip="subjects with an on-treatment result (after the first dose, to the risk window end)"),
    *[number_column(f"n_worst_grade_{k}", f"Grade {k}", 0, width=92, headerTooltip=GRADE_HEADERS[k],
                    cellClassRules={"cell-grade-high": "params.value > 0"} if k >= 3 else {}) for k in (1, 2, 3, 4)],
    number_column("n_grade_3_or_more", "Grade ≥ 3", 0, width=100,
                  headerTooltip="subjects whose worst on-treatment grade is 3 or 4",
                  cellClassRules={"cell-grade-high": "params.value > 0"}),
    number_column("pct_grade_3_or_more", "% grade ≥ 3", 1, width=110,
                  headerTooltip="of the subjects with an on-treatment result"),
    number_column("n_hys_law", "Hy's law", 0, width=95, cellClassRules={"cell-flag": "params.value > 0"},
                  headerTooltip="potential Hy's law cases: ALT or AST ≥ 3×ULN and bilirubin ≥ 2×ULN within 30 days "
                  "(see the eDISH page)"),
]  # fmt: skip
TABLE_FIELDS = ["key", "label", "n_with_value", "n_worst_grade_1", "n_worst_grade_2", "n_worst_grade_3",
                "n_worst_grade_4", "n_grade_3_or_more", "pct_grade_3_or_more", "n_hys_law"]  # fmt: skip
SHIFT_GRADES = (0, 1, 2, 3, 4, None)


def row_key(test: str, direction: str) -> str:
    """The grid row id of a test and direction (JSON text, read back by :func:`key_row`)."""
    return json.dumps([test, direction])


def key_row(key) -> tuple[str, str] | None:
    """The test and direction of a grid row id, or None when ``key`` is not one."""
    try:
        values = json.loads(key)
    except (TypeError, ValueError):
        return None
    if isinstance(values, list) and len(values) == 2 and all(isinstance(v, str) for v in values):
        return values[0], values[1]
    return None


def build_test_table() -> dag.AgGrid:
    """The worst-grade view: one row per graded test and direction (tens of rows, sent whole)."""
    return dag.AgGrid(
        id=ids.LABS_TABLE,
        columnDefs=TABLE_COLUMNS,
        rowData=[],
        getRowId="params.data.key",
        defaultColDef={"resizable": True, "sortable": True, "filter": False, "minWidth": 70},
        dashGridOptions={"theme": GRID_THEME, "enableCellTextSelection": True, "animateRows": False,
                         "tooltipShowDelay": 300, "suppressCellFocus": True, "domLayout": "autoHeight",
                         "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": False}},
        style={"width": "100%"},
    )  # fmt: skip


def layout():
    """The Labs page."""
    return html.Div(
        [
            build_page_header(
                "Laboratory safety",
                "Worst on-treatment CTCAE grades of the laboratory tests, and for one test its grades by cohort, the "
                "shift from baseline and its values by visit. Click a test to open it.",
            ),
            html.P(id=ids.LABS_SCOPE, className="scope-line"),
            html.Div(id=ids.LABS_ALERT),
            build_panel(
                html.Span(id=ids.LABS_TABLE_TITLE),
                [build_test_table()],
                subtitle="subjects by worst on-treatment grade · the tests with most subjects at grade ≥ 3 first · "
                "click a test to see it below · hover a column title for its meaning",
            ),
            html.Div(
                [
                    html.Div(
                        [html.Label("Test", className="field-label"), dcc.Dropdown(id=ids.LABS_TEST, clearable=False)],
                        className="field field-lab-test",
                    ),
                    html.Div(
                        [
                            html.Label("Direction graded", className="field-label"),
                            dcc.RadioItems(id=ids.LABS_DIRECTION, options=[], inline=True, className="segmented"),
                        ],
                        className="field",
                    ),
                ],
                className="controls lab-controls",
            ),  # fmt: skip
            html.Div(id=ids.LABS_DETAIL_ALERT),
            html.Div(
                [
                    build_panel(
                        html.Span(id=ids.LABS_WORST_TITLE),
                        [build_graph(ids.LABS_WORST, 220)],
                        subtitle="subjects with an on-treatment result, by their worst on-treatment grade",
                    ),
                    build_panel(
                        html.Span(id=ids.LABS_SHIFT_TITLE),
                        [html.Div(id=ids.LABS_SHIFT)],
                        subtitle="subjects with an on-treatment result · rows: baseline grade · columns: worst "
                        "on-treatment grade · tinted: worse than at baseline",
                    ),
                ],
                className="grid-2",
            ),
            build_panel(
                html.Span(id=ids.LABS_BOX_TITLE),
                [html.Div(id=ids.LABS_BOX_NOTE), build_graph(ids.LABS_BOX, 380)],
                subtitle="every value of the safety population up to the cutoff, as a multiple of the upper limit of "
                "normal · boxes: quartiles · whiskers: 5th–95th percentile · ◆ grade ≥ 2 (click to open the subject)",
            ),
        ]
    )


def describe_scope(view) -> str:
    """The cut, the population and what is counted, in words."""
    state = view.state
    parts = [f"cut {view.cut.run_id} ({view.cut.cutoff:%Y-%m-%d})",
             f"cohort {state.cohort}" if state.cohort else "all cohorts",
             "worst CTCAE v5.0 grade after the first dose, up to the end of the risk window"]  # fmt: skip
    if state.min_grade:
        parts.append(f"tests where a subject reached grade ≥ {state.min_grade}")
    if state.serious or state.related or state.window:
        parts.append("serious / related / within-window concern adverse events, not laboratory values")
    return " · ".join(parts)


def _cell(value: int, class_name: str = "") -> html.Td:
    return html.Td(f"{value:,}", className=f"{class_name} shift-zero".strip() if value == 0 else class_name)


def build_shift_table(shift: pd.DataFrame) -> html.Div:
    """Baseline grade (rows) × worst on-treatment grade (columns), with totals; cells worse than baseline tinted."""
    if shift.empty or int(shift["n_subjects"].sum()) == 0:
        return html.P("No subject with an on-treatment result graded in this direction.", className="muted")
    counts = {
        (None if pd.isna(b) else int(b), None if pd.isna(w) else int(w)): int(n)
        for b, w, n in zip(shift["baseline_grade"], shift["worst_grade"], shift["n_subjects"], strict=True)
    }
    head = html.Thead(
        html.Tr(
            [html.Th("Baseline ↓ · worst →"), *[html.Th("not graded" if w is None else str(w)) for w in SHIFT_GRADES],
             html.Th("Total")]
        )
    )  # fmt: skip
    body = []
    for base in SHIFT_GRADES:
        cells = [html.Th(f"grade {base}" if base is not None else "no baseline grade")]
        for worst in SHIFT_GRADES:
            n = counts.get((base, worst), 0)
            worse = base is not None and worst is not None and worst > base
            same = base is not None and base == worst
            kind = "shift-worse" if worse and n else "shift-same" if same else ""
            cells.append(_cell(n, kind))
        cells.append(_cell(sum(counts.get((base, w), 0) for w in SHIFT_GRADES), "shift-total"))
        body.append(html.Tr(cells))
    totals = [_cell(sum(counts.get((b, w), 0) for b in SHIFT_GRADES), "shift-total") for w in SHIFT_GRADES]
    body.append(html.Tr([html.Th("Total"), *totals, _cell(sum(counts.values()), "shift-total")]))
    return html.Div(html.Table([head, html.Tbody(body)], className="small-table shift-table"), className="table-wrap")


def _colours(lab) -> dict[str, str]:
    return cohort_colours([g for g in lab.groups if g != MISSING_GROUP])


def register_callbacks(app: Dash) -> None:
    """Table and picker from the address; the chosen test's panels; picker, row and point clicks to the address;
    and the subject profile's lab panel."""

    @app.callback(
        Output(ids.LABS_ALERT, "children"),
        Output(ids.LABS_SCOPE, "children"),
        Output(ids.LABS_TABLE_TITLE, "children"),
        Output(ids.LABS_TABLE, "rowData"),
        Output(ids.LABS_TABLE, "selectedRows"),
        Output(ids.LABS_TEST, "options"),
        Output(ids.LABS_TEST, "value"),
        Output(ids.LABS_DIRECTION, "options"),
        Output(ids.LABS_DIRECTION, "value"),
        Input(ids.URL, "search"),
    )
    @guard(9)
    def update_tests(search):
        view = load_view(search)
        state = view.state
        lab = load_lab_cut(view.context.engine, view.cut.run_id, view.cut.derived_at)
        scope = describe_scope(view)
        if not lab.has_labs:
            return (
                build_alert(NO_LAB_DATA, "info"),
                scope,
                "Worst on-treatment grade per test",
                [],
                [],
                [],
                None,
                [],
                None,
            )
        rows = load_worst_grade_view(lab, state.cohort, state.min_grade)
        rows["key"] = [row_key(t, d) for t, d in zip(rows["test"], rows["direction"], strict=True)]
        test, direction = choose_lab_test(lab, state.lab, state.lab_dir, state.cohort, state.min_grade)
        note = None
        if state.cohort and state.cohort not in lab.groups:
            note = build_alert(f"Cohort {state.cohort} has no subject in the safety population of this cut.", "warning")
        elif state.lab and lab.test_position(state.lab) < 0:
            note = build_alert(f"Test {state.lab} has no record in this cut; showing {test}.", "warning")
        elif state.min_grade and rows.empty:
            what = "grade 5 (laboratory grades go up to 4)" if state.min_grade == 5 else f"grade ≥ {state.min_grade}"
            note = build_alert(f"No test reached {what} in {state.cohort or 'any cohort'}.", "info")
        group = state.cohort or "all cohorts"
        title = f"Worst on-treatment grade per test · {group}"
        graded = lab.directions(test)
        options = [{"label": DIRECTIONS[d].capitalize(), "value": DIRECTION_WORDS[d]} for d in graded]
        selected = [{"key": row_key(test, direction)}] if direction else []
        return (note, scope, title, json_records(rows[TABLE_FIELDS]), selected, lab_test_options(lab), test, options,
                DIRECTION_WORDS.get(direction))  # fmt: skip

    @app.callback(
        Output(ids.LABS_DETAIL_ALERT, "children"),
        Output(ids.LABS_WORST_TITLE, "children"),
        Output(ids.LABS_WORST, "figure"),
        Output(ids.LABS_SHIFT_TITLE, "children"),
        Output(ids.LABS_SHIFT, "children"),
        Output(ids.LABS_BOX_TITLE, "children"),
        Output(ids.LABS_BOX_NOTE, "children"),
        Output(ids.LABS_BOX, "figure"),
        Input(ids.URL, "search"),
    )
    @guard(8)
    def update_test(search):
        view = load_view(search)
        state, engine = view.state, view.context.engine
        lab = load_lab_cut(engine, view.cut.run_id, view.cut.derived_at)
        if not lab.has_labs:
            empty = make_empty_figure("No laboratory data in this cut", 220)
            return None, "Worst grade by cohort", empty, "Shift from baseline", None, "Values by visit", None, empty
        test, direction = choose_lab_test(lab, state.lab, state.lab_dir, state.cohort, state.min_grade)
        label = lab.test_label(test, direction)
        colours = _colours(lab)
        if direction:
            worst = make_worst_grade_figure(load_worst_grade_distribution(lab, test, direction, state.cohort), colours)
            shift = build_shift_table(load_shift(lab, test, direction, state.cohort))
        else:
            why = "the criteria call it not gradable" if _named(lab, test) else "CTCAE v5.0 has no criterion for it"
            worst = make_empty_figure(f"{lab.test_label(test)} is not graded: {why}", 220)
            shift = html.P("Not graded: its values are shown as ×ULN only.", className="muted")
        boxes = load_visit_boxes(engine, view.cut.run_id, view.cut.derived_at, test, direction, state.cohort)
        note = None
        if boxes.n_points_total > len(boxes.points):
            note = html.P(f"{len(boxes.points):,} of {boxes.n_points_total:,} grade ≥ 2 values drawn (the most "
                          "extreme); the boxes use every value.", className="muted small")  # fmt: skip
        return (
            None,
            f"{label}: worst on-treatment grade {'· ' + state.cohort if state.cohort else 'by cohort'}",
            worst,
            f"{label}: shift from baseline · {state.cohort or 'all cohorts'}",
            shift,
            f"{lab.test_label(test)}: × ULN by visit{' · ' + state.cohort if state.cohort else ''}",
            note,
            make_lab_box_figure(boxes.boxes, boxes.points, colours),
        )

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.LABS_TEST, "value"),
        Input(ids.LABS_DIRECTION, "value"),
        Input(ids.LABS_TABLE, "cellClicked"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def pick(test, direction, cell, search):
        """The test picker, the direction and a click on a row of the table write the address."""
        if ctx.triggered_id == ids.LABS_TABLE:
            picked = key_row((cell or {}).get("rowId"))
            if picked is None:
                raise PreventUpdate
            test, direction = picked[0], DIRECTION_WORDS.get(picked[1])
        view = load_view(search)
        lab = load_lab_cut(view.context.engine, view.cut.run_id, view.cut.derived_at)
        if not test or not lab.has_labs:
            raise PreventUpdate
        state = view.state
        shown = choose_lab_test(lab, state.lab, state.lab_dir, state.cohort, state.min_grade)
        chosen = choose_lab_test(lab, test, direction, state.cohort, state.min_grade)
        if chosen == shown:
            raise PreventUpdate
        return write_search(search, state.replace(lab=chosen[0], lab_dir=DIRECTION_WORDS.get(chosen[1])))

    register_subject_click(app, ids.LABS_BOX)  # a click on a subject's point opens the profile

    register_lab_panel(app)


def _named(lab, test: str) -> bool:
    """Whether the criteria name ``test`` at all (as not gradable)."""
    row = lab.tests.iloc[lab.test_position(test)]
    return any(row[f"CRITERION_{d}"] for d in DIRECTIONS)


PAGE = Page(path="/labs", name="Labs", title="Laboratory safety", layout=layout, register_callbacks=register_callbacks)
