"""The one-screen summary ``ingest`` prints."""

from __future__ import annotations

from safety_dash.ingest.load import COUNT_NAMES
from safety_dash.ingest.pipeline import RunResult

MAX_QUARANTINE_LINES = 10


def format_run_summary(result: RunResult) -> str:
    """A run's outcome, counts per domain and its first quarantined rows, in under a screen."""
    head = f"Run {result.run_id} {result.status}"
    if result.study_id:
        head += f": study {result.study_id}"
    if result.cutoff:
        head += f", cutoff {result.cutoff.isoformat()}"
    lines = [head, result.message]
    if result.domains:
        lines.append("")
        lines.append(f"{'domain':<8}" + "".join(f"{name:>12}" for name in COUNT_NAMES))
        for domain, counts in result.domains.items():
            lines.append(f"{domain:<8}" + "".join(f"{counts[name]:>12}" for name in COUNT_NAMES))
    if result.files:
        lines.append("")
        lines.append("Files read:")
        for f in result.files:
            lines.append(
                f"  {f['path']}  ({f['domain']}, {f['rows']} rows, {f['encoding']}, sha256 {f['sha256'][:12]}…)"
            )
    if result.quarantine:
        lines.append("")
        lines.append(f"Quarantined ({len(result.quarantine)} problems; all are kept with the run):")
        for q in result.quarantine[:MAX_QUARANTINE_LINES]:
            column = f", {q['column']} = {q['value']!r}" if q["column"] else ""
            lines.append(f"  {q['file']} row {q['row_number']}{column}: {q['reason']}")
        if len(result.quarantine) > MAX_QUARANTINE_LINES:
            lines.append(f"  ... and {len(result.quarantine) - MAX_QUARANTINE_LINES} more (see the Data page)")
    return "\n".join(lines)
