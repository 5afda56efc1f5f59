"""The lab read model on disk: a cut's :class:`~safety_dash.readmodel.labcut.LabCut` as Arrow IPC files, written
once (at ingestion, or by ``readmodel build``) and memory-mapped by every web worker.

A web worker that graded a cut itself took 141 s and a peak of 5 GB for 4,160,000 LB records, and each worker did
it again. The files hold what the Labs and eDISH pages and the subject's lab panel read, in a ``labs`` folder of the
cut's read model folder (:func:`~safety_dash.readmodel.files.cut_folder`)::

    <study>/<run_id>/<derived>/labs/records.arrow   every LB record, compact (about 30 bytes a record): read in place
    <study>/<run_id>/<derived>/labs/starts.arrow    the first record and worst grade of each subject: read in place
    <study>/<run_id>/<derived>/labs/subjects.arrow  subject ids and cohorts
    <study>/<run_id>/<derived>/labs/worst.arrow     worst grades per subject, test and direction
    <study>/<run_id>/<derived>/labs/tests.arrow, table.arrow, shifts.arrow, hys_law.arrow   the small frames

Uncompressed, one record batch each, like the events (:mod:`~safety_dash.readmodel.files`): the number columns of
``records`` and the start arrays are NumPy views of the mapped file, shared by every worker in the operating
system's page cache; the smaller frames are converted on opening. The folder is written under a temporary name
beside its final one and renamed into place, so a reader sees a whole folder or none; every file carries the same
write id, and the format, study, run and derivation are checked on opening. The cut's other scalars and short text
lists (cutoff, window, visits, units, cohorts) are in the metadata of ``records.arrow``. It goes with its cut
folder: removed with it when the commit fails or the derivation is a day out of date, and carried over when the
events' files are written again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Engine

from safety_dash.readmodel.cuts import CutInfo, load_cut
from safety_dash.readmodel.files import (
    METADATA_KEY,
    STALE_TEMPORARY_SECONDS,
    ReadModelMismatch,
    _read_table,
    _single_chunk,
    _write_table,
    cut_folder,
    read_model_root,
)
from safety_dash.readmodel.labcut import LabCut, load_graded_lab_cut

log = logging.getLogger(__name__)

LAB_FORMAT_VERSION = 1  # bump when the lab files' columns change: folders of another version are not read
LABS_FOLDER = "labs"
RECORDS, STARTS, SUBJECTS = "records", "starts", "subjects"
FRAMES = ("tests", "table", "shifts", "hys_law", "worst")  # LabCut's small frames, converted with pandas
LAB_FILES = (RECORDS, STARTS, SUBJECTS, *FRAMES)
RECORDS_FILE = f"{RECORDS}.arrow"


def lab_folder(root: Path, cut: CutInfo) -> Path:
    """The folder of ``cut``'s lab read model under ``root``: ``labs`` in the cut's read model folder."""
    return cut_folder(root, cut) / LABS_FOLDER


# --- writing ------------------------------------------------------------------------------------------------------


def _with_metadata(table: pa.Table, metadata: dict) -> pa.Table:
    return table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()})


def _plain_array(values: np.ndarray) -> pa.Array:
    """A NumPy column as an Arrow array that reads back in place: booleans as uint8, dates as int64 nanoseconds
    (NaT included)."""
    if values.dtype == np.bool_:
        return pa.array(values.view(np.uint8))
    if np.issubdtype(values.dtype, np.datetime64):
        return pa.array(values.astype("datetime64[ns]", copy=False).view(np.int64))
    return pa.array(values)


def lab_tables(lab: LabCut, metadata: dict) -> dict[str, pa.Table]:
    """The Arrow tables of ``lab``'s files (:data:`LAB_FILES`), each with ``metadata``; the records' table also
    carries the column types, the scalars and the short text lists."""
    records = lab.records
    dtypes = {name: str(records[name].dtype) for name in records.columns}
    lab_meta = {
        "cutoff": lab.cutoff.isoformat(),
        "window_days": lab.window_days,
        "visits": [str(v) for v in lab.visits],
        "units": [str(u) for u in lab.units],
        "groups": list(lab.groups),
        "dtypes": dtypes,
    }
    tables = {
        RECORDS: pa.Table.from_arrays(
            [_plain_array(records[name].to_numpy()) for name in records.columns], names=list(records.columns)
        ),
        STARTS: pa.table(
            {
                "RECORD_START": _plain_array(lab.record_start.astype(np.int64, copy=False)),
                "WORST_START": _plain_array(lab.worst_start.astype(np.int64, copy=False)),
            }
        ),
        SUBJECTS: pa.table(
            {
                "USUBJID": pa.array(list(lab.subject_ids), type=pa.string()),
                "GROUP": pa.array(list(lab.subject_groups), type=pa.string()),
            }
        ),
    }
    tables |= {name: pa.Table.from_pandas(getattr(lab, name)) for name in FRAMES}
    out = {name: _with_metadata(table, metadata) for name, table in tables.items()}
    out[RECORDS] = _with_metadata(out[RECORDS], {**metadata, "lab": lab_meta})
    return out


def write_lab_files(root: Path, cut: CutInfo, lab: LabCut, replace: bool = False) -> Path:
    """Write ``lab``, the :class:`LabCut` of ``cut``, under ``root`` and return its folder (:func:`lab_folder`).

    Written to a temporary folder beside it and renamed into place. When the folder is already there it is kept
    (another writer finished first: the same cut gives the same files), unless ``replace``. Temporary folders left
    by writers that died are removed.
    """
    if (lab.run_id, lab.study_id) != (cut.run_id, cut.study_id):
        raise ValueError(f"the lab values of cut {lab.run_id} ({lab.study_id}) cannot be written as cut {cut.run_id}")
    final = lab_folder(root, cut)
    final.parent.mkdir(parents=True, exist_ok=True)
    write_id = uuid.uuid4().hex
    metadata = {
        "format": LAB_FORMAT_VERSION,
        "study_id": cut.study_id,
        "run_id": cut.run_id,
        "derived_at": cut.derived_at,
        "write_id": write_id,
        "written_at": pd.Timestamp.now("UTC").isoformat(),
    }
    temporary = final.parent / f".tmp-{LABS_FOLDER}-{write_id}"
    temporary.mkdir()
    try:
        for name, table in lab_tables(lab, metadata).items():
            _write_table(table, temporary / f"{name}.arrow")
        try:
            os.rename(temporary, final)
        except OSError:  # the folder exists: kept, or swapped for the new one
            if not replace:
                shutil.rmtree(temporary)
                return final
            old = final.parent / f".old-{LABS_FOLDER}-{write_id}"
            os.rename(final, old)
            os.rename(temporary, final)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    _remove_stale_temporaries(final.parent)
    return final


def _remove_stale_temporaries(folder: Path, now: float | None = None) -> None:
    """Remove the temporary lab folders in ``folder`` older than :data:`STALE_TEMPORARY_SECONDS` (left by a writer
    that died)."""
    now = time.time() if now is None else now
    for entry in folder.iterdir():
        if entry.is_dir() and entry.name.startswith((f".tmp-{LABS_FOLDER}-", f".old-{LABS_FOLDER}-")):
            if now - entry.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                shutil.rmtree(entry, ignore_errors=True)


# --- reading ------------------------------------------------------------------------------------------------------


def _in_place(table: pa.Table, name: str, dtype: str) -> np.ndarray:
    """Column ``name`` of ``table`` as a NumPy view of its memory, in ``dtype`` (as :func:`_plain_array` wrote it)."""
    values = _single_chunk(table.column(name)).to_numpy(zero_copy_only=True)
    if dtype == "bool":
        return values.view(np.bool_)
    if dtype.startswith("datetime64"):
        return values.view("datetime64[ns]")
    return values


def _texts(column: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object).reshape(-1)


def read_lab_files(folder: Path, cut: CutInfo) -> LabCut:
    """The :class:`LabCut` stored in the lab read model ``folder`` of ``cut``: the columns of ``records`` and the
    start arrays read in place (read-only views of the memory-mapped files), the rest converted.

    Raises :class:`~safety_dash.readmodel.files.ReadModelMismatch` when the files are of another format, another cut
    or derivation, or of two different writes.
    """
    tables, metas = {}, {}
    for name in LAB_FILES:
        tables[name], metas[name] = _read_table(folder / f"{name}.arrow")
    expected = {"format": LAB_FORMAT_VERSION, "study_id": cut.study_id, "run_id": cut.run_id,
                "derived_at": cut.derived_at}  # fmt: skip
    for name, meta in metas.items():
        found = {key: meta.get(key) for key in expected}
        if found != expected:
            raise ReadModelMismatch(f"{folder / name}.arrow holds {found}, not {expected}")
    if len({meta["write_id"] for meta in metas.values()}) != 1:
        raise ReadModelMismatch(f"{folder}: its files come from different writes (being replaced?)")
    lab_meta = metas[RECORDS]["lab"]
    records_table, starts, subjects = tables[RECORDS], tables[STARTS], tables[SUBJECTS]
    records = pd.DataFrame(
        {name: _in_place(records_table, name, dtype) for name, dtype in lab_meta["dtypes"].items()},
        copy=False,  # one block per column, each a view of the file: nothing is copied
    )
    frames = {name: tables[name].to_pandas() for name in FRAMES}
    return LabCut(
        run_id=cut.run_id,
        study_id=cut.study_id,
        cutoff=dt.date.fromisoformat(lab_meta["cutoff"]),
        window_days=int(lab_meta["window_days"]),
        records=records,
        record_start=_in_place(starts, "RECORD_START", "int64"),
        worst_start=_in_place(starts, "WORST_START", "int64"),
        subject_ids=_texts(subjects.column("USUBJID")),
        subject_groups=_texts(subjects.column("GROUP")),
        visits=np.asarray(lab_meta["visits"], dtype=object).reshape(-1),
        units=np.asarray(lab_meta["units"], dtype=object).reshape(-1),
        groups=tuple(lab_meta["groups"]),
        **frames,
    )


def open_lab_cut(root: Path, cut: CutInfo) -> LabCut | None:
    """The :class:`LabCut` of ``cut`` from its lab read model under ``root``, or None when the cut has none (loaded
    before the lab read model existed, or its write failed)."""
    folder = lab_folder(root, cut)
    if not (folder / RECORDS_FILE).is_file():
        return None
    return read_lab_files(folder, cut)


# --- what ingestion and the command call ------------------------------------------------------------------------


def save_lab_read_model(
    bind: Engine | Connection,
    run_id: int,
    root: Path | None = None,
    replace: bool = False,
    lab: Callable[[], LabCut] | None = None,
) -> Path:
    """Write the lab read model of cut ``run_id``; return its folder.

    ``lab`` gives the cut's :class:`LabCut` when the caller holds it (ingestion, graded from the records it has
    just loaded); without it the cut is graded from the database (:func:`~safety_dash.readmodel.labcut.
    load_graded_lab_cut`: ``readmodel build``, for cuts loaded before). ``bind`` may be the connection of the
    transaction that commits the cut.
    """
    cut = load_cut(bind, run_id)
    if cut is None or cut.status != "succeeded":
        raise ValueError(f"run {run_id} is not a succeeded data cut; only a data cut has a read model")
    found = lab() if lab is not None else load_graded_lab_cut(bind, run_id)
    return write_lab_files(root or read_model_root(), cut, found, replace=replace)


def compute_new_cut_lab(compute: Callable[[], LabCut]) -> LabCut | None:
    """The :class:`LabCut` of a cut being committed, from ``compute`` (ingestion grades the records it has just
    loaded while their versions are written); None, logged, when that fails: the cut still commits, and the web
    workers grade it from the database until ``readmodel build`` writes the file."""
    try:
        return compute()
    except Exception:  # a missing lab read model only makes the first lab page slower
        log.exception("grading the lab values of a new cut failed; it is written without a lab read model")
        return None


def save_lab_read_model_of_new_cut(connection: Connection, run_id: int, lab: LabCut) -> Path | None:
    """:func:`save_lab_read_model` of ``lab`` (:func:`compute_new_cut_lab`) inside the transaction that commits cut
    ``run_id``, once the run is marked succeeded: the files are in place when the cut becomes visible.

    A failure is logged, not raised: the cut still commits, and the web workers grade it from the database until
    ``readmodel build`` writes the files. The caller removes the folder (:func:`remove_lab_read_model_folder`) when
    the commit fails.
    """
    started = time.perf_counter()
    try:
        folder = save_lab_read_model(connection, run_id, lab=lambda: lab)
    except Exception:  # a missing lab read model only makes the first lab page slower
        log.exception(
            "writing the lab read model of cut %s failed; the web workers grade its LB records themselves until "
            "`python -m safety_dash readmodel build --cut %s` writes it",
            run_id,
            run_id,
        )
        return None
    log.info("lab read model of cut %s written to %s in %.1f s", run_id, folder, time.perf_counter() - started)
    return folder


def remove_lab_read_model_folder(folder: Path) -> None:
    """Remove the lab read model folder of a cut whose commit failed, and its cut folder when nothing else is in it
    (the events' files were not written)."""
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()  # only when empty
    except OSError:
        pass
