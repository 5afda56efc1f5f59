"""Laboratory values of a stored data cut: the cut's LB records graded with the study's criteria (DOMAIN.md §8).

The same functions feed the ``labs`` command, the Labs and eDISH pages, the lab alerts and the committee pack:
:func:`compute_cut_lab_values` reads the LB versions of the cut and the cut's stored subject derivations and runs
:func:`~safety_dash.metrics.labs.derive_lab_values` with the CTCAE v5.0 criteria kept as data
(``safety_dash/metrics/lab_criteria_ctcae_v5.csv``). A study without LB has no lab values (an empty frame).

Ingestion grades a new cut from the records it has just loaded instead (:func:`prepare_lab_records` and
:func:`prepare_lab_subjects` give them the shape the database returns, :func:`derive_cut_lab_values` grades them)
and writes what the lab pages read to the cut's read model (:mod:`safety_dash.readmodel.labs`).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from safety_dash.analysis import GROUP_COLUMN, CutContext, load_derived_subjects
from safety_dash.db.queries import run_query_chunks
from safety_dash.metrics.labs import (
    CRITERIA_FILE,
    compute_lab_table,
    derive_lab_values,
    flag_hys_law,
    parse_lab_criteria,
)

CHUNK_ROWS = 200_000
LB_TEXT_COLUMNS = ("USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSTRESC", "LBSTRESU", "LBNRIND", "LBBLFL",
                   "LBLOBXFL", "VISITNUM", "VISIT", "LBDTC")  # fmt: skip
LB_NUMBER_COLUMNS = ("LBSTRESN", "LBSTNRLO", "LBSTNRHI")
# The columns of :func:`load_cut_lab_records`, in its order (the ``cut_lab_records`` query's, upper case).
LB_RECORD_COLUMNS = ("LB_ID", "RECORD_KEY", "USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT", "LBSTRESC", "LBSTRESN",
                     "LBSTRESU", "LBSTNRLO", "LBSTNRHI", "LBNRIND", "LBBLFL", "LBLOBXFL", "VISITNUM", "VISIT", "LBDTC",
                     "VALID_FROM_RUN", "CHANGE")  # fmt: skip
# The subject columns grading reads (of :func:`~safety_dash.analysis.load_derived_subjects`): the derivations.
LAB_SUBJECT_COLUMNS = ("USUBJID", GROUP_COLUMN, "TRTSDT", "TRTEDT", "DTHDT", "SAFFL", "WINDOW_END", "DAYS_AT_RISK",
                       "N_DOSES")  # fmt: skip


@functools.cache
def _criteria_text() -> pd.DataFrame:
    criteria = pd.read_csv(CRITERIA_FILE, dtype=str, keep_default_na=False)
    parse_lab_criteria(criteria)  # a broken file fails here, naming its row
    return criteria


def load_lab_criteria() -> pd.DataFrame:
    """The CTCAE v5.0 lab grading criteria as text, as :func:`derive_lab_values` takes them (read once)."""
    return _criteria_text().copy()


def load_cut_lab_records(bind, cut: CutContext, chunk_rows: int = CHUNK_ROWS) -> pd.DataFrame:
    """The LB records of the cut in SDTM naming: text as delivered ('' for missing), LBSTRESN / LBSTNRLO /
    LBSTNRHI as floats, plus LB_ID (the version id), RECORD_KEY and VALID_FROM_RUN.

    Read in chunks of ``chunk_rows``, and each text that repeats (a test code, a unit, a visit, a subject) is held
    once for the whole cut: 4,000,000 records read in one piece took ~7.5 GB in a web worker.
    """
    shared: dict[str, dict[str, str]] = {column: {} for column in (*LB_TEXT_COLUMNS, "CHANGE")}
    parts = []
    for chunk in run_query_chunks(bind, "cut_lab_records", chunk_rows, study_id=cut.study_id, run_id=cut.run_id):
        chunk = chunk.rename(columns=str.upper).rename(columns={"ID": "LB_ID"})
        for column, texts in shared.items():
            chunk[column] = _shared_texts(chunk[column], texts)
        for column in LB_NUMBER_COLUMNS:
            chunk[column] = pd.to_numeric(chunk[column], errors="coerce").astype(float)
        parts.append(chunk)
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]


def prepare_lab_records(loaded: pd.DataFrame) -> pd.DataFrame:
    """The LB records of a cut as loading returns them (``LoadedCut.frames["lb"]``: this extract's rows with ID,
    RECORD_KEY, VALID_FROM_RUN and CHANGE, plus the kept versions of quarantined rows) in exactly the shape
    :func:`load_cut_lab_records` reads them back once they are stored: its columns in its order, text ('' for
    missing), floats, and its row order (``ORDER BY usubjid, id``, USUBJID in code point order, as SQLite and a
    C collation sort). Ingestion grades these instead of reading back the records it has just written (a test holds
    the two equal)."""
    subject_codes, _ = pd.factorize(loaded["USUBJID"].fillna("").astype(str), sort=True)
    ids = loaded["ID"].to_numpy(dtype=np.int64)
    order = np.lexsort((ids, subject_codes))
    in_order = bool(len(order) == 0 or (np.diff(order) > 0).all())  # an extract sorted by subject usually is
    shared: dict[str, dict[str, str]] = {}
    columns = {}
    for column in LB_RECORD_COLUMNS:
        source = {"LB_ID": "ID"}.get(column, column)
        values = loaded[source] if in_order else loaded[source].iloc[order]
        if column in ("LB_ID", "VALID_FROM_RUN"):
            columns[column] = values.to_numpy(dtype=np.int64)
        elif column in LB_NUMBER_COLUMNS:
            columns[column] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        elif column == "RECORD_KEY":
            columns[column] = values.astype(str).to_numpy(dtype=object)
        else:
            columns[column] = _shared_texts(values, shared.setdefault(column, {}))
    return pd.DataFrame(columns)


def prepare_lab_subjects(subject_rows: pd.DataFrame) -> pd.DataFrame:
    """The derived subjects of a cut from its ``derived_subjects`` rows as ingestion stores them
    (:func:`safety_dash.analysis.stored_subject_rows`), in the shape :func:`~safety_dash.analysis.
    load_derived_subjects` reads them back: the columns :data:`LAB_SUBJECT_COLUMNS` (all grading reads), same types,
    sorted by USUBJID. Ingestion grades against these (a test holds them equal to the stored ones)."""
    rows = subject_rows.iloc[np.argsort(subject_rows["usubjid"].to_numpy(dtype=str), kind="stable")]
    frame = pd.DataFrame(
        {
            "USUBJID": rows["usubjid"].fillna("").astype(str).to_numpy(dtype=object),
            GROUP_COLUMN: rows["cohort"].astype(object).where(rows["cohort"].notna(), "").to_numpy(dtype=object),
            **{name: pd.to_datetime(rows[name.lower()]).to_numpy(dtype="datetime64[ns]")
               for name in ("TRTSDT", "TRTEDT", "DTHDT")},
            "SAFFL": rows["saffl"].astype(bool).to_numpy(),
            "WINDOW_END": pd.to_datetime(rows["window_end"]).to_numpy(dtype="datetime64[ns]"),
            "DAYS_AT_RISK": pd.array(rows["days_at_risk"], dtype="Int64"),
            "N_DOSES": rows["n_doses"].to_numpy(dtype=np.int64),
        }
    )  # fmt: skip
    return frame[list(LAB_SUBJECT_COLUMNS)]


def _shared_texts(values: pd.Series, shared: dict[str, str]) -> np.ndarray:
    """``values`` as text ('' for missing) in an object array whose equal texts are one Python string; a column
    that repeats (fewer distinct texts than a tenth of the chunk) shares them across chunks through ``shared``."""
    codes, uniques = pd.factorize(values.fillna("").astype(str), sort=False)
    if len(uniques) <= len(values) // 10:
        uniques = [shared.setdefault(text, text) for text in uniques]
    texts = np.array(uniques, dtype=object)
    return texts[codes] if len(texts) else np.full(len(values), "", dtype=object)


def compute_cut_lab_values(bind, cut: CutContext) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(values, subjects): every LB record of the cut graded (:func:`derive_lab_values`, with LB_ID, VISIT,
    VISITNUM and VALID_FROM_RUN carried over) and the cut's derived subjects (with COHORT_GROUP)."""
    subjects = load_derived_subjects(bind, cut.run_id)
    return derive_cut_lab_values(load_cut_lab_records(bind, cut), subjects, cut), subjects


