"""Event-level derivations (DOMAIN.md §3): literal AE records beside the expected derived columns."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from safety_dash.metrics.events import derive_events, derive_worst_grade, flag_qualifying_events

CUTOFF = dt.date(2021, 6, 30)

# S1: first dose 2021-03-10, last dose 2021-04-20, so the 90-day window ends 2021-07-19; its risk window (what is
#     counted in this cut) ends at the cutoff 2021-06-30.
# S2: same doses, died 2021-05-15: its risk window ends on the day of death.
# S9: in DM, never dosed.
SUBJECTS = pd.DataFrame(
    {
        "USUBJID": ["S1", "S2", "S9"],
        "TRTSDT": pd.to_datetime(["2021-03-10", "2021-03-10", None]),
        "TRTEDT": pd.to_datetime(["2021-04-20", "2021-04-20", None]),
        "DTHDT": pd.to_datetime([None, "2021-05-15", None]),
        "WINDOW_END": pd.to_datetime(["2021-06-30", "2021-05-15", None]),
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
            # ASTDT          ASTDTF ASTDY TRTEMFL WINDOW_LABEL          AFTER_CUTOFF COUNTED
            ("2021-03-09", "", -1, False, "pre-treatment", False, False),
            ("2021-03-10", "", 1, True, "treatment-emergent", False, True),
            ("2021-07-19", "", 132, True, "treatment-emergent", True, False),
            ("2021-07-20", "", 133, False, "post-window", True, False),
            ("2021-03-10", "D", 1, True, "treatment-emergent", False, True),
            ("2021-04-01", "D", 23, True, "treatment-emergent", False, True),
            ("2021-02-01", "D", -37, False, "pre-treatment", False, False),
            ("2021-03-10", "M", 1, True, "treatment-emergent", False, True),
            ("2020-01-01", "M", -434, False, "pre-treatment", False, False),
            ("2021-03-10", "Y", 1, True, "treatment-emergent", False, True),
            ("2021-06-30", "", 113, True, "treatment-emergent", False, True),
            ("2021-07-01", "", 114, True, "treatment-emergent", True, False),
            ("2021-05-01", "", pd.NA, False, "not dosed", False, False),
            (None, "Y", pd.NA, False, "not dosed", False, False),
        ],
        columns=["ASTDT", "ASTDTF", "ASTDY", "TRTEMFL", "WINDOW_LABEL", "AFTER_CUTOFF", "COUNTED"],
    ).astype({"ASTDT": "datetime64[ns]", "ASTDY": "Int64"})
    result = derive_events(ae, SUBJECTS, CUTOFF)
    pd.testing.assert_frame_equal(result[expected.columns], expected)


def test_derive_events_window_days_is_configurable():
    ae = _ae(["USUBJID", "AESTDTC"], [("S1", "2021-05-20"), ("S1", "2021-05-21")])
    result = derive_events(ae, SUBJECTS, CUTOFF, window_days=30)
    assert result["TRTEMFL"].tolist() == [True, False]
    assert result["WINDOW_LABEL"].tolist() == ["treatment-emergent", "post-window"]


def test_derive_events_onset_with_time_offset_and_unknown_components():
    # issue 8: these were quarantined; each is an ordinary SDTMIG date and a treatment-emergent AE
    ae = _ae(
        ["USUBJID", "AESTDTC"],
        [
            ("S1", "2021-05-05T14:30Z"),
            ("S1", "2021-05-05T23:30+02:00"),
            ("S1", "2021-05-05T23:30-05:00"),  # the site's date, not moved to UTC (2021-05-06)
            ("S1", "2021---15"),  # month unknown: the year, which holds the first dose
            ("S1", "2021-05-15T-:15"),  # hour unknown: the date is complete
            ("S1", "--05-15"),  # year unknown: imputed as a missing onset, to the first dose
        ],
    )
    expected = pd.DataFrame.from_records(
        [
            # ASTDT       ASTDTF ASTDY TRTEMFL
            ("2021-05-05", "", 57, True),
            ("2021-05-05", "", 57, True),
            ("2021-05-05", "", 57, True),
            ("2021-03-10", "M", 1, True),
            ("2021-05-15", "", 67, True),
            ("2021-03-10", "Y", 1, True),
        ],
        columns=["ASTDT", "ASTDTF", "ASTDY", "TRTEMFL"],
    ).astype({"ASTDT": "datetime64[ns]", "ASTDY": "Int64"})
    result = derive_events(ae, SUBJECTS, CUTOFF)
    pd.testing.assert_frame_equal(result[expected.columns], expected)


# --- an AE that ended before the first dose (admiral's rule) -----------------------------------------------------


def test_derive_events_ended_before_first_dose_is_not_treatment_emergent():
    # S1's first dose is 2021-03-10. A partial end date stands for the last day of its period.
    ae = _ae(
        ["USUBJID", "AESTDTC", "AEENDTC"],
        [
            # onset imputed to the first dose, but it ended the day before: pre-treatment
            ("S1", "2021-03", "2021-03-09"),
            ("S1", "2021-03", "2021-03-09T23:59+02:00"),
            # ended on the first-dose day: treatment-emergent
            ("S1", "2021-03", "2021-03-10"),
            # partial end 2021-02 = up to 2021-02-28: before the first dose
            ("S1", "2021", "2021-02"),
            # partial end 2021-03 = up to 2021-03-31: may have run into treatment, treatment-emergent
            ("S1", "2021", "2021-03"),
            # a missing onset (imputed to the first dose) that ended before it
            ("S1", "", "2021-01-15"),
            # an end before a complete on-treatment onset (a data query): ended before treatment, whatever its onset
            ("S1", "2021-03-12", "2021-03-01"),
            # an end date with its year unknown says nothing: treatment-emergent
            ("S1", "2021-03", "--03-01"),
        ],
    )
    expected = pd.DataFrame.from_records(
        [
            # ASTDT       TRTEMFL WINDOW_LABEL        COUNTED
            ("2021-03-10", False, "pre-treatment", False),
            ("2021-03-10", False, "pre-treatment", False),
            ("2021-03-10", True, "treatment-emergent", True),
            ("2021-03-10", False, "pre-treatment", False),
            ("2021-03-10", True, "treatment-emergent", True),
            ("2021-03-10", False, "pre-treatment", False),
            ("2021-03-12", False, "pre-treatment", False),
            ("2021-03-10", True, "treatment-emergent", True),
        ],
        columns=["ASTDT", "TRTEMFL", "WINDOW_LABEL", "COUNTED"],
    ).astype({"ASTDT": "datetime64[ns]"})
    result = derive_events(ae, SUBJECTS, CUTOFF)
    pd.testing.assert_frame_equal(result[expected.columns], expected)


# --- counted events: treatment-emergent and onset <= the risk window end; after death ---------------------------


def test_derive_events_counted_and_after_death():
    ae = _ae(
        ["USUBJID", "AESTDTC"],
        [
            # S2 died 2021-05-15: its window ends then
            ("S2", "2021-05-14"),
            ("S2", "2021-05-15"),  # on the day of death: counted
            ("S2", "2021-05-16"),  # after death: treatment-emergent by the dates, not counted, a data query
            ("S2", "2021-05"),  # partial: 2021-05-01, counted
            # S1 (alive): its window ends at the cutoff
            ("S1", "2021-06-30"),
            ("S1", "2021-07-01"),  # after the cutoff: not counted, not after death
            # never dosed: nothing counted
            ("S9", "2021-05-01"),
        ],
    )
    expected = pd.DataFrame.from_records(
        [
            # TRTEMFL AFTER_CUTOFF COUNTED AFTER_DEATH
            (True, False, True, False),
            (True, False, True, False),
            (True, False, False, True),
            (True, False, True, False),
            (True, False, True, False),
            (True, True, False, False),
            (False, False, False, False),
        ],
        columns=["TRTEMFL", "AFTER_CUTOFF", "COUNTED", "AFTER_DEATH"],
    )
    result = derive_events(ae, SUBJECTS, CUTOFF)
    pd.testing.assert_frame_equal(result[expected.columns], expected)


def test_derive_events_needs_the_risk_window_of_subjects():
    ae = _ae(["USUBJID"], [("S1",)])
    with pytest.raises(ValueError, match="`subjects` has no column WINDOW_END"):
        derive_events(ae, SUBJECTS.drop(columns="WINDOW_END"), CUTOFF)


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


def test_derive_events_terms_in_their_most_frequent_spelling():
    skin = "Skin and subcutaneous tissue disorders"
    ae = _ae(
        ["USUBJID", "AETERM", "AEDECOD", "AEBODSYS"],
        [
            # coded Rash: 'Rash' twice, 'RASH' once, 'rash' once -> Rash. The SOC (over all coded records): upper
            # case four times, 'Skin ...' twice (blanks around it do not make another spelling) -> upper case
            ("S1", "rash", "Rash", skin),
            ("S1", "rash", "RASH", skin.upper()),
            ("S1", "rash", " rash ", skin.upper()),
            ("S2", "rash", "Rash", f" {skin} "),
            # a tie (one each): the smallest in sort order, 'PRURITUS'
            ("S1", "itch", "Pruritus", skin.upper()),
            ("S2", "itch", "PRURITUS", skin.upper()),
            # uncoded records (no SOC) do not vote for a spelling: 'RASH' twice here would otherwise win
            ("S1", "RASH", "RASH", ""),
            ("S2", "RASH", "RASH", ""),
        ],
    )
    expected = pd.DataFrame.from_records(
        [
            # PT               SOC                     UNCODED
            ("Rash", skin.upper(), False),
            ("Rash", skin.upper(), False),
            ("Rash", skin.upper(), False),
            ("Rash", skin.upper(), False),
            ("PRURITUS", skin.upper(), False),
            ("PRURITUS", skin.upper(), False),
            ("Uncoded: RASH", "Uncoded", True),
            ("Uncoded: RASH", "Uncoded", True),
        ],
        columns=["PT", "SOC", "UNCODED"],
    )
    result = derive_events(ae, SUBJECTS, CUTOFF)
    pd.testing.assert_frame_equal(result[expected.columns], expected)
    # the raw columns are kept as written
    assert result["AEDECOD"].tolist()[:3] == ["Rash", "RASH", " rash "]


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
        ["AESER", "AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE", "AEOUT", "AETOXGR"],
        [
            ("Y", "N", "N", "N", "N", "N", "", "", "1"),  # AESER
            ("N", "Y", "N", "N", "N", "N", "", "", ""),  # fatal with AESER = N (as in the CDISC pilot)
            ("N", "N", "Y", "N", "N", "N", "", "", "1"),  # life-threatening
            ("", "", "", "y", "", "", "", "", "1"),  # hospitalisation, lower case
            ("N", "N", "N", "N", "Y", "N", "", "", "1"),  # disability
            ("N", "N", "N", "N", "N", "Y", "", "", "1"),  # congenital anomaly
            ("N", "N", "N", "N", "N", "N", "Y", "", "1"),  # other medically important
            ("N", "N", "N", "N", "N", "N", "N", "fatal", "1"),  # outcome fatal, every flag N (ICH E2A)
            ("N", "N", "N", "N", "N", "N", "N", "", "5"),  # grade 5 (death), every flag N
            ("N", "N", "N", "N", "N", "N", "N", "", "4"),  # grade 4 alone: not serious
            ("N", "N", "N", "N", "N", "N", "N", "RECOVERED/RESOLVED", "1"),  # not serious
            ("", "", "", "", "", "", "", "", ""),  # nothing recorded: not serious
        ],
    )
    result = derive_events(ae.assign(USUBJID="S1"), SUBJECTS, CUTOFF)
    expected = [True] * 9 + [False] * 3
    assert result["SERIOUS"].tolist() == expected


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


# --- episodes: one event over several grade-period records ------------------------------------------------------


def test_derive_events_event_id_by_episode_key():
    ae = _ae(
        ["USUBJID", "AEDECOD", "AEGRPID", "AETOXGR", "AESTDTC"],
        [
            # one Rash episode of S1 written as three grade periods (key G1; blanks and case do not matter)
            ("S1", "Rash", "G1", "1", "2021-03-15"),
            ("S1", "Rash", "G1", "3", "2021-03-25"),
            ("S1", "RASH", " G1 ", "2", "2021-04-10"),
            # the same key with another PT: another event
            ("S1", "Pruritus", "G1", "1", "2021-03-15"),
            # no key: each record is its own event
            ("S1", "Rash", "", "1", "2021-05-01"),
            ("S1", "Rash", None, "1", "2021-05-02"),
            # another key: another episode
            ("S1", "Rash", "G2", "2", "2021-05-10"),
            # the same key and PT in another subject: another episode
            ("S2", "Rash", "G1", "1", "2021-03-20"),
        ],
    )
    ae["AE_ID"] = [31, 12, 23, 40, 50, 51, 60, 70]  # the episode's EVENT_ID is its smallest AE_ID, not its first
    result = derive_events(ae, SUBJECTS, CUTOFF, episode_key="AEGRPID")
    assert result["EVENT_ID"].tolist() == [12, 12, 12, 40, 50, 51, 60, 70]
    assert result["EVENT_ID"].dtype == "int64"
    # without an episode key every record is one event
    assert derive_events(ae, SUBJECTS, CUTOFF)["EVENT_ID"].tolist() == [31, 12, 23, 40, 50, 51, 60, 70]


def test_derive_events_rejects_an_episode_key_that_is_not_a_column():
    ae = _ae(["USUBJID"], [("S1",)])
    with pytest.raises(ValueError, match="`episode_key` 'AEGRPID' is not a column of `ae`"):
        derive_events(ae, SUBJECTS, CUTOFF, episode_key="AEGRPID")


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
        # EVENT_ID COUNTED GRADE  SERIOUS RELATED
        (1, True, 3, True, True),
        (2, True, 2, False, True),
        (3, True, pd.NA, True, False),  # unknown grade
        (4, False, 4, True, True),  # not counted (pre-treatment, after the window, the cutoff or death)
        # an episode: grade 1 then grade 3 (serious); the episode's worst grade and seriousness decide for each
        # of its counted records, so its earliest onset stays the onset of a grade >= 3 event
        (10, True, 1, False, False),
        (10, True, 3, True, False),
        # an episode whose grade 4 record is not counted in this cut: its worst counted grade is 1
        (11, True, 1, False, True),
        (11, False, 4, True, True),
    ],
    columns=["EVENT_ID", "COUNTED", "GRADE", "SERIOUS", "RELATED"],
).astype({"GRADE": "Int64"})


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, [True, True, True, False, True, True, True, False]),
        ({"min_grade": 3}, [True, False, False, False, True, True, False, False]),  # unknown grade does not pass
        ({"serious": True}, [True, False, True, False, True, True, False, False]),
        ({"related": True}, [True, True, False, False, False, False, True, False]),
        ({"min_grade": 2, "serious": True, "related": True}, [True, False, False, False, False, False, False, False]),
    ],
)
def test_flag_qualifying_events_filters(kwargs, expected):
    assert flag_qualifying_events(EVENTS, **kwargs).tolist() == expected


def test_flag_qualifying_events_needs_counted():
    with pytest.raises(ValueError, match="`events` has no column COUNTED"):
        flag_qualifying_events(EVENTS.drop(columns="COUNTED"))


def test_flag_qualifying_events_without_event_id_each_record_is_an_event():
    # the episodes' records then qualify one by one: grade >= 3 keeps the grade 3 record only
    result = flag_qualifying_events(EVENTS.drop(columns="EVENT_ID"), min_grade=3)
    assert result.tolist() == [True, False, False, False, False, True, False, False]


def test_flag_qualifying_events_rejects_a_bad_grade():
    with pytest.raises(ValueError, match="min_grade"):
        flag_qualifying_events(EVENTS, min_grade=6)


# --- derive_worst_grade ----------------------------------------------------------------------------------------


def test_derive_worst_grade_over_counted_records():
    events = pd.DataFrame.from_records(
        [
            # USUBJID SOC     PT          GRADE  COUNTED
            ("S1", "Skin", "Rash", 1, True),
            ("S1", "Skin", "Rash", 3, True),
            ("S1", "Skin", "Rash", 4, False),  # not counted (pre-treatment): not its worst grade
            ("S1", "Skin", "Rash", 5, False),  # not counted (after the cutoff, or after death)
            ("S1", "Skin", "Pruritus", pd.NA, True),  # only unknown grades: NA
            ("S2", "Skin", "Rash", pd.NA, True),  # unknown and grade 2: 2
            ("S2", "Skin", "Rash", 2, True),
            ("S3", "Skin", "Rash", 2, False),  # nothing counted: no row
        ],
        columns=["USUBJID", "SOC", "PT", "GRADE", "COUNTED"],
    ).astype({"GRADE": "Int64"})
    expected = pd.DataFrame.from_records(
        [("S1", "Skin", "Pruritus", pd.NA, 1), ("S1", "Skin", "Rash", 3, 2), ("S2", "Skin", "Rash", 2, 2)],
        columns=["USUBJID", "SOC", "PT", "WORST_GRADE", "N_RECORDS"],
    ).astype({"WORST_GRADE": "Int64"})
    pd.testing.assert_frame_equal(derive_worst_grade(events), expected)
