"""The Signals page's numbers on the demo study (500 subjects, seed 1706): which rows are flagged, in what order,
since when, their trend, and the subjects counted in x₁; and the marks of the term listing on a hand-made table.

The flagged rows and their numbers are those of ``python -m safety_dash signals`` on the demo (DOMAIN.md §7)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from safety_dash.config import DEFAULT_BASKETS_FILE
from safety_dash.db.engine import get_engine
from safety_dash.views.signals import (
    CutLabel,
    Signal,
    basket_names,
    load_signal_members,
    load_signal_rows,
    load_signal_trends,
    mark_signal_records,
    signal_from_key,
)
from safety_dash.web.data import WebContext, load_baskets_file, load_cut
from safety_dash.web.views import cut_key

HEP, ENDO = "Hepatobiliary disorders", "Endocrine disorders"
RISING_NSCLC = Signal("rising", "Ph Ib NSCLC", HEP, "Hepatitis")
NPC = Signal("cohort", "Ph Ib NPC", ENDO, "Hypothyroidism")


@pytest.fixture
def source(signal_demo_db):
    def _source(run_id: int):
        context = WebContext(get_engine(signal_demo_db.url), load_baskets_file(DEFAULT_BASKETS_FILE))
        return cut_key(context, load_cut(context.engine, run_id))

    return _source


def _flagged(rows: pd.DataFrame) -> list[tuple]:
    return [(r.test, r.group, r.pt, r.since) for r in rows.loc[rows["flagged"]].itertuples()]


def test_cut3_flagged_rows_come_first_by_p_with_since_when(source, signal_demo_db):
    rows = load_signal_rows(source(signal_demo_db.run_ids[2]), None, None, False, False)
    # p: 4.7e-08, 2.9e-05, 1.0e-04, 9.1e-04
    assert _flagged(rows.head(4)) == [
        ("cohort", "Ph Ib NSCLC", "Hepatitis", "cut 3 · 2023-03-31"),
        ("cohort", "Ph Ib NPC", "Hypothyroidism", "cut 2 · 2022-09-30"),
        ("rising", "Ph Ib NSCLC", "Hepatitis", "cut 3 · 2023-03-31"),
        ("rising", "ALL", "Hepatitis", "cut 3 · 2023-03-31"),
    ]
    assert not rows["flagged"].iloc[4:].any()
    assert rows["p_one_sided"].iloc[4:].is_monotonic_increasing
    rising = rows.iloc[2]
    assert (rising["x1"], rising["x0"], rising["rr_text"]) == (14, 2, "10.8 (2.48–97.8)")
    assert rising["py1"] == pytest.approx(20.0794, abs=1e-4) and rising["py0"] == pytest.approx(30.9322, abs=1e-4)
    assert (rising["test_label"], rising["group_label"], rising["baskets"]) == ("Rising", "Ph Ib NSCLC", "hepatic")
    assert rows.iloc[3]["group_label"] == "All cohorts"
    assert rows.iloc[1]["rr_text"] == "2.88 (1.73–4.71)"


def test_cut2_flags_only_hypothyroidism_in_npc(source, signal_demo_db):
    rows = load_signal_rows(source(signal_demo_db.run_ids[1]), None, None, False, False)
    assert _flagged(rows) == [("cohort", "Ph Ib NPC", "Hypothyroidism", "cut 2 · 2022-09-30")]


def test_the_cohort_filter_keeps_the_cohorts_rows(source, signal_demo_db):
    rows = load_signal_rows(source(signal_demo_db.run_ids[2]), "Ph Ib NSCLC", None, False, False)
    assert set(rows["group"]) == {"Ph Ib NSCLC"}
    assert _flagged(rows) == [
        ("cohort", "Ph Ib NSCLC", "Hepatitis", "cut 3 · 2023-03-31"),
        ("rising", "Ph Ib NSCLC", "Hepatitis", "cut 3 · 2023-03-31"),
    ]


def test_grade_3_or_worse_flags_no_hepatitis(source, signal_demo_db):
    # The planted hepatitis and hypothyroidism events are grade 1-2: counting grade >= 3 only, neither is flagged.
    rows = load_signal_rows(source(signal_demo_db.run_ids[2]), None, 3, False, False)
    assert not rows.loc[rows["pt"].isin(["Hepatitis", "Hypothyroidism"]), "flagged"].any()


def test_trend_of_the_rising_signal(source, signal_demo_db):
    trends = load_signal_trends(source(signal_demo_db.run_ids[2]), None, False, False)
    trend = trends.loc[
        (trends["test"] == "rising") & (trends["group"] == "Ph Ib NSCLC") & (trends["pt"] == "Hepatitis")
    ]
    assert trend["run_id"].tolist() == [2, 3]  # the first cut has no rising test
    assert trend["flagged"].tolist() == [False, True]
    assert trend["rate1"].iloc[-1] == pytest.approx(100 * 14 / 20.0794, rel=1e-4)
    rows = load_signal_rows(source(signal_demo_db.run_ids[2]), None, None, False, False)
    assert [point[0] for point in rows.iloc[2]["trend"]] == [2, 3]


def test_subjects_of_the_rising_signal(source, signal_demo_db):
    members = load_signal_members(source(signal_demo_db.run_ids[2]), RISING_NSCLC, None, False, False)
    assert (members["PART"] == 1).sum() == 14 and (members["PART"] == 0).sum() == 2
    assert set(members["GROUP"]) == {"Ph Ib NSCLC"}
    new = members.loc[members["PART"] == 1, "FIRST_ONSET_DATE"]
    assert (new > pd.Timestamp("2022-09-30")).all() and (new <= pd.Timestamp("2023-03-31")).all()


def test_subjects_of_the_out_of_line_signal(source, signal_demo_db):
    members = load_signal_members(source(signal_demo_db.run_ids[2]), NPC, None, False, False)
    assert (members["PART"] == 1).sum() == 27 and (members["PART"] == 0).sum() == 48
    assert set(members.loc[members["PART"] == 1, "GROUP"]) == {"Ph Ib NPC"}


def test_no_rising_subjects_on_the_first_cut(source, signal_demo_db):
    with pytest.raises(ValueError, match="first cut"):
        load_signal_members(source(signal_demo_db.run_ids[0]), RISING_NSCLC, None, False, False)


def test_mark_signal_records_puts_x1_first_and_names_the_parts():
    # Three subjects' records in listing order: B in x0 (before the cut), A and C in x1, D not counted.
    rows = pd.DataFrame({"USUBJID": ["A", "B", "B", "C", "D"], "AESEQ": ["1", "1", "2", "4", "1"]})
    members = pd.DataFrame({"USUBJID": ["A", "C", "B"], "PART": [1, 1, 0]})
    marked = mark_signal_records(rows, members, RISING_NSCLC, CutLabel(2, dt.date(2022, 9, 30)))
    assert marked["USUBJID"].tolist() == ["A", "C", "B", "B", "D"]
    assert marked["SIGNAL_PART"].tolist() == ["x₁ · new since cut 2", "x₁ · new since cut 2", "x₀ · before cut 2",
                                              "x₀ · before cut 2", ""]  # fmt: skip
    assert marked["X1"].tolist() == [True, True, False, False, False]
    cohort = mark_signal_records(rows, members, NPC, None)
    assert cohort["SIGNAL_PART"].tolist()[:3] == ["x₁ · in Ph Ib NPC", "x₁ · in Ph Ib NPC", "x₀ · in the other cohorts"]


def test_signal_keys_read_back_and_refuse_other_text():
    assert signal_from_key(RISING_NSCLC.key) == RISING_NSCLC
    assert RISING_NSCLC.label == "Hepatitis rising in Ph Ib NSCLC"
    assert Signal("rising", "ALL", HEP, "Hepatitis").label == "Hepatitis rising in all cohorts"
    for bad in ("", "x", "[1, 2]", '["falling", "ALL", "A", "B"]', '{"a": 1}', '["rising", "ALL", "A", 3]'):
        assert signal_from_key(bad) is None


def test_basket_names_name_every_basket_of_a_pt():
    baskets = {
        "skin": frozenset({"Rash", "Pruritus"}),
        "endocrine": frozenset({"Hypothyroidism"}),
        "hepatic": frozenset({"Hepatitis", "rash"}),
    }
    assert basket_names(baskets) == {"rash": "hepatic, skin", "pruritus": "skin", "hypothyroidism": "endocrine",
                                     "hepatitis": "hepatic"}  # fmt: skip
