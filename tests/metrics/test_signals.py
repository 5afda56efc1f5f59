"""Signals (DOMAIN.md §7): rate ratio and p against R, BH and double FDR against R, two hand-built cuts.

Every reference number below was produced by R 4.2 (``poisson.test``, ``binom.test``, ``p.adjust(..., "BH")``) and
written in as a literal; the tests never call R.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from safety_dash.metrics.rates import compute_rate_table
from safety_dash.metrics.signals import (
    SIGNAL_COLUMNS,
    compute_bh,
    compute_double_fdr,
    compute_rate_ratio,
    compute_signal_subjects,
    compute_signals,
)

YEAR = 365.25
INF = np.inf

# --- compute_rate_ratio against R ---------------------------------------------------------------------------------
# poisson.test(c(x1, x0), c(py1, py0)): estimate, conf.int; binom.test(x1, x1 + x0, py1 / (py1 + py0), "greater")$p
RATE_RATIO_CASES = [
    # x1  py1            x0  py0            RR                 ci_low             ci_high            p
    (10, 2.0, 5, 4.0, 4.0, 1.24571910869871, 14.914591821715, 0.00850427144032643),
    (25, 12.3, 40, 55.1, 2.79979674796748, 1.62788388354683, 4.7296199788228, 0.000104984240881014),
    (30, 1.0, 2, 10.0, 150.0, 38.0608804717062, 1295.35754629197, 2.36438040441951e-29),
    # both small
    (1, 0.5, 1, 2.5, 5.0, 0.0636968354183331, 392.484176581314, 0.305555555555555),
    (2, 62 / YEAR, 1, 161 / YEAR, 5.19354838709677, 0.270369734356167, 306.404745094261, 0.188914499547187),
    # x0 = 0: the ratio and the upper bound are infinite
    (3, 1.5, 0, 2.0, INF, 0.550975140041192, INF, 0.0787172011661807),
    # x1 = 0: ratio and lower bound 0, p = 1
    (0, 1.0, 4, 3.0, 0.0, 0.0, 4.54460057809761, 1.0),
]


@pytest.mark.parametrize(("x1", "py1", "x0", "py0", "rr", "low", "high", "p"), RATE_RATIO_CASES)
def test_compute_rate_ratio_matches_r(x1, py1, x0, py0, rr, low, high, p):
    result = compute_rate_ratio(x1, py1, x0, py0)
    assert result.estimate == pytest.approx(rr, rel=1e-12)
    assert result.ci_low == pytest.approx(low, rel=1e-10)
    assert result.ci_high == pytest.approx(high, rel=1e-10)
    assert result.p_one_sided == pytest.approx(p, rel=1e-10)


def test_compute_rate_ratio_vectorised_and_undefined_without_events():
    cases = np.array([case[:4] for case in RATE_RATIO_CASES] + [(0, 1.0, 0, 1.0)])
    result = compute_rate_ratio(cases[:, 0], cases[:, 1], cases[:, 2], cases[:, 3])
    np.testing.assert_allclose(result.p_one_sided[:-1], [case[7] for case in RATE_RATIO_CASES], rtol=1e-10)
    np.testing.assert_allclose(result.ci_high[:-1], [case[6] for case in RATE_RATIO_CASES], rtol=1e-10)
    # x0 = x1 = 0: nothing to compare
    assert np.isnan([result.estimate[-1], result.ci_low[-1], result.ci_high[-1], result.p_one_sided[-1]]).all()


def test_compute_rate_ratio_without_time_in_one_period():
    # Every subject dosed after the previous cut: no time before it, pi = 1, so p = 1 and no ratio.
    result = compute_rate_ratio(2, 0.5, 0, 0.0)
    assert np.isnan([result.estimate, result.ci_low, result.ci_high]).all()
    assert result.p_one_sided == 1.0


def test_compute_rate_ratio_rejects_bad_counts_and_times():
    with pytest.raises(ValueError, match="`x1` must hold whole numbers"):
        compute_rate_ratio(1.5, 1.0, 1, 1.0)
    with pytest.raises(ValueError, match="`x0` must hold whole numbers"):
        compute_rate_ratio(1, 1.0, -1, 1.0)
    with pytest.raises(ValueError, match="`py0` must hold finite times"):
        compute_rate_ratio(1, 1.0, 1, -2.0)


# --- Benjamini–Hochberg and double FDR against R p.adjust -----------------------------------------------------------


def test_compute_bh_matches_r_with_ties_and_missing():
    # p.adjust(c(0.01, 0.04, 0.03, 0.2, NA, 0.04), "BH")
    q = compute_bh([0.01, 0.04, 0.03, 0.2, np.nan, 0.04])
    np.testing.assert_allclose(q, [0.05, 0.05, 0.05, 0.20, np.nan, 0.05], rtol=1e-12)
    # p.adjust(c(0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216), "BH")
    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    expected = [0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.105714285714286, 0.216, 0.216, 0.216]
    np.testing.assert_allclose(compute_bh(p), expected, rtol=1e-12)
    # the same values shuffled, in two families: p.adjust(p[1:5], "BH") and p.adjust(p[6:10], "BH")
    order = np.array([7, 2, 9, 0, 5, 1, 8, 3, 6, 4])
    family = np.where(np.arange(10) < 5, "first", "second")
    q = np.empty(10)
    q[order] = compute_bh(np.array(p)[order], family[order])
    np.testing.assert_allclose(q, [0.005, 0.02, 0.042, 0.042, 0.042, 0.185, 0.185, 0.216, 0.216, 0.216], rtol=1e-12)


def test_compute_double_fdr_removes_a_soc_whose_best_pt_passes_alone():
    # Endocrine: p.adjust(c(0.02, 0.4, 0.7), "BH") = 0.06, 0.6, 0.7 -> its best PT passes 0.10 on its own;
    # Skin: p.adjust(c(0.5, 0.9), "BH") = 0.9, 0.9; step one, p.adjust(c(0.06, 0.9), "BH") = 0.12, 0.9:
    # Endocrine's q_soc 0.12 > 0.10, so none of its PTs is flagged.
    p = [0.02, 0.4, 0.7, 0.5, 0.9]
    soc = ["Endocrine", "Endocrine", "Endocrine", "Skin", "Skin"]
    q_pt, q_soc = compute_double_fdr(p, soc)
    np.testing.assert_allclose(q_pt, [0.06, 0.6, 0.7, 0.9, 0.9], rtol=1e-12)
    np.testing.assert_allclose(q_soc, [0.12, 0.12, 0.12, 0.9, 0.9], rtol=1e-12)
    assert q_pt[0] <= 0.10 < q_soc[0]


def test_compute_double_fdr_per_family():
    # Family "A" as above; family "B" with three SOCs (values from p.adjust):
    #   GI c(0.001, 0.03, 0.2) -> 0.003, 0.045, 0.2; Renal 0.04 -> 0.04; Hepatic c(0.3, 0.012, 0.6, 0.05)
    #   -> 0.4, 0.048, 0.6, 0.1; across SOCs p.adjust(c(0.003, 0.04, 0.048), "BH") = 0.009, 0.048, 0.048.
    p = [0.02, 0.001, 0.4, 0.03, 0.7, 0.2, 0.5, 0.04, 0.9, 0.3, 0.012, 0.6, 0.05]
    soc = ["End", "GI", "End", "GI", "End", "GI", "Skin", "Renal", "Skin", "Hep", "Hep", "Hep", "Hep"]
    family = ["A", "B", "A", "B", "A", "B", "A", "B", "A", "B", "B", "B", "B"]
    q_pt, q_soc = compute_double_fdr(p, soc, family)
    np.testing.assert_allclose(
        q_pt, [0.06, 0.003, 0.6, 0.045, 0.7, 0.2, 0.9, 0.04, 0.9, 0.4, 0.048, 0.6, 0.1], rtol=1e-12
    )
    np.testing.assert_allclose(
        q_soc, [0.12, 0.009, 0.12, 0.009, 0.12, 0.009, 0.9, 0.048, 0.9, 0.048, 0.048, 0.048, 0.048], rtol=1e-12
    )


# --- two cuts built by hand -----------------------------------------------------------------------------------------
# Cohort A: A1, A2, A3; cohort B: B1, B2; N1 outside the safety population. Cut 1 cutoff 2024-03-31 (= t0),
# cut 2 cutoff 2024-06-30 (= t1). "day" = days numbered from the first dose (day 1); t0's day per subject in cut 2:
# A1 31, A2 91 (its window ended before t0, on day 60), A3 none (dosed after t0), B1 10, B2 60.

T0 = dt.date(2024, 3, 31)
T1 = dt.date(2024, 6, 30)
SUBJECT_COLUMNS = ["USUBJID", "COHORT", "SAFFL", "TRTSDT", "WINDOW_END", "DAYS_AT_RISK"]
EVENT_COLUMNS = [
    "AE_ID", "USUBJID", "SOC", "PT", "ASTDT", "ASTDY", "TRTEMFL", "AFTER_CUTOFF", "COUNTED", "GRADE", "SERIOUS",
    "RELATED",
]  # fmt: skip


def _subjects(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=SUBJECT_COLUMNS)
    for column in ("TRTSDT", "WINDOW_END"):
        frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ns]")
    return frame.astype({"DAYS_AT_RISK": "Int64"})


def _events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=EVENT_COLUMNS)
    frame["ASTDT"] = pd.to_datetime(frame["ASTDT"]).astype("datetime64[ns]")
    return frame.astype({"ASTDY": "Int64", "GRADE": "Int64"})


SUBJECTS_CUT2 = _subjects(
    [
        # USUBJID COHORT SAFFL TRTSDT      WINDOW_END    DAYS_AT_RISK
        ("A1", "A", True, "2024-03-01", "2024-06-30", 122),
        ("A2", "A", True, "2024-01-01", "2024-02-29", 60),  # died before t0
        ("A3", "A", True, "2024-04-10", "2024-06-30", 82),  # first dose after t0
        ("B1", "B", True, "2024-03-22", "2024-06-30", 101),
        ("B2", "B", True, "2024-02-01", "2024-05-30", 120),
        ("N1", "A", False, None, None, pd.NA),
    ]
)
EVENTS_CUT2 = _events(
    [
        # AE_ID USUBJID SOC       PT          ASTDT     ASTDY TRTEMFL AFTER_CUTOFF COUNTED GRADE SERIOUS RELATED
        (1, "A1", "Skin", "Rash", "2024-03-31", 31, True, False, True, 1, False, True),  # on t0: before
        (2, "A1", "Skin", "Rash", "2024-05-01", 62, True, False, True, 3, False, True),  # a recurrence
        (3, "A3", "Skin", "Rash", "2024-04-10", 1, True, False, True, 2, False, False),  # on the first dose day
        (4, "B1", "Skin", "Rash", "2024-04-01", 11, True, False, True, 3, False, True),  # the day after t0
        (5, "B1", "Skin", "Pruritus", "2024-03-26", 5, True, False, True, 1, False, False),
        # dated before t0 but first reported in cut 2: still "before" (the current cut's own derivations)
        (6, "A2", "Endocrine", "Hypothyroidism", "2024-02-10", 41, True, False, True, 2, True, False),
        (7, "B2", "Endocrine", "Hypothyroidism", "2024-04-15", 75, True, False, True, 4, True, False),
        # not counted: pre-treatment, after the cutoff, a subject outside the safety population
        (8, "A1", "Endocrine", "Hypothyroidism", "2024-02-20", -10, False, False, False, 2, False, False),
        (9, "B2", "Skin", "Rash", "2024-07-05", 156, True, True, False, 2, False, False),
        (10, "N1", "Skin", "Rash", "2024-03-05", pd.NA, False, False, False, 2, False, False),
    ]
)
SUBJECTS_CUT1 = _subjects(
    [
        ("A1", "A", True, "2024-03-01", "2024-03-31", 31),
        ("A2", "A", True, "2024-01-01", "2024-02-29", 60),
        ("A3", "A", False, "2024-04-10", None, pd.NA),  # dosed after this cut's cutoff
        ("B1", "B", True, "2024-03-22", "2024-03-31", 10),
        ("B2", "B", True, "2024-02-01", "2024-03-31", 60),
        ("N1", "A", False, None, None, pd.NA),
    ]
)
EVENTS_CUT1 = _events(
    [
        (1, "A1", "Skin", "Rash", "2024-03-31", 31, True, False, True, 1, False, True),
        (5, "B1", "Skin", "Pruritus", "2024-03-26", 5, True, False, True, 1, False, False),
        (8, "A1", "Endocrine", "Hypothyroidism", "2024-02-20", -10, False, False, False, 2, False, False),
    ]
)

# Cut 2 by PT. x and days worked by hand (time at risk per subject, before t0 + after t0):
#   Rash, ALL: A1 31+0 (event on t0), A2 60+0, A3 0+1 (event day 1), B1 10+1 (event day 11), B2 60+60
#     -> x0 = 1, 161 days; x1 = 2, 62 days (EAIR time 223 = 31 + 60 + 1 + 11 + 120).
#   Pruritus, ALL: B1's event on day 5 (before t0); A1 31+91, A2 60+0, A3 0+82, B1 5+0, B2 60+60 -> 156 | 233.
#   Hypothyroidism, ALL: A2 41+0 (before), B2 60+15 (day 75, after); A1 31+91, A3 0+82, B1 10+91 -> 142 | 279.
#   Per cohort likewise (A: A1-A3, B: B1-B2); cohort test: x1, days = the cohort's EAIR counts, x0 = the other's:
#   Rash A 2 / 31+60+1 = 92, B 1 / 11+120 = 131; Pruritus A 0 / 264, B 1 / 125; Hypothyroidism A 1 / 245, B 1 / 176.
# RR, interval and p: R poisson.test / binom.test on days / 365.25; q_pt, q_soc: p.adjust "BH" per test x group,
# within SOC then across SOCs (Rash in A, rising: p = 0.0216, q_soc = 0.043, but x1 = 1, so not flagged).
EXPECTED_CUT2 = [
    # test   group soc  pt  x1 days1 x0 days0  rate_ratio  rr_ci_low  rr_ci_high  p_one_sided  q_pt  q_soc
    ("rising", "ALL", "Endocrine", "Hypothyroidism", 1, 279, 1, 142,
     0.5089605735, 0.006483835577, 39.95179432, 0.8862339978, 0.8862339978, 0.8862339978),
    ("rising", "ALL", "Skin", "Pruritus", 0, 233, 1, 156, 0, 0, 26.11158798, 1, 1, 0.7556579982),
    ("rising", "ALL", "Skin", "Rash", 2, 62, 1, 161,
     5.193548387, 0.2703697344, 306.4047451, 0.1889144995, 0.3778289991, 0.7556579982),
    ("rising", "A", "Endocrine", "Hypothyroidism", 0, 173, 1, 72, 0, 0, 16.23121387, 1, 1, 1),
    ("rising", "A", "Skin", "Rash", 1, 1, 1, 91,
     91, 1.159282405, 7143.212014, 0.02162098299, 0.02162098299, 0.04324196597),
    ("rising", "B", "Endocrine", "Hypothyroidism", 1, 106, 0, 70,
     INF, 0.01693275278, INF, 0.6022727273, 0.6022727273, 0.9312977099),
    ("rising", "B", "Skin", "Pruritus", 0, 60, 1, 65, 0, 0, 42.25, 1, 1, 0.9312977099),
    ("rising", "B", "Skin", "Rash", 1, 61, 0, 70,
     INF, 0.02942412778, INF, 0.465648855, 0.9312977099, 0.9312977099),
    ("cohort", "A", "Endocrine", "Hypothyroidism", 1, 245, 1, 176,
     0.7183673469, 0.009151545334, 56.38956333, 0.8252323108, 0.8252323108, 0.8252323108),
    ("cohort", "A", "Skin", "Pruritus", 0, 264, 1, 125, 0, 0, 18.46590909, 1, 1, 0.8252323108),
    ("cohort", "A", "Skin", "Rash", 2, 92, 1, 131,
     2.847826087, 0.1482543196, 168.013728, 0.3701713511, 0.7403427023, 0.8252323108),
    ("cohort", "B", "Endocrine", "Hypothyroidism", 1, 176, 1, 245,
     1.392045455, 0.01773377804, 109.2711628, 0.6613368239, 0.6613368239, 0.6613368239),
    ("cohort", "B", "Skin", "Pruritus", 1, 125, 0, 264,
     INF, 0.05415384615, INF, 0.3213367609, 0.6426735219, 0.6613368239),
    ("cohort", "B", "Skin", "Rash", 1, 131, 2, 92,
     0.3511450382, 0.005951894596, 6.745166026, 0.9297819293, 0.9297819293, 0.6613368239),
]  # fmt: skip


def _expected(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(
        rows,
        columns=["test", "group", "soc", "pt", "x1", "days1", "x0", "days0", *SIGNAL_COLUMNS[8:14]],
    )
    frame["py1"] = frame.pop("days1") / YEAR
    frame["py0"] = frame.pop("days0") / YEAR
    frame["flagged"] = False
    return frame[SIGNAL_COLUMNS].astype({"x1": np.int64, "x0": np.int64, **dict.fromkeys(SIGNAL_COLUMNS[8:14], float)})


def test_compute_signals_second_cut_by_pt_hand_worked():
    result = compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", previous_cutoff=T0, cutoff=T1)
    assert list(result.columns) == SIGNAL_COLUMNS
    pd.testing.assert_frame_equal(result, _expected(EXPECTED_CUT2), rtol=1e-9)


def test_compute_signals_first_cut_has_no_rising_rows():
    # Cut 1: Rash A 1 / A1 31 + A2 60 = 91 days, B 0 / 10 + 60 = 70; Pruritus A 0 / 91, B 1 / 5 + 60 = 65.
    result = compute_signals(EVENTS_CUT1, SUBJECTS_CUT1, "pt", "COHORT", previous_cutoff=None, cutoff=T0)
    assert set(result["test"]) == {"cohort"}
    assert result[["group", "pt", "x1", "x0"]].values.tolist() == [
        ["A", "Pruritus", 0, 1],
        ["A", "Rash", 1, 0],
        ["B", "Pruritus", 1, 0],
        ["B", "Rash", 0, 1],
    ]
    np.testing.assert_allclose(result["py1"] * YEAR, [91, 91, 65, 70], rtol=1e-12)
    np.testing.assert_allclose(result["py0"] * YEAR, [65, 70, 91, 91], rtol=1e-12)
    assert np.isinf(result["rr_ci_high"].to_numpy()[[1, 2]]).all()
    assert not result["flagged"].any()


@pytest.mark.parametrize("by", ["pt", "soc"])
def test_compute_signals_rising_periods_add_up_to_eair_time(by):
    # Invariant: py0 + py1 of `rising` = the EAIR patient-years of compute_rate_table, and x0 + x1 its x; the
    # `cohort` x1, py1 are the group's EAIR counts and x0 + x1, py0 + py1 those of ALL.
    signals = compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, by, "COHORT", previous_cutoff=T0, cutoff=T1)
    rates = compute_rate_table(EVENTS_CUT2, SUBJECTS_CUT2, by, "COHORT").set_index(["group", "soc", "pt"])
    rising = signals.loc[signals["test"] == "rising"].set_index(["group", "soc", "pt"])
    eair = rates.loc[rising.index]
    np.testing.assert_allclose(rising["py0"] + rising["py1"], eair["patient_years_at_risk"], rtol=1e-14)
    np.testing.assert_array_equal(rising["x0"] + rising["x1"], eair["n_with_event"])
    cohort = signals.loc[signals["test"] == "cohort"].set_index(["group", "soc", "pt"])
    np.testing.assert_allclose(cohort["py1"], rates.loc[cohort.index, "patient_years_at_risk"], rtol=1e-14)
    np.testing.assert_array_equal(cohort["x1"], rates.loc[cohort.index, "n_with_event"])
    all_rows = rates.loc[[("ALL", soc, pt) for _, soc, pt in cohort.index]]
    np.testing.assert_allclose(cohort["py0"] + cohort["py1"], all_rows["patient_years_at_risk"], rtol=1e-14)
    np.testing.assert_array_equal(cohort["x0"] + cohort["x1"], all_rows["n_with_event"])


def test_compute_signals_by_soc_and_basket_have_one_level_of_bh():
    # Skin, rising ALL: first Skin onsets A1 day 31 (before), B1 day 5 (Pruritus, before), A3 day 1 (after):
    #   A1 31+0, A2 60+0, A3 0+1, B1 5+0, B2 60+60 -> x0 = 2, 156 days; x1 = 1, 61 days.
    # R: poisson.test(c(1, 2), c(61, 156) / 365.25) -> 1.27868852459 (0.0216737202371 - 24.5624042954),
    #    p = 0.628469396074; Endocrine p = 0.886233997777; p.adjust(c(0.886..., 0.628...), "BH") = 0.886..., 0.886...
    by_soc = compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "soc", "COHORT", previous_cutoff=T0, cutoff=T1)
    rising_all = by_soc.loc[(by_soc["test"] == "rising") & (by_soc["group"] == "ALL")]
    assert rising_all[["soc", "pt", "x1", "x0"]].values.tolist() == [["Endocrine", "", 1, 1], ["Skin", "", 1, 2]]
    skin = rising_all.iloc[1]
    assert (skin["py1"] * YEAR, skin["py0"] * YEAR) == (pytest.approx(61), pytest.approx(156))
    assert skin["rate_ratio"] == pytest.approx(1.27868852459, rel=1e-10)
    assert skin["rr_ci_low"] == pytest.approx(0.0216737202371, rel=1e-10)
    assert skin["rr_ci_high"] == pytest.approx(24.5624042954, rel=1e-10)
    assert skin["p_one_sided"] == pytest.approx(0.628469396074, rel=1e-10)
    np.testing.assert_allclose(rising_all["q_pt"], [0.886233997777, 0.886233997777], rtol=1e-10)
    assert by_soc["q_soc"].isna().all()

    baskets = {"skin": frozenset({"rash", "PRURITUS"})}
    by_basket = compute_signals(
        EVENTS_CUT2, SUBJECTS_CUT2, "basket", "COHORT", previous_cutoff=T0, cutoff=T1, baskets=baskets
    )
    basket_all = by_basket.loc[(by_basket["test"] == "rising") & (by_basket["group"] == "ALL")]
    assert basket_all[["soc", "pt", "x1", "x0"]].values.tolist() == [["", "skin", 1, 2]]
    assert basket_all["p_one_sided"].iloc[0] == pytest.approx(0.628469396074, rel=1e-10)
    # one basket in its family: q = p
    assert basket_all["q_pt"].iloc[0] == pytest.approx(0.628469396074, rel=1e-10)


def test_compute_signals_filters_choose_the_first_qualifying_event():
    # Grade >= 3: A1's first qualifying Rash is now its recurrence on day 62 (after t0), B1's on day 11:
    #   A1 31+31, A2 60+0, A3 0+82, B1 10+1, B2 60+60 -> x0 = 0, 161 days; x1 = 2, 174 days.
    # R: poisson.test(c(2, 0), c(174, 161) / 365.25) -> Inf (0.173777395605 - Inf); binom p 0.269779460904.
    result = compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", previous_cutoff=T0, cutoff=T1, min_grade=3)
    rash = result.loc[(result["test"] == "rising") & (result["group"] == "ALL") & (result["pt"] == "Rash")].iloc[0]
    assert (rash["x1"], rash["x0"]) == (2, 0)
    assert (rash["py1"] * YEAR, rash["py0"] * YEAR) == (pytest.approx(174), pytest.approx(161))
    assert rash["rr_ci_low"] == pytest.approx(0.173777395605, rel=1e-10)
    assert np.isinf(rash["rate_ratio"]) and np.isinf(rash["rr_ci_high"])
    assert rash["p_one_sided"] == pytest.approx(0.269779460904, rel=1e-10)


# --- the flag rule ------------------------------------------------------------------------------------------------
# Cohorts A (A1-A3) and B (B1-B3) at risk 300 days each, C (C1) 10 days; all first dosed 2024-01-01.
# Rash on day 2 in A1, A2, A3; ALT increased on day 30 in A1, A2; Colitis on day 1 in C1.

FLAG_CUTOFF = dt.date(2024, 12, 31)
FLAG_SUBJECTS = _subjects(
    [(f"{cohort}{i}", cohort, True, "2024-01-01", "2024-10-26", 300) for cohort in "AB" for i in (1, 2, 3)]
    + [("C1", "C", True, "2024-01-01", "2024-01-10", 10)]
)
FLAG_EVENTS = _events(
    [(i, f"A{i}", "Skin", "Rash", "2024-01-02", 2, True, False, True, 1, False, False) for i in (1, 2, 3)]
    + [(3 + i, f"A{i}", "Hepatobiliary", "ALT increased", "2024-01-30", 30, True, False, True, 2, False, False)
       for i in (1, 2)]
    + [(6, "C1", "Gastrointestinal", "Colitis", "2024-01-01", 1, True, False, True, 2, False, False)]
)  # fmt: skip


def test_compute_signals_flags_need_both_q_and_two_subjects():
    result = compute_signals(FLAG_EVENTS, FLAG_SUBJECTS, "pt", "COHORT", previous_cutoff=None, cutoff=FLAG_CUTOFF)
    indexed = result.set_index(["group", "pt"])
    # Cohort A's family has three SOCs: Skin, Hepatobiliary and Gastrointestinal (Colitis in A: x1 = 0, p = 1).
    # Rash in A: x1 = 3 over 6 days against 0 over 900 + 10. R: binom.test(3, 3, 6/916, "greater")$p =
    # 2.81039478011e-07, poisson.test lower 62.6734221797; q_pt = p (alone in Skin);
    # p.adjust(c(p_rash, p_alt, 1), "BH") = 8.43118434033e-07, 0.120528241056, 1.
    rash = indexed.loc[("A", "Rash")]
    assert rash["p_one_sided"] == pytest.approx(2.81039478011e-07, rel=1e-10)
    assert rash["rr_ci_low"] == pytest.approx(62.6734221797, rel=1e-10)
    assert rash["q_pt"] == pytest.approx(2.81039478011e-07, rel=1e-10)
    assert rash["q_soc"] == pytest.approx(8.43118434033e-07, rel=1e-10)
    assert rash["flagged"]
    # ALT increased in A: x1 = 2 over 30 + 30 + 300 days against 0 over 910. R: p = 0.0803521607043 (= q_pt,
    # alone in its SOC, <= 0.10 and x1 = 2: it would pass alone), but q_soc = 0.120528241056 > 0.10: not flagged.
    alt = indexed.loc[("A", "ALT increased")]
    assert alt["p_one_sided"] == pytest.approx(0.0803521607043, rel=1e-10)
    assert alt["rr_ci_low"] == pytest.approx(0.474739696688, rel=1e-10)
    assert alt["q_pt"] == pytest.approx(0.0803521607043, rel=1e-10)
    assert alt["q_soc"] == pytest.approx(0.120528241056, rel=1e-10)
    assert not alt["flagged"]
    # Colitis in C: x1 = 1 over 1 day against 0 over 1800. R: p = 0.000555247084953, poisson.test lower
    # 46.1538461538; q_soc = p.adjust(c(1, 1, p), "BH")[3] = 0.00166574125486: both q pass, but x1 < 2.
    colitis = indexed.loc[("C", "Colitis")]
    assert colitis["p_one_sided"] == pytest.approx(0.000555247084953, rel=1e-10)
    assert colitis["rr_ci_low"] == pytest.approx(46.1538461538, rel=1e-10)
    assert colitis["q_soc"] == pytest.approx(0.00166574125486, rel=1e-10)
    assert not colitis["flagged"]
    assert result["flagged"].sum() == 1


# --- edges and arguments ------------------------------------------------------------------------------------------


def test_compute_signals_no_qualifying_event_gives_empty_table():
    result = compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", previous_cutoff=T0, cutoff=T1, min_grade=5)
    assert result.empty
    assert list(result.columns) == SIGNAL_COLUMNS


def test_compute_signals_one_group_has_no_cohort_rows():
    subjects = SUBJECTS_CUT2.assign(COHORT="A")
    result = compute_signals(EVENTS_CUT2, subjects, "pt", "COHORT", previous_cutoff=T0, cutoff=T1)
    assert set(result["test"]) == {"rising"}
    assert set(result["group"]) == {"ALL", "A"}


def test_compute_signals_rejects_bad_arguments():
    with pytest.raises(ValueError, match="`previous_cutoff` .* must be before `cutoff`"):
        compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", previous_cutoff=T1, cutoff=T1)
    with pytest.raises(TypeError, match="`previous_cutoff` must be a datetime.date"):
        compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", previous_cutoff="2024-03-31", cutoff=T1)
    with pytest.raises(ValueError, match="risk window ending after `cutoff`"):
        compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", previous_cutoff=None, cutoff=T0)
    with pytest.raises(ValueError, match="`by` must be one of"):
        compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "term", "COHORT", previous_cutoff=T0, cutoff=T1)
    with pytest.raises(ValueError, match="needs `baskets`"):
        compute_signals(EVENTS_CUT2, SUBJECTS_CUT2, "basket", "COHORT", previous_cutoff=T0, cutoff=T1)
    with pytest.raises(ValueError, match="has no column TRTSDT"):
        compute_signals(
            EVENTS_CUT2, SUBJECTS_CUT2.drop(columns="TRTSDT"), "pt", "COHORT", previous_cutoff=T0, cutoff=T1
        )


# --- compute_signal_subjects: who makes x1 and x0 of a row (the hand-worked cut 2 above) -------------------------
def test_compute_signal_subjects_rising_splits_at_the_previous_cutoff():
    # Rash, ALL: A1's first Rash on 2024-03-31 = t0 (x0, day 31); A3 day 1 (2024-04-10) and B1 day 11 (x1).
    result = compute_signal_subjects(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", "rising", "ALL", "Skin", "Rash", T0)
    assert result[["USUBJID", "GROUP", "FIRST_ONSET_DAY", "PART"]].values.tolist() == [
        ["A3", "A", 1, 1],
        ["B1", "B", 11, 1],
        ["A1", "A", 31, 0],
    ]
    assert list(result["FIRST_ONSET_DATE"].dt.strftime("%Y-%m-%d")) == ["2024-04-10", "2024-04-01", "2024-03-31"]
    # The same row in group A only: x1 = A3, x0 = A1 (as in EXPECTED_CUT2: x1 = 1, x0 = 1).
    in_a = compute_signal_subjects(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", "rising", "A", "Skin", "Rash", T0)
    assert in_a[["USUBJID", "PART"]].values.tolist() == [["A3", 1], ["A1", 0]]


def test_compute_signal_subjects_cohort_and_soc_and_unknown_term():
    # Cohort test, Hypothyroidism in B: x1 = B2 (day 75); x0 = A2 (day 41). A1's pre-treatment record is not counted.
    result = compute_signal_subjects(
        EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", "cohort", "B", "Endocrine", "Hypothyroidism", None
    )
    assert result[["USUBJID", "FIRST_ONSET_DAY", "PART"]].values.tolist() == [["B2", 75, 1], ["A2", 41, 0]]
    # By SOC, Skin in cohort A: A3 (day 1), A1 (day 31) in x1; B1 (Pruritus day 5) in x0.
    skin = compute_signal_subjects(EVENTS_CUT2, SUBJECTS_CUT2, "soc", "COHORT", "cohort", "A", "Skin", "", None)
    assert skin[["USUBJID", "FIRST_ONSET_DAY", "PART"]].values.tolist() == [["A3", 1, 1], ["A1", 31, 1], ["B1", 5, 0]]
    none = compute_signal_subjects(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", "cohort", "A", "Skin", "Nope", None)
    assert none.empty and list(none.columns) == ["USUBJID", "GROUP", "FIRST_ONSET_DAY", "FIRST_ONSET_DATE", "PART"]
    with pytest.raises(ValueError, match="needs `previous_cutoff`"):
        compute_signal_subjects(EVENTS_CUT2, SUBJECTS_CUT2, "pt", "COHORT", "rising", "A", "Skin", "Rash", None)
