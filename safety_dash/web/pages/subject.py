"""Subject profile: one subject's course in the cut — infusions, adverse events as bars coloured by grade, the
risk window after the last dose shaded, death — and every AE record with its flags. Reached by clicking a subject
on any page, or by looking one up here."""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from safety_dash.web import ids
from safety_dash.web.components import (
    build_alert,
    build_client_grid,
    build_graph,
    build_page_header,
    build_panel,
    build_small_table,
    guard,
    guard_address,
    number_column,
    write_search,
)
from safety_dash.web.data import GROUP_COLUMN, load_subject_exposure, load_subject_record
from safety_dash.web.figures import make_empty_figure, make_subject_timeline_figure
from safety_dash.web.listing import MAX_PAGE_ROWS, json_records, subject_events
from safety_dash.web.pages import Page
from safety_dash.web.state import state_href
from safety_dash.web.views import find_subjects, load_view, subjects_of_note

EVENT_COLUMNS = [
    {"field": "AESEQ", "headerName": "Seq", "maxWidth": 80},
    {"field": "PT", "headerName": "Preferred term", "minWidth": 180, "tooltipField": "SOC"},
    {"field": "AETERM", "headerName": "Reported term"},
    {"field": "ASTDT", "headerName": "Onset"},
    number_column("ASTDY", "Day", 0, maxWidth=90),
    {"field": "AEENDTC", "headerName": "End"},
    number_column("GRADE", "Grade", 0, maxWidth=95, cellClassRules={"cell-grade-high": "params.value >= 3"}),
    {"field": "SERIOUS", "headerName": "Serious", "maxWidth": 100},
    {"field": "RELATED", "headerName": "Related", "maxWidth": 100},
    {"field": "AEOUT", "headerName": "Outcome"},
    {"field": "WINDOW_LABEL", "headerName": "Window"},
    {"field": "FLAGS", "headerName": "Flags", "minWidth": 240, "tooltipField": "FLAGS"},
]


def layout():
    """The subject profile page."""
    return html.Div(
        [
            build_page_header(
                "Subject profile",
                "Infusions, adverse events by grade, the risk window after the last dose and death, on one time line.",
                actions=[
                    dcc.Dropdown(
                        id=ids.SUBJECT_PICKER,
                        placeholder="Find a subject (USUBJID)…",
                        searchable=True,
                        clearable=False,
                        className="subject-picker",
                    )
                ],
            ),
            html.Div(id=ids.SUBJECT_ALERT),
            html.Div(id=ids.SUBJECT_HEADER),
            html.Div(
                [
                    build_panel("Time line", [build_graph(ids.SUBJECT_TIMELINE, 200)], subtitle=html.Span(
                        "ticks: infusions · bars: adverse events by grade · shaded: risk window after the last dose · "
                        "dashed: data cutoff")),
                    build_panel("Adverse event records", [build_client_grid(ids.SUBJECT_EVENTS, EVENT_COLUMNS)]),
                ],
                id=ids.SUBJECT_DETAIL,
            ),
        ]
    )  # fmt: skip


def _fact(label: str, value) -> html.Div:
    text = "–" if value is None or (isinstance(value, float) and pd.isna(value)) or value == "" else str(value)
    return html.Div(
        [html.Span(label, className="fact-label"), html.Span(text, className="fact-value")], className="fact"
    )


def build_subject_header(record: dict, events: pd.DataFrame) -> html.Section:
    """Who the subject is and the shape of their course, in one block."""
    te = events.loc[events["WINDOW_LABEL"] == "treatment-emergent"]
    worst = te["GRADE"].max() if not te.empty else None
    died = record.get("dthdt")
    facts = [
        _fact("Cohort", record.get("cohort")),
        _fact("Site", record.get("siteid")),
        _fact("Age / sex", f"{record.get('age') or '?'} / {record.get('sex') or '?'}"),
        _fact("Arm", record.get("actarm") or record.get("arm")),
        _fact("First dose", record.get("trtsdt")),
        _fact("Last dose", record.get("trtedt")),
        _fact("Doses", record.get("n_doses")),
        _fact("Risk window ends", record.get("window_end")),
        _fact("Days at risk", record.get("days_at_risk")),
        _fact("Death", died),
        _fact("TEAE records", len(te)),
        _fact("Worst grade", None if worst is None or pd.isna(worst) else int(worst)),
    ]
    badges = []
    if died:
        badges.append(html.Span("died", className="badge badge-danger"))
    if not record.get("saffl"):
        badges.append(html.Span("not in the safety population", className="badge badge-warn"))
    if (te["SERIOUS"] == "Y").any():
        badges.append(html.Span("serious AE", className="badge badge-warn"))
    title = html.Div([html.H2(record["usubjid"], className="subject-id"), *badges], className="subject-title")
    return html.Section([title, html.Div(facts, className="facts")], className="panel subject-header")


