"""Benchmark: derivations and the PT x cohort rate table on a large synthetic study (not a test).

Generates (seeded) 20,000 subjects in 4 cohorts with about 6 Q3W doses each and 1,000,000 AEs over 300 PTs in
25 SOCs (about 3% partial or missing onset dates), then times

(a) derive_subject_exposure + derive_events + compute_rate_table(by='pt', group_col='COHORT'), and
(b) a bare pandas group-by computing the same counts and sums (no imputation, no intervals),

and prints seconds, peak traced memory and the ratio. Targets: (a) under 2 s and within 3x of (b).

Run: .venv/bin/python bench/rates.py [--subjects 20000] [--events 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

# Run as a script from a checkout: make the package importable without installing it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from safety_dash.metrics.events import derive_events
from safety_dash.metrics.exposure import derive_subject_exposure
from safety_dash.metrics.rates import compute_rate_table

CUTOFF = dt.date(2024, 6, 30)
COHORTS = np.array(["NSCLC", "NPC", "CC", "OTHER"], dtype=object)


def _dates(days: np.ndarray) -> np.ndarray:
    """ISO 8601 text of days since 2022-01-01 (numpy, no Python loop)."""
    return np.datetime_as_string(np.datetime64("2022-01-01") + days.astype("timedelta64[D]"), unit="D").astype(object)


def make_study(n_subjects: int, n_events: int, seed: int = 20240630) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """DM, EX and AE frames shaped like the input contract (text with '' for missing, EXDOSE float)."""
    rng = np.random.default_rng(seed)
    usubjid = np.char.add("QL1706-", np.arange(n_subjects).astype(str)).astype(object)
    first = rng.integers(0, 800, n_subjects)
    n_doses = 1 + rng.poisson(5, n_subjects)
    cohort = COHORTS[rng.integers(0, len(COHORTS), n_subjects)]
    cohort[rng.random(n_subjects) < 0.002] = ""

    dose_subject = np.repeat(np.arange(n_subjects), n_doses)
    dose_number = np.arange(len(dose_subject)) - np.repeat(np.cumsum(n_doses) - n_doses, n_doses)
    dose_day = first[dose_subject] + 21 * dose_number + rng.integers(-2, 3, len(dose_subject)) * (dose_number > 0)
    ex = pd.DataFrame(
        {
            "USUBJID": usubjid[dose_subject],
            "EXTRT": "QL1706",
            "EXDOSE": rng.choice([0.3, 1.0, 3.0, 5.0, 10.0], len(dose_subject)),
            "EXSTDTC": _dates(dose_day),
            "EXENDTC": _dates(dose_day),
        }
    )
    last = first + 21 * (n_doses - 1)
    dies = rng.random(n_subjects) < 0.12
    death_day = last + rng.integers(5, 200, n_subjects)
    death = np.where(dies, _dates(death_day), "").astype(object)
    partial_death = dies & (rng.random(n_subjects) < 0.1)
    death[partial_death] = [text[:7] for text in death[partial_death]]
    dm = pd.DataFrame(
        {
            "USUBJID": usubjid,
            "RFXSTDTC": _dates(first),
            "RFXENDTC": _dates(last),
            "DTHDTC": death,
            "DTHFL": np.where(dies, "Y", ""),
            "COHORT": cohort,
            "ACTARM": "QL1706 " + pd.Series(cohort).astype(str),
        }
    )

    soc_of_pt = rng.integers(0, 25, 300)
    pt_weight = 1.0 / np.arange(1, 301) ** 0.8
    pt = rng.choice(300, n_events, p=pt_weight / pt_weight.sum())
    subject = rng.integers(0, n_subjects, n_events)
    onset_day = first[subject] + np.floor(rng.exponential(70, n_events)).astype(int) - 10
    onset = _dates(onset_day)
    dice = rng.random(n_events)
    onset[dice < 0.025] = [text[:7] for text in onset[dice < 0.025]]
    onset[(dice >= 0.025) & (dice < 0.028)] = [text[:4] for text in onset[(dice >= 0.025) & (dice < 0.028)]]
    onset[(dice >= 0.028) & (dice < 0.030)] = ""
    grade = rng.choice(
        np.array(["1", "2", "3", "4", "5", ""], dtype=object), n_events, p=[0.5, 0.3, 0.12, 0.02, 0.01, 0.05]
    )
    decod = np.char.add("Preferred term ", pt.astype(str)).astype(object)
    bodsys = np.char.add("System organ class ", soc_of_pt[pt].astype(str)).astype(object)
    uncoded = rng.random(n_events) < 0.005
    decod[uncoded] = ""
    yes_no = np.array(["Y", "N"], dtype=object)
    ae = pd.DataFrame(
        {
            "AE_ID": np.arange(1, n_events + 1),
            "USUBJID": usubjid[subject],
            "AETERM": np.char.add("term ", pt.astype(str)).astype(object),
            "AEDECOD": decod,
            "AEBODSYS": bodsys,
            "AETOXGR": grade,
            "AESEV": np.where(
                grade == "", rng.choice(np.array(["MILD", "MODERATE", "SEVERE", ""], dtype=object), n_events), ""
            ),
            "AESER": yes_no[(rng.random(n_events) > 0.08).astype(int)],
            "AESDTH": np.where(grade == "5", "Y", "N").astype(object),
            "AESLIFE": yes_no[(rng.random(n_events) > 0.01).astype(int)],
            "AESHOSP": yes_no[(rng.random(n_events) > 0.06).astype(int)],
            "AESDISAB": "N",
            "AESCONG": "N",
            "AESMIE": "",
            "AEREL": rng.choice(
                np.array(["RELATED", "POSSIBLE", "UNLIKELY", "NOT RELATED", ""], dtype=object), n_events
            ),
            "AEOUT": np.where(grade == "5", "FATAL", "RECOVERED/RESOLVED").astype(object),
            "AESTDTC": onset,
            "AEENDTC": "",
        }
    )
    return dm, ex, ae


def run_metrics(dm: pd.DataFrame, ex: pd.DataFrame, ae: pd.DataFrame) -> pd.DataFrame:
    """(a) The project's derivations and full PT x cohort rate table."""
    subjects = derive_subject_exposure(dm, ex, CUTOFF)
    events = derive_events(ae, subjects, CUTOFF)
    return compute_rate_table(events, subjects, by="pt", group_col="COHORT")


