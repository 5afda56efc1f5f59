"""A study's derivation settings: risk window, cohort column, AE record key, related set, CTCAE version, DLTs.

Every change is written to the audit trail (``study_settings_changed``, the values before and after).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from safety_dash.audit import record_event
from safety_dash.db.engine import get_engine
from safety_dash.db.models import AdverseEventVersion, LabVersion, Study
from safety_dash.identifiers import check_identifier

SETTABLE = (
    "window_days",
    "cohort_column",
    "ae_key_columns",
    "related_values",
    "ctcae_version",
    "episode_key",
    "max_removed_pct",
    "max_quarantined_pct",
    "dlt_column",
    "dlt_days",
    "lb_key_columns",
)
CTCAE_VERSIONS = ("5.0", "6.0")


def configure_study(database_url: str, study_id: str, actor: str = "cli", **changes: Any) -> dict[str, Any]:
    """Create or change a study's settings and return them all; ``actor`` is who changed them (the audit trail).

    The AE record key can only change before the study's first AE is loaded: records already stored are
    keyed by the old columns, and a new key would make every one of them look removed and new. The CTCAE
    version likewise: grades of two versions are never pooled silently.
    """
    unknown = set(changes) - set(SETTABLE)
    if unknown:
        raise ValueError(f"{', '.join(sorted(unknown))} is not a study setting; settable: {', '.join(SETTABLE)}")
    check_identifier(study_id, "study id")
    changes = {k: v for k, v in changes.items() if v is not None}
    _check(changes)
    with get_engine(database_url).begin() as connection:
        row = connection.execute(select(Study.__table__).where(Study.study_id == study_id)).first()
        loaded = connection.execute(
            select(func.count()).select_from(AdverseEventVersion).where(AdverseEventVersion.study_id == study_id)
        ).scalar_one()
        for locked in ("ae_key_columns", "ctcae_version"):
            if loaded and locked in changes and (row is None or getattr(row, locked) != changes[locked]):
                raise ValueError(
                    f"study {study_id} already has {loaded} AE records; {locked} cannot change after the first load"
                )
        labs = connection.execute(
            select(func.count()).select_from(LabVersion).where(LabVersion.study_id == study_id)
        ).scalar_one()
        if labs and "lb_key_columns" in changes and (row is None or row.lb_key_columns != changes["lb_key_columns"]):
            raise ValueError(
                f"study {study_id} already has {labs} LB records; lb_key_columns cannot change after the first load"
            )
        if row is None:
            # Unset settings take the model's defaults (models.Study), the same as a study made by its first extract.
            connection.execute(Study.__table__.insert().values(study_id=study_id, **changes))
        elif changes:
            connection.execute(Study.__table__.update().where(Study.study_id == study_id).values(**changes))
        settings = connection.execute(select(Study.__table__).where(Study.study_id == study_id)).one()
        before = {name: getattr(row, name) for name in changes} if row is not None else None
        after = {name: getattr(settings, name) for name in changes}
        if row is None or before != after:
            record_event(connection, actor, "study_settings_changed", "study", study_id, study_id=study_id,
                         before=before, after=after)  # fmt: skip
    return {name: getattr(settings, name) for name in ("study_id",) + SETTABLE}


def _check(changes: dict[str, Any]) -> None:
    if "window_days" in changes and not 0 <= int(changes["window_days"]) <= 3650:
        raise ValueError(f"window_days must be a number of days from 0 to 3650, not {changes['window_days']}")
    for name, example in (("ae_key_columns", "USUBJID,AESEQ"), ("lb_key_columns", "USUBJID,LBSEQ")):
        if name in changes:
            columns = [c.strip().upper() for c in str(changes[name]).split(",") if c.strip()]
            if "USUBJID" not in columns or len(columns) < 2:
                raise ValueError(f"{name} must name USUBJID and at least one more column, e.g. {example}")
            changes[name] = ",".join(columns)
    for name in ("max_removed_pct", "max_quarantined_pct"):
        if name in changes and not 0 <= float(changes[name]) <= 100:
            raise ValueError(f"{name} must be a percentage from 0 to 100, not {changes[name]}")
    if "episode_key" in changes:
        key = str(changes["episode_key"]).strip().upper()
        if key and not key.replace("_", "").isalnum():
            raise ValueError(f"episode_key must be an AE column name such as AEGRPID, not {changes['episode_key']!r}")
        changes["episode_key"] = key or None
    if "dlt_days" in changes and not 1 <= int(changes["dlt_days"]) <= 365:
        raise ValueError(f"dlt_days must be a number of days from 1 to 365, not {changes['dlt_days']}")
    if "dlt_column" in changes:
        column = str(changes["dlt_column"]).strip().upper()
        if not column or not column.replace("_", "").isalnum():
            raise ValueError(f"dlt_column must be an AE column name such as AEDLT, not {changes['dlt_column']!r}")
        changes["dlt_column"] = column
    if "ctcae_version" in changes and changes["ctcae_version"] not in CTCAE_VERSIONS:
        raise ValueError(f"ctcae_version must be one of {', '.join(CTCAE_VERSIONS)}, not {changes['ctcae_version']}")
    if "related_values" in changes:
        changes["related_values"] = ",".join(
            v.strip().upper() for v in str(changes["related_values"]).split(",") if v.strip()
        )
