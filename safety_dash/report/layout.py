"""The committee pack's tables as a committee reads them: headers with N per cohort, "n (%)", intervals in
brackets, footnotes with the definitions used. Turns the frames of :mod:`safety_dash.report.tables` into
:class:`PackTable` rows of text for the template; no number is computed here, only formatted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.report.tables import OVERVIEW_CATEGORIES, order_groups

ALL_LABEL = "All cohorts"
WIDE_GROUPS = 5  # tables with more group columns than this go on landscape pages


@dataclass(frozen=True)
class Cell:
    """One table cell: its main text and an optional second line (an interval), and a style class."""

    text: str
    sub: str = ""
    css: str = ""


@dataclass
class PackTable:
    """A table of the pack: column headers (text, second line), rows of cells, footnotes."""

    title: str
    headers: list[Cell]
    rows: list[list[Cell]]
    footnotes: list[str] = field(default_factory=list)
    css: str = ""  # 'listing' for record listings (smaller type)
    row_css: list[str] = field(default_factory=list)
    empty_text: str = "No rows."
    widths: list[float] = field(default_factory=list)  # column widths in % (listings); else the first is wider


def group_label(group: str) -> str:
    """A group as a column header names it."""
    return ALL_LABEL if group == ALL_GROUP else group


def format_n_pct(n: int, total: int) -> str:
    """'n (x.x%)'; '0' for none; '–' for an empty group."""
    if not total:
        return "\u2013"
    return "0" if n == 0 else f"{int(n)} ({100.0 * n / total:.1f}%)"


def format_number(value: float, digits: int = 1) -> str:
    """A number with ``digits`` decimals; '–' when undefined; 'inf' written out."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    if isinstance(value, float) and math.isinf(value):
        return "\u221e"
    return f"{value:.{digits}f}"


