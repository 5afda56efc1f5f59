"""Rule kinds ``lab`` and ``hys_law`` on a cut with LB, worked by hand (the cut of tests/test_labs_command.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sqlalchemy import select

from safety_dash.alerts.models import Alert
from safety_dash.alerts.rules import parse_rules
from safety_dash.db.engine import get_engine
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.jobs import evaluate_alerts
from tests.alerts.test_rules import problems_of
from tests.ingest.builders import lb_row, standard_extract, write_extract

RULES = """
rules:
  - id: alt-g3
    kind: lab
    name: ALT grade >= 3
    test: ALT
    min_grade: 3
  - id: alt-3x
    kind: lab
    name: ALT at least 3 x ULN
    test: [alt]
    xuln_at_least: 3
  - id: hys
    kind: hys_law
    name: Potential Hy's law case
"""


def lab_extract() -> dict[str, list[dict]]:
    extract = standard_extract()
    extract["lb"] = [
        lb_row("T1-001", 1, "ALT", "30", "2021-01-04", LBBLFL="Y"),
        lb_row("T1-001", 2, "ALT", "130", "2021-02-01"),  # 3.25 x ULN, grade 2
        lb_row("T1-001", 3, "BILI", "10", "2021-01-04", LBBLFL="Y", LBSTRESU="umol/L", LBSTNRHI="20"),
        lb_row("T1-001", 4, "BILI", "50", "2021-02-10", LBSTRESU="umol/L", LBSTNRHI="20"),  # 2.5 x ULN
        lb_row("T1-002", 1, "ALT", "250", "2021-01-20"),  # 6.25 x ULN, grade 3
        lb_row("T1-003", 1, "ALT", "45", "2021-03-01"),  # 1.125 x ULN, grade 1
    ]
    return extract


def test_lab_and_hys_law_rules_fire_per_subject(alert_settings, tmp_path):
    (alert_settings.rules_dir / "T1.yaml").write_text(RULES, encoding="utf-8")
    result = ingest_extract(alert_settings.database_url, write_extract(tmp_path / "cut", lab_extract()),
                            cutoff=pd.Timestamp("2021-06-30").date())  # fmt: skip
    assert result.status == "succeeded", result.message
    evaluate_alerts(alert_settings, result.run_id)
    with get_engine(alert_settings.database_url).connect() as connection:
        alerts = connection.execute(select(Alert.__table__).order_by(Alert.alert_key)).fetchall()
    assert [a.alert_key for a in alerts] == [
        "alt-3x|T1-001|ALT", "alt-3x|T1-002|ALT", "alt-g3|T1-002|ALT|H", "hys|T1-001",
    ]  # fmt: skip
    grade3 = next(a for a in alerts if a.rule_id == "alt-g3")
    assert grade3.evidence["numbers"]["grade"] == 3 and grade3.evidence["numbers"]["xuln"] == 6.25
    assert grade3.view_path == f"/subject?study=T1&cut={result.run_id}&subject=T1-002"
    hys = next(a for a in alerts if a.rule_id == "hys")
    numbers = hys.evidence["numbers"]
    assert (numbers["peak_alt_xuln"], numbers["peak_bili_xuln"]) == (3.25, 2.5)
    assert (numbers["transaminase_date"], numbers["bilirubin_date"]) == ("2021-02-01", "2021-02-10")
    assert "ALT >= 3 x ULN on 2021-02-01 and total bilirubin 2.50 x ULN (>= 2) on 2021-02-10" in hys.summary


def test_a_cut_without_lb_fires_no_lab_alert(alert_settings, tmp_path):
    (alert_settings.rules_dir / "T1.yaml").write_text(RULES, encoding="utf-8")
    result = ingest_extract(alert_settings.database_url, write_extract(tmp_path / "cut", standard_extract()),
                            cutoff=pd.Timestamp("2021-06-30").date())  # fmt: skip
    evaluate_alerts(alert_settings, result.run_id)
    with get_engine(alert_settings.database_url).connect() as connection:
        assert connection.execute(select(Alert.__table__)).fetchall() == []


def test_lab_rules_are_checked_line_by_line():
    (rule,) = parse_rules(
        "rules:\n  - id: k\n    kind: lab\n    test: k\n    direction: low\n    min_grade: 2\n", Path("T1.yaml"), "T1"
    ).rules
    assert dict(rule.params) == {"tests": ("K",), "direction": "low", "xuln_at_least": None}
    one_of = "rule 'a': a lab rule needs exactly one of 'min_grade: <1-4>' or 'xuln_at_least: <k>'"
    assert problems_of("rules:\n  - id: a\n    kind: lab\n    test: ALT\n") == [(2, one_of)]
    problems = problems_of("rules:\n  - id: a\n    kind: lab\n    test: ALT\n    min_grade: 5\n    direction: up\n"
                           "    pt: Hepatitis\n")  # fmt: skip
    assert (5, "rule 'a': laboratory grades run from 1 to 4, not 5") in problems
    assert (6, "rule 'a': direction must be high or low, not 'up'") in problems
    assert (7, "rule 'a': field 'pt' is about adverse events; a lab rule is about laboratory values") in problems
    no_test = "rules:\n  - id: a\n    kind: lab\n    min_grade: 3\n"
    assert problems_of(no_test) == [(2, "rule 'a': a lab rule needs 'test'")]
