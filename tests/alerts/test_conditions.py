"""Links in alerts are the dashboard's own addresses for the view (safety_dash.web.state)."""

from __future__ import annotations

from pathlib import Path

import pytest

from safety_dash.alerts.conditions import build_view_path, term_filters
from safety_dash.alerts.rules import Rule
from safety_dash.web.state import ViewState, parse_state, state_href


def test_build_view_path_writes_the_address_the_dashboard_writes_for_the_same_view():
    path = build_view_path("/rates", study="QL1706-DEMO", cut=3, cohort="Ph I 10 mg/kg", grade=3, serious=True,
                           related=False, pt="Rash & itch")  # fmt: skip
    state = ViewState(study="QL1706-DEMO", cut=3, cohort="Ph I 10 mg/kg", min_grade=3, serious=True, pt="Rash & itch")
    assert path == state_href("/rates", state)
    assert parse_state(path.partition("?")[2]) == state


def test_build_view_path_refuses_a_key_the_dashboard_does_not_read():
    with pytest.raises(ValueError, match=r"\['min_grade'\] are not query keys of the dashboard"):
        build_view_path("/rates", min_grade=3)


@pytest.mark.parametrize(
    ("terms", "expected"),
    [
        ({"pt": ("Colitis",)}, {"pt": "Colitis"}),
        ({"soc": ("Cardiac disorders",)}, {"soc": "Cardiac disorders"}),
        ({"basket": ("skin",)}, {"basket": "skin"}),
        ({"basket": ("skin", "hepatic")}, {}),  # a union of baskets has no view of its own
        ({"basket": ("any",)}, {}),
    ],
)
def test_term_filters_select_the_rule_term_in_the_dashboard(terms, expected):
    rule = Rule(id="r", kind="incidence", name="r", line=1, **terms)
    assert term_filters(rule) == expected


def test_flag_term_events_matches_rule_terms_as_dictionary_terms():
    # DOMAIN.md §1: `Rash`, `RASH` and ` rash ` are one term, in the rule file as in the data.
    import pandas as pd

    from safety_dash.alerts.conditions import flag_term_events

    events = pd.DataFrame({"AE_ID": [1, 2, 3], "PT": ["Rash", "Pruritus", "RASH"],
                           "SOC": ["Skin disorders", "Skin disorders", "Skin disorders"]})  # fmt: skip
    rule = Rule(id="r", kind="event", name="r", line=1, pt=(" rash ",))
    assert flag_term_events(rule, events, {}).tolist() == [True, False, True]
    rule = Rule(id="r", kind="event", name="r", line=1, soc=("SKIN DISORDERS",))
    assert flag_term_events(rule, events, {}).tolist() == [True, True, True]


def test_evaluate_signal_rule_fires_per_row_with_its_numbers_and_new_subjects():
    from safety_dash.alerts.conditions import CutInfo, evaluate_rule
    from safety_dash.alerts.rules import parse_rules
    from tests.metrics.test_signals import EVENTS_CUT2, SUBJECTS_CUT2, T0, T1

    text = "rules:\n  - id: s\n    kind: signal\n    test: rising\n    q_at_most: 0.05\n"
    (rule,) = parse_rules(text, Path("T1.yaml"), "T1").rules
    subjects = SUBJECTS_CUT2.rename(columns={"COHORT": "COHORT_GROUP"})
    cut = CutInfo(7, "T1", T1, previous_cutoff=T0)
    # Hand-worked cut 2 (tests/metrics/test_signals.py): only Rash rising in A has q_pt <= 0.05 (0.0216).
    (finding,) = evaluate_rule(rule, subjects, EVENTS_CUT2, {}, cut)
    assert finding.key == "s|rising|A|Skin|Rash"
    assert finding.title == "s: Rash rising in A"
    numbers = finding.evidence["numbers"]
    assert (numbers["x1"], numbers["x0"], numbers["flagged"]) == (1, 1, False)
    assert numbers["py1"] == pytest.approx(1 / 365.25) and numbers["py0"] == pytest.approx(91 / 365.25)
    assert numbers["q_pt"] == pytest.approx(0.02162098299, rel=1e-9)
    assert finding.evidence["subjects"] == ["A3"]  # onset after t0; A1's Rash on t0 is in x0
    assert finding.view_path == "/signals?study=T1&cut=7&cohort=A&soc=Skin&pt=Rash&test=rising"
    # Without a previous cut there is no rising row, so nothing fires.
    assert evaluate_rule(rule, subjects, EVENTS_CUT2, {}, CutInfo(7, "T1", T1)) == []
