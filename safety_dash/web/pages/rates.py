"""Exposure-adjusted rates: a forest plot of EAIR with exact intervals per cohort for the selected term or basket,
the rate difference of each cohort to a reference cohort, and how the EAIR moved from one data cut to the next."""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, html
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
    guard_figure,
    write_search,
)
from safety_dash.web.data import load_cut, load_cuts
from safety_dash.web.figures import (
    cohort_colours,
    make_forest_figure,
    make_rate_difference_figure,
    make_rate_trend_figure,
    order_groups,
)
from safety_dash.web.pages import Page
from safety_dash.web.state import ViewState, select_term, state_href, term_value
from safety_dash.web.views import (
    load_rate_difference,
    load_rate_trend,
    load_term_rates,
    load_view,
    term_of,
    term_options,
)


def build_term_controls(term_id: str, reference_id: str | None = None) -> html.Div:
    """The term picker (baskets and PTs) and, for rates, the reference cohort picker."""
    controls = [
        html.Div(
            [html.Label("Term or basket", className="field-label"), dcc.Dropdown(id=term_id, clearable=True)],
            className="field field-term",
        )
    ]
    if reference_id:
        controls.append(
            html.Div(
                [
                    html.Label("Reference cohort", className="field-label"),
                    dcc.Dropdown(id=reference_id, clearable=False),
                ],
                className="field field-reference",
            )
        )
    return html.Div(controls, className="controls")


def layout():
    """The rates page."""
    return html.Div(
        [
            build_page_header(
                "Exposure-adjusted rates",
                "EAIR per 100 patient-years with exact 95% intervals per cohort, for a preferred term or an AE basket.",
            ),
            build_term_controls(ids.RATES_TERM, ids.RATES_REFERENCE),
            html.Div(id=ids.RATES_ALERT),
            html.Div(
                [
                    build_panel(
                        html.Span(id=ids.RATES_TITLE),
                        [build_graph(ids.RATES_FOREST, 380)],
                        subtitle="marker size grows with subjects with the event · dotted line: all cohorts · "
                        "square: reference cohort",
                    ),
                    build_panel(
                        "Rate difference to the reference",
                        [build_graph(ids.RATES_DIFFERENCE, 380)],
                        subtitle="EAIR difference per 100 PY with Miettinen–Nurminen 95% intervals",
                    ),
                ],
                className="grid-2",
            ),
            html.Div(
                [
                    build_panel(
                        "EAIR at each data cut",
                        [build_graph(ids.RATES_TREND, 300)],
                        subtitle="the same term and filters in every cut up to this one · band: 95% interval",
                    ),
                    build_panel("Numbers", [html.Div(id=ids.RATES_NUMBERS)], class_name="numbers"),
                ],
                className="grid-2",
            ),
        ]
    )


def rates_table(rates: pd.DataFrame, difference: pd.DataFrame) -> pd.DataFrame:
    """The forest plot's numbers, one row per cohort, with the difference to the reference."""
    order = order_groups(rates["group"])
    frame = rates.set_index("group").loc[order].reset_index()
    table = pd.DataFrame(
        {
            "cohort": frame["group"].replace({ALL_GROUP: "All cohorts"}),
            "n": [f"{x}/{n}" for x, n in zip(frame["n_with_event"], frame["n_subjects"], strict=False)],
            "incidence": [
                f"{p:.1f}% ({lo:.1f}–{hi:.1f})"
                for p, lo, hi in zip(
                    frame["incidence_pct"], frame["incidence_ci_low"], frame["incidence_ci_high"], strict=False
                )
            ],
            "py": [f"{v:.1f}" for v in frame["patient_years_at_risk"]],
            "eair": [
                f"{e:.1f} ({lo:.1f}–{hi:.1f})"
                for e, lo, hi in zip(frame["eair_per_100py"], frame["eair_ci_low"], frame["eair_ci_high"], strict=False)
            ],
        }
    )
    if not difference.empty:
        by_group = difference.set_index("group")
        table["difference"] = [
            f"{by_group.at[g, 'eair_difference_per_100py']:+.1f} ({by_group.at[g, 'mn_ci_low']:.1f} to "
            f"{by_group.at[g, 'mn_ci_high']:.1f})"
            if g in by_group.index
            else "reference"
            if g == difference["reference_group"].iloc[0]
            else ""
            for g in frame["group"]
        ]
    return table


