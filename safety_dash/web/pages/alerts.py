"""Alerts: the alerts of the study (open, acknowledged, resolved) with their evidence, the delivery of each alert's
email to every recipient (sent, waiting with its next attempt, failed with the server's reply) and a link to the
view they are about. A monitor (or admin) acknowledges an open alert with a comment; who, when and the comment
are recorded. Committee members read alerts but cannot acknowledge them: the form is not shown to them, and the
acknowledging callback asks :func:`~safety_dash.alerts.review.acknowledge_alert` with the session user's role,
which refuses.
"""

from __future__ import annotations

import math
from typing import Any

import dash_ag_grid as dag
import flask
import flask_login
import pandas as pd
from dash import Dash, Input, Output, State, ctx, dcc, html, no_update
from dash.exceptions import PreventUpdate

from safety_dash.alerts.review import ACKNOWLEDGING_ROLES, acknowledge_alert, list_alerts, list_deliveries
from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.web import ids
from safety_dash.web.auth import require_permission
from safety_dash.web.components import (
    GRID_THEME,
    build_alert,
    build_page_header,
    build_panel,
    build_small_table,
    build_subject_link,
    error_message,
    guard,
)
from safety_dash.web.data import current_context, has_alert_table
from safety_dash.web.pages import Page
from safety_dash.web.state import ViewState
from safety_dash.web.views import load_view

STATUS_OPTIONS = [
    {"label": "Open", "value": "open"},
    {"label": "Acknowledged", "value": "acknowledged"},
    {"label": "Resolved", "value": "resolved"},
    {"label": "All", "value": "all"},
]
COMMITTEE_NOTE = (
    "You are signed in as a committee member: committee members can read alerts but not acknowledge them. "
    "Ask a monitor to acknowledge this alert."
)
NO_SELECTION = "Click an alert in the list to see its evidence."
MAX_COMMENT = 2000
ALERT_COLUMNS = [
    {"field": "alert_id", "headerName": "#", "maxWidth": 70, "type": "rightAligned"},
    {"field": "rule", "headerName": "Rule", "minWidth": 220, "flex": 3, "tooltipField": "title",
     "cellClass": "cell-link"},
    {"field": "kind", "headerName": "Kind", "minWidth": 95, "maxWidth": 105},
    {"field": "scope_text", "headerName": "Scope", "minWidth": 180, "flex": 3, "tooltipField": "scope_text"},
    {"field": "cut_text", "headerName": "Fired on cut", "minWidth": 125, "maxWidth": 135,
     "cellClassRules": {"cell-new": "params.data.in_view_cut"}},
    {"field": "created", "headerName": "When (UTC)", "minWidth": 135, "maxWidth": 140},
    {"field": "status", "headerName": "Status", "minWidth": 95, "maxWidth": 115,
     "cellClassRules": {"cell-flag": "params.value == 'open'", "cell-ok": "params.value == 'resolved'",
                        "cell-new": "params.value == 'acknowledged'"}},
    {"field": "email", "headerName": "Email", "minWidth": 85, "maxWidth": 110, "tooltipField": "email_detail",
     "cellClassRules": {"cell-bad": "params.data.email_error"}},
    {"field": "acknowledged_by", "headerName": "Ack. by", "headerTooltip": "Acknowledged by", "minWidth": 110,
     "flex": 1},
    {"field": "acknowledged", "headerName": "Ack. at (UTC)", "headerTooltip": "Acknowledged at (UTC)",
     "minWidth": 140, "maxWidth": 150},
]  # fmt: skip
RECORD_COLUMNS = {
    "usubjid": "Subject",
    "pt": "Preferred term",
    "grade": "Grade",
    "serious": "Serious",
    "related": "Related",
    "aestdtc": "Onset",
    "astdy": "Study day",
    "aeout": "Outcome",
    "record_change": "In this cut",
}
NUMBER_LABELS = {
    "n_subjects": "Subjects in the cohort",
    "n_with_event": "Subjects with the event",
    "n_events": "Events",
    "incidence_pct": "Crude incidence (%)",
    "incidence_ci_low": "Incidence 95% CI low (%)",
    "incidence_ci_high": "Incidence 95% CI high (%)",
    "eair_per_100py": "EAIR per 100 patient-years",
    "eair_ci_low": "EAIR 95% CI low",
    "eair_ci_high": "EAIR 95% CI high",
    "eaer_per_100py": "EAER per 100 patient-years",
    "exposure_years": "Exposure (years)",
    "patient_years_at_risk": "Patient-years at risk",
    "median_onset_day": "Median onset day",
    "posterior_probability_above_p0": "Posterior P(rate > p0)",
    "above_probability": "Alert when P above",
    "p0": "p0 (rate of concern)",
}


