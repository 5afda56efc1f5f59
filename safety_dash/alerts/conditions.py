"""Rules -> findings: where a rule's condition holds in a data cut, with the evidence an alert carries.

Every rate, count and N comes from :func:`~safety_dash.metrics.rates.compute_rate_table` run on the cut's stored
derived frames, and the record filter from :func:`~safety_dash.metrics.events.flag_qualifying_events`, so an alert
quotes the numbers the dashboard shows. Pure functions on DataFrames: no database here.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
from scipy import stats

from safety_dash.alerts.rules import ANY_BASKET, Rule
from safety_dash.analysis import GROUP_COLUMN
from safety_dash.metrics.baskets import derive_basket_events
from safety_dash.metrics.events import flag_qualifying_events
from safety_dash.metrics.labs import flag_hys_law
from safety_dash.metrics.rates import ALL_GROUP, compute_rate_table, derive_safety_groups
from safety_dash.metrics.signals import compute_signal_subjects, compute_signals
from safety_dash.metrics.terms import term_key

log = logging.getLogger(__name__)

# Dashboard pages and the query keys of its view state (safety_dash/web/state.py, in its order; alerts sits below
# web, so the keys are repeated here rather than imported).
PAGE_RATES, PAGE_SUBJECT, PAGE_ALERTS, PAGE_SIGNALS = "/rates", "/subject", "/alerts", "/signals"
LAB_DIRECTION_CODES = {"high": "H", "low": "L"}
SIGNAL_NUMBERS = ("x1", "py1", "x0", "py0", "rate_ratio", "rr_ci_low", "rr_ci_high", "p_one_sided", "q_pt", "q_soc")
VIEW_KEYS = ("study", "cut", "cohort", "grade", "serious", "related", "soc", "pt", "basket", "subject")
MAX_LISTED = 50  # subjects and records quoted in an alert's evidence


@dataclass(frozen=True)
class CutInfo:
    """The data cut a rule is evaluated on."""

    run_id: int
    study_id: str
    cutoff: dt.date
    # Event rules fire for records whose version arose after this run (the study's last cut evaluated before this
    # one), so a cut that was never evaluated loses nothing; None: records new or changed in this cut.
    since_run: int | None = None
    # The previous cut's cutoff when it is before this one (signal rules' rising test); None for a first cut.
    previous_cutoff: dt.date | None = None

    def is_new(self, record: pd.Series) -> bool:
        """Whether an AE record counts as new or changed for this evaluation."""
        if self.since_run is None:
            return record["RECORD_CHANGE"] in ("new", "changed")
        return int(record["VALID_FROM_RUN"]) > self.since_run


@dataclass(frozen=True)
class Finding:
    """A condition that holds in the cut, for one rule and scope."""

    rule: Rule
    key: str
    scope: dict[str, Any]
    may_fire: bool  # may open a new alert on this cut (event rules: only records new or changed since)
    title: str
    summary: str
    evidence: dict[str, Any]
    view_path: str


# --- rules -> findings ------------------------------------------------------------------------------------------


def evaluate_rule(
    rule: Rule,
    subjects: pd.DataFrame,
    events: pd.DataFrame,
    baskets: Mapping[str, frozenset[str]],
    cut: CutInfo,
    labs: pd.DataFrame | None = None,
) -> list[Finding]:
    """The findings of one rule on a cut's derived subjects and events (metric naming); lab rules read ``labs``,
    the cut's graded lab values (:func:`~safety_dash.metrics.labs.derive_lab_values`)."""
    if rule.kind in ("lab", "hys_law"):
        empty = labs is None or labs.empty
        if empty:
            return []
        if rule.kind == "lab":
            return evaluate_lab_rule(rule, subjects, labs, cut)
        return evaluate_hys_law_rule(rule, subjects, labs, cut)
    if rule.kind == "event":
        return evaluate_event_rule(rule, subjects, events, baskets, cut)
    if rule.kind == "signal":
        return evaluate_signal_rule(rule, subjects, events, baskets, cut)
    return evaluate_rate_rule(rule, subjects, events, baskets, cut)


