"""`python -m safety_dash alerts check|send`: evaluate on the newest cuts, deliver the outbox, exit codes."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import update

from safety_dash.alerts.models import OutboxMessage, OutboxRecipient
from safety_dash.cli import main
from safety_dash.db.engine import get_engine
from safety_dash.db.models import utcnow
from safety_dash.ingest.pipeline import ingest_extract
from tests.alerts.helpers import insert_alert
from tests.alerts.test_evaluate import COLITIS_INCIDENCE, CUTOFF, extract
from tests.ingest.builders import write_extract


@pytest.fixture
def environment(monkeypatch, alert_settings):
    for name, value in {
        "SAFETY_DASH_DATABASE_URL": alert_settings.database_url,
        "SAFETY_DASH_RULES_DIR": str(alert_settings.rules_dir),
        "SAFETY_DASH_SMTP_HOST": "127.0.0.1",
        "SAFETY_DASH_SMTP_PORT": str(alert_settings.smtp_port),
        "SAFETY_DASH_SMTP_USER": "",
        "SAFETY_DASH_SMTP_STARTTLS": "false",
        "SAFETY_DASH_ALERT_RECIPIENTS": "monitor@example.org, deputy@example.org",
    }.items():
        monkeypatch.setenv(name, value)
    return alert_settings


def test_alerts_check_then_send_delivers_once(environment, tmp_path, mail_server, capsys):
    (environment.rules_dir / "T1.yaml").write_text(COLITIS_INCIDENCE, encoding="utf-8")
    folder = write_extract(tmp_path / "cut1", extract({"T1-A1": "2021-01-20", "T1-A2": "2021-02-01"}))
    run_id = ingest_extract(environment.database_url, folder, cutoff=CUTOFF).run_id
    capsys.readouterr()
    assert main(["alerts", "check", "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)
    assert (checked["run_id"], checked["study_id"], len(checked["fired"])) == (run_id, "T1", 1)
    assert main(["alerts", "send"]) == 0
    assert capsys.readouterr().out.startswith("2 sent, 0 waiting (will retry), 0 failed")
    assert main(["alerts", "check", "--study", "T1"]) == 0
    assert "0 new alerts, 1 still active" in capsys.readouterr().out
    assert main(["alerts", "send"]) == 0
    assert len(mail_server.messages) == 1
    assert mail_server.envelopes[0][1] == ["monitor@example.org", "deputy@example.org"]


def test_alerts_send_exits_3_while_the_server_is_down(environment, tmp_path, capsys):
    (environment.rules_dir / "T1.yaml").write_text(COLITIS_INCIDENCE, encoding="utf-8")
    folder = write_extract(tmp_path / "cut1", extract({"T1-A1": "2021-01-20", "T1-A2": "2021-02-01"}))
    ingest_extract(environment.database_url, folder, cutoff=CUTOFF)
    assert main(["alerts", "check"]) == 0
    assert main(["alerts", "send"]) == 3
    captured = capsys.readouterr()
    assert "0 sent, 2 waiting (will retry), 0 failed" in captured.out
    assert "outbox message 1 to deputy@example.org: ConnectionRefusedError" in captured.err


def _send_json(capsys) -> tuple[int, str]:
    code = main(["alerts", "send", "--json"])
    return code, capsys.readouterr().out


def _make_due(database_url: str) -> None:
    """The retries are due now (the command reads the clock; the test does not wait out the backoff)."""
    with get_engine(database_url).begin() as connection:
        connection.execute(update(OutboxRecipient).values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))
        connection.execute(update(OutboxMessage).values(next_attempt_at=utcnow() - dt.timedelta(seconds=1)))


def test_alerts_send_json_counts_deliveries_and_exits_3_while_one_waits(environment, mail_server, capsys):
    insert_alert(environment.database_url)  # to monitor@ and deputy@ (SAFETY_DASH_ALERT_RECIPIENTS)
    mail_server.rcpt_replies = {"deputy@example.org": ["451 4.7.1 Greylisted, try again later"]}
    assert _send_json(capsys) == (3, '{"sent": 1, "waiting": 1, "failed": 0}\n')
    assert _send_json(capsys) == (3, '{"sent": 0, "waiting": 1, "failed": 0}\n')  # on its backoff: still 3
    mail_server.rcpt_replies = {}
    _make_due(environment.database_url)
    assert _send_json(capsys) == (0, '{"sent": 1, "waiting": 0, "failed": 0}\n')
    assert [envelope[1] for envelope in mail_server.envelopes] == [["monitor@example.org"], ["deputy@example.org"]]
    assert _send_json(capsys) == (0, '{"sent": 0, "waiting": 0, "failed": 0}\n')


def test_alerts_send_exits_1_when_a_delivery_fails_even_while_another_waits(
    environment, mail_server, capsys, monkeypatch
):
    monkeypatch.setenv("SAFETY_DASH_ALERT_ADMIN", "admin@example.org")
    insert_alert(environment.database_url)
    mail_server.rcpt_replies = {"deputy@example.org": ["550 5.1.1 User unknown"],
                                "monitor@example.org": ["451 4.7.1 Greylisted"]}  # fmt: skip
    code = main(["alerts", "send", "--json"])
    captured = capsys.readouterr()
    # failed: deputy; waiting: monitor; sent: the failure notice to the admin (monitor's copy waits too)
    assert (code, captured.out) == (1, '{"sent": 1, "waiting": 2, "failed": 1}\n')
    assert "outbox message 1 to deputy@example.org: 550 5.1.1 User unknown (at RCPT TO)" in captured.err
    assert _send_json(capsys) == (3, '{"sent": 0, "waiting": 2, "failed": 0}\n')  # failed once, reported once


def test_alerts_check_reports_a_malformed_rule_file_with_its_line(environment, tmp_path, capsys):
    (environment.rules_dir / "T1.yaml").write_text("rules:\n  - id: a\n    kind: count\n", encoding="utf-8")
    ingest_extract(environment.database_url, write_extract(tmp_path / "cut1", extract({})), cutoff=CUTOFF)
    assert main(["alerts", "check"]) == 2
    err = capsys.readouterr().err
    assert "T1.yaml, line 2: rule 'a': a count rule needs 'at_least'" in err
    assert "T1.yaml, line 2: rule 'a': a count rule is about one term" in err


def test_alerts_check_without_any_cut_says_what_to_do(environment, capsys):
    assert main(["alerts", "check"]) == 2
    assert "no data cut of any study yet; ingest an extract first" in capsys.readouterr().err
