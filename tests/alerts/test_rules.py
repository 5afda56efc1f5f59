"""Rule files: valid ones load as typed rules; every malformed one fails naming its line and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from safety_dash.alerts.rules import RuleFileError, load_rule_file, parse_rules
from safety_dash.analysis import load_baskets
from safety_dash.config import DEFAULT_BASKETS_FILE

DEMO_RULES = Path(__file__).resolve().parents[2] / "safety_dash" / "alerts" / "demo_rules.yaml"
BASKETS = load_baskets(DEFAULT_BASKETS_FILE)


def problems_of(text: str, study: str = "T1") -> list[tuple[int | None, str]]:
    with pytest.raises(RuleFileError) as caught:
        parse_rules(text, Path(f"{study}.yaml"), study, BASKETS)
    return caught.value.problems


# --- valid files ---------------------------------------------------------------------------------------------------


def test_load_rule_file_reads_the_demo_rules(tmp_path):
    path = tmp_path / "QL1706-DEMO.yaml"
    path.write_text(DEMO_RULES.read_text(encoding="utf-8"), encoding="utf-8")
    ruleset = load_rule_file(path, baskets=BASKETS)
    assert ruleset.study_id == "QL1706-DEMO"
    kinds = ["event", "event", "event", "incidence", "count", "bayesian", "signal", "lab", "hys_law"]
    assert [r.kind for r in ruleset.rules] == kinds
    grade5, pneumonitis, serious, incidence, count, bayesian, signal, alt, hys_law = ruleset.rules
    assert (alt.min_grade, dict(alt.params), alt.delivery) == (3, {"tests": ("ALT",), "direction": None,
                                                                     "xuln_at_least": None}, "digest")  # fmt: skip
    assert hys_law.delivery == "immediate"
    assert dict(signal.params) == {"tests": ("rising", "cohort"), "by": "pt", "q_at_most": None}
    assert (grade5.id, grade5.min_grade, grade5.delivery, grade5.line) == ("grade5", 5, "immediate", 11)
    assert (pneumonitis.pt, pneumonitis.min_grade) == (("Pneumonitis",), 3)
    assert (serious.serious, serious.basket, serious.delivery) == (True, ("any",), "digest")
    assert dict(incidence.params) == {"above_pct": 25, "min_n": 10}
    assert dict(count.params) == {"at_least": 2, "first_n": 6, "within_days": 21}
    assert count.cohorts[-1] == "Ph I 10 mg/kg"
    assert dict(bayesian.params) == {"p0": 0.2, "above_probability": 0.9, "min_n": 6, "prior_a": 1.0, "prior_b": 1.0}
    assert ruleset.digest_at == (7, 0)


def test_parse_rules_takes_recipients_per_rule_before_the_file_list():
    text = """
recipients: [team@example.org]
rules:
  - {id: a, kind: event, min_grade: 5, recipients: [one@example.org]}
  - {id: b, kind: eair, soc: Cardiac disorders, above_rate: 5, lower_bound_above: true}
