"""A generated study of any size, written as SDTM CSV files, for the benchmarks (seeded, vectorised)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

SOCS = [f"SOC {i:02d} disorders" for i in range(25)]


LB_TESTS = [("ALT", "Alanine Aminotransferase", "U/L", 7, 40), ("AST", "Aspartate Aminotransferase", "U/L", 8, 40),
            ("BILI", "Bilirubin", "umol/L", 3, 21), ("ALP", "Alkaline Phosphatase", "U/L", 40, 130),
            ("CREAT", "Creatinine", "umol/L", 45, 110), ("K", "Potassium", "mmol/L", 3.5, 5.1),
            ("HGB", "Hemoglobin", "g/L", 120, 160), ("NEUT", "Neutrophils", "10^9/L", 1.8, 7.5),
            ("PLAT", "Platelets", "10^9/L", 150, 400), ("TSH", "Thyrotropin", "mIU/L", 0.4, 4.0)]  # fmt: skip


def write_csv_study(folder: Path, n_subjects: int = 20_000, n_ex: int = 200_000, n_ae: int = 1_000_000,
                    seed: int = 7, n_lb: int = 0) -> dict[str, int]:  # fmt: skip
    """Write dm.csv, ex.csv and ae.csv (and lb.csv when ``n_lb``) of a study with the given sizes; return the row
    counts."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    subjects = np.array([f"BENCH-{i:06d}" for i in range(n_subjects)])
    start = pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, n_subjects), unit="D")
    doses_per_subject = np.maximum(1, rng.poisson(n_ex / n_subjects, n_subjects))
    doses_per_subject = np.round(doses_per_subject * n_ex / doses_per_subject.sum()).astype(int)
    doses_per_subject[-1] += n_ex - doses_per_subject.sum()
    doses_per_subject = np.maximum(doses_per_subject, 1)
    last = start + pd.to_timedelta((doses_per_subject - 1) * 21, unit="D")
    dm = pd.DataFrame({
        "STUDYID": "BENCH", "DOMAIN": "DM", "USUBJID": subjects, "SITEID": rng.integers(1, 40, n_subjects),
        "ARM": "QL1706", "ACTARM": "QL1706", "AGE": rng.integers(25, 85, n_subjects),
        "SEX": rng.choice(["F", "M"], n_subjects), "RFXSTDTC": start.strftime("%Y-%m-%d"),
        "RFXENDTC": last.strftime("%Y-%m-%d"), "DTHDTC": "", "DTHFL": "",
        "COHORT": rng.choice(["C1", "C2", "C3", "C4"], n_subjects),
    })  # fmt: skip
    dm.to_csv(folder / "dm.csv", index=False)
    owner = np.repeat(np.arange(n_subjects), doses_per_subject)
    sequence = np.concatenate([np.arange(1, k + 1) for k in doses_per_subject])
    dose_day = start[owner] + pd.to_timedelta((sequence - 1) * 21, unit="D")
    ex = pd.DataFrame({
        "STUDYID": "BENCH", "DOMAIN": "EX", "USUBJID": subjects[owner], "EXSEQ": sequence, "EXTRT": "QL1706",
        "EXDOSE": 5, "EXDOSU": "mg/kg", "EXSTDTC": dose_day.strftime("%Y-%m-%d"),
        "EXENDTC": dose_day.strftime("%Y-%m-%d"),
    })  # fmt: skip
    ex.to_csv(folder / "ex.csv", index=False)
    ae_owner = np.sort(rng.integers(0, n_subjects, n_ae))
    ae_seq = pd.Series(ae_owner).groupby(ae_owner).cumcount().to_numpy() + 1
    pt_index = rng.integers(0, 300, n_ae)
    onset = start[ae_owner] + pd.to_timedelta(rng.integers(-10, 200, n_ae), unit="D")
    onset_text = onset.strftime("%Y-%m-%d").to_numpy().astype(object)
    partial = rng.random(n_ae) < 0.03
    onset_text[partial] = onset[partial].strftime("%Y-%m")
    grade = rng.choice(["1", "2", "3", "4", "5"], n_ae, p=[0.5, 0.3, 0.15, 0.04, 0.01])
    ae = pd.DataFrame({
        "STUDYID": "BENCH", "DOMAIN": "AE", "USUBJID": subjects[ae_owner], "AESEQ": ae_seq, "AESPID": ae_seq,
        "AETERM": [f"term {i}" for i in pt_index], "AEDECOD": [f"PT {i:03d}" for i in pt_index],
        "AEBODSYS": [SOCS[i % 25] for i in pt_index], "AETOXGR": grade, "AESEV": "",
        "AESER": np.where(grade >= "3", "Y", "N"), "AESDTH": np.where(grade == "5", "Y", "N"),
        "AEREL": rng.choice(["RELATED", "NOT RELATED"], n_ae), "AEOUT": "RECOVERED/RESOLVED",
        "AESTDTC": onset_text, "AEENDTC": "",
    })  # fmt: skip
    ae.to_csv(folder / "ae.csv", index=False)
    (folder / "cutoff.txt").write_text("2024-12-31\n")
    counts = {"dm": len(dm), "ex": len(ex), "ae": len(ae)}
    if n_lb:
        counts["lb"] = _write_lb(folder, rng, subjects, start, n_lb)
    return counts


def _write_lb(folder: Path, rng, subjects: np.ndarray, start: pd.DatetimeIndex, n_lb: int) -> int:
    """lb.csv: ``n_lb`` results of the ten tests of :data:`LB_TESTS`, about every three weeks per subject."""
    owner = np.sort(rng.integers(0, len(subjects), n_lb))
    seq = pd.Series(owner).groupby(owner).cumcount().to_numpy() + 1
    test = (seq - 1) % len(LB_TESTS)
    day = start[owner] + pd.to_timedelta(((seq - 1) // len(LB_TESTS)) * 21 - 1, unit="D")
    low = np.array([t[3] for t in LB_TESTS], dtype=float)[test]
    high = np.array([t[4] for t in LB_TESTS], dtype=float)[test]
    value = np.round(rng.uniform(0.8 * low, 1.3 * high), 2)
    lb = pd.DataFrame({
        "STUDYID": "BENCH", "DOMAIN": "LB", "USUBJID": subjects[owner], "LBSEQ": seq,
        "LBTESTCD": np.array([t[0] for t in LB_TESTS])[test], "LBTEST": np.array([t[1] for t in LB_TESTS])[test],
        "LBSTRESC": value.astype(str), "LBSTRESN": value, "LBSTRESU": np.array([t[2] for t in LB_TESTS])[test],
        "LBSTNRLO": low, "LBSTNRHI": high, "LBBLFL": np.where(seq <= len(LB_TESTS), "Y", ""),
        "VISIT": [f"VISIT {v}" for v in (seq - 1) // len(LB_TESTS) + 1], "LBDTC": day.strftime("%Y-%m-%d"),
    })  # fmt: skip
    lb.to_csv(folder / "lb.csv", index=False)
    return len(lb)
