"""Laboratory values (DOMAIN.md §8): grades worked by hand from the CTCAE v5.0 criteria (admiral's
``atoxgr_criteria_ctcv5``), baseline and window, worst grades, shift, Hy's law, the `labs` table, and CDISC pilot
records (pharmaversesdtm, credit: CDISC and the pharmaverse contributors) worked by hand from their raw rows."""

from __future__ import annotations

import datetime as dt
import runpy

import numpy as np
import pandas as pd
import pytest

from safety_dash.metrics.exposure import derive_subject_exposure
from safety_dash.metrics.labs import (
    CRITERIA_FILE,
    LAB_TABLE_COLUMNS,
    compute_lab_table,
    compute_shift_table,
    compute_worst_grades,
    derive_lab_values,
    flag_hys_law,
    parse_lab_criteria,
)
from tests.conftest import SHARED_DATA, require_shared

CUTOFF = dt.date(2024, 6, 30)
CRITERIA = pd.read_csv(CRITERIA_FILE, dtype=str, keep_default_na=False)
NA = pd.NA
D = pd.Timestamp


def _subjects(rows: list[tuple]) -> pd.DataFrame:
    """The derived subject frame (derive_subject_exposure's columns) written by hand."""
    frame = pd.DataFrame.from_records(rows, columns=["USUBJID", "COHORT", "SAFFL", "TRTSDT", "TRTEDT", "WINDOW_END"])
    for name in ("TRTSDT", "TRTEDT", "WINDOW_END"):
        frame[name] = pd.to_datetime(frame[name])
    days = (frame["WINDOW_END"] - frame["TRTSDT"]).dt.days + 1
    return frame.assign(DAYS_AT_RISK=days.astype("Int64"))


def _lb(rows: list[tuple]) -> pd.DataFrame:
    """LB rows (USUBJID, LBSEQ, LBTESTCD, LBSTRESC, LBSTRESU, LBSTNRLO, LBSTNRHI, LBDTC, LBBLFL); LBSTRESN is
    LBSTRESC when that is a plain number (as SDTM writes it), empty for a bound or text."""
    names = ["USUBJID", "LBSEQ", "LBTESTCD", "LBSTRESC", "LBSTRESU", "LBSTNRLO", "LBSTNRHI", "LBDTC", "LBBLFL"]
    frame = pd.DataFrame.from_records(rows, columns=names)
    frame["LBTEST"] = frame["LBTESTCD"].map(lambda code: f"Test {code}")
    frame["LBSTRESN"] = pd.to_numeric(frame["LBSTRESC"], errors="coerce")
    frame["LBSTRESC"] = frame["LBSTRESC"].astype(str)
    return frame


def _record(values: pd.DataFrame, usubjid: str, lbseq: int) -> pd.Series:
    return values.loc[(values["USUBJID"] == usubjid) & (values["LBSEQ"] == lbseq)].iloc[0]


