"""Listings: every AE record of the cut with its flags (treatment-emergent or outside the window, imputed onset,
grade from severity, new or changed in this cut), its review status and comments, narrowed by the filter bar, the
review filter (address key ``review``) and the grid's column filters, one page at a time, and exported whole to CSV.

Monitors work through the review backlog here: "Needs review" lists the records never reviewed and those changed
since their review; tick records (or click one) and **Mark reviewed**. Clicking a record shows its review and its
comments beside the grid, where a monitor comments or raises a data query to the site. Committee members and admins
read the same page without the buttons and the form; the server refuses their writes whatever the browser sends.
"""

from __future__ import annotations

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from safety_dash.views.review import (
    REVIEW_FILTER_LABELS,
    ae_record,
    format_utc,
    record_comments,
    save_comment,
    save_reviews,
)
from safety_dash.web import ids
from safety_dash.web.auth import require_permission
from safety_dash.web.components import (
    REVIEW_CELL_CLASSES,
    build_alert,
    build_comment_form,
    build_comment_list,
    build_grid,
    build_page_header,
    build_panel,
    build_review_badge,
    build_review_filter,
    client_address,
    error_message,
    guard,
    guard_address,
    guard_rows,
    number_column,
    register_grid_purge,
    register_grid_refresh,
    session_can,
)
from safety_dash.web.listing import (
    ALL_RECORDS,
    json_records,
    listing_backlog,
    listing_count,
    listing_csv,
    listing_page,
    load_listing_review,
    review_filter_of,
    review_href,
    subject_events,
)
from safety_dash.web.pages import Page
from safety_dash.web.state import ViewState
from safety_dash.web.views import load_view

SELECTION_COLUMN = "ag-Grid-SelectionColumn"
ROW_ID = "params.data.ROW_ID"  # the record's AE_ID as text (AG Grid wants text ids)
SELECTION_COLUMN_DEF = {"pinned": "left", "width": 46, "maxWidth": 46, "minWidth": 46, "resizable": False}
LISTING_COLUMNS = [
    {"field": "USUBJID", "headerName": "Subject", "cellClass": "cell-link", "pinned": "left", "minWidth": 175},
    {"field": "REVIEW_STATUS", "headerName": "Review", "minWidth": 125, "maxWidth": 135,
     "cellClassRules": REVIEW_CELL_CLASSES, "tooltipField": "REVIEWED_BY"},
    {"field": "COMMENTS", "headerName": "Comments", "minWidth": 120, "maxWidth": 150,
     "tooltipField": "LAST_COMMENT", "cellClassRules": {"cell-flag": "params.value && params.value.includes('open')"}},
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
    {"field": "REVIEWED_BY", "headerName": "Reviewed by", "minWidth": 120},
    {"field": "REVIEWED_AT", "headerName": "Reviewed at (UTC)", "minWidth": 150},
]  # fmt: skip
NO_RECORD = "Click a record to see its review and comments"
READ_ONLY_NOTE = "Your role reads reviews and comments; monitors review, comment and raise data queries."


def build_review_actions(can_review: bool) -> html.Div:
    """The buttons that review the ticked records (monitors only)."""
    return html.Div(
        [
            html.Button("Mark reviewed", id=ids.LISTING_REVIEW_BUTTON, className="button", n_clicks=0),
            html.Button("Withdraw review", id=ids.LISTING_UNREVIEW_BUTTON, className="ghost-button", n_clicks=0),
        ],
        id=ids.LISTING_REVIEW_ACTIONS,
        className="review-actions",
        hidden=not can_review,
    )


