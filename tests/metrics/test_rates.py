"""Rate tables (DOMAIN.md §4): hand-worked tables, the DOMAIN four-subject example, and rate differences."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from safety_dash.metrics.events import derive_events
from safety_dash.metrics.exposure import derive_subject_exposure
from safety_dash.metrics.intervals import compute_rate_difference_mn, compute_rate_difference_wald
from safety_dash.metrics.rates import RATE_TABLE_COLUMNS, compute_rate_difference, compute_rate_table

YEAR = 365.25
# Exact (Garwood) 95% Poisson limits for 0..3 events per unit time
POISSON_LOW = {0: 0.0, 1: 0.02531781, 2: 0.24220928, 3: 0.61867212}
POISSON_HIGH = {0: 3.68887945, 1: 5.57164339, 2: 7.22468767, 3: 8.76727258}
# Clopper–Pearson 95% limits in % (R binom.test; x = 0 and x = n in closed form)
CP = {
    (0, 2): (0.0, 100 * (1 - 0.025 ** (1 / 2))),
    (0, 3): (0.0, 100 * (1 - 0.025 ** (1 / 3))),
    (1, 2): (1.257912, 98.742088),
    (1, 5): (0.5050763, 71.641794),
    (2, 3): (9.429932, 99.159624),
    (2, 5): (5.274495, 85.336720),
    (3, 5): (14.66328, 94.72550),
}

# --- a hand-worked study: cohort A (3 subjects), B (2 subjects), one subject outside the safety population -------

SUBJECTS = pd.DataFrame.from_records(
    [
        # USUBJID COHORT SAFFL DAYS_AT_RISK
        ("A1", "A", True, 100),
        ("A2", "A", True, 200),
        ("A3", "A", True, 300),
        ("B1", "B", True, 150),
        ("B2", "B", True, 250),
        ("N1", "A", False, pd.NA),
    ],
    columns=["USUBJID", "COHORT", "SAFFL", "DAYS_AT_RISK"],
).astype({"DAYS_AT_RISK": "Int64"})

EVENTS = pd.DataFrame.from_records(
    [
        # AE_ID USUBJID SOC        PT              ASTDY COUNTED GRADE SERIOUS RELATED
        (1, "A1", "Skin", "Rash", 10, True, 1, False, False),
        (2, "A1", "Skin", "Rash", 40, True, 3, False, True),  # a recurrence: an event, not a subject
        (3, "A2", "Skin", "Rash", 50, True, pd.NA, False, False),
        (4, "B1", "Skin", "Pruritus", 30, True, 2, False, True),
        (5, "B2", "Endocrine", "Hypothyroidism", 100, True, 4, True, False),
        # not counted: pre-treatment, after the cutoff (COUNTED False); a subject outside the safety population
        (6, "A3", "Endocrine", "Hypothyroidism", -5, False, 2, False, False),
        (7, "B2", "Skin", "Rash", 200, False, 2, False, False),
        (8, "N1", "Skin", "Rash", 5, True, 2, False, False),
    ],
    columns=["AE_ID", "USUBJID", "SOC", "PT", "ASTDY", "COUNTED", "GRADE", "SERIOUS", "RELATED"],
).astype({"ASTDY": "Int64", "GRADE": "Int64"})
EVENTS.insert(1, "EVENT_ID", EVENTS["AE_ID"])  # each record one event


def _row(group, soc, pt, n, x, n_events, days_at_risk, group_days, median):
    """Expected row from hand counts: time at risk in days, group exposure in days."""
    py = days_at_risk / YEAR
    return {
        "group": group,
        "soc": soc,
        "pt": pt,
        "n_subjects": n,
        "n_with_event": x,
        "incidence_pct": 100 * x / n,
        "incidence_ci_low": CP.get((x, n), (None, None))[0],
        "incidence_ci_high": CP.get((x, n), (None, None))[1],
        "n_events": n_events,
        "patient_years_at_risk": py,
        "eair_per_100py": 100 * x / py,
        "eair_ci_low": 100 * POISSON_LOW[x] / py,
        "eair_ci_high": 100 * POISSON_HIGH[x] / py,
        "exposure_years": group_days / YEAR,
        "eaer_per_100py": 100 * n_events / (group_days / YEAR),
        "median_onset_day": median,
    }


def _assert_table(result: pd.DataFrame, expected_rows: list[dict]) -> None:
    expected = pd.DataFrame(expected_rows, columns=RATE_TABLE_COLUMNS).astype(
        {"n_subjects": np.int64, "n_with_event": np.int64, "n_events": np.int64, "median_onset_day": float}
    )
    assert list(result.columns) == RATE_TABLE_COLUMNS
    pd.testing.assert_frame_equal(result, expected, rtol=1e-6)


def test_compute_rate_table_by_pt_hand_worked():
    # Time at risk (days) = first onset for subjects with the term, else days at risk:
    #   Rash in A: A1 10 + A2 50 + A3 300 = 360; Pruritus in B: B1 30 + B2 250 = 280; Hypothyroidism in B: 150 + 100.
    # B2's Rash is after the cutoff, so B still gets a Rash row, with zeros.
    expected = [
        # group soc          pt                N  x  events time  group days median
        _row("ALL", "Endocrine", "Hypothyroidism", 5, 1, 1, 850, 1000, 100.0),
        _row("ALL", "Skin", "Pruritus", 5, 1, 1, 880, 1000, 30.0),
        _row("ALL", "Skin", "Rash", 5, 2, 3, 760, 1000, 30.0),
        _row("A", "Endocrine", "Hypothyroidism", 3, 0, 0, 600, 600, np.nan),
        _row("A", "Skin", "Pruritus", 3, 0, 0, 600, 600, np.nan),
        _row("A", "Skin", "Rash", 3, 2, 3, 360, 600, 30.0),
        _row("B", "Endocrine", "Hypothyroidism", 2, 1, 1, 250, 400, 100.0),
        _row("B", "Skin", "Pruritus", 2, 1, 1, 280, 400, 30.0),
        _row("B", "Skin", "Rash", 2, 0, 0, 400, 400, np.nan),
    ]
    _assert_table(compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="COHORT"), expected)


def test_compute_rate_table_by_soc():
    # Skin: A1 first onset 10, A2 50, B1 30 (recurrences and both PTs count as Skin events)
    expected = [
        _row("ALL", "Endocrine", "", 5, 1, 1, 850, 1000, 100.0),
        _row("ALL", "Skin", "", 5, 3, 4, 1000 - 450 + 90, 1000, 30.0),
        _row("A", "Endocrine", "", 3, 0, 0, 600, 600, np.nan),
        _row("A", "Skin", "", 3, 2, 3, 360, 600, 30.0),
        _row("B", "Endocrine", "", 2, 1, 1, 250, 400, 100.0),
        _row("B", "Skin", "", 2, 1, 1, 280, 400, 30.0),
    ]
    _assert_table(compute_rate_table(EVENTS, SUBJECTS, by="soc", group_col="COHORT"), expected)


def test_compute_rate_table_by_basket():
    baskets = {"skin": frozenset({"rash", "PRURITUS"}), "endocrine": frozenset({"Hypothyroidism"})}
    result = compute_rate_table(EVENTS, SUBJECTS, by="basket", group_col="COHORT", baskets=baskets)
    assert result[["group", "soc", "pt", "n_with_event", "n_events"]].values.tolist() == [
        ["ALL", "", "endocrine", 1, 1],
        ["ALL", "", "skin", 3, 4],
        ["A", "", "endocrine", 0, 0],
        ["A", "", "skin", 2, 3],
        ["B", "", "endocrine", 1, 1],
        ["B", "", "skin", 1, 1],
    ]
    assert result.loc[1, "patient_years_at_risk"] == pytest.approx(640 / YEAR, rel=1e-12)


# --- qualifying-event filters ----------------------------------------------------------------------------------


def test_compute_rate_table_min_grade_excludes_unknown_grade():
    # grade >= 3: A1's second Rash (day 40, grade 3) and B2's Hypothyroidism (grade 4); A2's unknown grade is out
    result = compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="COHORT", min_grade=3)
    assert result[["group", "pt", "n_with_event", "n_events", "median_onset_day"]].values.tolist() == [
        ["ALL", "Hypothyroidism", 1, 1, 100.0],
        ["ALL", "Rash", 1, 1, 40.0],
        ["A", "Hypothyroidism", 0, 0, pytest.approx(np.nan, nan_ok=True)],
        ["A", "Rash", 1, 1, 40.0],
        ["B", "Hypothyroidism", 1, 1, 100.0],
        ["B", "Rash", 0, 0, pytest.approx(np.nan, nan_ok=True)],
    ]
    # Rash in A: A1 at risk until day 40, A2 and A3 for all their days
    assert result.loc[3, "patient_years_at_risk"] == pytest.approx((40 + 200 + 300) / YEAR, rel=1e-12)


def test_compute_rate_table_serious_and_related():
    serious = compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="COHORT", serious=True)
    assert serious[["group", "pt", "n_with_event"]].values.tolist() == [
        ["ALL", "Hypothyroidism", 1],
        ["A", "Hypothyroidism", 0],
        ["B", "Hypothyroidism", 1],
    ]
    related = compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="COHORT", related=True)
    assert related[["group", "pt", "n_with_event", "n_events"]].values.tolist() == [
        ["ALL", "Pruritus", 1, 1],
        ["ALL", "Rash", 1, 1],
        ["A", "Pruritus", 0, 0],
        ["A", "Rash", 1, 1],
        ["B", "Pruritus", 1, 1],
        ["B", "Rash", 0, 0],
    ]


def test_compute_rate_table_no_qualifying_event_gives_empty_table():
    result = compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="COHORT", min_grade=5)
    assert result.empty
    assert list(result.columns) == RATE_TABLE_COLUMNS


# --- episodes: counted once, with the earliest onset and the worst grade -----------------------------------------


def test_compute_rate_table_counts_an_episode_once():
    # A1's two Rash records (days 10 and 40, grades 1 and 3) are one episode: EVENT_ID 1
    episodes = EVENTS.assign(EVENT_ID=[1, 1, 3, 4, 5, 6, 7, 8])
    result = compute_rate_table(episodes, SUBJECTS, by="pt", group_col="COHORT")
    rash_a = result.loc[(result["group"] == "A") & (result["pt"] == "Rash")].iloc[0]
    # Rash in A: 2 subjects, 2 events (was 3 as records); EAER = 2 events / 600 days; time at risk unchanged
    assert (rash_a["n_with_event"], rash_a["n_events"]) == (2, 2)
    assert rash_a["eaer_per_100py"] == pytest.approx(100 * 2 / (600 / YEAR), rel=1e-12)
    assert rash_a["patient_years_at_risk"] == pytest.approx(360 / YEAR, rel=1e-12)
    # by SOC, Skin in ALL: A1's episode, A2's Rash, B1's Pruritus = 3 events (4 records)
    by_soc = compute_rate_table(episodes, SUBJECTS, by="soc", group_col="COHORT")
    assert by_soc.loc[(by_soc["group"] == "ALL") & (by_soc["soc"] == "Skin"), "n_events"].tolist() == [3]
    # a basket counts the episode once too
    baskets = {"skin": frozenset({"Rash", "Pruritus"})}
    by_basket = compute_rate_table(episodes, SUBJECTS, by="basket", group_col="COHORT", baskets=baskets)
    assert by_basket.loc[by_basket["group"] == "ALL", "n_events"].tolist() == [3]


def test_compute_rate_table_episode_qualifies_by_its_worst_grade():
    # grade >= 3: the episode (grade 1 on day 10, grade 3 on day 40) is one grade >= 3 event with onset day 10
    episodes = EVENTS.assign(EVENT_ID=[1, 1, 3, 4, 5, 6, 7, 8])
    result = compute_rate_table(episodes, SUBJECTS, by="pt", group_col="COHORT", min_grade=3)
    rash_a = result.loc[(result["group"] == "A") & (result["pt"] == "Rash")].iloc[0]
    assert (rash_a["n_with_event"], rash_a["n_events"], rash_a["median_onset_day"]) == (1, 1, 10.0)
    assert rash_a["patient_years_at_risk"] == pytest.approx((10 + 200 + 300) / YEAR, rel=1e-12)


def test_compute_rate_table_one_term_whatever_its_spelling():
    # issue 8: Rash, RASH and ' rash ' made three rows of 33 %; one term, one row of 100 %, shown as 'RASH' (one
    # record each: a tie, and 'RASH' is the smallest in sort order)
    dm = pd.DataFrame(
        {"USUBJID": ["S1", "S2", "S3"], "RFXSTDTC": "", "RFXENDTC": "", "DTHDTC": "", "DTHFL": "", "COHORT": "X"}
    )
    ex = pd.DataFrame(
        {"USUBJID": ["S1", "S2", "S3"], "EXTRT": "QL1706", "EXDOSE": 5.0, "EXSTDTC": "2020-01-01", "EXENDTC": ""}
    )
    ae = pd.DataFrame(
        {"AE_ID": [1, 2, 3], "USUBJID": ["S1", "S2", "S3"], "AEDECOD": ["Rash", "RASH", " rash "]}
    ).assign(
        AETERM="rash", AEBODSYS="Skin", AETOXGR="1", AESEV="", AESER="N", AESDTH="N", AESLIFE="", AESHOSP="",
        AESDISAB="", AESCONG="", AESMIE="", AEREL="", AEOUT="", AESTDTC="2020-01-10", AEENDTC="",
    )  # fmt: skip
    cutoff = dt.date(2021, 6, 30)
    subjects = derive_subject_exposure(dm, ex, cutoff)
    table = compute_rate_table(derive_events(ae, subjects, cutoff), subjects, by="pt", group_col="COHORT")
    assert table[["group", "pt", "n_with_event", "incidence_pct"]].values.tolist() == [
        ["ALL", "RASH", 3, 100.0],
        ["X", "RASH", 3, 100.0],
    ]


# --- groups ----------------------------------------------------------------------------------------------------


def test_compute_rate_table_missing_group_value():
    subjects = SUBJECTS.assign(COHORT=["A", "A", "", "B", None, "A"])
    result = compute_rate_table(EVENTS, subjects, by="pt", group_col="COHORT")
    assert result["group"].unique().tolist() == ["ALL", "(missing)", "A", "B"]
    missing = result.loc[result["group"] == "(missing)"]
    assert missing[["pt", "n_subjects", "n_with_event"]].values.tolist() == [
        ["Hypothyroidism", 2, 1],
        ["Pruritus", 2, 0],
        ["Rash", 2, 0],
    ]
    assert missing["exposure_years"].iloc[0] == pytest.approx(550 / YEAR, rel=1e-12)


def test_compute_rate_table_rejects_bad_arguments():
    with pytest.raises(ValueError, match="reserved for the whole safety population"):
        compute_rate_table(EVENTS, SUBJECTS.assign(COHORT="ALL"), by="pt", group_col="COHORT")
    with pytest.raises(ValueError, match="`group_col` 'ARM' is not a column"):
        compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="ARM")
    with pytest.raises(ValueError, match="`by` must be one of soc, pt, basket"):
        compute_rate_table(EVENTS, SUBJECTS, by="hlt", group_col="COHORT")
    with pytest.raises(ValueError, match="needs `baskets`"):
        compute_rate_table(EVENTS, SUBJECTS, by="basket", group_col="COHORT")


# --- the DOMAIN.md §4 hand example, from raw DM / EX / AE through the derivations ------------------------------


def test_compute_rate_table_domain_four_subject_example():
    # Days at risk 200, 100, 50 (died), 365; first onsets day 15 (again day 60), none, none, day 100.
    dm = pd.DataFrame.from_records(
        [
            # USUBJID RFXSTDTC RFXENDTC DTHDTC       DTHFL COHORT
            ("S1", "", "", "", "", "X"),
            ("S2", "", "", "", "", "X"),
            ("S3", "", "", "2020-02-19", "Y", "X"),
            ("S4", "", "", "", "", "X"),
        ],
        columns=["USUBJID", "RFXSTDTC", "RFXENDTC", "DTHDTC", "DTHFL", "COHORT"],
    )
    ex = pd.DataFrame.from_records(
        [
            # last dose + 90 = window end; first dose 2020-01-01 for all
            ("S1", "QL1706", 5.0, "2020-01-01", ""),
            ("S1", "QL1706", 5.0, "2020-04-19", ""),  # + 90 = 2020-07-18, day 200
            ("S2", "QL1706", 5.0, "2020-01-01", "2020-01-10"),  # + 90 = 2020-04-09, day 100
            ("S3", "QL1706", 5.0, "2020-01-01", "2020-02-01"),  # died 2020-02-19, day 50
            ("S4", "QL1706", 5.0, "2020-01-01", ""),
            ("S4", "QL1706", 5.0, "2020-10-01", ""),  # + 90 = 2020-12-30, day 365
        ],
        columns=["USUBJID", "EXTRT", "EXDOSE", "EXSTDTC", "EXENDTC"],
    )
    ae = pd.DataFrame.from_records(
        [
            (1, "S1", "2020-01-15"),  # day 15
            (2, "S1", "2020-02-29"),  # day 60
            (3, "S4", "2020-04-09"),  # day 100
        ],
        columns=["AE_ID", "USUBJID", "AESTDTC"],
    ).assign(
        AETERM="RASH", AEDECOD="Rash", AEBODSYS="Skin", AETOXGR="2", AESEV="", AESER="N", AESDTH="N", AESLIFE="",
        AESHOSP="", AESDISAB="", AESCONG="", AESMIE="", AEREL="", AEOUT="", AEENDTC="",
    )  # fmt: skip
    cutoff = dt.date(2021, 6, 30)
    subjects = derive_subject_exposure(dm, ex, cutoff)
    assert subjects["DAYS_AT_RISK"].tolist() == [200, 100, 50, 365]
    table = compute_rate_table(derive_events(ae, subjects, cutoff), subjects, by="pt", group_col="COHORT")
    every = table.loc[table["group"] == "ALL"].iloc[0]
    # EAIR = 2 / 265 days = 275.66 per 100 PY (exact 33.38 - 995.78); EAER = 3 / 715 days = 153.25 per 100 PY
    assert round(every["eair_per_100py"], 2) == 275.66
    assert round(every["eair_ci_low"], 2) == 33.38
    assert round(every["eair_ci_high"], 2) == 995.78
    assert round(every["eaer_per_100py"], 2) == 153.25
    assert every["patient_years_at_risk"] == pytest.approx(265 / YEAR, rel=1e-12)
    assert every["exposure_years"] == pytest.approx(715 / YEAR, rel=1e-12)
    assert (every["n_subjects"], every["n_with_event"], every["n_events"]) == (4, 2, 3)


# --- compute_rate_difference -----------------------------------------------------------------------------------


def test_compute_rate_difference_unstratified_against_reference():
    table = compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="COHORT")
    result = compute_rate_difference(table, reference_group="A")
    assert result[["group", "reference_group", "pt", "n_with_event", "ref_n_with_event"]].values.tolist() == [
        ["B", "A", "Hypothyroidism", 1, 0],
        ["B", "A", "Pruritus", 1, 0],
        ["B", "A", "Rash", 0, 2],
    ]
    rash = result.iloc[2]
    # Rash: B 0 events in 400 days against A 2 events in 360 days
    t1, t0 = 400 / YEAR, 360 / YEAR
    assert rash["eair_difference_per_100py"] == pytest.approx(-100 * 2 / t0, rel=1e-12)
    wald = compute_rate_difference_wald(0, t1, 2, t0)
    score = compute_rate_difference_mn(0, t1, 2, t0)
    assert rash["wald_ci_low"] == pytest.approx(100 * wald.ci_low, rel=1e-12)
    assert rash["wald_ci_high"] == pytest.approx(100 * wald.ci_high, rel=1e-12)
    assert rash["mn_ci_low"] == pytest.approx(100 * score.ci_low, rel=1e-12)
    assert rash["mn_ci_high"] == pytest.approx(100 * score.ci_high, rel=1e-12)
    assert rash["mn_z"] == pytest.approx(score.z_null, rel=1e-12)
    assert rash["mn_ci_low"] < rash["eair_difference_per_100py"] < rash["mn_ci_high"]


def test_compute_rate_difference_stratified_with_mantel_haenszel_weights():
    first = compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="COHORT").assign(REGION="EU")
    # a second stratum with Rash only: its Pruritus and Hypothyroidism rows are absent, so x = 0 there and the time
    # at risk is the group's exposure in that stratum
    second = compute_rate_table(EVENTS.iloc[[0, 2]], SUBJECTS, by="pt", group_col="COHORT").assign(REGION="US")
    result = compute_rate_difference(pd.concat([first, second]), reference_group="A", stratum_col="REGION")
    pruritus = result.loc[result["pt"] == "Pruritus"].iloc[0]
    # B against A, strata EU then US: y1 = (1, 0), t1 = (280, 400) days; y0 = (0, 0), t0 = (600, 600) days
    t1, t0 = np.array([280, 400]) / YEAR, np.array([600, 600]) / YEAR
    expected = compute_rate_difference_mn([1, 0], t1, [0, 0], t0)
    assert pruritus["mn_ci_low"] == pytest.approx(100 * expected.ci_low, rel=1e-12)
    assert pruritus["mn_ci_high"] == pytest.approx(100 * expected.ci_high, rel=1e-12)
    weights = t1 * t0 / (t1 + t0)
    assert pruritus["eair_difference_per_100py"] == pytest.approx(100 * weights[0] / t1[0] / weights.sum(), rel=1e-12)
    assert pruritus["patient_years_at_risk"] == pytest.approx(680 / YEAR, rel=1e-12)


def test_compute_rate_difference_rejects_unknown_or_all_reference():
    table = compute_rate_table(EVENTS, SUBJECTS, by="pt", group_col="COHORT")
    with pytest.raises(ValueError, match="ALL cannot be the reference"):
        compute_rate_difference(table, reference_group="ALL")
    with pytest.raises(ValueError, match="choose one of \\['A', 'B'\\]"):
        compute_rate_difference(table, reference_group="C")
