"""AE baskets: parsing the basket file and placing events in baskets (DOMAIN.md §3)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from safety_dash.metrics.baskets import derive_basket_events, parse_baskets

IMMUNE_RELATED = Path(__file__).resolve().parents[2] / "safety_dash" / "baskets" / "immune_related.yaml"


# --- parse_baskets ---------------------------------------------------------------------------------------------


def test_parse_baskets_valid_mapping():
    mapping = yaml.safe_load(
        """
        skin: [Rash, " Pruritus "]
        other: [Myocarditis, Rash]
        """
    )
    assert parse_baskets(mapping) == {
        "skin": frozenset({"Rash", "Pruritus"}),
        "other": frozenset({"Myocarditis", "Rash"}),  # a PT may sit in two baskets
    }


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (["Rash"], "must be a mapping of basket names"),
        ({}, "must be a mapping of basket names"),
        ({"skin": []}, "Basket 'skin' must list at least one preferred term"),
        ({"skin": "Rash"}, "Basket 'skin' must list at least one preferred term"),
        ({"skin": ["Rash", None]}, "Basket 'skin' holds None, which is not a preferred term"),
        ({"skin": ["Rash", "  "]}, "Basket 'skin' holds '  ', which is not a preferred term"),
        ({"skin": ["Rash", "RASH"]}, "Basket 'skin' lists 'RASH' twice"),
        ({"": ["Rash"]}, "A basket name must be non-empty text"),
        ({3: ["Rash"]}, "A basket name must be non-empty text"),
        ({"skin": ["Rash"], " skin ": ["Pruritus"]}, "Basket 'skin' is defined twice"),
    ],
)
def test_parse_baskets_rejects_with_a_sentence(mapping, message):
    with pytest.raises(ValueError, match=message):
        parse_baskets(mapping)


def test_parse_baskets_default_immune_related_file():
    baskets = parse_baskets(yaml.safe_load(IMMUNE_RELATED.read_text(encoding="utf-8")))
    assert list(baskets) == [
        "skin",
        "endocrine",
        "hepatic",
        "gastrointestinal",
        "pulmonary",
        "renal",
        "neurological",
        "other",
    ]
    expected_members = {
        "skin": {"Rash", "Rash maculo-papular", "Pruritus"},
        "endocrine": {"Hypothyroidism", "Hyperthyroidism", "Thyroiditis", "Hypophysitis", "Adrenal insufficiency"},
        "hepatic": {"Alanine aminotransferase increased", "Aspartate aminotransferase increased", "Hepatitis"},
        "gastrointestinal": {"Diarrhoea", "Colitis", "Immune-mediated enterocolitis"},
        "pulmonary": {"Pneumonitis", "Interstitial lung disease"},
        "renal": {"Nephritis", "Acute kidney injury"},
        "neurological": {"Myasthenia gravis", "Guillain-Barre syndrome"},
        "other": {"Myocarditis", "Arthritis", "Uveitis"},
    }
    for name, members in expected_members.items():
        assert members <= baskets[name], f"{name} lacks {members - baskets[name]}"
    assert "Type 1 diabetes mellitus" in baskets["endocrine"]
    assert "Immune-mediated hepatitis" in baskets["hepatic"]


# --- derive_basket_events --------------------------------------------------------------------------------------


BASKETS = {"skin": frozenset({"Rash", "Pruritus"}), "other": frozenset({"Myocarditis", "Rash"})}


def test_derive_basket_events_case_insensitive_and_multiple_baskets():
    events = pd.DataFrame.from_records(
        [
            # AE_ID USUBJID PT
            (1, "S1", "RASH"),  # upper case (as in the CDISC pilot): matches Rash, in two baskets
            (2, "S1", "Headache"),  # in no basket: no row
            (3, "S2", "pruritus"),
            (4, "S2", "Uncoded: itchy skin"),  # uncoded: no basket until coded
            (5, "S3", "Myocarditis"),
        ],
        columns=["AE_ID", "USUBJID", "PT"],
    )
    expected = pd.DataFrame.from_records(
        [
            (1, "S1", "RASH", "skin"),
            (1, "S1", "RASH", "other"),
            (3, "S2", "pruritus", "skin"),
            (5, "S3", "Myocarditis", "other"),
        ],
        columns=["AE_ID", "USUBJID", "PT", "BASKET"],
        index=[0, 0, 2, 4],
    )
    pd.testing.assert_frame_equal(derive_basket_events(events, BASKETS), expected)


def test_derive_basket_events_no_match_gives_empty_frame_with_columns():
    events = pd.DataFrame({"AE_ID": [1], "USUBJID": ["S1"], "PT": ["Headache"]})
    result = derive_basket_events(events, BASKETS)
    assert result.empty
    assert list(result.columns) == ["AE_ID", "USUBJID", "PT", "BASKET"]


def test_derive_basket_events_matches_like_events_compare_terms():
    # the same key as derive_events' PT and SOC: surrounding blanks and case do not matter, on either side
    baskets = {"skin": frozenset({" Rash ", "PRURITUS"}), "liver": frozenset({"Hepatitis"})}
    events = pd.DataFrame.from_records(
        [
            # AE_ID USUBJID PT
            (1, "S1", " rash "),  # blanks around the event's term
            (2, "S1", "Pruritus"),  # blanks around nothing, case differs from the basket
            (3, "S2", "hepatitis\t"),
            (4, "S2", "Rash maculo-papular"),  # another term: no basket here
        ],
        columns=["AE_ID", "USUBJID", "PT"],
    )
    result = derive_basket_events(events, baskets)
    assert result[["AE_ID", "BASKET"]].values.tolist() == [[1, "skin"], [2, "skin"], [3, "liver"]]
