"""``python -m safety_dash readmodel build``: write the read model of cuts that have none, from the database.

Ingestion writes a new cut's files (the events' :mod:`~safety_dash.readmodel.files` and the lab values'
:mod:`~safety_dash.readmodel.labs`); this command writes them for cuts loaded before the read model existed, or
whose write failed. Here, above both, so that neither imports the other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine

from safety_dash.readmodel.cuts import load_cut, load_cuts, load_studies
from safety_dash.readmodel.files import EVENTS_FILE, cut_folder, folder_megabytes, read_model_root, save_read_model
from safety_dash.readmodel.labs import RECORDS_FILE, lab_folder, save_lab_read_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltReadModel:
    """What ``readmodel build`` did for one cut: the events' files and the lab read model."""

    study_id: str
    run_id: int
    folder: Path
    status: str  # "written", "present" or "failed: ..."
    megabytes: float
    seconds: float
    labs: str = ""  # the lab read model: "written", "present" or "failed: ..."
    lab_megabytes: float = 0.0
    lab_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether the events' files or the lab read model could not be written."""
        return self.status.startswith("failed") or self.labs.startswith("failed")


def _write(what: str, run_id: int, write: Callable[[], Path]) -> str:
    """``write`` one part of cut ``run_id``'s read model: 'written', or 'failed: ...' (logged)."""
    try:
        write()
    except Exception as error:  # one cut's failure does not stop the others; the command exits 1
        log.exception("writing the %s of cut %s failed", what, run_id)
        return f"failed: {type(error).__name__}: {error}"
    return "written"


def build_read_models(
    engine: Engine,
    study_id: str | None = None,
    run_id: int | None = None,
    replace: bool = False,
    root: Path | None = None,
    report: Callable[[BuiltReadModel], None] | None = None,
) -> list[BuiltReadModel]:
    """Write the read model of cut ``run_id``, else of every data cut of ``study_id``, else of every study, where
    it is missing (every one with ``replace``): the events' files, then the lab read model (the cut's LB records
    graded from the database: minutes for millions of records); ``report`` is told of each cut as it is done."""
    root = root or read_model_root()
    if run_id is not None:
        cut = load_cut(engine, run_id)
        if cut is None or cut.status != "succeeded":
            raise ValueError(f"run {run_id} is not a succeeded data cut; `python -m safety_dash ingest` prints run ids")
        if study_id is not None and cut.study_id != study_id:
            raise ValueError(f"data cut {run_id} belongs to study {cut.study_id}, not {study_id}")
        run_ids = [run_id]
    else:
        studies = [study_id] if study_id is not None else load_studies(engine)
        run_ids = [int(r) for study in studies for r in load_cuts(engine, study)["run_id"]]
        if study_id is not None and not run_ids:
            raise ValueError(f"study {study_id} has no data cut; `python -m safety_dash ingest` makes one")
    built = []
    for number in run_ids:
        cut = load_cut(engine, number)
        folder, labs = cut_folder(root, cut), lab_folder(root, cut)
        started = time.perf_counter()
        if (folder / EVENTS_FILE).is_file() and not replace:
            status = "present"
        else:
            status = _write("read model", number, lambda n=number: save_read_model(engine, n, root, replace=replace))
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        if (labs / RECORDS_FILE).is_file() and not replace:
            lab_status = "present"
        else:
            lab_status = _write(
                "lab read model", number, lambda n=number: save_lab_read_model(engine, n, root, replace=replace)
            )
        result = BuiltReadModel(cut.study_id, number, folder, status, folder_megabytes(folder), seconds, lab_status,
                                folder_megabytes(labs), time.perf_counter() - started)  # fmt: skip
        if report is not None:
            report(result)
        built.append(result)
    return built


def run_build_command(database_url: str, study_id: str | None, run_id: int | None, replace: bool) -> int:
    """``python -m safety_dash readmodel build``: write the missing read models, print one line per cut (the events'
    files, then ``labs:`` the lab read model); exit code 0, or 1 when a cut could not be written (or the cut asked
    for does not exist)."""
    from safety_dash.db.engine import get_engine

    def report(result: BuiltReadModel) -> None:
        print(f"{result.study_id} cut {result.run_id}: {result.status}, {result.megabytes:.1f} MB, "
              f"{result.seconds:.1f} s  {result.folder}; labs: {result.labs}, {result.lab_megabytes:.1f} MB, "
              f"{result.lab_seconds:.1f} s", flush=True)  # fmt: skip

    try:
        built = build_read_models(get_engine(database_url), study_id, run_id, replace, report=report)
    except ValueError as error:
        print(f"error: {error}")
        return 1
    if not built:
        print("no data cut yet: nothing to write")
    return 1 if any(result.failed for result in built) else 0
