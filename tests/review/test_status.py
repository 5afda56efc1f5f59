"""derive_review_status: the status of each record version from the append-only review rows (literal tables)."""

from __future__ import annotations

import pandas as pd
import pytest

from safety_dash.review.status import compute_review_backlog, derive_review_status

T = pd.Timestamp


def _reviews(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "record_key", "version_id", "reviewed", "username", "reviewed_at"])


RECORDS = pd.DataFrame(
    [
        # record_key version_id
        ("K1", 10),  # reviewed in this version
        ("K2", 25),  # reviewed in version 20, changed since (version 25): outdated
        ("K3", 30),  # never reviewed
        ("K4", 40),  # reviewed, then the review withdrawn
        ("K5", 55),  # version 50 reviewed, version 55 reviewed, version 55 withdrawn: outdated again (50 stands)
        ("K6", 60),  # reviewed twice (second by another user): the latest row tells who
    ],
    columns=["record_key", "version_id"],
)
REVIEWS = _reviews(
    [
        (1, "K1", 10, True, "ann", T("2026-01-02 10:00", tz="UTC")),
        (2, "K2", 20, True, "ann", T("2026-01-02 10:01", tz="UTC")),
        (3, "K4", 40, True, "bob", T("2026-01-02 10:02", tz="UTC")),
        (4, "K4", 40, False, "bob", T("2026-01-02 10:03", tz="UTC")),
        (5, "K5", 50, True, "ann", T("2026-01-02 10:04", tz="UTC")),
        (6, "K5", 55, True, "ann", T("2026-01-03 09:00", tz="UTC")),
        (7, "K5", 55, False, "bob", T("2026-01-03 09:30", tz="UTC")),
        (8, "K6", 60, True, "ann", T("2026-01-03 11:00", tz="UTC")),
        (9, "K6", 60, True, "bob", T("2026-01-03 12:00", tz="UTC")),
        (10, "K9", 90, True, "ann", T("2026-01-03 12:00", tz="UTC")),  # a record not in this cut: ignored
    ]
)


def test_derive_review_status_per_version():
    result = derive_review_status(RECORDS, REVIEWS.sample(frac=1, random_state=3))  # row order does not matter
    assert result["REVIEW_STATUS"].tolist() == [
        "reviewed", "outdated", "not reviewed", "not reviewed", "outdated", "reviewed",
    ]  # fmt: skip
    assert result["REVIEWED_BY"].tolist()[:2] == ["ann", "ann"]
    assert pd.isna(result["REVIEWED_BY"].iloc[2]) and pd.isna(result["REVIEWED_BY"].iloc[3])
    assert result["REVIEWED_BY"].iloc[5] == "bob"
    assert result["REVIEWED_VERSION"].tolist() == [10, 20, pd.NA, pd.NA, 50, 60]
    assert result["REVIEWED_AT"].iloc[1] == T("2026-01-02 10:01", tz="UTC")


def test_derive_review_status_without_reviews_and_bad_frames():
    empty = derive_review_status(RECORDS, REVIEWS.iloc[0:0])
    assert set(empty["REVIEW_STATUS"]) == {"not reviewed"}
    assert compute_review_backlog(empty) == {"not reviewed": 6, "outdated": 0, "reviewed": 0, "needs review": 6}
    with pytest.raises(ValueError, match="`reviews` lacks the columns reviewed"):
        derive_review_status(RECORDS, REVIEWS.drop(columns="reviewed"))


def test_compute_review_backlog_counts_every_status():
    result = derive_review_status(RECORDS, REVIEWS)
    assert compute_review_backlog(result) == {"not reviewed": 2, "outdated": 2, "reviewed": 2, "needs review": 4}
