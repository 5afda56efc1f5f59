"""Signals: terms rising since the previous cut or out of line in a cohort, with double-FDR flags (DOMAIN.md §7).

Two independent Poisson counts are compared by their rate ratio (DOMAIN.md §4 "Rate ratio"): the exact conditional
interval and the one-sided p of R ``poisson.test`` / ``binom.test``. Multiplicity over terms is handled by the
double false discovery rate of Mehrotra & Heyse (Stat Methods Med Res 2004) and Mehrotra & Adewale (Stat Med 2012).
Everything is vectorised over terms and groups: group-bys on integer codes, never a loop per subject or term.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

from safety_dash.metrics.events import flag_qualifying_events
from safety_dash.metrics.exposure import check_columns
from safety_dash.metrics.intervals import compute_clopper_pearson
from safety_dash.metrics.rates import (
    BY_VALUES,
    DAYS_PER_YEAR,
    compute_group_order,
    compute_subject_term_pairs,
    derive_safety_groups,
)

TEST_RISING = "rising"
TEST_COHORT = "cohort"
SIGNAL_TESTS = (TEST_RISING, TEST_COHORT)
FDR_LEVEL = 0.10
MIN_FLAGGED_SUBJECTS = 2
SIGNAL_COLUMNS = [
    "test",
    "group",
    "soc",
    "pt",
    "x1",
    "py1",
    "x0",
    "py0",
    "rate_ratio",
    "rr_ci_low",
    "rr_ci_high",
    "p_one_sided",
    "q_pt",
    "q_soc",
    "flagged",
]
SUBJECT_COLUMNS = ("USUBJID", "SAFFL", "TRTSDT", "WINDOW_END", "DAYS_AT_RISK")
EVENT_COLUMNS = ("USUBJID", "AE_ID", "SOC", "PT", "ASTDY")

ArrayLike = float | int | np.ndarray


class RateRatio(NamedTuple):
    """Rate ratio of group 1 to group 0 with its exact conditional interval and the one-sided p (arrays)."""

    estimate: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_one_sided: np.ndarray


def _check_whole_counts(argument: str, values: np.ndarray) -> None:
    if np.any(np.isnan(values)) or np.any(values < 0) or np.any(values != np.floor(values)):
        raise ValueError(f"`{argument}` must hold whole numbers of subjects >= 0, not {values!r}.")


def _check_times(argument: str, values: np.ndarray) -> None:
    if np.any(~np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"`{argument}` must hold finite times at risk >= 0 (patient-years), not {values!r}.")


def compute_rate_ratio(x1: ArrayLike, py1: ArrayLike, x0: ArrayLike, py0: ArrayLike, alpha: float = 0.05) -> RateRatio:
    """Rate ratio (x1/py1) / (x0/py0) with the exact conditional interval and the one-sided p (DOMAIN.md §4).

    Inputs broadcast together; counts are whole numbers >= 0, times in patient-years >= 0 (any common unit). Given
    n = x0 + x1, x1 ~ Binomial(n, pi) with pi = py1 RR / (py1 RR + py0): the Clopper–Pearson 1 - ``alpha`` interval
    of pi is mapped through RR = pi / (1 - pi) py0 / py1 (R ``poisson.test(c(x1, x0), c(py1, py0))``). The p is
    P(X >= x1) for X ~ Binomial(n, py1 / (py0 + py1)) (R ``binom.test(x1, n, py1 / (py0 + py1), alternative =
    "greater")``): small when group 1's rate is higher.

    Returns arrays of the broadcast shape. Everything is NaN when x0 = x1 = 0. When x0 = 0 (< x1) the estimate and
    the upper bound are +inf, as in R; when x1 = 0 the estimate and lower bound are 0 and p = 1. Where py0 or py1 is
    0 there is no time to compare: estimate and interval NaN, p from pi = 0 or 1 (then 1). Raises ``ValueError``
    for negative or fractional counts, negative or infinite times.
    """
    x1, py1, x0, py0 = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x1, py1, x0, py0)))
    _check_whole_counts("x1", x1)
    _check_whole_counts("x0", x0)
    _check_times("py1", py1)
    _check_times("py0", py0)
    n = x1 + x0
    pi_low, pi_high = (np.asarray(v, dtype=float) for v in compute_clopper_pearson(x1, n, alpha))
    timed = (py1 > 0) & (py0 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        time_ratio = py0 / py1
        estimate = np.where(x0 > 0, (x1 / py1) / (x0 / py0), np.where(x1 > 0, np.inf, np.nan))
        ci_low = pi_low / (1.0 - pi_low) * time_ratio
        ci_high = np.where(pi_high < 1.0, pi_high / (1.0 - pi_high) * time_ratio, np.inf)
        pi_null = py1 / (py0 + py1)
    p = stats.binom.sf(x1 - 1, n, pi_null)
    undefined = n == 0
    estimate, ci_low, ci_high = (np.where(timed & ~undefined, v, np.nan) for v in (estimate, ci_low, ci_high))
    return RateRatio(estimate, ci_low, ci_high, np.where(undefined, np.nan, p))


def _codes(labels: object, size: int) -> np.ndarray:
    """Integer codes of ``labels`` (one family when None)."""
    if labels is None:
        return np.zeros(size, dtype=np.int64)
    values = np.asarray(labels)
    if values.shape != (size,):
        raise ValueError(f"Family labels must be one per p-value ({size}), not of shape {values.shape}.")
    return pd.factorize(values)[0].astype(np.int64)


def compute_bh(p: ArrayLike, family: np.ndarray | None = None) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values, within each family (R ``p.adjust(p, "BH")`` applied per family).

    ``p`` is a 1-D array of p-values in [0, 1]; ``family`` optional labels of the same length (all one family when
    None). Per family of m non-missing p-values ranked i = 1..m: q = min over ranks j >= i of min(1, m p_(j) / j).
    NaN p-values stay NaN and are not counted in m, as R drops NA. Returns a float array of the shape of ``p``.
    """
    p = np.asarray(p, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"`p` must be a 1-D array of p-values, not of shape {p.shape}.")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("`p` must hold p-values between 0 and 1 (NaN for none).")
    codes = _codes(family, len(p))
    q = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    if len(valid) == 0:
        return q
    values, code = p[valid], codes[valid]
    order = np.lexsort((-values, code))  # by family, then p decreasing as R's order(p, decreasing = TRUE)
    sorted_code = code[order]
    size = np.bincount(code)
    start = np.searchsorted(sorted_code, sorted_code, side="left")
    rank = size[sorted_code] - (np.arange(len(order)) - start)  # ascending rank i of each p in its family
    scaled = pd.Series(size[sorted_code] / rank * values[order])
    adjusted = np.minimum(scaled.groupby(sorted_code, sort=False).cummin().to_numpy(), 1.0)
    q[valid[order]] = adjusted
    return q