# --- a hand-made cut: cutoff 2024-06-30, W = 90 --------------------------------------------------------------------
# S1: first dose 2024-01-10, last 2024-03-01 -> window end min(2024-03-01 + 90 = 2024-05-30, cutoff) = 2024-05-30
# S2: first dose 2024-02-01, last 2024-05-01 -> 2024-05-01 + 90 = 2024-07-30, after the cutoff: 2024-06-30
# S3: first dose 2024-01-05 (one dose), died 2024-02-15 -> window end 2024-02-15
# S4: never dosed (outside the safety population)
SUBJECTS = _subjects(
    [
        ("S1", "A", True, "2024-01-10", "2024-03-01", "2024-05-30"),
        ("S2", "A", True, "2024-02-01", "2024-05-01", "2024-06-30"),
        ("S3", "B", True, "2024-01-05", "2024-01-05", "2024-02-15"),
        ("S4", "B", False, None, None, None),
    ]
)
LB = _lb(
    [
        # S1, ALT (ULN 40), baseline normal: grades against x ULN
        ("S1", 1, "ALT", "30", "U/L", 6, 40, "2024-01-05", "Y"),  # the flagged baseline
        ("S1", 2, "ALT", "120", "U/L", 6, 40, "2024-01-10T09:00", ""),  # first dose day: not on treatment
        ("S1", 3, "ALT", "121", "U/L", 6, 40, "2024-01-20", ""),  # > 3 x ULN = 120: grade 2
        ("S1", 4, "ALT", "800", "U/L", 6, 40, "2024-02-01", ""),  # exactly 20 x ULN: not > 800, grade 3
        ("S1", 5, "ALT", "801", "U/L", 6, 40, "2024-05-31", ""),  # > 20 x ULN, grade 4, but after the window
        # S1, creatinine (ULN 124), baseline 60: > 3 x baseline = 180 is grade 3 though 181 is 1.46 x ULN
        ("S1", 6, "CREAT", "60", "umol/L", 62, 124, "2024-01-05", "Y"),
        ("S1", 7, "CREAT", "181", "umol/L", 62, 124, "2024-01-24", ""),
        ("S1", 8, "CREAT", "181", "umol/L", "", "", "2024-01-25", ""),  # no ULN: x baseline still grades (3)
        ("S1", 9, "CREAT", "85", "umol/L", "", "", "2024-01-26", ""),  # no ULN, not > 1.5 x 60 = 90: none
        # S2, ALT, baseline 60 > ULN 40 (abnormal): grades against x baseline
        ("S2", 10, "ALT", "60", "U/L", 6, 40, "2024-01-25", "Y"),
        ("S2", 11, "ALT", "150", "U/L", 6, 40, "2024-03-01", ""),  # >= 1.5 x 60 = 90, not > 3 x 60: grade 1
        ("S2", 12, "ALT", "181", "U/L", 6, 40, "2024-04-01T08:30", ""),  # > 3 x 60 = 180: grade 2
        ("S2", 13, "ALT", "1000", "U/L", 6, 40, "2024-07-05", ""),  # after the cutoff
        ("S2", 14, "ALT", "999", "U/L", 6, 40, "2024-03", ""),  # partial date: no ADT, not counted
        # S3, AST (ULN 35), no flag: baseline = last numeric value on or before the first dose (2024-01-05)
        ("S3", 15, "AST", "20", "U/L", 9, 35, "2024-01-01", ""),
        ("S3", 16, "AST", "25", "U/L", 9, 35, "2024-01-04", ""),  # the baseline
        ("S3", 17, "AST", "", "U/L", 9, 35, "2024-01-05", ""),  # no result: never the baseline
        ("S3", 18, "AST", "106", "U/L", 9, 35, "2024-02-10", ""),  # > 3 x 35 = 105: grade 2
        ("S3", 19, "AST", "500", "U/L", 9, 35, "2024-02-16", ""),  # after death (window end 2024-02-15)
        # S4: never dosed
        ("S4", 20, "AST", "500", "U/L", 9, 35, "2024-02-16", ""),
    ]
)


@pytest.fixture(scope="module")
def values() -> pd.DataFrame:
    return derive_lab_values(LB, SUBJECTS, CUTOFF, 90, CRITERIA)


def test_derive_lab_values_baseline_window_and_ratios(values):
    got = values.set_index("LBSEQ")
    expected = pd.DataFrame.from_records(
        [
            # LBSEQ BASELINE BASE BNRIND ON_TREATMENT PERIOD ADY XULN
            (1, True, 30.0, "NORMAL", False, "pre-treatment", -5, 0.75),
            (2, False, 30.0, "NORMAL", False, "pre-treatment", 1, 3.0),  # on the first dose day
            (3, False, 30.0, "NORMAL", True, "on-treatment", 11, 121 / 40),
            (4, False, 30.0, "NORMAL", True, "on-treatment", 23, 20.0),
            (5, False, 30.0, "NORMAL", False, "post-window", 143, 801 / 40),  # the day after the window end
            (10, True, 60.0, "HIGH", False, "pre-treatment", -7, 1.5),
            (13, False, 60.0, "HIGH", False, "after cutoff", 156, 25.0),
            (14, False, 60.0, "HIGH", False, "no date", NA, 999 / 40),
            (15, False, 25.0, "NORMAL", False, "pre-treatment", -4, 20 / 35),
            (16, True, 25.0, "NORMAL", False, "pre-treatment", -1, 25 / 35),
            (17, False, 25.0, "NORMAL", False, "pre-treatment", 1, np.nan),
            (18, False, 25.0, "NORMAL", True, "on-treatment", 37, 106 / 35),
            (19, False, 25.0, "NORMAL", False, "post-window", 43, 500 / 35),  # after death
            (20, False, np.nan, "", False, "not dosed", NA, 500 / 35),
        ],
        columns=["LBSEQ", "BASELINE", "BASE", "BNRIND", "ON_TREATMENT", "PERIOD", "ADY", "XULN"],
    ).set_index("LBSEQ")
    expected["ADY"] = expected["ADY"].astype("Int64")
    pd.testing.assert_frame_equal(got.loc[expected.index, expected.columns], expected)
    assert got.loc[13, "AFTER_CUTOFF"] and not got.loc[12, "AFTER_CUTOFF"]
    assert got.loc[17, "HAS_RESULT"] == False  # noqa: E712 - numpy bool
    assert got["BASELINE"].sum() == 4  # S1 ALT, S1 CREAT, S2 ALT, S3 AST; S4 has none


