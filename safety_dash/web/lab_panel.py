"""The subject profile's lab panel: one subject's laboratory values as ×ULN over time, with the infusions, the risk
window and the data cutoff drawn as on the time line above it, the tests whose worst on-treatment grade is 1 or more,
and the subject's potential Hy's law case when there is one (DOMAIN.md §8).

The subject page holds the placeholder (``html.Div(id=ids.SUBJECT_LAB_PANEL)``); :func:`register_lab_panel` fills it
from the address. The numbers are :func:`safety_dash.views.labs.load_subject_labs`'.
"""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, dcc, html

from safety_dash.metrics.labs import DIRECTIONS
from safety_dash.views.labs import load_lab_cut, load_subject_labs
from safety_dash.web import ids
from safety_dash.web.components import build_panel, build_small_table, guard
from safety_dash.web.data import load_subject_exposure, load_subject_record
from safety_dash.web.figures_labs import LIVER_TESTS, make_subject_lab_figure
from safety_dash.web.state import state_href
from safety_dash.web.views import load_view

TITLE = "Laboratory values"
SUBTITLE = ("× upper limit of normal over time, one line per test (click a test in the legend to show or hide it) · "
            "ringed: grade ≥ 3 · ticks: infusions · shaded: risk window")  # fmt: skip
GRAPH_CONFIG = {"displaylogo": False, "displayModeBar": "hover", "toImageButtonOptions": {"scale": 2},
                "modeBarButtonsToRemove": ["lasso2d", "select2d", "autoScale2d"]}  # fmt: skip


def tests_shown(records: pd.DataFrame, worst: pd.DataFrame, selected: str | None) -> list[str]:
    """The tests drawn at first: the liver tests, those with a worst on-treatment grade of 2 or more, and the test
    chosen on the Labs page; the first four tests when the subject has none of them."""
    present = list(dict.fromkeys(records["TEST"]))
    wanted = set(LIVER_TESTS) | set(worst.loc[worst["WORST_GRADE"] >= 2, "TEST"]) | {str(selected or "").upper()}
    shown = [t for t in present if t in wanted]
    return shown or present[:4]


def _hys_law_note(row: pd.Series, state) -> html.Div:
    """The subject's potential Hy's law case in words, linked to the eDISH page."""
    alp = row["ALP_XULN"]
    pattern = ("no ALP measured then" if pd.isna(alp) else
               f"ALP {alp:.2f}×ULN: {'cholestatic pattern' if alp >= 2 else 'not cholestatic'}")  # fmt: skip
    text = (f"ALT {row['PEAK_ALT_XULN']:.2f}×ULN, AST {row['PEAK_AST_XULN']:.2f}×ULN (peaks) and bilirubin "
            f"{row['PEAK_BILI_XULN']:.2f}×ULN; transaminase ≥ 3×ULN on {row['TRANSAMINASE_ADT']:%Y-%m-%d}, "
            f"bilirubin ≥ 2×ULN on {row['BILI_ADT']:%Y-%m-%d}; {pattern}.")  # fmt: skip
    return html.Div(
        [
            html.Span("potential Hy's law case", className="badge badge-danger"),
            html.P(text, className="small"),
            dcc.Link("See it on the eDISH plot →", href=state_href("/edish", state.replace(subject=None)),
                     className="more"),
        ],
        className="lab-hys-law",
    )  # fmt: skip


def build_subject_lab_panel(view) -> html.Section | None:
    """The lab panel of the address's subject, or None without a subject (or one not in the cut)."""
    usubjid = view.state.subject
    if not usubjid:
        return None
    engine = view.context.engine
    lab = load_lab_cut(engine, view.cut.run_id, view.cut.derived_at)
    if not lab.has_labs:
        return build_panel(TITLE, [html.P("This cut has no laboratory data.", className="muted")])
    record = load_subject_record(engine, view.cut, usubjid)
    if record is None:
        return None
    labs = load_subject_labs(lab, usubjid)
    if labs.records.empty:
        return build_panel(TITLE, [html.P(f"No laboratory value of {usubjid} in this cut.", className="muted")])
    exposure = load_subject_exposure(engine, view.cut, usubjid)
    figure = make_subject_lab_figure(labs.records, tests_shown(labs.records, labs.worst, view.state.lab), record,
                                     exposure, view.cut.cutoff, view.cut.window_days)  # fmt: skip
    side = []
    if labs.hys_law is not None and bool(labs.hys_law["HYS_LAW"]):
        side.append(_hys_law_note(labs.hys_law, view.state))
    worst = labs.worst.assign(
        test=[f"{n or t} ({DIRECTIONS[d]})" for t, n, d in zip(labs.worst["TEST"], labs.worst["NAME"],
                                                                labs.worst["DIRECTION"], strict=True)],
        baseline=labs.worst["BASELINE_GRADE"].astype("string").fillna("–"),
        grade=labs.worst["WORST_GRADE"].astype("string"),
        reached=[f"{d:%Y-%m-%d}" if pd.notna(d) else "" for d in labs.worst["WORST_ADT"]],
    )  # fmt: skip
    side.append(html.H3("Worst on-treatment grade ≥ 1", className="minor"))
    side.append(
        build_small_table(worst, {"test": "Test", "baseline": "Baseline", "grade": "Worst", "reached": "On"})
        if len(worst)
        else html.P("Every on-treatment value of grade 0 or not graded.", className="muted")
    )
    if labs.n_undated:
        side.append(html.P(f"{labs.n_undated} records without a complete date are not drawn.", className="muted small"))
    graph = dcc.Graph(id=ids.SUBJECT_LAB_GRAPH, figure=figure, config=GRAPH_CONFIG)
    body = html.Div([html.Div(graph, className="lab-panel-graph"), html.Div(side, className="lab-panel-side")],
                    className="lab-panel-body")  # fmt: skip
    return build_panel(TITLE, [body], subtitle=SUBTITLE)


def register_lab_panel(app: Dash) -> None:
    """Fill the subject page's lab panel from the address (a visible alert instead of a failure)."""

    @app.callback(Output(ids.SUBJECT_LAB_PANEL, "children"), Input(ids.URL, "search"))
    @guard(1)
    def update_lab_panel(search):
        return build_subject_lab_panel(load_view(search))
