"""Subject-level exposure: first and last dose, death, the risk window and days at risk (DOMAIN.md §2).

Pure functions on DataFrames. Dates are returned as ``datetime64[ns]`` at midnight (one value per day), NaT when
unknown.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from safety_dash.metrics.dates import LEVEL_DAY, LEVEL_MONTH, compute_date_ranges

DM_COLUMNS = ("USUBJID", "RFXSTDTC", "RFXENDTC", "DTHDTC", "DTHFL")
EX_COLUMNS = ("USUBJID", "EXTRT", "EXDOSE", "EXSTDTC", "EXENDTC")
DEFAULT_WINDOW_DAYS = 90


def check_columns(frame: pd.DataFrame, columns: Iterable[str], argument: str) -> None:
    """Fail with a sentence when ``frame`` (the argument named ``argument``) lacks any of ``columns``."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"`{argument}` must be a pandas DataFrame, not {type(frame).__name__}.")
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ValueError(
            f"`{argument}` has no column {', '.join(missing)}; pass the domain with its SDTM column names "
            f"(expected at least {', '.join(columns)})."
        )


def check_cutoff_and_window(cutoff: dt.date, window_days: int) -> None:
    """Fail with a sentence when the data cutoff is not a date or the risk window is not a whole number of days."""
    if not isinstance(cutoff, dt.date) or isinstance(cutoff, dt.datetime):
        raise TypeError(f"`cutoff` must be a datetime.date (the data cutoff of this cut), not {cutoff!r}.")
    if isinstance(window_days, bool) or not isinstance(window_days, (int, np.integer)) or window_days < 0:
        raise ValueError(f"`window_days` must be a whole number of days >= 0 (default 90), not {window_days!r}.")


def flag_dose_records(ex: pd.DataFrame) -> pd.Series:
    """True for an EX record that is a dose: EXDOSE > 0, or EXTRT contains "PLACEBO" (any case).

    admiral's ADSL rule, so placebo administrations (EXDOSE 0) count as exposure. A missing EXDOSE is not > 0.
    """
    check_columns(ex, ("EXTRT", "EXDOSE"), "ex")
    dose = pd.to_numeric(ex["EXDOSE"], errors="coerce")
    placebo = ex["EXTRT"].fillna("").astype(str).str.contains("PLACEBO", case=False, regex=False)
    return ((dose > 0) | placebo).astype(bool).rename("DOSE_RECORD")