def test_derive_lab_values_grades_with_baseline(values):
    got = values.set_index("LBSEQ")
    # ALT, baseline normal (x ULN): 30 -> 0; 120 = 3 x ULN exactly -> 1; 121 -> 2; 800 = 20 x ULN -> 3; 801 -> 4
    # ALT, baseline 60 abnormal (x baseline): 60 -> 0 (not >= 90); 150 -> 1 (>= 90, not > 180); 181 -> 2
    # CREAT: 60 -> 0; 181 > 3 x 60 -> 3 (with or without a ULN); 85 with no ULN, not > 1.5 x 60 = 90: not graded
    expected = {1: 0, 2: 1, 3: 2, 4: 3, 5: 4, 6: 0, 7: 3, 8: 3, 9: NA, 10: 0, 11: 1, 12: 2, 18: 2}
    assert {seq: got.loc[seq, "ATOXGRH"] for seq in expected} == expected
    assert got.loc[9, "ATOXGRH_REASON"] == "no upper limit of normal (LBSTNRHI)"
    assert got.loc[17, "ATOXGRH_REASON"] == "no result"
    assert (got["CRITERION_L"] == "").all() and (got["ATOXGRL"].isna()).all()  # ALT, AST, CREAT: high only
    assert got.loc[1, "ATOXDSCH"] == "Alanine aminotransferase increased"


# --- grading one value at a time: subject G dosed 2024-01-01, every value on 2024-02-01, no baseline -------------
# (test, LBSTRESC, unit, LLN, ULN, expected high grade, expected low grade, expected reason high / low)
GRADING = [
    # neutrophils, low: <0.5 -> 4, <1.0 -> 3, <1.5 -> 2, <LLN -> 1 (10^9/L)
    ("NEUT", "0.49", "10^9/L", 1.8, 7.5, NA, 4, "", ""),
    ("NEUT", "0.5", "10^9/L", 1.8, 7.5, NA, 3, "", ""),  # on the boundary: not < 0.5
    ("NEUT", "1.5", "10^9/L", 1.8, 7.5, NA, 1, "", ""),  # not < 1.5, but < LLN
    ("NEUT", "1.7", "GI/L", 1.8, 7.5, NA, 1, "", ""),  # GI/L is 10^9/L
    ("NEUT", "1.8", "10^9/L", 1.8, 7.5, NA, 0, "", ""),
    ("NEUT", "<0.5", "10^9/L", 1.8, 7.5, NA, 4, "", ""),  # every value below 0.5 is grade 4
    ("NEUT", "<1.2", "10^9/L", 1.8, 7.5, NA, NA, "", "bound"),  # 1.1 is grade 2, 0.3 grade 4
    ("NEUT", "0.3", "10^9/L", "", "", NA, 4, "", ""),  # no LLN: the absolute limit decides
    ("NEUT", "1.7", "10^9/L", "", "", NA, NA, "", "no lower limit"),  # no LLN: grade 1 or 0 unknown
    ("NEUT", "1700", "/mm3", 1800, 7500, NA, NA, "", "unit is not"),  # absolute limits in 10^9/L only
    ("PLAT", "75", "10^9/L", 130, 394, NA, 1, "", ""),  # not < 75: grade 1 (< LLN)
    ("PLAT", "24.9", "10^9/L", 130, 394, NA, 4, "", ""),
    # haemoglobin: g/L (admiral) and mmol/L (CTCAE's wording); increased: > ULN + 40 g/L -> 3
    ("HGB", "79", "g/L", 120, 170, 0, 3, "", ""),
    ("HGB", "211", "g/L", 120, 170, 3, 0, "", ""),
    ("HGB", "6.1", "mmol/L", 7.4, 10.5, NA, 2, "unit is not", ""),  # < 6.2 mmol/L: grade 2
    ("LYM", "0.19", "10^9/L", 0.8, 3.0, 0, 4, "", ""),
    ("LYM", "25", "10^9/L", 0.8, 3.0, 3, 0, "", ""),  # > 20: grade 3 (increased)
    ("WBC", "101", "10^9/L", 3.8, 10.7, 3, 0, "", ""),  # leukocytosis > 100
    # potassium: hypokalaemia < LLN is grade 2 (admiral assumes symptomatic), < 3.0 -> 3, < 2.5 -> 4
    ("K", "2.4", "mmol/L", 3.4, 5.4, 0, 4, "", ""),
    ("K", "3.2", "mmol/L", 3.4, 5.4, 0, 2, "", ""),
    ("K", "6.0", "mmol/L", 3.4, 5.4, 2, 0, "", ""),  # > 5.5, not > 6.0
    # sodium: <= 129 is grade 3 (admiral, "symptomatic"); 129.5 only < LLN: grade 1; > 160 -> 4
    ("SODIUM", "129.5", "mmol/L", 135, 145, 0, 1, "", ""),
    ("SODIUM", "125", "mmol/L", 135, 145, 0, 3, "", ""),
    ("SODIUM", "161", "mmol/L", 135, 145, 4, 0, "", ""),
    # glucose: low graded (mmol/L and mg/dL), high not gradable in CTCAE v5.0
    ("GLUC", "2.9", "mmol/L", 3.9, 6.1, NA, 2, "hyperglycemia", ""),
    ("GLUC", "52", "mg/dL", 70, 110, NA, 2, "hyperglycemia", ""),
    ("GLUC", "NEGATIVE", "mmol/L", 3.9, 6.1, NA, NA, "hyperglycemia", "text"),
    ("TSH", "12", "mU/L", 0.4, 4.0, NA, NA, "TSH", ""),  # not graded, x ULN = 3 shown
    # creatinine: 1.5 x 0.7 is 1.0499999999999998 in floating point; admiral compares 15 significant digits
    ("CREAT", "1.05", "mg/dL", 0.5, 0.7, 1, NA, "", ""),
    ("CREAT", "187", "umol/L", 62, 124, 2, NA, "", ""),  # > 1.5 x ULN = 186
    ("CREAT", "745", "umol/L", 62, 124, 4, NA, "", ""),  # > 6 x ULN = 744
    # bilirubin (x ULN 21): bounds decide when every value they allow has one grade
    ("BILI", "31.6", "umol/L", 3, 21, 2, NA, "", ""),  # > 1.5 x 21 = 31.5
    ("BILI", "<3.42", "umol/L", 3, 21, 0, NA, "", ""),
    ("BILI", ">500", "umol/L", 3, 21, 4, NA, "", ""),  # > 10 x 21 = 210
    ("BILI", ">100", "umol/L", 3, 21, NA, NA, "bound", ""),  # grade 3 or 4
    ("ALT", "50", "U/L", 6, "", NA, NA, "no upper limit", ""),
]


