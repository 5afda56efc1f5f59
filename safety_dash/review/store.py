"""Review, comments and data queries: read a cut's review status, write reviews and comments (with the trail).

Reviews are append-only rows (a withdrawal is a new row); comments are added, and only a data query's status
changes afterwards (open -> answered -> closed, or reopened), each change written to the audit trail with the
status before and after. Who may do what is checked by the caller (the dashboard's permission check); these
functions take the user name to record.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from sqlalchemy import Connection, insert, select, update

from safety_dash.audit import record_event
from safety_dash.db.models import Comment, Review, utcnow
from safety_dash.db.queries import run_query
from safety_dash.review.status import NOT_REVIEWED, REVIEWED, derive_review_status

RECORD_TYPES = ("ae", "subject")
QUERY_STATUSES = ("open", "answered", "closed")
QUERY_TRANSITIONS = {"open": ("answered", "closed"), "answered": ("closed", "open"), "closed": ("open",)}
MAX_COMMENT_CHARS = 4000


def _check_record_type(record_type: str) -> str:
    if record_type not in RECORD_TYPES:
        raise ValueError(f"record type {record_type!r} is not one of {', '.join(RECORD_TYPES)}")
    return record_type


def load_review_rows(bind, study_id: str, record_type: str) -> pd.DataFrame:
    """Every review row of the study's records of ``record_type``: id, record_key, version_id, reviewed, username,
    reviewed_at (UTC)."""
    rows = run_query(bind, "review_rows", study_id=study_id, record_type=_check_record_type(record_type))
    rows["reviewed"] = rows["reviewed"].astype(bool)
    rows["reviewed_at"] = pd.to_datetime(rows["reviewed_at"], utc=True, format="ISO8601")
    return rows


def load_cut_review_status(bind, study_id: str, run_id: int, record_type: str = "ae") -> pd.DataFrame:
    """The records of cut ``run_id`` with their review status (:func:`derive_review_status`).

    Columns: record_key, version_id, usubjid, valid_from_run, REVIEW_STATUS, REVIEWED_BY, REVIEWED_AT,
    REVIEWED_VERSION. AE records are those of the cut's derived events; subjects those of its derived subjects.
    """
    query = "review_cut_ae_records" if _check_record_type(record_type) == "ae" else "review_cut_subject_records"
    records = run_query(bind, query, run_id=run_id)
    return derive_review_status(records, load_review_rows(bind, study_id, record_type))


def review_records(
    connection: Connection,
    study_id: str,
    record_type: str,
    records: Iterable[tuple[str, int]],
    username: str,
    reviewed: bool = True,
    address: str | None = None,
) -> int:
    """Mark the given (record_key, version_id) records reviewed (or withdraw the review) as ``username``.

    Records already in the asked state are skipped; each change is one review row and one audit event
    (``review`` / ``unreview``) with the status before and after. Returns the number of records changed.
    """
    _check_record_type(record_type)
    wanted = pd.DataFrame(list(dict.fromkeys(records)), columns=["record_key", "version_id"])
    if wanted.empty:
        return 0
    wanted["version_id"] = wanted["version_id"].astype(int)
    current = derive_review_status(wanted, load_review_rows(connection, study_id, record_type))
    changed = current.loc[(current["REVIEW_STATUS"] == REVIEWED) != reviewed]
    now = utcnow()
    for row in changed.itertuples(index=False):
        connection.execute(
            insert(Review).values(
                study_id=study_id,
                record_type=record_type,
                record_key=row.record_key,
                version_id=int(row.version_id),
                reviewed=reviewed,
                username=username,
                reviewed_at=now,
            )  # fmt: skip
        )
        after = REVIEWED if reviewed else NOT_REVIEWED
        record_event(connection, username, "review" if reviewed else "unreview", record_type, row.record_key,
                     study_id=study_id, before={"status": row.REVIEW_STATUS, "version_id": int(row.version_id)},
                     after={"status": after, "version_id": int(row.version_id)}, address=address)  # fmt: skip
    return len(changed)


def add_comment(
    connection: Connection,
    study_id: str,
    record_type: str,
    record_key: str,
    usubjid: str,
    version_id: int,
    username: str,
    text: str,
    raise_query: bool = False,
    address: str | None = None,
) -> int:
    """Add a comment on a record version (a data query to the site when ``raise_query``); return its id."""
    _check_record_type(record_type)
    text = (text or "").strip()
    if not text:
        raise ValueError("the comment is empty; write what you noticed or what the site should check")
    if len(text) > MAX_COMMENT_CHARS:
        raise ValueError(f"the comment has {len(text)} characters; keep it within {MAX_COMMENT_CHARS}")
    status = "open" if raise_query else None
    comment_id = connection.execute(
        insert(Comment)
        .values(
            study_id=study_id,
            record_type=record_type,
            record_key=record_key,
            usubjid=usubjid,
            version_id=int(version_id),
            username=username,
            created_at=utcnow(),
            text=text,
            query_status=status,
        )  # fmt: skip
        .returning(Comment.id)
    ).scalar_one()
    record_event(connection, username, "comment", record_type, record_key, study_id=study_id,
                 after={"comment_id": comment_id, "text": text, "query_status": status,
                        "version_id": int(version_id)}, address=address)  # fmt: skip
    return comment_id


def set_query_status(
    connection: Connection, comment_id: int, status: str, username: str, reason: str, address: str | None = None
) -> None:
    """Move data query ``comment_id`` to ``status`` (open, answered, closed) with a reason; written to the trail."""
    if status not in QUERY_STATUSES:
        raise ValueError(f"query status {status!r} is not one of {', '.join(QUERY_STATUSES)}")
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("say why the query's status changes (the site's answer, or why it is closed)")
    row = connection.execute(select(Comment.__table__).where(Comment.id == comment_id)).first()
    if row is None or row.query_status is None:
        raise ValueError(f"comment {comment_id} is not a data query")
    if status not in QUERY_TRANSITIONS[row.query_status]:
        allowed = " or ".join(QUERY_TRANSITIONS[row.query_status])
        raise ValueError(f"query {comment_id} is {row.query_status}; it can become {allowed}, not {status}")
    result = connection.execute(
        update(Comment)
        .where(Comment.id == comment_id, Comment.query_status == row.query_status)
        .values(query_status=status)  # fmt: skip
    )
    if result.rowcount != 1:
        raise ValueError(f"query {comment_id} was changed by someone else a moment ago; reload the page")
    record_event(connection, username, "query_status", row.record_type, row.record_key, study_id=row.study_id,
                 before={"comment_id": comment_id, "query_status": row.query_status},
                 after={"comment_id": comment_id, "query_status": status}, reason=reason, address=address)  # fmt: skip


def load_comments(bind, study_id: str, record_type: str | None = None) -> pd.DataFrame:
    """The study's comments and data queries, newest first: comment_id, record_type, record_key, usubjid,
    version_id, username, created_at (UTC), text, query_status (None for a plain comment)."""
    if record_type is not None:
        _check_record_type(record_type)
    comments = run_query(bind, "review_comments", study_id=study_id, record_type=record_type)
    comments["created_at"] = pd.to_datetime(comments["created_at"], utc=True, format="ISO8601")
    comments["query_status"] = comments["query_status"].astype(object).where(comments["query_status"].notna(), None)
    return comments
