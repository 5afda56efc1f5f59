"""Paging of small tables for the grids: cohorts sort as dose levels (by dose), not as text."""

from __future__ import annotations

import pandas as pd

from safety_dash.web.listing import page_frame

# Dose levels as the grid's text sort put them (0.3, 1, 10, 3, 5) and a phase Ib cohort.
COHORTS = ["Ph I 0.3 mg/kg", "Ph I 1 mg/kg", "Ph I 10 mg/kg", "Ph I 3 mg/kg", "Ph I 5 mg/kg", "Ph Ib NSCLC"]
BY_DOSE = ["Ph I 0.3 mg/kg", "Ph I 1 mg/kg", "Ph I 3 mg/kg", "Ph I 5 mg/kg", "Ph I 10 mg/kg", "Ph Ib NSCLC"]


def _sorted(frame: pd.DataFrame, column: str, direction: str) -> list:
    request = {"startRow": 0, "endRow": 50, "sortModel": [{"colId": column, "sort": direction}]}
    return [row[column] for row in page_frame(frame, request)["rowData"]]


def test_page_frame_sorts_cohorts_by_dose():
    frame = pd.DataFrame({"group": COHORTS, "n": [1, 2, 3, 4, 5, 6]})
    assert _sorted(frame, "group", "asc") == BY_DOSE
    assert _sorted(frame, "group", "desc") == BY_DOSE[::-1]


def test_page_frame_sorts_other_text_as_text():
    frame = pd.DataFrame({"pt": ["b10", "b3", "a"]})
    assert _sorted(frame, "pt", "asc") == ["a", "b10", "b3"]