@pytest.fixture(scope="module")
def graded() -> pd.DataFrame:
    subjects = _subjects([("G", "A", True, "2024-01-01", "2024-03-01", "2024-05-30")])
    rows = [("G", seq, test, text, unit, lln, uln, "2024-02-01", "") for seq, (test, text, unit, lln, uln, *_)
            in enumerate(GRADING, start=1)]  # fmt: skip
    return derive_lab_values(_lb(rows), subjects, CUTOFF, 90, CRITERIA)


@pytest.mark.parametrize("seq", range(1, len(GRADING) + 1))
def test_derive_lab_values_grade_of_one_value(graded, seq):
    test, text, unit, _, _, high, low, high_reason, low_reason = GRADING[seq - 1]
    got = _record(graded, "G", seq)
    assert (got["ATOXGRH"], got["ATOXGRL"]) == (high, low), f"{test} {text} {unit}"
    assert high_reason.lower() in got["ATOXGRH_REASON"].lower() and bool(high_reason) == bool(got["ATOXGRH_REASON"])
    # A test without a criterion in a direction has no reason either (ALT low, NEUT high, ...).
    assert low_reason.lower() in got["ATOXGRL_REASON"].lower() and bool(low_reason) == bool(got["ATOXGRL_REASON"])


def test_derive_lab_values_bound_kept_as_text_without_a_number(graded):
    bound = _record(graded, "G", 6)  # NEUT "<0.5"
    assert (bound["LBSTRESC"], bound["BOUND"], bound["BOUND_VALUE"]) == ("<0.5", "<", 0.5)
    assert np.isnan(bound["AVAL"]) and np.isnan(bound["XLLN"]) and bound["HAS_RESULT"]
    tsh = _record(graded, "G", 28)
    assert (tsh["CRITERION_H"], tsh["CRITERION_L"], tsh["XULN"]) == ("not gradable", "", 3.0)


def test_derive_lab_values_reads_adam_adlb():
    subjects = _subjects([("G", "A", True, "2024-01-01", "2024-03-01", "2024-05-30")])
    adlb = pd.DataFrame(
        {
            "USUBJID": ["G", "G"],
            "ASEQ": [1, 2],
            "PARAMCD": ["ALKPH", "ALKPH"],
            "PARAM": ["Alkaline Phosphatase (U/L)", "Alkaline Phosphatase (U/L)"],
            "AVAL": [100.0, 600.0],
            "ANRLO": [35.0, 35.0],
            "ANRHI": [115.0, 115.0],
            "ADT": pd.to_datetime(["2023-12-30", "2024-02-01"]),
            "ABLFL": ["Y", ""],
        }
    )
    got = derive_lab_values(adlb, subjects, CUTOFF, 90, CRITERIA)
    # 600 > 5 x 115 = 575, baseline 100 normal: grade 3 (ALKPH is admiral's PARAMCD for ALP)
    assert got["ATOXGRH"].tolist() == [0, 3] and got["BASELINE"].tolist() == [True, False]
    assert got["LBSTRESU"].tolist() == ["U/L", "U/L"]


