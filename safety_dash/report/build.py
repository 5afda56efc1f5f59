"""Make the committee pack of a data cut: gather its sections, render HTML with Jinja2, print it to PDF with
WeasyPrint.

WeasyPrint lays out CSS paged media itself (page counters in the margins, a contents list with page numbers through
``target-counter``, named landscape pages, PDF bookmarks) in Python with Pango, with no browser and no display;
headless Chromium prints faster but has no margin boxes or ``target-counter``, so neither page numbers in the
contents nor a footer without a second pass. See :mod:`safety_dash.report.figures` for the figures.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

import safety_dash
from safety_dash.analysis import CutContext
from safety_dash.config import DEFAULT_BASKETS_FILE
from safety_dash.report import layout, listings, tables
from safety_dash.report.figures import cohort_colours, make_cumulative_incidence_svg, make_eair_forest_svg
from safety_dash.report.inputs import (
    LISTING_COLUMNS,
    PackFilters,
    PackInputs,
    load_pack_alerts,
    load_pack_inputs,
    load_pack_signals,
    resolve_pack_cuts,
)
from safety_dash.report.review_status import load_review_status

TEMPLATES = Path(__file__).parent / "templates"
OUTPUT_FORMATS = ("pdf", "html")
DEFAULT_THRESHOLD_PCT = 5.0
DEFAULT_SEVERE_THRESHOLD_PCT = 1.0  # grade >= 3 tables: PTs reaching 1% in a cohort
DEFAULT_LISTING_LIMIT = 300
DEFAULT_OTHER_LISTING_LIMIT = 120
MAX_PT_ROWS = 100  # PTs per SOC/PT table: a study with a thousand PTs still makes a pack a committee reads
MAX_LISTED = 150  # rows of the DLT, death and signal listings


@dataclass
class Section:
    """A numbered section of the pack: tables, figures and text blocks, on landscape pages when ``wide``."""

    anchor: str
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)
    wide: bool = False
    intro: str = ""


def make_committee_pack(
    bind,
    study_id: str | None = None,
    run_id: int | None = None,
    since_run_id: int | None = None,
    out_path: str | Path | None = None,
    output_format: str = "pdf",
    filters: PackFilters | Mapping | None = None,
    baskets: Mapping[str, frozenset[str]] | None = None,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
) -> Path:
    """Write the committee pack of a data cut (DOMAIN.md §6) and return its path.

    ``run_id`` defaults to the study's latest cut (``study_id`` None: the latest cut of any study), ``since_run_id``
    (the start of the "new or changed" listings) to the cut before it; ``output_format`` 'pdf' or 'html' (one file,
    figures inline); ``out_path`` defaults to ``committee-pack_<study>_cut<run>.<format>`` in the current folder.
    ``filters`` (a :class:`PackFilters` or a mapping of its fields) restrict the pack as the dashboard's filters do;
    ``baskets`` default to the shipped immune-related baskets. Raises ValueError with a sentence for an unknown or
    unfinished cut, a ``since`` cut that is not earlier, a cohort the cut lacks, a bad format or threshold.
    """
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"--format {output_format!r} is not a pack format; use pdf or html")
    if out_path is not None and not Path(out_path).parent.exists():
        raise ValueError(f"--out {out_path}: the folder {Path(out_path).parent} does not exist")
    content, cut = _assemble(bind, study_id, run_id, since_run_id, filters, baskets, threshold_pct)
    html = render_pack_html(content)
    path = Path(out_path) if out_path else Path(default_file_name(cut, output_format))
    if output_format == "html":
        path.write_text(html, encoding="utf-8")
    else:
        path.write_bytes(write_pack_pdf(html))
    return path


def make_committee_pack_download(
    bind,
    study_id: str,
    run_id: int,
    cohort: str | None = None,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
    baskets: Mapping[str, frozenset[str]] | None = None,
) -> tuple[bytes, str]:
    """The committee pack (PDF) of the dashboard's current study, cut and filters, as (bytes, file name) for a
    download; ``since`` is the previous cut. Raises ValueError with a sentence, as :func:`make_committee_pack`."""
    filters = PackFilters(cohort or None, min_grade, bool(serious), bool(related))
    content, cut = _assemble(bind, study_id, run_id, None, filters, baskets, DEFAULT_THRESHOLD_PCT)
    return write_pack_pdf(render_pack_html(content)), default_file_name(cut, "pdf", filters)


def default_file_name(cut: CutContext, output_format: str, filters: PackFilters | None = None) -> str:
    """``committee-pack_<study>_cut<run>_<cutoff>[_<cohort>].<format>``, safe as a file name."""
    stem = f"committee-pack_{cut.study_id}_cut{cut.run_id}_{cut.cutoff.isoformat()}"
    if filters is not None and filters.cohort:
        stem += "_" + filters.cohort
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem) + "." + output_format


def _as_filters(filters: PackFilters | Mapping | None) -> PackFilters:
    if filters is None:
        return PackFilters()
    if isinstance(filters, PackFilters):
        return filters
    if isinstance(filters, Mapping):
        unknown = set(filters) - {"cohort", "min_grade", "serious", "related"}
        if unknown:
            raise ValueError(
                f"unknown pack filter {', '.join(sorted(unknown))}; use cohort, min_grade, serious, related"
            )
        return PackFilters(**filters)
    raise ValueError(
        f"filters must be a PackFilters or a mapping of cohort, min_grade, serious, related, not {filters!r}"
    )


def _assemble(bind, study_id, run_id, since_run_id, filters, baskets, threshold_pct) -> tuple[dict, CutContext]:
    if isinstance(threshold_pct, bool) or not isinstance(threshold_pct, (int, float)) or not 0 <= threshold_pct <= 100:
        raise ValueError(f"threshold {threshold_pct!r} is not a percentage between 0 and 100")
    filters = _as_filters(filters)
    if baskets is None:
        from safety_dash.analysis import load_baskets

        baskets = load_baskets(DEFAULT_BASKETS_FILE)
    cut, since = resolve_pack_cuts(bind, study_id, run_id, since_run_id)
    inputs = load_pack_inputs(bind, cut, since, filters)
    signals = load_pack_signals(bind, cut, filters)
    alerts = load_pack_alerts(bind, cut.study_id)
    review = load_review_status(bind, cut, set(inputs.subjects["USUBJID"]) if filters.cohort else None)
    sections = build_sections(inputs, filters, baskets, signals, alerts, review, threshold_pct)
    return build_context(inputs, filters, sections), cut


def build_sections(
    inputs: PackInputs,
    filters: PackFilters,
    baskets: Mapping[str, frozenset[str]],
    signals: Mapping[str, pd.DataFrame],
    alerts: pd.DataFrame,
    review: pd.DataFrame | None,
    threshold_pct: float = DEFAULT_THRESHOLD_PCT,
    listing_limit: int = DEFAULT_LISTING_LIMIT,
    other_limit: int = DEFAULT_OTHER_LISTING_LIMIT,
) -> list[Section]:
    """Every section of the pack, in the order of DOMAIN.md §6, from the cut's inputs."""
    subjects, events, f = inputs.subjects, inputs.events, filters.event_filters
    n_groups = len(inputs.cohorts if not filters.cohort else [filters.cohort]) + 1
    wide = n_groups > layout.WIDE_GROUPS
    colours = cohort_colours([*inputs.cohorts, tables.ALL_GROUP])
    definitions = definition_notes(inputs)
    sections = []

    exposure = tables.compute_exposure_summary(subjects)
    sections.append(Section("exposure", "Exposure", [("table", layout.build_exposure_table(exposure))], wide))

    overview = tables.compute_teae_overview(events, subjects, baskets, **f)
    sections.append(
        Section(
            "overview",
            "Overview of treatment-emergent adverse events",
            [("table", layout.build_overview_table(overview, filters.describe()))],
            wide,
        )
    )

    sections.append(_dlt_section(inputs))

    severe_threshold = min(threshold_pct, DEFAULT_SEVERE_THRESHOLD_PCT)
    for anchor, title, grade, threshold in (
        ("socpt", "Incidence by SOC and PT, any grade", filters.min_grade, threshold_pct),
        ("socpt3", "Incidence by SOC and PT, grade \u2265 3", max(filters.min_grade or 0, 3), severe_threshold),
    ):
        table, left_out, n_reaching = tables.compute_soc_pt_table(
            events, subjects, grade, filters.serious, filters.related, threshold, MAX_PT_ROWS
        )
        incidence, eair = layout.build_soc_pt_tables(table, left_out, n_reaching, title, threshold, definitions)
        sections.append(Section(anchor, title, [("table", incidence)], wide))
        sections.append(Section(anchor + "-eair", title.replace("Incidence", "EAIR"), [("table", eair)], wide))

    sections.append(_basket_section(inputs, filters, baskets, colours, wide))

    summary, listing = tables.compute_deaths(subjects, events)
    death_table, death_listing = layout.build_death_tables(summary, listing, MAX_LISTED)
    sections.append(
        Section(
            "deaths",
            "Deaths within 30 and 90 days of the last dose",
            [("table", death_table), ("table", death_listing)],
            True,
        )
    )

    flagged = tables.select_flagged_signals(signals, filters.cohort)
    tested = tables.count_signal_tests(signals, filters.cohort)
    signal_table = layout.build_signal_table(flagged, tested, MAX_LISTED)
    sections.append(Section("signals", "Flagged signals", [("table", signal_table)], True))

    sections.extend(_change_sections(inputs, filters, listing_limit, other_limit))

    items = listings.build_alert_items(alerts, filters.cohort)
    sections.append(
        Section(
            "alerts",
            "Open alerts",
            [("alerts", items)],
            intro=f"{len(items)} open alert(s) of study {inputs.cut.study_id}, newest first.",
        )
    )
    if review is not None:
        sections.append(Section("review", "Review status of the cut", [("table", _review_table(review))]))
    sections.append(Section("definitions", "Definitions", [("definitions", definitions)]))
    return sections


