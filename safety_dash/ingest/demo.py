"""A synthetic study shaped like the QL1706 phase I/Ib trial, written as three SDTM data cuts.

QL1706 (iparomlimab and tuvonralimab, a PD-1/CTLA-4 bifunctional antibody) is given IV every 3 weeks in
advanced solid tumours (DOMAIN.md §5). :func:`write_demo_study` writes ``cut1``, ``cut2`` and ``cut3``
(cutoffs 2022-03-31, 2022-09-30, 2023-03-31), each a full extract of ``dm.xpt``, ``ex.xpt``, ``ae.xpt``
(SAS transport v5) and ``cutoff.txt``. One true study history is simulated; each cut shows what was known at
its cutoff: subjects consented by then, doses and AE onsets up to then, AE end dates, grades, outcomes and
deaths as of then. AESEQ is numbered by true onset per subject, so it stays stable across cuts.

Cohorts (DM ``COHORT``): phase I escalation "Ph I 0.3 mg/kg" .. "Ph I 10 mg/kg" (two of the first six at
10 mg/kg have a grade 3 immune-related event within 21 days, DLT-like; AE ``AEDLT`` = Y flags the DLTs: every grade
>= 3 related event of an escalation subject with onset on days 1-21, six in cut 3 at the default size, drawn from no
random number) and phase Ib at 5 mg/kg by tumour type
"Ph Ib NSCLC", "Ph Ib NPC", "Ph Ib Cervical", "Ph Ib Other". The AE profile follows the published phase I
results roughly (rash, hypothyroidism, pruritus ~13-20 %, grade >= 3 TRAEs ~16 %); onset times per PT.

Planted on purpose (the returned summary's ``planted`` lists them with USUBJID and AESEQ):

- bad rows, cut2 only (the ingester must quarantine them; both are corrected in cut3):
  one AE whose USUBJID lost its last hyphen (not in DM), one AE with AESTDTC ``2022-13-45``;
- data queries, every cut (they load with a flag; each is fixed in the next cut, a "changed" record):
  the most recent eligible AE is not yet coded (AEDECOD and AEBODSYS empty), the next one has no AETOXGR and
  no AESEV;
- two duplicate AEs in cut1 that data cleaning deletes from cut2 ("removed"; their AESEQ is not reused);
- partial onset dates: two in the subject's first-dose month (``YYYY-MM``), one other month, one year only;
- two subjects consented but never dosed; a few pre-treatment AEs; AEs after the last dose, within and
  beyond 90 days; ongoing subjects (RFXENDTC empty) and ongoing AEs (AEENDTC empty);
- three grade 5 events: a pneumonitis in cut1, a myocarditis first in cut2, and a pneumonitis that is grade 3
  and ongoing at cut2 and becomes fatal (grade 5, AEOUT FATAL) in cut3;
- two signals for the Signals page (DOMAIN.md §7), drawn from a random stream of their own so that everything
  above is the same without them: hepatitis *rising* in "Ph Ib NSCLC" (a 5 mg/kg cohort), where one in five
  subjects at risk after cut2's cutoff gets a grade 1-2 hepatitis before cut3's; and "Ph Ib NPC" *out of line*
  for hypothyroidism (about three times the other cohorts' rate, in every cut). With the default arguments the
  signals of cut2 flag only the latter, and those of cut3 only these two (hepatitis rising in NSCLC and in ALL,
  NSCLC out of line for it, NPC for hypothyroidism); tests/ingest/test_demo.py lists the rows.

pyreadstat stamps the write time into the transport header; :func:`save_xpt` overwrites that stamp with the
cut's cutoff date, so the same arguments give byte-identical files (with the same numpy version).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

from safety_dash.ingest.demo_labs import LB_LABELS, choose_hys_law_subject, lb_frame

STUDYID = "QL1706-DEMO"
CUTOFFS = {"cut1": dt.date(2022, 3, 31), "cut2": dt.date(2022, 9, 30), "cut3": dt.date(2023, 3, 31)}
HORIZON = CUTOFFS["cut3"]
MIN_SUBJECTS = 40

SKIN, ENDO, HEP = "Skin and subcutaneous tissue disorders", "Endocrine disorders", "Hepatobiliary disorders"
INV, GI = "Investigations", "Gastrointestinal disorders"
RESP, GEN = "Respiratory, thoracic and mediastinal disorders", "General disorders and administration site conditions"
BLOOD, METAB = "Blood and lymphatic system disorders", "Metabolism and nutrition disorders"
RENAL, NERV, CARD = "Renal and urinary disorders", "Nervous system disorders", "Cardiac disorders"
MUSC, INF = "Musculoskeletal and connective tissue disorders", "Infections and infestations"
INJ = "Injury, poisoning and procedural complications"

# PT, SOC, subject probability at 5 mg/kg, share grade >= 3, onset median (days from first dose; 0 = at an
# infusion), onset lognormal sigma, duration median (days; 0 = chronic, mostly unresolved), immune-related,
# probability related, investigator terms.
PT_SPECS = [
    ("Rash", SKIN, 0.20, 0.04, 28, 0.45, 21, True, 0.95, "rash|skin rash|Rash on trunk|RASH"),
    ("Pruritus", SKIN, 0.14, 0.02, 30, 0.5, 30, True, 0.9, "pruritus|itching|itchy skin"),
    ("Hypothyroidism", ENDO, 0.14, 0.01, 75, 0.3, 0, True, 0.95, "hypothyroidism|hypothyroid|low thyroid function"),
    ("Hyperthyroidism", ENDO, 0.07, 0.02, 45, 0.35, 40, True, 0.95, "hyperthyroidism|thyrotoxicosis"),
    ("Hypophysitis", ENDO, 0.01, 0.4, 90, 0.4, 0, True, 0.95, "hypophysitis"),
    ("Alanine aminotransferase increased", INV, 0.12, 0.12, 45, 0.4, 21, True, 0.9, "ALT increased|alt elevated"),
    ("Aspartate aminotransferase increased", INV, 0.11, 0.1, 45, 0.4, 21, True, 0.9, "AST increased|ast elevated"),
    ("Hepatitis", HEP, 0.02, 0.6, 55, 0.4, 30, True, 0.95, "immune-mediated hepatitis|hepatitis"),
    ("Diarrhoea", GI, 0.10, 0.06, 40, 0.6, 7, True, 0.8, "diarrhea|diarrhoea|loose stools"),
    ("Colitis", GI, 0.02, 0.5, 60, 0.45, 30, True, 0.95, "colitis|immune-related colitis"),
    ("Nausea", GI, 0.06, 0.02, 20, 0.8, 5, False, 0.4, "nausea|NAUSEA"),
    ("Pneumonitis", RESP, 0.04, 0.35, 100, 0.45, 45, True, 0.95, "pneumonitis|immune related pneumonitis"),
    ("Cough", RESP, 0.06, 0.0, 40, 0.9, 20, False, 0.1, "cough|dry cough"),
    ("Pyrexia", GEN, 0.12, 0.03, 12, 0.8, 3, False, 0.7, "fever|pyrexia|FEVER"),
    ("Fatigue", GEN, 0.12, 0.08, 30, 0.9, 30, False, 0.6, "fatigue|tiredness|asthenia"),
    ("Infusion related reaction", INJ, 0.06, 0.1, 0, 0, 1, False, 0.95, "infusion reaction|infusion related reaction"),
    ("Anaemia", BLOOD, 0.14, 0.2, 50, 0.8, 60, False, 0.7, "anemia|anaemia|low haemoglobin"),
    ("Platelet count decreased", INV, 0.07, 0.25, 40, 0.7, 21, False, 0.6, "thrombocytopenia|platelets decreased"),
    ("Decreased appetite", METAB, 0.10, 0.08, 30, 0.9, 30, False, 0.5, "decreased appetite|anorexia"),
    ("Hyperglycaemia", METAB, 0.05, 0.15, 60, 0.8, 30, False, 0.5, "hyperglycemia|high blood sugar"),
    ("Hypokalaemia", METAB, 0.04, 0.2, 50, 0.8, 10, False, 0.4, "hypokalemia|low potassium"),
    ("Proteinuria", RENAL, 0.05, 0.02, 60, 0.8, 40, False, 0.5, "proteinuria|protein in urine"),
    ("Nephritis", RENAL, 0.01, 0.4, 80, 0.4, 40, True, 0.95, "nephritis|immune-mediated nephritis"),
    ("Headache", NERV, 0.04, 0.0, 20, 0.9, 3, False, 0.3, "headache"),
    ("Dizziness", NERV, 0.03, 0.0, 25, 0.9, 5, False, 0.3, "dizziness|dizzy"),
    ("Myocarditis", CARD, 0.005, 0.6, 30, 0.4, 30, True, 0.95, "myocarditis|immune-mediated myocarditis"),
    ("Arthralgia", MUSC, 0.05, 0.02, 60, 0.8, 30, False, 0.5, "arthralgia|joint pain"),
    ("Myalgia", MUSC, 0.03, 0.0, 40, 0.8, 14, False, 0.5, "myalgia|muscle pain"),
    ("Pneumonia", INF, 0.04, 0.5, 90, 0.9, 14, False, 0.05, "pneumonia|lung infection"),
    ("Upper respiratory tract infection", INF, 0.05, 0.0, 80, 0.9, 10, False, 0.05, "URTI|common cold"),
]
SPECS = {row[0]: row for row in PT_SPECS}
BASELINE_PTS = ("Fatigue", "Decreased appetite", "Cough", "Anaemia")
RECURRING_PTS = {"Rash", "Pruritus", "Diarrhoea", "Pyrexia", "Infusion related reaction", "Nausea"}
DOSE_FACTORS = {0.3: (0.5, 0.6), 1.0: (0.7, 0.8), 3.0: (0.85, 0.9), 5.0: (1.0, 1.0), 10.0: (1.3, 1.8)}
PHASE_IB_SHARES = {"Ph Ib NSCLC": 0.3, "Ph Ib NPC": 0.2, "Ph Ib Cervical": 0.2, "Ph Ib Other": 0.3}
MALE_SHARE = {"Ph Ib NSCLC": 0.7, "Ph Ib NPC": 0.75, "Ph Ib Cervical": 0.0, "Ph Ib Other": 0.55}
SEVERITY = {1: "MILD", 2: "MODERATE", 3: "SEVERE", 4: "SEVERE", 5: "SEVERE"}
# (PT, target onset, days from onset to death, grade before death or None) for the three grade 5 events.
FATAL_PLANTS = [
    ("Pneumonitis", CUTOFFS["cut1"] - dt.timedelta(days=50), 18, None),
    ("Myocarditis", CUTOFFS["cut2"] - dt.timedelta(days=90), 9, None),
    ("Pneumonitis", CUTOFFS["cut2"] - dt.timedelta(days=12), 28, 3),
]
# The two signals of the Signals page (DOMAIN.md §7), drawn from a random stream of their own so that the rest of
# the study is the same with or without them. Rising: (PT, cohort, share of the cohort's subjects still at risk
# after cut2's cutoff who get a first such event between cut2's and cut3's cutoffs). Out of line: (PT, cohort,
# probability that a subject of the cohort without the PT gets one at the PT's usual onset times, in every cut).
RISING_SIGNAL = ("Hepatitis", "Ph Ib NSCLC", 0.2)
COHORT_SIGNAL = ("Hypothyroidism", "Ph Ib NPC", 0.25)
# Dose-limiting toxicities (DOMAIN.md §6): AEDLT = Y on a grade >= 3 related event of a phase I escalation subject
# with onset in the DLT period (days 1..DLT_DAYS from the first dose), as the cut knows its grade. Derived from the
# events, drawing no random number, so every other value is the same with or without the flag.
DLT_DAYS = 21
ESCALATION_PREFIX = "Ph I "
RELATED_VALUES = ("RELATED", "PROBABLE", "POSSIBLE")

LABELS = {
    "STUDYID": "Study Identifier", "DOMAIN": "Domain Abbreviation", "USUBJID": "Unique Subject Identifier",
    "SUBJID": "Subject Identifier for the Study", "RFSTDTC": "Subject Reference Start Date/Time",
    "RFXSTDTC": "Date/Time of First Study Treatment", "RFXENDTC": "Date/Time of Last Study Treatment",
    "RFICDTC": "Date/Time of Informed Consent", "DTHDTC": "Date/Time of Death", "DTHFL": "Subject Death Flag",
    "SITEID": "Study Site Identifier", "AGE": "Age", "AGEU": "Age Units", "SEX": "Sex", "RACE": "Race",
    "ARMCD": "Planned Arm Code", "ARM": "Description of Planned Arm", "ACTARMCD": "Actual Arm Code",
    "ACTARM": "Description of Actual Arm", "COUNTRY": "Country", "COHORT": "Cohort",
    "EXSEQ": "Sequence Number", "EXTRT": "Name of Treatment", "EXDOSE": "Dose", "EXDOSU": "Dose Units",
    "EXDOSFRM": "Dose Form", "EXDOSFRQ": "Dosing Frequency per Interval", "EXROUTE": "Route of Administration",
    "VISIT": "Visit Name", "EXSTDTC": "Start Date/Time of Treatment", "EXENDTC": "End Date/Time of Treatment",
    "AESEQ": "Sequence Number", "AESPID": "Sponsor-Defined Identifier",
    "AETERM": "Reported Term for the Adverse Event", "AEDECOD": "Dictionary-Derived Term",
    "AEBODSYS": "Body System or Organ Class", "AETOXGR": "Standard Toxicity Grade", "AESEV": "Severity/Intensity",
    "AESER": "Serious Event", "AESDTH": "Results in Death", "AESHOSP": "Requires or Prolongs Hospitalization",
    "AESLIFE": "Is Life Threatening", "AEREL": "Causality", "AEACN": "Action Taken with Study Treatment",
    "AEOUT": "Outcome of Adverse Event", "AESTDTC": "Start Date/Time of Adverse Event",
    "AEENDTC": "End Date/Time of Adverse Event", "AEDLT": "Dose Limiting Toxicity",
}  # fmt: skip
LABELS |= LB_LABELS
DM_COLUMNS = "STUDYID DOMAIN USUBJID SUBJID RFSTDTC RFXSTDTC RFXENDTC RFICDTC DTHDTC DTHFL SITEID AGE AGEU SEX RACE"
DM_COLUMNS = (DM_COLUMNS + " ARMCD ARM ACTARMCD ACTARM COUNTRY COHORT").split()
EX_COLUMNS = "STUDYID DOMAIN USUBJID EXSEQ EXTRT EXDOSE EXDOSU EXDOSFRM EXDOSFRQ EXROUTE VISIT EXSTDTC EXENDTC".split()
AE_COLUMNS = "STUDYID DOMAIN USUBJID AESEQ AESPID AETERM AEDECOD AEBODSYS AETOXGR AESEV AESER AESDTH AESHOSP"
AE_COLUMNS = (AE_COLUMNS + " AESLIFE AEREL AEACN AEOUT AESTDTC AEENDTC AEDLT").split()


@dataclass
class Event:
    """One adverse event of the true history; what a cut shows of it is decided at the cut's cutoff."""

    decod: str
    term: str
    onset: dt.date
    grade: int
    grade0: int  # grade before `escalate`
    escalate: dt.date | None = None
    end: dt.date | None = None
    rel: str = "NOT RELATED"
    acn: str = "DOSE NOT CHANGED"
    hosp: bool = False
    fatal: bool = False
    seq: int = 0
    stdtc: str | None = None  # a partial onset date, shown instead of `onset`
    overrides: dict[str, dict[str, str]] = field(default_factory=dict)  # per cut name: column -> value
    only_in: tuple[str, ...] | None = None
    planted: bool = False  # one of the planted signals' events: never picked for a record edit


