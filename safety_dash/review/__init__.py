"""Review of records, comments and data queries (issue 11): status per record version, append-only reviews."""

from safety_dash.review.status import (
    NEEDS_REVIEW,
    NOT_REVIEWED,
    OUTDATED,
    REVIEW_STATUSES,
    REVIEWED,
    compute_review_backlog,
    derive_review_status,
)
from safety_dash.review.store import (
    QUERY_STATUSES,
    add_comment,
    load_comments,
    load_cut_review_status,
    load_review_rows,
    review_records,
    set_query_status,
)

__all__ = [
    "NEEDS_REVIEW",
    "NOT_REVIEWED",
    "OUTDATED",
    "QUERY_STATUSES",
    "REVIEWED",
    "REVIEW_STATUSES",
    "add_comment",
    "compute_review_backlog",
    "derive_review_status",
    "load_comments",
    "load_cut_review_status",
    "load_review_rows",
    "review_records",
    "set_query_status",
]
