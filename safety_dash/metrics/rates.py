"""Incidence and exposure-adjusted rates per group and per SOC, PT or basket (DOMAIN.md §4).

Everything is computed with group-bys on integer codes and vectorised intervals, never a loop per subject or term.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from safety_dash.metrics.baskets import derive_basket_events
from safety_dash.metrics.events import flag_qualifying_events
from safety_dash.metrics.exposure import check_columns
from safety_dash.metrics.intervals import (
    compute_clopper_pearson,
    compute_exact_rate_interval,
    compute_rate_difference_mn,
    compute_rate_difference_wald,
)

DAYS_PER_YEAR = 365.25
ALL_GROUP = "ALL"
MISSING_GROUP = "(missing)"
BY_VALUES = ("soc", "pt", "basket")
RATE_TABLE_COLUMNS = [
    "group",
    "soc",
    "pt",
    "n_subjects",
    "n_with_event",
    "incidence_pct",
    "incidence_ci_low",
    "incidence_ci_high",
    "n_events",
    "patient_years_at_risk",
    "eair_per_100py",
    "eair_ci_low",
    "eair_ci_high",
    "exposure_years",
    "eaer_per_100py",
    "median_onset_day",
]
SUBJECT_COLUMNS = ("USUBJID", "SAFFL", "DAYS_AT_RISK")
#: Required event columns; EVENT_ID is used when present (derive_events adds it), else each AE_ID is one event.
EVENT_COLUMNS = ("USUBJID", "AE_ID", "SOC", "PT", "ASTDY", "COUNTED", "GRADE", "SERIOUS", "RELATED")


def derive_safety_groups(subjects: pd.DataFrame, group_col: str) -> pd.DataFrame:
    """The safety population (SAFFL) with ``GROUP``: the text of ``group_col``, '(missing)' where it is empty.

    Fails when ``group_col`` is not a column of ``subjects`` or a group is literally named 'ALL' (that name is kept
    for the whole safety population).
    """
    check_columns(subjects, SUBJECT_COLUMNS, "subjects")
    if not isinstance(group_col, str) or group_col not in subjects.columns:
        raise ValueError(
            f"`group_col` {group_col!r} is not a column of `subjects`; name the grouping column "
            "(e.g. COHORT or ACTARM) as it appears in DM."
        )
    safety = subjects.loc[subjects["SAFFL"].astype(bool)].copy()
    raw = safety[group_col]
    labels = raw.astype(object).where(raw.notna(), "").astype(str).str.strip()
    safety["GROUP"] = labels.where(labels != "", MISSING_GROUP)
    if (safety["GROUP"] == ALL_GROUP).any():
        raise ValueError(
            f"`{group_col}` has a group named {ALL_GROUP!r}, the name reserved for the whole safety population; "
            "rename that group before computing rates."
        )
    return safety


def compute_group_order(safety: pd.DataFrame) -> list[str]:
    """The groups of a rate or signal table in order: ``ALL``, then each ``GROUP`` of ``safety`` sorted."""
    return [ALL_GROUP, *sorted(safety["GROUP"].unique())]


def _term_events(events: pd.DataFrame, by: str, baskets: Mapping | None) -> tuple[np.ndarray, ...]:
    """Arrays (USUBJID, onset day, EVENT_ID, soc, pt) of the records at the chosen term level."""
    if by == "basket":
        events = derive_basket_events(events, baskets)
        pt = events["BASKET"].to_numpy(dtype=object)
        soc = np.full(len(events), "", dtype=object)
    else:
        soc = events["SOC"].to_numpy(dtype=object)
        pt = events["PT"].to_numpy(dtype=object) if by == "pt" else np.full(len(events), "", dtype=object)
    day = events["ASTDY"].to_numpy(dtype="float64", na_value=np.nan)
    event_id = events["EVENT_ID" if "EVENT_ID" in events.columns else "AE_ID"].to_numpy()
    return events["USUBJID"].to_numpy(dtype=object), day, event_id, soc, pt


def _code_terms(soc: np.ndarray, pt: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
    """Integer term codes numbered in (soc, pt) order, and the table of terms."""
    soc_code, soc_values = pd.factorize(soc, sort=True)
    pt_code, pt_values = pd.factorize(pt, sort=True)
    pair_code, pairs = pd.factorize(soc_code.astype(np.int64) * max(len(pt_values), 1) + pt_code, sort=True)
    width = max(len(pt_values), 1)
    terms = pd.DataFrame(
        {
            "soc": np.asarray(soc_values, dtype=object)[pairs // width],
            "pt": np.asarray(pt_values, dtype=object)[pairs % width],
        }
    )
    return pair_code, terms


def compute_subject_term_pairs(
    events: pd.DataFrame, qualifying: np.ndarray, safety: pd.DataFrame, by: str, baskets: Mapping | None
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Per safety subject and term with a qualifying event: first onset day and number of qualifying events
    (distinct EVENT_IDs: an episode of several records is one event; without EVENT_ID, distinct AE_IDs).

    ``qualifying`` is a boolean array over ``events`` (:func:`~safety_dash.metrics.events.flag_qualifying_events`),
    ``safety`` the frame of :func:`derive_safety_groups`. Returns (pairs, terms): ``pairs`` holds equal-length
    arrays ``subject`` (row position in ``safety``), ``term`` (row position in ``terms``), ``first_day`` (study
    day of the first qualifying onset) and ``n_events``; ``terms`` has columns soc and pt in (soc, pt) order.
    """
    if by == "basket":
        columns = [name for name in ("AE_ID", "EVENT_ID", "USUBJID", "PT", "ASTDY") if name in events.columns]
        usubjid, day, event_id, soc, pt = _term_events(events.loc[qualifying, columns], by, baskets)
    else:
        usubjid, day, event_id, soc, pt = (values[qualifying] for values in _term_events(events, by, baskets))
    subject_pos = pd.Index(safety["USUBJID"]).get_indexer(usubjid)
    in_safety = subject_pos >= 0
    term_code, terms = _code_terms(soc[in_safety], pt[in_safety])
    width = max(len(terms), 1)
    key = subject_pos[in_safety].astype(np.int64) * width + term_code
    per_record = pd.DataFrame({"key": key, "day": day[in_safety], "event": event_id[in_safety]})
    first_day = per_record.groupby("key", sort=True)["day"].min()
    n_events = per_record.drop_duplicates(["key", "event"]).groupby("key", sort=True).size()
    pairs = {
        "subject": first_day.index.to_numpy() // width,
        "term": first_day.index.to_numpy() % width,
        "first_day": first_day.to_numpy(dtype=float),
        "n_events": n_events.to_numpy(dtype=float),
    }
    return pairs, terms


