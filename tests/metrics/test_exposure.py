"""Subject-level exposure (DOMAIN.md §2): literal DM/EX input beside the expected derived table."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from safety_dash.metrics.exposure import derive_subject_exposure, flag_dose_records

CUTOFF = dt.date(2021, 6, 30)
NAN = np.nan
DM_COLUMNS = ["USUBJID", "RFXSTDTC", "RFXENDTC", "DTHDTC", "DTHFL"]
EX_COLUMNS = ["USUBJID", "EXTRT", "EXDOSE", "EXSTDTC", "EXENDTC"]
DERIVED = ["USUBJID", "TRTSDT", "TRTEDT", "DTHDT", "SAFFL", "WINDOW_END", "DAYS_AT_RISK", "N_DOSES"]


def _dm(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame.from_records(rows, columns=DM_COLUMNS)


def _ex(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=EX_COLUMNS)
    return frame.astype({"EXDOSE": float})


def _expected(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=DERIVED)
    for column in ("TRTSDT", "TRTEDT", "DTHDT", "WINDOW_END"):
        frame[column] = pd.to_datetime(frame[column].replace("", None)).astype("datetime64[ns]")
    return frame.astype({"SAFFL": bool, "DAYS_AT_RISK": "Int64", "N_DOSES": int})


def _derived(dm: pd.DataFrame, ex: pd.DataFrame, **kwargs) -> pd.DataFrame:
    return derive_subject_exposure(dm, ex, kwargs.pop("cutoff", CUTOFF), **kwargs)[DERIVED]


EMPTY_EX = _ex([])


# --- flag_dose_records ------------------------------------------------------------------------------------------


def test_flag_dose_records_dose_placebo_and_zero():
    ex = _ex(
        [
            # USUBJID  EXTRT              EXDOSE  EXSTDTC       EXENDTC
            ("S1", "QL1706", 5.0, "2021-01-05", ""),  # a positive dose
            ("S1", "QL1706", 0.0, "2021-01-26", ""),  # EXDOSE 0 of the active drug: not a dose
            ("S1", "QL1706", NAN, "2021-02-16", ""),  # EXDOSE missing: not a dose
            ("S2", "PLACEBO", 0.0, "2021-01-05", ""),  # placebo with EXDOSE 0: a dose
            ("S3", "Placebo patch", NAN, "2021-01-05", ""),  # placebo in any case, dose missing: a dose
        ]
    )
    expected = [True, False, False, True, True]
    assert flag_dose_records(ex).tolist() == expected


# --- first and last dose from EX --------------------------------------------------------------------------------


def test_derive_subject_exposure_dose_dates_from_ex():
    dm = _dm([(s, "", "", "", "") for s in ("S1", "S2", "S3", "S4", "S5")])
    ex = _ex(
        [
            # first dose = earliest EXSTDTC; last dose = latest EXENDTC, else EXSTDTC, over dose records only
            ("S1", "QL1706", 5.0, "2021-01-05", "2021-01-05"),
            ("S1", "QL1706", 5.0, "2021-01-26", ""),
            ("S1", "QL1706", 0.0, "2021-02-16", "2021-02-16"),  # EXDOSE 0: ignored
            ("S1", "QL1706", NAN, "2021-03-09", ""),  # EXDOSE missing: ignored
            # a placebo record with EXDOSE 0 is a dose
            ("S2", "PLACEBO", 0.0, "2021-02-01", "2021-02-14"),
            # partial EXSTDTC: the earliest day of its month
            ("S3", "QL1706", 5.0, "2021-03", ""),
            # partial EXENDTC in the start month: earliest day of the month, but never before the record's start
            ("S4", "QL1706", 5.0, "2021-03-10", "2021-03"),
            # partial EXENDTC in a later month: its first day
            ("S5", "QL1706", 5.0, "2021-03-10", "2021-04"),
        ]
    )
    expected = _expected(
        [
            # USUBJID  TRTSDT        TRTEDT        DTHDT  SAFFL  WINDOW_END    DAYS  N_DOSES
            ("S1", "2021-01-05", "2021-01-26", "", True, "2021-04-26", 112, 2),
            ("S2", "2021-02-01", "2021-02-14", "", True, "2021-05-15", 104, 1),
            ("S3", "2021-03-01", "2021-03-01", "", True, "2021-05-30", 91, 1),
            ("S4", "2021-03-10", "2021-03-10", "", True, "2021-06-08", 91, 1),
            ("S5", "2021-03-10", "2021-04-01", "", True, "2021-06-30", 113, 1),
        ]
    )
    pd.testing.assert_frame_equal(_derived(dm, ex), expected)


# --- fallback to RFXSTDTC / RFXENDTC ----------------------------------------------------------------------------


def test_derive_subject_exposure_falls_back_to_rfx_dates():
    dm = _dm(
        [
            # USUBJID  RFXSTDTC      RFXENDTC      DTHDTC  DTHFL
            ("S6", "2021-02-01", "2021-03-01", "", ""),  # no EX at all: DM reference dates
            ("S7", "2021-02-01", "", "", ""),  # no RFXENDTC: the start is the last dose
            ("S8", "", "", "", ""),  # neither: never dosed, outside the safety population
            ("S9", "2021-02-01", "2021-02-01", "", ""),  # EX holds only a zero dose: DM dates
        ]
    )
    ex = _ex([("S9", "QL1706", 0.0, "2021-01-01", "")])
    expected = _expected(
        [
            ("S6", "2021-02-01", "2021-03-01", "", True, "2021-05-30", 119, 0),
            ("S7", "2021-02-01", "2021-02-01", "", True, "2021-05-02", 91, 0),
            ("S8", "", "", "", False, "", pd.NA, 0),
            ("S9", "2021-02-01", "2021-02-01", "", True, "2021-05-02", 91, 0),
        ]
    )
    pd.testing.assert_frame_equal(_derived(dm, ex), expected)


# --- the risk window: last dose + 90, death, cutoff -------------------------------------------------------------


def test_derive_subject_exposure_window_end_death_and_cutoff():
    dm = _dm(
        [
            ("W1", "", "", "", ""),  # last dose + 90 days ends the window
            ("W2", "", "", "", ""),  # last dose + 90 would pass the cutoff: the cutoff ends it
            ("W3", "", "", "2021-03-15", "Y"),  # death inside the window ends it
            ("W4", "", "", "2021-06-01", "Y"),  # death after the window: window ends at last dose + 90
            ("W5", "", "", "2021-02", "Y"),  # partial death in the last-dose month: not before the last dose
            ("W6", "", "", "2021-03", "Y"),  # partial death after the last-dose month: its first day
            ("W7", "", "", "2021", "Y"),  # year only, last dose inside it: the last dose date
            ("W8", "", "", "", "Y"),  # DTHFL = Y but no date: no death date
            ("W9", "", "", "2021-08-01", "Y"),  # death after the cutoff: the cutoff ends the window
        ]
    )
    ex = _ex(
        [
            ("W1", "QL1706", 5.0, "2021-01-10", ""),
            ("W2", "QL1706", 5.0, "2021-01-10", ""),
            ("W2", "QL1706", 5.0, "2021-05-01", ""),
            ("W3", "QL1706", 5.0, "2021-01-04", "2021-02-01"),
            ("W4", "QL1706", 5.0, "2021-01-10", ""),
            ("W5", "QL1706", 5.0, "2021-01-10", "2021-02-10"),
            ("W6", "QL1706", 5.0, "2021-01-10", "2021-02-10"),
            ("W7", "QL1706", 5.0, "2021-01-10", "2021-02-10"),
            ("W8", "QL1706", 5.0, "2021-01-10", ""),
            ("W9", "QL1706", 5.0, "2021-05-01", ""),
        ]
    )
    expected = _expected(
        [
            ("W1", "2021-01-10", "2021-01-10", "", True, "2021-04-10", 91, 1),
            ("W2", "2021-01-10", "2021-05-01", "", True, "2021-06-30", 172, 2),
            ("W3", "2021-01-04", "2021-02-01", "2021-03-15", True, "2021-03-15", 71, 1),
            ("W4", "2021-01-10", "2021-01-10", "2021-06-01", True, "2021-04-10", 91, 1),
            ("W5", "2021-01-10", "2021-02-10", "2021-02-10", True, "2021-02-10", 32, 1),
            ("W6", "2021-01-10", "2021-02-10", "2021-03-01", True, "2021-03-01", 51, 1),
            ("W7", "2021-01-10", "2021-02-10", "2021-02-10", True, "2021-02-10", 32, 1),
            ("W8", "2021-01-10", "2021-01-10", "", True, "2021-04-10", 91, 1),
            ("W9", "2021-05-01", "2021-05-01", "", True, "2021-06-30", 61, 1),  # not a death of this cut
        ]
    )
    pd.testing.assert_frame_equal(_derived(dm, ex), expected)


def test_derive_subject_exposure_window_days_is_configurable():
    dm = _dm([("W1", "", "", "", "")])
    ex = _ex([("W1", "QL1706", 5.0, "2021-01-10", "")])
    expected = _expected([("W1", "2021-01-10", "2021-01-10", "", True, "2021-02-09", 31, 1)])
    pd.testing.assert_frame_equal(_derived(dm, ex, window_days=30), expected)


# --- the data cutoff: nothing after it is counted (DOMAIN.md §2) ----------------------------------------------


def test_derive_subject_exposure_cutoff():
    dm = _dm(
        [
            ("C1", "", "", "", ""),
            ("C2", "", "", "", ""),
            ("C3", "", "", "", ""),
            ("C4", "", "", "", ""),
            ("C5", "", "", "", ""),
            ("C6", "2021-05-01", "2021-08-01", "", ""),  # no EX: DM dates, the end cut at the cutoff
            ("C7", "2021-07-02", "2021-07-30", "", ""),  # no EX, DM start after the cutoff: not dosed in this cut
            ("C8", "2021-05-01", "2021-05-01", "2021-07-15", "Y"),  # a death after the cutoff: no death this cut
            ("C9", "2021-05-01", "2021-05-01", "2021-06", "Y"),  # a partial death date inside the cut: a death
        ]
    )
    ex = _ex(
        [
            ("C1", "QL1706", 5.0, "2021-07-05", ""),  # every dose after the cutoff: not dosed in this cut
            ("C2", "QL1706", 5.0, "2021-06-30", ""),  # first dose on the cutoff: one day at risk
            ("C3", "QL1706", 5.0, "2021-06-01", ""),  # a dose after the cutoff: ignored for last dose and N_DOSES
            ("C3", "QL1706", 5.0, "2021-07-01", ""),
            ("C4", "QL1706", 5.0, "2021-06-20", "2021-07-10"),  # an interval running past the cutoff ends at it
            ("C5", "QL1706", 5.0, "2021-06-10", "2021-07"),  # partial end after the cutoff: ends at it too
        ]
    )
    expected = _expected(
        [
            # USUBJID  TRTSDT        TRTEDT        DTHDT         SAFFL  WINDOW_END    DAYS   N_DOSES
            ("C1", "", "", "", False, "", pd.NA, 0),
            ("C2", "2021-06-30", "2021-06-30", "", True, "2021-06-30", 1, 1),
            ("C3", "2021-06-01", "2021-06-01", "", True, "2021-06-30", 30, 1),
            ("C4", "2021-06-20", "2021-06-30", "", True, "2021-06-30", 11, 1),
            ("C5", "2021-06-10", "2021-06-30", "", True, "2021-06-30", 21, 1),
            ("C6", "2021-05-01", "2021-06-30", "", True, "2021-06-30", 61, 0),
            ("C7", "", "", "", False, "", pd.NA, 0),
            ("C8", "2021-05-01", "2021-05-01", "", True, "2021-06-30", 61, 0),
            ("C9", "2021-05-01", "2021-05-01", "2021-06-01", True, "2021-06-01", 32, 0),
        ]
    )
    pd.testing.assert_frame_equal(_derived(dm, ex), expected)


def test_derive_subject_exposure_dose_after_cutoff_does_not_stretch_the_window():
    # Issue 8: a dose record dated after the cutoff moved the last dose to 2021-07-05 and stretched the window to
    # the cutoff: 2021-01-01 .. 2021-06-30 = 181 days at risk. Ignored, the last dose is 2021-01-01 and the window
    # ends 90 days later, 2021-04-01: 91 days at risk.
    dm = _dm([("I1", "", "", "", "")])
    ex = _ex(
        [
            ("I1", "QL1706", 5.0, "2021-01-01", ""),
            ("I1", "QL1706", 5.0, "2021-07-05", ""),  # after the cutoff 2021-06-30
        ]
    )
    expected = _expected([("I1", "2021-01-01", "2021-01-01", "", True, "2021-04-01", 91, 1)])
    pd.testing.assert_frame_equal(_derived(dm, ex), expected)


# --- carried columns and argument checks ------------------------------------------------------------------------


def test_derive_subject_exposure_keeps_dm_columns_and_order():
    dm = _dm([("B", "2021-02-01", "", "", ""), ("A", "", "", "", "")]).assign(COHORT=["NPC", ""], AGE=[61.0, 54.0])
    result = derive_subject_exposure(dm, EMPTY_EX, CUTOFF)
    assert result["USUBJID"].tolist() == ["B", "A"]
    assert result["COHORT"].tolist() == ["NPC", ""]
    assert result["AGE"].tolist() == [61.0, 54.0]
    assert list(result.columns[: len(dm.columns)]) == list(dm.columns)


def test_derive_subject_exposure_rejects_bad_arguments():
    dm = _dm([("S1", "", "", "", ""), ("S1", "", "", "", "")])
    with pytest.raises(ValueError, match="one row per subject"):
        derive_subject_exposure(dm, EMPTY_EX, CUTOFF)
    with pytest.raises(ValueError, match="has no column RFXENDTC"):
        derive_subject_exposure(dm.drop(columns="RFXENDTC"), EMPTY_EX, CUTOFF)
    with pytest.raises(TypeError, match="datetime.date"):
        derive_subject_exposure(dm.iloc[:1], EMPTY_EX, "2021-06-30")
    with pytest.raises(ValueError, match="window_days"):
        derive_subject_exposure(dm.iloc[:1], EMPTY_EX, CUTOFF, window_days=-1)
