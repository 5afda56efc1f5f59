"""The numbers of the Labs and eDISH pages and of the subject profile's lab panel (DOMAIN.md §8).

Every grade, worst grade, shift count and potential Hy's law case is the output of
:func:`safety_dash.lab_values.derive_cut_lab_values` and the pure functions of :mod:`safety_dash.metrics.labs`
(:func:`~safety_dash.metrics.labs.compute_lab_table`, :func:`~safety_dash.metrics.labs.compute_shift_table`,
:func:`~safety_dash.metrics.labs.compute_worst_grades`, :func:`~safety_dash.metrics.labs.flag_hys_law`),
unchanged, kept in the cut's :class:`~safety_dash.readmodel.labcut.LabCut`; this module narrows them to a cohort,
orders them and keeps them small enough to draw.

A cut's :class:`LabCut` is opened once per process and cut (:func:`load_lab_cut`, keyed by engine, run id and
derivation time, one loader per cut) from the cut's lab read model, which ingestion writes
(:mod:`safety_dash.readmodel.labs`: memory-mapped, shared by every worker, ready in well under a second). A cut
without one (loaded before it existed, or its write failed) is graded from the database, as before (141 s and 5 GB
for 4,160,000 LB records), and the log names the command that writes it. Nothing here imports
:mod:`safety_dash.web`.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd

from safety_dash.metrics.labs import DIRECTIONS, GRADED, TOLERANCE
from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.readmodel.cache import open_or_read
from safety_dash.readmodel.labcut import LabCut, load_graded_lab_cut
from safety_dash.readmodel.labs import open_lab_cut
from safety_dash.views.ordering import order_groups

LAB_CACHE_SIZE = 3  # cuts whose lab values a process holds: the current one, the one before, a shared link's
RESULT_CACHE_SIZE = 128
DIRECTION_CODES = {"high": "H", "low": "L"}  # the address's words -> the metrics' codes
DIRECTION_WORDS = {code: word for word, code in DIRECTION_CODES.items()}
HYS_LAW_X, HYS_LAW_Y = 3.0, 2.0  # eDISH lines: ALT or AST >= 3 x ULN, total bilirubin >= 2 x ULN (FDA 2009)
QUADRANTS = ("Potential Hy's law range", "Temple's corollary", "Hyperbilirubinaemia", "Normal range")
MAX_EDISH_POINTS = 3000  # subjects drawn one by one on the eDISH plot; above, the normal range is sampled
MAX_VISITS = 40  # visits on the box plot's axis at most
MIN_VISIT_SHARE = 0.10  # a visit is drawn when it holds this share of the subjects of the test's busiest visit
BOX_POINT_GRADE = 2  # values of this grade or more are drawn one by one on the box plot (they pass 3 x ULN for ALT)
MAX_BOX_POINTS = 600  # of them, the most extreme


def _read_lab_cut(bind, run_id: int) -> LabCut:
    """The :class:`LabCut` of cut ``run_id`` from its lab read model file, else graded from the database (logged)."""
    return open_or_read(bind, run_id, "lab read model", open_lab_cut,
                        lambda bind, cut: load_graded_lab_cut(bind, cut.run_id),
                        "grading its LB records from the database (minutes and gigabytes for a large cut)")  # fmt: skip


@functools.lru_cache(maxsize=LAB_CACHE_SIZE)
def _load_lab_cut(bind, run_id: int, derived_at: str) -> LabCut:
    lab = _read_lab_cut(bind, run_id)
    # The read model keeps the cohorts sorted; the pages show them in dose order (readmodel stands below views).
    return dataclasses.replace(lab, groups=tuple(order_groups(lab.groups)))


_LOCKS_GUARD = threading.Lock()
_LOAD_LOCKS: dict[tuple, threading.Lock] = {}


def load_lab_cut(bind, run_id: int, derived_at: str) -> LabCut:
    """The :class:`LabCut` of cut ``run_id``, opened once per process and cut from its lab read model (graded from
    the database when it has none); ``derived_at``, the time the cut's derivations were written, keys the cache: a
    re-derived cut is read again. Requests arriving while a cut is read wait for it instead of reading it again."""
    with _LOCKS_GUARD:
        lock = _LOAD_LOCKS.setdefault((bind, int(run_id), derived_at), threading.Lock())
    with lock:
        return _load_lab_cut(bind, int(run_id), derived_at)


# --- the Labs page ---------------------------------------------------------------------------------------------


def lab_test_options(lab: LabCut) -> list[dict[str, str]]:
    """Choices of the test picker: every test of the cut by name, graded ones marked."""
    options = []
    for row in lab.tests.itertuples(index=False):
        graded = [DIRECTIONS[d] for d in DIRECTIONS if getattr(row, f"CRITERION_{d}") == GRADED]
        note = f" · CTCAE {' and '.join(graded)}" if graded else ""
        options.append({"label": f"{lab.test_label(row.TEST)}{note}", "value": row.TEST})
    return options


def choose_lab_test(
    lab: LabCut, test: str | None, direction: str | None, cohort: str | None = None, min_grade: int | None = None
) -> tuple[str | None, str | None]:
    """The test and direction ('H', 'L', or None when the test is not graded) shown for the address's ``test`` and
    ``direction`` ('high' / 'low'): the test asked for when the cut has it, in the direction asked for when the
    criteria grade it so, else its first graded one. Without a test (or one the cut does not have): the first row
    of the worst-grade view of ``cohort`` and ``min_grade`` (the test with the most subjects at grade 3 or more),
    else of the cohort, else the first test by name. (None, None) when the cut has no laboratory data."""
    if not lab.has_labs:
        return None, None
    code = DIRECTION_CODES.get(direction or "")
    if lab.test_position(test) < 0:
        first = load_worst_grade_view(lab, cohort, min_grade)
        first = first if len(first) else load_worst_grade_view(lab, cohort, None)
        if len(first):
            test, code = first.iloc[0]["test"], code or first.iloc[0]["direction"]
        else:
            test = lab.tests.iloc[0]["TEST"]
    test = str(test).strip().upper()
    graded = lab.directions(test)
    return test, code if code in graded else (graded[0] if graded else None)


def load_worst_grade_view(lab: LabCut, cohort: str | None, min_grade: int | None) -> pd.DataFrame:
    """The ``labs`` table rows of ``cohort`` (ALL when None) with ``direction`` ('H', 'L') and ``label``, the tests
    with the most subjects at grade >= 3 first (then by worst grades, then by name). ``min_grade`` (1-5) keeps the
    tests and directions where a subject of that group reached it (laboratory grades go up to 4: 5 keeps none)."""
    rows = lab.table.loc[lab.table["group"] == (cohort or ALL_GROUP)].copy() if len(lab.table) else lab.table.copy()
    if rows.empty:  # no laboratory data, or a cohort the cut does not have
        return rows.assign(direction=pd.Series(dtype=object), label=pd.Series(dtype=object)).reset_index(drop=True)
    words = {f" ({word})": code for code, word in DIRECTIONS.items()}  # compute_lab_table names 'Potassium (low)'
    rows["direction"] = [next((c for w, c in words.items() if name.endswith(w)), "") for name in rows["test_name"]]
    rows["label"] = [lab.test_label(t, d) for t, d in zip(rows["test"], rows["direction"], strict=True)]
    if min_grade:
        columns = [f"n_worst_grade_{k}" for k in range(int(min_grade), 5)]
        reached = rows[columns].fillna(0).sum(axis=1) > 0 if columns else pd.Series(False, index=rows.index)
        rows = rows.loc[reached]
    keys = ["n_grade_3_or_more", "n_worst_grade_4", "n_worst_grade_3", "n_worst_grade_2", "n_worst_grade_1"]
    order = rows[keys].astype("float64").fillna(-1).mul(-1)
    order["name"] = rows["label"].str.casefold()
    rows = rows.iloc[np.lexsort([order[c].to_numpy() for c in ["name", *keys[::-1]]])]
    return rows.reset_index(drop=True)


def load_shift(lab: LabCut, test: str, direction: str, group: str | None) -> pd.DataFrame:
    """The shift table of ``test`` in ``direction`` for ``group`` (a cohort; ALL when None): baseline_grade,
    worst_grade (NA: none), n_subjects, every cell; empty when the criteria do not grade the test that way."""
    shifts = lab.shifts
    found = (shifts["test"] == str(test).upper()) & (shifts["direction"] == direction)
    found &= shifts["group"] == (group or ALL_GROUP)
    return shifts.loc[found, ["baseline_grade", "worst_grade", "n_subjects"]].reset_index(drop=True)


def load_worst_grade_distribution(lab: LabCut, test: str, direction: str, cohort: str | None) -> pd.DataFrame:
    """Subjects with an on-treatment result of ``test`` by worst on-treatment grade in ``direction``, per group:
    ALL then each cohort (only ``cohort`` when given). Columns group, grade (0-4; NA: no graded value), n_subjects,
    n_with_value (of the group), pct (of n_with_value). The shift table summed over the baseline grades."""
    shifts = lab.shifts.loc[(lab.shifts["test"] == str(test).upper()) & (lab.shifts["direction"] == direction)]
    if cohort:
        shifts = shifts.loc[shifts["group"] == cohort]
    if shifts.empty:
        return pd.DataFrame(columns=["group", "grade", "n_subjects", "n_with_value", "pct"])
    counts = shifts.groupby(["group", "worst_grade"], dropna=False, sort=False)["n_subjects"].sum().reset_index()
    counts = counts.rename(columns={"worst_grade": "grade"})
    counts["n_with_value"] = counts.groupby("group")["n_subjects"].transform("sum")
    with np.errstate(divide="ignore", invalid="ignore"):
        counts["pct"] = np.where(counts["n_with_value"] > 0, 100.0 * counts["n_subjects"] / counts["n_with_value"], 0.0)
    rank = {g: i for i, g in enumerate(order_groups(counts["group"]))}
    counts["_rank"] = counts["group"].map(rank)
    return counts.sort_values(["_rank"], kind="stable").drop(columns="_rank").reset_index(drop=True)


@dataclass(frozen=True)
class VisitBoxes:
    """×ULN of one test by visit and cohort: box statistics, grade >= 2 values as points, what was left out."""

    boxes: pd.DataFrame  # VISIT (label), VISIT_ORDER, GROUP, N, P05, Q1, MEDIAN, Q3, P95
    points: pd.DataFrame  # USUBJID, GROUP, VISIT, XULN, AVAL, UNIT, GRADE, ADT
    n_points_total: int
    n_visits_total: int


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_visit_boxes(bind, run_id: int, derived_at: str, test: str, direction, cohort) -> VisitBoxes:
    """×ULN of ``test`` by visit for each cohort (only ``cohort`` when given): every record of a safety subject up to
    the cutoff with a ×ULN. Visits holding at least :data:`MIN_VISIT_SHARE` of the subjects of the test's busiest
    visit are drawn (at most :data:`MAX_VISITS`, the busiest), in visit order; boxes: quartiles, whiskers at the 5th
    and 95th percentiles. Points: values of grade >= :data:`BOX_POINT_GRADE` in ``direction``, the most extreme
    :data:`MAX_BOX_POINTS`."""
    lab = load_lab_cut(bind, run_id, derived_at)
    records = lab.records
    rows = np.flatnonzero((records["TEST"].to_numpy() == lab.test_position(test)) & records["BOXED"].to_numpy())
    subject = records["SUBJECT"].to_numpy()[rows]
    group, xuln = lab.subject_groups[subject], records["XULN"].to_numpy()[rows].astype(float)
    keep = (xuln > 0) & (group == cohort if cohort else True)
    rows, subject, group, xuln = rows[keep], subject[keep], group[keep], xuln[keep]
    visit = records["VISIT"].to_numpy()[rows]
    frame = pd.DataFrame({"VISIT_ORDER": visit, "GROUP": group, "XULN": xuln, "SUBJECT": subject})
    per_visit = frame.groupby("VISIT_ORDER")["SUBJECT"].nunique()
    shown = per_visit.loc[per_visit >= MIN_VISIT_SHARE * per_visit.max()] if len(per_visit) else per_visit
    shown = shown.sort_values(ascending=False, kind="stable").head(MAX_VISITS).sort_index()
    drawn = np.isin(visit, shown.index.to_numpy())
    quantiles = {"P05": 0.05, "Q1": 0.25, "MEDIAN": 0.5, "Q3": 0.75, "P95": 0.95}
    grouped = frame.loc[drawn].groupby(["VISIT_ORDER", "GROUP"])["XULN"]
    boxes = pd.DataFrame({name: grouped.quantile(q) for name, q in quantiles.items()})
    boxes.insert(0, "N", grouped.size())
    boxes = boxes.reset_index()
    boxes.insert(0, "VISIT", lab.visits[boxes["VISIT_ORDER"].to_numpy(dtype=np.int64)] if len(boxes) else [])

    points = pd.DataFrame(columns=["USUBJID", "GROUP", "VISIT", "XULN", "AVAL", "UNIT", "GRADE", "ADT"])
    n_points = 0
    if direction in DIRECTIONS:
        grade = records[f"GRADE_{direction}"].to_numpy()[rows]
        high = np.flatnonzero((grade >= BOX_POINT_GRADE) & drawn)
        n_points = len(high)
        extreme = xuln[high] if direction == "H" else -xuln[high]
        high = high[np.argsort(-extreme, kind="stable")][:MAX_BOX_POINTS]
        picked = rows[high]
        points = pd.DataFrame(
            {
                "USUBJID": lab.subject_ids[subject[high]],
                "GROUP": group[high],
                "VISIT": lab.visits[visit[high].astype(np.int64)],
                "XULN": xuln[high],
                "AVAL": records["AVAL"].to_numpy()[picked].astype(float),
                "UNIT": lab.units[records["UNIT"].to_numpy()[picked].astype(np.int64)],
                "GRADE": grade[high],
                "ADT": records["ADT"].to_numpy()[picked],
            }
        )
    return VisitBoxes(boxes, points, n_points, len(per_visit))


# --- the eDISH page ---------------------------------------------------------------------------------------------


def quadrant_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The eDISH quadrant (an index into :data:`QUADRANTS`) of peak ALT-or-AST ×ULN ``x`` and peak bilirubin ×ULN
    ``y``; on a line counts as above it (3 × ULN exactly qualifies, to 15 significant digits, as in the Hy's law
    screen)."""
    right = x >= HYS_LAW_X * (1 - TOLERANCE)
    upper = y >= HYS_LAW_Y * (1 - TOLERANCE)
    return np.select([right & upper, right, upper], [0, 1, 2], 3)


