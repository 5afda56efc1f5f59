"""Alerts written straight into the tables, for outbox and email tests that need no study data."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from safety_dash.alerts.models import Alert
from safety_dash.alerts.outbox import enqueue_alert
from safety_dash.db.engine import get_engine
from safety_dash.db.models import IngestionRun, Study, utcnow

STUDY = "T1"


def ensure_cut(connection, study_id: str = STUDY) -> int:
    """A study row and one succeeded run of it; returns the run id."""
    if connection.execute(select(func.count()).select_from(Study).where(Study.study_id == study_id)).scalar_one() == 0:
        connection.execute(Study.__table__.insert().values(study_id=study_id, created_at=utcnow()))
    return connection.execute(
        IngestionRun.__table__.insert()
        .values(study_id=study_id, source="test", status="succeeded", cutoff=dt.date(2021, 6, 30), started_at=utcnow())
        .returning(IngestionRun.__table__.c.id)
    ).scalar_one()


def insert_alert(
    database_url: str,
    key: str = "grade5|T1-001|1",
    title: str = "Grade 5 adverse event: Pneumonitis (grade 5) in T1-001",
    delivery: str = "immediate",
    recipients: tuple[str, ...] = (),
    evidence: dict | None = None,
    now: dt.datetime | None = None,
) -> tuple[int, int]:
    """One open alert with its outbox row; returns (alert id, outbox row id)."""
    now = now or utcnow()
    evidence = evidence or {
        "cut": {"run_id": 1, "study_id": STUDY, "cutoff": "2021-06-30"},
        "record": {
            "usubjid": "T1-001",
            "aeseq": "1",
            "aeterm": "pneumonitis",
            "pt": "Pneumonitis",
            "grade": 5,
            "serious": True,
            "related": True,
            "aestdtc": "2021-03-01",
            "astdy": 57,
            "aeout": "FATAL",
            "record_change": "new",
        },  # fmt: skip
        "chart": {
            "kind": "timeline",
            "title": "Adverse events of T1-001",
            "days": [57],
            "grades": [5],
            "labels": ["Pneumonitis"],
            "highlight": 0,
        },  # fmt: skip
    }
    with get_engine(database_url).begin() as connection:
        run_id = ensure_cut(connection)
        alert_id = connection.execute(
            Alert.__table__.insert()
            .values(
                study_id=STUDY,
                rule_id=key.split("|")[0],
                alert_key=key,
                episode=1,
                open_key=key,
                kind="event",
                delivery=delivery,
                title=title,
                summary=f"{title}; summary",
                scope={},
                evidence=evidence,
                view_path=f"/subject?study={STUDY}&cut={run_id}&subject=T1-001",
                status="open",
                condition_active=True,
                run_id=run_id,
                last_run_id=run_id,
                created_at=now,
            )  # fmt: skip
            .returning(Alert.__table__.c.id)
        ).scalar_one()
        outbox_id = enqueue_alert(connection, alert_id, STUDY, key, 1, delivery, recipients, (7, 0), now)
    return alert_id, outbox_id
