"""Rows for grids, one page at a time: the AE listing of a cut and the paging of any small table.

A grid in the browser asks for rows ``startRow``..``endRow`` with its sort and column filters (AG Grid's infinite
row model); the answer holds at most :data:`MAX_PAGE_ROWS` rows and the total count. The listing of a cut is
filtered once per (cut, view filters, grid filters, sort) and cached as row positions, so paging is cheap.

Every listed record carries its review status and comments (:mod:`safety_dash.views.review`), and the listing can
be narrowed to a review status with the address key ``review`` (:data:`REVIEW_KEY`: ``needs``, ``not-reviewed``,
``outdated``, ``reviewed``; absent or ``all``: every record). Positions narrowed by review status are cached per
state of the review (the newest review, comment and query change), so a review shows at the next request.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import numpy as np
import pandas as pd

from safety_dash.exports import to_safe_csv
from safety_dash.views.ordering import natural_rank
from safety_dash.views.review import (
    REVIEW_FILTERS,
    CutReview,
    compute_ae_backlog,
    derive_review_columns,
    flag_review_status,
    load_cut_review,
)
from safety_dash.web.data import GROUP_COLUMN, RESULT_CACHE_SIZE
from safety_dash.web.state import ViewState, state_to_search
from safety_dash.web.views import CutKey, basket_mask, text_equals

MAX_PAGE_ROWS = 100
PAGE_SIZE = 50

# Listing columns: grid field -> (header, events column). Dates are shown as ISO text.
LISTING_COLUMNS: dict[str, tuple[str, str]] = {
    "USUBJID": ("Subject", "USUBJID"),
    "COHORT": ("Cohort", GROUP_COLUMN),
    "AESEQ": ("Seq", "AESEQ"),
    "SOC": ("System organ class", "SOC"),
    "PT": ("Preferred term", "PT"),
    "AETERM": ("Reported term", "AETERM"),
    "ASTDT": ("Onset", "ASTDT"),
    "ASTDTF": ("Onset imputed", "ASTDTF"),
    "ASTDY": ("Day", "ASTDY"),
    "AEENDTC": ("End", "AEENDTC"),
    "GRADE": ("Grade", "GRADE"),
    "GRADE_SOURCE": ("Grade from", "GRADE_SOURCE"),
    "SERIOUS": ("Serious", "SERIOUS"),
    "RELATED": ("Related", "RELATED"),
    "AEOUT": ("Outcome", "AEOUT"),
    "WINDOW_LABEL": ("Window", "WINDOW_LABEL"),
    "RECORD_CHANGE": ("In this cut", "RECORD_CHANGE"),
    "FLAGS": ("Flags", ""),
}
# Columns holding cohorts: sorted in natural order (dose levels by dose: 0.3, 1, 3, 5, 10 mg/kg), not as text.
NATURAL_ORDER_COLUMNS = frozenset({"COHORT", "group"})
IMPUTATION_TEXT = {"D": "day imputed", "M": "month and day imputed", "Y": "date missing: first dose"}
# Review columns of every listed record: grid field -> header (values from safety_dash.views.review).
REVIEW_COLUMNS = {
    "REVIEW_STATUS": "Review",
    "REVIEWED_BY": "Reviewed by",
    "REVIEWED_AT": "Reviewed at (UTC)",
    "COMMENTS": "Comments",
    "LAST_COMMENT": "Latest comment",
    "LAST_COMMENT_BY": "Latest comment by",
}
REVIEW_KEY = "review"  # the address key of the review filter
ALL_RECORDS = "all"


# --- the review filter in the address ---------------------------------------------------------------------------


def review_filter_of(search: str | None) -> str:
    """The review filter the address asks for (a key of :data:`REVIEW_FILTERS`); ``all`` when absent or unreadable."""
    for key, value in parse_qsl((search or "").lstrip("?")):
        if key == REVIEW_KEY:
            return value if value in REVIEW_FILTERS else ALL_RECORDS
    return ALL_RECORDS


def review_search(state: ViewState, review_filter: str | None) -> str:
    """The query string of ``state`` with the review filter (none written for ``all``)."""
    pairs = [(k, v) for k, v in parse_qsl(state_to_search(state).lstrip("?")) if k != REVIEW_KEY]
    if review_filter and review_filter != ALL_RECORDS:
        pairs.append((REVIEW_KEY, review_filter))
    return "?" + urlencode(pairs, quote_via=quote) if pairs else ""


def review_href(path: str, state: ViewState, review_filter: str | None) -> str:
    """The address of page ``path`` showing ``state`` narrowed by ``review_filter``."""
    return path + review_search(state, review_filter)


# --- generic paging of a table ----------------------------------------------------------------------------------


def _condition(values: pd.Series, spec: dict[str, Any]) -> np.ndarray:
    """Mask of ``values`` passing one AG Grid column filter (text or number, simple or combined)."""
    if "conditions" in spec:
        masks = [_condition(values, part) for part in spec["conditions"]]
        combine = np.logical_or if str(spec.get("operator", "AND")).upper() == "OR" else np.logical_and
        return functools.reduce(combine, masks) if masks else np.ones(len(values), bool)
    if isinstance(values.dtype, pd.CategoricalDtype):  # decide once per distinct text, then spread by code
        decided = _condition(pd.Series(values.cat.categories, dtype=object), spec)
        codes = values.cat.codes.to_numpy()
        return np.where(codes >= 0, decided[np.maximum(codes, 0)], False)
    if pd.api.types.is_datetime64_any_dtype(values) and spec.get("filterType") != "number":
        values = values.dt.strftime("%Y-%m-%d")
    kind = spec.get("type", "contains")
    if kind == "blank":
        return (values.isna() | (values.astype(str) == "")).to_numpy()
    if kind == "notBlank":
        return ~(values.isna() | (values.astype(str) == "")).to_numpy()
    if spec.get("filterType") == "number":
        number = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        low = float(spec.get("filter")) if spec.get("filter") is not None else math.nan
        high = float(spec.get("filterTo")) if spec.get("filterTo") is not None else math.nan
        with np.errstate(invalid="ignore"):
            tests = {
                "equals": number == low,
                "notEqual": number != low,
                "lessThan": number < low,
                "lessThanOrEqual": number <= low,
                "greaterThan": number > low,
                "greaterThanOrEqual": number >= low,
                "inRange": (number >= low) & (number <= high),
            }
        return tests.get(kind, np.ones(len(values), bool))
    text = values.astype(object).where(values.notna(), "").astype(str).str.casefold()
    wanted = str(spec.get("filter") or "").casefold()
    tests = {
        "contains": lambda: text.str.contains(wanted, regex=False),
        "notContains": lambda: ~text.str.contains(wanted, regex=False),
        "equals": lambda: text == wanted,
        "notEqual": lambda: text != wanted,
        "startsWith": lambda: text.str.startswith(wanted),
        "endsWith": lambda: text.str.endswith(wanted),
    }
    return tests.get(kind, tests["contains"])().to_numpy(dtype=bool)


def filter_and_sort(column, positions: np.ndarray, filter_model: dict, sort_model: list) -> np.ndarray:
    """``positions`` kept by ``filter_model`` and ordered by ``sort_model``; ``column(name, positions)`` gives the
    values of a grid column at those positions (unknown columns are ignored)."""
    for name, spec in (filter_model or {}).items():
        values = column(name, positions)
        if values is not None and isinstance(spec, dict):
            positions = positions[_condition(values.reset_index(drop=True), spec)]
    keys, ascending = [], []
    for item in sort_model or []:
        values = column(item.get("colId"), positions)
        if values is not None:
            natural = item.get("colId") in NATURAL_ORDER_COLUMNS
            keys.append(_sort_key(values.reset_index(drop=True), natural).rename(f"k{len(keys)}"))
            ascending.append(item.get("sort") != "desc")
    if keys:
        order = pd.concat(keys, axis=1).sort_values(list(k.name for k in keys), ascending=ascending, kind="stable")
        positions = positions[order.index.to_numpy()]
    return positions


def _sort_key(values: pd.Series, natural: bool = False) -> pd.Series:
    """A key that sorts like the shown values: a categorical's texts in alphabetical order, as integer ranks;
    ``natural``: texts with numbers by the numbers' values (cohorts: dose levels by dose)."""
    if not isinstance(values.dtype, pd.CategoricalDtype):
        return natural_rank(values) if natural else values
    texts = np.asarray(values.cat.categories, dtype=object).astype(str)
    if natural:
        rank = natural_rank(pd.Series(texts)).to_numpy()
    else:
        rank = np.empty(len(texts), dtype=np.int64)
        rank[np.argsort(texts, kind="stable")] = np.arange(len(texts))
    codes = values.cat.codes.to_numpy()
    return pd.Series(np.where(codes >= 0, rank[np.maximum(codes, 0)], -1))


