"""Benchmark: signals (both tests, double FDR) against the bare rate table on the same frames (not a test).

Takes the seeded synthetic study of ``bench/rates.py`` (20,000 subjects, 1,000,000 AEs) and re-draws its cohort
(8 cohorts) and its coding (about 1,000 PTs in 25 SOCs), derives the cut at 2024-06-30, then times on the same
derived frames

(a) compute_signals(by='pt', group_col='COHORT') with the previous cut at 2023-12-31: `rising` for ALL and every
    cohort, `cohort` for every cohort, every PT, double FDR included, and
(b) compute_rate_table(by='pt', group_col='COHORT'),

and prints seconds, peak traced memory and the ratio. Targets (issue 10): (a) under 2 s and within 3x of (b).

Run: .venv/bin/python bench/signals.py [--subjects 20000] [--events 1000000] [--pts 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

# Run as a script from a checkout: make the package and the bench folder importable without installing them.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.rates import CUTOFF, make_study, measure
from safety_dash.metrics.events import derive_events
from safety_dash.metrics.exposure import derive_subject_exposure
from safety_dash.metrics.rates import compute_rate_table
from safety_dash.metrics.signals import compute_signals

PREVIOUS_CUTOFF = dt.date(2023, 12, 31)
COHORTS = np.array([f"{dose} mg/kg {tumour}" for dose in (1, 3, 5, 10) for tumour in ("NSCLC", "NPC")], dtype=object)
N_SOCS = 25


def make_frames(n_subjects: int, n_events: int, n_pts: int, seed: int = 20240630) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Derived subjects and events of the cut: bench/rates.py's study with 8 cohorts and ``n_pts`` coded PTs."""
    dm, ex, ae = make_study(n_subjects, n_events, seed)
    rng = np.random.default_rng(seed + 1)
    dm["COHORT"] = COHORTS[rng.integers(0, len(COHORTS), len(dm))]
    soc_of_pt = rng.integers(0, N_SOCS, n_pts)
    weight = 1.0 / np.arange(1, n_pts + 1) ** 0.8
    pt = rng.choice(n_pts, len(ae), p=weight / weight.sum())
    coded = ae["AEDECOD"].to_numpy() != ""
    ae.loc[coded, "AEDECOD"] = np.char.add("Preferred term ", pt[coded].astype(str)).astype(object)
    ae.loc[coded, "AEBODSYS"] = np.char.add("System organ class ", soc_of_pt[pt[coded]].astype(str)).astype(object)
    subjects = derive_subject_exposure(dm, ex, CUTOFF)
    events = derive_events(ae, subjects, CUTOFF)
    return subjects, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--pts", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    start = time.perf_counter()
    subjects, events = make_frames(args.subjects, args.events, args.pts)
    prepared = time.perf_counter() - start
    print(
        f"cut {CUTOFF} (previous {PREVIOUS_CUTOFF}): {int(subjects['SAFFL'].sum()):,} safety subjects, "
        f"{len(events):,} AEs, {events['PT'].nunique():,} PTs, {subjects['COHORT'].nunique()} cohorts "
        f"(generated and derived in {prepared:.1f} s)"
    )

    def run_signals() -> pd.DataFrame:
        return compute_signals(events, subjects, "pt", "COHORT", previous_cutoff=PREVIOUS_CUTOFF, cutoff=CUTOFF)

    def run_rates() -> pd.DataFrame:
        return compute_rate_table(events, subjects, by="pt", group_col="COHORT")

    signals = run_signals()
    counts = signals.groupby("test")["flagged"].agg(["size", "sum"])
    print(
        "signals: "
        + ", ".join(f"{test} {row['size']:,} rows ({row['sum']} flagged)" for test, row in counts.iterrows())
        + f"; rate table: {len(run_rates()):,} rows"
    )

    signals_s, signals_mb = measure(run_signals, args.repeat)
    rates_s, rates_mb = measure(run_rates, args.repeat)
    print(f"(a) compute_signals (both tests, double FDR): {signals_s:6.2f} s   peak {signals_mb:7.0f} MB traced")
    print(f"(b) compute_rate_table:                        {rates_s:6.2f} s   peak {rates_mb:7.0f} MB traced")
    print(f"ratio (a)/(b): {signals_s / rates_s:.2f} x time, {signals_mb / rates_mb:.2f} x memory")
    verdict = "met" if signals_s < 2.0 and signals_s <= 3 * rates_s else "NOT met"
    print(f"target (a) < 2 s and (a) <= 3 x (b): {verdict}")


if __name__ == "__main__":
    main()
