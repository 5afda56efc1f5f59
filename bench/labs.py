"""Benchmark: laboratory grading, worst grades and the Hy's law screen on a large synthetic LB (not a test).

Takes the seeded synthetic study of ``bench/rates.py`` (20,000 subjects, Q3W dosing, deaths), derives the cut at
2024-06-30, and builds in memory an SDTM LB of about 4,000,000 records: 16 tests (the 14 of the criteria file, and
ALB and CA, which it does not grade) at a screening visit (LBBLFL = Y) and every two weeks from the first dose,
with times of day in LBDTC, text results in LBSTRESC, 0.1 % bounds ('<0.5'), 0.5 % records without a reference
range, and rare liver elevations so that some subjects are potential Hy's law cases. It then times, on those frames,

(a) derive_lab_values (baseline, window, x ULN, CTCAE grades) + compute_worst_grades + flag_hys_law, and
(b) compute_lab_table(group_col='COHORT') alone (it reruns worst grades and the Hy's law screen),

and prints seconds and peak traced memory. Target (issue 13): (a) well under 10 s.

Run: .venv/bin/python bench/labs.py [--subjects 20000] [--records 4000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Run as a script from a checkout: make the package and the bench folder importable without installing them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rates import CUTOFF, make_study, measure
from safety_dash.metrics.exposure import DEFAULT_WINDOW_DAYS, derive_subject_exposure
from safety_dash.metrics.labs import (
    CRITERIA_FILE,
    compute_lab_table,
    compute_worst_grades,
    derive_lab_values,
    flag_hys_law,
)

# (LBTESTCD, LBTEST, unit, LLN, ULN, typical value, coefficient of variation): SI units as the criteria expect.
TESTS = [
    ("ALT", "Alanine Aminotransferase", "U/L", 6, 34, 20, 0.35),
    ("AST", "Aspartate Aminotransferase", "U/L", 9, 34, 22, 0.3),
    ("ALP", "Alkaline Phosphatase", "U/L", 35, 115, 70, 0.3),
    ("BILI", "Bilirubin", "umol/L", 3, 21, 9, 0.4),
    ("CREAT", "Creatinine", "umol/L", 62, 124, 90, 0.2),
    ("NEUT", "Neutrophils", "10^9/L", 1.8, 7.5, 4.0, 0.4),
    ("PLAT", "Platelets", "10^9/L", 130, 394, 250, 0.3),
    ("HGB", "Hemoglobin", "g/L", 120, 170, 135, 0.12),
    ("LYM", "Lymphocytes", "10^9/L", 0.8, 3.0, 1.6, 0.4),
    ("WBC", "Leukocytes", "10^9/L", 3.8, 10.7, 6.5, 0.3),
    ("K", "Potassium", "mmol/L", 3.4, 5.4, 4.3, 0.08),
    ("SODIUM", "Sodium", "mmol/L", 135, 145, 140, 0.02),
    ("GLUC", "Glucose", "mmol/L", 3.9, 6.1, 5.2, 0.2),
    ("TSH", "Thyrotropin", "mU/L", 0.32, 5.0, 2.0, 0.6),
    ("ALB", "Albumin", "g/L", 35, 46, 41, 0.08),
    ("CA", "Calcium", "mmol/L", 2.1, 2.57, 2.35, 0.04),
]


def make_lb(subjects: pd.DataFrame, n_records: int, seed: int = 20240630) -> pd.DataFrame:
    """An SDTM LB frame of about ``n_records`` rows for the dosed subjects (text columns, '' for missing)."""
    rng = np.random.default_rng(seed)
    dosed = subjects.loc[subjects["SAFFL"]]
    n_subjects, n_tests = len(dosed), len(TESTS)
    n_visits = max(2, -(-n_records // (n_subjects * n_tests)))
    visit = np.tile(np.arange(n_visits), n_subjects)
    owner = np.repeat(np.arange(n_subjects), n_visits)
    first = dosed["TRTSDT"].to_numpy(dtype="datetime64[D]")[owner]
    day = np.where(visit == 0, -7, 14 * visit - 1 + rng.integers(-2, 3, len(visit)))
    minutes = rng.integers(7 * 60, 17 * 60, len(visit))
    stamp = (first + day.astype("timedelta64[D]")).astype("datetime64[m]") + minutes.astype("timedelta64[m]")
    lbdtc = np.datetime_as_string(stamp, unit="m").astype(object)

    size = len(visit) * n_tests
    test = np.tile(np.arange(n_tests), len(visit))
    row_visit = np.repeat(np.arange(len(visit)), n_tests)
    lln = np.array([t[3] for t in TESTS], dtype=float)[test]
    uln = np.array([t[4] for t in TESTS], dtype=float)[test]
    typical = np.array([t[5] for t in TESTS], dtype=float)[test]
    spread = np.array([t[6] for t in TESTS], dtype=float)[test]
    value = typical * rng.lognormal(0.0, 1.0, size) ** spread
    # Rare liver injury: ALT/AST to 3-8 x ULN, bilirubin to 2-4 x ULN on some later visits.
    liver = rng.random(size) < 0.004
    value = np.where(liver & (test <= 1), uln * rng.uniform(3, 8, size), value)
    value = np.where(liver & (test == 3), uln * rng.uniform(2, 4, size), value)
    value = np.round(value, 2)
    stresc = value.astype(str).astype(object)
    bound = rng.random(size) < 0.001
    stresc[bound] = "<0.5"
    stresn = np.where(bound, np.nan, value)
    no_range = rng.random(size) < 0.005
    lb = pd.DataFrame(
        {
            "USUBJID": dosed["USUBJID"].to_numpy(dtype=object)[owner][row_visit],
            "LBSEQ": np.tile(np.arange(1, n_visits * n_tests + 1), n_subjects),
            "LBTESTCD": np.array([t[0] for t in TESTS], dtype=object)[test],
            "LBTEST": np.array([t[1] for t in TESTS], dtype=object)[test],
            "LBSTRESC": stresc,
            "LBSTRESN": stresn,
            "LBSTRESU": np.array([t[2] for t in TESTS], dtype=object)[test],
            "LBSTNRLO": np.where(no_range, np.nan, lln),
            "LBSTNRHI": np.where(no_range, np.nan, uln),
            "LBDTC": lbdtc[row_visit],
            "LBBLFL": np.where(visit[row_visit] == 0, "Y", "").astype(object),
        }
    )
    return lb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--records", type=int, default=4_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    dm, ex, _ = make_study(args.subjects, 1_000)
    subjects = derive_subject_exposure(dm, ex, CUTOFF)
    lb = make_lb(subjects, args.records)
    criteria = pd.read_csv(CRITERIA_FILE, dtype=str, keep_default_na=False)
    prepared = time.perf_counter() - start
    print(
        f"cut {CUTOFF}: {int(subjects['SAFFL'].sum()):,} safety subjects, {len(lb):,} LB records, "
        f"{lb['LBTESTCD'].nunique()} tests (generated in {prepared:.1f} s)"
    )

    def run_screen() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        values = derive_lab_values(lb, subjects, CUTOFF, DEFAULT_WINDOW_DAYS, criteria)
        return values, compute_worst_grades(values), flag_hys_law(values)

    values, worst, hys = run_screen()
    print(
        f"{int(values['ON_TREATMENT'].sum()):,} on-treatment records; {len(worst):,} subject x test x direction "
        f"rows, {int((worst['WORST_GRADE'] >= 3).sum()):,} of worst grade >= 3; {len(hys):,} subjects screened, "
        f"{int(hys['HYS_LAW'].sum())} potential Hy's law cases"
    )
    for name, function in (
        ("derive_lab_values", lambda: derive_lab_values(lb, subjects, CUTOFF, DEFAULT_WINDOW_DAYS, criteria)),
        ("compute_worst_grades", lambda: compute_worst_grades(values)),
        ("flag_hys_law", lambda: flag_hys_law(values)),
    ):
        seconds = min(_time(function) for _ in range(args.repeat))
        print(f"    {name:24s} {seconds:6.2f} s")
    screen_s, screen_mb = measure(run_screen, args.repeat)
    table_s, table_mb = measure(lambda: compute_lab_table(values, subjects, "COHORT"), args.repeat)
    print(f"(a) grading + worst grades + Hy's law screen: {screen_s:6.2f} s   peak {screen_mb:7.0f} MB traced")
    print(f"(b) compute_lab_table (from graded values):   {table_s:6.2f} s   peak {table_mb:7.0f} MB traced")
    print(f"target (a) < 10 s: {'met' if screen_s < 10 else 'NOT met'}")


def _time(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
