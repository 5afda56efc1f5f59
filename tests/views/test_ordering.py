"""The order cohorts are shown in: dose levels by dose, names alphabetically, ALL first."""

from __future__ import annotations

import pandas as pd

from safety_dash.views.ordering import natural_key, natural_rank, order_groups

# As the demo names its cohorts, in the order a text sort gives them.
AS_TEXT = [
    "Ph I 0.3 mg/kg",
    "Ph I 1 mg/kg",
    "Ph I 10 mg/kg",
    "Ph I 3 mg/kg",
    "Ph I 5 mg/kg",
    "Ph Ib NPC",
    "Ph Ib NSCLC",
]
BY_DOSE = [
    "Ph I 0.3 mg/kg",
    "Ph I 1 mg/kg",
    "Ph I 3 mg/kg",
    "Ph I 5 mg/kg",
    "Ph I 10 mg/kg",
    "Ph Ib NPC",
    "Ph Ib NSCLC",
]


def test_natural_key_orders_dose_levels_by_dose():
    assert sorted(AS_TEXT, key=natural_key) == BY_DOSE
    assert sorted(["2.5 mg", "10 mg", "0.75 mg"], key=natural_key) == ["0.75 mg", "2.5 mg", "10 mg"]


def test_order_groups_puts_all_first():
    assert order_groups(["Ph I 10 mg/kg", "ALL", "Ph I 3 mg/kg"]) == ["ALL", "Ph I 3 mg/kg", "Ph I 10 mg/kg"]


def test_natural_rank_ranks_missing_values_last():
    values = pd.Series(["Ph I 10 mg/kg", None, "Ph I 3 mg/kg", "Ph I 10 mg/kg"])
    assert natural_rank(values).tolist() == [1, 2, 0, 1]
