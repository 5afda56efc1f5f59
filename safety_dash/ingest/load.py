"""Load a validated extract as a data cut: diff against the previous cut, add versions, mark removals.

Everything here runs inside the caller's transaction, so a run that dies midway leaves the previous cut as it
was. Versions are appended, never updated except to close them (``valid_to_run``): nothing is deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Connection, Table, bindparam, insert, select, update

from safety_dash.db.bulk import bulk_insert
from safety_dash.db.models import AdverseEventVersion, ExposureVersion, QuarantinedRow, SubjectVersion
from safety_dash.ingest.readers import ROW_COLUMN
from safety_dash.ingest.sdtm import DROPPED, STANDARD
from safety_dash.ingest.validate import KEY_COLUMN, ValidatedExtract

TABLES: dict[str, Table] = {
    "dm": SubjectVersion.__table__,
    "ex": ExposureVersion.__table__,
    "ae": AdverseEventVersion.__table__,
}
COUNT_NAMES = ("read", "loaded", "quarantined", "new", "changed", "unchanged", "removed")


def load_extract(connection: Connection, run_id: int, study_id: str, extract: ValidatedExtract) -> dict[str, dict]:
    """Store one validated extract as cut ``run_id``; return the per-domain counts of the run summary."""
    counts: dict[str, dict] = {}
    for domain in ("dm", "ex", "ae"):
        changes = load_domain(
            connection, run_id, study_id, domain, extract.frames[domain], extract.quarantined_keys[domain]
        )
        counts[domain] = {
            "read": extract.read[domain],
            "loaded": len(extract.frames[domain]),
            "quarantined": extract.quarantined_rows(domain),
            **changes,
        }
    save_quarantine(connection, run_id, extract.quarantine)
    return counts


def load_domain(
    connection: Connection, run_id: int, study_id: str, domain: str, frame: pd.DataFrame, keep_keys: set[str]
) -> dict[str, int]:
    """Diff one domain against its current versions and write the difference.

    A record absent from the extract is closed as removed, unless its row was quarantined this time
    (``keep_keys``): then its previous version stays current, so a bad row never hides a known record.
    """
    table = TABLES[domain]
    current = pd.DataFrame(
        connection.execute(
            select(table.c.id, table.c.record_key, table.c.content_hash).where(
                table.c.study_id == study_id, table.c.valid_to_run.is_(None)
            )
        ).fetchall(),
        columns=["id", "record_key", "content_hash"],
    )
    incoming = frame.assign(_HASH=compute_content_hashes(frame, domain))
    merged = incoming.merge(current, how="left", left_on=KEY_COLUMN, right_on="record_key")
    is_new = merged["id"].isna()
    is_changed = ~is_new & (merged["content_hash"] != merged["_HASH"])
    removed = current[~current["record_key"].isin(incoming[KEY_COLUMN]) & ~current["record_key"].isin(keep_keys)]

    close_ids = [int(i) for i in merged.loc[is_changed, "id"]] + [int(i) for i in removed["id"]]
    close_versions(connection, table, close_ids, run_id)
    to_insert = merged[is_new | is_changed].assign(
        _CHANGE=is_new[is_new | is_changed].map({True: "new", False: "changed"})
    )
    bulk_insert(connection, table, _version_rows(to_insert, domain, study_id, run_id))
    return {
        "new": int(is_new.sum()),
        "changed": int(is_changed.sum()),
        "unchanged": int((~is_new & ~is_changed).sum()),
        "removed": len(removed),
    }


def compute_content_hashes(frame: pd.DataFrame, domain: str) -> list[str]:
    """A digest of every stored value of each row, to tell a changed record from an unchanged one."""
    columns = list(STANDARD[domain]) + _extra_columns(frame, domain)
    values = frame[columns].astype(str).to_numpy().tolist()
    return [hashlib.md5("\x1f".join(row).encode("utf-8"), usedforsecurity=False).hexdigest() for row in values]


def close_versions(connection: Connection, table: Table, ids: list[int], run_id: int) -> None:
    """Close versions superseded or removed in cut ``run_id``."""
    if not ids:
        return
    statement = update(table).where(table.c.id == bindparam("version_id")).values(valid_to_run=run_id)
    connection.execute(statement, [{"version_id": i} for i in ids])


def save_quarantine(connection: Connection, run_id: int, quarantine: pd.DataFrame) -> None:
    """Store the quarantined rows of run ``run_id`` with their reasons and the rows as read."""
    if quarantine.empty:
        return
    rows = [
        {
            "run_id": run_id,
            "domain": q.domain,
            "file": q.file,
            "row_number": int(q.row_number),
            "column": q.column,
            "value": None if q.value is None else str(q.value),
            "reason": q.reason,
            "raw": q.raw,
        }
        for q in quarantine.itertuples(index=False)
    ]
    connection.execute(insert(QuarantinedRow.__table__), rows)  # few rows: Core keeps the JSON typing


def _extra_columns(frame: pd.DataFrame, domain: str) -> list[str]:
    skip = set(STANDARD[domain]) | set(DROPPED) | {ROW_COLUMN, KEY_COLUMN, "_HASH"}
    return sorted(c for c in frame.columns if c not in skip and not c.startswith("_"))


def _version_rows(frame: pd.DataFrame, domain: str, study_id: str, run_id: int) -> pd.DataFrame:
    extra_columns = _extra_columns(frame.drop(columns=["id", "record_key", "content_hash", "_CHANGE"]), domain)
    base = pd.DataFrame(
        {
            "study_id": study_id,
            "record_key": frame[KEY_COLUMN].to_numpy(),
            "usubjid": frame["USUBJID"].to_numpy(),
            "content_hash": frame["_HASH"].to_numpy(),
            "change": frame["_CHANGE"].to_numpy(),
            "valid_from_run": run_id,
            "valid_to_run": None,
            "source_row": frame[ROW_COLUMN].astype(int).to_numpy(),
        }
    )
    for column in STANDARD[domain]:
        if column != "USUBJID":
            base[column.lower()] = frame[column].to_numpy()
    if domain == "ex":
        base["exdose"] = pd.to_numeric(frame["EXDOSE"], errors="coerce").to_numpy()
    base["extra"] = list(_extra_dicts(frame, extra_columns))
    return base


def _extra_dicts(frame: pd.DataFrame, columns: list[str]) -> Iterable[dict | None]:
    if not columns:
        return [None] * len(frame)
    values = frame[columns].to_numpy().tolist()
    return [{c: v for c, v in zip(columns, row, strict=True) if v != ""} or None for row in values]
