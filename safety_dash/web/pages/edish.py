"""eDISH, evaluation of drug-induced serious hepatotoxicity (FDA guidance 2009; DOMAIN.md §8): each subject's peak
on-treatment ALT or AST against peak total bilirubin, both ×ULN on log axes, with the 3×ULN and 2×ULN lines; the
potential Hy's law cases (the two on the same day or bilirubin within 30 days after) ringed and listed, the
subjects per quadrant counted. A click on a point opens the subject.

The numbers are the Hy's law screen of the ``labs`` command (:func:`safety_dash.views.labs.load_edish`), graded
once per cut. The cohort filter applies; grade, serious, related and within-window concern adverse events only.
"""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, html

from safety_dash.metrics.rates import ALL_GROUP, MISSING_GROUP
from safety_dash.views.labs import QUADRANTS, load_cut_edish, load_lab_cut
from safety_dash.web import ids
from safety_dash.web.components import (
    build_alert,
    build_graph,
    build_page_header,
    build_panel,
    build_small_table,
    build_subject_link,
    guard,
    register_subject_click,
)
from safety_dash.web.figures import cohort_colours, make_empty_figure
from safety_dash.web.figures_labs import make_edish_figure
from safety_dash.web.pages import Page
from safety_dash.web.views import load_view

MAX_CASES_LISTED = 25  # potential Hy's law cases listed beside the plot; all of them are ringed on it
NO_LAB_DATA = "This cut has no laboratory data (no LB or ADLB records were loaded for the study)."
QUADRANT_HEADERS = dict(zip(QUADRANTS, ("Hy's law range", "ALT/AST only", "Bilirubin only", "Normal"), strict=True))


def layout():
    """The eDISH page."""
    return html.Div(
        [
            build_page_header(
                "eDISH: liver safety",
                "Each subject's peak on-treatment ALT or AST against peak total bilirubin, as multiples of the upper "
                "limit of normal. Upper right: the potential Hy's law range. Click a point to open the subject.",
            ),
            html.P(id=ids.EDISH_SCOPE, className="scope-line"),
            html.Div(id=ids.EDISH_ALERT),
            html.Div(
                [
                    build_panel(
                        "Peak ALT or AST against peak bilirubin (× ULN)",
                        [html.Div(id=ids.EDISH_NOTE), build_graph(ids.EDISH_GRAPH, 460)],
                        subtitle="one point per subject, coloured by cohort · log axes · dashed: 3×ULN and 2×ULN · "
                        "ringed: potential Hy's law case · click a point to open the subject",
                        class_name="span-2",
                    ),
                    html.Div(
                        [
                            build_panel(
                                "Potential Hy's law cases",
                                [html.Div(id=ids.EDISH_CASES)],
                                subtitle="ALT or AST ≥ 3×ULN, then total bilirubin ≥ 2×ULN on the same day or within "
                                "30 days, both on treatment; ALP ×ULN of that time (cholestatic when ≥ 2)",
                            ),
                            build_panel(
                                "Subjects per quadrant",
                                [html.Div(id=ids.EDISH_QUADRANTS)],
                                subtitle="every subject, drawn or not · ALT/AST only: Temple's corollary · "
                                "bilirubin only: hyperbilirubinaemia",
                            ),
                        ],
                        className="stack edish-side",
                    ),  # fmt: skip
                ],
                className="grid-3",
            ),
        ]
    )


def describe_scope(view) -> str:
    """The cut, the population and the peaks, in words."""
    state = view.state
    parts = [f"cut {view.cut.run_id} ({view.cut.cutoff:%Y-%m-%d})",
             f"cohort {state.cohort}" if state.cohort else "all cohorts",
             "safety population · peaks after the first dose, up to the end of the risk window"]  # fmt: skip
    if state.min_grade or state.serious or state.related or state.window:
        parts.append("grade / serious / related / within-window concern adverse events, not laboratory values")
    return " · ".join(parts)


