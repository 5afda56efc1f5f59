"""The frames of a cut in a worker: opened once per process and cut, from the read model file, else the database.

A worker never writes the read model (ingestion and ``readmodel build`` do). When a cut has no file yet (loaded
before the read model existed, or its write failed or is still running) the worker reads the cut from the database,
says so in the log, and looks for the file again at most every :data:`RECHECK_SECONDS`: once it appears, the next
request opens it and the worker lets go of its own copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine

from safety_dash.readmodel.cuts import CutInfo, load_cut
from safety_dash.readmodel.files import EVENTS_FILE, cut_folder, open_cut_frames, read_model_root
from safety_dash.readmodel.frames import CutFrames, frames_from_database

log = logging.getLogger(__name__)
T = TypeVar("T")

FRAME_CACHE_SIZE = 4  # cuts held per worker (the current one, the one before, a shared link's)
RECHECK_SECONDS = 10.0  # how often a worker holding a cut read from the database looks for its file

_GUARD = threading.Lock()
_FRAMES: OrderedDict[tuple, CutFrames] = OrderedDict()
_LOCKS: dict[tuple, threading.Lock] = {}
_LOOKED_AT: dict[tuple, float] = {}  # key -> when the file of a cut read from the database was last looked for


def _file_has_appeared(key: tuple, frames: CutFrames) -> bool:
    """Whether the read model of frames read from the database exists now (looked for at most every
    :data:`RECHECK_SECONDS`)."""
    now = time.monotonic()
    with _GUARD:
        if now - _LOOKED_AT.get(key, 0.0) < RECHECK_SECONDS:
            return False
        _LOOKED_AT[key] = now
    try:
        return (cut_folder(read_model_root(), frames.cut) / EVENTS_FILE).is_file()
    except Exception:  # settings that cannot be read: keep what we have
        return False


def _cached(key: tuple) -> CutFrames | None:
    with _GUARD:
        frames = _FRAMES.get(key)
        if frames is not None:
            _FRAMES.move_to_end(key)
    if frames is not None and frames.source == "database" and _file_has_appeared(key, frames):
        with _GUARD:  # open the file instead: the next loader misses
            if _FRAMES.get(key) is frames:
                del _FRAMES[key]
        return None
    return frames


def _read(engine: Engine, run_id: int) -> CutFrames:
    return open_or_read(engine, run_id, "read model", open_cut_frames, frames_from_database,
                        "reading it from the database (slow for a large cut)")  # fmt: skip


def open_or_read(
    bind,
    run_id: int,
    name: str,
    open_file: Callable[[Path, CutInfo], T | None],
    from_database: Callable[[Any, CutInfo], T],
    fallback: str,
) -> T:
    """What a worker holds of cut ``run_id``: ``open_file(root, cut)`` from the read model, else (no file, or one
    that cannot be opened) ``from_database(bind, cut)``, logged with ``fallback`` (what that costs) and the command
    that writes the file. ``name`` names the file in the log ("read model", "lab read model"). Raises
    ``ValueError`` for a run that is not a cut."""
    cut = load_cut(bind, run_id)
    if cut is None:
        raise ValueError(f"data cut {run_id} does not exist; `python -m safety_dash ingest` lists the run ids it makes")
    started = time.perf_counter()
    root = found = None
    try:
        root = read_model_root()
        found = open_file(root, cut)
    except Exception:  # a damaged or mismatched file: the database still has the cut
        log.exception("the %s of cut %s under %s could not be opened; using the database", name, run_id, root)
    if found is not None:
        log.info("cut %s opened from its %s in %.2f s", run_id, name, time.perf_counter() - started)
        return found
    log.warning(
        "cut %s of study %s has no %s under %s: %s; `python -m safety_dash readmodel build --cut %s` writes it",
        run_id, cut.study_id, name, root, fallback, run_id,
    )  # fmt: skip
    found = from_database(bind, cut)
    log.info("cut %s: %s from the database in %.1f s", run_id, name, time.perf_counter() - started)
    return found


def load_frames(engine: Engine, run_id: int, derived_at: str) -> CutFrames:
    """The derived frames of cut ``run_id`` (derivations written at ``derived_at``), read once per process and cut,
    and again when the cut is re-derived. One loader per cut: requests arriving while it loads wait for it instead of
    reading it again."""
    key = (engine, int(run_id), derived_at)
    frames = _cached(key)
    if frames is not None:
        return frames
    with _GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        frames = _cached(key)
        if frames is not None:
            return frames
        frames = _read(engine, run_id)
        with _GUARD:
            _FRAMES[key] = frames
            _FRAMES.move_to_end(key)
            _LOOKED_AT[key] = time.monotonic()
            while len(_FRAMES) > FRAME_CACHE_SIZE:
                old, _ = _FRAMES.popitem(last=False)
                _LOOKED_AT.pop(old, None)
    return frames


def clear_frames() -> None:
    """Forget every cached cut (tests, and after deleting data)."""
    with _GUARD:
        _FRAMES.clear()
        _LOOKED_AT.clear()