def derive_subject_exposure(
    dm: pd.DataFrame, ex: pd.DataFrame, cutoff: dt.date, window_days: int = DEFAULT_WINDOW_DAYS
) -> pd.DataFrame:
    """One row per DM subject with treatment dates, the risk window and days at risk, as of the data cutoff.

    Adds to every DM column:

    - ``TRTSDT`` first dose date: the earliest EXSTDTC over dose records (:func:`flag_dose_records`) starting on
      or before the cutoff. A partial EXSTDTC takes the earliest day of its period (``2021-03`` -> 2021-03-01).
    - ``TRTEDT`` last dose date: the latest of EXENDTC, or EXSTDTC where EXENDTC is empty, over those dose records,
      and never after the cutoff (an interval running past it ends at it). A partial EXENDTC also takes the
      earliest day of its period, but never before that record's start (no exposure is invented beyond what the
      record shows). TRTSDT <= TRTEDT <= cutoff.
    - A dose record starting after the cutoff is ignored (first and last dose, N_DOSES, exposure): a subject whose
      every dose record starts after it is not dosed in this cut (TRTSDT NaT, outside SAFFL).
    - A subject without a dated dose record (no dose record, or none with an EXSTDTC) falls back to RFXSTDTC and
      RFXENDTC (RFXSTDTC when RFXENDTC is empty), read the same way and cut the same way: an RFXSTDTC after the
      cutoff is no first dose of this cut, an RFXENDTC after it ends at it.
    - ``DTHDT`` death date from DTHDTC; a partial one takes the earliest day of its period, but never before
      TRTEDT. A death after the cutoff is not a death of this cut: NaT. DTHFL = Y without a DTHDTC gives no death
      date (DTHFL is carried through unchanged, also when the death falls after the cutoff).
    - ``SAFFL`` safety population of this cut: a first dose date (on or before the cutoff, as above).
    - ``WINDOW_END`` = min(TRTEDT + ``window_days``, DTHDT, cutoff), never before TRTSDT (a complete death date
      before the first dose is a data query; it gives one day at risk, not a negative time); NaT outside SAFFL.
    - ``DAYS_AT_RISK`` = WINDOW_END - TRTSDT + 1 (Int64; NA outside SAFFL).
    - ``N_DOSES`` dose records with an EXSTDTC on or before the cutoff.

    DOMAIN.md §2 (dose record, first and last dose, death, data cutoff, risk window, days at risk).
    """
    check_columns(dm, DM_COLUMNS, "dm")
    check_columns(ex, EX_COLUMNS, "ex")
    check_cutoff_and_window(cutoff, window_days)
    if dm["USUBJID"].duplicated().any():
        example = dm.loc[dm["USUBJID"].duplicated(), "USUBJID"].iloc[0]
        raise ValueError(f"`dm` must hold one row per subject, but USUBJID {example!r} appears more than once.")

    cutoff_ts = pd.Timestamp(cutoff)
    window = pd.Timedelta(days=int(window_days))

    doses = ex.loc[flag_dose_records(ex), ["USUBJID", "EXSTDTC", "EXENDTC"]]
    start = compute_date_ranges(doses["EXSTDTC"])["lo"]
    end_range = compute_date_ranges(doses["EXENDTC"])
    end = end_range["lo"].where(end_range["lo"].isna() | start.isna(), np.maximum(end_range["lo"], start))
    end = end.fillna(start)
    per_dose = pd.DataFrame({"USUBJID": doses["USUBJID"].to_numpy(), "start": start, "end": end})
    # Which subjects have a dated dose record at all (whatever the cutoff): only those without one fall back to DM.
    dated = set(per_dose.loc[per_dose["start"].notna(), "USUBJID"])
    # A dose record starting after the cutoff is not part of this cut; an interval running past it ends at it.
    per_dose = per_dose.loc[~(per_dose["start"] > cutoff_ts)]
    per_dose["end"] = per_dose["end"].where(~(per_dose["end"] > cutoff_ts), cutoff_ts)
    per_dose["counted"] = per_dose["start"].notna()
    by_subject = per_dose.groupby("USUBJID", sort=False).agg(
        ex_start=("start", "min"), ex_end=("end", "max"), N_DOSES=("counted", "sum")
    )

    out = dm.copy()
    ex_start = out["USUBJID"].map(by_subject["ex_start"]).astype("datetime64[ns]")
    ex_end = out["USUBJID"].map(by_subject["ex_end"]).astype("datetime64[ns]")
    rfx_start = compute_date_ranges(out["RFXSTDTC"])["lo"]
    rfx_start = rfx_start.where(~(rfx_start > cutoff_ts))
    rfx_end = compute_date_ranges(out["RFXENDTC"])["lo"].fillna(rfx_start).where(rfx_start.notna())
    from_ex = out["USUBJID"].isin(dated)
    trtsdt = ex_start.where(from_ex, rfx_start)
    trtedt = ex_end.where(from_ex, rfx_end)
    trtedt = trtedt.where(trtedt.isna() | (trtedt >= trtsdt), trtsdt)
    trtedt = trtedt.where(~(trtedt > cutoff_ts), cutoff_ts)

    death = compute_date_ranges(out["DTHDTC"])
    partial_death = death["level"].isin([LEVEL_DAY, LEVEL_MONTH])
    dthdt = death["lo"].where(~partial_death | trtedt.isna() | (death["lo"] >= trtedt), trtedt)
    dthdt = dthdt.where(~(dthdt > cutoff_ts))  # a death after the cutoff is not a death of this cut

    saffl = trtsdt.notna() & (trtsdt <= cutoff_ts)
    window_end = pd.concat([trtedt + window, dthdt, pd.Series(cutoff_ts, index=out.index)], axis=1).min(axis=1)
    window_end = window_end.where(window_end >= trtsdt, trtsdt).where(saffl)
    days = (window_end - trtsdt).dt.days + 1

    out["TRTSDT"] = trtsdt
    out["TRTEDT"] = trtedt
    out["DTHDT"] = dthdt
    out["SAFFL"] = saffl.astype(bool)
    out["WINDOW_END"] = window_end.astype("datetime64[ns]")
    out["DAYS_AT_RISK"] = days.astype("Int64")
    out["N_DOSES"] = out["USUBJID"].map(by_subject["N_DOSES"]).fillna(0).astype(int)
    return out
