"""The read model on disk: one folder per cut and derivation, two Arrow IPC files, written atomically.

Layout under :func:`read_model_root` (``SAFETY_DASH_DATA_DIR/readmodel``)::

    <study>/<run_id>/<derived>/subjects.arrow   the cut's derived subjects (a few MB)
    <study>/<run_id>/<derived>/events.arrow     its derived events in listing order, texts dictionary-encoded
    <study>/<run_id>/<derived>/labs/            the lab pages' read model (:mod:`~safety_dash.readmodel.labs`)

``<derived>`` is the time the cut's derivations were written (UTC, ``20261130T101500.123456Z``): a re-derived cut
gets a new folder, and the old one is removed once it is a day old. Both files are Arrow IPC (Feather v2),
uncompressed, one record batch: a worker opens them with :func:`pyarrow.memory_map` and reads every number column
and every text code in place, so N workers share one copy in the operating system's page cache.

A folder is written under a temporary name beside its final one and renamed into place, so a reader sees a whole
folder or none; both files carry the same write id, checked on opening.
"""

from __future__ import annotations

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
from safety_dash.readmodel.frames import (
    NUMBER_COLUMNS,
    TEXT_COLUMNS,
    CutColumns,
    CutFrames,
    assemble_frames,
    read_cut_columns,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 1  # bump when the files' columns change: folders of another version are not read
METADATA_KEY = b"safety_dash.readmodel"
SUBJECTS_FILE, EVENTS_FILE = "subjects.arrow", "events.arrow"
STALE_TEMPORARY_SECONDS = 3600.0  # a temporary folder older than this was left by a writer that died
STALE_FOLDER_SECONDS = 86400.0  # an earlier derivation of a cut is removed once its folder is a day old


class ReadModelMismatch(ValueError):
    """A read model folder whose files do not belong together or to the cut asked for."""


def read_model_root() -> Path:
    """Where the read model lives: ``SAFETY_DASH_DATA_DIR/readmodel``."""
    from safety_dash.config import load_settings

    return load_settings().data_dir / "readmodel"


def derived_stamp(derived_at: str) -> str:
    """The folder name of a cut's derivation time: the time in UTC (``20261130T101500.123456Z``); a text that is
    not a time (never seen) by a digest of it."""
    try:
        stamp = pd.Timestamp(derived_at)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        import hashlib

        return "x" + hashlib.sha256(derived_at.encode()).hexdigest()[:16]
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y%m%dT%H%M%S.%fZ")


def cut_folder(root: Path, cut: CutInfo) -> Path:
    """The folder of ``cut``'s read model under ``root``."""
    return Path(root) / cut.study_id / str(cut.run_id) / derived_stamp(cut.derived_at)


# --- writing ------------------------------------------------------------------------------------------------------


def _dictionary(codes: np.ndarray, texts: np.ndarray) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(list(texts), type=pa.string()))


def events_table(columns: CutColumns, metadata: dict) -> pa.Table:
    """The events of ``columns`` as one Arrow table: numbers as plain arrays (booleans as uint8, dates as int64
    nanoseconds, NaT included, so that every number column reads back in place), texts dictionary-encoded."""
    arrays, names = [], []
    for name, dtype in NUMBER_COLUMNS.items():
        values = columns.numbers[name]
        if dtype is np.bool_:
            values = values.astype(np.bool_, copy=False).view(np.uint8)
        elif dtype == "datetime64[ns]":
            values = values.astype("datetime64[ns]", copy=False).view(np.int64)
        arrays.append(pa.array(values))
        names.append(name)
    for name in TEXT_COLUMNS:
        arrays.append(_dictionary(*columns.text[name]))
        names.append(name)
    table = pa.Table.from_arrays(arrays, names=names)
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(metadata).encode()})


def subjects_table(subjects: pd.DataFrame, metadata: dict) -> pa.Table:
    """The derived subjects as an Arrow table (pandas types kept in its metadata)."""
    table = pa.Table.from_pandas(subjects, preserve_index=False)
    return table.replace_schema_metadata({**table.schema.metadata, METADATA_KEY: json.dumps(metadata).encode()})