# --- the signed-in user ------------------------------------------------------------------------------------------


def session_user() -> tuple[str, str]:
    """(user name, role) of the signed-in user of this request; ("", "") outside a request or signed out."""
    if not flask.has_request_context():
        return "", ""
    user = flask_login.current_user
    if not getattr(user, "is_authenticated", False):
        return "", ""
    return user.username, user.role


# --- formatting ------------------------------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_time(value: Any) -> str:
    """A UTC timestamp as ``YYYY-MM-DD HH:MM``; '' when missing."""
    return "" if _missing(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def format_number(value: Any) -> str:
    """A number of the evidence, shown to a sensible precision."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer() and abs(value) < 1e6:
            return f"{int(value):,}"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}"
    return "" if value is None else str(value)


def scope_text(scope: dict | None) -> str:
    """The scope of an alert in a few words: cohort · term · subject."""
    scope = scope or {}
    parts = [scope.get("cohort"), scope.get("pt") or scope.get("term"), scope.get("usubjid")]
    return " · ".join(str(part) for part in parts if part) or "whole study"


def rule_name(alert: dict) -> str:
    """The rule's name as stored in the evidence, else its id."""
    rule = (alert.get("evidence") or {}).get("rule") or {}
    return str(rule.get("name") or alert.get("rule_id") or "")


def email_text(alert: dict) -> str:
    status = alert.get("email_status") or ""
    attempts = alert.get("email_attempts")
    if alert.get("email_error") and not _missing(attempts) and int(attempts):
        return f"{status} · {int(attempts)} tries"
    return status


def email_detail(alert: dict) -> str:
    """The email delivery in a sentence: status, when sent, attempts and the last error."""
    parts = [f"email {alert.get('email_status') or 'not queued'}"]
    if not _missing(alert.get("email_sent_at")):
        parts.append(f"sent {format_time(alert['email_sent_at'])} UTC")
    attempts = alert.get("email_attempts")
    if not _missing(attempts) and int(attempts):
        parts.append(f"{int(attempts)} attempt{'s' if int(attempts) != 1 else ''}")
    if alert.get("email_error"):
        parts.append(f"last error: {alert['email_error']}")
    return " · ".join(parts)


def cut_text(alert: dict) -> str:
    cutoff = alert.get("cutoff")
    return f"{alert['run_id']} · {cutoff}" if not _missing(cutoff) else str(alert["run_id"])


def alerts_of_cohort(alerts: pd.DataFrame, cohort: str | None) -> pd.DataFrame:
    """The alerts a view of ``cohort`` shows: those about the cohort (its own rates, signals and subjects' records)
    and those about the whole study or all cohorts together, which concern it too; every alert without a cohort."""
    if not cohort:
        return alerts
    about = [(scope or {}).get("cohort") for scope in alerts["scope"]]
    keep = [group in (None, "", ALL_GROUP, cohort) for group in about]
    return alerts.loc[keep].reset_index(drop=True)


def alert_rows(alerts: pd.DataFrame, view_run_id: int | None) -> list[dict]:
    """The grid's rows: one per alert, plain JSON values only."""
    rows = []
    for alert in alerts.to_dict("records"):
        rows.append(
            {
                "alert_id": int(alert["alert_id"]),
                "row_id": str(int(alert["alert_id"])),
                "rule": rule_name(alert),
                "title": str(alert.get("title") or ""),
                "kind": alert.get("kind") or "",
                "scope_text": scope_text(alert.get("scope")),
                "run_id": int(alert["run_id"]),
                "cut_text": cut_text(alert),
                "in_view_cut": view_run_id is not None and int(alert["run_id"]) == int(view_run_id),
                "created": format_time(alert.get("created_at")),
                "status": alert.get("status") or "",
                "email": email_text(alert),
                "email_detail": email_detail(alert),
                "email_error": bool(alert.get("email_error")),
                "acknowledged_by": alert.get("acknowledged_by") or "",
                "acknowledged": format_time(alert.get("acknowledged_at")),
            }
        )
    return rows


# --- the page ------------------------------------------------------------------------------------------------


def build_alert_grid() -> dag.AgGrid:
    """The alerts grid: every alert of the selection sent whole (a study has tens to hundreds)."""
    return dag.AgGrid(
        id=ids.ALERTS_GRID,
        columnDefs=ALERT_COLUMNS,
        rowData=[],
        getRowId="params.data.row_id",
        defaultColDef={"resizable": True, "sortable": True, "filter": True, "minWidth": 70},
        dashGridOptions={"theme": GRID_THEME, "enableCellTextSelection": True, "animateRows": False,
                         "tooltipShowDelay": 300, "suppressCellFocus": True,
                         "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True}},
        style={"height": "380px", "width": "100%"},
    )  # fmt: skip


def build_ack_form() -> html.Div:
    """The comment box and the Acknowledge button (shown by the detail callback to monitors and admins, for open
    alerts only)."""
    return html.Div(
        [
            html.Label("Comment", htmlFor=ids.ALERTS_COMMENT, className="field-label"),
            dcc.Textarea(
                id=ids.ALERTS_COMMENT,
                placeholder="What was done or decided about this alert (required)",
                maxLength=MAX_COMMENT,
                className="ack-comment",
            ),
            html.Div(html.Button("Acknowledge", id=ids.ALERTS_ACK_BUTTON, className="button", n_clicks=0)),
        ],
        id=ids.ALERTS_ACK_FORM,
        className="ack-form",
        hidden=True,
    )


def layout():
    """The alerts page."""
    status = dcc.RadioItems(
        id=ids.ALERTS_STATUS, options=STATUS_OPTIONS, value="open", inline=True, className="segmented"
    )
    return html.Div(
        [
            build_page_header(
                "Alerts",
                "Alerts raised by the study's rules on each data cut, with their evidence. Click an alert to see "
                "why it fired; monitors acknowledge it with a comment.",
                actions=[html.Div([html.Label("Status", className="field-label"), status], className="field")],
            ),
            html.Div(id=ids.ALERTS_ALERT),
            dcc.Store(id=ids.ALERTS_SELECTED),
            dcc.Store(id=ids.ALERTS_REFRESH, data=0),
            build_panel("Alerts of the study", [build_alert_grid()], subtitle=html.Span(id=ids.ALERTS_COUNT)),
            build_panel(
                html.Span(NO_SELECTION, id=ids.ALERTS_DETAIL_TITLE),
                [
                    html.Div(
                        [
                            html.Div(id=ids.ALERTS_DETAIL, className="alert-evidence"),
                            html.Aside(
                                [
                                    html.Div(id=ids.ALERTS_ACK_MESSAGE),
                                    html.Div(id=ids.ALERTS_ACK_NOTE),
                                    build_ack_form(),
                                ],
                                className="ack-side",
                            ),  # fmt: skip
                        ],
                        className="alert-detail-body",
                    )
                ],
                class_name="alert-detail",
            ),
        ]
    )


def _fact(label: str, value) -> html.Div:
    return html.Div([html.Span(label, className="fact-label"), html.Span(value, className="fact-value")],
                    className="fact")  # fmt: skip


STATUS_BADGES = {"open": "badge-danger", "acknowledged": "badge-info", "resolved": "badge-ok"}


def _numbers(numbers: dict) -> html.Div:
    frame = pd.DataFrame(
        [
            {"measure": NUMBER_LABELS.get(key, key.replace("_", " ")), "value": format_number(value)}
            for key, value in numbers.items()
        ]  # fmt: skip
    )
    return html.Div(build_small_table(frame, {"measure": "Measure", "value": "Value"}), className="numbers")


def _records(records: list[dict], state: ViewState) -> html.Div:
    frame = pd.DataFrame(records)
    for column in RECORD_COLUMNS:
        if column not in frame:
            frame[column] = None
    for column in ("serious", "related"):
        frame[column] = [format_number(v) if isinstance(v, bool) else v for v in frame[column]]
    links = {"usubjid": lambda row: build_subject_link(row["usubjid"], state).href}
    return build_small_table(frame, RECORD_COLUMNS, links)


def safe_view_path(path: Any) -> str | None:
    """``path`` when it is a path of this site (a relative link), else None: never another host or a script."""
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return None
    return path


DELIVERY_BADGES = {"sent": "badge-ok", "waiting": "badge-warn", "failed": "badge-danger"}


def delivery_text(delivery: dict) -> str:
    """One recipient's delivery in a sentence: when it was sent; when it is tried next and why; or why it failed
    and to whom that was reported."""
    attempts = int(delivery.get("attempts") or 0)
    tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
    reply = delivery.get("last_reply")
    status = delivery.get("status")
    if status == "sent":
        text = f"sent {format_time(delivery.get('sent_at'))} UTC" + (f" after {tries}" if attempts > 1 else "")
        if delivery.get("redelivery"):
            text += " · sent again after an interrupted attempt: the recipient may have two copies"
        return text
    if status == "waiting":
        if not attempts:
            return f"not tried yet · due {format_time(delivery.get('next_attempt_at'))} UTC"
        text = f"next attempt {format_time(delivery.get('next_attempt_at'))} UTC · {tries} so far"
        return text + (f" · last answer: {reply}" if reply else "")
    text = f"failed {format_time(delivery.get('failed_at'))} UTC after {tries} · server's reply: {reply or 'none'}"
    notified = delivery.get("notified_to") or []
    if notified:
        text += f" · reported by email to {', '.join(notified)} ({delivery.get('notice_status') or 'queued'})"
    elif not _missing(delivery.get("reported_at")):
        text += " · reported in the log only (nobody else to tell; set SAFETY_DASH_ALERT_ADMIN)"
    return text


def build_deliveries(deliveries: list[dict]) -> html.Div:
    """The email of the alert, recipient by recipient: state badge and what happened."""
    kind = "the daily digest carrying this alert" if deliveries and deliveries[0]["kind"] == "digest" else "email"
    rows = [
        html.Tr(
            [
                html.Td(d["recipient"]),
                html.Td(html.Span(d["status"], className=f"badge {DELIVERY_BADGES.get(d['status'], 'badge-info')}")),
                html.Td(delivery_text(d)),
            ],
            className=f"delivery-{d['status']}",
        )
        for d in deliveries
    ]
    head = html.Thead(html.Tr([html.Th("Recipient"), html.Th("Delivery"), html.Th("Detail")]))
    return html.Div(
        [
            html.H3(f"Email delivery per recipient ({kind})", className="minor"),
            html.Div(html.Table([head, html.Tbody(rows)], className="small-table"), className="table-wrap"),
        ],
        className="alert-deliveries",
    )


def build_detail(alert: dict, deliveries: list[dict] | None = None) -> list:
    """The evidence of one alert: what fired, the numbers, the subjects and records, the link to the view, and the
    delivery of its email to each recipient."""
    evidence = alert.get("evidence") or {}
    state = ViewState(study=alert["study_id"], cut=int(alert["run_id"]))
    status = alert.get("status") or ""
    condition = (
        f"still met as of cut {alert['last_run_id']}"
        if alert.get("condition_active")
        else f"no longer met as of cut {alert['last_run_id']}"
    )
    facts = html.Div(
        [
            _fact("Rule", rule_name(alert)),
            _fact("Kind", f"{alert.get('kind') or ''} · {alert.get('delivery') or ''}"),
            _fact("Status", html.Span(status, className=f"badge {STATUS_BADGES.get(status, 'badge-info')}")),
            _fact("Fired on cut", cut_text(alert)),
            _fact("Raised (UTC)", format_time(alert.get("created_at"))),
            _fact("Condition", condition),
        ],
        className="facts",
    )
    children: list = [
        html.P(alert.get("summary") or "", className="alert-summary"),
        facts,
        html.P(email_detail(alert), className="muted small alert-email"),
    ]
    if deliveries:
        children.append(build_deliveries(deliveries))
    acknowledged_by = alert.get("acknowledged_by")
    if acknowledged_by:
        role = alert.get("acknowledged_role")
        children.append(
            html.Div(
                [
                    html.Strong(f"Acknowledged by {acknowledged_by}" + (f" ({role})" if role else "")),
                    html.Span(f" on {format_time(alert.get('acknowledged_at'))} UTC"),
                    html.Blockquote(alert.get("ack_comment") or "", className="ack-comment-text"),
                ],
                className="ack-record",
            )
        )
    if status == "resolved" and not _missing(alert.get("resolved_at")):
        cut = alert.get("resolved_run_id")
        text = f"Resolved on {format_time(alert['resolved_at'])} UTC" + (
            f" (cut {int(cut)})" if not _missing(cut) else ""
        )
        children.append(html.P(text, className="muted small"))
    view_path = safe_view_path(alert.get("view_path"))
    if view_path:
        children.append(dcc.Link("Open the view this alert is about →", href=view_path, className="more"))
    numbers = evidence.get("numbers")
    records = evidence.get("records") or ([evidence["record"]] if evidence.get("record") else [])
    subjects = evidence.get("subjects") or sorted({r.get("usubjid") for r in records if r.get("usubjid")})
    columns = []
    if numbers:
        columns.append(html.Div([html.H3("Numbers", className="minor"), _numbers(numbers)]))
    if subjects:
        links = [build_subject_link(str(s), state) for s in subjects]
        columns.append(html.Div([html.H3(f"Subjects ({len(subjects)})", className="minor"),
                                 html.Div(links, className="subject-links")]))  # fmt: skip
    if columns:
        children.append(html.Div(columns, className="evidence-columns"))
    if records:
        children.append(html.H3(f"Records ({len(records)})", className="minor"))
        children.append(_records(records, state))
    return children


def find_alert(engine, study_id: str, alert_id: int) -> dict | None:
    """Alert ``alert_id`` of ``study_id`` as a dict, or None."""
    with engine.connect() as connection:
        alerts = list_alerts(connection, study_id)
    found = alerts.loc[alerts["alert_id"] == int(alert_id)]
    return found.iloc[0].to_dict() if not found.empty else None


def find_deliveries(engine, alert_id: int) -> list[dict]:
    """The delivery of alert ``alert_id``'s email to each recipient."""
    with engine.connect() as connection:
        return list_deliveries(connection, int(alert_id))


def register_callbacks(app: Dash) -> None:
    """The list from the address and the status; a selected alert's evidence; acknowledging."""

    @app.callback(
        Output(ids.ALERTS_ALERT, "children"),
        Output(ids.ALERTS_GRID, "rowData"),
        Output(ids.ALERTS_COUNT, "children"),
        Input(ids.URL, "search"),
        Input(ids.ALERTS_STATUS, "value"),
        Input(ids.ALERTS_REFRESH, "data"),
    )
    @guard(3)
    def update_alerts(search, status, _refresh):
        view = load_view(search)
        engine = view.context.engine
        study = view.cut.study_id
        if not has_alert_table(engine):
            message = "Alerts are not configured on this database yet (the alerts tables do not exist)."
            return build_alert(message, "info"), [], "no alerts"
        wanted = None if status in (None, "all") else status
        with engine.connect() as connection:
            alerts = alerts_of_cohort(list_alerts(connection, study, wanted), view.state.cohort)
        label = "" if wanted is None else f"{wanted} "
        about = f" about cohort {view.state.cohort} or all cohorts" if view.state.cohort else ""
        count = (
            f"{len(alerts)} {label}alert{'s' if len(alerts) != 1 else ''} of {study}{about}, newest first · "
            f"alerts fired on cut {view.cut.run_id} (the filter bar's cut) are highlighted"
        )
        return None, alert_rows(alerts, view.cut.run_id), count

    @app.callback(
        Output(ids.ALERTS_SELECTED, "data"),
        Input(ids.ALERTS_GRID, "selectedRows"),
        prevent_initial_call=True,
    )
    def select_alert(rows):
        """Clicking an alert selects it; a selection lost to a refresh keeps the alert shown."""
        if not rows:
            raise PreventUpdate
        return int(rows[0]["alert_id"])

    @app.callback(
        Output(ids.ALERTS_DETAIL_TITLE, "children"),
        Output(ids.ALERTS_DETAIL, "children"),
        Output(ids.ALERTS_ACK_FORM, "hidden"),
        Output(ids.ALERTS_ACK_NOTE, "children"),
        Input(ids.ALERTS_SELECTED, "data"),
        Input(ids.ALERTS_REFRESH, "data"),
        Input(ids.URL, "search"),
    )
    @guard(4, alert_index=1)
    def show_detail(alert_id, _refresh, search):
        if alert_id is None:
            return NO_SELECTION, None, True, None
        view = load_view(search)
        alert = find_alert(view.context.engine, view.cut.study_id, int(alert_id))
        if alert is None:
            return NO_SELECTION, None, True, None
        _, role = session_user()
        title = f"Alert {int(alert['alert_id'])}: {alert.get('title') or ''}"
        can_acknowledge = alert["status"] == "open" and role in ACKNOWLEDGING_ROLES
        note = None
        if alert["status"] == "open" and not can_acknowledge:
            note = html.P(COMMITTEE_NOTE if role == "committee" else "Your role cannot acknowledge alerts.",
                          className="read-only-note")  # fmt: skip
        deliveries = find_deliveries(view.context.engine, int(alert_id))
        return title, build_detail(alert, deliveries), not can_acknowledge, note

    @app.callback(
        Output(ids.ALERTS_ACK_MESSAGE, "children", allow_duplicate=True),
        Output(ids.ALERTS_COMMENT, "value", allow_duplicate=True),
        Input(ids.ALERTS_SELECTED, "data"),
        prevent_initial_call=True,
    )
    def clear_message(_alert_id):
        """Another alert: no message of the previous one, an empty comment box."""
        return None, ""

    @app.callback(
        Output(ids.ALERTS_ACK_MESSAGE, "children"),
        Output(ids.ALERTS_REFRESH, "data"),
        Output(ids.ALERTS_COMMENT, "value"),
        Input(ids.ALERTS_ACK_BUTTON, "n_clicks"),
        State(ids.ALERTS_SELECTED, "data"),
        State(ids.ALERTS_COMMENT, "value"),
        State(ids.ALERTS_REFRESH, "data"),
        prevent_initial_call=True,
    )
    def acknowledge(n_clicks, alert_id, comment, refresh):
        """Acknowledge the selected alert as the signed-in user; the role is checked here, not in the browser."""
        require_permission("acknowledge")  # 403 for any other role, whatever the browser shows
        if not n_clicks or ctx.triggered_id != ids.ALERTS_ACK_BUTTON:
            raise PreventUpdate
        if alert_id is None:
            return build_alert("Select an alert first.", "warning"), no_update, no_update
        username, role = session_user()
        try:
            with current_context().engine.begin() as connection:
                row = acknowledge_alert(connection, int(alert_id), username, role, comment or "")
        except PermissionError as error:
            return build_alert(str(error), "error", title="Not allowed"), no_update, no_update
        except Exception as error:  # a sentence for the user (ValueError) or a logged reference
            kind, message = error_message(error)
            return build_alert(message, kind, title="Not acknowledged"), no_update, no_update
        when = format_time(row.get("acknowledged_at"))
        text = f"Alert {int(alert_id)} acknowledged by {row['acknowledged_by']} on {when} UTC."
        if row.get("status") == "resolved":
            text += " Its condition was no longer met, so it is resolved."
        return build_alert(text, "info", title="Done"), (refresh or 0) + 1, ""


PAGE = Page(path="/alerts", name="Alerts", title="Alerts", layout=layout, register_callbacks=register_callbacks)
