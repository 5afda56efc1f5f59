"""Event-level derivations on AE records: coding, onset imputation, the 90-day flag, counted events, grade,
seriousness, relatedness and episodes.

DOMAIN.md §1 (terms) and §3. Every AE record stays in the output; records outside the window are labelled, never
dropped.
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
from safety_dash.metrics.terms import compute_canonical_terms, term_key

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
SUBJECT_COLUMNS = ("USUBJID", "TRTSDT", "TRTEDT", "DTHDT", "WINDOW_END")
SERIOUS_FLAGS = ("AESER", "AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE")
DEFAULT_RELATED = frozenset({"RELATED", "PROBABLE", "POSSIBLE", "Y"})
FATAL_GRADE = 5
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


def _derive_terms(ae: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PT, SOC and UNCODED (DOMAIN.md §1, §3 "not yet coded"): the dictionary terms in their most frequent spelling
    among the coded records of ``ae``; a record missing AEDECOD or AEBODSYS is 'Uncoded: <AETERM>' / 'Uncoded'."""
    uncoded = _flag_text_in(ae["AEDECOD"], {""}) | _flag_text_in(ae["AEBODSYS"], {""})
    # Only coded records vote for a spelling: an uncoded record's AEDECOD is never shown.
    voters = ~uncoded if uncoded.any() else None
    pt = compute_canonical_terms(ae["AEDECOD"], voters).to_numpy(dtype=object)
    soc = compute_canonical_terms(ae["AEBODSYS"], voters).to_numpy(dtype=object)
    pt[uncoded] = [UNCODED_PREFIX + ("" if pd.isna(term) else str(term)) for term in ae["AETERM"].to_numpy()[uncoded]]
    soc[uncoded] = UNCODED_SOC
    return pt, soc, uncoded


def _derive_event_ids(ae: pd.DataFrame, pt: np.ndarray, episode_key: str | None) -> np.ndarray:
    """EVENT_ID: AE_ID, or for records of one episode (same subject, same non-empty ``episode_key`` text, stripped,
    and the same PT compared as a dictionary term) the smallest AE_ID among them."""
    ae_id = ae["AE_ID"].to_numpy(dtype=np.int64)
    if episode_key is None:
        return ae_id.copy()
    key_codes, key_values = pd.factorize(ae[episode_key], sort=False)
    key_text = np.array(["" if pd.isna(value) else str(value).strip() for value in key_values] + [""], dtype=object)
    key = key_text[key_codes]
    has_key = key != ""
    if not has_key.any():
        return ae_id.copy()
    pt_codes, pt_values = pd.factorize(pt, sort=False)
    pt_key = pd.factorize(np.array([term_key(value) for value in pt_values], dtype=object))[0][pt_codes]
    frame = pd.DataFrame(
        {
            "USUBJID": ae["USUBJID"].to_numpy()[has_key],
            "KEY": key[has_key],
            "PT": pt_key[has_key],
            "AE_ID": ae_id[has_key],
        }
    )
    event_id = ae_id.copy()
    event_id[has_key] = frame.groupby(["USUBJID", "KEY", "PT"], sort=False)["AE_ID"].transform("min").to_numpy()
    return event_id