def run_bare(dm: pd.DataFrame, ex: pd.DataFrame, ae: pd.DataFrame) -> pd.DataFrame:
    """(b) The same counts and sums the plain pandas way: complete dates only, no imputation, no intervals."""
    cutoff = pd.Timestamp(CUTOFF)
    ex_dates = ex.assign(start=pd.to_datetime(ex["EXSTDTC"], format="%Y-%m-%d", errors="coerce"))
    dose = ex_dates.loc[ex_dates["EXDOSE"] > 0].groupby("USUBJID")["start"].agg(["min", "max"])
    subjects = dm[["USUBJID", "COHORT"]].merge(dose, left_on="USUBJID", right_index=True)
    window_end = (subjects["max"] + pd.Timedelta(days=90)).clip(upper=cutoff)
    subjects["days"] = (window_end - subjects["min"]).dt.days + 1
    onset = pd.to_datetime(ae["AESTDTC"], format="%Y-%m-%d", errors="coerce")
    events = ae[["USUBJID", "AEBODSYS", "AEDECOD"]].assign(onset=onset).merge(subjects, on="USUBJID")
    events["day"] = (events["onset"] - events["min"]).dt.days + 1
    te = events.loc[(events["onset"] >= events["min"]) & (events["onset"] <= events["max"] + pd.Timedelta(days=90))]
    per_subject = te.groupby(["COHORT", "AEBODSYS", "AEDECOD", "USUBJID"], sort=False).agg(
        first=("day", "min"), n=("day", "size"), days=("days", "first")
    )
    table = per_subject.groupby(level=["COHORT", "AEBODSYS", "AEDECOD"]).agg(
        n_with_event=("n", "size"), n_events=("n", "sum"), onset_sum=("first", "sum"), case_days=("days", "sum")
    )
    exposure = subjects.groupby("COHORT")["days"].agg(["size", "sum"])
    return table.join(exposure, on="COHORT")


def measure(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best wall-clock seconds over ``repeat`` runs, then peak traced MB of one more run."""
    seconds = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return min(seconds), peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    dm, ex, ae = make_study(args.subjects, args.events)
    generated = time.perf_counter() - start
    print(f"study: {len(dm):,} subjects, {len(ex):,} EX records, {len(ae):,} AEs (generated in {generated:.1f} s)")
    table = run_metrics(dm, ex, ae)
    print(
        f"rate table: {len(table):,} rows ({table['group'].nunique()} groups incl. ALL x {table['pt'].nunique()} PTs)"
    )

    metrics_s, metrics_mb = measure(lambda: run_metrics(dm, ex, ae), args.repeat)
    bare_s, bare_mb = measure(lambda: run_bare(dm, ex, ae), args.repeat)
    print(f"(a) derivations + rate table: {metrics_s:6.2f} s   peak {metrics_mb:7.0f} MB traced")
    print(f"(b) bare pandas group-by:     {bare_s:6.2f} s   peak {bare_mb:7.0f} MB traced")
    print(f"ratio (a)/(b): {metrics_s / bare_s:.2f} x time, {metrics_mb / bare_mb:.2f} x memory")
    verdict = "met" if metrics_s < 2.0 and metrics_s <= 3 * bare_s else "NOT met"
    print(f"target (a) < 2 s and (a) <= 3 x (b): {verdict}")


if __name__ == "__main__":
    main()