def test_derive_lab_values_fails_on_subjects_of_another_window():
    with pytest.raises(ValueError, match="WINDOW_END after TRTEDT \\+ 30 days"):
        derive_lab_values(LB, SUBJECTS, CUTOFF, 30, CRITERIA)
    with pytest.raises(ValueError, match="`lb` has no column LBSTNRHI"):
        derive_lab_values(LB.drop(columns="LBSTNRHI"), SUBJECTS, CUTOFF, 90, CRITERIA)


def test_parse_lab_criteria_names_a_bad_row():
    bad = CRITERIA.copy()
    bad.loc[3, "OPERATOR"] = "=>"
    with pytest.raises(ValueError, match="row 4 .*OPERATOR"):
        parse_lab_criteria(bad)


# --- worst grades and shift ------------------------------------------------------------------------------------------


def test_compute_worst_grades(values):
    got = compute_worst_grades(values)
    expected = pd.DataFrame.from_records(
        [
            # S1 ALT: on treatment 121 (2) and 800 (3); 120 on the first dose day and 801 after the window don't count
            ("S1", "ALT", "H", 2, 3, D("2024-02-01"), 0),
            ("S1", "CREAT", "H", 3, 3, D("2024-01-24"), 0),  # 181 (3), 181 (3), 100 (not graded)
            ("S2", "ALT", "H", 2, 2, D("2024-04-01"), 0),  # after the cutoff, partial date: not counted
            ("S3", "AST", "H", 1, 2, D("2024-02-10"), 0),  # 500 after death not counted; no result not counted
            ("S4", "AST", "H", 0, NA, pd.NaT, NA),
        ],
        columns=["USUBJID", "LBTESTCD", "DIRECTION", "N_ON_TREATMENT", "WORST_GRADE", "WORST_ADT", "BASELINE_GRADE"],
    ).astype({"WORST_GRADE": "Int64", "BASELINE_GRADE": "Int64", "WORST_ADT": "datetime64[ns]"})
    pd.testing.assert_frame_equal(got[expected.columns], expected)
    assert got["CRITERION"].eq("graded").all() and got.loc[0, "TERM"] == "Alanine aminotransferase increased"


def test_compute_shift_table_alt_by_cohort(values):
    got = compute_shift_table(values, "alt", "H", SUBJECTS, "COHORT")
    nonzero = got.loc[got["n_subjects"] > 0].reset_index(drop=True)
    # S1: baseline 0 -> worst 3; S2: baseline 0 -> worst 2; both cohort A
    expected = pd.DataFrame(
        {
            "group": ["ALL", "ALL", "A", "A"],
            "baseline_grade": pd.array([0, 0, 0, 0], dtype="Int64"),
            "worst_grade": pd.array([2, 3, 2, 3], dtype="Int64"),
            "n_subjects": [1, 1, 1, 1],
        }
    )
    pd.testing.assert_frame_equal(nonzero, expected)
    assert len(got) == 3 * 36 and got["group"].unique().tolist() == ["ALL", "A", "B"]
    assert got["worst_grade"].isna().sum() == 3 * 6  # the 'missing' column is kept
    with pytest.raises(ValueError, match="`test` 'NEUT' has no record"):
        compute_shift_table(values, "NEUT", "L")


# --- Hy's law: subjects dosed 2024-01-01 (window end 2024-05-30); ULN ALT 40, AST 35, BILI 21, ALP 115 ---------------
HY_SUBJECTS = _subjects([(f"H{i}", "A" if i <= 4 else "B", True, "2024-01-01", "2024-03-01", "2024-05-30")
                         for i in range(1, 8)])  # fmt: skip
