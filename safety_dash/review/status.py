"""Review status of records, from the append-only review rows: a pure function on DataFrames.

A record (an AE record or a subject's DM record) has a stable ``record_key`` across cuts and one *version* per
change (``version_id``: ae_versions.id / subject_versions.id). A cut that does not change a record keeps its
version, so a review stays valid; a cut that changes any stored value makes a new version.
"""

from __future__ import annotations

import pandas as pd

REVIEWED, OUTDATED, NOT_REVIEWED = "reviewed", "outdated", "not reviewed"
REVIEW_STATUSES = (NOT_REVIEWED, OUTDATED, REVIEWED)
NEEDS_REVIEW = (NOT_REVIEWED, OUTDATED)
STATUS_COLUMNS = ["REVIEW_STATUS", "REVIEWED_BY", "REVIEWED_AT", "REVIEWED_VERSION"]


def derive_review_status(records: pd.DataFrame, reviews: pd.DataFrame) -> pd.DataFrame:
    """``records`` with the review status of each record's version.

    ``records``: one row per record, columns ``record_key`` and ``version_id`` (others kept). ``reviews``: the
    review rows of the same study and record type (columns id, record_key, version_id, reviewed, username,
    reviewed_at), any order. For each (record, version) the latest row (highest id) decides whether that version
    is reviewed (``reviewed`` true) or was withdrawn (false). A record's status is:

    - ``reviewed``: its version in ``records`` is reviewed;
    - ``outdated``: not that version, but an earlier version of the record is (the record changed since);
    - ``not reviewed``: neither (never reviewed, or every review withdrawn).

    Adds REVIEW_STATUS, REVIEWED_BY and REVIEWED_AT (who reviewed, and when, the version that decides the status:
    the current one, else the latest earlier reviewed one; empty for not reviewed) and REVIEWED_VERSION.
    """
    for frame, name, columns in (
        (records, "records", ("record_key", "version_id")),
        (reviews, "reviews", ("id", "record_key", "version_id", "reviewed", "username", "reviewed_at")),
    ):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"`{name}` lacks the columns {', '.join(missing)}")
    out = records.copy()
    latest = reviews.sort_values("id").drop_duplicates(["record_key", "version_id"], keep="last")
    valid = latest.loc[latest["reviewed"].astype(bool), ["record_key", "version_id", "username", "reviewed_at"]]
    current = out[["record_key", "version_id"]].merge(valid, on=["record_key", "version_id"], how="left")
    is_current = current["username"].notna().to_numpy()
    earlier = out[["record_key", "version_id"]].merge(
        valid.rename(columns={"version_id": "reviewed_version"}), on="record_key", how="inner"
    )
    earlier = earlier.loc[earlier["reviewed_version"] < earlier["version_id"]]
    earlier = earlier.sort_values("reviewed_version").drop_duplicates("record_key", keep="last").set_index("record_key")
    keys = out["record_key"]
    status = pd.Series(NOT_REVIEWED, index=out.index, dtype=object)
    has_earlier = keys.isin(earlier.index).to_numpy()
    status[has_earlier] = OUTDATED
    status[is_current] = REVIEWED
    out["REVIEW_STATUS"] = status
    out["REVIEWED_BY"] = pd.Series(current["username"].to_numpy(), index=out.index).where(
        is_current, keys.map(earlier["username"])
    )
    out["REVIEWED_AT"] = pd.Series(current["reviewed_at"].to_numpy(), index=out.index).where(
        is_current, keys.map(earlier["reviewed_at"])
    )
    earlier_version = keys.map(earlier["reviewed_version"]).astype("Float64")
    current_version = pd.Series(out["version_id"].to_numpy(), index=out.index).astype("Float64")
    out["REVIEWED_VERSION"] = current_version.where(is_current, earlier_version).astype("Int64")
    return out


def compute_review_backlog(statuses: pd.DataFrame) -> dict[str, int]:
    """Counts of records per review status (every status present, zero included), plus ``needs review``."""
    counts = statuses["REVIEW_STATUS"].value_counts()
    backlog = {status: int(counts.get(status, 0)) for status in REVIEW_STATUSES}
    backlog["needs review"] = backlog[NOT_REVIEWED] + backlog[OUTDATED]
    return backlog
