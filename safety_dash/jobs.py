"""Jobs: idempotent verb_noun functions, each bounded per run; safety_dash.scheduler says when they run.

``ingest_inbox`` claims an extract folder by renaming it into ``<inbox>/.processing``: a rename is atomic,
so when two scheduler processes look at the same inbox only one of them gets each extract.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
from pathlib import Path

from safety_dash.config import Settings
from safety_dash.ingest.pipeline import EXIT_FILE_PROBLEM, RunResult, ingest_extract
from safety_dash.processes import current_host, is_dead_here

log = logging.getLogger(__name__)
MAX_EXTRACTS_PER_RUN = 10
READY_MARKER = "READY"


def ingest_inbox(settings: Settings) -> list[RunResult]:
    """Ingest every settled extract folder in the inbox, oldest name first; archive or reject each."""
    for folder in (settings.inbox, settings.archive, settings.rejected, settings.inbox / ".processing"):
        folder.mkdir(parents=True, exist_ok=True)
    recover_abandoned_claims(settings)
    follow_up_pending_cuts(settings)  # cuts whose follow-up a crash interrupted
    results = []
    for folder in find_ready_extracts(settings)[:MAX_EXTRACTS_PER_RUN]:
        claimed = claim_extract(settings, folder)
        if claimed is None:
            continue  # another scheduler took it first
        ingested = find_ingested_run(settings, claimed)
        if ingested is not None:  # a crash after the commit left it claimed: it is a cut already
            log.info("extract %s is cut %s already (same files): archived, not ingested again", folder.name, ingested)
            _move(claimed, settings.archive, folder.name)
            continue
        result = ingest_extract(settings.database_url, claimed, trigger="scheduler")
        log.info("extract %s: run %s %s: %s", folder.name, result.run_id, result.status, result.message)
        if result.status == "succeeded":
            _move(claimed, settings.archive, folder.name)
            follow_up_pending_cuts(settings, result.study_id)
        elif result.exit_code == EXIT_FILE_PROBLEM:
            target = _move(claimed, settings.rejected, folder.name)
            target.with_name(target.name + ".error.txt").write_text(
                f"run {result.run_id} failed: {result.message}\n", encoding="utf-8"
            )
        else:  # the database or the process failed, not the extract: try again next time
            _move(claimed, settings.inbox, folder.name)
        results.append(result)
    return results


def find_ingested_run(settings: Settings, folder: Path) -> int | None:
    """The succeeded run that read exactly the files of ``folder`` (same names and SHA-256), if there is one."""
    from safety_dash.db.engine import get_engine
    from safety_dash.db.queries import run_query
    from safety_dash.ingest.readers import FileProblem, compute_sha256, find_domain_files

    try:
        checksums = {path.name: compute_sha256(path) for path in find_domain_files(folder).values()}
    except (FileProblem, OSError):
        return None  # the ingestion names the problem
    runs = run_query(get_engine(settings.database_url), "cut_checksums")
    for run_id, stored in zip(runs["run_id"], runs["checksums"], strict=True):
        if checksums and (json.loads(stored) if isinstance(stored, str) else stored) == checksums:
            return int(run_id)
    return None


def find_ready_extracts(settings: Settings) -> list[Path]:
    """Extract folders in the inbox that hold a READY file or have not changed for the settle time."""
    now = time.time()
    ready = []
    for folder in sorted(p for p in settings.inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            newest = max([folder.stat().st_mtime] + [p.stat().st_mtime for p in folder.iterdir()])
        except FileNotFoundError:
            continue  # claimed by another scheduler while we looked
        if (folder / READY_MARKER).exists() or now - newest >= settings.inbox_settle_seconds:
            ready.append(folder)
    return ready


def claim_extract(settings: Settings, folder: Path) -> Path | None:
    """Rename ``folder`` into the processing area under this process's name; None if it is gone."""
    target = settings.inbox / ".processing" / f"{current_host()}@{os.getpid()}@{folder.name}"
    try:
        folder.rename(target)
    except (FileNotFoundError, OSError):
        return None
    return target


def recover_abandoned_claims(settings: Settings) -> None:
    """Put back into the inbox the extracts a process of this host claimed and then died holding."""
    for claimed in (settings.inbox / ".processing").iterdir():
        claim_host, pid, name = claimed.name.split("@", 2)
        if is_dead_here(claim_host, int(pid)):
            _move(claimed, settings.inbox, name)


def _move(source: Path, folder: Path, name: str) -> Path:
    target = folder / name
    if target.exists():
        target = folder / f"{name}.{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S%f}"
    shutil.move(str(source), str(target))
    return target


def evaluate_alerts(settings: Settings, run_id: int):
    """Evaluate the alert rules of the cut's study on cut ``run_id`` and queue the emails of new alerts.

    Idempotent: evaluating a cut again opens no alert that is already open. Call after every succeeded ingestion.
    """
    from safety_dash.alerts.evaluate import evaluate_alerts_for_cut
    from safety_dash.analysis import load_baskets
    from safety_dash.db.engine import get_engine

    baskets = load_baskets(settings.baskets_file)
    with get_engine(settings.database_url).begin() as connection:
        result = evaluate_alerts_for_cut(connection, run_id, settings.rules_dir, baskets)
    log.info("alerts of cut %s: %s", run_id, result.message)
    return result


def follow_up_pending_cuts(settings: Settings, study_id: str | None = None) -> list[str]:
    """What follows every succeeded ingestion: evaluate the alert rules on every cut not yet evaluated.

    Each evaluation is recorded per cut (``alert_evaluations``), so a cut whose follow-up a crash interrupted is
    evaluated by the next ``ingest``, ``alerts check`` or scheduler tick, oldest first; evaluating a cut twice
    opens no alert twice (alert keys). A failure here (a malformed rule file, say) is logged and reported, never
    undoes the ingestion: the cut stays pending and is evaluated once the problem is fixed, missing nothing.
    Returns one message per cut evaluated (or failed).
    """
    from safety_dash.db.engine import get_engine
    from safety_dash.db.queries import run_query

    pending = run_query(get_engine(settings.database_url), "cuts_not_evaluated", study_id=study_id)
    messages = []
    for run_id in pending["run_id"]:
        try:
            messages.append(evaluate_alerts(settings, int(run_id)).message)
        except Exception as error:  # reported to the operator; the cut itself is safe
            log.exception("alert evaluation of cut %s failed", run_id)
            fix = "fix it, then run `python -m safety_dash alerts check`"
            messages.append(f"alert evaluation of cut {run_id} failed: {error}; {fix}")
    return messages


def send_outbox(settings: Settings):
    """Deliver the alert emails that are due (bounded per run; failures wait for their retry)."""
    from safety_dash.alerts.outbox import deliver_outbox
    from safety_dash.db.engine import get_engine

    report = deliver_outbox(get_engine(settings.database_url), settings)
    if report.sent or report.failed or report.recovered:
        log.info("alert outbox: %s", report.message)
    return report