HY_LB = _lb(
    [
        # H1: ALT exactly 3 x ULN, bilirubin exactly 2 x ULN 30 days later: a case; ALP 2.0 x ULN in between
        ("H1", 1, "ALT", "120", "U/L", 6, 40, "2024-02-01", ""),
        ("H1", 2, "ALP", "230", "U/L", 35, 115, "2024-02-15", ""),
        ("H1", 3, "BILI", "42", "umol/L", 3, 21, "2024-03-02", ""),
        ("H1", 4, "ALP", "400", "U/L", 35, 115, "2024-03-03", ""),  # after the bilirubin day: not shown
        # H2: ALT just under 3 x ULN
        ("H2", 5, "ALT", "119.9", "U/L", 6, 40, "2024-02-01", ""),
        ("H2", 6, "BILI", "50", "umol/L", 3, 21, "2024-02-01", ""),
        # H3: bilirubin just under 2 x ULN
        ("H3", 7, "ALT", "200", "U/L", 6, 40, "2024-02-01", ""),
        ("H3", 8, "BILI", "41.9", "umol/L", 3, 21, "2024-02-01", ""),
        # H4: bilirubin 31 days after the ALT
        ("H4", 9, "ALT", "200", "U/L", 6, 40, "2024-02-01", ""),
        ("H4", 10, "BILI", "50", "umol/L", 3, 21, "2024-03-03", ""),
        # H5: bilirubin the day before the ALT
        ("H5", 11, "ALT", "200", "U/L", 6, 40, "2024-02-02", ""),
        ("H5", 12, "BILI", "50", "umol/L", 3, 21, "2024-02-01", ""),
        # H6: both before the first dose
        ("H6", 13, "ALT", "200", "U/L", 6, 40, "2023-12-30", ""),
        ("H6", 14, "BILI", "50", "umol/L", 3, 21, "2023-12-31", ""),
        # H7: AST 3.2 x ULN and bilirubin the same day, no ALP: a case through AST
        ("H7", 15, "AST", "112", "U/L", 9, 35, "2024-04-01", ""),
        ("H7", 16, "BILI", "63", "umol/L", 3, 21, "2024-04-01", ""),
        ("H7", 17, "ALT", "80", "U/L", 6, 40, "2024-04-01", ""),
    ]
)


@pytest.fixture(scope="module")
def hys_values() -> pd.DataFrame:
    return derive_lab_values(HY_LB, HY_SUBJECTS, CUTOFF, 90, CRITERIA)


def test_flag_hys_law_cases_and_near_misses(hys_values):
    got = flag_hys_law(hys_values).set_index("USUBJID")
    assert got["HYS_LAW"].to_dict() == {f"H{i}": i in (1, 7) for i in (1, 2, 3, 4, 5, 7)}  # H6: nothing on treatment
    assert got.loc["H1", ["HYS_LAW_ALT", "HYS_LAW_AST"]].tolist() == [True, False]
    assert got.loc["H7", ["HYS_LAW_ALT", "HYS_LAW_AST"]].tolist() == [False, True]
    assert (got.loc["H1", "TRANSAMINASE_ADT"], got.loc["H1", "BILI_ADT"]) == (D("2024-02-01"), D("2024-03-02"))
    assert got.loc["H1", "ALP_XULN"] == 2.0 and got.loc["H1", "CHOLESTASIS"] == True  # noqa: E712
    assert np.isnan(got.loc["H7", "ALP_XULN"]) and got.loc["H7", "CHOLESTASIS"] is NA
    assert got.loc["H3", "PEAK_ALT_XULN"] == 5.0 and got.loc["H3", "PEAK_BILI_XULN"] == pytest.approx(41.9 / 21)
    assert got.loc["H7", "PEAK_ALT_AST_XULN"] == pytest.approx(112 / 35) and got.loc["H7", "PEAK_ALT_XULN"] == 2.0
    assert np.isnan(got.loc["H2", "PEAK_AST_XULN"])


# --- the `labs --by test` table ------------------------------------------------------------------------------------


def test_compute_lab_table_columns_are_the_command_contract(values):
    assert LAB_TABLE_COLUMNS == [
        "group", "test", "test_name", "n_subjects", "n_with_value", "n_worst_grade_1", "n_worst_grade_2",
        "n_worst_grade_3", "n_worst_grade_4", "n_grade_3_or_more", "pct_grade_3_or_more", "n_hys_law",
    ]  # fmt: skip
    assert compute_lab_table(values, SUBJECTS, "COHORT").columns.tolist() == LAB_TABLE_COLUMNS


def test_compute_lab_table_by_cohort(values):
    got = compute_lab_table(values, SUBJECTS, "COHORT")
    # Safety: S1, S2 (A), S3 (B); S4 is not dosed. Worst: ALT S1 3, S2 2; CREAT S1 3; AST S3 2.
    expected = pd.DataFrame.from_records(
        [
            ("ALL", "ALT", "Test ALT (high)", 3, 2, 0, 1, 1, 0, 1, 50.0, 0),
            ("ALL", "AST", "Test AST (high)", 3, 1, 0, 1, 0, 0, 0, 0.0, 0),
            ("ALL", "CREAT", "Test CREAT (high)", 3, 1, 0, 0, 1, 0, 1, 100.0, NA),
            ("A", "ALT", "Test ALT (high)", 2, 2, 0, 1, 1, 0, 1, 50.0, 0),
            ("A", "AST", "Test AST (high)", 2, 0, 0, 0, 0, 0, 0, np.nan, 0),
            ("A", "CREAT", "Test CREAT (high)", 2, 1, 0, 0, 1, 0, 1, 100.0, NA),
            ("B", "ALT", "Test ALT (high)", 1, 0, 0, 0, 0, 0, 0, np.nan, 0),
            ("B", "AST", "Test AST (high)", 1, 1, 0, 1, 0, 0, 0, 0.0, 0),
            ("B", "CREAT", "Test CREAT (high)", 1, 0, 0, 0, 0, 0, 0, np.nan, NA),
        ],
        columns=LAB_TABLE_COLUMNS,
    )
    for name in LAB_TABLE_COLUMNS[5:10] + ["n_hys_law"]:
        expected[name] = expected[name].astype("Int64")
    pd.testing.assert_frame_equal(got, expected)
    with_grade_3 = compute_lab_table(values, SUBJECTS, "COHORT", min_grade=3)
    assert with_grade_3["test"].unique().tolist() == ["ALT", "CREAT"]  # AST's worst grade is 2
    with pytest.raises(ValueError, match="`min_grade` must be a whole grade from 1 to 4"):
        compute_lab_table(values, SUBJECTS, "COHORT", min_grade=5)


