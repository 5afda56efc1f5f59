"""Evaluate a study's rules on a data cut and keep the alerts table in step: fire once, stay open, re-fire only
after resolution.

The rules run on the cut's stored derived tables (:func:`~safety_dash.analysis.load_derived_frames`) through
:mod:`safety_dash.alerts.conditions`, whose numbers are the metrics layer's.

Life of an alert (key = rule id + scope: cohort and term, or the AE record):

- the condition holds and no unresolved alert has the key -> a new alert (episode n + 1), status ``open``, and an
  email in the outbox, written in the same transaction (an alert is never without its email);
  an ``event`` rule opens one only for a record that is new or changed in this cut;
- the condition holds and an alert is open or acknowledged -> nothing new (``alerts check`` can run any number
  of times);
- the condition is gone -> an acknowledged alert is resolved; an open one stays open (nobody has seen it yet) and
  is resolved when acknowledged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError

from safety_dash.alerts.conditions import CutInfo, Finding, evaluate_rule
from safety_dash.alerts.models import Alert, AlertEvaluation
from safety_dash.alerts.outbox import enqueue_alert
from safety_dash.alerts.rules import LAB_KINDS, RuleSet, load_rule_file, rule_file_path
from safety_dash.analysis import load_derived_frames, resolve_cut
from safety_dash.audit import record_event
from safety_dash.db.models import utcnow
from safety_dash.db.queries import run_query
from safety_dash.lab_values import compute_cut_lab_values
from safety_dash.signal_store import compute_rising_since, load_previous_cut

log = logging.getLogger(__name__)


@dataclass
class EvaluationResult:
    """What evaluating one cut did to the alerts of its study."""

    run_id: int
    study_id: str
    rules_file: str | None
    n_rules: int = 0
    fired: list[int] = field(default_factory=list)  # new alert ids
    still_active: list[int] = field(default_factory=list)
    cleared: list[int] = field(default_factory=list)  # open alerts whose condition is gone (kept open)
    resolved: list[int] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        """The result as printed by ``alerts check --json``."""
        return {name: getattr(self, name) for name in ("run_id", "study_id", "rules_file", "n_rules", "fired",
                                                        "still_active", "cleared", "resolved", "message")}  # fmt: skip


def evaluate_alerts_for_cut(
    connection: Connection,
    run_id: int,
    rules_dir: Path,
    baskets: Mapping[str, frozenset[str]],
    now: dt.datetime | None = None,
) -> EvaluationResult:
    """Evaluate the rule file of the cut's study (``<rules_dir>/<STUDYID>.yaml``) on cut ``run_id``.

    A study without a rule file has no alerts (the result says so); an invalid file raises
    :class:`~safety_dash.alerts.rules.RuleFileError` naming its lines.
    """
    cut = load_cut_info(connection, run_id)
    path = rule_file_path(rules_dir, cut.study_id)
    if not path.is_file():
        evaluate_ruleset(connection, cut, RuleSet(cut.study_id, None, ()), baskets, now)  # records the evaluation
        result = EvaluationResult(run_id, cut.study_id, None)
        result.message = f"no rule file {path}: study {cut.study_id} has no alert rules"
        return result
    ruleset = load_rule_file(path, cut.study_id, baskets)
    record_rules_loaded(connection, cut.study_id, path, len(ruleset.rules))
    return evaluate_ruleset(connection, cut, ruleset, baskets, now)


def record_rules_loaded(connection: Connection, study_id: str, path: Path, n_rules: int) -> None:
    """Write ``rules_loaded`` to the audit trail when the study's rule file differs from the one last loaded."""
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    last = run_query(connection, "audit_last_event", action="rules_loaded", study_id=study_id)
    if not last.empty and json.loads(last.iloc[0]["after"]).get("sha256") == sha256:
        return
    record_event(connection, "scheduler", "rules_loaded", "rule_file", str(path), study_id=study_id,
                 after={"sha256": sha256, "rules": n_rules})  # fmt: skip


def load_cut_info(connection: Connection, run_id: int) -> CutInfo:
    """The study and cutoff of a succeeded cut; fails with a sentence for any other run."""
    cut = resolve_cut(connection, run_id=run_id)
    previous_cutoff = compute_rising_since(load_previous_cut(connection, run_id), cut.cutoff)
    return CutInfo(cut.run_id, cut.study_id, cut.cutoff, previous_cutoff=previous_cutoff)