def _cell_totals(
    cells: np.ndarray, size: int, first_day: np.ndarray, days_at_risk: np.ndarray, n_events: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Per group x term cell (pairs listed twice in ``cells``: own group, then ALL): subjects, sum of first onset
    days, sum of their days at risk, qualifying records, and median first onset day."""

    def cell_sum(weights: np.ndarray | None = None) -> np.ndarray:
        stacked = None if weights is None else np.concatenate([weights, weights])
        return np.bincount(cells, weights=stacked, minlength=size).astype(float)

    median = np.full(size, np.nan)
    medians = pd.Series(np.concatenate([first_day, first_day])).groupby(cells).median()
    median[medians.index.to_numpy()] = medians.to_numpy()
    return cell_sum(), cell_sum(first_day), cell_sum(days_at_risk), cell_sum(n_events), median


def compute_rate_table(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    by: str,
    group_col: str,
    baskets: Mapping[str, frozenset[str]] | None = None,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> pd.DataFrame:
    """Crude incidence, EAIR and EAER per group and term, with exact intervals (DOMAIN.md §4).

    ``events`` is :func:`~safety_dash.metrics.events.derive_events`, ``subjects``
    :func:`~safety_dash.metrics.exposure.derive_subject_exposure` of the same cut. ``by`` is 'soc' (``pt`` empty),
    'pt' (``soc`` and ``pt``) or 'basket' (the basket name in ``pt``, ``soc`` empty; ``baskets`` from
    :func:`~safety_dash.metrics.baskets.parse_baskets`). Groups are the values of ``group_col`` among the safety
    population ('(missing)' when empty), after the whole safety population as group 'ALL'.

    Qualifying events are :func:`~safety_dash.metrics.events.flag_qualifying_events`: COUNTED (treatment-emergent,
    onset on or before the subject's risk window end, so never after the cutoff or death) and, when asked, of grade
    >= ``min_grade`` (an unknown grade does not pass), serious, related, judged per event (an episode by its worst
    grade). There is a row for every group and every term with a qualifying event in any group, zeros included.
    Per row: N = safety subjects of the group; x = subjects with a qualifying event; incidence 100 x / N %
    (Clopper–Pearson 95%); n_events = qualifying events, distinct EVENT_IDs (an episode counts once, recurrences
    each); time at risk of a subject = onset day of its first qualifying event (an episode's earliest counted
    onset), else its days at risk; patient-years = sum / 365.25;
    EAIR = 100 x / PY (Garwood exact 95%); exposure_years = the group's days at risk / 365.25;
    EAER = 100 n_events / exposure_years; median_onset_day over subjects with the event (NaN when none).
    Full precision; sorted by group (ALL first), soc, pt; columns exactly :data:`RATE_TABLE_COLUMNS`.
    """
    check_columns(events, EVENT_COLUMNS, "events")
    if by not in BY_VALUES:
        raise ValueError(f"`by` must be one of {', '.join(BY_VALUES)}, not {by!r}.")
    if by == "basket" and not baskets:
        raise ValueError("`by='basket'` needs `baskets`: pass the mapping returned by parse_baskets.")
    safety = derive_safety_groups(subjects, group_col)
    groups = compute_group_order(safety)
    group_code_of = {name: code for code, name in enumerate(groups)}
    subject_group = safety["GROUP"].map(group_code_of).to_numpy(dtype=np.int64)
    subject_days = safety["DAYS_AT_RISK"].to_numpy(dtype="float64", na_value=np.nan)
    n_groups = len(groups)

    qualifying = flag_qualifying_events(events, min_grade, serious, related).to_numpy()
    pairs, terms = compute_subject_term_pairs(events, qualifying, safety, by, baskets)
    n_terms = len(terms)
    # Each subject-term pair counts in its own group's cell and in the ALL cell (group code 0).
    pair_group = subject_group[pairs["subject"]]
    cells = np.concatenate([pair_group * n_terms + pairs["term"], pairs["term"]])
    x, onset_sum, days_of_cases, n_events, median = _cell_totals(
        cells, n_groups * n_terms, pairs["first_day"], subject_days[pairs["subject"]], pairs["n_events"]
    )

    n_subjects = np.bincount(subject_group, minlength=n_groups).astype(float)
    n_subjects[0] = len(safety)
    group_days = np.bincount(subject_group, weights=subject_days, minlength=n_groups)
    group_days[0] = subject_days.sum()

    n_col = np.repeat(n_subjects, n_terms)
    exposure_years = np.repeat(group_days, n_terms) / DAYS_PER_YEAR
    py = (np.repeat(group_days, n_terms) - days_of_cases + onset_sum) / DAYS_PER_YEAR
    incidence_low, incidence_high = compute_clopper_pearson(x, n_col)
    eair_low, eair_high = compute_exact_rate_interval(x, py)

    table = pd.DataFrame(
        {
            "group": np.repeat(np.array(groups, dtype=object), n_terms),
            "soc": np.tile(terms["soc"].to_numpy(dtype=object), n_groups),
            "pt": np.tile(terms["pt"].to_numpy(dtype=object), n_groups),
            "n_subjects": n_col.astype(np.int64),
            "n_with_event": x.astype(np.int64),
            "incidence_pct": 100.0 * x / n_col,
            "incidence_ci_low": 100.0 * np.asarray(incidence_low),
            "incidence_ci_high": 100.0 * np.asarray(incidence_high),
            "n_events": n_events.astype(np.int64),
            "patient_years_at_risk": py,
            "eair_per_100py": 100.0 * x / py,
            "eair_ci_low": 100.0 * np.asarray(eair_low),
            "eair_ci_high": 100.0 * np.asarray(eair_high),
            "exposure_years": exposure_years,
            "eaer_per_100py": 100.0 * n_events / exposure_years,
            "median_onset_day": median,
        },
        columns=RATE_TABLE_COLUMNS,
    )
    return table


def compute_rate_difference(
    table: pd.DataFrame, reference_group: str, alpha: float = 0.05, stratum_col: str | None = None
) -> pd.DataFrame:
    """EAIR difference of every group to ``reference_group``, per term, with Wald and Miettinen–Nurminen intervals.

    ``table`` is :func:`compute_rate_table` output (x = n_with_event, time = patient_years_at_risk). Without
    ``stratum_col`` each (group, soc, pt) row is compared with the reference row of the same term. With
    ``stratum_col``, ``table`` is the concatenation of rate tables computed per stratum (e.g. per study or region)
    with that column added; strata are combined with Mantel–Haenszel weights w = T1 T0 / (T1 + T0). A term missing
    from a stratum's table had no qualifying event there: x = 0 and time at risk = that group's exposure_years in
    the stratum; a group with no row at all in a stratum has no known time there and the stratum drops out for it.
    The 'ALL' rows are not compared (they contain the reference group).

    Returns one row per group (other than the reference and ALL) and term: group, reference_group, soc, pt,
    n_with_event, patient_years_at_risk, ref_n_with_event, ref_patient_years_at_risk (summed over strata),
    eair_difference_per_100py, wald_ci_low, wald_ci_high, wald_z, mn_ci_low, mn_ci_high, mn_z (per 100 PY; the
    z values are the statistics for no difference), with confidence level 1 - ``alpha``.
    """
    check_columns(table, ("group", "soc", "pt", "n_with_event", "patient_years_at_risk", "exposure_years"), "table")
    if reference_group == ALL_GROUP or reference_group not in set(table["group"]):
        raise ValueError(
            f"`reference_group` {reference_group!r} is not a group of the rate table (ALL cannot be the reference); "
            f"choose one of {sorted(set(table['group']) - {ALL_GROUP})}."
        )
    frame = table.loc[table["group"] != ALL_GROUP].copy()
    if stratum_col is None:
        frame["_stratum"] = ""
    else:
        check_columns(table, (stratum_col,), "table")
        frame["_stratum"] = frame[stratum_col].astype(str)
    strata = sorted(frame["_stratum"].unique())
    term_keys = frame[["soc", "pt"]].drop_duplicates().sort_values(["soc", "pt"]).reset_index(drop=True)
    compared = sorted(set(frame["group"]) - {reference_group})

    full = pd.MultiIndex.from_product(
        [compared + [reference_group], range(len(term_keys)), strata], names=["group", "term", "_stratum"]
    )
    frame["term"] = pd.MultiIndex.from_frame(term_keys).get_indexer(pd.MultiIndex.from_frame(frame[["soc", "pt"]]))
    indexed = frame.set_index(["group", "term", "_stratum"])[["n_with_event", "patient_years_at_risk"]]
    grid = indexed.reindex(full)
    exposure = frame.groupby(["group", "_stratum"])["exposure_years"].first()
    fill_time = exposure.reindex(pd.MultiIndex.from_arrays([full.get_level_values(0), full.get_level_values(2)]))
    grid["n_with_event"] = grid["n_with_event"].fillna(0.0)
    grid["patient_years_at_risk"] = grid["patient_years_at_risk"].fillna(pd.Series(fill_time.to_numpy(), index=full))
    grid["patient_years_at_risk"] = grid["patient_years_at_risk"].fillna(0.0)

    shape = (len(compared) + 1, len(term_keys), len(strata))
    y = grid["n_with_event"].to_numpy(dtype=float).reshape(shape)
    t = grid["patient_years_at_risk"].to_numpy(dtype=float).reshape(shape)
    y1, t1 = y[:-1], t[:-1]
    y0, t0 = np.broadcast_to(y[-1:], y1.shape), np.broadcast_to(t[-1:], t1.shape)
    # A comparison with no stratum holding time in both groups has no estimate: NaN, not an error for the table.
    comparable = ((t1 > 0) & (t0 > 0)).any(axis=-1)
    usable = comparable[..., None]
    wald = compute_rate_difference_wald(y1, np.where(usable, t1, 1.0), y0, np.where(usable, t0, 1.0), alpha)
    score = compute_rate_difference_mn(y1, np.where(usable, t1, 1.0), y0, np.where(usable, t0, 1.0), alpha)
    wald = type(wald)(*(np.where(comparable, value, np.nan) for value in wald))
    score = type(score)(*(np.where(comparable, value, np.nan) for value in score))

    n_cells = len(compared) * len(term_keys)
    return pd.DataFrame(
        {
            "group": np.repeat(np.array(compared, dtype=object), len(term_keys)),
            "reference_group": reference_group,
            "soc": np.tile(term_keys["soc"].to_numpy(dtype=object), len(compared)),
            "pt": np.tile(term_keys["pt"].to_numpy(dtype=object), len(compared)),
            "n_with_event": y1.sum(axis=-1).reshape(n_cells).astype(np.int64),
            "patient_years_at_risk": t1.sum(axis=-1).reshape(n_cells),
            "ref_n_with_event": y0.sum(axis=-1).reshape(n_cells).astype(np.int64),
            "ref_patient_years_at_risk": t0.sum(axis=-1).reshape(n_cells),
            "eair_difference_per_100py": 100.0 * np.asarray(score.estimate).reshape(n_cells),
            "wald_ci_low": 100.0 * np.asarray(wald.ci_low).reshape(n_cells),
            "wald_ci_high": 100.0 * np.asarray(wald.ci_high).reshape(n_cells),
            "wald_z": np.asarray(wald.z_null).reshape(n_cells),
            "mn_ci_low": 100.0 * np.asarray(score.ci_low).reshape(n_cells),
            "mn_ci_high": 100.0 * np.asarray(score.ci_high).reshape(n_cells),
            "mn_z": np.asarray(score.z_null).reshape(n_cells),
        }
    )