def derive_events(
    ae: pd.DataFrame,
    subjects: pd.DataFrame,
    cutoff: dt.date,
    window_days: int = DEFAULT_WINDOW_DAYS,
    related_values: Collection[str] = DEFAULT_RELATED,
    episode_key: str | None = None,
) -> pd.DataFrame:
    """``ae`` with the event-level derivations added (DOMAIN.md §1 terms, §3); every record is kept.

    ``subjects`` is :func:`~safety_dash.metrics.exposure.derive_subject_exposure` for the same cut, cutoff and
    ``window_days`` (TRTSDT, TRTEDT, DTHDT, WINDOW_END). ``ae`` is the cut's AE records; the terms' spellings are
    taken from it. Added columns, one value per record:

    - ``PT``, ``SOC`` (text), ``UNCODED`` (bool): AEDECOD and AEBODSYS as dictionary terms, compared without regard
      to case and surrounding blanks and shown in their most frequent spelling among the coded records of ``ae``
      (ties: the smallest in sort order; :func:`~safety_dash.metrics.terms.compute_canonical_terms`). A record
      missing either is counted under PT ``Uncoded: <AETERM>`` and SOC ``Uncoded`` and flagged UNCODED.
    - ``ASTDT`` (datetime64[ns]), ``ASTDTF`` (text): onset date imputed as admiral ``derive_vars_dtm`` (highest
      imputation "M", min_dates = first dose): a partial AESTDTC takes the first day of its period, or the first
      dose date when that lies inside the period; a missing AESTDTC (or one whose year is unknown) takes the first
      dose date. ASTDTF is the level imputed ('' none, 'D' day, 'M' month and day, 'Y' all of it). A time part and
      a UTC offset are ignored (:mod:`~safety_dash.metrics.dates`).
    - ``ASTDY`` (Int64): onset day, ASTDT - TRTSDT + 1 on or after the first dose, ASTDT - TRTSDT before it (no
      day 0; admiral ``derive_vars_dy``).
    - ``TRTEMFL`` (bool): treatment-emergent within the window, TRTSDT <= ASTDT <= TRTEDT + ``window_days``
      (admiral ``derive_var_trtemfl`` with ``end_window``), except a record whose end date is before TRTSDT: it
      started and ended before treatment, whatever its imputed onset (admiral's rule). The end date is AEENDTC's
      last day (a partial AEENDTC stands for the last day of its period; an empty one, or one whose year is
      unknown, excludes nothing).
    - ``WINDOW_LABEL`` (text): 'treatment-emergent', 'pre-treatment' (onset before the first dose, or ended before
      it), 'post-window', or 'not dosed' for a subject without a first dose date in this cut (such a subject's
      records are never treatment-emergent).
    - ``AFTER_CUTOFF`` (bool): ASTDT after the data cutoff (kept and shown, not counted in this cut).
    - ``AFTER_DEATH`` (bool): ASTDT after the subject's death date DTHDT (a death of this cut): a data query,
      shown and not counted.
    - ``COUNTED`` (bool): counted (qualifying) in this cut's rates: TRTEMFL and ASTDT <= the subject's WINDOW_END
      = min(TRTEDT + W, DTHDT, cutoff), so never after the cutoff and never after death (DOMAIN.md §3).
    - ``GRADE`` (Int64), ``GRADE_SOURCE`` (text): AETOXGR 1..5 ('AETOXGR'); else 5 when AEOUT = FATAL or
      AESDTH = Y ('fatal'); else AESEV MILD/MODERATE/SEVERE -> 1/2/3 ('severity'); else NA ('unknown').
    - ``SERIOUS`` (bool): AESER, AESDTH, AESLIFE, AESHOSP, AESDISAB, AESCONG or AESMIE = Y, or AEOUT = FATAL, or
      GRADE 5 (ICH E2A: an event that results in death is serious).
    - ``RELATED`` (bool): AEREL in ``related_values`` (compared stripped and upper-cased).
    - ``EVENT_ID`` (int64): the event a record belongs to. By default each record is one event: its AE_ID. With
      ``episode_key`` (a column of ``ae``, e.g. AEGRPID, for sources writing one record per grade period), the
      records of a subject with the same non-empty key (stripped) and the same PT (as a dictionary term) are one
      event, identified by their smallest AE_ID. Rates count distinct EVENT_IDs
      (:func:`flag_qualifying_events` explains how an episode qualifies).

    Flag texts are compared stripped and case-insensitively. Raises ``ValueError`` for an AETOXGR outside 1..5, a
    USUBJID not in ``subjects`` (both belong in quarantine, not here), or an ``episode_key`` that is not a column
    of ``ae``. AE_ID must be a whole number per record. The AE columns of the result share memory with ``ae`` (a
    shallow copy, for speed on a million records): treat both as read-only.
    """
    check_columns(ae, AE_COLUMNS, "ae")
    check_columns(subjects, SUBJECT_COLUMNS, "subjects")
    check_cutoff_and_window(cutoff, window_days)
    if isinstance(related_values, str) or not all(isinstance(value, str) for value in related_values):
        raise TypeError(
            f"`related_values` must be a collection of AEREL texts such as {{'RELATED'}}, not {related_values!r}."
        )
    if episode_key is not None and (not isinstance(episode_key, str) or episode_key not in ae.columns):
        raise ValueError(
            f"`episode_key` {episode_key!r} is not a column of `ae`; name the AE column that groups the records of "
            "one event (e.g. AEGRPID), or pass None to count each record as one event."
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

    def subject_dates(column: str) -> np.ndarray:
        return subjects[column].to_numpy(dtype="datetime64[ns]")[position]

    trtsdt, trtedt = subject_dates("TRTSDT"), subject_dates("TRTEDT")
    dthdt, risk_end = subject_dates("DTHDT"), subject_dates("WINDOW_END")
    dosed = ~np.isnat(trtsdt)

    pt, soc, uncoded = _derive_terms(ae)

    onset = compute_date_ranges(ae["AESTDTC"])
    lo = onset["lo"].to_numpy(dtype="datetime64[ns]")
    hi = onset["hi"].to_numpy(dtype="datetime64[ns]")
    level = onset["level"].to_numpy(dtype=object)
    complete = level == LEVEL_COMPLETE
    missing = level == LEVEL_YEAR
    dose_in_range = dosed & ~missing & (trtsdt >= lo) & (trtsdt <= hi)
    astdt = np.where(complete, lo, np.where(missing | dose_in_range, trtsdt, lo))
    # A partial end date stands for the last day of its period (DOMAIN.md §3).
    aendt = compute_date_ranges(ae["AEENDTC"])["hi"].to_numpy(dtype="datetime64[ns]")

    days_from_first = (astdt - trtsdt) / np.timedelta64(1, "D")
    astdy = np.where(days_from_first >= 0, days_from_first + 1, days_from_first)
    window_end = trtedt + np.timedelta64(int(window_days), "D")
    # Comparisons with NaT are False, so an unknown date never flags anything.
    pre = dosed & ((astdt < trtsdt) | (aendt < trtsdt))
    post = dosed & ~pre & (astdt > window_end)
    trtemfl = dosed & ~np.isnat(astdt) & ~pre & ~post
    label = np.select([~dosed, pre, post], [LABEL_NOT_DOSED, LABEL_PRE, LABEL_POST], default=LABEL_TE).astype(object)
    after_cutoff = astdt > np.datetime64(cutoff, "ns")
    after_death = astdt > dthdt
    counted = trtemfl & (astdt <= risk_end)

    grade, grade_source = _derive_grade(ae)
    serious = _flag_text_in(ae["AEOUT"], {"FATAL"}) | (grade.to_numpy(dtype="float64", na_value=np.nan) == FATAL_GRADE)
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
        "AFTER_DEATH": after_death,
        "COUNTED": counted,
        "GRADE": grade,
        "GRADE_SOURCE": grade_source,
        "SERIOUS": serious,
        "RELATED": _flag_text_in(ae["AEREL"], related_set),
        "EVENT_ID": _derive_event_ids(ae, pt, episode_key),
    }
    # A shallow copy: the AE columns are shared with `ae`, not copied (copying a million text rows costs more than
    # every derivation here). Treat both frames as read-only, as pure functions do.
    out = ae.copy(deep=False)
    for column, values in added.items():
        out[column] = values
    return out