def layout():
    """The listings page; the review buttons, the tick boxes and the comment form only for a role that may use
    them."""
    can_review, can_comment = session_can("review"), session_can("comment")
    selection = (
        {"mode": "multiRow", "checkboxes": True, "headerCheckbox": False, "enableClickSelection": True}
        if can_review
        else {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True}
    )
    options = {"rowSelection": selection, "selectionColumnDef": SELECTION_COLUMN_DEF}
    grid = build_grid(ids.LISTING_GRID, LISTING_COLUMNS, height=640, getRowId=ROW_ID, dashGridOptions=options)
    return html.Div(
        [
            build_page_header(
                "Listings",
                "Every adverse event record of the cut with its flags and review status. Filter with the bar above, "
                "the review status and the column menus; click a record for its comments.",
                actions=[
                    html.Button("Export CSV", id=ids.LISTING_EXPORT, className="button", n_clicks=0),
                    dcc.Download(id=ids.LISTING_DOWNLOAD),
                ],
            ),
            html.Div(id=ids.LISTING_ALERT),
            dcc.Store(id=ids.LISTING_REVIEW_REFRESH, data=0),
            dcc.Store(id=ids.LISTING_RECORD),
            html.Div(
                [
                    build_panel(
                        html.Span(id=ids.LISTING_COUNT),
                        [
                            html.Div(
                                [html.Div(id=ids.LISTING_REVIEW_FILTER), build_review_actions(can_review)],
                                className="review-bar",
                            ),
                            html.Div(id=ids.LISTING_REVIEW_MESSAGE),
                            grid,
                        ],
                        subtitle=html.Span(id=ids.LISTING_SCOPE),
                        class_name="span-2",
                    ),
                    build_panel(
                        html.Span(NO_RECORD, id=ids.LISTING_RECORD_TITLE),
                        [
                            html.Div(id=ids.LISTING_RECORD_DETAIL),
                            html.Div(id=ids.LISTING_COMMENT_MESSAGE),
                            build_comment_form(
                                ids.LISTING_COMMENT_FORM,
                                ids.LISTING_COMMENT_TEXT,
                                ids.LISTING_COMMENT_QUERY,
                                ids.LISTING_COMMENT_BUTTON,
                                True,
                            ),
                            html.P(READ_ONLY_NOTE, className="read-only-note", hidden=can_comment),
                        ],  # fmt: skip
                        class_name="record-panel",
                    ),
                ],
                className="grid-3 listing-layout",
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


def filter_counts(backlog: dict[str, int]) -> dict[str, int]:
    """The count beside each review filter, from the listing's backlog."""
    return {
        "all": sum(backlog[status] for status in ("not reviewed", "outdated", "reviewed")),
        "needs": backlog["needs review"],
        "not-reviewed": backlog["not reviewed"],
        "outdated": backlog["outdated"],
        "reviewed": backlog["reviewed"],
    }


def _sort_model(column_state) -> list[dict]:
    ordered = sorted((c for c in column_state or [] if c.get("sort")), key=lambda c: c.get("sortIndex") or 0)
    return [{"colId": c["colId"], "sort": c["sort"]} for c in ordered]


def build_record_detail(record: dict, comments) -> list:
    """One AE record beside the grid: what it is, its review and its comments."""
    status = record.get("REVIEW_STATUS")
    review = [build_review_badge(status)]
    if record.get("REVIEWED_BY"):
        verb = "reviewed" if status == "reviewed" else "an earlier version reviewed"
        review.append(html.Span(f" {verb} by {record['REVIEWED_BY']} on {format_utc(record['REVIEWED_AT'])} UTC",
                                className="muted small"))  # fmt: skip
    grade = record.get("GRADE")
    facts = [
        ("Subject", record["USUBJID"]),
        ("Term", f"{record.get('PT') or ''} (reported: {record.get('AETERM') or ''})"),
        ("Onset", f"{record.get('ASTDT') or '?'} · grade {grade if grade is not None else '?'}"
                  f" · serious {record.get('SERIOUS')}"),
        ("In this cut", f"{record.get('RECORD_CHANGE') or ''} · version {record['AE_ID']}"),
    ]  # fmt: skip
    current = {("ae", record["record_key"]): record["AE_ID"]}
    return [
        html.Div(review, className="record-review"),
        html.Dl(
            [part for label, value in facts for part in (html.Dt(label), html.Dd(value))], className="record-facts"
        ),
        html.H3(f"Comments ({len(comments)})", className="minor"),
        build_comment_list(comments, current),
    ]


def _listing_record(view, version_id) -> tuple[dict, object] | None:
    """The listed row of the AE record with version ``version_id`` (with its review columns) and the comments on
    the record, or None when it is not in the cut."""
    review = load_listing_review(view.key)
    found = ae_record(review, version_id)
    if found is None:
        return None
    rows = subject_events(view.key, found["usubjid"], review)
    row = json_records(rows.loc[rows["AE_ID"] == int(version_id)])[0]
    row["record_key"] = found["record_key"]
    return row, record_comments(review, "ae", found["record_key"])


def register_callbacks(app: Dash) -> None:
    """Count, scope and review filter from the address; paging; export; subject clicks; a clicked record's review
    and comments; reviewing and commenting."""

    @app.callback(
        Output(ids.LISTING_ALERT, "children"),
        Output(ids.LISTING_COUNT, "children"),
        Output(ids.LISTING_SCOPE, "children"),
        Output(ids.LISTING_REVIEW_FILTER, "children"),
        Input(ids.URL, "search"),
        Input(ids.LISTING_REVIEW_REFRESH, "data"),
    )
    @guard(4)
    def update_scope(search, _refresh):
        view = load_view(search)
        active = review_filter_of(search)
        counts = filter_counts(listing_backlog(view.key, view.state))
        count = listing_count(view.key, view.state, active)
        label = "" if active == ALL_RECORDS else f" · {REVIEW_FILTER_LABELS[active].lower()}"
        links = build_review_filter(counts, active, lambda key: review_href("/listings", view.state, key),
                                    REVIEW_FILTER_LABELS)  # fmt: skip
        return None, f"{count:,} AE records in data cut {view.cut.run_id}{label}", describe_scope(view.state), links

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
        return listing_page(view.key, view.state, request, review_filter_of(search))

    register_grid_refresh(app, ids.LISTING_GRID, ids.URL)
    register_grid_purge(app, ids.LISTING_GRID, ids.LISTING_REVIEW_REFRESH)

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
        text = listing_csv(view.key, view.state, filter_model, _sort_model(column_state), review_filter_of(search))
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
        """A click on a subject opens the subject's profile (with the same review filter)."""
        if (cell or {}).get("colId") != "USUBJID" or not cell.get("value"):
            return no_update
        state = load_view(search).state.replace(subject=cell["value"])
        return review_href("/subject", state, review_filter_of(search))

    @app.callback(
        Output(ids.LISTING_RECORD, "data"),
        Input(ids.LISTING_GRID, "cellClicked"),
        prevent_initial_call=True,
    )
    def select_record(cell):
        """A click on a record (not on its subject or tick box) shows it beside the grid."""
        cell = cell or {}
        if cell.get("colId") in (None, "USUBJID", SELECTION_COLUMN) or not str(cell.get("rowId") or "").isdigit():
            raise PreventUpdate
        return int(cell["rowId"])

    @app.callback(
        Output(ids.LISTING_RECORD_TITLE, "children"),
        Output(ids.LISTING_RECORD_DETAIL, "children"),
        Output(ids.LISTING_COMMENT_FORM, "hidden"),
        Input(ids.LISTING_RECORD, "data"),
        Input(ids.LISTING_REVIEW_REFRESH, "data"),
        Input(ids.URL, "search"),
    )
    @guard(3, alert_index=1)
    def show_record(version_id, _refresh, search):
        if version_id is None:
            return NO_RECORD, None, True
        view = load_view(search)
        found = _listing_record(view, version_id)
        if found is None:
            return NO_RECORD, build_alert(f"That record is not in data cut {view.cut.run_id}.", "info"), True
        record, comments = found
        title = f"{record['USUBJID']} · AE {record.get('AESEQ') or '?'} · {record.get('PT') or ''}"
        return title, build_record_detail(record, comments), not session_can("comment")

    @app.callback(
        Output(ids.LISTING_REVIEW_MESSAGE, "children"),
        Output(ids.LISTING_REVIEW_REFRESH, "data"),
        Output(ids.LISTING_GRID, "selectedRows"),
        Input(ids.LISTING_REVIEW_BUTTON, "n_clicks"),
        Input(ids.LISTING_UNREVIEW_BUTTON, "n_clicks"),
        State(ids.LISTING_GRID, "selectedRows"),
        State(ids.URL, "search"),
        State(ids.LISTING_REVIEW_REFRESH, "data"),
        prevent_initial_call=True,
    )
    def review_selected(_review, _withdraw, rows, search, refresh):
        """Mark the ticked records reviewed (or withdraw their review) as the signed-in monitor."""
        user = require_permission("review")  # 403 for any other role, whatever the browser shows
        if ctx.triggered_id not in (ids.LISTING_REVIEW_BUTTON, ids.LISTING_UNREVIEW_BUTTON):
            raise PreventUpdate
        reviewed = ctx.triggered_id == ids.LISTING_REVIEW_BUTTON
        try:
            view = load_view(search)
            versions = [row.get("AE_ID") for row in rows or [] if isinstance(row, dict)]
            changed = save_reviews(view.context.engine, view.cut.study_id, view.cut.run_id, versions, user.username,
                                   reviewed, client_address())  # fmt: skip
        except Exception as error:  # a sentence for the user (ValueError) or a logged reference
            kind, message = error_message(error)
            return build_alert(message, kind, title="Nothing changed"), no_update, no_update
        verb = "marked reviewed" if reviewed else "withdrawn from review"
        text = f"{changed} of {len(versions)} selected record{'s' * (len(versions) != 1)} {verb}."
        if changed < len(versions):
            text += " The others were so already."
        return build_alert(text, "info", title="Done"), (refresh or 0) + 1, []

    @app.callback(
        Output(ids.LISTING_COMMENT_MESSAGE, "children"),
        Output(ids.LISTING_REVIEW_REFRESH, "data", allow_duplicate=True),
        Output(ids.LISTING_COMMENT_TEXT, "value"),
        Output(ids.LISTING_COMMENT_QUERY, "value"),
        Input(ids.LISTING_COMMENT_BUTTON, "n_clicks"),
        State(ids.LISTING_RECORD, "data"),
        State(ids.LISTING_COMMENT_TEXT, "value"),
        State(ids.LISTING_COMMENT_QUERY, "value"),
        State(ids.URL, "search"),
        State(ids.LISTING_REVIEW_REFRESH, "data"),
        prevent_initial_call=True,
    )
    def comment_on_record(n_clicks, version_id, text, query, search, refresh):
        """Comment on the shown record (a data query to the site when ticked) as the signed-in monitor."""
        user = require_permission("comment")
        raise_query = "query" in (query or [])
        if raise_query:
            require_permission("query")
        if not n_clicks or ctx.triggered_id != ids.LISTING_COMMENT_BUTTON:
            raise PreventUpdate
        if version_id is None:
            return build_alert("Click a record first.", "warning"), no_update, no_update, no_update
        try:
            view = load_view(search)
            comment_id = save_comment(view.context.engine, view.cut.study_id, view.cut.run_id, user.username,
                                      text or "", version_id=version_id, raise_query=raise_query,
                                      address=client_address())  # fmt: skip
        except Exception as error:
            kind, message = error_message(error)
            return build_alert(message, kind, title="Not saved"), no_update, no_update, no_update
        what = f"Data query {comment_id} raised to the site" if raise_query else f"Comment {comment_id} added"
        return build_alert(f"{what}.", "info", title="Saved"), (refresh or 0) + 1, "", []


PAGE = Page(path="/listings", name="Listings", title="Listings", layout=layout, register_callbacks=register_callbacks)
