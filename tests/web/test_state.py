"""The view state in the address bar: parse, write, and the selection rules."""

from __future__ import annotations

import pytest

from safety_dash.web.state import (
    ViewState,
    change_filters,
    parse_state,
    select_pt,
    select_signal,
    select_soc,
    select_term,
    signal_group,
    state_href,
    state_to_search,
    term_value,
)


def test_parse_state_reads_every_key():
    state = parse_state(
        "?study=QL1706-DEMO&cut=3&cohort=Ph%20I%205%20mg%2Fkg&grade=3&serious=1&related=true&window=1"
        "&soc=Skin&pt=Rash&basket=skin&subject=QL1706-DEMO-01-0001&ref=Ph%20Ib%20NSCLC"
    )
    assert state == ViewState(
        study="QL1706-DEMO",
        cut=3,
        cohort="Ph I 5 mg/kg",
        min_grade=3,
        serious=True,
        related=True,
        window=True,
        soc="Skin",
        pt="Rash",
        basket="skin",
        subject="QL1706-DEMO-01-0001",
        ref="Ph Ib NSCLC",
    )


@pytest.mark.parametrize("search", [None, "", "?", "?unknown=1", "?cut=&grade="])
def test_parse_state_empty_or_unknown_gives_defaults(search):
    assert parse_state(search) == ViewState()


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        # unreadable values are dropped, not fatal
        ("?cut=abc", ViewState()),
        ("?cut=-2", ViewState()),
        ("?cut=0", ViewState()),
        ("?grade=9", ViewState()),
        ("?grade=2.5", ViewState()),
        ("?serious=no", ViewState()),
        # the first of a repeated key wins
        ("?cut=2&cut=3", ViewState(cut=2)),
        # surrounding spaces do not count
        ("?cohort=%20%20", ViewState()),
        ("?pt=%20Rash%20", ViewState(pt="Rash")),
    ],
)
def test_parse_state_drops_bad_values(search, expected):
    assert parse_state(search) == expected


def test_state_to_search_round_trip_and_fixed_order():
    state = ViewState(study="S 1", cut=2, cohort="Ph I 5 mg/kg", min_grade=3, serious=True, soc="A & B", pt="x=y")
    search = state_to_search(state)
    assert search.startswith("?study=S%201&cut=2&cohort=Ph%20I%205%20mg%2Fkg&grade=3&serious=1")
    assert parse_state(search) == state


def test_state_to_search_leaves_out_what_is_not_set():
    assert state_to_search(ViewState()) == ""
    assert state_to_search(ViewState(cut=4)) == "?cut=4"
    assert state_href("/rates", ViewState(cut=4, related=True)) == "/rates?cut=4&related=1"


def test_change_filters_keeps_selections_for_another_cut():
    state = ViewState(study="S", cut=3, cohort="A", soc="Skin", pt="Rash", subject="S-1")
    assert change_filters(state, cut=1) == state.replace(cut=1)


def test_change_filters_another_study_clears_cut_cohort_and_selections():
    state = ViewState(study="S", cut=3, cohort="A", min_grade=3, soc="Skin", pt="Rash", subject="S-1", ref="B")
    assert change_filters(state, study="T") == ViewState(study="T", min_grade=3)


def test_change_filters_refuses_selection_fields():
    with pytest.raises(ValueError, match="filter fields"):
        change_filters(ViewState(), soc="Skin")


def test_select_soc_selects_clears_pt_and_toggles():
    state = ViewState(cut=1, pt="Rash")
    selected = select_soc(state, "Skin")
    assert selected == ViewState(cut=1, soc="Skin")
    # clicking the selected SOC again clears it
    assert select_soc(selected, "Skin") == ViewState(cut=1)


def test_select_pt_sets_its_soc_and_clears_the_basket():
    state = ViewState(cut=1, basket="skin")
    selected = select_pt(state, "Rash", "Skin")
    assert selected == ViewState(cut=1, soc="Skin", pt="Rash")
    assert select_pt(selected, "Rash") == ViewState(cut=1, soc="Skin")


def test_select_term_and_term_value_are_inverse():
    state = ViewState(cut=1)
    for term in ("basket:skin", "pt:Rash"):
        assert term_value(select_term(state, term)) == term
    assert select_term(ViewState(pt="Rash"), None) == ViewState()
    with pytest.raises(ValueError, match="neither"):
        select_term(state, "soc:Skin")


def test_parse_state_reads_the_selected_signal():
    state = parse_state("?study=QL1706-DEMO&cut=3&soc=Hepatobiliary%20disorders&pt=Hepatitis&test=rising&group=ALL")
    assert (state.test, state.group, state.soc, state.pt) == ("rising", "ALL", "Hepatobiliary disorders", "Hepatitis")
    assert parse_state("?test=falling&group=%20").test is None  # not a test of DOMAIN.md §7: dropped
    assert parse_state("?test=falling&group=%20").group is None


def test_signal_group_is_the_group_else_the_cohort_filter_else_all():
    assert signal_group(ViewState(test="rising")) == "ALL"
    assert signal_group(ViewState(test="cohort", cohort="Ph Ib NPC")) == "Ph Ib NPC"
    assert signal_group(ViewState(test="rising", cohort="Ph Ib NPC", group="ALL")) == "ALL"


def test_select_signal_writes_the_group_only_where_it_is_not_the_default():
    state = ViewState(study="S", cut=3, basket="skin")
    chosen = select_signal(state, "rising", "Ph Ib NSCLC", "Hepatobiliary disorders", "Hepatitis")
    assert state_to_search(chosen) == (
        "?study=S&cut=3&soc=Hepatobiliary%20disorders&pt=Hepatitis&test=rising&group=Ph%20Ib%20NSCLC"
    )
    everyone = select_signal(state, "rising", "ALL", "Hepatobiliary disorders", "Hepatitis")
    assert everyone.group is None and signal_group(everyone) == "ALL"
    in_cohort = select_signal(state.replace(cohort="Ph Ib NPC"), "cohort", "Ph Ib NPC", "Endocrine disorders",
                              "Hypothyroidism")  # fmt: skip
    assert in_cohort.group is None and signal_group(in_cohort) == "Ph Ib NPC"
    # clicking the selected signal again clears it
    again = select_signal(chosen, "rising", "Ph Ib NSCLC", "Hepatobiliary disorders", "Hepatitis")
    assert (again.test, again.group, again.pt) == (None, None, None)
    with pytest.raises(ValueError, match="not a signal test"):
        select_signal(state, "falling", "ALL", "X", "Y")


def test_another_study_clears_the_selected_signal():
    state = ViewState(study="S", cut=3, soc="Skin", pt="Rash", test="cohort", group="A")
    assert change_filters(state, study="T") == ViewState(study="T")
