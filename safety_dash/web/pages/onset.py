"""Time to onset: cumulative incidence of the first qualifying event by cohort (Aalen–Johansen, death as a
competing event) and the distribution of first onset days per term or basket; a point opens the subject."""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, State, html
from dash.exceptions import PreventUpdate

from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.web import ids
from safety_dash.web.components import (
    build_graph,
    build_page_header,
    build_panel,
    build_small_table,
    guard,
    guard_address,
    register_subject_click,
    write_search,
)
from safety_dash.web.figures import (
    cohort_colours,
    make_cumulative_incidence_figure,
    make_onset_distribution_figure,
    order_groups,
)
from safety_dash.web.pages import Page
from safety_dash.web.pages.rates import build_term_controls
from safety_dash.web.state import select_term, state_href, term_value
from safety_dash.web.views import load_onset, load_view, term_of, term_options


def layout():
    """The time-to-onset page."""
    return html.Div(
        [
            build_page_header(
                "Time to onset",
                "When the first qualifying event occurs, by cohort: cumulative incidence with death as a competing "
                "event, and each subject's first onset day.",
            ),
            build_term_controls(ids.ONSET_TERM),
            html.Div(id=ids.ONSET_ALERT),
            html.Div(
                [
                    build_panel(
                        html.Span(id=ids.ONSET_TITLE),
                        [build_graph(ids.ONSET_CURVES, 380)],
                        subtitle="Aalen–Johansen estimate; censored at the end of the risk window or the data cutoff",
                        class_name="span-2",
                    ),
                    build_panel("Median and IQR of the first onset day", [html.Div(id=ids.ONSET_SUMMARY)]),
                ],
                className="grid-3",
            ),
            build_panel(
                "First onset day per subject",
                [build_graph(ids.ONSET_DISTRIBUTION, 360)],
                subtitle="one point per subject · click a point to open the subject's profile",
            ),
        ]
    )


def summary_table(summary: pd.DataFrame, cohort: str | None) -> pd.DataFrame:
    """The onset summary in display form, cohorts in natural order."""
    groups = [g for g in order_groups(summary["group"]) if not cohort or g in (ALL_GROUP, cohort)]
    frame = summary.set_index("group").loc[groups].reset_index()

    def day(value) -> str:
        return "–" if pd.isna(value) else f"{value:.0f}"

    return pd.DataFrame(
        {
            "cohort": frame["group"].replace({ALL_GROUP: "All cohorts"}),
            "n": [f"{x}/{n}" for x, n in zip(frame["n_with_event"], frame["n_subjects"], strict=False)],
            "median": [day(v) for v in frame["median_onset_day"]],
            "iqr": [
                f"{day(a)}–{day(b)}" if pd.notna(a) else "–"
                for a, b in zip(frame["q1_onset_day"], frame["q3_onset_day"], strict=False)
            ],
        }
    )


def register_callbacks(app: Dash) -> None:
    """Curves, distribution and summary from the address; picker to the address; point click to the subject."""

    @app.callback(
        Output(ids.ONSET_ALERT, "children"),
        Output(ids.ONSET_TERM, "options"),
        Output(ids.ONSET_TERM, "value"),
        Output(ids.ONSET_TERM, "placeholder"),
        Output(ids.ONSET_TITLE, "children"),
        Output(ids.ONSET_CURVES, "figure"),
        Output(ids.ONSET_DISTRIBUTION, "figure"),
        Output(ids.ONSET_SUMMARY, "children"),
        Input(ids.URL, "search"),
    )
    @guard(8)
    def update_onset(search):
        view = load_view(search)
        state, key = view.state, view.key
        kind, name = term_of(view.context, key.frames, state)
        onset = load_onset(key, kind, name, state.min_grade, state.serious, state.related)
        label = f"{name} (basket)" if kind == "basket" else name
        colours = cohort_colours(key.frames.cohorts)
        note = None
        if onset.n_points_total > len(onset.points):
            note = html.P(
                f"{len(onset.points):,} of {onset.n_points_total:,} subjects drawn (a fixed random sample); the boxes "
                "and the summary use every subject.",
                className="muted small",
            )
        table = summary_table(onset.summary, state.cohort)
        return (
            note,
            term_options(key),
            term_value(state),
            f"{label} (default)",
            f"{label}: cumulative incidence of the first event",
            make_cumulative_incidence_figure(onset.curves, state.cohort, view.cut.window_days, colours),
            make_onset_distribution_figure(onset.points, state.cohort, colours),
            build_small_table(table, {"cohort": "Cohort", "n": "n/N", "median": "Median day", "iqr": "IQR"}),
        )

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.ONSET_TERM, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def pick(term, search):
        """The term picker writes the address."""
        view = load_view(search)
        state = select_term(view.state, term)
        if state_href("", state) == state_href("", view.state):
            raise PreventUpdate
        return write_search(search, state)

    register_subject_click(app, ids.ONSET_DISTRIBUTION)  # a click on a subject's point opens the profile


PAGE = Page(path="/onset", name="Onset", title="Time to onset", layout=layout, register_callbacks=register_callbacks)