@dataclass(frozen=True)
class Edish:
    """The eDISH plot of a population: the subjects drawn, the potential Hy's law cases and the quadrant counts."""

    points: pd.DataFrame  # USUBJID, GROUP, X, Y, HYS_LAW, QUADRANT (drawn subjects)
    cases: pd.DataFrame  # the potential Hy's law cases (flag_hys_law columns and GROUP), by subject
    quadrants: pd.DataFrame  # group, then one column per quadrant and "not placed": subjects
    n_placed: int  # subjects with both peaks (> 0): on the plot, drawn or not
    n_screened: int  # subjects with an on-treatment ALT, AST or bilirubin x ULN


def load_edish(lab: LabCut, cohort: str | None, max_points: int = MAX_EDISH_POINTS) -> Edish:
    """Each safety subject's peak on-treatment ALT-or-AST ×ULN against peak bilirubin ×ULN (of ``cohort`` when
    given), from :func:`~safety_dash.metrics.labs.flag_hys_law`. Every subject outside the normal range is drawn
    (the potential Hy's law cases first); when more than ``max_points`` subjects have both peaks, the normal range
    is a fixed random sample of its subjects (the counts use every subject)."""
    hys = lab.hys_law
    if cohort:
        hys = hys.loc[hys["GROUP"] == cohort]
    x = hys["PEAK_ALT_AST_XULN"].to_numpy(dtype=float)
    y = hys["PEAK_BILI_XULN"].to_numpy(dtype=float)
    placed = (x > 0) & (y > 0)  # NaN (not measured) compares False
    quadrant = np.where(placed, quadrant_of(np.nan_to_num(x), np.nan_to_num(y)), -1)
    is_case = hys["HYS_LAW"].to_numpy(dtype=bool)
    priority = np.where(is_case, 0, np.where(quadrant == 3, 2, 1))
    shuffle = np.random.default_rng(1706).permutation(len(hys))  # a fixed sample: the same points on every call
    order = np.lexsort((shuffle, priority))
    drawn = order[placed[order]][:max_points]
    drawn = np.sort(drawn)
    points = pd.DataFrame(
        {"USUBJID": hys["USUBJID"].to_numpy(dtype=object)[drawn], "GROUP": hys["GROUP"].to_numpy(dtype=object)[drawn],
         "X": x[drawn], "Y": y[drawn], "HYS_LAW": is_case[drawn], "QUADRANT": quadrant[drawn]}
    )  # fmt: skip
    groups = [cohort] if cohort else [ALL_GROUP, *lab.groups]
    counts = []
    for group in groups:
        member = np.ones(len(hys), bool) if group == ALL_GROUP else hys["GROUP"].to_numpy(dtype=object) == group
        row = {"group": group}
        row |= {name: int((member & (quadrant == k)).sum()) for k, name in enumerate(QUADRANTS)}
        row["not placed"] = int((member & ~placed).sum())
        counts.append(row)
    cases = hys.loc[is_case].reset_index(drop=True)
    return Edish(points, cases, pd.DataFrame(counts), int(placed.sum()), len(hys))


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_cut_edish(bind, run_id: int, derived_at: str, cohort: str | None) -> Edish:
    """:func:`load_edish` of cut ``run_id`` (:func:`load_lab_cut`) for ``cohort``, cached per cut and cohort."""
    return load_edish(load_lab_cut(bind, run_id, derived_at), cohort)