def _write_table(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(table.num_rows, 1))  # one record batch: read in place
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def write_cut_files(root: Path, cut: CutInfo, columns: CutColumns, replace: bool = False) -> Path:
    """Write the read model of ``cut`` from ``columns`` under ``root`` and return its folder.

    Written to a temporary folder and renamed into place. When the folder is already there it is kept (another
    writer finished first: the same cut gives the same files), unless ``replace`` or it holds no events file (only
    the lab read model, :mod:`~safety_dash.readmodel.labs`, written while this write failed). A folder swapped for
    the new one hands its subfolders (the lab read model of the same cut) over to it. Old folders of earlier
    derivations of the same run, and temporary folders left by writers that died, are removed
    (:func:`remove_stale_folders`).
    """
    final = cut_folder(root, cut)
    final.parent.mkdir(parents=True, exist_ok=True)
    write_id = uuid.uuid4().hex
    metadata = {
        "format": FORMAT_VERSION,
        "study_id": cut.study_id,
        "run_id": cut.run_id,
        "derived_at": cut.derived_at,
        "write_id": write_id,
        "written_at": pd.Timestamp.now("UTC").isoformat(),
    }
    temporary = final.parent / f".tmp-{final.name}-{write_id}"
    temporary.mkdir()
    try:
        _write_table(subjects_table(columns.subjects, metadata), temporary / SUBJECTS_FILE)
        _write_table(events_table(columns, metadata), temporary / EVENTS_FILE)
        try:
            os.rename(temporary, final)
        except OSError:  # the folder exists: kept, or swapped for the new one
            if not replace and (final / EVENTS_FILE).is_file():
                shutil.rmtree(temporary)
                return final
            old = final.parent / f".old-{final.name}-{write_id}"
            os.rename(final, old)
            os.rename(temporary, final)
            _hand_over_subfolders(old, final)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    remove_stale_folders(final.parent, keep=final.name)
    return final


def _hand_over_subfolders(old: Path, new: Path) -> None:
    """Move the subfolders of a cut's replaced read model folder ``old`` (its lab read model: the same cut, still
    true) into ``new``; one that cannot be moved is logged and left to be written again."""
    for entry in old.iterdir():
        if entry.is_dir() and not entry.name.startswith(".") and not (new / entry.name).exists():
            try:
                os.rename(entry, new / entry.name)
            except OSError:
                log.exception("%s could not be kept with the new read model of its cut; `readmodel build` writes it",
                              entry)  # fmt: skip


def remove_stale_folders(run_folder: Path, keep: str, now: float | None = None) -> list[Path]:
    """Remove the folders of earlier derivations of a run (all but ``keep``) written more than
    :data:`STALE_FOLDER_SECONDS` ago, and temporary folders older than :data:`STALE_TEMPORARY_SECONDS`; return them.

    The grace period lets a worker that still shows the earlier derivation finish with it, and keeps two databases
    that share a data folder (tests, a developer's machine) from removing each other's fresh files. A worker that
    has a removed file open keeps reading it until it lets go.
    """
    now = time.time() if now is None else now
    removed = []
    for entry in run_folder.iterdir():
        if entry.name == keep or not entry.is_dir():
            continue
        limit = STALE_TEMPORARY_SECONDS if entry.name.startswith(".") else STALE_FOLDER_SECONDS
        if now - entry.stat().st_mtime > limit:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


# --- reading ------------------------------------------------------------------------------------------------------


def _read_table(path: Path) -> tuple[pa.Table, dict]:
    """The table in the Arrow IPC file at ``path``, memory-mapped (nothing is copied), and its metadata."""
    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_file(source).read_all()
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ReadModelMismatch(f"{path} is not a safety-dash read model file")
    return table, json.loads(raw)


def _single_chunk(column: pa.ChunkedArray) -> pa.Array:
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def read_cut_files(folder: Path, cut: CutInfo) -> CutColumns:
    """The columns stored in the read model ``folder`` of ``cut``, number columns and text codes read in place.

    Raises :class:`ReadModelMismatch` when the files are of another format, another cut or derivation, or of two
    different writes.
    """
    subjects, subjects_meta = _read_table(folder / SUBJECTS_FILE)
    events, events_meta = _read_table(folder / EVENTS_FILE)
    expected = {"format": FORMAT_VERSION, "study_id": cut.study_id, "run_id": cut.run_id, "derived_at": cut.derived_at}
    for meta in (subjects_meta, events_meta):
        found = {name: meta.get(name) for name in expected}
        if found != expected:
            raise ReadModelMismatch(f"{folder} holds {found}, not {expected}")
    if subjects_meta["write_id"] != events_meta["write_id"]:
        raise ReadModelMismatch(f"{folder}: its two files come from different writes (being replaced?)")
    return columns_from_tables(subjects, events)