def default_reference(rates: pd.DataFrame, state: ViewState) -> str | None:
    """The reference cohort: the one in the address, else the largest cohort."""
    cohorts = rates.loc[rates["group"] != ALL_GROUP]
    if cohorts.empty:
        return None
    if state.ref in set(cohorts["group"]):
        return state.ref
    return str(cohorts.sort_values(["n_subjects", "group"], ascending=[False, True]).iloc[0]["group"])


def register_callbacks(app: Dash) -> None:
    """Forest plot, difference and numbers from the address; pickers to the address; the trend across cuts."""

    @app.callback(
        Output(ids.RATES_ALERT, "children"),
        Output(ids.RATES_TERM, "options"),
        Output(ids.RATES_TERM, "value"),
        Output(ids.RATES_TERM, "placeholder"),
        Output(ids.RATES_REFERENCE, "options"),
        Output(ids.RATES_REFERENCE, "value"),
        Output(ids.RATES_TITLE, "children"),
        Output(ids.RATES_FOREST, "figure"),
        Output(ids.RATES_DIFFERENCE, "figure"),
        Output(ids.RATES_NUMBERS, "children"),
        Input(ids.URL, "search"),
    )
    @guard(10)
    def update_rates(search):
        view = load_view(search)
        state, key = view.state, view.key
        kind, name = term_of(view.context, key.frames, state)
        rates = load_term_rates(key, kind, name, state.min_grade, state.serious, state.related)
        label = f"{name} (basket)" if kind == "basket" else name
        if rates.empty:
            empty = make_forest_figure(rates, None, label)
            return (None, term_options(key), term_value(state), f"{label} (default)", [], None, label, empty, empty, [])
        reference = default_reference(rates, state)
        colours = cohort_colours(key.frames.cohorts)
        difference = load_rate_difference(rates, reference) if reference else pd.DataFrame()
        shown = rates if not state.cohort else rates.loc[rates["group"].isin([ALL_GROUP, state.cohort, reference])]
        if state.cohort and not difference.empty:
            difference = difference.loc[difference["group"] == state.cohort]
        cohorts = [g for g in order_groups(rates["group"]) if g != ALL_GROUP]
        columns = {"cohort": "Cohort", "n": "n/N", "incidence": "Incidence (95% CI)", "py": "PY at risk",
                   "eair": "EAIR /100 PY (95% CI)", "difference": f"Difference to {reference}"}  # fmt: skip
        table = rates_table(shown, difference)
        return (
            None,
            term_options(key),
            term_value(state),
            f"{label} (default)",
            [{"label": c, "value": c} for c in cohorts],
            reference,
            f"{label}: EAIR by cohort",
            make_forest_figure(shown, reference, label, colours),
            make_rate_difference_figure(difference, reference, colours),
            build_small_table(table, {c: h for c, h in columns.items() if c in table.columns}),
        )

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.RATES_TERM, "value"),
        Input(ids.RATES_REFERENCE, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def pick(term, reference, search):
        """The term and reference pickers write the address."""
        view = load_view(search)
        state = view.state
        if ctx.triggered_id == ids.RATES_TERM:
            state = select_term(state, term)
        elif ctx.triggered_id == ids.RATES_REFERENCE:
            state = state.replace(ref=reference)
        else:
            raise PreventUpdate
        if state_href("", state) == state_href("", view.state):
            raise PreventUpdate
        return write_search(search, state)

    @app.callback(Output(ids.RATES_TREND, "figure"), Input(ids.URL, "search"))
    @guard_figure
    def update_trend(search):
        """EAIR of the term per cohort in every cut of the study up to the one shown."""
        view = load_view(search)
        state = view.state
        kind, name = term_of(view.context, view.key.frames, state)
        cuts = load_cuts(view.context.engine, view.cut.study_id)
        earlier = [load_cut(view.context.engine, int(r)) for r in cuts["run_id"] if int(r) <= view.cut.run_id]
        trend = load_rate_trend(view.context, [c for c in earlier if c is not None], kind, name, state)
        return make_rate_trend_figure(trend, state.cohort, cohort_colours(view.key.frames.cohorts))


PAGE = Page(
    path="/rates", name="Rates", title="Exposure-adjusted rates", layout=layout, register_callbacks=register_callbacks
)
