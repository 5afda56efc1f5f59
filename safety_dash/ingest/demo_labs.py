"""Laboratory values of the demo study (SDTM LB), consistent with its adverse events.

Every dosed subject has the liver panel, creatinine, blood counts, potassium, glucose and TSH at each infusion
(the first one flagged as baseline, LBBLFL = Y), drawn around a subject's own normal level. Adverse events leave
their trace: transaminases rise with ALT / AST increased and hepatitis (by the event's grade, with an unscheduled
sample at onset), TSH with hypothyroidism (and falls with hyperthyroidism), haemoglobin, platelets and potassium
fall with anaemia, platelet count decreased and hypokalaemia, creatinine rises with nephritis. One subject with
grade >= 2 hepatitis first reported in cut 3 also has bilirubin above 2 x ULN at its onset: the demo's potential
Hy's law case. Deterministic for a seed; a record's LBSEQ is the same in every cut.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd

LB_COLUMNS = ("STUDYID DOMAIN USUBJID LBSEQ LBTESTCD LBTEST LBCAT LBORRES LBORRESU LBSTRESC LBSTRESN LBSTRESU "
              "LBSTNRLO LBSTNRHI LBNRIND LBBLFL VISITNUM VISIT LBDTC").split()  # fmt: skip
LB_LABELS = {
    "LBSEQ": "Sequence Number", "LBTESTCD": "Lab Test or Examination Short Name",
    "LBTEST": "Lab Test or Examination Name", "LBCAT": "Category for Lab Test", "LBORRES": "Result in Original Units",
    "LBORRESU": "Original Units", "LBSTRESC": "Character Result/Finding in Std Format",
    "LBSTRESN": "Numeric Result/Finding in Standard Units", "LBSTRESU": "Standard Units",
    "LBSTNRLO": "Normal Range Lower Limit-Std Units", "LBSTNRHI": "Normal Range Upper Limit-Std Units",
    "LBNRIND": "Reference Range Indicator", "LBBLFL": "Baseline Flag", "VISITNUM": "Visit Number",
    "LBDTC": "Date/Time of Specimen Collection",
}  # fmt: skip

# LBTESTCD: name, category, unit, low limit, high limit, subject's normal level drawn uniformly from (lo, hi)
TESTS = {
    "ALT": ("Alanine Aminotransferase", "CHEMISTRY", "U/L", 7.0, 40.0, (12.0, 30.0)),
    "AST": ("Aspartate Aminotransferase", "CHEMISTRY", "U/L", 8.0, 40.0, (12.0, 30.0)),
    "BILI": ("Bilirubin", "CHEMISTRY", "umol/L", 3.0, 21.0, (5.0, 14.0)),
    "ALP": ("Alkaline Phosphatase", "CHEMISTRY", "U/L", 40.0, 130.0, (50.0, 105.0)),
    "CREAT": ("Creatinine", "CHEMISTRY", "umol/L", 45.0, 110.0, (55.0, 90.0)),
    "K": ("Potassium", "CHEMISTRY", "mmol/L", 3.5, 5.1, (3.9, 4.7)),
    "GLUC": ("Glucose", "CHEMISTRY", "mmol/L", 3.9, 6.1, (4.4, 5.6)),
    "HGB": ("Hemoglobin", "HEMATOLOGY", "g/L", 120.0, 160.0, (126.0, 150.0)),
    "NEUT": ("Neutrophils", "HEMATOLOGY", "10^9/L", 1.8, 7.5, (2.6, 5.5)),
    "PLAT": ("Platelets", "HEMATOLOGY", "10^9/L", 150.0, 400.0, (190.0, 340.0)),
    "TSH": ("Thyrotropin", "ENDOCRINOLOGY", "mIU/L", 0.4, 4.0, (0.9, 2.8)),
}
# An adverse event's trace in the lab: test, and the value per grade as a multiple of the high limit (or, for a
# fall, of the low limit).
HEPATIC = ("Alanine aminotransferase increased", "Aspartate aminotransferase increased", "Hepatitis")
RISE_XULN = {1: 2.2, 2: 4.0, 3: 8.5, 4: 22.0, 5: 22.0}
FALLS = {  # PT: test, value per grade (absolute, in the test's unit)
    "Anaemia": ("HGB", {1: 108.0, 2: 92.0, 3: 72.0, 4: 60.0, 5: 60.0}),
    "Platelet count decreased": ("PLAT", {1: 110.0, 2: 65.0, 3: 38.0, 4: 18.0, 5: 18.0}),
    "Hypokalaemia": ("K", {1: 3.3, 2: 3.2, 3: 2.8, 4: 2.3, 5: 2.3}),
}
HYS_LAW_BILI_XULN, HYS_LAW_ALP_XULN = 3.1, 1.3


def _event_days(event) -> tuple[dt.date, dt.date | None]:
    """The days an event's lab trace lasts: from onset to its end (None: not resolved, it lasts)."""
    return event.onset, event.end