def _dlt_section(inputs: PackInputs) -> Section:
    title = "Dose-limiting toxicities by dose level"
    if not inputs.has_dlt_column:
        text = (
            f"The AE records of this cut carry no DLT column ({inputs.dlt_column}); set the study's DLT column "
            "with `python -m safety_dash study set STUDY --dlt-column NAME` if its data flag DLTs."
        )
        return Section("dlt", title, [("text", text)])
    summary, records = tables.compute_dlt_table(inputs.events, inputs.subjects, inputs.dlt_days)
    shown = _with_record_values(inputs, records.head(MAX_LISTED))
    table, listing = layout.build_dlt_tables(summary, shown, inputs.dlt_column, inputs.dlt_days, len(records))
    return Section("dlt", title, [("table", table), ("table", listing)], True)


def _basket_section(inputs, filters, baskets, colours, wide) -> Section:
    title = "Immune-related adverse events: incidence and time to onset"
    rates, onset, curves = tables.compute_basket_tables(
        inputs.events, inputs.subjects, baskets, **filters.event_filters
    )
    if rates.empty:
        return Section("baskets", title, [("text", "No basket is configured.")])
    incidence, eair, onset_table = layout.build_basket_tables(rates, onset, [tables.ANY_BASKET, *baskets])
    window = inputs.cut.window_days
    any_curves = curves.loc[curves["basket"] == tables.ANY_BASKET]
    by_basket = curves.loc[(curves["group"] == tables.ALL_GROUP) & (curves["basket"] != tables.ANY_BASKET)]
    blocks = [("table", incidence), ("table", eair), ("table", onset_table)]
    if not any_curves.empty:
        svg = make_cumulative_incidence_svg(
            any_curves, f"First {tables.ANY_BASKET.lower()} event, by cohort", colours=colours, window_days=window
        )
        blocks.append(("figure", ("Cumulative incidence of the first immune-related adverse event by cohort", svg)))
        forest = make_eair_forest_svg(
            rates.loc[rates["pt"] == tables.ANY_BASKET], f"{tables.ANY_BASKET}: EAIR by cohort", colours
        )
        blocks.append(("figure", ("EAIR of immune-related adverse events by cohort (exact 95% CI)", forest)))
    if not by_basket.empty:
        svg = make_cumulative_incidence_svg(
            by_basket.assign(group=by_basket["basket"]),
            "First event of each basket, all cohorts",
            label_column="basket",
            window_days=window,
        )
        blocks.append(("figure", ("Cumulative incidence of the first event of each basket, all cohorts", svg)))
    note = (
        "Cumulative incidence: Aalen\u2013Johansen estimate of the first qualifying event by day since the first "
        "dose, death within the risk window as the competing event, other subjects censored at the end of their "
        "risk window."
    )
    blocks.append(("notes", [note]))
    return Section("baskets", title, blocks, wide)


