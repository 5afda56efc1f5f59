"""The pack's own derivations (DLTs, deaths after the last dose, records new or changed) and its number formats, on
small tables worked by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from safety_dash.report.layout import format_day, format_interval, format_n_pct, format_p
from safety_dash.report.tables import (
    attach_previous_values,
    compute_deaths,
    compute_dlt_table,
    list_changed_events,
    order_groups,
)

T = pd.Timestamp


def subjects_frame(rows: list[tuple]) -> pd.DataFrame:
    """(USUBJID, cohort, first dose, last dose, death or None, days at risk) per subject."""
    frame = pd.DataFrame(rows, columns=["USUBJID", "COHORT_GROUP", "TRTSDT", "TRTEDT", "DTHDT", "DAYS_AT_RISK"])
    for column in ("TRTSDT", "TRTEDT", "DTHDT"):
        frame[column] = pd.to_datetime(frame[column])
    frame["SAFFL"] = frame["TRTSDT"].notna()
    frame["DAYS_AT_RISK"] = frame["DAYS_AT_RISK"].astype("Int64")
    return frame


def events_frame(rows: list[tuple]) -> pd.DataFrame:
    """(USUBJID, AE_ID, PT, onset day, grade, DLT flag, counted) per record."""
    frame = pd.DataFrame(rows, columns=["USUBJID", "AE_ID", "PT", "ASTDY", "GRADE", "DLT", "COUNTED"])
    frame["EVENT_ID"] = frame["AE_ID"]
    frame["SOC"] = "SOC"
    frame["ASTDY"] = frame["ASTDY"].astype("Int64")
    frame["GRADE"] = frame["GRADE"].astype("Int64")
    frame["SERIOUS"] = frame["GRADE"].fillna(0) >= 3
    frame["RELATED"] = True
    return frame


# --- DLTs (DOMAIN.md §6): evaluable = followed for the DLT period or with a DLT inside it -----------------------
#  S1: DLT on day 10, 30 days at risk          -> evaluable, DLT
#  S2: no DLT, 15 days at risk (died on day 15) -> not evaluable (not followed for 21 days)
#  S3: a DLT flag on day 25, 60 days at risk    -> evaluable, no DLT in the period; one record after the period
#  S4: DLT on day 5, 8 days at risk (died)      -> evaluable through its DLT
#  S5: a DLT flag on a record not counted       -> ignored (a pre-treatment record, say)


def test_compute_dlt_table_counts_evaluable_subjects_and_dlts_in_the_period():
    subjects = subjects_frame(
        [
            ("S1", "10 mg/kg", "2021-01-01", "2021-01-01", None, 30),
            ("S2", "10 mg/kg", "2021-01-01", "2021-01-01", "2021-01-15", 15),
            ("S3", "10 mg/kg", "2021-01-01", "2021-01-01", None, 60),
            ("S4", "10 mg/kg", "2021-01-01", "2021-01-01", "2021-01-08", 8),
            ("S5", "3 mg/kg", "2021-01-01", "2021-01-01", None, 40),
        ]
    )
    events = events_frame(
        [
            ("S1", 1, "Rash", 10, 3, True, True),
            ("S1", 2, "Pruritus", 12, 1, False, True),
            ("S3", 3, "Colitis", 25, 3, True, True),
            ("S4", 4, "Myocarditis", 5, 4, True, True),
            ("S5", 5, "Hepatitis", -3, 3, True, False),
        ]
    )
    table, records = compute_dlt_table(events, subjects, dlt_days=21)
    table = table.set_index("group")
    assert list(table.index) == ["3 mg/kg", "10 mg/kg", "ALL"]  # natural order, the total last
    ten = table.loc["10 mg/kg"]
    assert (ten["n_dosed"], ten["n_evaluable"], ten["n_dlt"], ten["n_outside_period"]) == (4, 3, 2, 1)
    assert ten["dlt_pct"] == pytest.approx(200 / 3)
    assert (table.loc["3 mg/kg", "n_evaluable"], table.loc["3 mg/kg", "n_dlt"]) == (1, 0)
    assert (table.loc["ALL", "n_evaluable"], table.loc["ALL", "n_dlt"]) == (4, 2)
    assert list(records["USUBJID"]) == ["S1", "S3", "S4"]
    assert list(records["IN_PERIOD"]) == [True, False, True]


# --- deaths within 30 / 90 days of the last dose: death date - last dose date <= 30 (90) ------------------------


def test_compute_deaths_counts_the_day_boundaries():
    subjects = subjects_frame(
        [
            ("D30", "A", "2021-01-01", "2021-03-01", "2021-03-31", 120),  # 30 days: within 30 and 90
            ("D31", "A", "2021-01-01", "2021-03-01", "2021-04-01", 120),  # 31 days: within 90 only
            ("D90", "B", "2021-01-01", "2021-03-01", "2021-05-30", 150),  # 90 days: within 90
            ("D91", "B", "2021-01-01", "2021-03-01", "2021-05-31", 150),  # 91 days: neither
            ("ALIVE", "B", "2021-01-01", "2021-03-01", None, 150),
        ]
    )
    events = events_frame([("D31", 1, "Pneumonitis", 80, 5, False, True), ("D31", 2, "Cough", 70, 1, False, True)])
    summary, listing = compute_deaths(subjects, events)
    summary = summary.set_index("group")
    assert summary.loc["ALL", ["n_subjects", "n_deaths", "n_within_30", "n_within_90"]].tolist() == [5, 4, 1, 3]
    assert summary.loc["B", ["n_subjects", "n_deaths", "n_within_30", "n_within_90"]].tolist() == [3, 2, 0, 1]
    assert list(listing["USUBJID"]) == ["D30", "D31", "D90", "D91"]
    assert list(listing["DAYS_AFTER_LAST_DOSE"]) == [30, 31, 90, 91]
    assert list(listing["FATAL_PT"]) == ["", "Pneumonitis", "", ""]


# --- records new or changed since a cut --------------------------------------------------------------------------


def test_list_changed_events_tells_new_from_changed_and_finds_removed_records():
    subjects = subjects_frame([("S1", "A", "2021-01-01", "2021-02-01", None, 100)])
    events = events_frame(
        [
            ("S1", 11, "Rash", 5, 2, False, True),  # written in cut 1, unchanged since
            ("S1", 12, "Colitis", 20, 3, False, True),  # changed in cut 3 (grade 2 -> 3)
            ("S1", 13, "Nausea", 30, 1, False, True),  # new in cut 3
            ("S1", 14, "Cough", -5, 1, False, False),  # new in cut 3 but not counted (pre-treatment)
        ]
    )
    events["RECORD_KEY"] = ["S1|1", "S1|2", "S1|3", "S1|4"]
    events["VALID_FROM_RUN"] = [1, 3, 3, 3]
    for column, values in (
        ("AETOXGR", ["2", "3", "1", "1"]),
        ("AESEV", ""),
        ("AEOUT", ""),
        ("AEENDTC", ""),
        ("AEREL", ""),
        ("AESTDTC", ""),
    ):
        events[column] = values
    events["ASTDT"] = pd.to_datetime(["2021-01-05", "2021-01-20", "2021-01-30", "2020-12-27"])
    before = pd.DataFrame(
        {
            "RECORD_KEY": ["S1|1", "S1|2", "S1|9"],
            "USUBJID": "S1",
            "AESEQ": ["1", "2", "9"],
            "AEDECOD": ["Rash", "Colitis", "Fatigue"],
            "AETOXGR": ["2", "2", "1"],
            "AESEV": "",
            "AESER": "",
            "AEOUT": "",
            "AEENDTC": "",
            "AEREL": "",
        }
    )
    keys = pd.Index(before["RECORD_KEY"])
    listed, removed = list_changed_events(events, subjects, 2, keys)
    assert list(listed["AE_ID"]) == [12, 13]  # highest grade first
    assert list(listed["CHANGE"]) == ["changed", "new"]
    assert list(listed["SEVERE"]) == [True, False]
    assert removed == ["S1|9"]
    assert list(attach_previous_values(listed, before)["WAS_AETOXGR"]) == ["2", ""]
    only_severe, _ = list_changed_events(events, subjects, 2, keys, min_grade=3)
    assert list(only_severe["AE_ID"]) == [12]
    first_cut, _ = list_changed_events(events, subjects, None, None)  # no earlier cut: every counted record is new
    assert sorted(first_cut["AE_ID"]) == [11, 12, 13] and set(first_cut["CHANGE"]) == {"new"}


# --- formats ---------------------------------------------------------------------------------------------------


def test_formats_of_committee_tables():
    assert format_n_pct(0, 86) == "0"
    assert format_n_pct(65, 86) == "65 (75.6%)"
    assert format_n_pct(3, 0) == "\u2013"
    assert format_interval(0.0, 70.7598) == "[0.0, 70.8]"
    assert format_interval(1.6, np.inf, 2) == "[1.60, \u221e]"
    assert format_interval(np.nan, np.nan) == ""
    assert format_day(10.0) == "10" and format_day(10.5) == "10.5"
    assert (format_p(0.0004), format_p(0.0141)) == ("<0.001", "0.014")
    assert order_groups(["ALL", "Ph I 10 mg/kg", "Ph I 0.3 mg/kg", "Ph I 3 mg/kg"]) == [
        "Ph I 0.3 mg/kg",
        "Ph I 3 mg/kg",
        "Ph I 10 mg/kg",
        "ALL",
    ]