def format_day(value: float) -> str:
    """A count of days or doses: whole numbers without decimals, halves (medians) with one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def format_interval(low: float, high: float, digits: int = 1) -> str:
    """'[low, high]' with ``digits`` decimals; '' when both are undefined."""
    if (low is None or np.isnan(low)) and (high is None or np.isnan(high)):
        return ""
    return f"[{format_number(low, digits)}, {format_number(high, digits)}]"


def format_p(value: float) -> str:
    """A p or q value: 3 significant digits, '<0.001' below."""
    if value is None or np.isnan(value):
        return "\u2013"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def format_date(value) -> str:
    """An ISO date, '' when missing."""
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).date().isoformat()


def group_headers(rates: pd.DataFrame, first: str, note: str = "N") -> tuple[list[str], list[Cell]]:
    """The groups of ``rates`` in pack order and their headers (name, 'N = n'; 'PY = x' when ``note`` is 'PY')."""
    groups = order_groups(rates["group"])
    headers = [Cell(first)]
    for group in groups:
        row = rates.loc[rates["group"] == group].iloc[0]
        sub = f"N = {int(row['n_subjects'])}" if note == "N" else f"PY = {row['exposure_years']:.1f}"
        headers.append(Cell(group_label(group), sub, "total" if group == ALL_GROUP else ""))
    return groups, headers


def incidence_cell(row) -> Cell:
    """'n (%)' of a rate table row, its Clopper–Pearson interval below."""
    n, total = int(row["n_with_event"]), int(row["n_subjects"])
    interval = format_interval(row["incidence_ci_low"], row["incidence_ci_high"]) if total else ""
    return Cell(format_n_pct(n, total), interval)


def eair_cell(row) -> Cell:
    """EAIR per 100 PY of a rate table row, its exact interval below."""
    return Cell(format_number(row["eair_per_100py"]), format_interval(row["eair_ci_low"], row["eair_ci_high"]))


def build_exposure_table(summary: pd.DataFrame) -> PackTable:
    """Exposure summary: subjects, doses, duration, patient-years by cohort."""
    groups = order_groups(summary["group"])
    by_group = summary.set_index("group")
    headers = [Cell("")] + [
        Cell(group_label(g), f"N = {int(by_group.loc[g, 'n_dosed'])}", "total" if g == ALL_GROUP else "")
        for g in groups
    ]

    def line(label: str, value) -> list[Cell]:
        return [Cell(label, css="label")] + [Cell(value(by_group.loc[g])) for g in groups]

    def median_range(stem: str):
        return lambda r: (
            f"{format_day(r[stem + '_median'])} ({format_day(r[stem + '_min'])}\u2013{format_day(r[stem + '_max'])})"
            if r["n_dosed"]
            else "\u2013"
        )

    rows = [
        line("Subjects enrolled (DM)", lambda r: str(int(r["n_enrolled"]))),
        line("Subjects dosed (safety population)", lambda r: str(int(r["n_dosed"]))),
        line("Doses given, total", lambda r: str(int(r["doses_total"]))),
        line("Doses per subject, median (range)", median_range("doses")),
        line("Duration of treatment, days, median (range)", median_range("duration")),
        line("Treatment ongoing at cutoff, n (%)", lambda r: format_n_pct(int(r["n_ongoing"]), int(r["n_dosed"]))),
        line("Patient-years of treatment", lambda r: format_number(r["treatment_years"])),
        line("Patient-years in the risk window", lambda r: format_number(r["exposure_years"])),
        line("Deaths in the cut, n (%)", lambda r: format_n_pct(int(r["n_deaths"]), int(r["n_dosed"]))),
    ]
    notes = [
        "N: subjects with a first dose on or before the cutoff (safety population). Duration of treatment: last dose "
        "date \u2212 first dose date + 1. Patient-years of treatment: the sum of those durations / 365.25.",
        "Patient-years in the risk window: the sum of days at risk (first dose to min(last dose + W, death, "
        "cutoff)) / 365.25, the denominator of the exposure-adjusted event rate and the dashboard's patient-years.",
        "Treatment ongoing: dosed subjects without an end of treatment (RFXENDTC) in DM.",
    ]
    return PackTable("Exposure by cohort", headers, rows, notes)


def build_overview_table(overview: pd.DataFrame, filters_text: str) -> PackTable:
    """Overview of TEAEs: subjects with any, grade >= 3, serious, related, leading to discontinuation, fatal and
    immune-related TEAEs, n (%) [95% CI] by cohort."""
    groups, headers = group_headers(overview.loc[overview["category"] == "any"], "Subjects with")
    rows = []
    for key, label in OVERVIEW_CATEGORIES:
        part = overview.loc[overview["category"] == key].set_index("group")
        rows.append([Cell(label, css="label")] + [incidence_cell(part.loc[g]) for g in groups])
    notes = [
        "n (%): subjects with at least one such treatment-emergent adverse event (TEAE) counted in the cut; "
        "[95% CI]: exact Clopper\u2013Pearson interval.",
        "Serious: AESER or any seriousness criterion = Y, outcome fatal or grade 5 (ICH E2A). Related: causality in "
        "the study's related set. Leading to discontinuation: action taken AEACN = DRUG WITHDRAWN. Fatal: grade 5. "
        "Immune-related: PT in any immune-related basket.",
    ]
    if filters_text != "none":
        notes.append(f"Filters applied to every category: {filters_text}.")
    return PackTable("Overview of treatment-emergent adverse events", headers, rows, notes)


def build_soc_pt_tables(
    table: pd.DataFrame, left_out: int, n_reaching: int, title: str, threshold_pct: float, notes: list[str]
) -> tuple[PackTable, PackTable]:
    """Incidence (n (%) [CI]) and EAIR ([CI]) by SOC and PT, one column per cohort and ALL."""
    if table.empty:
        empty = PackTable(title, [Cell("System organ class / Preferred term")], [], notes, empty_text="No event.")
        return empty, PackTable(title.replace("Incidence", "EAIR"), empty.headers, [], notes, empty_text="No event.")
    groups, headers = group_headers(table, "System organ class\nPreferred term")
    _, py_headers = group_headers(table, "System organ class\nPreferred term")
    incidence_rows, eair_rows, row_css = [], [], []
    for (level, soc, pt), part in table.groupby(["level", "soc", "pt"], sort=False):
        part = part.set_index("group")
        label = Cell(soc if level == "soc" else pt, css="soc" if level == "soc" else "pt")
        incidence_rows.append([label] + [incidence_cell(part.loc[g]) for g in groups])
        eair_rows.append([label] + [eair_cell(part.loc[g]) for g in groups])
        row_css.append(level)
    n_shown = sum(1 for level in row_css if level == "pt")
    threshold = (
        f"PTs shown: incidence \u2265 {threshold_pct:g}% in at least one cohort ({left_out} other PTs not shown); "
        "every SOC is shown."
    )
    if n_reaching > n_shown:
        threshold += (
            f" {n_reaching} PTs reach the threshold: the {n_shown} with most subjects in all cohorts are shown "
            "(the rates command lists every one)."
        )
    incidence = PackTable(title, headers, incidence_rows, [threshold, *notes], row_css=row_css)
    eair_title = title.replace("Incidence", "Exposure-adjusted incidence rate (EAIR, per 100 patient-years)")
    eair = PackTable(eair_title, py_headers, eair_rows, [threshold, *notes], row_css=row_css)
    return incidence, eair


def build_basket_tables(rates: pd.DataFrame, onset: pd.DataFrame, baskets: list[str]) -> tuple[PackTable, ...]:
    """Immune-related baskets: incidence, EAIR and time to onset (median [Q1, Q3] of the first onset day, n); rows
    in the order of ``baskets`` (the union first), baskets without a counted event named in a footnote."""
    groups, headers = group_headers(rates, "Basket")
    present = [b for b in baskets if b in set(rates["pt"])]
    incidence_rows, eair_rows, onset_rows = [], [], []
    for basket in present:
        part = rates.loc[rates["pt"] == basket].set_index("group")
        label = Cell(basket, css="soc" if basket == baskets[0] else "pt")
        incidence_rows.append([label] + [incidence_cell(part.loc[g]) for g in groups])
        eair_rows.append([label] + [eair_cell(part.loc[g]) for g in groups])
        times = onset.loc[onset["basket"] == basket].set_index("group")
        cells = []
        for g in groups:
            row = times.loc[g]
            if not row["n_with_event"]:
                cells.append(Cell("\u2013"))
                continue
            quartiles = f"[{format_day(row['q1_onset_day'])}, {format_day(row['q3_onset_day'])}]"
            cells.append(Cell(f"{format_day(row['median_onset_day'])} (n = {int(row['n_with_event'])})", quartiles))
        onset_rows.append([label] + cells)
    notes = ["Baskets: named lists of preferred terms (the study's basket file); a subject counts once per basket."]
    absent = [b for b in baskets if b not in present]
    if absent:
        notes.append("Baskets without a counted event in the cut: " + ", ".join(absent) + ".")
    onset_note = (
        "Median (n = subjects with the event) and [first, third quartile] of the onset day of each "
        "subject's first qualifying event of the basket (onset day = onset \u2212 first dose + 1)."
    )
    return (
        PackTable("Immune-related adverse events by basket: incidence", headers, incidence_rows, notes),
        PackTable("Immune-related adverse events by basket: EAIR per 100 patient-years", headers, eair_rows, notes),
        PackTable(
            "Time to onset of the first immune-related event by basket (days since first dose)",
            headers,
            onset_rows,
            [onset_note],
        ),
    )


def listed_note(total: int, limit: int, where: str) -> list[str]:
    """The footnote of a listing cut at ``limit`` rows, naming ``where`` the rest can be read."""
    return [f"The first {limit:,} of {total:,} rows are listed; {where}."] if total > limit else []


def build_dlt_tables(
    table: pd.DataFrame, records: pd.DataFrame, column: str, days: int, total: int | None = None
) -> tuple[PackTable, PackTable]:
    """DLTs by dose level: subjects with a DLT over DLT-evaluable subjects, and the DLT records."""
    headers = [
        Cell("Dose level (cohort)"),
        Cell("Dosed"),
        Cell("DLT-evaluable"),
        Cell("Subjects with a DLT", "n (%) [95% CI]"),
        Cell("DLT records after the period"),
    ]
    rows = []
    for group in order_groups(table["group"]):
        row = table.loc[table["group"] == group].iloc[0]
        share = Cell(
            format_n_pct(int(row["n_dlt"]), int(row["n_evaluable"])),
            format_interval(row["ci_low"], row["ci_high"]) if row["n_evaluable"] else "",
        )
        rows.append(
            [
                Cell(group_label(group), css="label"),
                Cell(str(int(row["n_dosed"]))),
                Cell(str(int(row["n_evaluable"]))),
                share,
                Cell(str(int(row["n_outside_period"]))),
            ]
        )
    notes = [
        f"DLT: a treatment-emergent AE record with {column} = Y. DLT period: days 1\u2013{days} from the first dose. "
        f"DLT-evaluable: dosed and followed for the DLT period ({days} days at risk or more) or with a DLT inside it. "
        "Percentages of the DLT-evaluable subjects; exact Clopper\u2013Pearson 95% CI.",
    ]
    summary = PackTable("Dose-limiting toxicities by dose level", headers, rows, notes)
    listing_headers = [
        Cell(h)
        for h in (
            "Cohort",
            "Subject",
            "Seq",
            "Preferred term",
            "Grade",
            "Onset",
            "Day",
            "In DLT period",
            "Serious",
            "Related",
        )
    ]
    listing_rows = [
        [
            Cell(r.GROUP),
            Cell(r.USUBJID),
            Cell(str(r.AESEQ)),
            Cell(r.PT),
            Cell(format_grade(r.GRADE)),
            Cell(r.AESTDTC),
            Cell(format_study_day(r.ASTDY)),
            Cell("yes" if r.IN_PERIOD else "no"),
            Cell(format_flag(r.SERIOUS)),
            Cell(format_flag(r.RELATED)),
        ]
        for r in records.itertuples()
    ]
    listing = PackTable(
        "DLT records",
        listing_headers,
        listing_rows,
        listed_note(total or len(records), len(records), "the dashboard's Listings page holds them all"),
        css="listing",
        empty_text="No DLT recorded.",
        widths=[11, 15, 4, 24, 6, 10, 5, 9, 8, 8],
    )
    return summary, listing


def format_grade(value) -> str:
    """A CTCAE grade, '?' when unknown."""
    return "?" if value is None or pd.isna(value) else str(int(value))


def format_study_day(value) -> str:
    """A study day, '' when unknown."""
    return "" if value is None or pd.isna(value) else str(int(value))


def format_flag(value) -> str:
    """Y or N."""
    return "Y" if bool(value) else "N"


def build_death_tables(summary: pd.DataFrame, listing: pd.DataFrame, limit: int = 200) -> tuple[PackTable, PackTable]:
    """Deaths within 30 and 90 days of the last dose: n (%) by cohort, and the listing of deaths."""
    groups = order_groups(summary["group"])
    by_group = summary.set_index("group")
    headers = [Cell("")] + [
        Cell(group_label(g), f"N = {int(by_group.loc[g, 'n_subjects'])}", "total" if g == ALL_GROUP else "")
        for g in groups
    ]
    rows = []
    for label, column in (
        ("Deaths in the cut", "n_deaths"),
        ("Within 30 days of the last dose", "n_within_30"),
        ("Within 90 days of the last dose", "n_within_90"),
    ):
        rows.append(
            [Cell(label, css="label")]
            + [Cell(format_n_pct(int(by_group.loc[g, column]), int(by_group.loc[g, "n_subjects"]))) for g in groups]
        )
    notes = [
        "Within 30 (90) days: death date \u2212 last dose date \u2264 30 (90) days. A partial death date takes "
        "the first day of its period, never before the last dose. Deaths after the cutoff are not in the cut."
    ]
    table = PackTable("Deaths by cohort", headers, rows, notes)
    listing_headers = [
        Cell(h)
        for h in (
            "Subject",
            "Cohort",
            "First dose",
            "Last dose",
            "Death",
            "Days after last dose",
            "Within 30 d",
            "Within 90 d",
            "Fatal AE (PT)",
        )
    ]
    listing_rows = [
        [
            Cell(r.USUBJID),
            Cell(r.GROUP),
            Cell(format_date(r.TRTSDT)),
            Cell(format_date(r.TRTEDT)),
            Cell(format_date(r.DTHDT)),
            Cell(str(int(r.DAYS_AFTER_LAST_DOSE))),
            Cell("yes" if r.DAYS_AFTER_LAST_DOSE <= 30 else "no"),
            Cell("yes" if r.DAYS_AFTER_LAST_DOSE <= 90 else "no"),
            Cell(r.FATAL_PT or "(no grade 5 AE recorded)"),
        ]
        for r in listing.head(limit).itertuples()
    ]
    return table, PackTable(
        "Listing of deaths",
        listing_headers,
        listing_rows,
        listed_note(len(listing), limit, "the deaths nearest to the last dose first"),
        css="listing",
        empty_text="No death in the cut.",
        widths=[14, 11, 8, 8, 8, 8, 6, 6, 31],
    )


def build_signal_table(flagged: pd.DataFrame, counts: dict[str, int], limit: int = 200) -> PackTable:
    """Flagged signals (DOMAIN.md §7): counts, rate ratio [95% CI], p and q values, the cut that first flagged it."""
    headers = [
        Cell(h, sub)
        for h, sub in (
            ("Level", ""),
            ("Test", ""),
            ("Group", ""),
            ("System organ class", ""),
            ("Preferred term", ""),
            ("x\u2081 / PY\u2081", "now"),
            ("x\u2080 / PY\u2080", "reference"),
            ("Rate ratio", "[95% CI]"),
            ("p", "one-sided"),
            ("q", "term"),
            ("q", "SOC of the PT"),
            ("First flagged", "cut"),
        )
    ]
    rows = []
    for r in flagged.head(limit).itertuples():
        rows.append(
            [
                Cell(r.by.upper()),
                Cell(r.test),
                Cell(group_label(r.group)),
                Cell(r.soc or ""),
                Cell(r.pt or ""),
                Cell(f"{int(r.x1)} / {r.py1:.1f}"),
                Cell(f"{int(r.x0)} / {r.py0:.1f}"),
                Cell(format_number(r.rate_ratio, 2), format_interval(r.rr_ci_low, r.rr_ci_high, 2)),
                Cell(format_p(r.p_one_sided)),
                Cell(format_p(r.q_pt)),
                Cell(format_p(r.q_soc)),
                Cell("" if pd.isna(r.first_flagged_run) else str(int(r.first_flagged_run))),
            ]
        )
    tested = ", ".join(f"{n} {by.upper()} rows" for by, n in counts.items())
    notes = [
        "rising: subjects with a first event since the previous cut's cutoff (x\u2081 over the time at risk since "
        "then, PY\u2081) against before it (x\u2080, PY\u2080). cohort: the cohort (x\u2081, PY\u2081) against all "
        "other cohorts pooled (x\u2080, PY\u2080). Rate ratio with the exact conditional 95% interval; one-sided p "
        "(rising).",
        "PT rows are flagged by the double false discovery rate (Mehrotra & Heyse): q of the PT \u2264 0.10 among the "
        "PTs of its SOC, q of the SOC \u2264 0.10 across SOCs, and x\u2081 \u2265 2; SOC rows when q (Benjamini\u2013"
        f"Hochberg across SOCs) \u2264 0.10 and x\u2081 \u2265 2. Tested: {tested}.",
    ]
    notes += listed_note(len(flagged), limit, "the signals command lists them all")
    return PackTable(
        "Flagged signals", headers, rows, notes, css="listing", empty_text="No term is flagged in this cut."
    )