def page_bounds(request: dict | None) -> tuple[int, int]:
    """The first row and the row after the last asked for, at most :data:`MAX_PAGE_ROWS` apart."""
    request = request or {}
    start = max(int(request.get("startRow") or 0), 0)
    end = int(request.get("endRow") or start + PAGE_SIZE)
    return start, min(max(end, start), start + MAX_PAGE_ROWS)


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts: dates as ISO text, missing values as None, numpy numbers as Python numbers."""
    out = frame.copy()
    for name in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[name]):
            out[name] = out[name].dt.strftime("%Y-%m-%d")
    out = out.astype(object).where(out.notna(), None)
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()} for row in out.to_dict("records")
    ]


def page_positions(frame: pd.DataFrame, request: dict | None) -> tuple[np.ndarray, int]:
    """The positions in ``frame`` (a small table already in memory) of the rows on the page an infinite-model
    grid asks for, filtered and sorted as it asks, and how many rows pass its filters."""
    request = request or {}

    def column(name, positions):
        return frame[name].iloc[positions] if name in frame.columns else None

    positions = filter_and_sort(
        column, np.arange(len(frame)), request.get("filterModel") or {}, request.get("sortModel") or []
    )
    start, end = page_bounds(request)
    return positions[start:end], int(len(positions))


def page_frame(frame: pd.DataFrame, request: dict | None) -> dict[str, Any]:
    """One page of a small table (already in memory) for an infinite-model grid: filtered, sorted, counted."""
    positions, count = page_positions(frame, request)
    return {"rowData": json_records(frame.iloc[positions]), "rowCount": count}


# --- the AE listing ----------------------------------------------------------------------------------------------


def _listing_filters(state: ViewState) -> tuple:
    return (
        state.cohort,
        state.min_grade,
        state.serious,
        state.related,
        state.window,
        state.soc,
        state.pt,
        state.basket,
    )


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def listing_positions(key: CutKey, cohort, min_grade, serious, related, window, soc, pt, basket) -> np.ndarray:
    """Rows of the cut's events the listing shows, by subject and onset: every record of the cut, narrowed by the
    filters (``window``: treatment-emergent within the risk window only)."""
    frames = key.frames
    events = frames.events
    mask = np.ones(len(events), dtype=bool)
    if cohort:
        mask &= text_equals(frames, GROUP_COLUMN, cohort)
    if min_grade is not None:
        mask &= events["GRADE"].to_numpy(dtype="float64", na_value=np.nan) >= min_grade
    if serious:
        mask &= events["SERIOUS"].to_numpy()
    if related:
        mask &= events["RELATED"].to_numpy()
    if window:
        mask &= events["TRTEMFL"].to_numpy()
    if soc:
        mask &= text_equals(frames, "SOC", soc)
    if pt:
        mask &= text_equals(frames, "PT", pt)
    if basket:
        terms = key.context.basket_map.get(basket)
        if terms is None:
            raise ValueError(f"Basket {basket!r} is not configured; choose one of {', '.join(key.context.basket_map)}.")
        mask &= basket_mask(frames, terms)
    return np.flatnonzero(mask)  # derived_events comes ordered by subject, onset date and record


def _listing_column(frames, name: str, positions: np.ndarray) -> pd.Series | None:
    """The values of grid column ``name`` at ``positions``: text columns as categoricals built from the cut's codes
    (so a filter looks at each distinct text once), dates as dates, flags as Y/N."""
    if name not in LISTING_COLUMNS or name == "FLAGS":
        return None
    source = LISTING_COLUMNS[name][1]
    if source in frames.text:
        codes, texts = frames.text[source]
        return pd.Series(pd.Categorical.from_codes(codes[positions], categories=pd.Index(texts, dtype=object)))
    values = frames.events[source].iloc[positions]
    if name in ("SERIOUS", "RELATED"):
        return pd.Series(pd.Categorical.from_codes(values.to_numpy().astype(np.int8), categories=["N", "Y"]))
    return values


def load_listing_review(key: CutKey, token: tuple | None = None) -> CutReview:
    """The review state of the listing's cut, as it is now (or as of trail row ``token``)."""
    return load_cut_review(key.context.engine, key.frames.cut.study_id, key.run_id, token, source=key)


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def _grid_positions(
    key: CutKey, filters: tuple, filter_json: str, sort_json: str, review_filter: str = ALL_RECORDS, token=None
) -> np.ndarray:
    """Listed rows after the review filter, the grid's column filters and sort; ``token`` (the review state's) is
    given when the review filter or a review column is used, so a review makes a new entry."""
    frames = key.frames
    positions = listing_positions(key, *filters)
    review = load_listing_review(key, token) if token is not None else None
    if review is not None and review_filter != ALL_RECORDS:
        positions = positions[flag_review_status(review, frames.events["AE_ID"].to_numpy()[positions], review_filter)]

    def column(name, at):
        if name in REVIEW_COLUMNS:
            if review is None:
                return None
            values = derive_review_columns(review, frames.events["AE_ID"].to_numpy()[at])[name]
            return values.astype(object).where(values.notna(), "")
        return _listing_column(frames, name, at)

    return filter_and_sort(column, positions, json.loads(filter_json), json.loads(sort_json))


