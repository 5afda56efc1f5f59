"""The derived frames of one cut as the pages count with them, and how they are put together.

A cut's frames are assembled from flat columns (:class:`CutColumns`): numbers in NumPy arrays and each text column
as integer codes into its distinct texts. The database path (:func:`read_cut_columns`) and the read model file
(:mod:`safety_dash.readmodel.files`) both produce those columns, and :func:`assemble_frames` turns either into the
same :class:`CutFrames`, so a page shows the same numbers whichever it was read from. Assembling copies nothing it
does not have to: columns over a memory-mapped file stay in the operating system's page cache, shared by every
worker that opens the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from safety_dash.db.queries import run_query
from safety_dash.readmodel.cuts import CutInfo

GROUP_COLUMN = "COHORT_GROUP"  # the name safety_dash.analysis gives the study's grouping column
CHUNK_ROWS = 100_000

TextCodes = dict[str, tuple[np.ndarray, np.ndarray]]  # column -> (codes per row, distinct texts)

# Text columns of the listing, read from derived_events and the AE record: database column -> frame column.
EVENT_TEXT_COLUMNS = {
    "window_label": "WINDOW_LABEL",
    "grade_source": "GRADE_SOURCE",
    "record_change": "RECORD_CHANGE",
    "aeseq": "AESEQ",
    "aeterm": "AETERM",
    "aetoxgr": "AETOXGR",
    "aesev": "AESEV",
    "aestdtc": "AESTDTC",
    "aeendtc": "AEENDTC",
    "aeout": "AEOUT",
    "aerel": "AEREL",
}
EVENT_TEXT_SOURCES = {"usubjid": "USUBJID", "soc": "SOC", "pt": "PT", "astdtf": "ASTDTF", **EVENT_TEXT_COLUMNS}
EVENT_FLAG_SOURCES = {"trtemfl": "TRTEMFL", "after_cutoff": "AFTER_CUTOFF", "counted": "COUNTED",
                      "after_death": "AFTER_DEATH", "serious": "SERIOUS", "related": "RELATED",
                      "uncoded": "UNCODED"}  # fmt: skip
# Text columns the metrics group or compare on, held as Python strings; the others (listing-only) as categoricals.
OBJECT_TEXT_COLUMNS = ("USUBJID", "SOC", "PT", GROUP_COLUMN)
TEXT_COLUMNS = (*EVENT_TEXT_SOURCES.values(), GROUP_COLUMN)
# Number columns of :class:`CutColumns`: name -> NumPy dtype. ``*_MISSING`` marks the missing values of a whole number.
NUMBER_COLUMNS = {
    "AE_ID": np.int64,
    "EVENT_ID": np.int64,
    "ASTDT": "datetime64[ns]",
    "ASTDY": np.int64,
    "ASTDY_MISSING": np.bool_,
    "GRADE": np.int64,
    "GRADE_MISSING": np.bool_,
    **dict.fromkeys(EVENT_FLAG_SOURCES.values(), np.bool_),
    "SUBJECT_POS": np.int64,
}


@dataclass(frozen=True, eq=False)
class CutFrames:
    """The derivations of one cut in metric naming, plus integer codes the views count with.

    ``events`` carries ``SUBJECT_POS`` (row of the subject in ``subjects``), ``SOC_CODE`` / ``PT_CODE`` (positions
    in ``socs`` / ``pts``) and the subject's ``COHORT_GROUP``. Its listing-only text columns (AETERM, AESEQ, ...)
    are categoricals; USUBJID, SOC, PT and COHORT_GROUP are Python strings. ``source`` says where the frames were
    read from: ``"file"`` (the cut's read model) or ``"database"``. Never modify them: every view of the process
    shares them, and columns read from a file are read-only.
    """

    cut: CutInfo
    subjects: pd.DataFrame
    events: pd.DataFrame
    socs: np.ndarray
    pts: np.ndarray
    pt_soc: np.ndarray  # the SOC code of each PT (the SOC of its first record)
    cohorts: tuple[str, ...]
    text: TextCodes  # codes of the text columns of ``events``, for filtering and sorting a million rows fast
    source: str = "database"


@dataclass(frozen=True, eq=False)
class CutColumns:
    """A cut's derivations as flat columns, events in listing order (subject, onset, record): what the read model
    file stores and :func:`assemble_frames` reads.

    ``numbers`` holds :data:`NUMBER_COLUMNS`; ``text`` holds :data:`TEXT_COLUMNS`, each as codes of the smallest
    integer type that holds them and the distinct texts, SOC and PT with their texts sorted.
    """

    subjects: pd.DataFrame
    numbers: dict[str, np.ndarray]
    text: TextCodes


# --- from the database ------------------------------------------------------------------------------------------


def _as_bool(values: pd.Series) -> np.ndarray:
    return values.fillna(False).astype(bool).to_numpy()


def _as_dates(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, errors="coerce").astype("datetime64[ns]")


def frame_subjects(derived: pd.DataFrame) -> pd.DataFrame:
    """``derived_subjects`` rows (lower-case columns) in metric naming."""
    return pd.DataFrame(
        {
            "USUBJID": derived["usubjid"].astype(str).to_numpy(dtype=object),
            GROUP_COLUMN: derived["cohort"].fillna("").astype(str).to_numpy(dtype=object),
            "TRTSDT": _as_dates(derived["trtsdt"]),
            "TRTEDT": _as_dates(derived["trtedt"]),
            "DTHDT": _as_dates(derived["dthdt"]),
            "SAFFL": _as_bool(derived["saffl"]),
            "WINDOW_END": _as_dates(derived["window_end"]),
            "DAYS_AT_RISK": pd.array(derived["days_at_risk"], dtype="Int64"),
            "N_DOSES": pd.to_numeric(derived["n_doses"]).fillna(0).astype(int).to_numpy(),
        }
    )


class _TextColumn:
    """Codes of one text column read in chunks, against one growing list of its distinct texts."""

    def __init__(self) -> None:
        self.texts = pd.Index([], dtype=object)
        self.parts: list[np.ndarray] = []

    def add(self, values: pd.Series) -> None:
        codes, uniques = pd.factorize(values.astype(object).fillna(""), sort=False)
        uniques = np.asarray(uniques, dtype=object)
        known = self.texts.get_indexer(uniques)
        new = known < 0
        if new.any():
            known[new] = np.arange(len(self.texts), len(self.texts) + int(new.sum()))
            self.texts = self.texts.append(pd.Index(uniques[new], dtype=object))
        self.parts.append(known[codes].astype(np.int32))

    def finish(self, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes = np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.int32)
        return codes[order], np.asarray(self.texts, dtype=object)


def narrow_codes(codes: np.ndarray, n_texts: int) -> np.ndarray:
    """``codes`` in the integer type pandas gives the codes of a categorical of ``n_texts`` categories (int8, int16,
    int32), so a categorical over them shares their memory instead of copying it."""
    for dtype in (np.int8, np.int16, np.int32):
        if n_texts < np.iinfo(dtype).max:
            return codes.astype(dtype, copy=False)
    return codes.astype(np.int64, copy=False)


def _sorted_text(codes: np.ndarray, texts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same column with its distinct texts in sorted order (codes renumbered)."""
    order = np.argsort(texts, kind="stable")
    rank = np.empty(len(texts), dtype=np.int64)
    rank[order] = np.arange(len(texts))
    return rank[codes] if len(texts) else codes, texts[order]


def frame_event_columns(chunks, subjects: pd.DataFrame) -> tuple[dict[str, np.ndarray], TextCodes]:
    """``derived_events`` rows with the raw listing values (a DataFrame, or an iterable of chunks of one) as the
    numbers and text codes of :class:`CutColumns`, ordered by subject, onset and record."""
    chunks = [chunks] if isinstance(chunks, pd.DataFrame) else chunks
    text_columns = {target: _TextColumn() for target in EVENT_TEXT_SOURCES.values()}
    parts: dict[str, list[np.ndarray]] = {
        name: [] for name in ("AE_ID", "EVENT_ID", "ASTDT", "ASTDY", "GRADE", *EVENT_FLAG_SOURCES.values())
    }
    for chunk in chunks:
        for source, target in EVENT_TEXT_SOURCES.items():
            text_columns[target].add(chunk[source])
        parts["AE_ID"].append(pd.to_numeric(chunk["ae_version_id"]).to_numpy(dtype=np.int64))
        parts["EVENT_ID"].append(pd.to_numeric(chunk["event_id"]).to_numpy(dtype=np.int64))
        parts["ASTDT"].append(_as_dates(chunk["astdt"]).to_numpy())
        parts["ASTDY"].append(pd.to_numeric(chunk["astdy"]).to_numpy(dtype="float64", na_value=np.nan))
        parts["GRADE"].append(pd.to_numeric(chunk["grade"]).to_numpy(dtype="float64", na_value=np.nan))
        for source, target in EVENT_FLAG_SOURCES.items():
            parts[target].append(_as_bool(chunk[source]))
    empty = {"ASTDT": "datetime64[ns]", "ASTDY": float, "GRADE": float, "AE_ID": np.int64, "EVENT_ID": np.int64}
    joined = {
        name: np.concatenate(values) if values else np.zeros(0, dtype=empty.get(name, bool))
        for name, values in parts.items()
    }
    # The listing order: by subject, onset date, record.
    subject_codes, subject_texts = text_columns["USUBJID"].finish(np.arange(len(joined["AE_ID"])))
    rank = np.empty(len(subject_texts), dtype=np.int64)
    rank[np.argsort(subject_texts.astype(str), kind="stable")] = np.arange(len(subject_texts))
    onset = joined["ASTDT"].astype("datetime64[ns]").view(np.int64)
    order = np.lexsort((joined["AE_ID"], onset, rank[subject_codes] if len(rank) else subject_codes))

    text: TextCodes = {target: column.finish(order) for target, column in text_columns.items()}
    for name in ("SOC", "PT"):
        text[name] = _sorted_text(*text[name])
    numbers = {name: joined[name][order] for name in ("AE_ID", "EVENT_ID", *EVENT_FLAG_SOURCES.values())}
    numbers["ASTDT"] = joined["ASTDT"][order].astype("datetime64[ns]")
    for name in ("ASTDY", "GRADE"):
        values = joined[name][order]
        numbers[f"{name}_MISSING"] = np.isnan(values)
        numbers[name] = np.where(np.isnan(values), 0, values).astype(np.int64)
    # The subject's row and cohort, looked up once per distinct USUBJID rather than per record.
    codes, texts = text["USUBJID"]
    position = pd.Index(subjects["USUBJID"]).get_indexer(texts).astype(np.int64)[codes]
    numbers["SUBJECT_POS"] = position
    cohort_codes, cohorts = pd.factorize(subjects[GROUP_COLUMN].fillna(""), sort=False)
    cohort_codes = cohort_codes.astype(np.int32)
    text[GROUP_COLUMN] = (
        cohort_codes[np.maximum(position, 0)] if len(cohort_codes) else np.zeros(len(position), np.int32),
        np.asarray(cohorts, dtype=object),
    )
    text = {name: (narrow_codes(codes, len(texts)), texts) for name, (codes, texts) in text.items()}
    return numbers, text


def columns_from_rows(subject_rows: pd.DataFrame, event_rows: pd.DataFrame) -> CutColumns:
    """:class:`CutColumns` of a cut from its ``derived_subjects`` rows and its ``derived_events`` rows with the AE
    values of :data:`EVENT_TEXT_COLUMNS` (lower-case columns, as stored): what :func:`read_cut_columns` gives once
    they are in the database, built from the frames ingestion holds."""
    subjects = frame_subjects(subject_rows.sort_values("usubjid", kind="stable").reset_index(drop=True))
    # In record order, as the database path reads them: the distinct texts are then listed in the same order.
    order = np.argsort(event_rows["ae_version_id"].to_numpy(), kind="stable")
    numbers, text = frame_event_columns(event_rows.iloc[order], subjects)
    return CutColumns(subjects, numbers, text)


def read_event_chunks(engine: Engine, run_id: int, chunk_rows: int = CHUNK_ROWS):
    """The cut's event rows in chunks of ``chunk_rows``, read by record id (``web_cut_events_chunk``)."""
    after = 0
    while True:
        chunk = run_query(engine, "web_cut_events_chunk", run_id=run_id, after=after, limit=chunk_rows)
        if chunk.empty:
            return
        yield chunk
        if len(chunk) < chunk_rows:
            return
        after = int(chunk["ae_version_id"].iloc[-1])


def read_cut_columns(engine: Engine, run_id: int) -> CutColumns:
    """The stored derivations of cut ``run_id`` read from the database, as :class:`CutColumns` (a million records
    take seconds: the web workers open the read model file instead)."""
    subjects = frame_subjects(run_query(engine, "derived_subjects", run_id=run_id))
    numbers, text = frame_event_columns(read_event_chunks(engine, run_id), subjects)
    return CutColumns(subjects, numbers, text)


# --- the frames ---------------------------------------------------------------------------------------------------


def _strings(column: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    codes, texts = column
    return texts[codes] if len(texts) else np.full(len(codes), "", dtype=object)


def _categorical(column: tuple[np.ndarray, np.ndarray]) -> pd.Categorical:
    codes, texts = column
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(texts, dtype=object)))


