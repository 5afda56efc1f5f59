"""Event-level derivations on AE records: coding, onset imputation, the 90-day flag, grade, seriousness, relatedness.

DOMAIN.md §3. Every AE record stays in the output; records outside the window are labelled, never dropped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

import numpy as np
import pandas as pd

from safety_dash.metrics.dates import LEVEL_COMPLETE, LEVEL_YEAR, compute_date_ranges
from safety_dash.metrics.exposure import (
    DEFAULT_WINDOW_DAYS,
    check_columns,
    check_cutoff_and_window,
)

AE_COLUMNS = (
    "AE_ID",
    "USUBJID",
    "AETERM",
    "AEDECOD",
    "AEBODSYS",
    "AETOXGR",
    "AESEV",
    "AESER",
    "AESDTH",
    "AESLIFE",
    "AESHOSP",
    "AESDISAB",
    "AESCONG",
    "AESMIE",
    "AEREL",
    "AEOUT",
    "AESTDTC",
    "AEENDTC",
)
SUBJECT_COLUMNS = ("USUBJID", "TRTSDT", "TRTEDT")
SERIOUS_FLAGS = ("AESER", "AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE")
DEFAULT_RELATED = frozenset({"RELATED", "PROBABLE", "POSSIBLE", "Y"})
SEVERITY_GRADES = {"MILD": 1, "MODERATE": 2, "SEVERE": 3}
TOXICITY_GRADES = {"1": 1, "2": 2, "3": 3, "4": 4, "5": 5}
UNCODED_SOC = "Uncoded"
UNCODED_PREFIX = "Uncoded: "

LABEL_TE, LABEL_PRE, LABEL_POST, LABEL_NOT_DOSED = "treatment-emergent", "pre-treatment", "post-window", "not dosed"


def _normalised(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Factorize codes of ``values`` and their distinct texts stripped and upper-cased ('' for missing, last)."""
    codes, uniques = pd.factorize(values, sort=False)
    texts = [str(item).strip().upper() for item in uniques] + [""]
    return codes, texts


def _flag_text_in(values: pd.Series, accepted: Collection[str]) -> np.ndarray:
    """True where the stripped, upper-cased text is in ``accepted``; each distinct text is looked at once."""
    codes, texts = _normalised(values)
    hit = np.array([text in accepted for text in texts], dtype=bool)
    return hit[codes]


def _map_text(values: pd.Series, mapping: dict[str, int]) -> np.ndarray:
    """Float array of ``mapping`` over the stripped, upper-cased text; NaN for texts not in it."""
    codes, texts = _normalised(values)
    mapped = np.array([mapping.get(text, np.nan) for text in texts], dtype=float)
    return mapped[codes]


def _derive_grade(ae: pd.DataFrame) -> tuple[pd.arrays.IntegerArray, np.ndarray]:
    """GRADE (Int64) and GRADE_SOURCE per DOMAIN.md §3; fails on a toxicity grade outside 1..5."""
    codes, texts = _normalised(ae["AETOXGR"])
    bad = sorted({text for text in texts if text != "" and text not in TOXICITY_GRADES})
    if bad:
        n_bad = int(np.isin(codes, [i for i, text in enumerate(texts) if text in bad]).sum())
        raise ValueError(
            f"`ae` has {n_bad} record(s) with an AETOXGR that is not a whole number 1..5 (e.g. {bad[0]!r}); "
            "quarantine them at ingestion before deriving events."
        )
    toxicity = np.array([TOXICITY_GRADES.get(text, np.nan) for text in texts], dtype=float)[codes]
    fatal = _flag_text_in(ae["AEOUT"], {"FATAL"}) | _flag_text_in(ae["AESDTH"], {"Y"})
    severity = _map_text(ae["AESEV"], SEVERITY_GRADES)

    has_toxicity = ~np.isnan(toxicity)
    is_fatal = ~has_toxicity & fatal
    from_severity = ~has_toxicity & ~fatal & ~np.isnan(severity)
    grade = np.where(has_toxicity, toxicity, np.where(is_fatal, 5.0, severity))
    source = np.select(
        [has_toxicity, is_fatal, from_severity], ["AETOXGR", "fatal", "severity"], default="unknown"
    ).astype(object)
    known = ~np.isnan(grade)
    return pd.arrays.IntegerArray(np.where(known, grade, 0).astype(np.int64), ~known), source