def _sample_days(subject, horizon: dt.date) -> list[tuple[dt.date, str, float]]:
    """(date, visit, visit number) of every sample: each infusion, and one unscheduled sample at a traced onset."""
    days = [(day, f"CYCLE {n} DAY 1", float(n)) for n, day in enumerate(subject.doses, start=1)]
    traced = set(HEPATIC) | set(FALLS) | {"Hypothyroidism", "Hyperthyroidism", "Nephritis"}
    for event in subject.events:
        onset = event.onset + dt.timedelta(days=1)
        if event.decod in traced and subject.first_dose is not None and subject.first_dose < onset <= horizon:
            if subject.death is None or onset <= subject.death:
                days.append((onset, "UNSCHEDULED", 99.0))
    return sorted(set(days))


def choose_hys_law_subject(subjects: Sequence, after: dt.date, until: dt.date):
    """The subject whose grade >= 2 hepatitis (ALT and AST then above 3 x ULN), first reported after ``after`` and
    by ``until``, starts earliest."""
    cases = [
        (e.onset, s.usubjid, s)
        for s in subjects
        for e in s.events
        if e.decod == "Hepatitis" and e.grade >= 2 and after < e.onset <= until and s.first_dose is not None
    ]
    return min(cases)[2] if cases else None


def lb_frame(subjects: Sequence, cutoff: dt.date, horizon: dt.date, seed: int, studyid: str, hys_law) -> pd.DataFrame:
    """LB as known at ``cutoff``: every sample of the study's history up to ``horizon``, kept when dated by the
    cutoff. ``hys_law`` is the subject of :func:`choose_hys_law_subject` (or None)."""
    rows = []
    for index, subject in enumerate(subjects):
        if subject.first_dose is None:
            continue
        rng = np.random.default_rng([seed, 13, index])
        normal = {code: rng.uniform(*spec[5]) for code, spec in TESTS.items()}
        seq = 0
        for day, visit, visitnum in _sample_days(subject, horizon):
            for code, (name, category, unit, low, high, _) in TESTS.items():
                seq += 1
                if day > cutoff:
                    continue
                value = _value(subject, code, day, normal[code] * rng.normal(1.0, 0.07), low, high, hys_law)
                text = f"{value:.4g}"
                rows.append({
                    "STUDYID": studyid, "DOMAIN": "LB", "USUBJID": subject.usubjid, "LBSEQ": float(seq),
                    "LBTESTCD": code, "LBTEST": name, "LBCAT": category, "LBORRES": text, "LBORRESU": unit,
                    "LBSTRESC": text, "LBSTRESN": float(text), "LBSTRESU": unit, "LBSTNRLO": low, "LBSTNRHI": high,
                    "LBNRIND": "HIGH" if float(text) > high else "LOW" if float(text) < low else "NORMAL",
                    "LBBLFL": "Y" if day == subject.first_dose and visitnum == 1.0 else "",
                    "VISITNUM": visitnum, "VISIT": visit, "LBDTC": day.isoformat(),
                })  # fmt: skip
    return pd.DataFrame(rows, columns=LB_COLUMNS)


def _value(subject, code: str, day: dt.date, usual: float, low: float, high: float, hys_law) -> float:
    """The sample's value: the subject's usual level, moved by the adverse events under way on ``day``."""
    value = usual
    for event in subject.events:
        start, end = _event_days(event)
        if day < start or (end is not None and day > end):
            continue
        if code in ("ALT", "AST") and event.decod in HEPATIC:
            value = max(value, RISE_XULN[event.grade] * high)
        elif code == "BILI" and event.decod == "Hepatitis":
            bump = HYS_LAW_BILI_XULN if subject is hys_law else 1.3
            value = max(value, bump * high)
        elif code == "ALP" and event.decod == "Hepatitis" and subject is hys_law:
            value = max(value, HYS_LAW_ALP_XULN * high)
        elif code == "TSH" and event.decod == "Hypothyroidism":
            value = max(value, (2.5 + event.grade) * high)
        elif code == "TSH" and event.decod == "Hyperthyroidism":
            value = min(value, 0.05)
        elif code == "CREAT" and event.decod == "Nephritis":
            value = max(value, (1.2 + event.grade) * high)
        elif event.decod in FALLS and FALLS[event.decod][0] == code:
            value = min(value, FALLS[event.decod][1][event.grade])
    return value
