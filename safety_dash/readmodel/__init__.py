"""The read model of a data cut: what the pages read of a cut, written once per cut, shared by every web worker.

At the end of ingestion (and with ``python -m safety_dash readmodel build`` for cuts loaded before) the cut's
derived subjects and events are written to two Arrow IPC files under ``SAFETY_DASH_DATA_DIR/readmodel/<study>/
<run_id>/<derived>/`` (:mod:`~safety_dash.readmodel.files`). A web worker opens them memory-mapped and builds the
pages' frames over them in place (:mod:`~safety_dash.readmodel.frames`, :mod:`~safety_dash.readmodel.cache`): the
numbers and text codes stay in the operating system's page cache, one copy for all workers, and a worker that has
never seen the cut is ready in well under a second instead of reading a million rows from the database. A worker
never writes the read model; without a file it reads the cut from the database, as before, and logs it.

Why Arrow IPC files read in place (measured on the 1,000,000-AE cut of ``bench/callbacks.py``, SQLite, a busy
2-core machine, 2026-11-30; README.md, "Benchmarks", has the tables):

- a fresh worker had to read the cut from the database, 35-99 s, and then held 811 MB of its own after the first
  page; with the files it opens the cut in 0.1-0.5 s and holds 225 MB of its own (RSS 422 MB, peak 458-481 MB,
  the rest being the mapped files and shared libraries);
- the pages compute on whole columns (bincounts over a million events, masks, per-subject worst grades), so they
  need the rows of a cut as arrays; a file that holds exactly those arrays, uncompressed, is mapped instead of read,
  and mapped pages are shared between processes: 76 MB of page cache for every worker, against 77 MB (lz4 or zstd
  Arrow, 11 or 4 MB on disk) or 154 MB (Parquet, 10 MB on disk) decoded into each worker on every open;
- DuckDB or summary tables in the database would answer aggregates, but every filter combination of every page
  (grade, serious, related, cohort, SOC, PT, basket, the listing's column filters and sorts) would have to become
  SQL, and the listing still pages through the rows.

Ingestion writes the files from the derivations it has just computed
(:func:`safety_dash.analysis.derived_read_model_columns`, the same columns :func:`~safety_dash.readmodel.frames.
read_cut_columns` reads from the database, a test holds the two equal): 0.2 s for a million records, where reading
the cut back took 20-32 s. ``readmodel build`` reads the database, for cuts loaded before.

The lab pages' read model (:mod:`~safety_dash.readmodel.labs`, :class:`~safety_dash.readmodel.labcut.LabCut`) is
written the same way, in a ``labs`` folder beside the two files: ingestion grades the cut's LB records it has just
loaded while their versions are written, where a web worker grading a cut itself took 141 s and 5 GB at 4,160,000
records, once per worker.

Nothing here imports :mod:`safety_dash.web` or :mod:`safety_dash.views`; the web layer (``web/data.py``), the views
(``views/labs.py``) and anything else that shows a cut (the committee pack, the signals) stand on it.
"""

from safety_dash.readmodel.build import BuiltReadModel, build_read_models, run_build_command
from safety_dash.readmodel.cache import FRAME_CACHE_SIZE, clear_frames, load_frames
from safety_dash.readmodel.cuts import MAX_RUN_ID, CutInfo, load_cut, load_cuts, load_studies
from safety_dash.readmodel.files import (
    compute_new_cut_columns,
    read_model_root,
    remove_read_model_folder,
    save_read_model,
    save_read_model_of_new_cut,
)
from safety_dash.readmodel.frames import GROUP_COLUMN, CutFrames, TextCodes
from safety_dash.readmodel.labcut import LabCut, build_lab_cut, compute_lab_cut, load_graded_lab_cut
from safety_dash.readmodel.labs import (
    compute_new_cut_lab,
    open_lab_cut,
    remove_lab_read_model_folder,
    save_lab_read_model,
    save_lab_read_model_of_new_cut,
)

__all__ = [
    "FRAME_CACHE_SIZE",
    "GROUP_COLUMN",
    "MAX_RUN_ID",
    "BuiltReadModel",
    "CutFrames",
    "CutInfo",
    "LabCut",
    "TextCodes",
    "build_lab_cut",
    "build_read_models",
    "clear_frames",
    "compute_lab_cut",
    "compute_new_cut_columns",
    "compute_new_cut_lab",
    "load_cut",
    "load_cuts",
    "load_frames",
    "load_graded_lab_cut",
    "load_studies",
    "open_lab_cut",
    "read_model_root",
    "remove_lab_read_model_folder",
    "run_build_command",
    "save_lab_read_model",
    "save_lab_read_model_of_new_cut",
    "save_read_model",
    "remove_read_model_folder",
    "save_read_model_of_new_cut",
]