def derive_events(
    ae: pd.DataFrame,
    subjects: pd.DataFrame,
    cutoff: dt.date,
    window_days: int = DEFAULT_WINDOW_DAYS,
    related_values: Collection[str] = DEFAULT_RELATED,
) -> pd.DataFrame:
    """``ae`` with the event-level derivations added (DOMAIN.md §3); every record is kept.

    ``subjects`` is :func:`~safety_dash.metrics.exposure.derive_subject_exposure` for the same cut (TRTSDT, TRTEDT).
    Added columns:

    - ``PT``, ``SOC``, ``UNCODED``: AEDECOD and AEBODSYS; a record missing either is counted under
      PT ``Uncoded: <AETERM>`` and SOC ``Uncoded`` and flagged UNCODED.
    - ``ASTDT``, ``ASTDTF``: onset date imputed as admiral ``derive_vars_dtm`` (highest imputation "M",
      min_dates = first dose): a partial AESTDTC takes the first day of its period, or the first dose date when
      that lies inside the period; a missing AESTDTC takes the first dose date. ASTDTF is the level imputed
      ('' none, 'D' day, 'M' month and day, 'Y' all of it).
    - ``ASTDY``: onset day, ASTDT - TRTSDT + 1 on or after the first dose, ASTDT - TRTSDT before it (no day 0).
    - ``TRTEMFL``: treatment-emergent within the window, TRTSDT <= ASTDT <= TRTEDT + ``window_days``.
    - ``WINDOW_LABEL``: 'treatment-emergent', 'pre-treatment', 'post-window', or 'not dosed' for a subject without
      a first dose date (such a subject's records are never treatment-emergent).
    - ``AFTER_CUTOFF``: ASTDT after the data cutoff (kept and shown, not counted in this cut).
    - ``GRADE``, ``GRADE_SOURCE``: AETOXGR 1..5 ('AETOXGR'); else 5 when AEOUT = FATAL or AESDTH = Y ('fatal');
      else AESEV MILD/MODERATE/SEVERE -> 1/2/3 ('severity'); else NA ('unknown').
    - ``SERIOUS``: AESER, AESDTH, AESLIFE, AESHOSP, AESDISAB, AESCONG or AESMIE = Y.
    - ``RELATED``: AEREL in ``related_values`` (compared stripped and upper-cased).

    Flag texts are compared stripped and case-insensitively. Raises ``ValueError`` for an AETOXGR outside 1..5 or
    a USUBJID not in ``subjects`` (both belong in quarantine, not here). The AE columns of the result share memory
    with ``ae`` (a shallow copy, for speed on a million records): treat both as read-only.
    """
    check_columns(ae, AE_COLUMNS, "ae")
    check_columns(subjects, SUBJECT_COLUMNS, "subjects")
    check_cutoff_and_window(cutoff, window_days)
    if isinstance(related_values, str) or not all(isinstance(value, str) for value in related_values):
        raise TypeError(
            f"`related_values` must be a collection of AEREL texts such as {{'RELATED'}}, not {related_values!r}."
        )
    related_set = {value.strip().upper() for value in related_values}

    subject_index = pd.Index(subjects["USUBJID"])
    if not subject_index.is_unique:
        raise ValueError("`subjects` must hold one row per USUBJID; derive it with derive_subject_exposure.")
    position = subject_index.get_indexer(ae["USUBJID"])
    if (position < 0).any():
        unknown = ae["USUBJID"].to_numpy()[position < 0]
        raise ValueError(
            f"`ae` has {len(unknown)} record(s) of subjects not in `subjects` (e.g. {unknown[0]!r}); "
            "quarantine AEs of subjects missing from DM before deriving events."
        )
    trtsdt = subjects["TRTSDT"].to_numpy(dtype="datetime64[ns]")[position]
    trtedt = subjects["TRTEDT"].to_numpy(dtype="datetime64[ns]")[position]
    dosed = ~np.isnat(trtsdt)

    uncoded = _flag_text_in(ae["AEDECOD"], {""}) | _flag_text_in(ae["AEBODSYS"], {""})
    pt = ae["AEDECOD"].to_numpy(dtype=object).copy()
    pt[uncoded] = [UNCODED_PREFIX + ("" if pd.isna(term) else str(term)) for term in ae["AETERM"].to_numpy()[uncoded]]
    soc = np.where(uncoded, UNCODED_SOC, ae["AEBODSYS"].to_numpy(dtype=object))

    onset = compute_date_ranges(ae["AESTDTC"])
    lo = onset["lo"].to_numpy(dtype="datetime64[ns]")
    hi = onset["hi"].to_numpy(dtype="datetime64[ns]")
    level = onset["level"].to_numpy(dtype=object)
    complete = level == LEVEL_COMPLETE
    missing = level == LEVEL_YEAR
    dose_in_range = dosed & ~missing & (trtsdt >= lo) & (trtsdt <= hi)
    astdt = np.where(complete, lo, np.where(missing | dose_in_range, trtsdt, lo))

    days_from_first = (astdt - trtsdt) / np.timedelta64(1, "D")
    astdy = np.where(days_from_first >= 0, days_from_first + 1, days_from_first)
    window_end = trtedt + np.timedelta64(int(window_days), "D")
    with np.errstate(invalid="ignore"):
        pre = dosed & (astdt < trtsdt)
        post = dosed & (astdt > window_end)
    trtemfl = dosed & ~np.isnat(astdt) & ~pre & ~post
    label = np.select([~dosed, pre, post], [LABEL_NOT_DOSED, LABEL_PRE, LABEL_POST], default=LABEL_TE).astype(object)
    after_cutoff = ~np.isnat(astdt) & (astdt > np.datetime64(cutoff, "ns"))

    grade, grade_source = _derive_grade(ae)
    serious = np.zeros(len(ae), dtype=bool)
    for column in SERIOUS_FLAGS:
        serious |= _flag_text_in(ae[column], {"Y"})

    known_day = ~np.isnan(astdy)
    added = {
        "PT": pt,
        "SOC": soc,
        "UNCODED": uncoded,
        "ASTDT": astdt,
        "ASTDTF": level,
        "ASTDY": pd.arrays.IntegerArray(np.where(known_day, astdy, 0).astype(np.int64), ~known_day),
        "TRTEMFL": trtemfl,
        "WINDOW_LABEL": label,
        "AFTER_CUTOFF": after_cutoff,
        "GRADE": grade,
        "GRADE_SOURCE": grade_source,
        "SERIOUS": serious,
        "RELATED": _flag_text_in(ae["AEREL"], related_set),
    }
    # A shallow copy: the AE columns are shared with `ae`, not copied (copying a million text rows costs more than
    # every derivation here). Treat both frames as read-only, as pure functions do.
    out = ae.copy(deep=False)
    for column, values in added.items():
        out[column] = values
    return out


