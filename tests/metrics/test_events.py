"""Event-level derivations (DOMAIN.md §3): literal AE records beside the expected derived columns."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from safety_dash.metrics.events import derive_events, derive_worst_grade, flag_qualifying_events

CUTOFF = dt.date(2021, 6, 30)

# S1: first dose 2021-03-10, last dose 2021-04-20, so the 90-day window ends 2021-07-19.
# S9: in DM, never dosed.
SUBJECTS = pd.DataFrame(
    {
        "USUBJID": ["S1", "S9"],
        "TRTSDT": pd.to_datetime(["2021-03-10", None]),
        "TRTEDT": pd.to_datetime(["2021-04-20", None]),
    }
)
AE_DEFAULTS = {
    "AETERM": "RASH",
    "AEDECOD": "Rash",
    "AEBODSYS": "Skin and subcutaneous tissue disorders",
    "AETOXGR": "1",
    "AESEV": "",
    "AESER": "N",
    "AESDTH": "N",
    "AESLIFE": "N",
    "AESHOSP": "N",
    "AESDISAB": "N",
    "AESCONG": "N",
    "AESMIE": "",
    "AEREL": "NOT RELATED",
    "AEOUT": "RECOVERED/RESOLVED",
    "AESTDTC": "2021-03-15",
    "AEENDTC": "",
}


def _ae(columns: list[str], rows: list[tuple]) -> pd.DataFrame:
    """AE records from the varying columns; the others take AE_DEFAULTS and AE_ID counts from 1."""
    frame = pd.DataFrame.from_records(rows, columns=columns)
    for column, value in AE_DEFAULTS.items():
        if column not in frame.columns:
            frame[column] = value
    frame.insert(0, "AE_ID", range(1, len(frame) + 1))
    return frame


# --- onset imputation, onset day and the 90-day window ---------------------------------------------------------


def test_derive_events_onset_and_window():
    ae = _ae(
        ["USUBJID", "AESTDTC"],
        [
            # the day before the first dose, the first-dose day
            ("S1", "2021-03-09"),
            ("S1", "2021-03-10"),
            # last dose + 90 days is inside the window, + 91 is not
            ("S1", "2021-07-19"),
            ("S1", "2021-07-20"),
            # partial dates: the first-dose month imputes the first dose; another month its first day
            ("S1", "2021-03"),
            ("S1", "2021-04"),
            ("S1", "2021-02"),
            # year only: containing the first dose, or before it
            ("S1", "2021"),
            ("S1", "2020"),
            # a missing onset is imputed to the first dose date
            ("S1", ""),
            # on the cutoff, and the day after it (kept, flagged, still treatment-emergent)
            ("S1", "2021-06-30"),
            ("S1", "2021-07-01"),
            # a subject never dosed: no flag, no onset day
            ("S9", "2021-05-01"),
            ("S9", ""),
        ],
    )
    expected = pd.DataFrame.from_records(
        [
            # ASTDT          ASTDTF ASTDY TRTEMFL WINDOW_LABEL          AFTER_CUTOFF
            ("2021-03-09", "", -1, False, "pre-treatment", False),
            ("2021-03-10", "", 1, True, "treatment-emergent", False),
            ("2021-07-19", "", 132, True, "treatment-emergent", True),
            ("2021-07-20", "", 133, False, "post-window", True),
            ("2021-03-10", "D", 1, True, "treatment-emergent", False),
            ("2021-04-01", "D", 23, True, "treatment-emergent", False),
            ("2021-02-01", "D", -37, False, "pre-treatment", False),
            ("2021-03-10", "M", 1, True, "treatment-emergent", False),
            ("2020-01-01", "M", -434, False, "pre-treatment", False),
            ("2021-03-10", "Y", 1, True, "treatment-emergent", False),
            ("2021-06-30", "", 113, True, "treatment-emergent", False),
            ("2021-07-01", "", 114, True, "treatment-emergent", True),
            ("2021-05-01", "", pd.NA, False, "not dosed", False),
            (None, "Y", pd.NA, False, "not dosed", False),
        ],
        columns=["ASTDT", "ASTDTF", "ASTDY", "TRTEMFL", "WINDOW_LABEL", "AFTER_CUTOFF"],
    ).astype({"ASTDT": "datetime64[ns]", "ASTDY": "Int64"})
    result = derive_events(ae, SUBJECTS, CUTOFF)
    pd.testing.assert_frame_equal(result[expected.columns], expected)


def test_derive_events_window_days_is_configurable():
    ae = _ae(["USUBJID", "AESTDTC"], [("S1", "2021-05-20"), ("S1", "2021-05-21")])
    result = derive_events(ae, SUBJECTS, CUTOFF, window_days=30)
    assert result["TRTEMFL"].tolist() == [True, False]
    assert result["WINDOW_LABEL"].tolist() == ["treatment-emergent", "post-window"]


# --- coding ----------------------------------------------------------------------------------------------------


def test_derive_events_uncoded_terms():
    ae = _ae(
        ["USUBJID", "AETERM", "AEDECOD", "AEBODSYS"],
        [
            ("S1", "RASH ON ARMS", "Rash", "Skin and subcutaneous tissue disorders"),  # coded
            ("S1", "itchy skin", "", ""),  # not yet coded
            ("S1", "TIRED", "Fatigue", ""),  # PT without SOC: not coded either
        ],
    )
    expected = pd.DataFrame(
        {
            "PT": ["Rash", "Uncoded: itchy skin", "Uncoded: TIRED"],
            "SOC": ["Skin and subcutaneous tissue disorders", "Uncoded", "Uncoded"],
            "UNCODED": [False, True, True],
        }
    )
    result = derive_events(ae, SUBJECTS, CUTOFF)
    pd.testing.assert_frame_equal(result[expected.columns], expected)


# --- grade -----------------------------------------------------------------------------------------------------


def test_derive_events_grade():
    ae = _ae(
        ["AETOXGR", "AESEV", "AEOUT", "AESDTH"],
        [
            ("3", "MILD", "RECOVERED/RESOLVED", "N"),  # AETOXGR wins over severity
            ("4", "", "FATAL", "Y"),  # a recorded grade is kept even for a fatal event
            ("", "MILD", "RECOVERED/RESOLVED", "N"),  # grade from severity
            ("", "MODERATE", "RECOVERED/RESOLVED", "N"),
            ("", "severe", "RECOVERED/RESOLVED", "N"),
            ("", "", "FATAL", "N"),  # fatal event without a grade: 5
            ("", "MILD", "NOT RECOVERED/NOT RESOLVED", "Y"),  # death flag wins over severity
            ("", "", "RECOVERED/RESOLVED", "N"),  # no grade, no severity: unknown
        ],
    )
    expected = pd.DataFrame(
        {
            "GRADE": pd.array([3, 4, 1, 2, 3, 5, 5, pd.NA], dtype="Int64"),
            "GRADE_SOURCE": ["AETOXGR", "AETOXGR", "severity", "severity", "severity", "fatal", "fatal", "unknown"],
        }
    )
    result = derive_events(ae.assign(USUBJID="S1"), SUBJECTS, CUTOFF)
    pd.testing.assert_frame_equal(result[expected.columns], expected)


def test_derive_events_rejects_a_grade_outside_1_to_5():
    ae = _ae(["USUBJID", "AETOXGR"], [("S1", "2"), ("S1", "6"), ("S1", "2.5")])
    with pytest.raises(ValueError, match=r"2 record\(s\) with an AETOXGR that is not a whole number 1..5"):
        derive_events(ae, SUBJECTS, CUTOFF)


# --- serious and related ---------------------------------------------------------------------------------------


def test_derive_events_serious():
    ae = _ae(
        ["AESER", "AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE"],
        [
            ("Y", "N", "N", "N", "N", "N", ""),  # AESER
            ("N", "Y", "N", "N", "N", "N", ""),  # fatal with AESER = N (as in the CDISC pilot)
            ("N", "N", "Y", "N", "N", "N", ""),  # life-threatening
            ("", "", "", "y", "", "", ""),  # hospitalisation, lower case
            ("N", "N", "N", "N", "Y", "N", ""),  # disability
            ("N", "N", "N", "N", "N", "Y", ""),  # congenital anomaly
            ("N", "N", "N", "N", "N", "N", "Y"),  # other medically important
            ("N", "N", "N", "N", "N", "N", "N"),  # not serious
            ("", "", "", "", "", "", ""),  # nothing recorded: not serious
        ],
    )
    result = derive_events(ae.assign(USUBJID="S1"), SUBJECTS, CUTOFF)
    assert result["SERIOUS"].tolist() == [True, True, True, True, True, True, True, False, False]


def test_derive_events_related():
    ae = _ae(
        ["USUBJID", "AEREL"],
        [("S1", v) for v in ("RELATED", "possible", "PROBABLE", "Y", "NOT RELATED", "UNLIKELY", "")],
    )
    assert derive_events(ae, SUBJECTS, CUTOFF)["RELATED"].tolist() == [True, True, True, True, False, False, False]
    # a study's own related set
    assert derive_events(ae, SUBJECTS, CUTOFF, related_values={"Y"})["RELATED"].tolist() == [
        False,
        False,
        False,
        True,
        False,
        False,
        False,
    ]


# --- kept columns and argument checks --------------------------------------------------------------------------


def test_derive_events_keeps_ae_columns_and_rows():
    ae = _ae(["USUBJID", "AESTDTC"], [("S1", "2021-03-09"), ("S9", "")]).assign(AESPID=["E1", "E2"])
    result = derive_events(ae, SUBJECTS, CUTOFF)
    assert list(result.columns[: len(ae.columns)]) == list(ae.columns)
    assert result["AE_ID"].tolist() == [1, 2]
    assert result["AESPID"].tolist() == ["E1", "E2"]


def test_derive_events_rejects_a_subject_not_in_subjects():
    ae = _ae(["USUBJID"], [("S1",), ("S404",)])
    with pytest.raises(ValueError, match="subjects not in `subjects` \\(e.g. 'S404'\\)"):
        derive_events(ae, SUBJECTS, CUTOFF)


# --- flag_qualifying_events ------------------------------------------------------------------------------------


EVENTS = pd.DataFrame.from_records(
    [
        # TRTEMFL AFTER_CUTOFF GRADE  SERIOUS RELATED
        (True, False, 3, True, True),
        (True, False, 2, False, True),
        (True, False, pd.NA, True, False),  # unknown grade
        (False, False, 4, True, True),  # not treatment-emergent
        (True, True, 4, True, True),  # after the cutoff
    ],
    columns=["TRTEMFL", "AFTER_CUTOFF", "GRADE", "SERIOUS", "RELATED"],
).astype({"GRADE": "Int64"})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [True, True, True, False, False]),
        ({"min_grade": 3}, [True, False, False, False, False]),  # unknown grade does not pass
        ({"serious": True}, [True, False, True, False, False]),
        ({"related": True}, [True, True, False, False, False]),
        ({"min_grade": 2, "serious": True, "related": True}, [True, False, False, False, False]),
    ],
)
def test_flag_qualifying_events_filters(kwargs, expected):
    assert flag_qualifying_events(EVENTS, **kwargs).tolist() == expected


def test_flag_qualifying_events_rejects_a_bad_grade():
    with pytest.raises(ValueError, match="min_grade"):
        flag_qualifying_events(EVENTS, min_grade=6)


# --- derive_worst_grade ----------------------------------------------------------------------------------------


def test_derive_worst_grade_over_treatment_emergent_records():
    events = pd.DataFrame.from_records(
        [
            # USUBJID SOC     PT          GRADE  TRTEMFL AFTER_CUTOFF
            ("S1", "Skin", "Rash", 1, True, False),
            ("S1", "Skin", "Rash", 3, True, False),
            ("S1", "Skin", "Rash", 4, False, False),  # pre-treatment: not counted
            ("S1", "Skin", "Rash", 5, True, True),  # after the cutoff: not counted
            ("S1", "Skin", "Pruritus", pd.NA, True, False),  # only unknown grades: NA
            ("S2", "Skin", "Rash", pd.NA, True, False),  # unknown and grade 2: 2
            ("S2", "Skin", "Rash", 2, True, False),
        ],
        columns=["USUBJID", "SOC", "PT", "GRADE", "TRTEMFL", "AFTER_CUTOFF"],
    ).astype({"GRADE": "Int64"})
    expected = pd.DataFrame.from_records(
        [("S1", "Skin", "Pruritus", pd.NA, 1), ("S1", "Skin", "Rash", 3, 2), ("S2", "Skin", "Rash", 2, 2)],
        columns=["USUBJID", "SOC", "PT", "WORST_GRADE", "N_RECORDS"],
    ).astype({"WORST_GRADE": "Int64"})
    pd.testing.assert_frame_equal(derive_worst_grade(events), expected)