def derive_cut_lab_values(lb: pd.DataFrame, subjects: pd.DataFrame, cut: CutContext) -> pd.DataFrame:
    """The LB records ``lb`` of ``cut`` (:func:`load_cut_lab_records`, or :func:`prepare_lab_records` of the records
    just loaded) graded against its derived ``subjects`` (:func:`derive_lab_values` with the cut's cutoff and
    window), with LB_ID, VISIT, VISITNUM and VALID_FROM_RUN carried over."""
    values = derive_lab_values(lb, subjects, cut.cutoff, cut.window_days, load_lab_criteria())
    for column in ("LB_ID", "VISIT", "VISITNUM", "VALID_FROM_RUN"):
        values[column] = lb[column].to_numpy()
    return values


def compute_cut_lab_table(bind, cut: CutContext, group: str | None = None, min_grade: int | None = None):
    """The ``labs --by test`` table of the cut (:func:`~safety_dash.metrics.labs.compute_lab_table`), grouped by
    ``group`` (a DM column) or the study's cohort; ValueError with a sentence for an unknown column."""
    values, subjects = compute_cut_lab_values(bind, cut)
    group_col = GROUP_COLUMN if group is None else group.upper()
    if group_col not in subjects.columns:
        raise ValueError(f"--group {group} is not a DM column of study {cut.study_id}")
    return compute_lab_table(values, subjects, group_col, min_grade)


def compute_cut_hys_law(bind, cut: CutContext) -> pd.DataFrame:
    """Per subject with liver tests in the cut: peaks of ALT / AST / bilirubin ×ULN and the potential Hy's law
    flag (:func:`~safety_dash.metrics.labs.flag_hys_law`), with the subject's COHORT_GROUP."""
    values, subjects = compute_cut_lab_values(bind, cut)
    cases = flag_hys_law(values)
    return cases.merge(subjects[["USUBJID", GROUP_COLUMN]], on="USUBJID", how="left")