def flag_qualifying_events(
    events: pd.DataFrame, min_grade: int | None = None, serious: bool = False, related: bool = False
) -> pd.Series:
    """True for a record counted in this cut's rates: treatment-emergent, onset not after the cutoff, and (when
    asked) grade >= ``min_grade`` (an unknown grade does not pass), serious, related."""
    check_columns(events, ("TRTEMFL", "AFTER_CUTOFF", "GRADE", "SERIOUS", "RELATED"), "events")
    if min_grade is not None and (isinstance(min_grade, bool) or min_grade not in (1, 2, 3, 4, 5)):
        raise ValueError(f"`min_grade` must be None or a CTCAE grade 1..5, not {min_grade!r}.")
    keep = events["TRTEMFL"].to_numpy(dtype=bool) & ~events["AFTER_CUTOFF"].to_numpy(dtype=bool)
    if min_grade is not None:
        keep &= events["GRADE"].to_numpy(dtype="float64", na_value=np.nan) >= min_grade
    if serious:
        keep &= events["SERIOUS"].to_numpy(dtype=bool)
    if related:
        keep &= events["RELATED"].to_numpy(dtype=bool)
    return pd.Series(keep, index=events.index, name="QUALIFYING")


def derive_worst_grade(events: pd.DataFrame) -> pd.DataFrame:
    """Worst grade per subject and PT: the maximum GRADE over the subject's treatment-emergent records of the PT
    counted in this cut (onset not after the cutoff). Columns USUBJID, SOC, PT, WORST_GRADE (Int64, NA when every
    record's grade is unknown), N_RECORDS; one row per USUBJID x SOC x PT with at least one such record."""
    check_columns(events, ("USUBJID", "SOC", "PT", "GRADE", "TRTEMFL", "AFTER_CUTOFF"), "events")
    counted = events.loc[events["TRTEMFL"].astype(bool) & ~events["AFTER_CUTOFF"].astype(bool)]
    worst = (
        counted.groupby(["USUBJID", "SOC", "PT"], sort=True, observed=True)
        .agg(WORST_GRADE=("GRADE", "max"), N_RECORDS=("GRADE", "size"))
        .reset_index()
    )
    return worst.astype({"WORST_GRADE": "Int64", "N_RECORDS": np.int64})
