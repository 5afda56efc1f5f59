"""Review, comments, data queries and the audit trail as the pages show them (issue 11): plain functions.

The review state of a data cut (:class:`CutReview`: every AE and subject record's status, and the study's comments
summed up per record) is cached per process, keyed by the cut and by :func:`load_review_token` (the newest review,
comment and query status change), so a write shows at the next request. The statuses are
:func:`~safety_dash.review.derive_review_status`'s, derived only for the records that have review rows: a record's
status depends on its own rows alone, and a record without any is *not reviewed*, so a cut of a million records is
not read again after each review (the test compares with :func:`~safety_dash.review.load_cut_review_status`).
Nothing is derived here that :mod:`safety_dash.review` does not define; this module narrows, counts and writes out.

A page passes the cut's records it holds in memory (a *cut source*, as :mod:`safety_dash.views.signals` takes one:
a hashable object with ``context.engine``, ``run_id``, ``frames.cut.study_id`` and ``frames.events`` with AE_ID
and USUBJID, e.g. :class:`safety_dash.web.views.CutKey`); without one, the cut's records are read from the database.

The ``save_*`` functions are what a page does for the signed-in user (checked by the page with
``require_permission``): they find the records of the cut the page showed, and write through
:mod:`safety_dash.review` in one transaction each (the trail row included). Nothing here imports
:mod:`safety_dash.web`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select, union_all

from safety_dash.audit import ChainBreak, export_events, verify_chain
from safety_dash.audit.trail import EXPORT_COLUMNS
from safety_dash.db.models import AdverseEventVersion, AuditEvent, Comment, DerivedEvent, Review
from safety_dash.db.queries import run_query
from safety_dash.exports import to_safe_csv
from safety_dash.review import (
    NEEDS_REVIEW,
    NOT_REVIEWED,
    OUTDATED,
    REVIEWED,
    add_comment,
    compute_review_backlog,
    derive_review_status,
    load_comments,
    load_review_rows,
    review_records,
    set_query_status,
)
from safety_dash.review.store import QUERY_TRANSITIONS

CACHE_SIZE = 8  # review states held per process: each holds a cut's statuses (a million rows for a large study)
# The review filters of the listings and the profile: address value -> statuses kept ("all": every record).
REVIEW_FILTERS: dict[str, tuple[str, ...]] = {
    "all": (NOT_REVIEWED, OUTDATED, REVIEWED),
    "needs": NEEDS_REVIEW,
    "not-reviewed": (NOT_REVIEWED,),
    "outdated": (OUTDATED,),
    "reviewed": (REVIEWED,),
}
REVIEW_FILTER_LABELS = {
    "all": "All records",
    "needs": "Needs review",
    "not-reviewed": "Not reviewed",
    "outdated": "Outdated",
    "reviewed": "Reviewed",
}
QUERY_COLUMNS = ["comment_id", "usubjid", "record_type", "record", "text", "raised_by", "raised_at", "version_id",
                 "query_status", "changed_by", "changed_at", "reason"]  # fmt: skip


def format_utc(value) -> str:
    """A UTC time as ``YYYY-MM-DD HH:MM``; '' when missing."""
    if value is None or (isinstance(value, str) and not value) or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


# --- the review state of a cut ---------------------------------------------------------------------------------


def load_review_token(engine: Engine) -> tuple[int, int, int]:
    """The ids of the newest review row, comment and query status change: one of them changes with every write
    that can change a review state (and nothing else, so a sign-in keeps the cached states)."""
    newest = union_all(
        select(func.max(Review.id)),
        select(func.max(Comment.id)),
        select(func.max(AuditEvent.id)).where(AuditEvent.action == "query_status"),
    )
    with engine.connect() as connection:
        values = connection.execute(newest).scalars().all()
    return tuple(int(value or 0) for value in values)


def load_trail_token(engine: Engine) -> int:
    """The id of the newest row of the audit trail."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.max(AuditEvent.id))).scalar() or 0)


@dataclass(frozen=True, eq=False)
class CutReview:
    """The review state of one cut as of ``token`` (:func:`load_review_token`).

    ``ae``: the cut's AE records indexed by version id (AE_ID of the listings), ``subjects``: its subject records
    indexed by USUBJID, both with :func:`~safety_dash.review.load_cut_review_status`'s columns (an AE record's
    ``record_key`` is filled in where the record has a review or a comment, else None); ``comments``: every
    comment of the study (:func:`~safety_dash.review.load_comments`); ``summary``: per (record_type, record_key) the
    number of comments (``n_comments``), of open queries (``n_open``), the latest comment's text (``last``) and
    who wrote it when (``last_by``)."""

    study_id: str
    run_id: int
    token: tuple
    ae: pd.DataFrame
    subjects: pd.DataFrame
    comments: pd.DataFrame
    summary: pd.DataFrame