def build_case_list(cases: pd.DataFrame, state, limit: int = MAX_CASES_LISTED) -> html.Div:
    """The potential Hy's law cases, one block each: the subject (a link), its cohort, the peaks and the dates; the
    highest peak bilirubin first, at most ``limit`` (the others are ringed on the plot)."""
    if cases.empty:
        return html.P("None in this population.", className="muted")
    items = []
    shown = cases.sort_values(["PEAK_BILI_XULN", "USUBJID"], ascending=[False, True], kind="stable").head(limit)
    for row in shown.itertuples(index=False):
        alp = row.ALP_XULN
        pattern = ("no ALP measured then" if pd.isna(alp) else
                   f"ALP {alp:.2f}×ULN · {'cholestatic pattern' if alp >= 2 else 'not cholestatic'}")  # fmt: skip
        items.append(
            html.Li(
                [
                    html.Div([build_subject_link(row.USUBJID, state), html.Span(row.GROUP, className="muted small")],
                             className="case-head"),
                    html.Div(f"peak ALT {row.PEAK_ALT_XULN:.2f} · AST {row.PEAK_AST_XULN:.2f} · bilirubin "
                             f"{row.PEAK_BILI_XULN:.2f} ×ULN", className="small"),
                    html.Div(f"transaminase ≥ 3×ULN {row.TRANSAMINASE_ADT:%Y-%m-%d} · bilirubin ≥ 2×ULN "
                             f"{row.BILI_ADT:%Y-%m-%d}", className="small muted"),
                    html.Div(pattern, className="small"),
                ]
            )
        )  # fmt: skip
    if len(cases) > limit:
        items.append(html.Li(f"… and {len(cases) - limit} more (ringed on the plot)", className="case-more"))
    count = f"{len(cases)} potential Hy's law case{'s' if len(cases) > 1 else ''}, the highest bilirubin first"
    return html.Div([html.P(count, className="muted small"), html.Ul(items, className="case-list")])


def build_quadrant_table(quadrants: pd.DataFrame) -> html.Div:
    """Subjects per eDISH quadrant and group (All cohorts first)."""
    frame = quadrants.assign(group=quadrants["group"].replace({ALL_GROUP: "All cohorts"}))
    columns = {"group": "Cohort", **QUADRANT_HEADERS, "not placed": "Not placed"}
    return build_small_table(frame, columns)


def register_callbacks(app: Dash) -> None:
    """Plot, cases and counts from the address; a point click to the subject."""

    @app.callback(
        Output(ids.EDISH_ALERT, "children"),
        Output(ids.EDISH_SCOPE, "children"),
        Output(ids.EDISH_NOTE, "children"),
        Output(ids.EDISH_GRAPH, "figure"),
        Output(ids.EDISH_CASES, "children"),
        Output(ids.EDISH_QUADRANTS, "children"),
        Input(ids.URL, "search"),
    )
    @guard(6)
    def update_edish(search):
        view = load_view(search)
        state = view.state
        lab = load_lab_cut(view.context.engine, view.cut.run_id, view.cut.derived_at)
        if not lab.has_labs:
            empty = make_empty_figure("No laboratory data in this cut", 420)
            return build_alert(NO_LAB_DATA, "info"), describe_scope(view), None, empty, None, None
        edish = load_cut_edish(view.context.engine, view.cut.run_id, view.cut.derived_at, state.cohort)
        notes = []
        if len(edish.points) < edish.n_placed:
            notes.append(f"{len(edish.points):,} of {edish.n_placed:,} subjects drawn: every one outside the "
                         "normal range, and a fixed random sample of it; the counts use every subject.")  # fmt: skip
        unplaced = edish.n_screened - edish.n_placed
        if unplaced:
            notes.append(f"{unplaced:,} subject{'s' if unplaced > 1 else ''} without both an on-treatment ALT or AST "
                         "and a bilirubin ×ULN (or with a value of 0) not placed.")  # fmt: skip
        note = html.P(" ".join(notes), className="muted small") if notes else None
        colours = cohort_colours([g for g in lab.groups if g != MISSING_GROUP])
        counts = edish.quadrants.iloc[0][list(QUADRANTS)].to_dict()  # of the population shown (ALL or the cohort)
        figure = make_edish_figure(edish.points, lab.groups, colours, counts)
        unknown = state.cohort and state.cohort not in lab.groups
        alert = build_alert(f"Cohort {state.cohort} has no subject in the safety population of this cut.",
                            "warning") if unknown else None  # fmt: skip
        return (alert, describe_scope(view), note, figure, build_case_list(edish.cases, state),
                build_quadrant_table(edish.quadrants))  # fmt: skip

    register_subject_click(app, ids.EDISH_GRAPH)  # a click on a subject's point opens the profile


PAGE = Page(
    path="/edish", name="eDISH", title="eDISH: liver safety", layout=layout, register_callbacks=register_callbacks
)
