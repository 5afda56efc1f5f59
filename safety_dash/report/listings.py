"""The pack's record listings and alerts: AE records new or changed since a cut (with what changed), records no
longer delivered, and the open alerts with their evidence. Formatting only, as :mod:`safety_dash.report.layout`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from safety_dash.report.layout import Cell, PackTable, format_flag, format_grade, format_study_day

CHANGE_COLUMNS = (
    "Subject",
    "Cohort",
    "Seq",
    "Preferred term",
    "Grade",
    "Serious",
    "Related",
    "Onset",
    "Day",
    "Outcome",
    "DLT",
    "Change",
)


def describe_change(r) -> str:
    """'new', or 'changed: grade 2 \u2192 3; outcome ...' from the values the record had in the since cut."""
    if r.CHANGE != "changed":
        return "new"
    pieces = []
    for label, now, was in (
        ("PT", r.AEDECOD if hasattr(r, "AEDECOD") else r.PT, r.WAS_AEDECOD),
        ("grade", r.AETOXGR, r.WAS_AETOXGR),
        ("severity", r.AESEV, r.WAS_AESEV),
        ("outcome", r.AEOUT, r.WAS_AEOUT),
        ("end", r.AEENDTC, r.WAS_AEENDTC),
        ("causality", r.AEREL, r.WAS_AEREL),
    ):
        if str(now or "").strip().upper() != str(was or "").strip().upper():
            pieces.append(f"{label} {was or '(empty)'} \u2192 {now or '(empty)'}")
    return "changed: " + "; ".join(pieces) if pieces else "changed"


def build_change_listing(shown: pd.DataFrame, total: int, title: str, note: str) -> PackTable:
    """A listing of new or changed records: ``shown``, the first of ``total`` (the rest counted in a footnote)."""
    rows = [
        [
            Cell(r.USUBJID),
            Cell(r.GROUP),
            Cell(str(r.AESEQ)),
            Cell(r.PT),
            Cell(format_grade(r.GRADE)),
            Cell(format_flag(r.SERIOUS)),
            Cell(format_flag(r.RELATED)),
            Cell(r.AESTDTC),
            Cell(format_study_day(r.ASTDY)),
            Cell(r.AEOUT.title() if r.AEOUT else ""),
            Cell("Y" if r.DLT else ""),
            Cell(describe_change(r), css="change"),
        ]
        for r in shown.itertuples()
    ]
    notes = [note]
    if total > len(shown):
        notes.append(
            f"The first {len(shown):,} of {total:,} records are listed (highest grade first, then the "
            "latest onset); the dashboard's Listings page holds them all."
        )
    return PackTable(
        title,
        [Cell(h) for h in CHANGE_COLUMNS],
        rows,
        notes,
        css="listing",
        empty_text="No record.",
        widths=[11.5, 7.5, 3, 13, 3.5, 4, 4, 6.5, 3.5, 9.5, 3, 31],
    )


def build_removed_listing(removed: pd.DataFrame, since: int, total: int) -> PackTable:
    """AE records of the since cut that this cut no longer holds (``removed``: the first of ``total``)."""
    rows = [[Cell(r.USUBJID), Cell(str(r.AESEQ)), Cell(r.AEDECOD), Cell(r.AETOXGR)] for r in removed.itertuples()]
    notes = [f"The first {len(removed):,} of {total:,} are listed."] if total > len(removed) else []
    return PackTable(
        f"AE records of cut {since} no longer delivered",
        [Cell(h) for h in ("Subject", "Seq", "Preferred term (then)", "Grade (then)")],
        rows,
        notes,
        css="listing",
        empty_text="None.",
    )


@dataclass(frozen=True)
class AlertItem:
    """One open alert as the pack shows it: what fired, when, and its evidence."""

    alert_id: int
    title: str
    summary: str
    fired: str
    status: str
    evidence: list[tuple[str, str]]


EVIDENCE_NUMBERS = (
    "x1",
    "py1",
    "x0",
    "py0",
    "rate_ratio",
    "rr_ci_low",
    "rr_ci_high",
    "q_pt",
    "q_soc",
    "n",
    "x",
    "incidence_pct",
    "threshold",
    "posterior",
    "n_subjects",
    "n_with_event",
)


def build_alert_items(alerts: pd.DataFrame, cohort: str | None = None, max_subjects: int = 12) -> list[AlertItem]:
    """The open alerts (of ``cohort`` when chosen: those scoped to it or to no cohort), newest first."""
    items = []
    for row in alerts.itertuples():
        scope = row.scope if isinstance(row.scope, dict) else {}
        if cohort and scope.get("cohort") not in (None, "", cohort):
            continue
        evidence = row.evidence if isinstance(row.evidence, dict) else {}
        pairs: list[tuple[str, str]] = []
        rule = evidence.get("rule") or {}
        if rule.get("description"):
            pairs.append(("Rule", f"{rule.get('name', row.rule_id)}: {rule['description']}"))
        numbers = evidence.get("numbers") or {}
        shown = [f"{k} = {_evidence_value(v)}" for k, v in numbers.items() if k in EVIDENCE_NUMBERS or len(numbers) < 8]
        if shown:
            pairs.append(("Numbers", ", ".join(shown)))
        record = evidence.get("record") or {}
        if record:
            pairs.append(
                (
                    "Record",
                    f"{record.get('usubjid', '')} seq {record.get('aeseq', '')}: {record.get('pt', '')}"
                    f", grade {record.get('grade', '?')}, onset {record.get('aestdtc', '')} (day "
                    f"{record.get('astdy', '')}), outcome {record.get('aeout', '') or 'not given'}, "
                    f"{record.get('record_change', '')} in cut {record.get('valid_from_run', '')}",
                )
            )
        subjects = list(evidence.get("subjects") or [])
        if subjects:
            more = f" and {len(subjects) - max_subjects} more" if len(subjects) > max_subjects else ""
            pairs.append((f"Subjects ({len(subjects)})", ", ".join(subjects[:max_subjects]) + more))
        cut = evidence.get("cut") or {}
        fired = f"cut {row.run_id} (cutoff {cut.get('cutoff', row.cutoff)}), {row.created_at:%Y-%m-%d %H:%M} UTC"
        status = "condition still met" if row.condition_active else "condition no longer met, not yet acknowledged"
        items.append(AlertItem(int(row.alert_id), row.title, row.summary, fired, status, pairs))
    return items


def _evidence_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 0.01 and value != 0 else f"{value:.2f}"
    return str(value)