def summarise_comments(comments: pd.DataFrame) -> pd.DataFrame:
    """Per (record_type, record_key): n_comments, n_open (open data queries), last (the newest comment's text) and
    last_by (its author and time, UTC)."""
    if comments.empty:
        index = pd.MultiIndex.from_arrays([[], []], names=["record_type", "record_key"])
        return pd.DataFrame({"n_comments": [], "n_open": [], "last": [], "last_by": [], "text": []}, index=index)
    ordered = comments.sort_values("comment_id")
    last = ordered.groupby(["record_type", "record_key"]).tail(1).set_index(["record_type", "record_key"])
    grouped = ordered.groupby(["record_type", "record_key"])
    summary = pd.DataFrame(
        {
            "n_comments": grouped.size(),
            "n_open": grouped["query_status"].agg(lambda statuses: int((statuses == "open").sum())),
        }
    )
    newest = last.loc[summary.index]
    summary["last"] = newest["text"].to_numpy(dtype=object)
    summary["last_by"] = [f"{row.username}, {format_utc(row.created_at)} UTC" for row in newest.itertuples()]
    summary["text"] = [comments_text(n, o) for n, o in zip(summary["n_comments"], summary["n_open"], strict=True)]
    return summary


def comments_text(n_comments, n_open) -> str:
    """The Comments cell of a record: '' without comments, '2', '2 · 1 open query'."""
    if n_comments is None or pd.isna(n_comments) or not int(n_comments):
        return ""
    text = str(int(n_comments))
    if n_open and not pd.isna(n_open) and int(n_open):
        text += f" · {int(n_open)} open quer{'y' if int(n_open) == 1 else 'ies'}"
    return text


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cut_records(engine: Engine, run_id: int, record_type: str) -> pd.DataFrame:
    """The cut's records of ``record_type`` (record_key, version_id, usubjid), read once per process and cut."""
    query = "review_cut_ae_records" if record_type == "ae" else "review_cut_subject_records"
    return run_query(engine, query, run_id=run_id)[["record_key", "version_id", "usubjid"]]


def _keys_of_versions(engine: Engine, study_id: str, keys: set[str]) -> pd.DataFrame:
    """Every AE version (id, record_key) of the study's records ``keys``."""
    found = []
    ordered = sorted(keys)
    with engine.connect() as connection:
        for start in range(0, len(ordered), 500):  # bounded IN lists
            found += connection.execute(
                select(AdverseEventVersion.id, AdverseEventVersion.record_key).where(
                    AdverseEventVersion.study_id == study_id,
                    AdverseEventVersion.record_key.in_(ordered[start : start + 500]),
                )
            ).all()
    return pd.DataFrame(found, columns=["id", "record_key"])


