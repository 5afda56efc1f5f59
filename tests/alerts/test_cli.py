"""`python -m safety_dash alerts check|send`: evaluate on the newest cuts, deliver the outbox, exit codes."""

from __future__ import annotations

import json

import pytest

from safety_dash.cli import main
from safety_dash.ingest.pipeline import ingest_extract
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
    assert capsys.readouterr().out.startswith("1 sent, 0 failed")
    assert main(["alerts", "check", "--study", "T1"]) == 0
    assert "0 new alerts, 1 still active" in capsys.readouterr().out
    assert main(["alerts", "send"]) == 0
    assert len(mail_server.messages) == 1
    assert mail_server.envelopes[0][1] == ["monitor@example.org", "deputy@example.org"]


def test_alerts_send_exits_1_while_the_server_is_down(environment, tmp_path, capsys):
    (environment.rules_dir / "T1.yaml").write_text(COLITIS_INCIDENCE, encoding="utf-8")
    folder = write_extract(tmp_path / "cut1", extract({"T1-A1": "2021-01-20", "T1-A2": "2021-02-01"}))
    ingest_extract(environment.database_url, folder, cutoff=CUTOFF)
    assert main(["alerts", "check"]) == 0
    assert main(["alerts", "send"]) == 1
    captured = capsys.readouterr()
    assert "0 sent, 1 failed (will retry)" in captured.out and "ConnectionRefusedError" in captured.err


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
