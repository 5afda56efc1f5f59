"""Alert emails: text and escaped HTML parts, the chart inline, and a message that goes out without a chart."""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace

from safety_dash.alerts.charts import make_alert_chart_png
from safety_dash.alerts.email import build_outbox_email
from safety_dash.alerts.outbox import deliver_outbox
from safety_dash.config import load_settings
from safety_dash.db.engine import get_engine
from tests.alerts.helpers import insert_alert

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<img src=x onerror="alert(1)">&'


def fake_alert(**values) -> SimpleNamespace:
    alert = dict(
        id=7, rule_id="r1", kind="incidence", episode=1, alert_key="r1|A|Colitis", title=f"Colitis {HOSTILE}",
        summary=f"summary {HOSTILE}", view_path="/rates?study=T1&cut=3&cohort=A+%26+B",
        created_at=dt.datetime(2024, 5, 1),
        evidence={"cut": {"run_id": 3, "cutoff": "2024-04-30"}, "numbers": {"n_subjects": 4, "incidence_pct": 50.0},
                  "subjects": [f"T1-{HOSTILE}"], "records": [{"usubjid": "T1-1", "aeterm": HOSTILE, "pt": "Colitis"}],
                  "chart": {"kind": "bars", "labels": ["A", "B"], "values": [50.0, 0.0], "threshold": 30,
                            "highlight": 0, "title": HOSTILE}},
    )  # fmt: skip
    return SimpleNamespace(**(alert | values))


def settings():
    return dataclasses.replace(load_settings(), base_url="http://dash.test", smtp_from="sd@test.example")


def test_build_outbox_email_escapes_every_value_of_the_html_part():
    row = SimpleNamespace(id=1, kind="alert", study_id="T1<x>", message_id="<m1@safety-dash>", redelivery=False)
    message = build_outbox_email(row, [fake_alert()], settings(), ["m@example.org"])
    html = message.get_body(("html",)).get_content()
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in html
    assert 'href="http://dash.test/rates?study=T1&amp;cut=3&amp;cohort=A+%26+B"' in html
    assert "http://dash.test/alerts?study=T1%3Cx%3E" in html
    text = message.get_body(("plain",)).get_content()
    assert f"Colitis {HOSTILE}" in text and "View: http://dash.test/rates?study=T1&cut=3&cohort=A+%26+B" in text
    assert message["Message-ID"] == "<m1@safety-dash>"


def test_build_outbox_email_puts_the_chart_inline_and_references_it_by_content_id():
    row = SimpleNamespace(id=1, kind="alert", study_id="T1", message_id="<m1@safety-dash>", redelivery=False)
    message = build_outbox_email(row, [fake_alert()], settings(), ["m@example.org"])
    [image] = [part for part in message.walk() if part.get_content_type() == "image/png"]
    assert image.get_content().startswith(PNG_SIGNATURE)
    assert f'src="cid:{image["Content-ID"][1:-1]}"' in message.get_body(("html",)).get_content()
    assert message.get_content_type() == "multipart/alternative"


def test_an_alert_is_sent_without_its_chart_when_the_chart_cannot_be_drawn(database_url, alert_settings, mail_server):
    insert_alert(database_url)

    def broken_renderer(chart: dict) -> bytes:
        raise RuntimeError("no browser here")

    report = deliver_outbox(get_engine(database_url), alert_settings, render_chart=broken_renderer)
    assert len(report.sent) == 1
    [message] = mail_server.messages
    assert [p for p in message.walk() if p.get_content_type() == "image/png"] == []
    note = "The chart could not be drawn and is left out (alert 1: RuntimeError: no browser here)."
    assert note in message.get_body(("plain",)).get_content()
    assert "The chart could not be drawn" in message.get_body(("html",)).get_content()


def test_make_alert_chart_png_draws_bars_and_timelines():
    bars = {"kind": "bars", "labels": ["A", "B", "ALL"], "values": [50.0, None, 20.0], "threshold": 30,
            "highlight": 0, "title": "Crude incidence", "unit": "%"}  # fmt: skip
    timeline = {"kind": "timeline", "days": [3, None, 40], "grades": [1, None, 5], "labels": ["Rash", "Cough", "X"],
                "highlight": 2, "title": "Adverse events of T1-001"}  # fmt: skip
    assert make_alert_chart_png(bars).startswith(PNG_SIGNATURE)
    assert make_alert_chart_png(timeline).startswith(PNG_SIGNATURE)