@dataclass
class Subject:
    """One subject's true course: enrolment, doses, treatment end, death and adverse events."""

    usubjid: str
    siteid: str
    cohort: str
    dose: float
    age: int
    sex: str
    consent: dt.date
    first_dose: dt.date | None
    doses: list[dt.date] = field(default_factory=list)
    end: dt.date | None = None  # when the end of treatment became known
    death: dt.date | None = None
    events: list[Event] = field(default_factory=list)
    forced: list[Event] = field(default_factory=list)


def write_demo_study(
    outdir: Path, n_subjects: int = 500, seed: int = 1706, progress: Callable[[str], None] | None = None
) -> dict:
    """Write the QL1706-DEMO study as ``outdir/cut1..cut3`` (dm/ex/ae/lb .xpt and cutoff.txt); return a summary.

    The summary holds, per cut, its cutoff date, folder and row counts per domain, and under ``planted`` the
    bad rows, data queries, removed records, partial dates and grade 5 events placed on purpose. ``progress``,
    when given, is called with one line after the courses are simulated and after each cut is written.
    """
    if isinstance(n_subjects, bool) or not isinstance(n_subjects, int) or n_subjects < MIN_SUBJECTS:
        raise ValueError(
            f"n_subjects must be a whole number >= {MIN_SUBJECTS} (got {n_subjects!r}): every cohort needs subjects"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be a whole number (got {seed!r}); use the same seed to get the same files")
    outdir = Path(outdir)
    rng = np.random.default_rng(seed)
    subjects = enrol_subjects(n_subjects, rng)
    planted = plant_subject_events(subjects, rng)
    for subject in subjects:
        simulate_course(subject, rng)
    if progress is not None:
        progress(f"simulated the courses of {n_subjects} subjects")
    signals = plant_signals(subjects, np.random.default_rng([seed, 7]))
    for subject in subjects:
        subject.events.sort(key=lambda e: (e.onset, e.decod))
        for seq, event in enumerate(subject.events, start=1):
            event.seq = seq
    planted.update(plant_record_edits(subjects, rng))
    fatal = [
        (s.usubjid, e.seq, e.decod, next(k for k, c in CUTOFFS.items() if e.end <= c)) for s, e in planted["fatal"]
    ]
    planted["fatal"] = [dict(zip(("usubjid", "aeseq", "aedecod", "first_cut"), row, strict=True)) for row in fatal]
    for kind, pairs in signals.items():
        keys = ("usubjid", "aeseq", "aedecod", "cohort")
        planted[kind] = [dict(zip(keys, (s.usubjid, e.seq, e.decod, s.cohort), strict=True)) for s, e in pairs]
    hys_law = choose_hys_law_subject(subjects, CUTOFFS["cut2"], CUTOFFS["cut3"])
    planted["hys_law"] = [hys_law.usubjid] if hys_law is not None else []
    summary = {"studyid": STUDYID, "n_subjects": n_subjects, "seed": seed, "cuts": {}, "planted": planted}
    for name, cutoff in CUTOFFS.items():
        folder = outdir / name
        folder.mkdir(parents=True, exist_ok=True)
        frames = {"dm": dm_frame(subjects, cutoff), "ex": ex_frame(subjects, cutoff), "ae": ae_frame(subjects, name)}
        frames["lb"] = lb_frame(subjects, cutoff, HORIZON, seed, STUDYID, hys_law)
        for domain, frame in frames.items():
            save_xpt(frame, folder / f"{domain}.xpt", domain.upper(), cutoff)
        (folder / "cutoff.txt").write_text(cutoff.isoformat() + "\n", encoding="utf-8")
        rows = {domain: len(frame) for domain, frame in frames.items()}
        summary["cuts"][name] = {"cutoff": cutoff.isoformat(), "path": str(folder), "rows": rows}
        if progress is not None:
            progress(f"wrote {folder}: " + ", ".join(f"{n} {d.upper()}" for d, n in rows.items()) + " rows")
    return summary


def enrol_subjects(n_subjects: int, rng: np.random.Generator) -> list[Subject]:
    """Cohorts, sites, demographics and consent dates: escalation from 2021-03, phase Ib to 2023-02."""
    first = {0.3: 3, 1.0: 3, 3.0: 6, 5.0: 6, 10.0: 6}
    total = {0.3: 3, 1.0: 3, 3.0: max(6, round(0.04 * n_subjects))}
    total |= {5.0: max(6, round(0.08 * n_subjects)), 10.0: max(6, round(0.05 * n_subjects))}
    plan: list[tuple[str, float, dt.date]] = []
    for level, dose in enumerate(total):
        start = dt.date(2021, 3, 1) + dt.timedelta(days=30 * level)
        for i in range(total[dose]):
            if i < first[dose]:
                day = start + dt.timedelta(days=int(i * 12 / first[dose]))
            else:
                day = dt.date(2021, 8, 15) + dt.timedelta(days=int(rng.integers(0, 170)))
            plan.append((f"Ph I {dose:g} mg/kg", dose, day))
    n_ib = n_subjects - len(plan)
    cohorts = rng.choice(list(PHASE_IB_SHARES), size=n_ib, p=list(PHASE_IB_SHARES.values()))
    for cohort in cohorts:
        plan.append((str(cohort), 5.0, dt.date(2021, 9, 1) + dt.timedelta(days=int(rng.integers(0, 532)))))
    plan.sort(key=lambda item: item[2])  # stable: escalation subjects keep their order within a day
    site_weights = rng.dirichlet(np.full(15, 2.0))
    subjects = []
    for number, (cohort, dose, consent) in enumerate(plan, start=1):
        site = f"{int(rng.choice(15, p=site_weights)) + 1:02d}"
        age, sex = int(np.clip(rng.normal(56, 10), 18, 80)), "M" if rng.random() < MALE_SHARE.get(cohort, 0.6) else "F"
        first_dose = consent + dt.timedelta(days=int(rng.integers(5, 22)))
        subjects.append(Subject(f"{STUDYID}-{site}-{number:04d}", site, cohort, dose, age, sex, consent, first_dose))
    return subjects


def plant_subject_events(subjects: list[Subject], rng: np.random.Generator) -> dict:
    """Never-dosed subjects, the two DLT-like events at 10 mg/kg and the three grade 5 events."""
    phase_ib = [s for s in subjects if s.cohort.startswith("Ph Ib")]
    never = [phase_ib[int(i)] for i in rng.choice(len(phase_ib), size=2, replace=False)]
    for subject in never:
        subject.first_dose = None
    dlt = [s for s in subjects if s.dose == 10.0][:6]
    for subject, decod, day in ((dlt[1], "Rash", 12), (dlt[4], "Alanine aminotransferase increased", 15)):
        onset = subject.first_dose + dt.timedelta(days=day)
        subject.forced.append(_event(decod, onset, 3, rng, acn="DRUG INTERRUPTED", rel="RELATED"))
    fatal = []
    used = {s.usubjid for s in never + dlt}
    for decod, onset, to_death, grade0 in FATAL_PLANTS:
        lo, hi = (45, 150) if decod == "Pneumonitis" else (14, 60)
        latest, earliest = onset - dt.timedelta(days=lo), onset - dt.timedelta(days=hi)
        dosed = [s for s in subjects if s.first_dose and s.usubjid not in used and s.first_dose <= latest]
        window = [s for s in dosed if s.first_dose >= earliest]
        preferred = [s for s in window if s.cohort.startswith("Ph Ib")] or window
        subject = preferred[int(rng.integers(len(preferred)))] if preferred else max(dosed, key=lambda s: s.first_dose)
        used.add(subject.usubjid)
        event = _event(decod, onset, 5, rng, acn="DRUG WITHDRAWN", rel="RELATED")
        event.fatal, event.hosp = True, True
        subject.death = event.end = onset + dt.timedelta(days=to_death)
        if grade0 is not None:
            event.grade0, event.escalate = grade0, subject.death
        subject.forced.append(event)
        fatal.append((subject, event))
    return {"never_dosed": [s.usubjid for s in never], "dlt": [s.usubjid for s in (dlt[1], dlt[4])], "fatal": fatal}


def _event(decod: str, onset: dt.date, grade: int, rng: np.random.Generator, **values) -> Event:
    terms = SPECS[decod][9].split("|")
    event = Event(decod=decod, term=terms[int(rng.integers(len(terms)))], onset=onset, grade=grade, grade0=grade)
    for name, value in values.items():
        setattr(event, name, value)
    return event


def _draw_grade(share_g3: float, rng: np.random.Generator) -> int:
    if rng.random() < share_g3:
        return 4 if rng.random() < 0.15 else 3
    return 1 if rng.random() < 0.65 else 2


def _draw_rel(prob_related: float, immune: bool, rng: np.random.Generator) -> str:
    if rng.random() < prob_related:
        return str(rng.choice(["RELATED", "PROBABLE", "POSSIBLE"], p=[0.6, 0.2, 0.2] if immune else [0.3, 0.3, 0.4]))
    return str(rng.choice(["UNLIKELY RELATED", "NOT RELATED"]))


def candidate_events(subject: Subject, rng: np.random.Generator) -> list[Event]:
    """Every PT the subject would have, with onset, grade, duration and causality, before treatment ends."""
    factor, g3_factor = DOSE_FACTORS[subject.dose]
    d0, events = subject.first_dose, list(subject.forced)
    for decod, _, prob, g3, onset_median, sigma, duration, immune, related, _ in PT_SPECS:
        if rng.random() >= min(prob * factor, 0.9):
            continue
        onset_day = int(rng.choice([0, 21], p=[0.7, 0.3])) if onset_median == 0 else None
        for _episode in range(3):
            if onset_day is None:
                onset_day = max(1, int(round(onset_median * np.exp(sigma * rng.normal()))))
            grade = _draw_grade(min(g3 * g3_factor, 0.9), rng)
            chronic = duration == 0 and rng.random() < 0.6
            length = int(round((duration or 120) * np.exp(0.7 * rng.normal()))) + 1
            event = _event(decod, d0 + dt.timedelta(days=onset_day), grade, rng, rel=_draw_rel(related, immune, rng))
            event.end = None if chronic else event.onset + dt.timedelta(days=length)
            event.hosp = grade >= 3 and rng.random() < 0.6
            if grade >= 2 and rng.random() < 0.15:
                event.grade0 = grade - 1
                event.escalate = event.onset + dt.timedelta(days=int(rng.integers(2, max(3, length // 2 + 1))))
            events.append(event)
            if decod not in RECURRING_PTS or rng.random() >= 0.15:
                break
            onset_day += length + int(rng.integers(14, 60))
    if rng.random() < 0.04:  # a baseline symptom, reported between consent and the first dose
        decod = BASELINE_PTS[int(rng.integers(len(BASELINE_PTS)))]
        onset = subject.consent + dt.timedelta(days=int(rng.integers(0, (d0 - subject.consent).days)))
        end = None if rng.random() < 0.5 else onset + dt.timedelta(days=int(rng.integers(5, 60)))
        events.append(_event(decod, onset, int(rng.integers(1, 3)), rng, end=end, acn="NOT APPLICABLE"))
    return sorted(events, key=lambda e: (e.onset, e.decod))


def simulate_course(subject: Subject, rng: np.random.Generator) -> None:
    """Doses Q3W until progression, toxicity or two years; death; the AEs that happen before the horizon."""
    if subject.first_dose is None:
        return
    d0 = subject.first_dose
    end_day = min(730, max(21, int(round(126 * np.exp(0.9 * rng.normal())))))
    for event in subject.forced:
        end_day = max(end_day, (event.onset - d0).days + 1)
    kept = []
    for event in candidate_events(subject, rng):
        day = (event.onset - d0).days
        if day > end_day + 150 or event.onset > HORIZON or (subject.death and event.onset > subject.death):
            continue
        if day < 0 or day > end_day:
            event.acn = "NOT APPLICABLE"
        elif any(event is forced for forced in subject.forced):
            end_day = day if event.acn == "DRUG WITHDRAWN" else end_day
        elif event.grade >= 3 and rng.random() < 0.3:
            event.acn, end_day = "DRUG WITHDRAWN", day
        elif event.grade >= 2 and rng.random() < (0.6 if event.grade >= 3 else 0.25):
            event.acn = "DRUG INTERRUPTED"
        kept.append(event)
    day, doses = 0, []
    while day < max(end_day, 1) and d0 + dt.timedelta(days=day) <= HORIZON:
        doses.append(d0 + dt.timedelta(days=day))
        day += 21 + int(rng.integers(-1, 4)) + (int(rng.integers(7, 22)) if rng.random() < 0.07 else 0)
    subject.doses = doses
    subject.end = d0 + dt.timedelta(days=end_day)
    if subject.death is None and rng.random() < 0.25:
        death = subject.end + dt.timedelta(days=14 + int(rng.exponential(180)))
        subject.death = death if death <= HORIZON else None
    if subject.death:
        kept = [e for e in kept if e.onset <= subject.death]
        for event in kept:
            if not event.fatal and (event.end is None or event.end > subject.death):
                event.end = None
            if not event.fatal and event.escalate and event.escalate > subject.death:
                event.grade, event.escalate = event.grade0, None
    subject.events = kept


def plant_signals(subjects: list[Subject], rng: np.random.Generator) -> dict[str, list[tuple[Subject, Event]]]:
    """The rising and the out-of-line signal of the Signals page, added to the simulated courses.

    ``signal_rising`` (:data:`RISING_SIGNAL`): hepatitis becomes frequent in the NSCLC cohort (5 mg/kg) after
    cut2's cutoff. Of the cohort's subjects at risk then (dosed, no hepatitis yet, from two weeks after the first
    dose to 60 days after the last one, before death), a share drawn with weights by their days at risk gets a
    grade 1-2 hepatitis on a random day of that span up to cut3's cutoff: a hazard switched on at cut2.
    ``signal_cohort`` (:data:`COHORT_SIGNAL`): hypothyroidism at the PT's usual onset times in extra subjects of
    the nasopharyngeal cohort (most had neck radiotherapy), grade 1-2, from the study's start. Both stay grade <= 2
    and not serious, so no alert rule of the demo fires on them. Returns the (subject, event) pairs per signal.
    """
    decod, cohort, share = RISING_SIGNAL
    t0, t1 = CUTOFFS["cut2"], CUTOFFS["cut3"]
    spans = []
    for s in subjects:
        if s.cohort != cohort or not s.doses or any(e.decod == decod for e in s.events):
            continue
        start = max(t0 + dt.timedelta(days=1), s.first_dose + dt.timedelta(days=14))
        stop = min(t1, s.doses[-1] + dt.timedelta(days=60), (s.death or t1) - dt.timedelta(days=1))
        if stop >= start:
            spans.append((s, start, stop))
    days = np.array([(stop - start).days + 1 for _, start, stop in spans], dtype=float)
    chosen = rng.choice(len(spans), size=round(share * len(spans)), replace=False, p=days / max(days.sum(), 1.0))
    rising = []
    for s, start, stop in (spans[int(i)] for i in sorted(chosen)):
        onset = start + dt.timedelta(days=int(rng.integers(0, (stop - start).days + 1)))
        length = int(round(SPECS[decod][6] * np.exp(0.7 * rng.normal()))) + 1
        event = _plant_event(s, decod, onset, length, rng)
        event.acn = "DRUG INTERRUPTED" if event.grade == 2 and onset <= s.end else event.acn
        rising.append((s, event))

    decod, cohort, extra = COHORT_SIGNAL
    onset_median, sigma = SPECS[decod][4:6]
    out_of_line = []
    for s in subjects:
        if s.cohort != cohort or not s.doses or any(e.decod == decod for e in s.events) or rng.random() >= extra:
            continue
        day = max(1, int(round(onset_median * np.exp(sigma * rng.normal()))))
        onset = s.first_dose + dt.timedelta(days=day)
        length = None if rng.random() < 0.6 else int(round(120 * np.exp(0.7 * rng.normal()))) + 1
        if onset > min(HORIZON, s.end + dt.timedelta(days=90)) or (s.death is not None and onset >= s.death):
            continue
        out_of_line.append((s, _plant_event(s, decod, onset, length, rng)))
    return {"signal_rising": rising, "signal_cohort": out_of_line}


def _plant_event(s: Subject, decod: str, onset: dt.date, length: int | None, rng: np.random.Generator) -> Event:
    """A grade 1-2, non-serious planted event of ``s`` lasting ``length`` days (None: ongoing), added to its AEs."""
    grade = 2 if rng.random() < 0.6 else 1
    event = _event(decod, onset, grade, rng, rel=_draw_rel(SPECS[decod][8], SPECS[decod][7], rng), planted=True)
    event.end = None if length is None else onset + dt.timedelta(days=length)
    if s.death is not None and (event.end is None or event.end > s.death):
        event.end = None
    event.acn = "DOSE NOT CHANGED" if onset <= s.end else "NOT APPLICABLE"
    s.events.append(event)
    return event


def plant_record_edits(subjects: list[Subject], rng: np.random.Generator) -> dict:
    """Partial onset dates, cut1 duplicates removed later, cut2 bad rows and per-cut data queries."""
    pool = [(s, e) for s in subjects for e in s.events if not e.fatal and not e.planted]
    pool = [(s, e) for s, e in pool if e.grade <= 2 and e.escalate is None]
    pool = [(s, e) for s, e in pool if e.onset >= s.first_dose]
    taken: set[int] = set()

    def pick(*choices: list, latest: bool = False) -> tuple[Subject, Event]:
        """One untaken event of the first non-empty list of candidates: at random, or the latest onset."""
        candidates = next(c for c in ([(s, e) for s, e in c if id(e) not in taken] for c in choices) if c)
        chosen = max(candidates, key=lambda c: (c[1].onset, c[0].usubjid, c[1].seq)) if latest else None
        chosen = chosen or candidates[int(rng.integers(len(candidates)))]
        taken.add(id(chosen[1]))
        return chosen

    def where(s: Subject, e: Event, **extra) -> dict:
        return {"usubjid": s.usubjid, "aeseq": e.seq, "aedecod": e.decod} | extra

    first_month = [(s, e) for s, e in pool if e.onset.strftime("%Y-%m") == s.first_dose.strftime("%Y-%m")]
    partial = []
    for form, candidates in (("%Y-%m", first_month), ("%Y-%m", first_month), ("%Y-%m", pool), ("%Y", pool)):
        s, e = pick(candidates, pool)
        e.stdtc = e.onset.strftime(form)
        partial.append(where(s, e, aestdtc=e.stdtc))
    removed = []
    cut1 = [(s, e) for s, e in pool if e.onset <= CUTOFFS["cut1"] and e.end and e.end <= CUTOFFS["cut1"]]
    for _ in range(2):
        s, e = pick(cut1)
        terms = [t for t in SPECS[e.decod][9].split("|") if t != e.term] or [e.term.upper()]
        copy = Event(e.decod, terms[0], e.onset, e.grade, e.grade, end=e.end, rel=e.rel, acn=e.acn)
        copy.seq, copy.only_in = max(x.seq for x in s.events) + 1, ("cut1",)
        s.events.append(copy)
        taken.add(id(copy))
        removed.append(where(s, copy, cut="cut1", duplicates=e.seq))
    bad = []
    between = [(s, e) for s, e in pool if CUTOFFS["cut1"] < e.onset <= CUTOFFS["cut2"]]
    before = [(s, e) for s, e in pool if e.onset <= CUTOFFS["cut2"]]
    s, e = pick(between, before)
    e.overrides["cut2"] = {"USUBJID": s.usubjid[: s.usubjid.rfind("-")] + s.usubjid[s.usubjid.rfind("-") + 1 :]}
    bad.append(where(s, e, cut="cut2", usubjid_written=e.overrides["cut2"]["USUBJID"], reason="USUBJID not in DM"))
    s, e = pick(between, before)
    e.overrides["cut2"] = {"AESTDTC": "2022-13-45"}
    bad.append(where(s, e, cut="cut2", aestdtc_written="2022-13-45", reason="impossible AESTDTC"))
    uncoded, no_grade = [], []
    for name, cutoff in CUTOFFS.items():
        recent = [(s, e) for s, e in pool if e.onset <= cutoff and e.stdtc is None]
        s, e = pick(recent, latest=True)
        e.overrides[name] = {"AEDECOD": "", "AEBODSYS": ""}
        uncoded.append(where(s, e, cut=name))
        s, e = pick(recent, latest=True)
        e.overrides[name] = {"AETOXGR": "", "AESEV": ""}
        no_grade.append(where(s, e, cut=name))
    for item in subjects:
        item.events.sort(key=lambda x: x.seq)
    return {"partial_onset": partial, "removed": removed, "bad_rows": bad, "uncoded": uncoded, "no_grade": no_grade}


def _iso(day: dt.date | None, cutoff: dt.date) -> str:
    return day.isoformat() if day is not None and day <= cutoff else ""


def dm_frame(subjects: list[Subject], cutoff: dt.date) -> pd.DataFrame:
    """DM as known at ``cutoff``: subjects consented by then; first and last dose, death as of then."""
    rows = []
    for s in subjects:
        if s.consent > cutoff:
            continue
        dosed = s.first_dose is not None and s.first_dose <= cutoff
        last = max((d for d in s.doses if d <= cutoff), default=None)
        ended = s.end is not None and s.end <= cutoff or (s.death is not None and s.death <= cutoff)
        arm, armcd = f"QL1706 {s.dose:g} mg/kg Q3W", f"QL{s.dose:g}Q3W".replace(".", "P")
        rows.append(
            {
                "STUDYID": STUDYID, "DOMAIN": "DM", "USUBJID": s.usubjid, "SUBJID": s.usubjid[len(STUDYID) + 1 :],
                "RFSTDTC": _iso(s.first_dose, cutoff), "RFXSTDTC": _iso(s.first_dose, cutoff),
                "RFXENDTC": _iso(last, cutoff) if ended else "", "RFICDTC": s.consent.isoformat(),
                "DTHDTC": _iso(s.death, cutoff), "DTHFL": "Y" if _iso(s.death, cutoff) else "",
                "SITEID": s.siteid, "AGE": float(s.age), "AGEU": "YEARS", "SEX": s.sex, "RACE": "ASIAN",
                "ARMCD": armcd, "ARM": arm, "ACTARMCD": armcd if dosed else "NOTTRT",
                "ACTARM": arm if dosed else "Not Treated", "COUNTRY": "CHN", "COHORT": s.cohort,
            }
        )  # fmt: skip
    return pd.DataFrame(rows, columns=DM_COLUMNS)


def ex_frame(subjects: list[Subject], cutoff: dt.date) -> pd.DataFrame:
    """EX as known at ``cutoff``: one row per infusion given by then."""
    rows = []
    for s in subjects:
        for seq, day in enumerate((d for d in s.doses if d <= cutoff), start=1):
            rows.append(
                {
                    "STUDYID": STUDYID, "DOMAIN": "EX", "USUBJID": s.usubjid, "EXSEQ": float(seq),
                    "EXTRT": "QL1706", "EXDOSE": s.dose, "EXDOSU": "mg/kg", "EXDOSFRM": "INJECTION",
                    "EXDOSFRQ": "Q3W", "EXROUTE": "INTRAVENOUS", "VISIT": f"CYCLE {seq} DAY 1",
                    "EXSTDTC": day.isoformat(), "EXENDTC": day.isoformat(),
                }
            )  # fmt: skip
    return pd.DataFrame(rows, columns=EX_COLUMNS)


def ae_row(s: Subject, e: Event, cutoff: dt.date) -> dict:
    """One AE as the cut at ``cutoff`` shows it: grade, end date, outcome and seriousness as of then."""
    grade = e.grade if e.escalate is None or e.escalate <= cutoff else e.grade0
    died = e.fatal and s.death is not None and s.death <= cutoff
    grade = grade if died or grade < 5 else 4
    if died:
        outcome = "FATAL"
    elif e.fatal:
        outcome = "NOT RECOVERED/NOT RESOLVED"
    elif e.end is not None and e.end <= cutoff:
        outcome = "RECOVERED/RESOLVED"
    elif e.end is not None and (e.end - cutoff).days < 30:
        outcome = "RECOVERING/RESOLVING"
    else:
        outcome = "NOT RECOVERED/NOT RESOLVED"
    return {
        "STUDYID": STUDYID, "DOMAIN": "AE", "USUBJID": s.usubjid, "AESEQ": float(e.seq), "AESPID": f"AE{e.seq:03d}",
        "AETERM": e.term, "AEDECOD": e.decod, "AEBODSYS": SPECS[e.decod][1], "AETOXGR": str(grade),
        "AESEV": SEVERITY[grade], "AESER": "Y" if grade >= 4 or e.hosp or died else "N",
        "AESDTH": "Y" if died else "N", "AESHOSP": "Y" if e.hosp else "N", "AESLIFE": "Y" if grade == 4 else "N",
        "AEREL": e.rel, "AEACN": e.acn, "AEOUT": outcome, "AESTDTC": e.stdtc or e.onset.isoformat(),
        "AEENDTC": _iso(e.end, cutoff), "AEDLT": "Y" if flag_dlt(s, e, grade) else "",
    }  # fmt: skip


def flag_dlt(s: Subject, e: Event, grade: int) -> bool:
    """A DLT: grade >= 3 (as the cut shows it) and related, in a phase I escalation subject, with onset on days
    1..:data:`DLT_DAYS` from the first dose."""
    if not s.cohort.startswith(ESCALATION_PREFIX) or s.first_dose is None:
        return False
    day = (e.onset - s.first_dose).days + 1
    return grade >= 3 and e.rel in RELATED_VALUES and 1 <= day <= DLT_DAYS


def ae_frame(subjects: list[Subject], cut: str) -> pd.DataFrame:
    """AE as known at the cut named ``cut``: events with onset by its cutoff, with that cut's planted edits."""
    cutoff = CUTOFFS[cut]
    rows = []
    for s in subjects:
        for e in s.events:
            if e.onset <= cutoff and (e.only_in is None or cut in e.only_in):
                rows.append(ae_row(s, e, cutoff) | e.overrides.get(cut, {}))
    return pd.DataFrame(rows, columns=AE_COLUMNS).sort_values(["USUBJID", "AESEQ"], ignore_index=True)


_STAMP = re.compile(rb"\d{2}[A-Z]{3}\d{2}:\d{2}:\d{2}:\d{2}")
_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()


def save_xpt(frame: pd.DataFrame, path: Path, table_name: str, stamp: dt.date) -> None:
    """Write SAS transport v5 with SDTM labels; the header's created/modified stamps become ``stamp``.

    pyreadstat writes the wall-clock time there, which would make every run's files differ.
    """
    labels = [LABELS[column] for column in frame.columns]
    pyreadstat.write_xport(frame, str(path), table_name=table_name, file_format_version=5, column_labels=labels)
    raw = path.read_bytes()
    split = raw.index(b"HEADER RECORD*******OBS     HEADER RECORD")
    text = f"{stamp.day:02d}{_MONTHS[stamp.month - 1]}{stamp.year % 100:02d}:00:00:00".encode("ascii")
    path.write_bytes(_STAMP.sub(text, raw[:split]) + raw[split:])
