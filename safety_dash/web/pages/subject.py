"""Subject profile: one subject's course in the cut — infusions, adverse events as bars coloured by grade, the
risk window after the last dose shaded, death — and every AE record with its flags, review status and comments.
Reached by clicking a subject on any page, or by looking one up here.

The review strip says whether the subject (its DM record) and its AE records are reviewed; a monitor marks the
subject and all its records reviewed in one action. The records can be narrowed by review status (address key
``review``, as on the Listings page). Beside them, the comments on the subject and on its records; a monitor
comments on the subject, or on a record after clicking it, and may raise a data query to the site.
"""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from safety_dash.views.review import (
    REVIEW_FILTER_LABELS,
    REVIEW_FILTERS,
    CutReview,
    compute_review_backlog,
    format_utc,
    save_comment,
    save_subject_review,
    subject_comments,
)
from safety_dash.web import ids
from safety_dash.web.auth import require_permission
from safety_dash.web.components import (
    REVIEW_CELL_CLASSES,
    build_alert,
    build_client_grid,
    build_comment_form,
    build_comment_list,
    build_graph,
    build_page_header,
    build_panel,
    build_review_badge,
    build_review_filter,
    build_small_table,
    client_address,
    error_message,
    guard,
    guard_address,
    number_column,
    session_can,
    write_search,
)
from safety_dash.web.data import GROUP_COLUMN, load_subject_exposure, load_subject_record
from safety_dash.web.figures import make_empty_figure, make_subject_timeline_figure
from safety_dash.web.listing import (
    ALL_RECORDS,
    MAX_PAGE_ROWS,
    json_records,
    load_listing_review,
    review_filter_of,
    review_href,
    review_search,
    subject_events,
)
from safety_dash.web.pages import Page
from safety_dash.web.state import state_href
from safety_dash.web.views import find_subjects, load_view, subjects_of_note

EVENT_COLUMNS = [
    {"field": "AESEQ", "headerName": "Seq", "maxWidth": 80},
    {"field": "REVIEW_STATUS", "headerName": "Review", "minWidth": 120, "maxWidth": 130,
     "cellClassRules": REVIEW_CELL_CLASSES, "tooltipField": "REVIEWED_BY"},
    {"field": "COMMENTS", "headerName": "Comments", "minWidth": 110, "maxWidth": 150, "tooltipField": "LAST_COMMENT",
     "cellClassRules": {"cell-flag": "params.value && params.value.includes('open')"}},
    {"field": "PT", "headerName": "Preferred term", "minWidth": 180, "tooltipField": "SOC", "cellClass": "cell-link"},
    {"field": "AETERM", "headerName": "Reported term"},
    {"field": "ASTDT", "headerName": "Onset"},
    number_column("ASTDY", "Day", 0, maxWidth=90),
    {"field": "AEENDTC", "headerName": "End"},
    number_column("GRADE", "Grade", 0, maxWidth=95, cellClassRules={"cell-grade-high": "params.value >= 3"}),
    {"field": "SERIOUS", "headerName": "Serious", "maxWidth": 100},
    {"field": "RELATED", "headerName": "Related", "maxWidth": 100},
    {"field": "AEOUT", "headerName": "Outcome"},
    {"field": "WINDOW_LABEL", "headerName": "Window"},
    {"field": "RECORD_CHANGE", "headerName": "In this cut", "maxWidth": 120},
    {"field": "FLAGS", "headerName": "Flags", "minWidth": 240, "tooltipField": "FLAGS"},
]  # fmt: skip
ON_SUBJECT = "the subject"
READ_ONLY_NOTE = "Your role reads reviews and comments; monitors review, comment and raise data queries."
ROW_ID = "params.data.ROW_ID"  # the record's AE_ID as text (AG Grid wants text ids)