def _positions(key: CutKey, state: ViewState, filter_model, sort_model, review_filter: str, review: CutReview):
    filter_json = json.dumps(filter_model or {}, sort_keys=True)
    sort_json = json.dumps(sort_model or [], sort_keys=True)
    if review_filter not in REVIEW_FILTERS:
        raise ValueError(f"review filter {review_filter!r} is not one of {', '.join(REVIEW_FILTERS)}")
    uses_review = (
        review_filter != ALL_RECORDS
        or any(name in REVIEW_COLUMNS for name in filter_model or {})
        or any((item or {}).get("colId") in REVIEW_COLUMNS for item in sort_model or [])
    )
    token = review.token if uses_review else None
    return _grid_positions(key, _listing_filters(state), filter_json, sort_json, review_filter, token)


def flags_of(row: pd.Series) -> str:
    """The data-quality and review flags of one listed record, as a short text."""
    flags = []
    if row["WINDOW_LABEL"] != "treatment-emergent":
        flags.append(f"outside window ({row['WINDOW_LABEL']})")
    if row["ASTDTF"]:
        flags.append(IMPUTATION_TEXT.get(row["ASTDTF"], f"imputed ({row['ASTDTF']})"))
    if row["GRADE_SOURCE"] == "severity":
        flags.append("grade from severity")
    elif row["GRADE_SOURCE"] == "unknown":
        flags.append("grade unknown")
    if row["UNCODED"]:
        flags.append("uncoded")
    if row["AFTER_CUTOFF"]:
        flags.append("after cutoff")
    if row["AFTER_DEATH"]:
        flags.append("after death (data query)")
    if row["RECORD_CHANGE"] in ("new", "changed"):
        flags.append(f"{row['RECORD_CHANGE']} in this cut")
    return " · ".join(flags)