def _change_sections(inputs: PackInputs, filters: PackFilters, limit: int, other_limit: int) -> list[Section]:
    since = inputs.since[0] if inputs.since else None
    listed, removed = tables.list_changed_events(
        inputs.events, inputs.subjects, since, inputs.since_keys, **filters.event_filters
    )
    severe, other = listed.loc[listed["SEVERE"]], listed.loc[~listed["SEVERE"]]
    shown = {"severe": severe.head(limit), "other": other.head(other_limit)}
    keys = [k for part in shown.values() for k in part.loc[part["CHANGE"] == "changed", "RECORD_KEY"]]
    previous = inputs.previous_values(keys + removed[:limit]) if inputs.previous_values else pd.DataFrame()
    shown = {
        name: tables.attach_previous_values(_with_record_values(inputs, part), previous) for name, part in shown.items()
    }
    if since is None:
        start = "the study's first cut: every counted record is new"
    else:
        start = f"cut {since} (cutoff {inputs.since[1].isoformat()})"
    n_new, n_changed = int((listed["CHANGE"] == "new").sum()), int((listed["CHANGE"] == "changed").sum())
    counts = (
        f"{n_new} new and {n_changed} changed counted AE records since {start}: {len(severe)} of grade \u2265 3, "
        f"serious or DLT, {len(other)} other."
    )
    note = (
        "Counted (treatment-emergent) AE records whose version in this cut was delivered after the since cut: new "
        "(not in that cut) or changed (with the values it had then). Filters: " + filters.describe() + "."
    )
    title = "Grade \u2265 3, serious or DLT records"
    blocks = [("table", listings.build_change_listing(shown["severe"], len(severe), title, note))]
    if since is not None and removed:
        mine = previous["USUBJID"].isin(inputs.subjects["USUBJID"]) if len(previous) else []
        gone = previous.loc[previous["RECORD_KEY"].isin(removed) & mine] if len(previous) else previous
        if len(gone):
            blocks.append(("table", listings.build_removed_listing(gone, since, len(removed))))
    heading = f"Events new or changed since {'cut ' + str(since) if since else 'the start'}"
    main = Section("changes", heading, blocks, True, intro=counts)
    other_table = listings.build_change_listing(shown["other"], len(other), "Other new or changed records", note)
    appendix = Section("changes-other", "Appendix: other new or changed records", [("table", other_table)], True)
    return [main, appendix]


