"""Time to onset of the first qualifying event: median and IQR, and cumulative incidence with death as a competing
event (Aalen–Johansen; DOMAIN.md §4, SAVVY project, Trials 2021).

Pass the events of interest (e.g. one PT, or a basket's rows from ``derive_basket_events``); "first qualifying event"
is then the subject's first of those that passes the same filters as the rate table.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import AalenJohansenFitter

from safety_dash.metrics.events import flag_qualifying_events
from safety_dash.metrics.exposure import check_columns
from safety_dash.metrics.rates import ALL_GROUP, derive_safety_groups

ONSET_SUMMARY_COLUMNS = ["group", "n_subjects", "n_with_event", "median_onset_day", "q1_onset_day", "q3_onset_day"]
CUMULATIVE_INCIDENCE_COLUMNS = ["group", "day", "cumulative_incidence", "ci_low", "ci_high"]
#: Censoring and competing deaths are placed this fraction of a day after the events of interest of the same day.
TIE_OFFSET = 0.25
CENSORED, EVENT, COMPETING = 0, 1, 2


def derive_first_onset(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    group_col: str,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> pd.DataFrame:
    """The safety population with ``GROUP`` and ``FIRST_ONSET_DAY`` (onset day of the subject's first qualifying
    event, NaN when none), ``STATUS`` and ``TIME`` for time-to-event analysis.

    Qualifying records are :func:`~safety_dash.metrics.events.flag_qualifying_events` (COUNTED: treatment-emergent,
    onset on or before the risk window end; the filters judged per event, so an episode qualifies by its worst
    grade and keeps its earliest counted onset).

    STATUS is 1 (event) at the first onset day; else 2 (competing) when the subject died within its risk window
    (DTHDT on or before WINDOW_END), at its days at risk; else 0 (censored) at its days at risk.
    """
    check_columns(events, ("USUBJID", "ASTDY"), "events")
    check_columns(subjects, ("DTHDT", "WINDOW_END"), "subjects")
    safety = derive_safety_groups(subjects, group_col)
    qualifying = events.loc[flag_qualifying_events(events, min_grade, serious, related), ["USUBJID", "ASTDY"]]
    first = qualifying.groupby("USUBJID")["ASTDY"].min().astype("float64")
    safety["FIRST_ONSET_DAY"] = safety["USUBJID"].map(first).astype("float64")
    days = safety["DAYS_AT_RISK"].to_numpy(dtype="float64", na_value=np.nan)
    has_event = safety["FIRST_ONSET_DAY"].notna().to_numpy()
    died = (safety["DTHDT"].notna() & (safety["DTHDT"] <= safety["WINDOW_END"])).to_numpy()
    safety["STATUS"] = np.select([has_event, died], [EVENT, COMPETING], default=CENSORED)
    safety["TIME"] = np.where(has_event, safety["FIRST_ONSET_DAY"].to_numpy(), days)
    return safety


def _with_all(first: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    groups = [(ALL_GROUP, first)]
    groups += [(name, part) for name, part in sorted(first.groupby("GROUP", sort=False), key=lambda item: item[0])]
    return groups


def compute_onset_summary(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    group_col: str,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> pd.DataFrame:
    """Per group (ALL first): safety N, subjects with a qualifying event, and the median, first and third quartile
    of their first onset day (quartiles by linear interpolation, R type 7; NaN when no subject has the event)."""
    first = derive_first_onset(events, subjects, group_col, min_grade, serious, related)
    rows = []
    for name, part in _with_all(first):
        days = part["FIRST_ONSET_DAY"].dropna().to_numpy()
        q1, median, q3 = np.quantile(days, [0.25, 0.5, 0.75]) if len(days) else (np.nan, np.nan, np.nan)
        rows.append((name, len(part), len(days), median, q1, q3))
    return pd.DataFrame(rows, columns=ONSET_SUMMARY_COLUMNS)


def _aalen_johansen(time: np.ndarray, status: np.ndarray, alpha: float) -> pd.DataFrame:
    """Cumulative incidence of STATUS 1 with STATUS 2 competing, one row per day (after that day's records).

    lifelines jitters tied times of different event types at random. To stay deterministic, censoring and
    competing deaths are passed TIE_OFFSET of a day after the events of interest of the same day: the events of
    interest still see them at risk, as the usual convention for ties, and the estimate equals the tie-handling
    Aalen–Johansen estimate (a product-limit step is the same whichever order same-day events are taken in).
    Rows are then read back on whole days, keeping each day's last value.
    """
    durations = np.where(status == EVENT, time, time + TIE_OFFSET)
    fitter = AalenJohansenFitter(alpha=alpha, calculate_variance=True)
    with warnings.catch_warnings():
        # lifelines divides by zero in the variance when everyone left at risk has an event; that CI is NaN.
        warnings.simplefilter("ignore", RuntimeWarning)
        fitter.fit(durations, status, event_of_interest=EVENT)
    estimate = fitter.cumulative_density_.iloc[:, 0].to_numpy()
    bounds = fitter.confidence_interval_.to_numpy()
    with np.errstate(invalid="ignore"):
        low, high = np.fmin(bounds[:, 0], bounds[:, 1]), np.fmax(bounds[:, 0], bounds[:, 1])
    curve = pd.DataFrame(
        {
            "day": np.floor(fitter.cumulative_density_.index.to_numpy()).astype(np.int64),
            "cumulative_incidence": estimate,
            "ci_low": low,
            "ci_high": high,
        }
    )
    return curve.groupby("day", sort=True).last().reset_index()


def compute_cumulative_incidence(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    group_col: str,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Aalen–Johansen cumulative incidence of the first qualifying event by onset day, per group (ALL first), with
    death within the risk window as the competing event and the others censored at their days at risk.

    One row per group and day from day 0 up to the last day any subject of the group leaves the risk set (days
    on which something happens), with the estimate after that day's records. The pointwise 1 - ``alpha`` interval
    is lifelines' (Greenwood-type variance, log(-log) transform); NaN while the estimate is 0. Columns group, day,
    cumulative_incidence, ci_low, ci_high.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must lie strictly between 0 and 1 (0.05 for a 95% interval), not {alpha!r}.")
    first = derive_first_onset(events, subjects, group_col, min_grade, serious, related)
    curves = []
    for name, part in _with_all(first):
        if part.empty:  # no safety population in this cut: no curve
            continue
        curve = _aalen_johansen(part["TIME"].to_numpy(dtype=float), part["STATUS"].to_numpy(), alpha)
        curve.insert(0, "group", name)
        curves.append(curve)
    if not curves:
        return pd.DataFrame(columns=CUMULATIVE_INCIDENCE_COLUMNS)
    return pd.concat(curves, ignore_index=True)[CUMULATIVE_INCIDENCE_COLUMNS]
