"""The review status of a cut's records (issue "Review and audit") for the pack's review section.

The one place the pack reads reviews: :func:`load_review_status` asks :mod:`safety_dash.review` for the status of
every AE record and subject of the cut and counts them. It returns None (and the pack leaves the section out) when
the review package is not installed.
"""

from __future__ import annotations

import pandas as pd

from safety_dash.analysis import CutContext

RECORD_TYPE_LABELS = {"ae": "AE records", "subject": "Subjects"}


def load_review_status(bind, cut: CutContext, usubjids: set[str] | None = None) -> pd.DataFrame | None:
    """Per record type (AE records, subjects) of cut ``cut``: records reviewed, outdated (changed since their
    review), not reviewed, needing review, and in all; of the subjects ``usubjids`` when given (a cohort).

    None while the review package is not available.
    """
    try:
        from safety_dash.review.status import REVIEW_STATUSES, compute_review_backlog
        from safety_dash.review.store import load_cut_review_status
    except ImportError:
        return None
    rows = []
    for record_type, label in RECORD_TYPE_LABELS.items():
        statuses = load_cut_review_status(bind, cut.study_id, cut.run_id, record_type)
        if usubjids is not None:
            statuses = statuses.loc[statuses["usubjid"].isin(usubjids)]
        backlog = compute_review_backlog(statuses)
        rows.append({"record_type": label, **{s: backlog[s] for s in REVIEW_STATUSES},
                     "needs review": backlog["needs review"], "total": len(statuses)})  # fmt: skip
    return pd.DataFrame(rows)