def _with_record_values(inputs: PackInputs, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (events) with the raw values a listing shows (AESEQ, AESTDTC, AEOUT, ...), read for its rows only."""
    values = inputs.record_values(frame["AE_ID"].tolist())
    kept = frame.drop(columns=[c for c in LISTING_COLUMNS if c in frame.columns])
    merged = kept.merge(values, on="AE_ID", how="left")
    merged.index = frame.index
    return merged.fillna({c: "" for c in LISTING_COLUMNS})


def _review_table(review: pd.DataFrame) -> layout.PackTable:
    columns = [c for c in review.columns if c != "record_type"]
    headers = [layout.Cell("Records of the cut")] + [layout.Cell(c.capitalize()) for c in columns]
    rows = [
        [layout.Cell(str(row["record_type"]), css="label")] + [layout.Cell(f"{int(row[c]):,}") for c in columns]
        for _, row in review.iterrows()
    ]
    notes = [
        "Reviewed: the record's version in this cut is reviewed. Outdated: an earlier version was reviewed and the "
        "record has changed since. Needs review: not reviewed or outdated."
    ]
    return layout.PackTable("Review status of the cut's records", headers, rows, notes)


def definition_notes(inputs: PackInputs) -> list[str]:
    """The definitions every table of the pack follows (DOMAIN.md §2–§4), with this study's settings."""
    window = inputs.cut.window_days
    return [
        "Treatment-emergent (TEAE): imputed onset on or after the first dose and no later than the last dose + "
        f"{window} days (W), except an event that ended before the first dose. Counted in this cut: onset no later "
        "than the subject's risk window end = min(last dose + W, death, data cutoff).",
        "Onset imputation: a partial onset date takes the first day of its period, or the first dose date when that "
        "lies inside the period; a missing onset takes the first dose date (admiral highest imputation 'M').",
        f"Grade: CTCAE v{inputs.ctcae_version} (AETOXGR); without one, grade 5 when fatal, else from severity "
        "(mild 1, moderate 2, severe 3). An event's grade is its worst grade.",
        "Incidence: n = subjects with \u2265 1 counted event, % of N = dosed subjects of the group; [95% CI] exact "
        "Clopper\u2013Pearson.",
        "EAIR: subjects with the event per 100 patient-years at risk; time at risk = first dose to the first onset "
        "(subjects with the event) or to the risk window end (others); [95% CI] exact Poisson (Garwood).",
    ]


def build_context(inputs: PackInputs, filters: PackFilters, sections: list[Section]) -> dict:
    """What the template shows on the title page, and the sections."""
    cut = inputs.cut
    files = [
        {
            "domain": (f.get("domain") or "").upper(),
            "name": Path(str(f.get("path", ""))).name,
            "rows": f.get("rows"),
            "sha256": f.get("sha256", ""),
        }
        for f in inputs.files
    ]
    since = f"cut {inputs.since[0]} (cutoff {inputs.since[1].isoformat()})" if inputs.since else "none (first cut)"
    return {
        "study_id": cut.study_id,
        "run_id": cut.run_id,
        "cutoff": cut.cutoff.isoformat(),
        "since": since,
        "filters": filters.describe(),
        "made_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": safety_dash.__version__,
        "window_days": cut.window_days,
        "ctcae_version": inputs.ctcae_version,
        "loaded_at": inputs.run_finished_at.strftime("%Y-%m-%d %H:%M UTC") if inputs.run_finished_at else "",
        "files": files,
        "sections": sections,
    }


def render_pack_html(context: dict) -> str:
    """The pack as one HTML document (styles and figures inline)."""
    import jinja2
    from markupsafe import Markup

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True
    )
    # Figures go in as data: URIs: WeasyPrint parses an SVG image with its XML parser, far faster than inline SVG
    # through the HTML parser.
    environment.filters["b64"] = lambda text: base64.b64encode(text.encode("utf-8")).decode("ascii")
    css = Markup((TEMPLATES / "pack.css").read_text(encoding="utf-8"))
    return environment.get_template("pack.html.j2").render(css=css, Markup=Markup, **context)


def write_pack_pdf(html: str) -> bytes:
    """The HTML pack printed to PDF by WeasyPrint."""
    import logging

    import weasyprint

    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # font-subsetting chatter is not the user's concern
    return weasyprint.HTML(string=html, base_url=str(TEMPLATES)).write_pdf()