def _any_per_event(codes: np.ndarray, size: int, values: np.ndarray) -> np.ndarray:
    """Per record: True when any record of its event (same code) has ``values`` True."""
    return (np.bincount(codes, weights=values.astype(np.float64), minlength=size) > 0)[codes]


def flag_qualifying_events(
    events: pd.DataFrame, min_grade: int | None = None, serious: bool = False, related: bool = False
) -> pd.Series:
    """True for a record counted in this cut's rates (DOMAIN.md §3, §4): COUNTED (treatment-emergent, onset on or
    before the subject's risk window end) and, when asked, of an event of grade >= ``min_grade``, serious, related.

    The filters apply to the event (EVENT_ID), not to each record: an event's grade is the worst GRADE over its
    counted records (an unknown grade does not pass; a known one wins over unknown), and it is serious / related
    when any of its counted records is. Every counted record of a qualifying event is flagged, so the event keeps
    its earliest counted onset (DOMAIN.md §3 Episodes: "counted once, with its earliest onset and its worst
    grade"). For ``min_grade=3`` an episode that began at grade 1 on day 10 and reached grade 3 on day 30 is one
    grade >= 3 event with onset day 10, as CTCAE reports an adverse event at its worst grade. Records not counted in
    this cut (pre-treatment, post-window, after the cutoff or death) never lend their grade or seriousness to an
    event. Without episodes (EVENT_ID = AE_ID) the filters are simply per record.

    Count events as distinct EVENT_IDs among the flagged records. ``events`` without an EVENT_ID column (frames
    built by hand) count each record as one event. Returns a boolean Series named QUALIFYING, indexed like
    ``events``.
    """
    check_columns(events, ("COUNTED", "GRADE", "SERIOUS", "RELATED"), "events")
    if min_grade is not None and (isinstance(min_grade, bool) or min_grade not in (1, 2, 3, 4, 5)):
        raise ValueError(f"`min_grade` must be None or a CTCAE grade 1..5, not {min_grade!r}.")
    counted = events["COUNTED"].to_numpy(dtype=bool)
    keep = counted.copy()
    if min_grade is not None or serious or related:
        if "EVENT_ID" in events.columns:
            codes, uniques = pd.factorize(events["EVENT_ID"], sort=False)
            size = len(uniques) + 1
            codes = np.where(codes < 0, size - 1, codes)  # a missing EVENT_ID shares the last slot
        else:
            codes, size = np.arange(len(events)), len(events)
        if min_grade is not None:
            grade = events["GRADE"].to_numpy(dtype="float64", na_value=np.nan)
            passes = counted & (np.nan_to_num(grade, nan=0.0) >= min_grade)
            keep &= _any_per_event(codes, size, passes)
        if serious:
            keep &= _any_per_event(codes, size, counted & events["SERIOUS"].to_numpy(dtype=bool))
        if related:
            keep &= _any_per_event(codes, size, counted & events["RELATED"].to_numpy(dtype=bool))
    return pd.Series(keep, index=events.index, name="QUALIFYING")


def derive_worst_grade(events: pd.DataFrame) -> pd.DataFrame:
    """Worst grade per subject and PT: the maximum GRADE over the subject's records of the PT counted in this cut
    (COUNTED: treatment-emergent, onset on or before the risk window end). Columns USUBJID, SOC, PT, WORST_GRADE
    (Int64, NA when every record's grade is unknown), N_RECORDS (counted records); one row per USUBJID x SOC x PT
    with at least one such record. DOMAIN.md §3 Worst grade."""
    check_columns(events, ("USUBJID", "SOC", "PT", "GRADE", "COUNTED"), "events")
    counted = events.loc[events["COUNTED"].astype(bool)]
    worst = (
        counted.groupby(["USUBJID", "SOC", "PT"], sort=True, observed=True)
        .agg(WORST_GRADE=("GRADE", "max"), N_RECORDS=("GRADE", "size"))
        .reset_index()
    )
    return worst.astype({"WORST_GRADE": "Int64", "N_RECORDS": np.int64})