def derive_statuses(records: pd.DataFrame, reviews: pd.DataFrame) -> pd.DataFrame:
    """``records`` (record_key, which may be None for a record without review rows, version_id, usubjid) with
    :func:`~safety_dash.review.derive_review_status`'s columns, derived for the records whose key has review rows;
    the others are not reviewed. Indexed by version id."""
    out = records.set_index("version_id", drop=False)
    out["REVIEW_STATUS"] = NOT_REVIEWED
    out["REVIEWED_BY"] = pd.Series(None, index=out.index, dtype=object)
    out["REVIEWED_AT"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    out["REVIEWED_VERSION"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    touched = records.loc[records["record_key"].isin(set(reviews["record_key"]))]
    if not touched.empty:
        derived = derive_review_status(touched.reset_index(drop=True), reviews).set_index("version_id")
        for column in ("REVIEW_STATUS", "REVIEWED_BY", "REVIEWED_AT", "REVIEWED_VERSION"):
            out.loc[derived.index, column] = derived[column].to_numpy()
    return out


def _ae_records(engine: Engine, study_id: str, run_id: int, source, keys: set[str]) -> pd.DataFrame:
    """The cut's AE records; from a cut source, with the record key of those whose key is in ``keys``."""
    if source is None:
        return _cut_records(engine, run_id, "ae")
    events = source.frames.events
    records = pd.DataFrame({"version_id": events["AE_ID"].to_numpy(dtype=np.int64),
                            "usubjid": events["USUBJID"].to_numpy(dtype=object)})  # fmt: skip
    known = _keys_of_versions(engine, study_id, keys).set_index("id")["record_key"]
    records["record_key"] = known.reindex(records["version_id"]).to_numpy(dtype=object)
    return records


@functools.lru_cache(maxsize=CACHE_SIZE)
def _cut_review(engine: Engine, study_id: str, run_id: int, token: tuple, source=None) -> CutReview:
    comments = load_comments(engine, study_id)
    reviews = load_review_rows(engine, study_id, "ae")
    keys = set(reviews["record_key"]) | set(comments.loc[comments["record_type"] == "ae", "record_key"])
    ae = derive_statuses(_ae_records(engine, study_id, run_id, source, keys), reviews)
    subjects = derive_statuses(_cut_records(engine, run_id, "subject"), load_review_rows(engine, study_id, "subject"))
    subjects = subjects.set_index("usubjid", drop=False)
    return CutReview(study_id, run_id, token, ae, subjects, comments, summarise_comments(comments))


def load_cut_review(engine: Engine, study_id: str, run_id: int, token: tuple | None = None, source=None) -> CutReview:
    """The review state of cut ``run_id`` of ``study_id`` as it is now, or as of ``token`` (a state read earlier);
    cached until a review, comment or query changes. ``source``: the cut's records as a page holds them (see the
    module's docstring)."""
    token = load_review_token(engine) if token is None else tuple(token)
    return _cut_review(engine, study_id, int(run_id), token, source)


def clear_review_caches() -> None:
    """Forget every cached review state, cut's records and trail."""
    _cut_review.cache_clear()
    _cut_records.cache_clear()
    _audit_events.cache_clear()
    _audit_chain.cache_clear()


def flag_review_status(review: CutReview, version_ids, review_filter: str) -> np.ndarray:
    """Mask of the AE records ``version_ids`` whose status the filter ``review_filter`` (a key of
    :data:`REVIEW_FILTERS`) keeps."""
    if review_filter not in REVIEW_FILTERS:
        raise ValueError(f"review filter {review_filter!r} is not one of {', '.join(REVIEW_FILTERS)}")
    statuses = review.ae["REVIEW_STATUS"].reindex(np.asarray(version_ids, dtype=np.int64))
    return statuses.isin(REVIEW_FILTERS[review_filter]).to_numpy()


def derive_review_columns(review: CutReview, version_ids) -> pd.DataFrame:
    """For the AE records ``version_ids`` (in that order): REVIEW_STATUS, REVIEWED_BY, REVIEWED_AT (text),
    COMMENTS (count and open queries), LAST_COMMENT (the newest comment's text) and LAST_COMMENT_BY (who, when)."""
    records = review.ae.reindex(np.asarray(version_ids, dtype=np.int64))
    keys = pd.MultiIndex.from_arrays([np.full(len(records), "ae", dtype=object), records["record_key"].to_numpy()])
    summary = review.summary.reindex(keys)
    reviewed_at = pd.to_datetime(records["REVIEWED_AT"], utc=True).dt.strftime("%Y-%m-%d %H:%M")
    return pd.DataFrame(
        {
            "REVIEW_STATUS": records["REVIEW_STATUS"].to_numpy(dtype=object),
            "REVIEWED_BY": records["REVIEWED_BY"].astype(object).where(records["REVIEWED_BY"].notna(), None).to_numpy(),
            "REVIEWED_AT": reviewed_at.fillna("").to_numpy(dtype=object),
            "COMMENTS": summary["text"].fillna("").to_numpy(dtype=object),
            "LAST_COMMENT": summary["last"].to_numpy(dtype=object),
            "LAST_COMMENT_BY": summary["last_by"].to_numpy(dtype=object),
        }
    )


def compute_ae_backlog(review: CutReview, version_ids) -> dict[str, int]:
    """:func:`~safety_dash.review.compute_review_backlog` of the AE records ``version_ids``."""
    records = review.ae.reindex(np.asarray(version_ids, dtype=np.int64))
    return compute_review_backlog(records.dropna(subset=["REVIEW_STATUS"]))


def compute_subject_backlog(review: CutReview, usubjids: Iterable[str] | None = None) -> dict[str, int]:
    """:func:`~safety_dash.review.compute_review_backlog` of the subject records (of ``usubjids`` when given)."""
    subjects = review.subjects if usubjids is None else review.subjects.loc[review.subjects.index.isin(list(usubjids))]
    return compute_review_backlog(subjects)


def count_open_queries(review: CutReview, usubjids: Iterable[str] | None = None) -> dict[str, int]:
    """Data queries of the study (of ``usubjids`` when given) by status: open, answered, closed."""
    queries = review.comments.loc[review.comments["query_status"].notna()]
    if usubjids is not None:
        queries = queries.loc[queries["usubjid"].isin(list(usubjids))]
    counts = queries["query_status"].value_counts()
    return {status: int(counts.get(status, 0)) for status in ("open", "answered", "closed")}


def subject_comments(review: CutReview, usubjid: str) -> pd.DataFrame:
    """The comments on subject ``usubjid`` and on its AE records, newest first."""
    return review.comments.loc[review.comments["usubjid"] == usubjid]


def record_comments(review: CutReview, record_type: str, record_key: str) -> pd.DataFrame:
    """The comments on one record (every version of it), newest first."""
    comments = review.comments
    return comments.loc[(comments["record_type"] == record_type) & (comments["record_key"] == record_key)]


def ae_record(review: CutReview, version_id) -> dict | None:
    """The review row of the AE record with version ``version_id`` in the cut, or None."""
    try:
        version = int(version_id)
    except (TypeError, ValueError):
        return None
    if version not in review.ae.index:
        return None
    return review.ae.loc[version].to_dict()


# --- writing as the signed-in user -----------------------------------------------------------------------------


def _versions(version_ids) -> list[int]:
    try:
        return list(dict.fromkeys(int(v) for v in version_ids or []))
    except (TypeError, ValueError) as error:
        raise ValueError("the selection names a record that is not a record of this cut; reload the page") from error


def _cut_ae_records_of(engine: Engine, study_id: str, run_id: int, versions: list[int]) -> pd.DataFrame:
    """The AE records of cut ``run_id`` with the version ids ``versions`` (record_key, version_id, usubjid), by
    key lookups (not a read of the whole cut)."""
    found = []
    with engine.connect() as connection:
        for start in range(0, len(versions), 500):
            found += connection.execute(
                select(AdverseEventVersion.record_key, DerivedEvent.ae_version_id, DerivedEvent.usubjid)
                .join(AdverseEventVersion, AdverseEventVersion.id == DerivedEvent.ae_version_id)
                .where(DerivedEvent.run_id == run_id, AdverseEventVersion.study_id == study_id,
                       DerivedEvent.ae_version_id.in_(versions[start:start + 500]))
            ).all()  # fmt: skip
    return pd.DataFrame(found, columns=["record_key", "version_id", "usubjid"])


def save_reviews(
    engine: Engine, study_id: str, run_id: int, version_ids, username: str, reviewed: bool = True, address=None
) -> int:
    """Mark the AE records ``version_ids`` of cut ``run_id`` reviewed (or withdraw their review) as ``username``;
    returns how many changed. Fails with a sentence when nothing is selected or a record is not of the cut."""
    versions = _versions(version_ids)
    if not versions:
        raise ValueError("select the records first (tick them in the grid)")
    records = _cut_ae_records_of(engine, study_id, run_id, versions)
    unknown = set(versions) - set(records["version_id"])
    if unknown:
        raise ValueError(f"{len(unknown)} of the selected records are not in data cut {run_id}; reload the page")
    pairs = list(zip(records["record_key"], records["version_id"], strict=True))
    with engine.begin() as connection:
        return review_records(connection, study_id, "ae", pairs, username, reviewed=reviewed, address=address)


def save_subject_review(
    engine: Engine, study_id: str, run_id: int, usubjid: str, username: str, address=None, source=None
) -> tuple[int, int]:
    """Mark subject ``usubjid`` and all its AE records in cut ``run_id`` reviewed, in one transaction; returns how
    many (subject records, AE records) changed. ``source``: the cut's records as the page holds them."""
    review = load_cut_review(engine, study_id, run_id, source=source)
    if usubjid not in review.subjects.index:
        raise ValueError(f"subject {usubjid} is not in data cut {run_id}")
    subject = review.subjects.loc[[usubjid]]
    versions = [int(v) for v in review.ae.loc[review.ae["usubjid"] == usubjid, "version_id"]]
    records = _cut_ae_records_of(engine, study_id, run_id, versions)
    with engine.begin() as connection:
        n_subject = review_records(connection, study_id, "subject",
                                   zip(subject["record_key"], subject["version_id"], strict=True), username,
                                   address=address)  # fmt: skip
        n_ae = review_records(connection, study_id, "ae",
                              zip(records["record_key"], records["version_id"], strict=True), username,
                              address=address)  # fmt: skip
    return n_subject, n_ae


def save_comment(
    engine: Engine,
    study_id: str,
    run_id: int,
    username: str,
    text: str,
    *,
    version_id=None,
    usubjid: str | None = None,
    raise_query: bool = False,
    address=None,
) -> int:
    """Comment on the AE record with version ``version_id`` of cut ``run_id``, or (without it) on subject
    ``usubjid``, as ``username``; a data query to the site when ``raise_query``. Returns the comment's id."""
    if version_id is not None:
        found = _cut_ae_records_of(engine, study_id, run_id, _versions([version_id]))
        if found.empty:
            raise ValueError(f"the record is not in data cut {run_id}; reload the page")
        record, record_type = found.iloc[0].to_dict(), "ae"
    else:
        subjects = _cut_records(engine, int(run_id), "subject").set_index("usubjid", drop=False)
        if not usubjid or usubjid not in subjects.index:
            raise ValueError(f"choose a record or a subject of data cut {run_id} to comment on")
        record, record_type = subjects.loc[usubjid].to_dict(), "subject"
    with engine.begin() as connection:
        return add_comment(connection, study_id, record_type, record["record_key"], record["usubjid"],
                           int(record["version_id"]), username, text, raise_query=raise_query,
                           address=address)  # fmt: skip


def save_query_status(
    engine: Engine, study_id: str, comment_id, status: str, username: str, reason: str, address=None
) -> None:
    """Move data query ``comment_id`` of ``study_id`` to ``status`` with ``reason`` as ``username``."""
    if comment_id is None:
        raise ValueError("select a data query first")
    with engine.begin() as connection:
        found = connection.execute(
            select(Comment.id).where(Comment.id == int(comment_id), Comment.study_id == study_id)
        ).scalar_one_or_none()
        if found is None:
            raise ValueError(f"query {comment_id} is not a query of study {study_id}")
        set_query_status(connection, int(comment_id), status, username, reason, address=address)


# --- data queries --------------------------------------------------------------------------------------------


def _query_changes(engine: Engine, study_id: str) -> pd.DataFrame:
    """Every status change of the study's data queries from the trail: comment_id, actor, occurred_at, before,
    after, reason, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(AuditEvent.id, AuditEvent.actor, AuditEvent.occurred_at, AuditEvent.before, AuditEvent.after,
                   AuditEvent.reason)
            .where(AuditEvent.action == "query_status", AuditEvent.study_id == study_id)
            .order_by(AuditEvent.id)
        ).all()  # fmt: skip
    changes = []
    for row in rows:
        before, after = json.loads(row.before or "{}"), json.loads(row.after or "{}")
        changes.append({"comment_id": after.get("comment_id"), "actor": row.actor, "occurred_at": row.occurred_at,
                        "before": before.get("query_status"), "after": after.get("query_status"),
                        "reason": row.reason})  # fmt: skip
    return pd.DataFrame(changes, columns=["comment_id", "actor", "occurred_at", "before", "after", "reason"])


def _ae_terms(engine: Engine, version_ids: list[int]) -> dict[int, str]:
    """'AE 3 · Rash' for each AE version id."""
    if not version_ids:
        return {}
    with engine.connect() as connection:
        rows = connection.execute(
            select(AdverseEventVersion.id, AdverseEventVersion.aeseq, AdverseEventVersion.aedecod,
                   AdverseEventVersion.aeterm).where(AdverseEventVersion.id.in_(version_ids))
        ).all()  # fmt: skip
    return {row.id: f"AE {row.aeseq or '?'} · {row.aedecod or row.aeterm or 'uncoded'}" for row in rows}


def load_query_queue(engine: Engine, study_id: str, status: str | None = None) -> pd.DataFrame:
    """The data queries of ``study_id`` (of ``status`` when given), newest first, with :data:`QUERY_COLUMNS`:
    the record in words, who raised it and when, its status and its last change (who, when, why)."""
    comments = load_comments(engine, study_id)
    queries = comments.loc[comments["query_status"].notna()]
    if status is not None:
        queries = queries.loc[queries["query_status"] == status]
    terms = _ae_terms(engine, [int(v) for v in queries.loc[queries["record_type"] == "ae", "version_id"]])
    changes = _query_changes(engine, study_id).drop_duplicates("comment_id", keep="last").set_index("comment_id")
    last = changes.reindex(queries["comment_id"])
    return pd.DataFrame(
        {
            "comment_id": queries["comment_id"].astype(int).to_numpy(),
            "usubjid": queries["usubjid"].to_numpy(dtype=object),
            "record_type": queries["record_type"].to_numpy(dtype=object),
            "record": [terms.get(int(v), "AE record") if kind == "ae" else "Subject"
                       for kind, v in zip(queries["record_type"], queries["version_id"], strict=True)],
            "text": queries["text"].to_numpy(dtype=object),
            "raised_by": queries["username"].to_numpy(dtype=object),
            "raised_at": [format_utc(v) for v in queries["created_at"]],
            "version_id": queries["version_id"].astype(int).to_numpy(),
            "query_status": queries["query_status"].to_numpy(dtype=object),
            "changed_by": last["actor"].to_numpy(dtype=object),
            "changed_at": [format_utc(v) for v in last["occurred_at"]],
            "reason": last["reason"].to_numpy(dtype=object),
        },
        columns=QUERY_COLUMNS,
    )  # fmt: skip


def load_query_history(engine: Engine, study_id: str, comment_id: int) -> pd.DataFrame:
    """The status changes of one data query, oldest first: when (text), who, from, to, reason."""
    changes = _query_changes(engine, study_id)
    changes = changes.loc[changes["comment_id"] == int(comment_id)]
    return pd.DataFrame(
        {
            "when": [format_utc(v) for v in changes["occurred_at"]],
            "who": changes["actor"].to_numpy(dtype=object),
            "from": changes["before"].to_numpy(dtype=object),
            "to": changes["after"].to_numpy(dtype=object),
            "reason": changes["reason"].to_numpy(dtype=object),
        }
    )


def next_query_statuses(status: str | None) -> tuple[str, ...]:
    """The statuses a data query in ``status`` may move to (none for a plain comment)."""
    return QUERY_TRANSITIONS.get(status or "", ())


# --- the audit trail -----------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def _audit_events(engine: Engine, token: int) -> pd.DataFrame:
    with engine.connect() as connection:
        return export_events(connection)


@functools.lru_cache(maxsize=2)
def _audit_chain(engine: Engine, token: int) -> tuple[int, ChainBreak | None]:
    with engine.connect() as connection:
        return verify_chain(connection)


def load_audit_events(engine: Engine) -> pd.DataFrame:
    """The whole trail (:func:`~safety_dash.audit.export_events`), cached until it grows."""
    return _audit_events(engine, load_trail_token(engine))


def check_audit_chain(engine: Engine) -> tuple[int, ChainBreak | None]:
    """:func:`~safety_dash.audit.verify_chain` of the trail as it is now: (rows checked, first break or None)."""
    return _audit_chain(engine, load_trail_token(engine))


def filter_audit_events(
    events: pd.DataFrame,
    actor: str | None = None,
    action: str | None = None,
    study_id: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    text: str | None = None,
) -> pd.DataFrame:
    """The rows of the trail ``events`` (:func:`load_audit_events`) that match every filter given, newest first:
    ``actor`` and ``action`` exactly, ``study_id`` exactly, ``since`` / ``until`` as UTC days (both inclusive), and
    ``text`` anywhere in the object id, before, after or reason (case-insensitive)."""
    mask = np.ones(len(events), dtype=bool)
    for column, value in (("actor", actor), ("action", action), ("study_id", study_id)):
        if value:
            mask &= (events[column] == value).to_numpy()
    day = events["occurred_at"].str.slice(0, 10)
    if since is not None:
        mask &= (day >= since.isoformat()).to_numpy()
    if until is not None:
        mask &= (day <= until.isoformat()).to_numpy()
    if text and text.strip():
        wanted = text.strip().casefold()
        found = np.zeros(len(events), dtype=bool)
        for column in ("object_id", "before", "after", "reason"):
            found |= events[column].fillna("").astype(str).str.casefold().str.contains(wanted, regex=False).to_numpy()
        mask &= found
    return events.loc[mask].sort_values("id", ascending=False).reset_index(drop=True)


def audit_csv(events: pd.DataFrame) -> str:
    """The rows of the trail as CSV text (every column of ``audit export``), formulas neutralised."""
    return to_safe_csv(events[EXPORT_COLUMNS], index=False)