def rule_baskets(rule: Rule, baskets: Mapping[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """The rule's basket as one named basket: one of the file's, or the union of several (or of all, 'any')."""
    names = list(baskets) if rule.basket == (ANY_BASKET,) else list(rule.basket)
    missing = [name for name in names if name not in baskets]
    if missing:
        raise ValueError(f"rule '{rule.id}' names basket {', '.join(missing)}, which the baskets file does not hold")
    label = "any basket" if rule.basket == (ANY_BASKET,) else " + ".join(names)
    return {label: frozenset().union(*(baskets[name] for name in names))}


def flag_term_events(rule: Rule, events: pd.DataFrame, baskets: Mapping[str, frozenset[str]]) -> pd.Series:
    """True for events whose PT, SOC and basket match every term field the rule gives (as dictionary terms: without
    regard to case and surrounding blanks, DOMAIN.md §1)."""
    keep = pd.Series(True, index=events.index)
    if rule.pt:
        keep &= events["PT"].map(term_key).isin({term_key(t) for t in rule.pt})
    if rule.soc:
        keep &= events["SOC"].map(term_key).isin({term_key(t) for t in rule.soc})
    if rule.basket:
        in_basket = derive_basket_events(events[["AE_ID", "PT"]], rule_baskets(rule, baskets))
        keep &= events["AE_ID"].isin(in_basket["AE_ID"])
    return keep


def evaluate_event_rule(rule, subjects, events, baskets, cut: CutInfo) -> list[Finding]:
    """One finding per AE record of the cut that matches the rule's filter; new or changed ones may fire."""
    if rule.treatment_emergent:
        keep = flag_qualifying_events(events, rule.min_grade, rule.serious, rule.related)
    else:
        keep = pd.Series(True, index=events.index)
        if rule.min_grade is not None:
            keep &= events["GRADE"].astype("Float64").fillna(0) >= rule.min_grade
        if rule.serious:
            keep &= events["SERIOUS"]
        if rule.related:
            keep &= events["RELATED"]
    keep &= flag_term_events(rule, events, baskets)
    cohorts = subjects.set_index("USUBJID")[GROUP_COLUMN]
    matched = events.loc[keep]
    of_subject = dict(tuple(events.loc[events["USUBJID"].isin(matched["USUBJID"])].groupby("USUBJID")))
    findings = []
    for _, record in matched.iterrows():
        subject = record["USUBJID"]
        grade = _int_or_none(record["GRADE"])
        own = of_subject[subject].sort_values(["ASTDY", "AE_ID"])
        evidence = {
            "cut": _cut_json(cut),
            "record": _record_json(record),
            "cohort": str(cohorts.get(subject, "")),
            "rule": _rule_json(rule),
            "chart": {
                "kind": "timeline",
                "title": f"Adverse events of {subject} by onset day (cut {cut.run_id})",
                "days": [_int_or_none(v) for v in own["ASTDY"]],
                "grades": [_int_or_none(v) for v in own["GRADE"]],
                "labels": list(own["PT"]),
                "highlight": int(np.flatnonzero(own["AE_ID"].to_numpy() == record["AE_ID"])[0]),
            },
        }
        grade_text = f"grade {grade}" if grade is not None else "grade unknown"
        title = f"{rule.name}: {record['PT']} ({grade_text}) in {subject}"
        summary = (
            f"{subject} ({evidence['cohort'] or 'no cohort'}): {record['PT']}, {grade_text}"
            f"{', serious' if record['SERIOUS'] else ''}{', related' if record['RELATED'] else ''}, "
            f"onset {record['AESTDTC'] or 'unknown'} (study day {_int_or_none(record['ASTDY'])}); "
            f"record {record['RECORD_KEY']} as delivered in cut {record['VALID_FROM_RUN']}, "
            f"{record['RECORD_CHANGE']} in cut {cut.run_id} (cutoff {cut.cutoff})."
        )
        findings.append(
            Finding(
                rule=rule,
                key=f"{rule.id}|{record['RECORD_KEY']}",
                scope={
                    "usubjid": subject,
                    "record_key": record["RECORD_KEY"],
                    "pt": record["PT"],
                    "cohort": evidence["cohort"],
                },
                may_fire=cut.is_new(record),
                title=title,
                summary=summary,
                evidence=evidence,
                view_path=build_view_path(PAGE_SUBJECT, study=cut.study_id, cut=cut.run_id, subject=subject),
            )
        )
    return findings


def compute_rule_rate_table(
    rule: Rule, subjects: pd.DataFrame, events: pd.DataFrame, baskets: Mapping[str, frozenset[str]]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The rule's term rows of :func:`compute_rate_table` (one per group), with the subjects and events it ran on.

    ``count`` rules with ``first_n`` keep the first n safety subjects of each cohort by first dose date (then
    USUBJID); with ``within_days`` only events with onset up to that study day count.
    """
    if rule.kind == "count" and rule.params.get("first_n"):
        safety = derive_safety_groups(subjects, GROUP_COLUMN)
        first = safety.sort_values(["TRTSDT", "USUBJID"]).groupby("GROUP", sort=False).head(rule.params["first_n"])
        subjects = subjects.loc[subjects["USUBJID"].isin(first["USUBJID"])]
    if rule.kind == "count" and rule.params.get("within_days"):
        events = events.loc[events["ASTDY"].astype("Float64").fillna(np.inf) <= rule.params["within_days"]]
    options = {"min_grade": rule.min_grade, "serious": rule.serious, "related": rule.related}
    if rule.basket:
        table = compute_rate_table(events, subjects, "basket", GROUP_COLUMN, rule_baskets(rule, baskets), **options)
    elif rule.soc:
        table = compute_rate_table(events, subjects, "soc", GROUP_COLUMN, **options)
        table = table.loc[table["soc"].map(term_key) == term_key(rule.soc[0])]
    else:
        table = compute_rate_table(events, subjects, "pt", GROUP_COLUMN, **options)
        table = table.loc[table["pt"].map(term_key) == term_key(rule.pt[0])]
        if table["group"].duplicated().any():  # the PT is coded under two SOCs: count it once, as a basket
            one = {rule.pt[0]: frozenset({rule.pt[0]})}
            table = compute_rate_table(events, subjects, "basket", GROUP_COLUMN, one, **options)
    return table.reset_index(drop=True), subjects, events


def evaluate_rate_rule(rule, subjects, events, baskets, cut: CutInfo) -> list[Finding]:
    """One finding per cohort where the rule's rate, count or posterior probability crosses its threshold."""
    table, used_subjects, used_events = compute_rule_rate_table(rule, subjects, events, baskets)
    if table.empty:
        return []
    metric = compute_rule_metric(rule, table)
    crossed = metric["crossed"]
    wanted = table["group"] != ALL_GROUP if rule.cohorts is None else table["group"].isin(rule.cohorts)
    qualifying = used_events.loc[
        flag_qualifying_events(used_events, rule.min_grade, rule.serious, rule.related)
        & flag_term_events(rule, used_events, baskets)
    ]
    safety = derive_safety_groups(used_subjects, GROUP_COLUMN)
    group_of = safety.set_index("USUBJID")["GROUP"]
    qualifying = qualifying.loc[qualifying["USUBJID"].isin(group_of.index)]
    chart = {
        "kind": "bars",
        "title": f"{metric['label']} by cohort, {rule.term_label}{_grade_text(rule)} (cut {cut.run_id})",
        "labels": [str(g) for g in table["group"]],
        "values": [_float_or_none(v) for v in metric["values"]],
        "threshold": metric["threshold"],
        "unit": metric["unit"],
    }
    findings = []
    for index in table.index[(crossed & wanted).to_numpy()]:
        row = table.loc[index]
        group = str(row["group"])
        in_group = qualifying if group == ALL_GROUP else qualifying.loc[qualifying["USUBJID"].map(group_of) == group]
        listed_subjects = sorted(in_group["USUBJID"].unique())
        if len(listed_subjects) != int(row["n_with_event"]):
            log.warning("rule %s, %s: %d subjects listed but the rate table counts %d", rule.id, group,
                        len(listed_subjects), int(row["n_with_event"]))  # fmt: skip
        numbers = {name: _float_or_none(row[name]) for name in row.index if name not in ("group", "soc", "pt")}
        numbers |= metric["extra"][index] if metric["extra"] else {}
        evidence = {
            "cut": _cut_json(cut),
            "rule": _rule_json(rule),
            "cohort": group,
            "term": rule.term_label,
            "numbers": numbers,
            "threshold": metric["threshold"],
            "subjects": listed_subjects[:MAX_LISTED],
            "n_subjects_listed": len(listed_subjects),
            "records": [_record_json(r) for _, r in in_group.head(MAX_LISTED).iterrows()],
            "chart": chart | {"highlight": chart["labels"].index(group)},
        }
        title = f"{rule.name}: {group}"
        summary = (f"{group}, {rule.term_label}{_grade_text(rule)}: {metric['describe'](row, index)} "
                   f"(cut {cut.run_id}, cutoff {cut.cutoff}).")  # fmt: skip
        filters = {"study": cut.study_id, "cut": cut.run_id, "cohort": None if group == ALL_GROUP else group}
        filters |= term_filters(rule)
        filters |= {"grade": rule.min_grade, "serious": rule.serious, "related": rule.related}
        findings.append(
            Finding(
                rule=rule,
                key=f"{rule.id}|{group}|{rule.term_label}",
                scope={"cohort": group, "term": rule.term_label},
                may_fire=True,
                title=title,
                summary=summary,
                evidence=evidence,
                view_path=build_view_path(PAGE_RATES, **filters),
            )
        )
    return findings


def flag_rule_signals(rule: Rule, table: pd.DataFrame, baskets: Mapping[str, frozenset[str]]) -> pd.Series:
    """True for the rows of a signal table (``compute_signals``) that the signal rule fires on."""
    p = rule.params
    keep = table["test"].isin(p["tests"])
    keep &= table["group"].isin(rule.cohorts) if rule.cohorts is not None else True
    if rule.pt:
        keep &= table["pt"].map(term_key).isin({term_key(t) for t in rule.pt})
    if rule.soc:
        keep &= table["soc"].map(term_key).isin({term_key(t) for t in rule.soc})
    if rule.basket:
        basket = next(iter(rule_baskets(rule, baskets).values()))
        names = set(baskets) if rule.basket == (ANY_BASKET,) else set(rule.basket)
        in_basket = (
            table["pt"].isin(names)
            if p["by"] == "basket"
            else table["pt"].map(term_key).isin({term_key(t) for t in basket})
        )
        keep &= in_basket
    if p["q_at_most"] is None:
        return keep & table["flagged"]
    return keep & (table["q_pt"] <= p["q_at_most"])


def evaluate_signal_rule(rule, subjects, events, baskets, cut: CutInfo) -> list[Finding]:
    """One finding per signal row (test, group, term) the rule fires on, with the row's numbers and its subjects."""
    p = rule.params
    if p["by"] == "basket" and not baskets:
        raise ValueError(f"rule '{rule.id}' asks for signals by basket, but no baskets file is loaded")
    args = (p["by"], GROUP_COLUMN, cut.previous_cutoff, cut.cutoff, baskets if p["by"] == "basket" else None)
    filters = (rule.min_grade, rule.serious, rule.related)
    table = compute_signals(events, subjects, *args, *filters)
    findings = []
    for _, row in table.loc[flag_rule_signals(rule, table, baskets)].iterrows():
        test, group, soc, pt = row["test"], row["group"], row["soc"], row["pt"] or ""
        term = pt or soc
        members = compute_signal_subjects(
            events, subjects, p["by"], GROUP_COLUMN, test, group, soc, pt, cut.previous_cutoff,
            baskets if p["by"] == "basket" else None, *filters,
        )  # fmt: skip
        new_subjects = sorted(members.loc[members["PART"] == 1, "USUBJID"])
        rate1 = 100 * row["x1"] / row["py1"] if row["py1"] > 0 else None
        rate0 = 100 * row["x0"] / row["py0"] if row["py0"] > 0 else None
        compared = f"before {cut.previous_cutoff}" if test == "rising" else "other cohorts"
        numbers = {name: _float_or_none(row[name]) for name in SIGNAL_NUMBERS}
        numbers["flagged"] = bool(row["flagged"])
        ratio = "∞" if math.isinf(row["rate_ratio"]) else f"{row['rate_ratio']:.2f}"
        high = "∞" if math.isinf(row["rr_ci_high"]) else f"{row['rr_ci_high']:.2f}"
        what = "rising since the previous cut" if test == "rising" else "out of line with the other cohorts"
        summary = (
            f"{group}, {term}{_grade_text(rule)}: {what}; {int(row['x1'])} subjects / {row['py1']:.2f} PY against "
            f"{int(row['x0'])} / {row['py0']:.2f} PY ({compared}), rate ratio {ratio} "
            f"[{row['rr_ci_low']:.2f}, {high}], q {row['q_pt']:.3g} (cut {cut.run_id}, cutoff {cut.cutoff})."
        )
        evidence = {
            "cut": _cut_json(cut),
            "rule": _rule_json(rule),
            "cohort": group,
            "term": term,
            "test": test,
            "numbers": numbers,
            "threshold": {"flagged": True} if p["q_at_most"] is None else {"q_at_most": p["q_at_most"]},
            "subjects": new_subjects[:MAX_LISTED],
            "n_subjects_listed": len(new_subjects),
            "records": [],
            "chart": {
                "kind": "bars",
                "title": f"{term}, {group}: subjects per 100 PY (cut {cut.run_id})",
                "labels": [compared, "since the previous cut" if test == "rising" else group],
                "values": [rate0, rate1],
                "threshold": rate0 or 0.0,
                "unit": "per 100 PY",
                "highlight": 1,
            },
        }
        view = {"study": cut.study_id, "cut": cut.run_id, "cohort": None if group == ALL_GROUP else group}
        view |= {"soc": soc, "pt": pt or None, "grade": rule.min_grade}
        view |= {"serious": rule.serious, "related": rule.related}
        findings.append(
            Finding(
                rule=rule,
                key=f"{rule.id}|{test}|{group}|{soc}|{pt}",
                scope={"cohort": group, "term": term, "test": test},
                may_fire=True,
                title=f"{rule.name}: {term} {'rising' if test == 'rising' else 'out of line'} in "
                + ("all subjects" if group == ALL_GROUP else group),
                summary=summary,
                evidence=evidence,
                view_path=build_view_path(PAGE_SIGNALS, **view) + f"&test={test}",
            )
        )
    return findings


def _lab_chart(values: pd.DataFrame, subject: str, test: str, cut: CutInfo) -> dict[str, Any]:
    """A timeline of one subject's on-treatment values of a test: ×ULN by study day (as 'grades' on the y axis)."""
    own = values.loc[(values["USUBJID"] == subject) & (values["LBTESTCD"] == test) & values["ON_TREATMENT"]]
    own = own.sort_values("ADY")
    return {
        "kind": "timeline",
        "title": f"{test} of {subject}, x ULN by study day (cut {cut.run_id})",
        "days": [_int_or_none(v) for v in own["ADY"]],
        "grades": [_float_or_none(v) for v in own["XULN"]],
        "labels": [f"{v:.1f} x ULN" if pd.notna(v) else "" for v in own["XULN"]],
        "y_label": "x ULN",
        "highlight": int(np.nanargmax(own["XULN"].to_numpy(dtype=float))) if own["XULN"].notna().any() else None,
    }


def evaluate_lab_rule(rule, subjects, values: pd.DataFrame, cut: CutInfo) -> list[Finding]:
    """One finding per subject and test whose worst on-treatment grade (or peak ×ULN) reaches the rule's bound."""
    p = rule.params
    cohorts = subjects.set_index("USUBJID")[GROUP_COLUMN]
    on = values.loc[values["ON_TREATMENT"] & values["LBTESTCD"].str.upper().isin(p["tests"])]
    on = on.loc[on["USUBJID"].map(cohorts).isin(rule.cohorts)] if rule.cohorts is not None else on
    directions = [d for d in ("H", "L") if p["direction"] is None or LAB_DIRECTION_CODES[p["direction"]] == d]
    findings = []
    for (subject, test), rows in on.groupby(["USUBJID", "LBTESTCD"], sort=True):
        if p["xuln_at_least"] is not None:
            peak = rows["XULN"].max()
            if not (pd.notna(peak) and peak >= p["xuln_at_least"]):
                continue
            worst = rows.loc[rows["XULN"].idxmax()]
            measure = f"{peak:.2f} x ULN (at least {p['xuln_at_least']:g} x ULN)"
            grade, direction = None, None
        else:
            grades = {d: rows[f"ATOXGR{d}"].astype("Float64").max() for d in directions}
            reached = {d: g for d, g in grades.items() if pd.notna(g) and g >= rule.min_grade}
            if not reached:
                continue
            direction = max(reached, key=lambda d: reached[d])
            grade = int(reached[direction])
            worst = rows.loc[rows[f"ATOXGR{direction}"].astype("Float64").idxmax()]
            measure = f"grade {grade} ({worst[f'ATOXDSC{direction}'] or test}), at least grade {rule.min_grade}"
        cohort = str(cohorts.get(subject, ""))
        numbers = {"value": _float_or_none(worst["AVAL"]), "xuln": _float_or_none(worst["XULN"]), "grade": grade,
                   "date": str(pd.Timestamp(worst["ADT"]).date()), "study_day": _int_or_none(worst["ADY"])}  # fmt: skip
        findings.append(
            Finding(
                rule=rule,
                key=f"{rule.id}|{subject}|{test}" + (f"|{direction}" if direction else ""),
                scope={"usubjid": subject, "test": test, "cohort": cohort},
                may_fire=True,
                title=f"{rule.name}: {test} in {subject}",
                summary=(
                    f"{subject} ({cohort or 'no cohort'}): {test} {measure}; {numbers['value']} on "
                    f"{numbers['date']} (study day {numbers['study_day']}), cut {cut.run_id} "
                    f"(cutoff {cut.cutoff})."
                ),  # fmt: skip
                evidence={
                    "cut": _cut_json(cut),
                    "rule": _rule_json(rule),
                    "cohort": cohort,
                    "subjects": [subject],
                    "test": test,
                    "numbers": numbers,
                    "records": [],
                    "chart": _lab_chart(values, subject, test, cut),
                },  # fmt: skip
                view_path=build_view_path(PAGE_SUBJECT, study=cut.study_id, cut=cut.run_id, subject=subject),
            )
        )
    return findings


def evaluate_hys_law_rule(rule, subjects, values: pd.DataFrame, cut: CutInfo) -> list[Finding]:
    """One finding per potential Hy's law case (DOMAIN.md §8) of the cut."""
    cases = flag_hys_law(values)
    cohorts = subjects.set_index("USUBJID")[GROUP_COLUMN]
    cases = cases.loc[cases["HYS_LAW"]]
    if rule.cohorts is not None:
        cases = cases.loc[cases["USUBJID"].map(cohorts).isin(rule.cohorts)]
    findings = []
    for _, case in cases.iterrows():
        subject = case["USUBJID"]
        cohort = str(cohorts.get(subject, ""))
        numbers = {name.lower(): _float_or_none(case[name]) for name in
                   ("PEAK_ALT_XULN", "PEAK_AST_XULN", "PEAK_BILI_XULN", "ALP_XULN")}  # fmt: skip
        numbers |= {"transaminase_date": str(pd.Timestamp(case["TRANSAMINASE_ADT"]).date()),
                    "bilirubin_date": str(pd.Timestamp(case["BILI_ADT"]).date()),
                    "cholestasis": None if pd.isna(case["CHOLESTASIS"]) else bool(case["CHOLESTASIS"])}  # fmt: skip
        which = " and ".join(t for t, flag in (("ALT", case["HYS_LAW_ALT"]), ("AST", case["HYS_LAW_AST"])) if flag)
        summary = (f"{subject} ({cohort or 'no cohort'}): {which} >= 3 x ULN on {numbers['transaminase_date']} and "
                   f"total bilirubin {numbers['peak_bili_xuln']:.2f} x ULN (>= 2) on {numbers['bilirubin_date']}; "
                   f"ALP {numbers['alp_xuln'] if numbers['alp_xuln'] is None else round(numbers['alp_xuln'], 2)} "
                   f"x ULN{' (cholestatic pattern)' if numbers['cholestasis'] else ''}; cut {cut.run_id} "
                   f"(cutoff {cut.cutoff}).")  # fmt: skip
        findings.append(
            Finding(
                rule=rule,
                key=f"{rule.id}|{subject}",
                scope={"usubjid": subject, "cohort": cohort},
                may_fire=True,
                title=f"{rule.name}: {subject}",
                summary=summary,
                evidence={
                    "cut": _cut_json(cut),
                    "rule": _rule_json(rule),
                    "cohort": cohort,
                    "subjects": [subject],
                    "numbers": numbers,
                    "records": [],
                    "chart": _lab_chart(values, subject, "BILI", cut),
                },  # fmt: skip
                view_path=build_view_path(PAGE_SUBJECT, study=cut.study_id, cut=cut.run_id, subject=subject),
            )
        )
    return findings


def compute_rule_metric(rule: Rule, table: pd.DataFrame) -> dict[str, Any]:
    """Per row of the rule's rate table: the value compared, whether it crosses, and how to say it."""
    p = rule.params
    n, x = table["n_subjects"], table["n_with_event"]
    extra: dict[int, dict[str, Any]] = {}
    if rule.kind == "incidence":
        values = table["incidence_pct"]
        crossed = (n >= p["min_n"]) & (values > p["above_pct"])

        def describe(row, _):
            return (f"{row['n_with_event']} of {row['n_subjects']} subjects = {row['incidence_pct']:.1f}% "
                    f"(95% CI {row['incidence_ci_low']:.1f}-{row['incidence_ci_high']:.1f}%), "
                    f"above {p['above_pct']}%")  # fmt: skip

        return {"values": values, "crossed": crossed, "threshold": float(p["above_pct"]), "unit": "%",
                "label": "Crude incidence", "describe": describe, "extra": extra}  # fmt: skip
    if rule.kind == "eair":
        values = table["eair_per_100py"]
        compared = table["eair_ci_low"] if p["lower_bound_above"] else values
        crossed = (n >= p["min_n"]) & (compared > p["above_rate"])

        def describe(row, _):
            bound = " (lower bound)" if p["lower_bound_above"] else ""
            return (f"EAIR {row['eair_per_100py']:.2f} per 100 PY (95% CI {row['eair_ci_low']:.2f}-"
                    f"{row['eair_ci_high']:.2f}; {row['n_with_event']} subjects, "
                    f"{row['patient_years_at_risk']:.2f} PY), above {p['above_rate']}{bound}")  # fmt: skip

        return {"values": values, "crossed": crossed, "threshold": float(p["above_rate"]), "unit": "per 100 PY",
                "label": "EAIR", "describe": describe, "extra": extra}  # fmt: skip
    if rule.kind == "count":
        crossed = x >= p["at_least"]
        among = f"the first {p['first_n']} dosed" if p.get("first_n") else "all"
        within = f" with onset by day {p['within_days']}" if p.get("within_days") else ""

        def describe(row, _):
            return (f"{row['n_with_event']} of {among} {row['n_subjects']} subjects{within}, "
                    f"at least {p['at_least']}")  # fmt: skip

        return {"values": x, "crossed": crossed, "threshold": float(p["at_least"]), "unit": "subjects",
                "label": "Subjects with the event", "describe": describe, "extra": extra}  # fmt: skip
    a, b, p0 = p["prior_a"], p["prior_b"], p["p0"]
    post_a, post_b = a + x.to_numpy(dtype=float), b + (n - x).to_numpy(dtype=float)
    probability = pd.Series(stats.beta.sf(p0, post_a, post_b), index=table.index)
    crossed = (n >= p["min_n"]) & (probability > p["above_probability"])
    for position, index in enumerate(table.index):
        extra[index] = {"prior_a": a, "prior_b": b, "posterior_a": float(post_a[position]),
                        "posterior_b": float(post_b[position]), "p0": p0,
                        "posterior_probability_above_p0": float(probability[index]),
                        "above_probability": p["above_probability"]}  # fmt: skip

    def describe(row, index):
        return (f"{row['n_with_event']} of {row['n_subjects']} subjects; posterior Beta({a + row['n_with_event']:g}, "
                f"{b + row['n_subjects'] - row['n_with_event']:g}) under a Beta({a:g}, {b:g}) prior gives "
                f"P(true rate > {p0:g}) = {probability[index]:.3f}, above {p['above_probability']:g}")  # fmt: skip

    return {"values": probability, "crossed": crossed, "threshold": float(p["above_probability"]),
            "unit": f"P(rate > {p0:g})", "label": f"Posterior P(rate > {p0:g})", "describe": describe,
            "extra": extra}  # fmt: skip


# --- small helpers ----------------------------------------------------------------------------------------------


def term_filters(rule: Rule) -> dict[str, str]:
    """The dashboard selection that shows the rule's term; a union of baskets has none (the cohort's rates show)."""
    if rule.pt:
        return {"pt": rule.pt[0]}
    if rule.soc:
        return {"soc": rule.soc[0]}
    if len(rule.basket) == 1 and rule.basket != (ANY_BASKET,):
        return {"basket": rule.basket[0]}
    return {}


def build_view_path(page: str, **filters: Any) -> str:
    """``page?key=value&...`` written as the dashboard writes its addresses: its query keys in its order, flags as
    ``1``, unset (None or False) values left out."""
    unknown = set(filters) - set(VIEW_KEYS)
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not query keys of the dashboard; use {', '.join(VIEW_KEYS)}")
    pairs = [(key, "1" if filters[key] is True else str(filters[key])) for key in VIEW_KEYS
             if filters.get(key) is not None and filters.get(key) is not False]  # fmt: skip
    return f"{page}?{urlencode(pairs, quote_via=quote)}" if pairs else page


def _grade_text(rule: Rule) -> str:
    bits = [f", grade >= {rule.min_grade}" if rule.min_grade else ""]
    bits += [", serious" if rule.serious else "", ", related" if rule.related else ""]
    return "".join(bits)


def _cut_json(cut: CutInfo) -> dict[str, Any]:
    return {"run_id": cut.run_id, "study_id": cut.study_id, "cutoff": cut.cutoff.isoformat()}


def _rule_json(rule: Rule) -> dict[str, Any]:
    return {"id": rule.id, "kind": rule.kind, "name": rule.name, "description": rule.description,
            "term": rule.term_label, "min_grade": rule.min_grade, "serious": rule.serious, "related": rule.related,
            "params": dict(rule.params)}  # fmt: skip


def _record_json(record: pd.Series) -> dict[str, Any]:
    return {
        "record_key": record["RECORD_KEY"], "usubjid": record["USUBJID"], "aeseq": record["AESEQ"],
        "aeterm": record["AETERM"], "pt": record["PT"], "soc": record["SOC"], "grade": _int_or_none(record["GRADE"]),
        "serious": bool(record["SERIOUS"]), "related": bool(record["RELATED"]), "aestdtc": record["AESTDTC"],
        "astdy": _int_or_none(record["ASTDY"]), "aeout": record["AEOUT"], "record_change": record["RECORD_CHANGE"],
        "valid_from_run": int(record["VALID_FROM_RUN"]),
    }  # fmt: skip


def _int_or_none(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _float_or_none(value: Any) -> float | int | None:
    if value is None or pd.isna(value):
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return None if math.isinf(value) else value