def assemble_frames(cut: CutInfo, columns: CutColumns, source: str) -> CutFrames:
    """The :class:`CutFrames` of ``cut`` from its flat columns, sharing their memory where pandas allows."""
    numbers, text = columns.numbers, columns.text

    def whole_numbers(name: str) -> pd.arrays.IntegerArray:
        return pd.arrays.IntegerArray(numbers[name], numbers[f"{name}_MISSING"])

    events = pd.DataFrame(
        {
            "AE_ID": numbers["AE_ID"],
            "EVENT_ID": numbers["EVENT_ID"],
            "USUBJID": _strings(text["USUBJID"]),
            "SOC": _strings(text["SOC"]),
            "PT": _strings(text["PT"]),
            "ASTDT": pd.Series(numbers["ASTDT"], copy=False),
            "ASTDTF": _categorical(text["ASTDTF"]),
            "ASTDY": whole_numbers("ASTDY"),
            "GRADE": whole_numbers("GRADE"),
            **{name: numbers[name] for name in EVENT_FLAG_SOURCES.values()},
            **{name: _categorical(text[name]) for name in EVENT_TEXT_COLUMNS.values()},
            "SUBJECT_POS": numbers["SUBJECT_POS"],
            GROUP_COLUMN: _strings(text[GROUP_COLUMN]),
            "SOC_CODE": text["SOC"][0],
            "PT_CODE": text["PT"][0],
        },
        copy=False,  # one block per column: nothing is consolidated (copied) into shared blocks
    )
    socs, pts = text["SOC"][1], text["PT"][1]
    pt_soc = np.zeros(len(pts), dtype=np.int64)
    if len(events):
        first = pd.Series(text["SOC"][0]).groupby(text["PT"][0]).first()
        pt_soc[first.index.to_numpy()] = first.to_numpy()
    subjects = columns.subjects
    cohorts = tuple(sorted(set(subjects.loc[subjects["SAFFL"], GROUP_COLUMN]) - {""}))
    return CutFrames(cut, subjects, events, socs, pts, pt_soc, cohorts, text, source)


def frames_from_database(engine: Engine, cut: CutInfo) -> CutFrames:
    """The frames of ``cut`` read from the database (what a worker does when the cut has no read model file)."""
    return assemble_frames(cut, read_cut_columns(engine, cut.run_id), "database")
