"""Alert emails: a plain-text part and an HTML part (every value escaped) with a small chart inline, and links to
the dashboard view with the alert's filters.

A chart that cannot be drawn never holds a message back: it is sent without the image and both parts say so.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable, Sequence
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from safety_dash.alerts.charts import make_alert_chart_png
from safety_dash.alerts.conditions import PAGE_ALERTS, build_view_path
from safety_dash.config import Settings

log = logging.getLogger(__name__)

# Header lines up to RFC 5322's 998 characters: the default 78 folds some subjects right after "Subject:", which
# readers then show with a leading space.
MESSAGE_POLICY = policy.default.clone(max_line_length=998)
MAX_CHARTS = 5  # a digest carries the charts of its first alerts only
REDELIVERY_NOTE = (
    "This message may be a second copy: an earlier delivery was interrupted before it was recorded. "
    "If you already have a message with the same Message-ID, ignore this one."
)
NUMBER_LABELS = {
    "n_subjects": "N (safety subjects)",
    "n_with_event": "Subjects with the event",
    "incidence_pct": "Crude incidence (%)",
    "incidence_ci_low": "Incidence 95% CI low (%)",
    "incidence_ci_high": "Incidence 95% CI high (%)",
    "n_events": "Events",
    "patient_years_at_risk": "Patient-years at risk",
    "eair_per_100py": "EAIR per 100 PY",
    "eair_ci_low": "EAIR 95% CI low",
    "eair_ci_high": "EAIR 95% CI high",
    "exposure_years": "Exposure (years)",
    "eaer_per_100py": "EAER per 100 PY",
    "median_onset_day": "Median onset day",
    "prior_a": "Prior a",
    "prior_b": "Prior b",
    "posterior_a": "Posterior a",
    "posterior_b": "Posterior b",
    "p0": "p0",
    "posterior_probability_above_p0": "Posterior P(rate > p0)",
    "above_probability": "Boundary",
}
RECORD_COLUMNS = (("usubjid", "USUBJID"), ("aeseq", "AESEQ"), ("aeterm", "AETERM"), ("pt", "PT"),
                  ("grade", "Grade"), ("serious", "Serious"), ("related", "Related"), ("aestdtc", "Onset"),
                  ("astdy", "Day"), ("aeout", "Outcome"), ("record_change", "In this cut"))  # fmt: skip


def build_outbox_email(
    row: Any,
    alerts: Sequence[Any],
    settings: Settings,
    recipients: Sequence[str],
    render_chart: Callable[[dict], bytes] | None = None,
    redelivery: bool = False,
) -> EmailMessage:
    """The email of one outbox row (an alert or a digest) carrying ``alerts`` (rows of the alerts table).

    ``recipients`` are the message's readers, written in To (a retry goes to fewer, over the envelope);
    ``redelivery`` marks a message sent again after an attempt whose outcome is unknown.
    """
    if not alerts:
        raise ValueError(f"outbox message {row.id} carries no alert; nothing to send")
    render_chart = render_chart or make_alert_chart_png
    study_id = row.study_id
    if row.kind == "digest":
        day = alerts[-1].created_at.date().isoformat()
        subject = f"[safety-dash] {study_id}: daily digest, {len(alerts)} alert{'s' if len(alerts) > 1 else ''} ({day})"
    else:
        subject = f"[safety-dash] {study_id}: {alerts[0].title}"
    message = _start_message(row, subject, settings, recipients, redelivery)
    if row.kind != "digest":
        message["X-Safety-Dash-Alert"] = _one_line(alerts[0].alert_key)[:900]

    charts: list[tuple[str, bytes] | None] = []
    failures: list[str] = []
    for alert in alerts:
        chart = (alert.evidence or {}).get("chart")
        if chart is None or len([c for c in charts if c]) >= MAX_CHARTS:
            charts.append(None)
            continue
        try:
            png = render_chart(chart)
        except Exception as error:  # any failure of the renderer: send without the image
            log.warning("chart of alert %s not drawn: %s", alert.id, error)
            failures.append(f"alert {alert.id}: {type(error).__name__}: {error}")
            charts.append(None)
            continue
        charts.append((make_msgid(domain="safety-dash")[1:-1], png))

    message.set_content(build_text_body(row, alerts, settings, failures, redelivery=redelivery))
    message.add_alternative(build_html_body(row, alerts, settings, charts, failures, redelivery=redelivery),
                            subtype="html")  # fmt: skip
    html_part = message.get_payload()[1]
    for chart in charts:
        if chart is not None:
            cid, png = chart
            html_part.add_related(png, "image", "png", cid=f"<{cid}>", filename="chart.png")
    return message


def alert_link(settings: Settings, alert: Any) -> str:
    """The dashboard view of the alert, with its filters."""
    return f"{settings.base_url}{alert.view_path}"


def alerts_page_link(settings: Settings, study_id: str) -> str:
    """The Alerts page of the study, where a monitor acknowledges."""
    return settings.base_url + build_view_path(PAGE_ALERTS, study=study_id)


def build_text_body(
    row: Any, alerts: Sequence[Any], settings: Settings, chart_failures: Sequence[str], redelivery: bool = False
) -> str:
    """The plain-text part: per alert its title, summary, numbers, subjects, records, cut and link."""
    lines: list[str] = []
    if redelivery:
        lines += [REDELIVERY_NOTE, ""]
    if row.kind == "digest":
        lines += [f"Daily digest of {len(alerts)} alerts of study {row.study_id}.", ""]
    for number, alert in enumerate(alerts, start=1):
        evidence = alert.evidence or {}
        cut = evidence.get("cut", {})
        heading = f"{number}. {alert.title}" if row.kind == "digest" else alert.title
        lines += [heading, "=" * min(len(heading), 78), alert.summary, ""]
        lines.append(f"Data cut: {cut.get('run_id')} (cutoff {cut.get('cutoff')}); rule '{alert.rule_id}' "
                     f"({alert.kind}); alert {alert.id}, episode {alert.episode}.")  # fmt: skip
        numbers = _numbers(evidence)
        if numbers:
            lines += ["", "Numbers:"] + [f"  {label}: {value}" for label, value in numbers]
        if evidence.get("subjects"):
            more = evidence.get("n_subjects_listed", 0) - len(evidence["subjects"])
            lines += ["", "Subjects: " + ", ".join(evidence["subjects"]) + (f" and {more} more" if more > 0 else "")]
        records = _records(evidence)
        if records:
            lines += ["", "Records:"]
            for record in records:
                lines.append("  " + "; ".join(f"{label} {_text(record.get(key))}" for key, label in RECORD_COLUMNS))
        lines += ["", f"View: {alert_link(settings, alert)}", ""]
    if chart_failures:
        lines += ["The chart could not be drawn and is left out (" + "; ".join(chart_failures) + ").", ""]
    lines += [f"Acknowledge on the Alerts page: {alerts_page_link(settings, row.study_id)}",
              "-- safety-dash, sent automatically; replies are not read."]  # fmt: skip
    return "\n".join(lines) + "\n"


def build_html_body(
    row: Any, alerts: Sequence[Any], settings: Settings, charts: Sequence[tuple[str, bytes] | None],
    chart_failures: Sequence[str], redelivery: bool = False,
) -> str:  # fmt: skip
    """The HTML part: the same content as the text part, every value escaped, charts referenced by cid."""
    e = _escape
    parts = ['<html><body style="font-family: sans-serif; font-size: 14px">']
    if redelivery:
        parts.append(f"<p><em>{e(REDELIVERY_NOTE)}</em></p>")
    if row.kind == "digest":
        parts.append(f"<p>Daily digest of {len(alerts)} alerts of study <b>{e(row.study_id)}</b>.</p>")
    for alert, chart in zip(alerts, charts, strict=True):
        evidence = alert.evidence or {}
        cut = evidence.get("cut", {})
        parts.append(f"<h3>{e(alert.title)}</h3><p>{e(alert.summary)}</p>")
        parts.append(f"<p>Data cut {e(cut.get('run_id'))} (cutoff {e(cut.get('cutoff'))}); rule "
                     f"<code>{e(alert.rule_id)}</code> ({e(alert.kind)}); alert {e(alert.id)}, "
                     f"episode {e(alert.episode)}.</p>")  # fmt: skip
        numbers = _numbers(evidence)
        if numbers:
            rows = "".join(f"<tr><td>{e(label)}</td><td style=\"text-align:right\">{e(value)}</td></tr>"
                           for label, value in numbers)  # fmt: skip
            parts.append(f'<table border="1" cellpadding="3" style="border-collapse:collapse">{rows}</table>')
        if evidence.get("subjects"):
            parts.append("<p>Subjects: " + e(", ".join(evidence["subjects"])) + "</p>")
        records = _records(evidence)
        if records:
            head = "".join(f"<th>{e(label)}</th>" for _, label in RECORD_COLUMNS)
            body = "".join("<tr>" + "".join(f"<td>{e(_text(r.get(key)))}</td>" for key, _ in RECORD_COLUMNS) + "</tr>"
                           for r in records)  # fmt: skip
            parts.append(f"<table border=\"1\" cellpadding=\"3\" style=\"border-collapse:collapse\">"
                         f"<tr>{head}</tr>{body}</table>")  # fmt: skip
        if chart is not None:
            parts.append(f'<p><img src="cid:{e(chart[0])}" alt="{e(alert.title)}" width="560"></p>')
        parts.append(f'<p><a href="{e(alert_link(settings, alert))}">Open this view in safety-dash</a></p>')
    if chart_failures:
        parts.append(f"<p><em>The chart could not be drawn and is left out ({e('; '.join(chart_failures))}).</em></p>")
    parts.append(f"<p><a href=\"{e(alerts_page_link(settings, row.study_id))}\">Acknowledge on the Alerts page</a>"
                 "</p><p style=\"color:#777\">safety-dash, sent automatically; replies are not read.</p>"
                 "</body></html>")  # fmt: skip
    return "".join(parts)


def build_failure_notice_email(
    row: Any,
    about: Any,
    alerts: Sequence[Any],
    failures: Sequence[Any],
    settings: Settings,
    recipients: Sequence[str],
    redelivery: bool = False,
) -> EmailMessage:
    """The email telling ``recipients`` that the message ``about`` (an outbox row carrying ``alerts``) could not be
    delivered to the addresses of ``failures`` (rows of alert_outbox_recipients, with the server's reply)."""
    if not failures:
        raise ValueError(f"failure notice {row.id} names no failed delivery; nothing to report")
    what = "the daily digest" if about.kind == "digest" else (f"alert '{alerts[0].title}'" if alerts else "an alert")
    addresses = ", ".join(f.recipient for f in failures)
    subject = f"[safety-dash] {about.study_id}: not delivered to {addresses}: {what}"
    message = _start_message(row, subject, settings, recipients, redelivery)
    lines = [REDELIVERY_NOTE, ""] if redelivery else []
    lines += [f"The email of {what} (study {about.study_id}, Message-ID {about.message_id}) could not be "
              "delivered to:", ""]  # fmt: skip
    lines += [f"  {f.recipient}: {f.last_reply or 'refused'}" for f in failures]
    lines += ["", "safety-dash will not try these addresses again for this message. Please forward the alert to "
              "them, or correct the address in the study's rule file or SAFETY_DASH_ALERT_RECIPIENTS.", ""]  # fmt: skip
    for alert in alerts:
        lines += [alert.title, alert.summary, f"View: {alert_link(settings, alert)}", ""]
    lines += [f"Delivery per recipient on the Alerts page: {alerts_page_link(settings, about.study_id)}",
              "-- safety-dash, sent automatically; replies are not read."]  # fmt: skip
    message.set_content("\n".join(lines) + "\n")
    return message


def _start_message(row: Any, subject: str, settings: Settings, recipients: Sequence[str], redelivery: bool):
    message = EmailMessage(policy=MESSAGE_POLICY)
    message["Subject"] = _one_line(subject)[:900]
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(recipients)
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    message["Message-ID"] = row.message_id
    message["Auto-Submitted"] = "auto-generated"
    message["X-Safety-Dash-Study"] = _one_line(row.study_id)
    if redelivery:
        message["X-Safety-Dash-Redelivery"] = "possible duplicate of an interrupted delivery"
    return message


def _numbers(evidence: dict) -> list[tuple[str, str]]:
    numbers = evidence.get("numbers") or {}
    return [(NUMBER_LABELS.get(name, name), _format(value)) for name, value in numbers.items()]


def _records(evidence: dict) -> list[dict]:
    if evidence.get("record"):
        return [evidence["record"]]
    return list(evidence.get("records") or [])


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value != 0 else f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    return str(value)


def _escape(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())
