"""Time to onset (DOMAIN.md §4): median and IQR, and Aalen–Johansen cumulative incidence with death competing."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from safety_dash.metrics.onset import compute_cumulative_incidence, compute_onset_summary, derive_first_onset


def _subjects(rows: list[tuple]) -> pd.DataFrame:
    """Safety subjects from (USUBJID, COHORT, DAYS_AT_RISK, died in window); first dose 2021-01-01 for all."""
    frame = pd.DataFrame.from_records(rows, columns=["USUBJID", "COHORT", "DAYS_AT_RISK", "DIED"])
    first_dose = pd.Timestamp("2021-01-01")
    frame["SAFFL"] = True
    frame["WINDOW_END"] = first_dose + pd.to_timedelta(frame["DAYS_AT_RISK"] - 1, unit="D")
    frame["DTHDT"] = frame["WINDOW_END"].where(frame["DIED"])
    return frame.drop(columns="DIED").astype({"DAYS_AT_RISK": "Int64"})


def _events(rows: list[tuple]) -> pd.DataFrame:
    """Counted events, one record each, from (USUBJID, ASTDY[, GRADE])."""
    frame = pd.DataFrame.from_records(rows, columns=["USUBJID", "ASTDY", "GRADE"][: len(rows[0])])
    if "GRADE" not in frame.columns:
        frame["GRADE"] = 2
    return frame.assign(EVENT_ID=range(1, len(frame) + 1), COUNTED=True, SERIOUS=False, RELATED=False).astype(
        {"ASTDY": "Int64", "GRADE": "Int64"}
    )


# --- first onset and the competing-risk status -----------------------------------------------------------------


def test_derive_first_onset_status_and_time():
    subjects = _subjects(
        [
            ("S1", "A", 200, False),  # event on day 15 (and day 60): status 1 at day 15
            ("S2", "A", 100, False),  # no event, alive: censored at its days at risk
            ("S3", "B", 50, True),  # no event, died in the window: competing at day 50
            ("S4", "B", 365, True),  # event day 100, then died: the event counts
        ]
    )
    events = _events([("S1", 60), ("S1", 15), ("S4", 100)])
    result = derive_first_onset(events, subjects, "COHORT")
    assert result[["USUBJID", "GROUP", "FIRST_ONSET_DAY", "STATUS", "TIME"]].values.tolist() == [
        ["S1", "A", 15.0, 1, 15.0],
        ["S2", "A", pytest.approx(np.nan, nan_ok=True), 0, 100.0],
        ["S3", "B", pytest.approx(np.nan, nan_ok=True), 2, 50.0],
        ["S4", "B", 100.0, 1, 100.0],
    ]


def test_derive_first_onset_death_after_the_window_is_not_competing():
    subjects = _subjects([("S1", "A", 120, False)])
    subjects["DTHDT"] = subjects["WINDOW_END"] + pd.Timedelta(days=10)
    result = derive_first_onset(_events([("S9", 5)]).iloc[:0], subjects, "COHORT")
    assert result["STATUS"].tolist() == [0]


def test_derive_first_onset_episode_keeps_its_earliest_onset():
    # one Rash episode (EVENT_ID 7): grade 1 from day 10, grade 3 from day 30. Graded by its worst grade, it is a
    # grade >= 3 event with onset day 10; as two separate events, the first grade >= 3 onset is day 30.
    subjects = _subjects([("A1", "A", 300, False)])
    episode = _events([("A1", 10, 1), ("A1", 30, 3)]).assign(EVENT_ID=[7, 7])
    assert derive_first_onset(episode, subjects, "COHORT", min_grade=3)["FIRST_ONSET_DAY"].tolist() == [10.0]
    separate = episode.assign(EVENT_ID=[7, 8])
    assert derive_first_onset(separate, subjects, "COHORT", min_grade=3)["FIRST_ONSET_DAY"].tolist() == [30.0]


# --- compute_onset_summary -------------------------------------------------------------------------------------


def test_compute_onset_summary_median_and_quartiles():
    subjects = _subjects([(f"A{i}", "A", 300, False) for i in range(1, 6)] + [("B1", "B", 300, False)])
    # first onsets in A: 10, 20, 30, 40, 100 (A1 also on day 200: not its first); B: none
    events = _events([("A1", 10), ("A1", 200), ("A2", 20), ("A3", 30), ("A4", 40), ("A5", 100)])
    expected = pd.DataFrame.from_records(
        [
            # group N  x  median Q1    Q3     (linear interpolation, R type 7)
            ("ALL", 6, 5, 30.0, 20.0, 40.0),
            ("A", 5, 5, 30.0, 20.0, 40.0),
            ("B", 1, 0, np.nan, np.nan, np.nan),
        ],
        columns=["group", "n_subjects", "n_with_event", "median_onset_day", "q1_onset_day", "q3_onset_day"],
    )
    pd.testing.assert_frame_equal(compute_onset_summary(events, subjects, "COHORT"), expected)


def test_compute_onset_summary_min_grade():
    subjects = _subjects([("A1", "A", 300, False), ("A2", "A", 300, False)])
    events = _events([("A1", 10, 1), ("A1", 50, 3), ("A2", 20, 2)])
    result = compute_onset_summary(events, subjects, "COHORT", min_grade=3)
    assert result.loc[0, ["n_with_event", "median_onset_day"]].tolist() == [1, 50.0]


# --- compute_cumulative_incidence ------------------------------------------------------------------------------


def test_compute_cumulative_incidence_hand_table_with_ties():
    # day 10: an event, a death and a censoring on the same day; day 20: an event; day 30: censored.
    # Aalen–Johansen: CIF(10) = 1/5 = 0.2 and S(10) = 1 - 2/5; CIF(20) = 0.2 + 0.6 * 1/2 = 0.5.
    subjects = _subjects(
        [
            ("S1", "A", 10, False),
            ("S2", "A", 10, True),
            ("S3", "A", 10, False),
            ("S4", "A", 40, False),
            ("S5", "A", 30, False),
        ]
    )
    events = _events([("S1", 10), ("S4", 20)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no random jitter warning from lifelines
        result = compute_cumulative_incidence(events, subjects, "COHORT")
    every = result.loc[result["group"] == "ALL", ["day", "cumulative_incidence"]]
    assert every.values.tolist() == [
        [0, 0.0],
        [10, pytest.approx(0.2)],
        [20, pytest.approx(0.5)],
        [30, pytest.approx(0.5)],
    ]
    assert result.loc[result["group"] == "A", "cumulative_incidence"].tolist() == pytest.approx([0.0, 0.2, 0.5, 0.5])
    # deterministic: the same input gives the same output
    pd.testing.assert_frame_equal(result, compute_cumulative_incidence(events, subjects, "COHORT"))


def test_compute_cumulative_incidence_interval_by_hand():
    # The DOMAIN.md four subjects (event day 15; censored day 100; death day 50; event day 100).
    # At day 15: F = 1/4, Var = S(t-)^2 d (n - d) / n^3 = 3/64 (Greenwood-type, lifelines / Collett);
    # log(-log) interval: exp(-exp(log(-log F) +/- z sqrt(Var) / (F |log F|))).
    subjects = _subjects(
        [("S1", "X", 200, False), ("S2", "X", 100, False), ("S3", "X", 50, True), ("S4", "X", 365, False)]
    )
    events = _events([("S1", 15), ("S1", 60), ("S4", 100)])
    result = compute_cumulative_incidence(events, subjects, "COHORT")
    day15 = result.loc[(result["group"] == "ALL") & (result["day"] == 15)].iloc[0]
    f, se = 0.25, math.sqrt(3 / 64)
    z = stats.norm.ppf(0.975)
    centre, half = math.log(-math.log(f)), z * se / (f * abs(math.log(f)))
    assert day15["cumulative_incidence"] == pytest.approx(0.25, rel=1e-12)
    assert day15["ci_low"] == pytest.approx(math.exp(-math.exp(centre + half)), rel=1e-9)
    assert day15["ci_high"] == pytest.approx(math.exp(-math.exp(centre - half)), rel=1e-9)
    assert (day15["ci_low"], day15["ci_high"]) == (pytest.approx(0.008948, abs=1e-6), pytest.approx(0.665325, abs=1e-6))
    # the death on day 50 is competing: the curve stays at 1/4 and reaches 1/2 on day 100 (not 1 - KM = 0.625)
    assert result.loc[result["group"] == "ALL", "cumulative_incidence"].tolist() == pytest.approx([0, 0.25, 0.25, 0.5])


def test_compute_cumulative_incidence_without_deaths_is_one_minus_kaplan_meier():
    rng = np.random.default_rng(7)
    days = rng.integers(20, 200, 40)
    onset = rng.integers(1, 250, 40)
    subjects = _subjects([(f"S{i}", "A", int(d), False) for i, d in enumerate(days)])
    events = _events([(f"S{i}", int(o)) for i, (o, d) in enumerate(zip(onset, days, strict=True)) if o <= d])
    result = compute_cumulative_incidence(events, subjects, "COHORT")
    curve = result.loc[result["group"] == "ALL"].set_index("day")["cumulative_incidence"]
    # product-limit by hand over whole days
    first = derive_first_onset(events, subjects, "COHORT")
    survival, expected = 1.0, {}
    for day in sorted(first["TIME"].unique()):
        at_risk = (first["TIME"] >= day).sum()
        died = ((first["TIME"] == day) & (first["STATUS"] == 1)).sum()
        survival *= 1 - died / at_risk
        expected[int(day)] = 1 - survival
    assert curve.loc[list(expected)].tolist() == pytest.approx(list(expected.values()), rel=1e-12)


def test_compute_cumulative_incidence_columns_and_groups():
    subjects = _subjects([("A1", "A", 30, False), ("B1", "", 40, True)])
    result = compute_cumulative_incidence(_events([("A1", 5)]), subjects, "COHORT")
    assert list(result.columns) == ["group", "day", "cumulative_incidence", "ci_low", "ci_high"]
    assert result["group"].unique().tolist() == ["ALL", "(missing)", "A"]
    assert result.loc[result["group"] == "(missing)", "cumulative_incidence"].tolist() == [0.0, 0.0]