"""
    ruleset = parse_rules(text, Path("T1.yaml"), "T1", BASKETS)
    a, b = ruleset.rules
    assert ruleset.recipients_of(a) == ("one@example.org",)
    assert ruleset.recipients_of(b) == ("team@example.org",)
    assert dict(b.params) == {"above_rate": 5, "lower_bound_above": True, "min_n": 1}


def test_parse_rules_accepts_an_empty_rule_list():
    assert parse_rules("rules: []\n", Path("T1.yaml"), "T1").rules == ()


# --- malformed files: line and reason ------------------------------------------------------------------------------


def test_parse_rules_names_the_line_of_a_yaml_syntax_error():
    text = "rules:\n  - id: a\n    kind: event\n    pt: [Rash, Pruritus\n  - id: b\n"
    [(line, reason)] = problems_of(text)
    assert line == 5
    assert reason.startswith("not valid YAML")


def test_parse_rules_names_the_line_of_an_unknown_field_and_suggests_the_right_one():
    text = "rules:\n  - id: a\n    kind: incidence\n    basket: skin\n    above_pc: 10\n"
    problems = problems_of(text)
    assert (5, "rule 'a' has an unknown field 'above_pc'; did you mean 'above_pct'?") in problems
    assert (2, "rule 'a': a incidence rule needs 'above_pct'") in problems


def test_parse_rules_names_the_line_of_a_value_of_the_wrong_type(tmp_path):
    path = tmp_path / "T1.yaml"
    path.write_text("rules:\n  - id: b\n    kind: bayesian\n    pt: Colitis\n    p0: 1.5\n"
                    "    above_probability: high\n", encoding="utf-8")  # fmt: skip
    with pytest.raises(RuleFileError) as caught:
        load_rule_file(path)
    text = str(caught.value)
    assert "T1.yaml, line 5: rule 'b': p0 must lie strictly between 0 and 1, not 1.5" in text
    assert "T1.yaml, line 6: rule 'b': above_probability must be a number, not 'high'" in text


def test_parse_rules_rejects_a_rule_id_used_twice_naming_both_lines():
    text = "rules:\n  - id: a\n    kind: event\n    min_grade: 5\n  - id: a\n    kind: event\n    serious: true\n"
    assert problems_of(text) == [(5, "rule id 'a' is used twice (first on line 2); ids must be unique: "
                                     "they are part of every alert key")]  # fmt: skip


def test_parse_rules_rejects_a_field_set_twice():
    text = "rules:\n  - id: a\n    kind: event\n    min_grade: 3\n    min_grade: 5\n"
    assert problems_of(text) == [(5, "rule 'a' sets 'min_grade' twice (first on line 4); keep one")]


def test_parse_rules_rejects_an_unknown_kind_and_basket():
    text = "rules:\n  - id: a\n    kind: incidnce\n  - id: b\n    kind: count\n    basket: lungs\n    at_least: 2\n"
    problems = problems_of(text)
    assert (3, "rule 'a': kind 'incidnce' is not a rule kind; did you mean 'incidence'?") in problems
    assert any(line == 6 and "there is no basket 'lungs'" in reason for line, reason in problems)


def test_parse_rules_needs_exactly_one_term_in_a_rate_rule():
    text = "rules:\n  - id: a\n    kind: incidence\n    pt: Rash\n    soc: Skin\n    above_pct: 5\n"
    assert problems_of(text) == [(2, "rule 'a': a incidence rule is about one term: give exactly one of pt, soc "
                                     "or basket (given: pt, soc)")]  # fmt: skip


def test_parse_rules_rejects_fields_of_another_kind_and_bad_grades():
    text = "rules:\n  - id: a\n    kind: event\n    above_pct: 5\n    min_grade: 7\n"
    problems = problems_of(text)
    assert (
        4,
        "rule 'a': field 'above_pct' does not apply to a event rule; event rules take treatment_emergent",
    ) in problems
    assert (5, "rule 'a': min_grade must be from 1 to 5, not 7") in problems


def test_parse_rules_rejects_a_file_of_another_study_and_bad_recipients():
    text = "study: OTHER\nrecipients: [not-an-address]\nrules: []\n"
    problems = problems_of(text)
    assert problems[0][0] == 1 and "study is 'OTHER' but this file holds the rules of 'T1'" in problems[0][1]
    assert problems[1] == (2, "the file's recipients must be email addresses (name@example.org), not 'not-an-address'")


def test_parse_rules_rejects_a_file_without_rules_and_a_rule_without_id():
    assert problems_of("study: T1\n") == [(1, "the file has no 'rules:' list; add one (it may be empty: 'rules: []')")]
    assert problems_of("rules:\n  - kind: event\n") == [(2, "rule 1: the field 'id' is missing")]


def test_load_rule_file_says_where_to_write_a_missing_file(tmp_path):
    with pytest.raises(RuleFileError, match="no such file; write the study's rules to"):
        load_rule_file(tmp_path / "T1.yaml")


# --- signal rules --------------------------------------------------------------------------------------------------


def test_parse_rules_reads_a_signal_rule_with_terms_tests_and_a_q_bound():
    text = ("rules:\n  - id: s\n    kind: signal\n    test: rising\n    by: soc\n    soc: [Hepatobiliary disorders]\n"
            "    cohorts: [ALL]\n    q_at_most: 0.05\n")  # fmt: skip
    (rule,) = parse_rules(text, Path("T1.yaml"), "T1", BASKETS).rules
    assert (rule.kind, rule.soc, rule.cohorts) == ("signal", ("Hepatobiliary disorders",), ("ALL",))
    assert dict(rule.params) == {"tests": ("rising",), "by": "soc", "q_at_most": 0.05}


def test_parse_rules_signal_rule_needs_one_of_flagged_or_q_and_known_values():
    one_of = "rule 's': a signal rule needs exactly one of 'flagged: true' or 'q_at_most: <q>'"
    both = "rules:\n  - id: s\n    kind: signal\n    flagged: true\n    q_at_most: 0.1\n"
    assert problems_of(both) == [(2, one_of)]
    assert problems_of("rules:\n  - id: s\n    kind: signal\n") == [(2, one_of)]
    bad = "rules:\n  - id: s\n    kind: signal\n    test: falling\n    by: hlt\n    flagged: false\n"
    assert problems_of(bad) == [
        (4, "rule 's': test must be rising or cohort (or a list of them), not 'falling'"),
        (5, "rule 's': by must be pt, soc or basket, not 'hlt'"),
        (6, "rule 's': flagged must be true (to fire on flagged signals)"),
    ]