def evaluate_ruleset(
    connection: Connection,
    cut: CutInfo,
    ruleset: RuleSet,
    baskets: Mapping[str, frozenset[str]],
    now: dt.datetime | None = None,
) -> EvaluationResult:
    """Evaluate ``ruleset`` on the cut and update the alerts table and the outbox (in the caller's transaction)."""
    now = now or utcnow()
    result = EvaluationResult(cut.run_id, cut.study_id, str(ruleset.path) if ruleset.path else None)
    result.n_rules = len(ruleset.rules)
    since_run = connection.execute(
        select(func.max(AlertEvaluation.run_id)).where(
            AlertEvaluation.study_id == cut.study_id, AlertEvaluation.run_id < cut.run_id
        )
    ).scalar_one()
    cut = dataclasses.replace(cut, since_run=since_run)
    subjects, events = load_derived_frames(connection, cut.run_id) if ruleset.rules else (None, None)
    labs = None
    if any(rule.kind in LAB_KINDS for rule in ruleset.rules):
        labs, _ = compute_cut_lab_values(connection, resolve_cut(connection, run_id=cut.run_id))
    findings: dict[str, Finding] = {}
    for rule in ruleset.rules:
        for finding in evaluate_rule(rule, subjects, events, baskets, cut, labs):
            findings[finding.key] = finding

    rule_ids = [rule.id for rule in ruleset.rules]
    unresolved = connection.execute(
        select(Alert.id, Alert.alert_key, Alert.status, Alert.last_run_id).where(
            Alert.study_id == cut.study_id, Alert.open_key.is_not(None), Alert.rule_id.in_(rule_ids)
        )
    ).fetchall()
    known = {row.alert_key: row for row in unresolved}
    for key, finding in findings.items():
        if key in known:
            row = known[key]
            result.still_active.append(row.id)
            if cut.run_id >= row.last_run_id:
                connection.execute(
                    update(Alert).where(Alert.id == row.id).values(condition_active=True, last_run_id=cut.run_id)
                )
        elif finding.may_fire:
            alert_id = _open_alert(connection, cut, ruleset, finding, now)
            if alert_id is not None:
                result.fired.append(alert_id)
    for key, row in known.items():
        if key in findings or cut.run_id < row.last_run_id:
            continue  # still there, or an older cut re-checked: it does not decide about newer ones
        values: dict[str, Any] = {"condition_active": False, "last_run_id": cut.run_id}
        if row.status == "acknowledged":
            values |= {"status": "resolved", "open_key": None, "resolved_at": now, "resolved_run_id": cut.run_id}
            result.resolved.append(row.id)
        else:
            result.cleared.append(row.id)
        connection.execute(update(Alert).where(Alert.id == row.id).values(**values))
    connection.execute(
        AlertEvaluation.__table__.insert().values(
            study_id=cut.study_id,
            run_id=cut.run_id,
            rules_file=result.rules_file,
            n_rules=result.n_rules,
            n_fired=len(result.fired),
            n_resolved=len(result.resolved),
            evaluated_at=now,
        )  # fmt: skip
    )
    result.message = (
        f"{len(ruleset.rules)} rules on cut {cut.run_id} of {cut.study_id}: {len(result.fired)} new alerts, "
        f"{len(result.still_active)} still active, {len(result.cleared)} no longer met but unacknowledged, "
        f"{len(result.resolved)} resolved"
    )
    return result


def _open_alert(connection: Connection, cut: CutInfo, ruleset: RuleSet, finding: Finding, now: dt.datetime):
    episode = connection.execute(
        select(func.coalesce(func.max(Alert.episode), 0)).where(
            Alert.study_id == cut.study_id, Alert.alert_key == finding.key
        )
    ).scalar_one()
    try:
        with connection.begin_nested():
            alert_id = connection.execute(
                Alert.__table__.insert()
                .values(
                    study_id=cut.study_id,
                    rule_id=finding.rule.id,
                    alert_key=finding.key,
                    episode=episode + 1,
                    open_key=finding.key,
                    kind=finding.rule.kind,
                    delivery=finding.rule.delivery,
                    title=finding.title,
                    summary=finding.summary,
                    scope=finding.scope,
                    evidence=finding.evidence,
                    view_path=finding.view_path,
                    status="open",
                    condition_active=True,
                    run_id=cut.run_id,
                    last_run_id=cut.run_id,
                    created_at=now,
                )  # fmt: skip
                .returning(Alert.__table__.c.id)
            ).scalar_one()
            enqueue_alert(connection, alert_id, cut.study_id, finding.key, episode + 1, finding.rule.delivery,
                          ruleset.recipients_of(finding.rule), ruleset.digest_at, now)  # fmt: skip
    except IntegrityError:
        log.info("alert %s of %s was opened by another evaluation at the same time", finding.key, cut.study_id)
        return None
    return alert_id


def find_latest_cuts(connection: Connection, study_id: str | None = None) -> list[int]:
    """The newest data cut of each study (or of ``study_id``), as run ids."""
    frame = run_query(connection, "alerts_latest_cuts", study_id=study_id)
    return [int(run_id) for run_id in frame["run_id"]]