def layout():
    """The subject profile page; the review button and the comment form only for a role that may use them."""
    review_button = html.Button("Mark subject and its records reviewed", id=ids.SUBJECT_REVIEW_BUTTON,
                                className="button", n_clicks=0, hidden=not session_can("review"))  # fmt: skip
    comments = build_panel(
        "Comments",
        [
            html.Div(id=ids.SUBJECT_COMMENTS),
            html.Div(
                [
                    html.Div(id=ids.SUBJECT_COMMENT_TARGET, className="comment-target"),
                    html.Button("Comment on the subject instead", id=ids.SUBJECT_COMMENT_SUBJECT,
                                className="ghost-button", n_clicks=0, hidden=True),
                ],
                className="comment-target-line",
            ),  # fmt: skip
            html.Div(id=ids.SUBJECT_COMMENT_MESSAGE),
            build_comment_form(ids.SUBJECT_COMMENT_FORM, ids.SUBJECT_COMMENT_TEXT, ids.SUBJECT_COMMENT_QUERY,
                               ids.SUBJECT_COMMENT_BUTTON, True),
        ],
        subtitle="on the subject and its AE records, newest first",
        class_name="record-panel",
    )  # fmt: skip
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
            dcc.Store(id=ids.SUBJECT_REVIEW_REFRESH, data=0),
            dcc.Store(id=ids.SUBJECT_RECORD),
            html.Div(
                [
                    html.Section(
                        [html.Div(id=ids.SUBJECT_REVIEW, className="review-strip-text"), review_button,
                         html.Div(id=ids.SUBJECT_REVIEW_MESSAGE, className="review-strip-message")],
                        className="panel review-strip",
                    ),
                    build_panel("Time line", [build_graph(ids.SUBJECT_TIMELINE, 200)], subtitle=html.Span(
                        "ticks: infusions · bars: adverse events by grade · shaded: risk window after the last dose · "
                        "dashed: data cutoff")),
                    html.Div(id=ids.SUBJECT_LAB_PANEL),
                    html.Div(
                        [
                            build_panel("Adverse event records", [
                                html.Div(id=ids.SUBJECT_REVIEW_FILTER, className="review-bar"),
                                build_client_grid(ids.SUBJECT_EVENTS, EVENT_COLUMNS, getRowId=ROW_ID),
                            ], class_name="span-2"),
                            comments,
                        ],
                        className="grid-3",
                    ),
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


def build_review_strip(review: CutReview, usubjid: str, events: pd.DataFrame) -> list:
    """The subject's review in one line: its DM record's status, and how many of its AE records need review."""
    subject = review.subjects.loc[usubjid].to_dict() if usubjid in review.subjects.index else {}
    status = subject.get("REVIEW_STATUS")
    parts: list = [html.Span("Subject record", className="stat-caption"), build_review_badge(status)]
    if subject.get("REVIEWED_BY") and not pd.isna(subject.get("REVIEWED_BY")):
        verb = "by" if status == "reviewed" else "an earlier version reviewed by"
        parts.append(html.Span(f" {verb} {subject['REVIEWED_BY']} on {format_utc(subject['REVIEWED_AT'])} UTC",
                               className="muted small"))  # fmt: skip
    backlog = compute_review_backlog(events) if not events.empty else {"needs review": 0}
    parts += [
        html.Span("AE records", className="stat-caption strip-gap"),
        html.Strong(f"{backlog['needs review']} of {len(events)}"),
        html.Span(" need review", className="muted"),
    ]
    return parts


def _event_rows(events: pd.DataFrame, review_filter: str) -> list[dict]:
    shown = events.loc[events["REVIEW_STATUS"].isin(REVIEW_FILTERS[review_filter])] if not events.empty else events
    return json_records(shown.head(MAX_PAGE_ROWS))


def _filter_links(view, events: pd.DataFrame, active: str):
    statuses = events["REVIEW_STATUS"] if not events.empty else pd.Series([], dtype=object)
    counts = {key: int(statuses.isin(kept).sum()) for key, kept in REVIEW_FILTERS.items()}
    return build_review_filter(counts, active, lambda key: review_href("/subject", view.state, key),
                               REVIEW_FILTER_LABELS)  # fmt: skip


def build_comment_target(events: pd.DataFrame, usubjid: str, version_id) -> tuple[str, bool]:
    """What a new comment is about, in words (the clicked record of the subject's ``events``, else the subject),
    and whether it is a record."""
    found = events.loc[events["AE_ID"] == int(version_id)] if version_id is not None and not events.empty else events
    if version_id is not None and not found.empty:
        record = found.iloc[0]
        return f"AE {record['AESEQ']} · {record['PT']} (version {int(version_id)}, {record['REVIEW_STATUS']})", True
    return f"{ON_SUBJECT} {usubjid}", False


def build_subject_comments(review: CutReview, usubjid: str, events: pd.DataFrame):
    """The comments on the subject and its records, each record named (AE seq and term)."""
    comments = subject_comments(review, usubjid)
    keys = review.ae.reindex(events["AE_ID"].to_numpy())["record_key"] if not events.empty else pd.Series([])
    labels = {("ae", key): f"AE {seq} · {pt}" for key, seq, pt in zip(keys, events["AESEQ"], events["PT"], strict=True)}
    current = {("ae", key): int(v) for key, v in zip(keys, events["AE_ID"], strict=True)}
    if usubjid in review.subjects.index:
        subject = review.subjects.loc[usubjid]
        labels[("subject", subject["record_key"])] = "Subject"
        current[("subject", subject["record_key"])] = int(subject["version_id"])
    for key in set(zip(comments["record_type"], comments["record_key"], strict=True)) - set(labels):
        labels[key] = "AE record not in this cut"
    return build_comment_list(comments, current, labels)


def register_callbacks(app: Dash) -> None:
    """Profile from the address; the picker's suggestions; the picker to the address; the subject's review and
    comments."""

    @app.callback(
        Output(ids.SUBJECT_ALERT, "children"),
        Output(ids.SUBJECT_HEADER, "children"),
        Output(ids.SUBJECT_TIMELINE, "figure"),
        Output(ids.SUBJECT_EVENTS, "rowData"),
        Output(ids.SUBJECT_PICKER, "value"),
        Output(ids.SUBJECT_DETAIL, "hidden"),
        Output(ids.SUBJECT_REVIEW, "children"),
        Output(ids.SUBJECT_REVIEW_FILTER, "children"),
        Input(ids.URL, "search"),
        Input(ids.SUBJECT_REVIEW_REFRESH, "data"),
    )
    @guard(8)
    def update_profile(search, _refresh):
        view = load_view(search)
        usubjid = view.state.subject
        if not usubjid:
            return None, build_subject_prompt(view), make_empty_figure("No subject chosen"), [], None, True, None, None
        record = load_subject_record(view.context.engine, view.cut, usubjid)
        if record is None:
            message = f"Subject {usubjid} is not in data cut {view.cut.run_id} of {view.cut.study_id}."
            empty = make_empty_figure("Subject not in this cut")
            return build_alert(message, "warning"), None, empty, [], usubjid, True, None, None
        review = load_listing_review(view.key)
        events = subject_events(view.key, usubjid, review)
        exposure = load_subject_exposure(view.context.engine, view.cut, usubjid)
        figure = make_subject_timeline_figure(record, exposure, events, view.cut.cutoff, view.cut.window_days)
        note = None
        if len(events) > MAX_PAGE_ROWS:
            note = build_alert(f"The grid shows the first {MAX_PAGE_ROWS} of {len(events)} records.", "info")
        active = review_filter_of(search)
        return (note, build_subject_header(record, events), figure, _event_rows(events, active), usubjid, False,
                build_review_strip(review, usubjid, events), _filter_links(view, events, active))  # fmt: skip

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
        """Choosing a subject writes the address (the review filter kept)."""
        if not usubjid:
            raise PreventUpdate
        view = load_view(search)
        if usubjid == view.state.subject:
            return no_update
        review_filter = review_filter_of(search)
        if review_filter == ALL_RECORDS:
            return write_search(search, view.state.replace(subject=usubjid))
        return review_search(view.state.replace(subject=usubjid), review_filter)

    @app.callback(
        Output(ids.SUBJECT_RECORD, "data"),
        Input(ids.SUBJECT_EVENTS, "cellClicked"),
        Input(ids.SUBJECT_COMMENT_SUBJECT, "n_clicks"),
        Input(ids.URL, "search"),
    )
    def select_record(cell, _subject_clicks, _search):
        """A click on a record makes it what a new comment is about; the button, or another subject, the subject."""
        if ctx.triggered_id == ids.SUBJECT_EVENTS and str((cell or {}).get("rowId") or "").isdigit():
            return int(cell["rowId"])
        return None

    @app.callback(
        Output(ids.SUBJECT_COMMENTS, "children"),
        Output(ids.SUBJECT_COMMENT_TARGET, "children"),
        Output(ids.SUBJECT_COMMENT_SUBJECT, "hidden"),
        Output(ids.SUBJECT_COMMENT_FORM, "hidden"),
        Input(ids.SUBJECT_RECORD, "data"),
        Input(ids.SUBJECT_REVIEW_REFRESH, "data"),
        Input(ids.URL, "search"),
    )
    @guard(4)
    def show_comments(version_id, _refresh, search):
        view = load_view(search)
        usubjid = view.state.subject
        if not usubjid:
            return None, None, True, True
        review = load_listing_review(view.key)
        events = subject_events(view.key, usubjid, review)
        target, on_record = build_comment_target(events, usubjid, version_id)
        can_comment = session_can("comment")
        line = [html.Span("New comment on ", className="muted small"), html.Strong(target),
                html.Span(" · click a record to comment on it", className="muted small")] if can_comment else html.P(
            READ_ONLY_NOTE, className="read-only-note")  # fmt: skip
        return build_subject_comments(review, usubjid, events), line, not (on_record and can_comment), not can_comment

    @app.callback(
        Output(ids.SUBJECT_REVIEW_MESSAGE, "children"),
        Output(ids.SUBJECT_REVIEW_REFRESH, "data"),
        Input(ids.SUBJECT_REVIEW_BUTTON, "n_clicks"),
        State(ids.URL, "search"),
        State(ids.SUBJECT_REVIEW_REFRESH, "data"),
        prevent_initial_call=True,
    )
    def review_subject(n_clicks, search, refresh):
        """Mark the subject and all its AE records of the cut reviewed as the signed-in monitor, in one action."""
        user = require_permission("review")
        if not n_clicks or ctx.triggered_id != ids.SUBJECT_REVIEW_BUTTON:
            raise PreventUpdate
        try:
            view = load_view(search)
            if not view.state.subject:
                raise ValueError("choose a subject first")
            n_subject, n_ae = save_subject_review(view.context.engine, view.cut.study_id, view.cut.run_id,
                                                  view.state.subject, user.username, client_address(),
                                                  source=view.key)  # fmt: skip
        except Exception as error:  # a sentence for the user (ValueError) or a logged reference
            kind, message = error_message(error)
            return build_alert(message, kind, title="Nothing changed"), no_update
        what = ("the subject record and " if n_subject else "") + f"{n_ae} AE record{'s' * (n_ae != 1)}"
        return build_alert(f"Marked reviewed: {what}.", "info", title="Done"), (refresh or 0) + 1

    @app.callback(
        Output(ids.SUBJECT_COMMENT_MESSAGE, "children"),
        Output(ids.SUBJECT_REVIEW_REFRESH, "data", allow_duplicate=True),
        Output(ids.SUBJECT_COMMENT_TEXT, "value"),
        Output(ids.SUBJECT_COMMENT_QUERY, "value"),
        Input(ids.SUBJECT_COMMENT_BUTTON, "n_clicks"),
        State(ids.SUBJECT_RECORD, "data"),
        State(ids.SUBJECT_COMMENT_TEXT, "value"),
        State(ids.SUBJECT_COMMENT_QUERY, "value"),
        State(ids.URL, "search"),
        State(ids.SUBJECT_REVIEW_REFRESH, "data"),
        prevent_initial_call=True,
    )
    def comment_on_subject(n_clicks, version_id, text, query, search, refresh):
        """Comment on the clicked record, else on the subject (a data query when ticked), as the signed-in
        monitor."""
        user = require_permission("comment")
        raise_query = "query" in (query or [])
        if raise_query:
            require_permission("query")
        if not n_clicks or ctx.triggered_id != ids.SUBJECT_COMMENT_BUTTON:
            raise PreventUpdate
        try:
            view = load_view(search)
            comment_id = save_comment(view.context.engine, view.cut.study_id, view.cut.run_id, user.username,
                                      text or "", version_id=version_id, usubjid=view.state.subject,
                                      raise_query=raise_query, address=client_address())  # fmt: skip
        except Exception as error:
            kind, message = error_message(error)
            return build_alert(message, kind, title="Not saved"), no_update, no_update, no_update
        what = f"Data query {comment_id} raised to the site" if raise_query else f"Comment {comment_id} added"
        return build_alert(f"{what}.", "info", title="Saved"), (refresh or 0) + 1, "", []


PAGE = Page(
    path="/subject", name="Subject", title="Subject profile", layout=layout, register_callbacks=register_callbacks
)