def compute_double_fdr(
    p: ArrayLike, soc: np.ndarray, family: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Double FDR of Mehrotra & Heyse (2004) / Mehrotra & Adewale (2012) as DOMAIN.md §7 states it.

    ``p`` holds one-sided p-values of PTs, ``soc`` the SOC of each PT and ``family`` (optional) the test x group
    each PT belongs to; all 1-D of one length. Per family: q_pt = BH-adjusted p of the PT among the PTs of its SOC
    (R ``p.adjust(p, "BH")``); p*_SOC = min q_pt in the SOC; q_soc = BH of the p*_SOC across the SOCs of the
    family, repeated on each PT of the SOC. Returns (q_pt, q_soc) float arrays; NaN p-values stay NaN.
    """
    p = np.asarray(p, dtype=float)
    family_code = _codes(family, len(p))
    soc_code = _codes(soc, len(p))
    pair, pair_values = pd.factorize(family_code * (int(soc_code.max(initial=0)) + 1) + soc_code)
    q_pt = compute_bh(p, pair)
    best = pd.Series(q_pt).groupby(pair).min().reindex(np.arange(len(pair_values))).to_numpy()
    pair_family = pair_values // (int(soc_code.max(initial=0)) + 1)
    q_soc = compute_bh(best, pair_family)
    return q_pt, q_soc[pair]


def _check_cutoffs(previous_cutoff: dt.date | None, cutoff: dt.date) -> None:
    for argument, value in (("cutoff", cutoff), ("previous_cutoff", previous_cutoff)):
        if value is None and argument == "previous_cutoff":
            continue
        if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
            raise TypeError(f"`{argument}` must be a datetime.date (a data cutoff), not {value!r}.")
    if previous_cutoff is not None and previous_cutoff >= cutoff:
        raise ValueError(
            f"`previous_cutoff` ({previous_cutoff}) must be before `cutoff` ({cutoff}): pass the cutoff of the "
            "previous succeeded cut, or None for the first cut of a study."
        )


def _pair_days(
    safety: pd.DataFrame, pairs: dict[str, np.ndarray], previous_cutoff: dt.date | None
) -> dict[str, np.ndarray]:
    """Per subject and per subject-term pair, the whole days of DOMAIN.md §7, split at the previous cutoff t0.

    Days are numbered from the first dose (day 1). A subject's days at risk for a term run from day 1 to its first
    qualifying onset day (the onset day counts) or to its days at risk, whichever is first. Days numbered up to
    that of t0 fall before the previous cut, the rest after it, so the two parts add up to the EAIR time.
    """
    days = safety["DAYS_AT_RISK"].to_numpy(dtype="float64", na_value=np.nan)
    subject = pairs["subject"]
    first_day = pairs["first_day"]
    time = np.minimum(first_day, days[subject])
    out = {"days": days, "case_days": days[subject], "case_time": time}
    if previous_cutoff is not None:
        first_dose = safety["TRTSDT"].to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
        day_t0 = (np.datetime64(previous_cutoff, "D") - first_dose).astype(np.int64).astype(float) + 1.0
        before = np.maximum(day_t0, 0.0)
        out["days_before"] = np.minimum(days, before)
        out["case_days_before"] = out["days_before"][subject]
        out["case_time_before"] = np.minimum(time, before[subject])
        out["case_early"] = (first_day <= day_t0[subject]).astype(float)
    return out


def _cell_sums(cells: np.ndarray, size: int, weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per cohort x term cell, the count of pairs and the sum of each weight."""
    sums = {name: np.bincount(cells, weights=values, minlength=size) for name, values in weights.items()}
    sums["x"] = np.bincount(cells, minlength=size).astype(float)
    return sums


def _flag(x1: np.ndarray, q_pt: np.ndarray, q_soc: np.ndarray, hierarchical: bool) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        flagged = (q_pt <= FDR_LEVEL) & (x1 >= MIN_FLAGGED_SUBJECTS)
        if hierarchical:
            flagged &= q_soc <= FDR_LEVEL
    return flagged


def compute_signals(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    by: str,
    group_col: str,
    previous_cutoff: dt.date | None,
    cutoff: dt.date,
    baskets: Mapping[str, frozenset[str]] | None = None,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> pd.DataFrame:
    """Rate ratios, one-sided p, double-FDR q values and flags per test, group and term of one cut (DOMAIN.md §7).

    ``events`` and ``subjects`` are the cut's derived frames (:func:`~safety_dash.metrics.events.derive_events`,
    :func:`~safety_dash.metrics.exposure.derive_subject_exposure`); ``cutoff`` is their data cutoff t1 and
    ``previous_cutoff`` t0, the cutoff of the previous succeeded cut (None for a study's first cut). ``by``,
    ``group_col``, ``baskets`` and the filters are those of :func:`~safety_dash.metrics.rates.compute_rate_table`;
    records qualify by :func:`~safety_dash.metrics.events.flag_qualifying_events`.

    A subject's time at risk for a term runs from its first dose (day 1) to the onset day of its first qualifying
    event of the term, or to its days at risk, whichever is first; patient-years = days / 365.25.

    - ``rising`` (group ALL and each group; only when ``previous_cutoff`` is given): x0 = subjects whose first
      qualifying event of the term has onset <= t0, py0 = the group's time at risk on dates up to t0 (a subject's
      days 1 .. t0 - first dose + 1); x1 = subjects with that onset in (t0, t1], py1 = the time at risk on later
      dates. Both parts are whole days, so py0 + py1 is the EAIR patient-years of the term.
    - ``cohort`` (each group, when there are at least two): x1, py1 = the group's EAIR counts (DOMAIN.md §4); x0,
      py0 = all other groups pooled.

    Per row :func:`compute_rate_ratio` gives rate_ratio, rr_ci_low, rr_ci_high (95%) and p_one_sided. Per test and
    group: ``by='pt'`` gets the double FDR (:func:`compute_double_fdr`) and is flagged when q_soc <= 0.10,
    q_pt <= 0.10 and x1 >= 2; ``by='soc'`` or ``'basket'`` gets q_pt = BH across the terms, q_soc NaN, flagged when
    q_pt <= 0.10 and x1 >= 2. One row per test, group and term with x0 + x1 >= 1, sorted by test (rising first),
    group (ALL first, as in rates), soc, pt; columns exactly :data:`SIGNAL_COLUMNS` (x1, x0 int64, py in years at
    full precision, rr_ci_high and rate_ratio +inf when x0 = 0, flagged bool). Raises ``ValueError`` or
    ``TypeError`` with a sentence for bad arguments or frames of a later cutoff than ``cutoff``.
    """
    check_columns(events, EVENT_COLUMNS, "events")
    check_columns(subjects, SUBJECT_COLUMNS, "subjects")
    if by not in BY_VALUES:
        raise ValueError(f"`by` must be one of {', '.join(BY_VALUES)}, not {by!r}.")
    if by == "basket" and not baskets:
        raise ValueError("`by='basket'` needs `baskets`: pass the mapping returned by parse_baskets.")
    _check_cutoffs(previous_cutoff, cutoff)
    safety = derive_safety_groups(subjects, group_col)
    if (safety["WINDOW_END"] > pd.Timestamp(cutoff)).any() or safety["TRTSDT"].isna().any():
        raise ValueError(
            f"`subjects` has safety subjects without a first dose or with a risk window ending after `cutoff` "
            f"({cutoff}); pass the frames derived for this cutoff."
        )
    groups = compute_group_order(safety)
    n_groups = len(groups)
    subject_group = safety["GROUP"].map({name: code for code, name in enumerate(groups)}).to_numpy(dtype=np.int64)

    qualifying = flag_qualifying_events(events, min_grade, serious, related).to_numpy()
    pairs, terms = compute_subject_term_pairs(events, qualifying, safety, by, baskets)
    n_terms = len(terms)
    days = _pair_days(safety, pairs, previous_cutoff)

    # Cells of the groups proper (code 1..); the ALL row is their sum.
    size = n_groups * n_terms
    cells = subject_group[pairs["subject"]] * n_terms + pairs["term"]
    weights = {name: values for name, values in days.items() if name.startswith("case_")}
    sums = {name: values.reshape(n_groups, n_terms) for name, values in _cell_sums(cells, size, weights).items()}
    group_days = np.bincount(subject_group, weights=days["days"], minlength=n_groups)
    for values in sums.values():
        values[0] = values[1:].sum(axis=0)
    group_days[0] = group_days[1:].sum()
    x = sums["x"]
    py = group_days[:, None] - sums["case_days"] + sums["case_time"]

    blocks = []
    if previous_cutoff is not None:
        group_before = np.bincount(subject_group, weights=days["days_before"], minlength=n_groups)
        group_before[0] = group_before[1:].sum()
        py0 = group_before[:, None] - sums["case_days_before"] + sums["case_time_before"]
        x0 = sums["case_early"]
        blocks.append((TEST_RISING, np.arange(n_groups), x - x0, py - py0, x0, py0))
    if n_groups > 2:
        blocks.append((TEST_COHORT, np.arange(1, n_groups), x[1:], py[1:], x[0] - x[1:], py[0] - py[1:]))
    return _signal_table(blocks, groups, terms, by == "pt")


def _signal_table(blocks: list[tuple], groups: list[str], terms: pd.DataFrame, hierarchical: bool) -> pd.DataFrame:
    """Rows with x0 + x1 >= 1 of the (test, groups, x1, py1, x0, py0) blocks, with rate ratios, q and flags."""
    n_terms = len(terms)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in ("test", "group", "term", "x1", "py1", "x0", "py0")}
    for test, group_codes, x1, py1, x0, py0 in blocks:
        keep = ((x1 + x0) >= 1).ravel()
        parts["test"].append(np.full(int(keep.sum()), SIGNAL_TESTS.index(test)))
        parts["group"].append(np.repeat(group_codes, n_terms)[keep])
        parts["term"].append(np.tile(np.arange(n_terms), len(group_codes))[keep])
        for name, values in (("x1", x1), ("py1", py1), ("x0", x0), ("py0", py0)):
            parts[name].append(values.ravel()[keep])
    rows = {name: np.concatenate(values) if values else np.array([]) for name, values in parts.items()}
    test, group, term = (rows[name].astype(np.int64) for name in ("test", "group", "term"))
    py1, py0 = rows["py1"] / DAYS_PER_YEAR, rows["py0"] / DAYS_PER_YEAR
    ratio = compute_rate_ratio(rows["x1"], py1, rows["x0"], py0)

    family = test * len(groups) + group
    soc = terms["soc"].to_numpy(dtype=object)[term]
    if hierarchical:
        q_pt, q_soc = compute_double_fdr(ratio.p_one_sided, pd.factorize(soc)[0], family)
    else:
        q_pt, q_soc = compute_bh(ratio.p_one_sided, family), np.full(len(test), np.nan)
    return pd.DataFrame(
        {
            "test": np.array(SIGNAL_TESTS, dtype=object)[test],
            "group": np.array(groups, dtype=object)[group],
            "soc": soc,
            "pt": terms["pt"].to_numpy(dtype=object)[term],
            "x1": rows["x1"].astype(np.int64),
            "py1": py1,
            "x0": rows["x0"].astype(np.int64),
            "py0": py0,
            "rate_ratio": ratio.estimate,
            "rr_ci_low": ratio.ci_low,
            "rr_ci_high": ratio.ci_high,
            "p_one_sided": ratio.p_one_sided,
            "q_pt": q_pt,
            "q_soc": q_soc,
            "flagged": _flag(rows["x1"], q_pt, q_soc, hierarchical),
        },
        columns=SIGNAL_COLUMNS,
    )


def compute_signal_subjects(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    by: str,
    group_col: str,
    test: str,
    group: str,
    soc: str,
    pt: str,
    previous_cutoff: dt.date | None,
    baskets: Mapping[str, frozenset[str]] | None = None,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> pd.DataFrame:
    """The subjects counted in x1 and x0 of one row of :func:`compute_signals` (same arguments, same rules).

    ``test``, ``group``, ``soc`` and ``pt`` name the row (``pt`` '' for ``by='soc'``). Returns one row per subject
    with a qualifying event of the term in the row's comparison, columns USUBJID, GROUP, FIRST_ONSET_DAY (study day
    of the first qualifying onset), FIRST_ONSET_DATE and PART: 1 for x1 (``rising``: onset after the previous
    cutoff; ``cohort``: a subject of ``group``), 0 for x0. Sorted by PART (x1 first), onset day, USUBJID.
    """
    if test not in SIGNAL_TESTS:
        raise ValueError(f"`test` must be one of {', '.join(SIGNAL_TESTS)}, not {test!r}.")
    if test == TEST_RISING and previous_cutoff is None:
        raise ValueError("`test='rising'` needs `previous_cutoff`: the first cut of a study has no rising rows.")
    check_columns(events, EVENT_COLUMNS, "events")
    check_columns(subjects, SUBJECT_COLUMNS, "subjects")
    safety = derive_safety_groups(subjects, group_col)
    qualifying = flag_qualifying_events(events, min_grade, serious, related).to_numpy()
    pairs, terms = compute_subject_term_pairs(events, qualifying, safety, by, baskets)
    term_pt = terms["pt"].fillna("").astype(str).to_numpy()
    match = np.flatnonzero((terms["soc"].to_numpy() == soc) & (term_pt == (pt or "")))
    columns = ["USUBJID", "GROUP", "FIRST_ONSET_DAY", "FIRST_ONSET_DATE", "PART"]
    if len(match) == 0:
        return pd.DataFrame(columns=columns)
    chosen = pairs["term"] == match[0]
    position = pairs["subject"][chosen]
    rows = safety.iloc[position]
    first_day = pairs["first_day"][chosen]
    out = pd.DataFrame(
        {
            "USUBJID": rows["USUBJID"].to_numpy(),
            "GROUP": rows["GROUP"].to_numpy(),
            "FIRST_ONSET_DAY": first_day.astype(np.int64),
            "FIRST_ONSET_DATE": rows["TRTSDT"].to_numpy() + pd.to_timedelta(first_day - 1, unit="D"),
        }
    )
    in_group = (out["GROUP"] == group).to_numpy()
    if test == TEST_RISING:
        if group != "ALL":
            out = out[in_group]
        out["PART"] = (out["FIRST_ONSET_DATE"] > pd.Timestamp(previous_cutoff)).astype(int)
    else:
        out["PART"] = in_group.astype(int)
    return out.sort_values(["PART", "FIRST_ONSET_DAY", "USUBJID"], ascending=[False, True, True]).reset_index(
        drop=True
    )[columns]