FLAG_COLUMNS = ["WINDOW_LABEL", "ASTDTF", "GRADE_SOURCE", "UNCODED", "AFTER_CUTOFF", "AFTER_DEATH", "RECORD_CHANGE"]


def flags_column(rows: pd.DataFrame) -> np.ndarray:
    """:func:`flags_of` for every row; the flags take few distinct combinations, so each is written once."""
    if rows.empty:
        return np.array([], dtype=object)
    codes = rows.groupby(FLAG_COLUMNS, sort=False, dropna=False, observed=True).ngroup().to_numpy()
    first = pd.Series(np.arange(len(rows))).groupby(codes).first()
    texts = np.empty(len(first), dtype=object)
    texts[first.index.to_numpy()] = [flags_of(rows.iloc[i]) for i in first.to_numpy()]
    return texts[codes]


def listing_rows(events: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """The listing columns of the records at ``positions``."""
    rows = events.iloc[positions]
    out = pd.DataFrame({field: rows[source] for field, (_, source) in LISTING_COLUMNS.items() if source})
    out["SERIOUS"] = np.where(rows["SERIOUS"], "Y", "N")
    out["RELATED"] = np.where(rows["RELATED"], "Y", "N")
    out["FLAGS"] = flags_column(rows)
    out["AE_ID"] = rows["AE_ID"].to_numpy()
    return out


def with_review_columns(rows: pd.DataFrame, review: CutReview) -> pd.DataFrame:
    """Listing ``rows`` (with AE_ID), their :data:`REVIEW_COLUMNS` and ROW_ID (AE_ID as text: a grid's row id)."""
    columns = derive_review_columns(review, rows["AE_ID"].to_numpy())
    columns["ROW_ID"] = rows["AE_ID"].astype(str).to_numpy()
    return pd.concat([rows.reset_index(drop=True), columns], axis=1)


def listing_page(
    key: CutKey, state: ViewState, request: dict | None, review_filter: str = ALL_RECORDS
) -> dict[str, Any]:
    """One page of the listing for an infinite-model grid: at most :data:`MAX_PAGE_ROWS` rows, with their review
    status and comments, and the count."""
    request = request or {}
    review = load_listing_review(key)
    positions = _positions(key, state, request.get("filterModel"), request.get("sortModel"), review_filter, review)
    start, end = page_bounds(request)
    rows = with_review_columns(listing_rows(key.frames.events, positions[start:end]), review)
    return {"rowData": json_records(rows), "rowCount": int(len(positions))}


def listing_count(key: CutKey, state: ViewState, review_filter: str = ALL_RECORDS) -> int:
    """How many records the listing shows with the view's filters and the review filter (before grid column
    filters)."""
    if review_filter == ALL_RECORDS:
        return int(len(listing_positions(key, *_listing_filters(state))))
    return int(len(_positions(key, state, None, None, review_filter, load_listing_review(key))))


def listing_backlog(key: CutKey, state: ViewState) -> dict[str, int]:
    """Records the listing shows with the view's filters, per review status (and ``needs review``)."""
    positions = listing_positions(key, *_listing_filters(state))
    return compute_ae_backlog(load_listing_review(key), key.frames.events["AE_ID"].to_numpy()[positions])


def listing_csv(
    key: CutKey,
    state: ViewState,
    filter_model: dict | None = None,
    sort_model: list | None = None,
    review_filter: str = ALL_RECORDS,
) -> str:
    """The whole filtered listing as CSV text, with the grid's column filters and sort, headers as shown, and each
    record's review status and comments."""
    review = load_listing_review(key)
    positions = _positions(key, state, filter_model, sort_model, review_filter, review)
    rows = with_review_columns(listing_rows(key.frames.events, positions), review).drop(columns=["AE_ID", "ROW_ID"])
    headers = {field: header for field, (header, _) in LISTING_COLUMNS.items()} | REVIEW_COLUMNS
    return to_safe_csv(rows.rename(columns=headers), index=False, date_format="%Y-%m-%d")


def subject_events(key: CutKey, usubjid: str, review: CutReview | None = None) -> pd.DataFrame:
    """Every record of one subject in the cut, in listing columns, by onset; with ``review``, their
    :data:`REVIEW_COLUMNS` too."""
    positions = np.flatnonzero(text_equals(key.frames, "USUBJID", usubjid))
    rows = listing_rows(key.frames.events, positions)
    return rows if review is None else with_review_columns(rows, review)


def clear_listing_caches() -> None:
    """Forget the cached listing positions."""
    listing_positions.cache_clear()
    _grid_positions.cache_clear()