def test_compute_lab_table_hys_law_and_not_gradable_rows(hys_values, graded):
    table = compute_lab_table(hys_values, HY_SUBJECTS, "COHORT").set_index(["group", "test"])
    # Cases: H1 (ALT, cohort A), H7 (AST, cohort B). ALT rows count ALT cases, AST rows AST cases, BILI all;
    # ALP takes no part (to_dict gives None for NA).
    assert table["n_hys_law"].to_dict() == {
        ("ALL", "ALP"): None, ("ALL", "ALT"): 1, ("ALL", "AST"): 1, ("ALL", "BILI"): 2,
        ("A", "ALP"): None, ("A", "ALT"): 1, ("A", "AST"): 0, ("A", "BILI"): 1,
        ("B", "ALP"): None, ("B", "ALT"): 0, ("B", "AST"): 1, ("B", "BILI"): 1,
    }  # fmt: skip
    rows = compute_lab_table(graded, _subjects([("G", "A", True, "2024-01-01", "2024-03-01", "2024-05-30")]), "COHORT")
    tsh = rows.loc[(rows["group"] == "ALL") & (rows["test"] == "TSH")].iloc[0]
    assert tsh["test_name"] == "Test TSH (high)" and tsh["n_with_value"] == 1
    assert tsh[LAB_TABLE_COLUMNS[5:10]].isna().all() and np.isnan(tsh["pct_grade_3_or_more"])
    glucose = rows.loc[(rows["group"] == "ALL") & (rows["test"] == "GLUC"), "test_name"].tolist()
    assert glucose == ["Test GLUC (high)", "Test GLUC (low)"]


# --- the criteria file is reproducible from admiral's metadata -------------------------------------------------------


def test_criteria_file_is_what_the_script_writes_from_admiral():
    rda = require_shared(SHARED_DATA / "admiral-grading" / "atoxgr_criteria_ctcv5.rda")
    import pyreadr

    script = runpy.run_path(str(CRITERIA_FILE.parents[2] / "scripts" / "make_lab_criteria.py"))
    rows = script["build_rows"](pyreadr.read_r(str(rda))["atoxgr_criteria_ctcv5"])
    written = pd.DataFrame(rows, columns=script["COLUMNS"]).astype(str)
    pd.testing.assert_frame_equal(written, CRITERIA[script["COLUMNS"]])


# --- the CDISC pilot (pharmaversesdtm lb, dm, ex), records worked by hand from the raw rows --------------------------
# First dose, last dose (EX), window end = last dose + 90 (no deaths among these subjects; cutoff after the study):
# 01-705-1186 2014-01-08, 2014-01-26 -> 2014-04-26; 01-705-1031 2013-11-27, 2013-12-19 -> 2014-03-19.
PILOT_CUTOFF = dt.date(2015, 12, 31)


@pytest.fixture(scope="module")
def pilot() -> pd.DataFrame:
    import pyreadr

    folder = require_shared(SHARED_DATA / "pharmaversesdtm")

    def read(name: str) -> pd.DataFrame:
        frame = pyreadr.read_r(str(folder / f"{name}.rda"))[name]
        for column in frame.columns:
            if frame[column].dtype == object:
                frame[column] = frame[column].fillna("").astype(str)
        return frame

    subjects = derive_subject_exposure(read("dm"), read("ex"), PILOT_CUTOFF)
    return derive_lab_values(read("lb"), subjects, PILOT_CUTOFF, 90, CRITERIA)