# --- the subject's lab panel ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubjectLabs:
    """One subject's lab values: records with a date, worst grades, and the Hy's law screen's row (or None)."""

    records: pd.DataFrame  # TEST, NAME, ADT, ADY, AVAL, UNIT, XULN, GRADE_H, GRADE_L, ON_TREATMENT
    worst: pd.DataFrame  # TEST, NAME, DIRECTION, BASELINE_GRADE, WORST_GRADE, WORST_ADT (worst grade >= 1 only)
    hys_law: pd.Series | None
    n_undated: int


def load_subject_labs(lab: LabCut, usubjid: str) -> SubjectLabs:
    """The lab records of ``usubjid`` in time order (records without a complete date counted, not returned), the
    tests whose worst on-treatment grade is 1 or more, and the subject's row of the Hy's law screen."""
    found = np.searchsorted(lab.subject_ids, usubjid) if len(lab.subject_ids) else 0
    known = found < len(lab.subject_ids) and lab.subject_ids[found] == usubjid
    names = lab.tests["NAME"].to_numpy(dtype=object)
    codes = lab.tests["TEST"].to_numpy(dtype=object)
    if not known:
        empty = pd.DataFrame(columns=["TEST", "NAME", "ADT", "ADY", "AVAL", "UNIT", "XULN", "GRADE_H", "GRADE_L"])
        return SubjectLabs(empty, pd.DataFrame(columns=["TEST", "NAME", "DIRECTION", "WORST_GRADE"]), None, 0)
    part = lab.records.iloc[lab.record_start[found] : lab.record_start[found + 1]]
    dated = part["ADT"].notna().to_numpy()
    records = part.loc[dated].drop(columns=["SUBJECT", "VISIT", "BOXED"]).copy()
    test = records["TEST"].to_numpy(dtype=np.int64)
    records["TEST"], records["NAME"] = codes[test], names[test]
    records["UNIT"] = lab.units[records["UNIT"].to_numpy(dtype=np.int64)]
    worst = lab.worst.iloc[lab.worst_start[found] : lab.worst_start[found + 1]]
    worst = worst.loc[worst["WORST_GRADE"].fillna(0) >= 1].rename(columns={"LBTESTCD": "TEST"})
    worst = worst.assign(NAME=[names[lab.test_position(t)] for t in worst["TEST"]])
    worst = worst.sort_values(["WORST_GRADE", "TEST"], ascending=[False, True], kind="stable").reset_index(drop=True)
    hys = lab.hys_law.loc[lab.hys_law["USUBJID"] == usubjid]
    return SubjectLabs(records.reset_index(drop=True), worst, None if hys.empty else hys.iloc[0], int((~dated).sum()))


def clear_lab_caches() -> None:
    """Forget every cached lab cut and box plot (tests, and after deleting data)."""
    for function in (_load_lab_cut, load_visit_boxes, load_cut_edish):
        function.cache_clear()
