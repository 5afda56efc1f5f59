"""CDISC pilot subjects worked by hand from the raw SDTM rows (credit: CDISC, cdiscpilot01)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from safety_dash.metrics.events import derive_events
from safety_dash.metrics.exposure import derive_subject_exposure

# The pilot has no data cutoff; this one lies after its last record (EX and DM end 2015-03-05).
CUTOFF = dt.date(2015, 12, 31)


def _read(folder: Path, name: str) -> pd.DataFrame:
    """An SDTM domain as the input contract has it: text with '' for missing, EXDOSE as float."""
    frame, _ = pyreadstat.read_xport(str(folder / "sdtm" / f"{name}.xpt"))
    for column in frame.columns:
        if column == "EXDOSE":
            frame[column] = frame[column].astype(float)
        elif frame[column].dtype == object:
            frame[column] = frame[column].fillna("").astype(str)
    return frame


@pytest.fixture
def pilot(cdisc_pilot: Path) -> dict[str, pd.DataFrame]:
    dm, ex, ae = (_read(cdisc_pilot, name) for name in ("dm", "ex", "ae"))
    # The pilot has no CTCAE grades and no AESMIE: the loader passes them empty. AE_ID = row number.
    ae = ae.assign(AETOXGR="", AESMIE="", AE_ID=np.arange(1, len(ae) + 1))
    subjects = derive_subject_exposure(dm, ex, CUTOFF)
    events = derive_events(ae, subjects, CUTOFF)
    suppae = _read(cdisc_pilot, "suppae")
    return {"dm": dm, "subjects": subjects, "events": events, "suppae": suppae}


def _subject(pilot: dict[str, pd.DataFrame], usubjid: str) -> pd.Series:
    return pilot["subjects"].set_index("USUBJID").loc[usubjid]


def _event(pilot: dict[str, pd.DataFrame], usubjid: str, aeseq: int) -> pd.Series:
    events = pilot["events"]
    return events.loc[(events["USUBJID"] == usubjid) & (events["AESEQ"] == aeseq)].iloc[0]


# --- 01-701-1148: a partial onset date and a pre-treatment AE --------------------------------------------------
# EX: 54 mg 2013-08-23..2013-09-05, 81 mg 2013-09-06..2014-02-08, 54 mg 2014-02-09..2014-02-20.
# AE 8 DYSPEPSIA AESTDTC 2012-02 (before the first-dose month): 2012-02-01, pre-treatment, day -569
#   (2012-02-01 to 2013-08-23 is 569 days; 2012 is a leap year).
# AE 9 DEPRESSED MOOD 2013-07-29: 25 days before the first dose, pre-treatment (the pilot's AESTDY is -25 too).
# AE 10 ACTINIC KERATOSIS 2014-02-12: day 174, treatment-emergent.


def test_cdisc_pilot_subject_with_partial_and_pre_treatment_onsets(pilot):
    subject = _subject(pilot, "01-701-1148")
    assert (subject["TRTSDT"], subject["TRTEDT"]) == (pd.Timestamp("2013-08-23"), pd.Timestamp("2014-02-20"))
    # window end 2014-02-20 + 90 = 2014-05-21; 2013-08-23 to 2014-05-21 is 271 days, + 1
    assert (subject["WINDOW_END"], subject["DAYS_AT_RISK"], subject["N_DOSES"]) == (pd.Timestamp("2014-05-21"), 272, 3)

    dyspepsia = _event(pilot, "01-701-1148", 8)
    assert (dyspepsia["ASTDT"], dyspepsia["ASTDTF"], dyspepsia["ASTDY"]) == (pd.Timestamp("2012-02-01"), "D", -569)
    assert (dyspepsia["TRTEMFL"], dyspepsia["WINDOW_LABEL"]) == (False, "pre-treatment")
    depressed = _event(pilot, "01-701-1148", 9)
    assert (depressed["ASTDY"], depressed["TRTEMFL"], depressed["WINDOW_LABEL"]) == (-25, False, "pre-treatment")
    keratosis = _event(pilot, "01-701-1148", 10)
    assert (keratosis["ASTDY"], keratosis["TRTEMFL"], keratosis["GRADE"], keratosis["GRADE_SOURCE"]) == (
        174,
        True,
        1,
        "severity",
    )


# --- 01-701-1239: partial onsets after the first-dose month ----------------------------------------------------
# EX: 2014-01-11..2014-01-25, 2014-01-26..2014-06-27, 2014-06-28..2014-07-10.
# AE 9 FATIGUE 2014-03: January holds the first dose, March does not: 2014-03-01, day 50 (31 + 18 + 1 days on).
# AE 10 HORDEOLUM 2014-04: 2014-04-01, day 81.


def test_cdisc_pilot_subject_with_partial_onsets_after_first_dose(pilot):
    subject = _subject(pilot, "01-701-1239")
    assert (subject["TRTSDT"], subject["TRTEDT"]) == (pd.Timestamp("2014-01-11"), pd.Timestamp("2014-07-10"))
    fatigue = _event(pilot, "01-701-1239", 9)
    assert (fatigue["ASTDT"], fatigue["ASTDTF"], fatigue["ASTDY"], fatigue["TRTEMFL"]) == (
        pd.Timestamp("2014-03-01"),
        "D",
        50,
        True,
    )
    hordeolum = _event(pilot, "01-701-1239", 10)
    assert (hordeolum["ASTDT"], hordeolum["ASTDY"], hordeolum["TRTEMFL"]) == (pd.Timestamp("2014-04-01"), 81, True)


# --- 01-701-1211: died two days after the last dose -------------------------------------------------------------
# EX: 2012-11-15..2012-11-28, 2012-11-29..2013-01-12; DTHDTC 2013-01-14.
# Window end = min(2013-01-12 + 90, 2013-01-14, cutoff) = 2013-01-14: 61 days at risk.
# AE 9 SUDDEN DEATH 2013-01-14, AESER = N but AESDTH = Y, AEOUT FATAL, AESEV SEVERE: serious, grade 5 (fatal).


def test_cdisc_pilot_subject_who_died(pilot):
    subject = _subject(pilot, "01-701-1211")
    assert (subject["TRTSDT"], subject["TRTEDT"], subject["DTHDT"]) == (
        pd.Timestamp("2012-11-15"),
        pd.Timestamp("2013-01-12"),
        pd.Timestamp("2013-01-14"),
    )
    assert (subject["WINDOW_END"], subject["DAYS_AT_RISK"], subject["DTHFL"]) == (pd.Timestamp("2013-01-14"), 61, "Y")
    death = _event(pilot, "01-701-1211", 9)
    assert (death["AESER"], death["SERIOUS"], death["GRADE"], death["GRADE_SOURCE"]) == ("N", True, 5, "fatal")
    assert (death["ASTDY"], death["TRTEMFL"]) == (61, True)


# --- exposure of the placebo arm and of screen failures ---------------------------------------------------------


def test_cdisc_pilot_placebo_and_screen_failures(pilot):
    # 01-701-1015: three PLACEBO records with EXDOSE 0 are dose records (2014-01-02 .. 2014-07-02)
    placebo = _subject(pilot, "01-701-1015")
    assert (placebo["TRTSDT"], placebo["TRTEDT"], placebo["SAFFL"], placebo["N_DOSES"]) == (
        pd.Timestamp("2014-01-02"),
        pd.Timestamp("2014-07-02"),
        True,
        3,
    )
    # screen failures have no EX and no RFXSTDTC: outside the safety population
    subjects = pilot["subjects"]
    screen_failures = subjects["ARM"] == "Screen Failure"
    assert screen_failures.sum() == 52
    assert not subjects.loc[screen_failures, "SAFFL"].any()
    assert subjects.loc[~screen_failures, "SAFFL"].all()


# --- agreement with the pilot's own treatment-emergent flag (SUPPAE.AETRTEM) ------------------------------------


def test_cdisc_pilot_trtemfl_agrees_with_suppae_aetrtem(pilot):
    supp = pilot["suppae"]
    supp = supp.loc[supp["QNAM"] == "AETRTEM"].assign(AESEQ=lambda f: f["IDVARVAL"].astype(float))
    merged = pilot["events"].merge(supp[["USUBJID", "AESEQ", "QVAL"]], on=["USUBJID", "AESEQ"], how="left")
    assert merged["QVAL"].isin(["Y", "N"]).all()
    ours, theirs = merged["TRTEMFL"], merged["QVAL"] == "Y"
    # Our flag adds an upper bound (last dose + 90 days) that the pilot's AETRTEM does not have, so a systematic
    # disagreement would be AEs more than 90 days after the last dose flagged Y by the pilot and N by us. The pilot
    # collected AEs only up to about a month after the last dose (the latest TE onset is 36 days after it), so there
    # is none; and its partial onsets either precede the first-dose month or fall in a later month, where both
    # imputations agree. All 1,191 records agree: 1,126 treatment-emergent, 65 pre-treatment.
    assert (ours == theirs).mean() >= 0.99
    assert pd.crosstab(ours, theirs).values.tolist() == [[65, 0], [0, 1126]]
    treatment_emergent = merged.loc[ours]
    days_after_last_dose = (
        treatment_emergent["ASTDT"]
        - treatment_emergent["USUBJID"].map(pilot["subjects"].set_index("USUBJID")["TRTEDT"])
    ).dt.days
    assert days_after_last_dose.max() == 36


# --- counted events, the end-date rule and after-death flags on the pilot ----------------------------------------


def test_cdisc_pilot_counted_events_equal_treatment_emergent_ones(pilot):
    events = pilot["events"]
    # No pilot AE is dated after its subject's death or risk window end: every treatment-emergent record counts.
    assert int(events["COUNTED"].sum()) == 1126
    assert (events["COUNTED"] == events["TRTEMFL"]).all()
    assert not events["AFTER_DEATH"].any()
    # Four records ended before the first dose; each had a complete onset before it too, so the end-date rule
    # changes none of them: 01-701-1294 AE 1 (onset 2013-03-22, end 03-23, first dose 03-24), 01-702-1082 AE 3
    # and 4 (2013-07-07 .. 07-24, first dose 07-26), 01-710-1315 AE 1 (2013-02-26 .. 02-26, first dose 02-27).
    ended_before = [("01-701-1294", 1), ("01-702-1082", 3), ("01-702-1082", 4), ("01-710-1315", 1)]
    for usubjid, aeseq in ended_before:
        event = _event(pilot, usubjid, aeseq)
        assert (event["ASTDTF"], event["TRTEMFL"], event["WINDOW_LABEL"]) == ("", False, "pre-treatment")
    # Each record is its own event without an episode key.
    assert (events["EVENT_ID"] == events["AE_ID"]).all()
