"""The view state in the address bar: parse, write, and the selection rules."""

from __future__ import annotations

import pytest

from safety_dash.web.state import (
    ViewState,
    change_filters,
    parse_state,
    select_pt,
    select_soc,
    select_term,
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