def columns_from_tables(subjects: pa.Table, events: pa.Table) -> CutColumns:
    """The :class:`CutColumns` held by the two tables of a read model: number columns and text codes as NumPy views
    of the tables' memory (a memory-mapped file stays where it is), the subjects and the distinct texts copied."""
    numbers = {}
    for name, dtype in NUMBER_COLUMNS.items():
        values = _single_chunk(events.column(name)).to_numpy(zero_copy_only=True)
        if dtype is np.bool_:
            values = values.view(np.bool_)
        elif dtype == "datetime64[ns]":
            values = values.view("datetime64[ns]")
        numbers[name] = values
    text = {}
    for name in TEXT_COLUMNS:
        column = _single_chunk(events.column(name))
        texts = np.asarray(column.dictionary.to_pylist(), dtype=object)
        text[name] = (column.indices.to_numpy(zero_copy_only=True), texts)
    return CutColumns(subjects.to_pandas(), numbers, text)


def open_cut_frames(root: Path, cut: CutInfo) -> CutFrames | None:
    """The frames of ``cut`` from its read model under ``root``, or None when the cut has none (loaded before the
    read model existed, or its write failed)."""
    folder = cut_folder(root, cut)
    if not (folder / EVENTS_FILE).is_file():
        return None
    return assemble_frames(cut, read_cut_files(folder, cut), "file")


# --- what ingestion and the command call ------------------------------------------------------------------------


def save_read_model(
    bind: Engine | Connection,
    run_id: int,
    root: Path | None = None,
    replace: bool = False,
    columns: Callable[[], CutColumns] | None = None,
) -> Path:
    """Write the read model of cut ``run_id``; return its folder.

    ``columns`` gives the cut's columns when the caller holds its derivations (ingestion, before its commit:
    :func:`safety_dash.analysis.derived_read_model_columns`); without it they are read from the database
    (``python -m safety_dash readmodel build``, for cuts loaded before). ``bind`` may be the connection of the
    transaction that commits the cut.
    """
    cut = load_cut(bind, run_id)
    if cut is None or cut.status != "succeeded":
        raise ValueError(f"run {run_id} is not a succeeded data cut; only a data cut has a read model")
    found = columns() if columns is not None else read_cut_columns(bind, run_id)
    return write_cut_files(root or read_model_root(), cut, found, replace=replace)


def save_read_model_of_new_cut(connection: Connection, run_id: int, columns: CutColumns) -> Path | None:
    """:func:`save_read_model` of ``columns`` (:func:`compute_new_cut_columns`) inside the transaction that commits
    cut ``run_id``, once the run is marked succeeded: the file is in place when the cut becomes visible, so no web
    worker ever reads a new cut from the database (at a million records, each worker asking in the seconds between
    the commit and the file took minutes and 860 MB).

    A failure is logged, not raised: the cut still commits, and the web workers read it from the database until
    ``readmodel build`` writes the file. The caller removes the folder (:func:`remove_read_model_folder`) when the
    commit fails.
    """
    started = time.perf_counter()
    try:
        folder = save_read_model(connection, run_id, columns=lambda: columns)
    except Exception:  # a missing read model only makes the first page slower
        log.exception(
            "writing the read model of cut %s failed; the web workers read the cut from the database until "
            "`python -m safety_dash readmodel build --cut %s` writes it",
            run_id,
            run_id,
        )
        return None
    log.info("read model of cut %s written to %s in %.1f s", run_id, folder, time.perf_counter() - started)
    return folder


def compute_new_cut_columns(compute: Callable[[], CutColumns]) -> CutColumns | None:
    """The read model columns of a cut being committed, from ``compute`` (ingestion calls it while the cut's
    derivations are being written); None, logged, when that fails: the cut still commits, and the web workers read
    it from the database until ``readmodel build`` writes the file."""
    try:
        return compute()
    except Exception:  # a missing read model only makes the first page slower
        log.exception("building the read model columns of a new cut failed; it is written without a read model")
        return None


def remove_read_model_folder(folder: Path) -> None:
    """Remove the read model folder of a cut whose commit failed (no cut of that derivation will ever read it)."""
    shutil.rmtree(folder, ignore_errors=True)


def folder_megabytes(folder: Path) -> float:
    """Size of the files in ``folder`` in MB."""
    return sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6 if folder.is_dir() else 0.0