# (USUBJID, LBSEQ): high grade, low grade, worked by hand
PILOT_RECORDS = {
    # ALT baseline LBSEQ 3 = 50 U/L (LBBLFL Y, 2014-01-03) > ULN 32: abnormal, so x baseline. LBSEQ 40 = 104 U/L
    # (2014-01-23): >= 1.5 x 50 = 75, not > 3 x 50 = 150: grade 1 (x ULN alone would give 2: 104 > 96).
    ("01-705-1186", 40): (1, NA),
    ("01-705-1186", 3): (0, NA),  # the baseline itself: not >= 75
    # ALP LBSEQ 39 = 672 U/L, baseline LBSEQ 2 = 565 > ULN 115: not >= 2 x 565 = 1130: grade 0 (5.8 x ULN)
    ("01-705-1186", 39): (0, NA),
    # BILI LBSEQ 43 = 116.28 umol/L, baseline LBSEQ 6 = 25.65 > ULN 21: > 3 x 25.65 = 76.95, not > 256.5: 3
    ("01-705-1186", 43): (3, NA),
    # ALP LBSEQ 294 = 624 U/L, baseline 85 (normal), ULN 115: > 5 x 115 = 575, not > 2300: grade 3
    ("01-709-1339", 294): (3, NA),
    # Sodium LBSEQ 81 = 129 mmol/L, LLN 135, ULN 145: <= 129: grade 3 low (admiral: "symptomatic"); high 0
    ("01-710-1315", 81): (0, 3),
    # Lymphocytes LBSEQ 74 = 0.47 GI/L (= 10^9/L): < 0.5, not < 0.2: grade 3 low; high: not > 4: 0
    ("01-701-1341", 74): (0, 3),
    # Haemoglobin LBSEQ 90 = 6.08188 mmol/L: < 6.2, not < 4.9 mmol/L: grade 2 low; high only in g/L, g/dL
    ("01-705-1292", 90): (NA, 2),
    # Potassium LBSEQ 133 = 3.1 mmol/L, LLN 3.4: not < 3.0, < LLN: grade 2 low; high 0
    ("01-705-1292", 133): (0, 2),
    # Bilirubin LBSEQ 263 = "<3.42" umol/L (LBSTRESN empty), ULN 21: every value below 3.42 is grade 0
    ("01-701-1363", 263): (0, NA),
    # Glucose LBSEQ 87 = "<2.2204" mmol/L: just below 2.2204 is grade 2 (< 3.0), far below grade 4: not graded;
    # high: CTCAE v5.0 does not grade hyperglycemia by value
    ("01-701-1115", 87): (NA, NA),
}


@pytest.mark.parametrize("key", list(PILOT_RECORDS), ids=[f"{u}-{s}" for u, s in PILOT_RECORDS])
def test_cdisc_pilot_record_grades(pilot, key):
    got = _record(pilot, *key)
    assert (got["ATOXGRH"], got["ATOXGRL"]) == PILOT_RECORDS[key]


def test_cdisc_pilot_undecided_bound_and_window(pilot):
    glucose = _record(pilot, "01-701-1115", 87)
    assert "bound" in glucose["ATOXGRL_REASON"] and "hyperglycemia" in glucose["ATOXGRH_REASON"]
    # 01-705-1031 bilirubin LBSEQ 262 "<3.42" on 2014-05-11, after its window end 2014-03-19
    late = _record(pilot, "01-705-1031", 262)
    assert (late["PERIOD"], late["ON_TREATMENT"], late["ATOXGRH"]) == ("post-window", False, 0)
    baseline = _record(pilot, "01-705-1186", 3)
    assert baseline["BASELINE"] and baseline["BNRIND"] == "HIGH" and baseline["BASE"] == 50.0


def test_cdisc_pilot_hys_law(pilot):
    # Independent check (base R on the raw rows, no admiral): the only subject with an on-treatment ALT or AST
    # >= 3 x ULN and a bilirubin >= 2 x ULN 0..30 days later is 01-705-1186: 2014-01-23 ALT 104 (ULN 32), AST 118
    # (ULN 34), bilirubin 116.28 (ULN 21), ALP 672 (ULN 115) the same day.
    got = flag_hys_law(pilot)
    cases = got.loc[got["HYS_LAW"]]
    assert cases["USUBJID"].tolist() == ["01-705-1186"]
    case = cases.iloc[0]
    assert (case["TRANSAMINASE_ADT"], case["BILI_ADT"]) == (D("2014-01-23"), D("2014-01-23"))
    assert case["HYS_LAW_ALT"] and case["HYS_LAW_AST"] and case["CHOLESTASIS"]
    assert case["ALP_XULN"] == pytest.approx(672 / 115)
    # Peaks on treatment: ALT 107 (2014-01-29), AST 135 (2014-01-29), bilirubin 124.83 (2014-01-26)
    assert case[["PEAK_ALT_XULN", "PEAK_AST_XULN", "PEAK_BILI_XULN"]].tolist() == pytest.approx(
        [107 / 32, 135 / 34, 124.83 / 21]
    )
