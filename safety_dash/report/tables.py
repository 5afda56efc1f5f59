"""The numbers of each section of the committee pack (DOMAIN.md §6), as DataFrames.

Pure functions on the cut's derived frames (:func:`safety_dash.analysis.load_derived_frames`): every incidence,
interval and rate is :func:`~safety_dash.metrics.rates.compute_rate_table` output, time to onset is
:mod:`safety_dash.metrics.onset`, so the pack and the ``rates`` command agree to the last digit. Categories such as
"serious" or "leading to discontinuation" are rate tables of the events of that category under one term name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from safety_dash.analysis import GROUP_COLUMN
from safety_dash.metrics.baskets import derive_basket_events
from safety_dash.metrics.events import flag_qualifying_events
from safety_dash.metrics.intervals import compute_clopper_pearson
from safety_dash.metrics.onset import compute_cumulative_incidence, compute_onset_summary
from safety_dash.metrics.rates import (
    ALL_GROUP,
    DAYS_PER_YEAR,
    RATE_TABLE_COLUMNS,
    compute_rate_table,
    derive_safety_groups,
)

ANY_BASKET = "Any immune-related"  # the union of the baskets, named as the dashboard names it
#: The event columns the rate, onset and basket functions read: slicing to them first keeps copies of a million
#: records small.
METRIC_COLUMNS = ("USUBJID", "AE_ID", "EVENT_ID", "SOC", "PT", "ASTDY", "COUNTED", "GRADE", "SERIOUS", "RELATED")
OVERVIEW_CATEGORIES = (
    ("any", "Any TEAE"),
    ("grade3", "Grade \u2265 3 TEAE"),
    ("serious", "Serious TEAE"),
    ("related", "Treatment-related TEAE"),
    ("discontinued", "TEAE leading to discontinuation"),
    ("fatal", "Fatal TEAE (grade 5)"),
    ("immune", "Immune-related TEAE (any basket)"),
)


def natural_key(text: str) -> list:
    """Sort key that orders numbers inside text by value ("0.3 mg/kg" < "5 mg/kg" < "10 mg/kg")."""
    parts = re.split(r"(\d+(?:\.\d+)?)", str(text))
    return [(0, float(part)) if index % 2 else (1, part.casefold()) for index, part in enumerate(parts)]


def order_groups(groups) -> list[str]:
    """The columns of a pack table: cohorts in natural order, then ALL (the total) when present."""
    names = sorted({g for g in groups if g != ALL_GROUP}, key=natural_key)
    return names + ([ALL_GROUP] if ALL_GROUP in set(groups) else [])


def _with_group_names(safety: pd.DataFrame) -> tuple[list[str], pd.Series]:
    groups = order_groups([ALL_GROUP, *safety["GROUP"].unique()])
    return groups, safety["GROUP"]


def compute_exposure_summary(subjects: pd.DataFrame) -> pd.DataFrame:
    """Per cohort and ALL: subjects enrolled (in DM) and dosed (safety population), doses per subject, duration of
    treatment (last - first dose + 1 days), treatment ongoing (no RFXENDTC), patient-years of treatment and of the
    risk window (the EAER denominator, the dashboard's patient-years) and deaths in the cut."""
    enrolled = subjects.assign(GROUP=subjects[GROUP_COLUMN].astype(object).where(subjects[GROUP_COLUMN].notna(), ""))
    enrolled["GROUP"] = enrolled["GROUP"].astype(str).str.strip().replace("", "(missing)")
    safety = derive_safety_groups(subjects, GROUP_COLUMN)
    groups, _ = _with_group_names(safety)
    rows = []
    for group in groups:
        part = safety if group == ALL_GROUP else safety.loc[safety["GROUP"] == group]
        everyone = enrolled if group == ALL_GROUP else enrolled.loc[enrolled["GROUP"] == group]
        doses = part["N_DOSES"].to_numpy(dtype=float)
        duration = ((part["TRTEDT"] - part["TRTSDT"]).dt.days + 1).to_numpy(dtype=float)
        days = part["DAYS_AT_RISK"].to_numpy(dtype="float64", na_value=np.nan)
        rows.append(
            {
                "group": group,
                "n_enrolled": len(everyone),
                "n_dosed": len(part),
                "doses_total": int(np.nansum(doses)),
                "doses_median": _stat(np.median, doses),
                "doses_min": _stat(np.min, doses),
                "doses_max": _stat(np.max, doses),
                "duration_median": _stat(np.median, duration),
                "duration_min": _stat(np.min, duration),
                "duration_max": _stat(np.max, duration),
                "n_ongoing": int((part["RFXENDTC"].fillna("").astype(str).str.strip() == "").sum()),
                "treatment_years": float(np.nansum(duration)) / DAYS_PER_YEAR,
                "exposure_years": float(np.nansum(days)) / DAYS_PER_YEAR,
                "n_deaths": int(part["DTHDT"].notna().sum()),
            }
        )
    return pd.DataFrame(rows)


def _stat(function, values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(function(values)) if len(values) else np.nan


def _term_rows(events: pd.DataFrame, subjects: pd.DataFrame, term: str, mask: np.ndarray) -> pd.DataFrame:
    """The rate table rows of the events under ``mask`` counted as one term named ``term``, one row per group;
    zeros for every group when no event qualifies (the intervals of 0 / N from the same interval function)."""
    chosen = events.loc[mask, list(METRIC_COLUMNS)].assign(SOC="", PT=term)
    table = compute_rate_table(chosen, subjects, "pt", GROUP_COLUMN)
    if not table.empty:
        return table
    safety = derive_safety_groups(subjects, GROUP_COLUMN)
    groups = [ALL_GROUP, *sorted(safety["GROUP"].unique())]
    n = np.array([len(safety) if g == ALL_GROUP else int((safety["GROUP"] == g).sum()) for g in groups], float)
    days = np.array(
        [safety.loc[(safety["GROUP"] == g) | (g == ALL_GROUP), "DAYS_AT_RISK"].sum() for g in groups], dtype=float
    )
    low, high = compute_clopper_pearson(np.zeros_like(n), n)
    return pd.DataFrame(
        {
            "group": groups,
            "soc": "",
            "pt": term,
            "n_subjects": n.astype(np.int64),
            "n_with_event": 0,
            "incidence_pct": 0.0,
            "incidence_ci_low": 100.0 * np.asarray(low),
            "incidence_ci_high": 100.0 * np.asarray(high),
            "n_events": 0,
            "patient_years_at_risk": days / DAYS_PER_YEAR,
            "eair_per_100py": 0.0,
            "eair_ci_low": 0.0,
            "eair_ci_high": np.nan,
            "exposure_years": days / DAYS_PER_YEAR,
            "eaer_per_100py": 0.0,
            "median_onset_day": np.nan,
        },
        columns=RATE_TABLE_COLUMNS,
    )


def compute_teae_overview(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    baskets: Mapping[str, frozenset[str]],
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> pd.DataFrame:
    """Per category of :data:`OVERVIEW_CATEGORIES` and group: the rate table row of the category's qualifying events.

    Any TEAE = qualifying events (the filters applied); grade >= 3, serious, related, fatal (grade 5) = the same with
    that filter added; leading to discontinuation = qualifying events with AEACN DRUG WITHDRAWN on a record;
    immune-related = qualifying events whose PT is in any basket. Column ``category`` holds the key.
    """

    def qualifying(**extra) -> np.ndarray:
        arguments = {"min_grade": min_grade, "serious": serious, "related": related}
        for name, value in extra.items():
            arguments[name] = max(arguments[name] or 0, value) if name == "min_grade" else arguments[name] or value
        return flag_qualifying_events(events, **arguments).to_numpy()

    any_teae = qualifying()
    members = {term.strip().casefold() for terms in baskets.values() for term in terms}
    codes, texts = pd.factorize(events["PT"])
    in_basket = np.array([str(t).strip().casefold() in members for t in texts], dtype=bool)
    in_basket = in_basket[codes] if len(texts) else np.zeros(len(events), dtype=bool)
    masks = {
        "any": any_teae,
        "grade3": qualifying(min_grade=3),
        "serious": qualifying(serious=True),
        "related": qualifying(related=True),
        "discontinued": any_teae & (events["AEACN"].to_numpy(dtype=object) == "DRUG WITHDRAWN"),
        "fatal": qualifying(min_grade=5),
        "immune": any_teae & in_basket,
    }
    parts = [_term_rows(events, subjects, label, masks[key]).assign(category=key) for key, label in OVERVIEW_CATEGORIES]
    return pd.concat(
        [part.astype({"median_onset_day": float, "eair_ci_high": float}) for part in parts], ignore_index=True
    )


def compute_soc_pt_table(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
    threshold_pct: float = 5.0,
    max_pts: int | None = None,
) -> tuple[pd.DataFrame, int, int]:
    """SOC rows and, under each, the PT rows whose incidence reaches ``threshold_pct`` % in some cohort (or ALL):
    the rate tables by='soc' and by='pt' of the ``rates`` command, with column ``level`` ('soc' or 'pt').

    Of the PTs reaching the threshold, at most ``max_pts`` are kept: those with most subjects in ALL. SOCs in
    descending order of subjects in ALL, PTs likewise within their SOC. Returns the table, the number of PTs left
    out and the number reaching the threshold.
    """
    filters = {"min_grade": min_grade, "serious": serious, "related": related}
    soc = compute_rate_table(events, subjects, "soc", GROUP_COLUMN, **filters)
    pt = compute_rate_table(events, subjects, "pt", GROUP_COLUMN, **filters)
    if pt.empty:
        return pd.DataFrame(columns=[*RATE_TABLE_COLUMNS, "level"]), 0, 0
    reach = pt.groupby(["soc", "pt"])["incidence_pct"].max()
    shown = reach.loc[reach >= threshold_pct - 1e-9].index
    n_reaching = len(shown)
    if max_pts is not None and n_reaching > max_pts:
        overall = pt.loc[pt["group"] == ALL_GROUP].set_index(["soc", "pt"])["n_with_event"].loc[shown]
        ranked = overall.reset_index().sort_values(["n_with_event", "pt"], ascending=[False, True])
        shown = pd.MultiIndex.from_frame(ranked.head(max_pts)[["soc", "pt"]])
    left_out = len(reach) - len(shown)
    pt = pt.set_index(["soc", "pt"]).loc[lambda t: t.index.isin(shown)].reset_index()
    order_pt = pt.loc[pt["group"] == ALL_GROUP, ["soc", "pt", "n_with_event"]]
    order_soc = soc.loc[soc["group"] == ALL_GROUP, ["soc", "n_with_event"]]
    order_soc = order_soc.sort_values(["n_with_event", "soc"], ascending=[False, True], key=_casefold)
    rows = []
    for soc_name in order_soc["soc"]:
        rows.append(soc.loc[soc["soc"] == soc_name].assign(level="soc"))
        terms = order_pt.loc[order_pt["soc"] == soc_name].sort_values(
            ["n_with_event", "pt"], ascending=[False, True], key=_casefold
        )
        for term in terms["pt"]:
            rows.append(pt.loc[(pt["soc"] == soc_name) & (pt["pt"] == term)].assign(level="pt"))
    return pd.concat(rows, ignore_index=True)[[*RATE_TABLE_COLUMNS, "level"]], left_out, n_reaching


def _casefold(values: pd.Series) -> pd.Series:
    return values.str.casefold() if values.dtype == object else values


def with_any_basket(baskets: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """The baskets and, last, their union as :data:`ANY_BASKET` (as the dashboard's basket picker has them)."""
    mapping = dict(baskets)
    if mapping:
        mapping[ANY_BASKET] = frozenset().union(*mapping.values())
    return mapping


def compute_basket_tables(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    baskets: Mapping[str, frozenset[str]],
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Immune-related baskets (and their union :data:`ANY_BASKET`): the rate table by='basket' (the
    ``rates --by basket`` rows), the time-to-onset summary per basket and group (median, quartiles of the first onset
    day) and the Aalen–Johansen cumulative incidence curves (death as the competing event) of the union per group and
    of each basket for ALL (column ``basket``)."""
    filters = {"min_grade": min_grade, "serious": serious, "related": related}
    mapping = with_any_basket(baskets)
    if not mapping:
        empty = pd.DataFrame()
        return empty, empty, empty
    rates = compute_rate_table(events, subjects, "basket", GROUP_COLUMN, mapping, **filters)
    in_baskets = derive_basket_events(events[list(METRIC_COLUMNS)], mapping)
    # One population: the curve of ALL without a fit per cohort (as the dashboard's single-population curve).
    pooled = subjects.assign(**{GROUP_COLUMN: "all"})
    summaries, curves = [], []
    for name in mapping:
        part = in_baskets.loc[in_baskets["BASKET"] == name].drop(columns="BASKET")
        summaries.append(compute_onset_summary(part, subjects, GROUP_COLUMN, **filters).assign(basket=name))
        if name == ANY_BASKET:
            curves.append(compute_cumulative_incidence(part, subjects, GROUP_COLUMN, **filters).assign(basket=name))
        else:
            curve = compute_cumulative_incidence(part, pooled, GROUP_COLUMN, **filters)
            curves.append(curve.loc[curve["group"] == ALL_GROUP].assign(basket=name))
    return rates, pd.concat(summaries, ignore_index=True), pd.concat(curves, ignore_index=True)


def compute_dlt_table(events: pd.DataFrame, subjects: pd.DataFrame, dlt_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DLTs by dose level (the cohort column) as DOMAIN.md §6 defines them.

    A DLT is a counted (treatment-emergent) AE record whose DLT column is Y. DLT-evaluable: dosed and followed for
    the DLT period (days at risk >= ``dlt_days``: first dose to the risk window end, which stops at death and the
    cutoff), or with a DLT with onset inside the period. Per group: dosed, evaluable, subjects with a DLT in the
    period (Clopper–Pearson 95% over the evaluable) and DLT records outside the period. Also returns the DLT records.
    """
    safety = derive_safety_groups(subjects, GROUP_COLUMN)
    flagged = events.loc[events["DLT"].to_numpy(dtype=bool) & events["COUNTED"].to_numpy(dtype=bool)].copy()
    flagged = flagged.loc[flagged["USUBJID"].isin(set(safety["USUBJID"]))]
    day = flagged["ASTDY"].to_numpy(dtype="float64", na_value=np.nan)
    flagged["IN_PERIOD"] = (day >= 1) & (day <= dlt_days)
    with_dlt = set(flagged.loc[flagged["IN_PERIOD"], "USUBJID"])
    days = safety["DAYS_AT_RISK"].to_numpy(dtype="float64", na_value=0.0)
    safety["EVALUABLE"] = (days >= dlt_days) | safety["USUBJID"].isin(with_dlt).to_numpy()
    safety["HAS_DLT"] = safety["USUBJID"].isin(with_dlt)
    outside = flagged.loc[~flagged["IN_PERIOD"]]
    groups, _ = _with_group_names(safety)
    rows = []
    for group in groups:
        part = safety if group == ALL_GROUP else safety.loc[safety["GROUP"] == group]
        n_eval, n_dlt = int(part["EVALUABLE"].sum()), int(part["HAS_DLT"].sum())
        low, high = compute_clopper_pearson(n_dlt, n_eval) if n_eval else (np.nan, np.nan)
        rows.append(
            {
                "group": group,
                "n_dosed": len(part),
                "n_evaluable": n_eval,
                "n_dlt": n_dlt,
                "dlt_pct": 100.0 * n_dlt / n_eval if n_eval else np.nan,
                "ci_low": 100.0 * low,
                "ci_high": 100.0 * high,
                "n_outside_period": int(outside["USUBJID"].isin(set(part["USUBJID"])).sum()),
            }
        )
    cohort = safety.set_index("USUBJID")["GROUP"]
    flagged["GROUP"] = flagged["USUBJID"].map(cohort)
    rank = {name: i for i, name in enumerate(groups)}
    flagged["_ORDER"] = flagged["GROUP"].map(rank)
    flagged = flagged.sort_values(["_ORDER", "USUBJID", "ASTDY"]).drop(columns="_ORDER")
    return pd.DataFrame(rows), flagged.reset_index(drop=True)


def compute_deaths(subjects: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deaths of the safety population in the cut, and those within 30 and 90 days of the last dose (death date -
    last dose date <= 30 / 90 days, DOMAIN.md §6), per group with n (%) of the group; and the listing of deaths with
    the fatal AE's PT (records of grade 5) where there is one."""
    safety = derive_safety_groups(subjects, GROUP_COLUMN)
    dead = safety.loc[safety["DTHDT"].notna()].copy()
    dead["DAYS_AFTER_LAST_DOSE"] = (dead["DTHDT"] - dead["TRTEDT"]).dt.days
    groups, _ = _with_group_names(safety)
    rows = []
    for group in groups:
        part = safety if group == ALL_GROUP else safety.loc[safety["GROUP"] == group]
        died = dead if group == ALL_GROUP else dead.loc[dead["GROUP"] == group]
        after = died["DAYS_AFTER_LAST_DOSE"]
        rows.append(
            {
                "group": group,
                "n_subjects": len(part),
                "n_deaths": len(died),
                "n_within_30": int((after <= 30).sum()),
                "n_within_90": int((after <= 90).sum()),
            }
        )
    grade = events["GRADE"].to_numpy(dtype="float64", na_value=np.nan)
    fatal = events.loc[(grade == 5) & events["USUBJID"].isin(set(dead["USUBJID"])).to_numpy()]
    fatal_pt = fatal.groupby("USUBJID")["PT"].agg(lambda pts: "; ".join(sorted(set(pts))))
    dead["FATAL_PT"] = dead["USUBJID"].map(fatal_pt).fillna("")
    dead = dead.sort_values(["DAYS_AFTER_LAST_DOSE", "USUBJID"])
    listing = dead[["USUBJID", "GROUP", "TRTSDT", "TRTEDT", "DTHDT", "DAYS_AFTER_LAST_DOSE", "FATAL_PT"]]
    return pd.DataFrame(rows), listing.reset_index(drop=True)


PREVIOUS_VALUES = ("AEDECOD", "AETOXGR", "AESEV", "AESER", "AEOUT", "AEENDTC", "AEREL")


def list_changed_events(
    events: pd.DataFrame,
    subjects: pd.DataFrame,
    since: int | None,
    since_keys: pd.Index | None,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """Counted AE records new or changed since cut ``since`` (every counted record when there is none), passing the
    filters, highest grade first then the latest onset: ``CHANGE`` new (its key was not in that cut, whose record
    keys are ``since_keys``) or changed (its version in this cut was written after that cut); ``SEVERE`` for grade
    >= 3, serious or DLT. Also the keys of that cut's records this cut no longer holds.

    A record is new or changed since ``since`` when VALID_FROM_RUN > ``since`` (RECORD_CHANGE against the previous
    cut is the case ``since`` = the previous cut).
    """
    qualifying = flag_qualifying_events(events, min_grade, serious, related).to_numpy()
    later = events["VALID_FROM_RUN"].to_numpy() > (since if since is not None else -1)
    rows = np.flatnonzero(qualifying & later)
    # Order on arrays (grade high to low, onset late to early, subject), then take the rows once, in that order.
    grade = events["GRADE"].to_numpy(dtype="float64", na_value=np.nan)[rows]
    onset = events["ASTDT"].to_numpy(dtype="datetime64[ns]")[rows]
    latest_first = np.where(np.isnat(onset), np.iinfo(np.int64).max, -onset.astype(np.int64))  # unknown onset last
    subject = pd.factorize(events["USUBJID"].to_numpy(dtype=object)[rows], sort=True)[0]
    order = np.lexsort((subject, latest_first, -np.nan_to_num(grade, nan=0.0)))
    listed = events.iloc[rows[order]].reset_index(drop=True)
    cohort = subjects.set_index("USUBJID")[GROUP_COLUMN]
    listed["GROUP"] = listed["USUBJID"].map(cohort).fillna("").astype(str).replace("", "(missing)")
    removed: list[str] = []
    if since_keys is None or since is None:
        listed["CHANGE"] = "new"
    else:
        listed["CHANGE"] = np.where(listed["RECORD_KEY"].isin(since_keys), "changed", "new")
        gone = ~since_keys.isin(events["RECORD_KEY"])
        removed = list(since_keys[gone])
    grade = listed["GRADE"].to_numpy(dtype="float64", na_value=np.nan)
    listed["SEVERE"] = (grade >= 3) | listed["SERIOUS"].to_numpy(dtype=bool) | listed["DLT"].to_numpy(dtype=bool)
    return listed, removed


def attach_previous_values(listed: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """``listed`` with ``WAS_<column>``: the raw values of :data:`PREVIOUS_VALUES` the changed records had in the since
    cut (``previous``: RECORD_KEY and those columns), '' for new records."""
    before = previous.set_index("RECORD_KEY") if len(previous) else None
    out = listed.copy()
    for column in PREVIOUS_VALUES:
        was = out["RECORD_KEY"].map(before[column]) if before is not None else pd.Series("", index=out.index)
        out["WAS_" + column] = was.fillna("").where(out["CHANGE"] == "changed", "")
    return out


def select_flagged_signals(signals: Mapping[str, pd.DataFrame], cohort: str | None = None) -> pd.DataFrame:
    """The flagged rows of the PT and SOC signal tables (column ``by``), of ``cohort`` when one is chosen, most
    significant first within each test."""
    parts = []
    for by, table in signals.items():
        if table is None or table.empty:
            continue
        flagged = table.loc[table["flagged"].astype(bool)].assign(by=by)
        if cohort:
            flagged = flagged.loc[flagged["group"] == cohort]
        parts.append(flagged)
    if not parts:
        return pd.DataFrame(columns=["by", "test", "group", "soc", "pt"])
    table = pd.concat(parts, ignore_index=True)
    table["_q"] = table["q_pt"].where(table["by"] == "pt", table["q_soc"])
    return table.sort_values(["by", "test", "_q"], ascending=[False, False, True]).drop(columns="_q")


def count_signal_tests(signals: Mapping[str, pd.DataFrame], cohort: str | None = None) -> dict[str, int]:
    """Rows tested per term level (PT, SOC), of ``cohort`` when chosen."""
    counts = {}
    for by, table in signals.items():
        rows = table if not cohort or table is None else table.loc[table["group"] == cohort]
        counts[by] = 0 if rows is None else len(rows)
    return counts
