"""What the Labs and eDISH pages and the subject's lab panel read of a cut: its :class:`LabCut`, graded once.

A cut's LB records graded with the study's criteria (:func:`safety_dash.lab_values.derive_cut_lab_values`) and the
pure functions of :mod:`safety_dash.metrics.labs` (:func:`~safety_dash.metrics.labs.compute_lab_table`,
:func:`~safety_dash.metrics.labs.compute_shift_table`, :func:`~safety_dash.metrics.labs.compute_worst_grades`,
:func:`~safety_dash.metrics.labs.flag_hys_law`), unchanged, are narrowed by :func:`build_lab_cut` to what the pages
show: the ``labs`` table, every shift table, the Hy's law screen, each subject's worst grades and a compact copy of
the records (integer codes, float32) for the box plots and the subject panel, about 30 bytes per record. The graded
frame itself is not kept.

Ingestion builds it from the records it has just loaded and writes it to the cut's read model
(:mod:`safety_dash.readmodel.labs`); :func:`load_graded_lab_cut` grades a stored cut from the database (``readmodel
build``, and a worker that finds no file). Both give the same :class:`LabCut`: its texts are coded in sorted order,
so the order in which the records arrive (the database's collation of USUBJID) changes nothing. Nothing here imports
:mod:`safety_dash.views` or :mod:`safety_dash.web`: the cohorts in ``groups`` are sorted, and the views put them in
display order.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd

from safety_dash import lab_values
from safety_dash.analysis import GROUP_COLUMN, CutContext, resolve_cut
from safety_dash.metrics.labs import (
    DIRECTIONS,
    GRADED,
    compute_lab_table,
    compute_shift_table,
    compute_worst_grades,
    flag_hys_law,
)
from safety_dash.metrics.rates import derive_safety_groups

SHIFT_COLUMNS = ["test", "direction", "group", "baseline_grade", "worst_grade", "n_subjects"]
WORST_KEEP = ["LBTESTCD", "DIRECTION", "N_ON_TREATMENT", "WORST_GRADE", "WORST_ADT", "BASELINE_GRADE"]
SLIM_COLUMNS = ["USUBJID", "LBTESTCD", "LBTEST", "ADT", "HAS_RESULT", "BASELINE", "ON_TREATMENT"]
SLIM_COLUMNS += [f"{name}{d}" for d in DIRECTIONS for name in ("CRITERION_", "ATOXDSC", "ATOXGR")]


@dataclass(frozen=True, eq=False)
class LabCut:
    """What the lab pages draw from one cut, graded once.

    - ``tests``: one row per test code (LBTESTCD upper case) with a record: TEST, NAME (its most frequent LBTEST),
      UNIT (most frequent LBSTRESU), CRITERION_H / CRITERION_L ('graded', 'not gradable', '' none), in name order.
    - ``table``: :func:`~safety_dash.metrics.labs.compute_lab_table` by cohort (groups ALL, then each cohort).
    - ``shifts``: :func:`~safety_dash.metrics.labs.compute_shift_table` of every graded test and direction, by
      cohort: columns :data:`SHIFT_COLUMNS`.
    - ``hys_law``: :func:`~safety_dash.metrics.labs.flag_hys_law` of the safety population, with GROUP (cohort).
    - ``worst``: :func:`~safety_dash.metrics.labs.compute_worst_grades` (columns :data:`WORST_KEEP`) with SUBJECT
      (position in ``subject_ids``), sorted by it; ``worst_start`` the first row of each subject.
    - ``records``: every LB record, compact: SUBJECT, TEST (position in ``tests``), VISIT (position in ``visits``,
      which are in visit order), ADT, ADY, AVAL, XULN, UNIT (position in ``units``), GRADE_H / GRADE_L (-1: none),
      ON_TREATMENT, BOXED (a safety subject's record not after the cutoff: drawn on the box plots); sorted by
      subject, test and date; ``record_start`` the first record of each subject.
    - ``subject_ids`` (sorted) and ``subject_groups`` (the cohort of a safety subject, '' outside the safety
      population); ``groups``: the cohorts of the safety population, sorted (:func:`safety_dash.views.labs.
      load_lab_cut` gives them in display order); ``units`` sorted.

    Never modify it: every view of the process shares it, and a cut opened from its read model file holds the
    columns of ``records`` and the start arrays read-only, in place in the memory-mapped file.
    """

    run_id: int
    study_id: str
    cutoff: dt.date
    window_days: int
    tests: pd.DataFrame
    table: pd.DataFrame
    shifts: pd.DataFrame
    hys_law: pd.DataFrame
    worst: pd.DataFrame
    worst_start: np.ndarray
    records: pd.DataFrame
    record_start: np.ndarray
    subject_ids: np.ndarray
    subject_groups: np.ndarray
    visits: np.ndarray
    units: np.ndarray
    groups: tuple[str, ...]

    @property
    def has_labs(self) -> bool:
        """Whether the cut holds any LB record."""
        return len(self.records) > 0

    def test_position(self, test: str | None) -> int:
        """The row of ``test`` (any case) in ``tests``; -1 when the cut has no record of it."""
        if not test:
            return -1
        found = np.flatnonzero(self.tests["TEST"].to_numpy(dtype=object) == str(test).strip().upper())
        return int(found[0]) if len(found) else -1

    def directions(self, test: str) -> list[str]:
        """The directions ('H', 'L') the criteria grade ``test`` in (not gradable ones left out)."""
        position = self.test_position(test)
        if position < 0:
            return []
        row = self.tests.iloc[position]
        return [d for d in DIRECTIONS if row[f"CRITERION_{d}"] == GRADED]

    def test_label(self, test: str, direction: str | None = None) -> str:
        """'Alanine Aminotransferase (ALT)', with ', high' / ', low' for a direction."""
        position = self.test_position(test)
        name = self.tests.iloc[position]["NAME"] if position >= 0 else str(test)
        code = str(test).upper()
        label = name if name.upper() == code else f"{name} ({code})" if name else code
        return f"{label}, {DIRECTIONS[direction]}" if direction in DIRECTIONS else label


def _safety_groups(subjects: pd.DataFrame) -> pd.Series:
    """The cohort of each safety subject, indexed by USUBJID (as the rate tables name it: '(missing)' when empty)."""
    safety = derive_safety_groups(subjects, GROUP_COLUMN)
    return pd.Series(safety["GROUP"].to_numpy(dtype=object), index=safety["USUBJID"].astype(str).str.strip())


def _text_codes(values: pd.Series, normalise=None, sort: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of ``values`` into their distinct texts ('' for missing; ``normalise`` applied to each distinct
    text, texts that become equal merged): millions of records, a few hundred texts worked on."""
    codes, uniques = pd.factorize(values, sort=False)
    texts = ["" if item is None or item != item else str(item) for item in uniques] + [""]  # NaN != NaN
    if normalise is not None:
        texts = [normalise(text) for text in texts]
    merged, distinct = pd.factorize(np.array(texts, dtype=object), sort=sort)
    result = merged[np.where(codes < 0, len(texts) - 1, codes)]
    used = np.flatnonzero(np.bincount(result, minlength=len(distinct)) > 0)  # the '' of "missing" may be unused
    position = np.zeros(len(distinct), dtype=np.int64)
    position[used] = np.arange(len(used))
    return position[result], np.asarray(distinct, dtype=object)[used]


def _most_frequent(keys: np.ndarray, coded: tuple[np.ndarray, np.ndarray], n_keys: int) -> np.ndarray:
    """Per key 0..n_keys-1, its most frequent text ('' when none) of the ``coded`` texts (:func:`_text_codes`)."""
    codes, distinct = coded
    pair, count = np.unique(keys.astype(np.int64) * len(distinct) + codes, return_counts=True)
    order = np.lexsort((-count, pair // max(len(distinct), 1)))
    first = pair[order][np.r_[True, np.diff(pair[order] // max(len(distinct), 1)) != 0]] if len(pair) else pair
    out = np.full(n_keys, "", dtype=object)
    out[first // len(distinct)] = distinct[first % len(distinct)]
    return out


def _criteria_of(test_code: np.ndarray, coded: tuple[np.ndarray, np.ndarray], n_tests: int) -> np.ndarray:
    """Per test, what the ``coded`` CRITERION_d column says: 'graded', 'not gradable' or ''."""
    codes, texts = coded
    named = texts[codes] != ""
    out = np.full(n_tests, "", dtype=object)
    out[test_code[named]] = texts[codes[named]]
    return out


def _visit_codes(values: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per record the position of its visit in the returned visit labels, which are in visit order (by VISITNUM,
    then study day). A record without a VISIT is placed by its study day: 'Week 3', 'Before day 1', '(no date)'."""
    visit_code, labels = _text_codes(values["VISIT"], str.strip)
    ady = values["ADY"].to_numpy(dtype=float, na_value=np.nan)
    no_visit = labels[visit_code] == ""
    if no_visit.any():
        week = np.where(ady >= 1, (ady - 1) // 7 + 1, np.where(ady < 1, 0, -1))[no_visit]
        week_code, weeks = pd.factorize(week, sort=True)
        names = np.array(
            ["(no date)" if w < 0 else "Before day 1" if w == 0 else f"Week {int(w)}" for w in weeks], dtype=object
        )
        codes = visit_code.copy()
        codes[no_visit] = len(labels) + week_code
        merged, distinct = pd.factorize(np.concatenate([labels, names]), sort=False)
        visit_code, labels = merged[codes], np.asarray(distinct, dtype=object)
    number_code, numbers = _text_codes(values["VISITNUM"])
    visitnum = pd.to_numeric(pd.Series(numbers), errors="coerce").to_numpy(dtype=float)[number_code]
    order = pd.DataFrame({"code": visit_code, "visitnum": visitnum, "ady": ady}).groupby("code").median()
    order = order.reindex(np.arange(len(labels)))
    order["label"] = labels
    order = order.sort_values(["visitnum", "ady", "label"], na_position="last", kind="stable")
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order.index.to_numpy()] = np.arange(len(labels))
    return rank[visit_code].astype(np.int16 if len(labels) < 2**15 else np.int32), order["label"].to_numpy(dtype=object)


def _grade_codes(values: pd.DataFrame, direction: str) -> np.ndarray:
    grade = values[f"ATOXGR{direction}"].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(grade), -1, grade).astype(np.int8)


def build_lab_cut(values: pd.DataFrame, subjects: pd.DataFrame, run_id: int, study_id: str, cutoff, window_days):
    """The :class:`LabCut` of graded ``values`` (:func:`~safety_dash.metrics.labs.derive_lab_values`, with VISIT
    and VISITNUM) and the cut's derived ``subjects`` (with COHORT_GROUP)."""
    members = _safety_groups(subjects)
    groups = tuple(sorted(members.unique()))  # the views put them in display order (dose levels by dose)
    # Each text column factorised once, its texts sorted: the codes do not depend on the order of the records.
    coded = functools.cache(lambda column: _text_codes(values[column], sort=True))
    record_subject, record_ids = coded("USUBJID")
    subject_ids = np.array(sorted(set(subjects["USUBJID"].astype(str)) | set(record_ids) - {""}), dtype=object)
    subject_groups = pd.Series(subject_ids).map(members).fillna("").to_numpy(dtype=object)
    subject = pd.Index(subject_ids).get_indexer(record_ids)[record_subject].astype(np.int32)
    test_code, test_texts = _text_codes(values["LBTESTCD"], lambda text: text.strip().upper(), sort=True)
    n_tests = len(test_texts)
    tests = pd.DataFrame(
        {
            "TEST": np.asarray(test_texts, dtype=object),
            "NAME": _most_frequent(test_code, coded("LBTEST"), n_tests),
            "UNIT": _most_frequent(test_code, coded("LBSTRESU"), n_tests),
            **{f"CRITERION_{d}": _criteria_of(test_code, coded(f"CRITERION_{d}"), n_tests) for d in DIRECTIONS},
        }
    )
    name_order = np.lexsort((tests["TEST"].to_numpy(dtype=str), tests["NAME"].str.casefold().to_numpy(dtype=str)))
    rank = np.empty(n_tests, dtype=np.int64)
    rank[name_order] = np.arange(n_tests)
    tests = tests.iloc[name_order].reset_index(drop=True)
    test_code = rank[test_code] if n_tests else test_code
    visit_code, visits = _visit_codes(values) if len(values) else (np.zeros(0, np.int16), np.zeros(0, object))
    unit_code, units = coded("LBSTRESU")
    in_safety = (subject_groups != "")[subject]
    records = pd.DataFrame(
        {
            "SUBJECT": subject,
            "TEST": test_code.astype(np.int16),
            "VISIT": visit_code,
            "ADT": values["ADT"].to_numpy(dtype="datetime64[ns]"),
            "ADY": values["ADY"].to_numpy(dtype=float, na_value=np.nan).astype(np.float32),
            "AVAL": values["AVAL"].to_numpy(dtype=float).astype(np.float32),
            "XULN": values["XULN"].to_numpy(dtype=float).astype(np.float32),
            "UNIT": unit_code.astype(np.int16),
            "GRADE_H": _grade_codes(values, "H"),
            "GRADE_L": _grade_codes(values, "L"),
            "ON_TREATMENT": values["ON_TREATMENT"].to_numpy(dtype=bool),
            "BOXED": in_safety & ~values["AFTER_CUTOFF"].to_numpy(dtype=bool),
        }
    )
    adt = records["ADT"].to_numpy().view(np.int64)
    order = np.lexsort((adt, records["TEST"].to_numpy(), subject))
    records = records.iloc[order].reset_index(drop=True)
    record_start = np.searchsorted(records["SUBJECT"].to_numpy(), np.arange(len(subject_ids) + 1))

    if len(values):
        table = compute_lab_table(values, subjects, GROUP_COLUMN)
        worst = compute_worst_grades(values)
        hys = flag_hys_law(values)
        shifts = _shift_tables(values, coded, test_code, tests, subjects)
    else:
        table = pd.DataFrame(columns=["group", "test", "test_name"])
        worst = pd.DataFrame(columns=["USUBJID", *WORST_KEEP])
        hys = pd.DataFrame(columns=["USUBJID", "PEAK_ALT_AST_XULN", "PEAK_BILI_XULN", "HYS_LAW"])
        shifts = pd.DataFrame(columns=SHIFT_COLUMNS)
    hys = hys.assign(GROUP=hys["USUBJID"].astype(str).map(members)).dropna(subset=["GROUP"]).reset_index(drop=True)
    worst_subject = pd.Index(subject_ids).get_indexer(worst["USUBJID"].astype(str))
    worst = worst[WORST_KEEP].assign(SUBJECT=worst_subject).iloc[np.argsort(worst_subject, kind="stable")]
    worst = worst.reset_index(drop=True)
    worst_start = np.searchsorted(worst["SUBJECT"].to_numpy(), np.arange(len(subject_ids) + 1))
    return LabCut(
        run_id=int(run_id),
        study_id=str(study_id),
        cutoff=cutoff,
        window_days=int(window_days),
        tests=tests,
        table=table,
        shifts=shifts,
        hys_law=hys,
        worst=worst,
        worst_start=worst_start,
        records=records,
        record_start=record_start,
        subject_ids=subject_ids,
        subject_groups=subject_groups,
        visits=visits,
        units=units,
        groups=groups,
    )


def _shift_tables(values: pd.DataFrame, coded, test_code: np.ndarray, tests: pd.DataFrame, subjects: pd.DataFrame):
    """:func:`compute_shift_table` of every test and direction the criteria grade, each on its test's records (the
    text columns passed as categoricals: the same texts, factorised once instead of once per test)."""
    graded = {position: [d for d in DIRECTIONS if getattr(row, f"CRITERION_{d}") == GRADED]
              for position, row in enumerate(tests.itertuples(index=False))}  # fmt: skip
    graded = {position: directions for position, directions in graded.items() if directions}
    rows = np.flatnonzero(np.isin(test_code, list(graded)))
    rows = rows[np.argsort(test_code[rows], kind="stable")]
    slim = {}
    for column in SLIM_COLUMNS:
        if column == "LBTESTCD":  # the codes stripped and upper case, as the metrics compare them
            slim[column] = pd.Categorical.from_codes(test_code[rows], tests["TEST"])
        elif values[column].dtype == object:
            codes, texts = coded(column)
            slim[column] = pd.Categorical.from_codes(codes[rows], texts)
        else:
            slim[column] = values[column].iloc[rows].reset_index(drop=True)  # Int64 grades stay Int64
    slim = pd.DataFrame(slim)
    bounds = np.searchsorted(test_code[rows], np.arange(len(tests) + 1))
    parts = [pd.DataFrame(columns=SHIFT_COLUMNS)]
    for position, directions in graded.items():  # one slice per test (tens), not per record
        records = slim.iloc[bounds[position] : bounds[position + 1]]
        test = tests.iloc[position]["TEST"]
        for direction in directions:
            shift = compute_shift_table(records, test, direction, subjects, GROUP_COLUMN)
            parts.append(shift.assign(test=test, direction=direction)[SHIFT_COLUMNS])
    return pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)


def compute_lab_cut(lb: pd.DataFrame, subjects: pd.DataFrame, cut: CutContext) -> LabCut:
    """The :class:`LabCut` of ``cut`` from its LB records ``lb`` (in the shape of :func:`safety_dash.lab_values.
    load_cut_lab_records`) and its derived ``subjects`` (of :func:`safety_dash.analysis.load_derived_subjects`, at
    least the columns :data:`safety_dash.lab_values.LAB_SUBJECT_COLUMNS`); reads nothing."""
    values = lab_values.derive_cut_lab_values(lb, subjects, cut)
    return build_lab_cut(values, subjects, cut.run_id, cut.study_id, cut.cutoff, cut.window_days)


def load_graded_lab_cut(bind, run_id: int) -> LabCut:
    """The :class:`LabCut` of the stored cut ``run_id``, graded from the database
    (:func:`safety_dash.lab_values.compute_cut_lab_values`): 4,160,000 LB records took 141 s and 5 GB, which is why
    ingestion writes it to the read model and a web worker opens that instead."""
    cut = resolve_cut(bind, None, int(run_id))
    values, subjects = lab_values.compute_cut_lab_values(bind, cut)
    return build_lab_cut(values, subjects, cut.run_id, cut.study_id, cut.cutoff, cut.window_days)
