"""Dictionary terms (DOMAIN.md §1): one term whatever its case and surrounding blanks, shown in its most frequent
spelling in the cut."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safety_dash.metrics.terms import compute_canonical_terms, term_key


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Rash", "rash"),
        ("RASH", "rash"),
        (" rash ", "rash"),
        ("\tRash maculo-papular ", "rash maculo-papular"),  # blanks inside a term are part of it
        ("", ""),
        (None, ""),
        (np.nan, ""),
    ],
)
def test_term_key(text, key):
    assert term_key(text) == key


def test_compute_canonical_terms_most_frequent_spelling():
    values = pd.Series(
        [
            # as written          shown
            "Rash",  # Rash: 'Rash' twice (blanks do not make a spelling), 'RASH' once
            "RASH",
            " Rash ",
            "rash",  # ... and 'rash' once: Rash wins
            "PRURITUS",  # a tie, one each: the smallest in sort order ('PRURITUS' < 'Pruritus')
            "Pruritus",
            "Fatigue",
            "",  # blank and missing: ''
            None,
        ],
        index=[10, 11, 12, 13, 14, 15, 16, 17, 18],
    )
    expected = pd.Series(
        ["Rash", "Rash", "Rash", "Rash", "PRURITUS", "PRURITUS", "Fatigue", "", ""],
        index=values.index,
        dtype=object,
    )
    pd.testing.assert_series_equal(compute_canonical_terms(values), expected)


def test_compute_canonical_terms_only_voters_count():
    values = pd.Series(["RASH", "RASH", "Rash", "rash"])
    # without the first two (e.g. uncoded records), 'Rash' and 'rash' tie: 'Rash'; every value is still mapped
    result = compute_canonical_terms(values, voters=np.array([False, False, True, True]))
    assert result.tolist() == ["Rash"] * 4
    assert compute_canonical_terms(values).tolist() == ["RASH"] * 4


def test_compute_canonical_terms_empty():
    assert compute_canonical_terms(pd.Series([], dtype=object)).tolist() == []