def build_subject_prompt(view) -> html.Section:
    """What the page shows before a subject is chosen: subjects worth a look, as links."""
    scope = f" of cohort {view.state.cohort}" if view.state.cohort else ""
    notable = subjects_of_note(view.key, cohort=view.state.cohort).assign(
        worst=lambda f: f["worst"].astype("string").fillna("?")
    )
    table = build_small_table(
        notable,
        {"USUBJID": "Subject", GROUP_COLUMN: "Cohort", "n": "Grade ≥ 3 or serious records", "worst": "Worst grade"},
        links={"USUBJID": lambda row: state_href("/subject", view.state.replace(subject=row["USUBJID"]))},
    )
    return build_panel(
        "Choose a subject",
        [
            html.P(f"Look one up above, click a subject on any page, or start with these{scope}:", className="muted"),
            table,
        ],
    )


def register_callbacks(app: Dash) -> None:
    """Profile from the address; the picker's suggestions; the picker to the address."""

    @app.callback(
        Output(ids.SUBJECT_ALERT, "children"),
        Output(ids.SUBJECT_HEADER, "children"),
        Output(ids.SUBJECT_TIMELINE, "figure"),
        Output(ids.SUBJECT_EVENTS, "rowData"),
        Output(ids.SUBJECT_PICKER, "value"),
        Output(ids.SUBJECT_DETAIL, "hidden"),
        Input(ids.URL, "search"),
    )
    @guard(6)
    def update_profile(search):
        view = load_view(search)
        usubjid = view.state.subject
        if not usubjid:
            return None, build_subject_prompt(view), make_empty_figure("No subject chosen"), [], None, True
        record = load_subject_record(view.context.engine, view.cut, usubjid)
        if record is None:
            message = f"Subject {usubjid} is not in data cut {view.cut.run_id} of {view.cut.study_id}."
            empty = make_empty_figure("Subject not in this cut")
            return build_alert(message, "warning"), None, empty, [], usubjid, True
        events = subject_events(view.key, usubjid)
        exposure = load_subject_exposure(view.context.engine, view.cut, usubjid)
        figure = make_subject_timeline_figure(record, exposure, events, view.cut.cutoff, view.cut.window_days)
        note = None
        if len(events) > MAX_PAGE_ROWS:
            note = build_alert(f"The grid shows the first {MAX_PAGE_ROWS} of {len(events)} records.", "info")
        rows = json_records(events.head(MAX_PAGE_ROWS))
        return note, build_subject_header(record, events), figure, rows, usubjid, False

    @app.callback(
        Output(ids.SUBJECT_PICKER, "options"),
        Input(ids.SUBJECT_PICKER, "search_value"),
        Input(ids.URL, "search"),
    )
    def suggest_subjects(text, search):
        """Up to 20 subjects of the cohort filter's cohort matching what was typed (the chosen one always among
        them)."""
        try:
            view = load_view(search)
        except ValueError:
            return []
        found = find_subjects(view.key, text, cohort=view.state.cohort)
        if view.state.subject and view.state.subject not in found:
            found.insert(0, view.state.subject)
        return [{"label": s, "value": s} for s in found]

    @app.callback(
        Output(ids.URL, "search", allow_duplicate=True),
        Input(ids.SUBJECT_PICKER, "value"),
        State(ids.URL, "search"),
        prevent_initial_call=True,
    )
    @guard_address
    def pick_subject(usubjid, search):
        """Choosing a subject writes the address."""
        if not usubjid:
            raise PreventUpdate
        view = load_view(search)
        if usubjid == view.state.subject:
            return no_update
        return write_search(search, view.state.replace(subject=usubjid))


PAGE = Page(
    path="/subject", name="Subject", title="Subject profile", layout=layout, register_callbacks=register_callbacks
)
