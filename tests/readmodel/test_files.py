"""The read model on disk: written at ingestion, the same frames as the database's, atomic, one folder per
derivation, rebuilt by the command."""

from __future__ import annotations

import logging
import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from safety_dash.db.engine import get_engine
from safety_dash.readmodel import build_read_models, load_cut, run_build_command, save_read_model
from safety_dash.readmodel import files as files_module
from safety_dash.readmodel.files import (
    EVENTS_FILE,
    SUBJECTS_FILE,
    ReadModelMismatch,
    cut_folder,
    derived_stamp,
    open_cut_frames,
    read_cut_files,
    remove_stale_folders,
)
from safety_dash.readmodel.frames import TEXT_COLUMNS, frames_from_database


def assert_same_frames(found, expected) -> None:
    """Two CutFrames hold the same cut: frames, codes and term lists equal, dtypes included."""
    pd.testing.assert_frame_equal(found.subjects, expected.subjects)
    pd.testing.assert_frame_equal(found.events, expected.events)
    assert set(found.text) == set(expected.text) == set(TEXT_COLUMNS)
    for name, (codes, texts) in expected.text.items():
        assert found.text[name][0].dtype == codes.dtype, name
        np.testing.assert_array_equal(found.text[name][0], codes)
        assert list(found.text[name][1]) == list(texts), name
    assert list(found.socs) == list(expected.socs) and list(found.pts) == list(expected.pts)
    np.testing.assert_array_equal(found.pt_soc, expected.pt_soc)
    assert found.cohorts == expected.cohorts


# --- written at ingestion, read back the same -------------------------------------------------------------------


def test_ingestion_writes_the_read_model_of_each_cut(ingested):
    engine = get_engine(ingested.url)
    for run_id in ingested.run_ids:
        cut = load_cut(engine, run_id)
        folder = cut_folder(ingested.root, cut)
        assert folder == ingested.root / ingested.study_id / str(run_id) / derived_stamp(cut.derived_at)
        assert (folder / SUBJECTS_FILE).is_file() and (folder / EVENTS_FILE).is_file()
        assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_frames_from_the_file_equal_the_frames_from_the_database(ingested):
    engine = get_engine(ingested.url)
    for run_id in ingested.run_ids:
        cut = load_cut(engine, run_id)
        from_file = open_cut_frames(ingested.root, cut)
        from_database = frames_from_database(engine, cut)
        assert (from_file.source, from_database.source) == ("file", "database")
        assert len(from_file.events) > 0
        assert_same_frames(from_file, from_database)


def test_ingestion_writes_the_file_from_the_derivations_it_holds(database_url, demo_extract, data_dir, monkeypatch):
    # Reading the cut back from the database took 20-32 s of a million-record ingestion; the frames in hand serve.
    from safety_dash.ingest.pipeline import ingest_extract

    def refused(*args, **kwargs):
        raise AssertionError("ingestion read the cut back from the database to write its read model")

    monkeypatch.setattr(files_module, "read_cut_columns", refused)
    runs = [ingest_extract(database_url, demo_extract / cut) for cut in ("cut1", "cut2")]
    engine = get_engine(database_url)
    for run in runs:
        cut = load_cut(engine, run.run_id)
        assert (cut_folder(data_dir / "readmodel", cut) / EVENTS_FILE).is_file(), run.message
        assert_same_frames(open_cut_frames(data_dir / "readmodel", cut), frames_from_database(engine, cut))


def test_the_file_is_written_before_the_commit_and_removed_when_the_commit_fails(
    database_url, demo_extract, data_dir, monkeypatch
):
    # A worker must find the file the moment it sees the cut; a cut that never commits leaves no folder behind.
    import safety_dash.readmodel as readmodel
    from safety_dash.ingest import pipeline

    written = []

    def write(connection, run_id, columns):
        folder = real(connection, run_id, columns)
        written.append(folder)
        assert (folder / EVENTS_FILE).is_file()
        status = connection.execute(text("SELECT status FROM ingestion_runs WHERE id = :i"), {"i": run_id}).scalar()
        assert status == "succeeded"  # marked in the transaction, not committed yet
        return folder

    def lap(clock, phase):
        if phase == "read model written":  # the last step before the commit
            raise RuntimeError("the commit failed")

    real = readmodel.save_read_model_of_new_cut
    monkeypatch.setattr(readmodel, "save_read_model_of_new_cut", write)
    monkeypatch.setattr(pipeline._PhaseClock, "lap", lap)
    result = pipeline.ingest_extract(database_url, demo_extract / "cut1")
    assert (result.status, result.message) == ("failed", "RuntimeError: the commit failed")
    assert len(written) == 1 and not written[0].exists()
    assert not list((data_dir / "readmodel").rglob(EVENTS_FILE))


def test_the_file_is_read_in_place_not_copied(ingested):
    engine = get_engine(ingested.url)
    frames = open_cut_frames(ingested.root, load_cut(engine, ingested.run_ids[-1]))
    events = frames.events
    for name in ("AE_ID", "ASTDT", "SERIOUS", "SUBJECT_POS"):  # views over the memory-mapped file: read-only
        assert not events[name].to_numpy().flags.writeable, name
    # the categoricals and the code columns are the text codes themselves, not copies
    assert np.shares_memory(events["AETERM"].cat.codes.to_numpy(), frames.text["AETERM"][0])
    assert np.shares_memory(events["PT_CODE"].to_numpy(), frames.text["PT"][0])
    assert isinstance(events["AETERM"].dtype, pd.CategoricalDtype) and events["PT"].dtype == object


def test_frames_stay_readable_once_the_file_is_removed(ingested):
    engine = get_engine(ingested.url)
    cut = load_cut(engine, ingested.run_ids[-1])
    frames = open_cut_frames(ingested.root, cut)
    expected = frames.events["AE_ID"].sum()
    for path in (cut_folder(ingested.root, cut) / name for name in (SUBJECTS_FILE, EVENTS_FILE)):
        path.unlink()  # a worker keeps its mapping of a replaced file
    assert frames.events["AE_ID"].sum() == expected


# --- where, when and how it is written --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("derived_at", "stamp"),
    [
        ("2026-11-30 10:15:00.123456", "20261130T101500.123456Z"),  # SQLite: UTC without an offset
        ("2026-11-30 11:15:00.123456+01:00", "20261130T101500.123456Z"),  # PostgreSQL: with one
        ("2026-11-30 10:15:00", "20261130T101500.000000Z"),
    ],
)
def test_derived_stamp_names_the_same_instant_alike(derived_at, stamp):
    assert derived_stamp(derived_at) == stamp


def test_derived_stamp_of_a_text_that_is_no_time_is_still_a_safe_name():
    stamp = derived_stamp("not a time/..")
    assert stamp.startswith("x") and stamp.isalnum()


def test_a_re_derived_cut_gets_a_new_folder(ingested):
    engine = get_engine(ingested.url)
    run_id = ingested.run_ids[-1]
    before = cut_folder(ingested.root, load_cut(engine, run_id))
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE ingestion_runs SET derived_at = :at WHERE id = :id"),
            {"at": "2030-01-02 03:04:05.000006", "id": run_id},
        )
    after = save_read_model(engine, run_id)
    assert after != before and after.name == "20300102T030405.000006Z"
    assert before.is_dir()  # kept for a day: a worker may still be showing it
    removed = remove_stale_folders(after.parent, keep=after.name, now=time.time() + 2 * 86400)
    assert removed == [before] and not before.exists() and after.is_dir()


def test_remove_stale_folders_leaves_a_writer_at_work_alone(tmp_path):
    run_folder = tmp_path / "STUDY" / "3"
    (run_folder / "20261130T101500.000000Z").mkdir(parents=True)
    (run_folder / ".tmp-20261130T101500.000000Z-abc").mkdir()  # another writer, now
    (run_folder / ".tmp-20261130T101500.000000Z-old").mkdir()  # a writer that died two hours ago
    two_hours_ago = time.time() - 7200
    os.utime(run_folder / ".tmp-20261130T101500.000000Z-old", (two_hours_ago, two_hours_ago))
    remove_stale_folders(run_folder, keep="20261130T101500.000000Z")
    kept = sorted(p.name for p in run_folder.iterdir())
    assert kept == [".tmp-20261130T101500.000000Z-abc", "20261130T101500.000000Z"]


def test_an_existing_folder_is_kept_unless_replaced(ingested):
    engine = get_engine(ingested.url)
    run_id = ingested.run_ids[0]
    folder = cut_folder(ingested.root, load_cut(engine, run_id))
    written = (folder / EVENTS_FILE).stat().st_mtime_ns
    assert save_read_model(engine, run_id) == folder
    assert (folder / EVENTS_FILE).stat().st_mtime_ns == written
    assert save_read_model(engine, run_id, replace=True) == folder
    assert (folder / EVENTS_FILE).stat().st_mtime_ns != written
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]


def test_files_of_two_writes_or_another_cut_are_refused(ingested):
    engine = get_engine(ingested.url)
    first, last = (load_cut(engine, run_id) for run_id in (ingested.run_ids[0], ingested.run_ids[-1]))
    folder = cut_folder(ingested.root, last)
    with pytest.raises(ReadModelMismatch, match="not"):
        read_cut_files(folder, first)  # the files name cut 3, not cut 1
    other = cut_folder(ingested.root, first) / SUBJECTS_FILE
    (folder / SUBJECTS_FILE).write_bytes(other.read_bytes())
    with pytest.raises(ReadModelMismatch):
        read_cut_files(folder, last)


def test_a_failed_write_does_not_fail_the_ingestion(database_url, demo_extract, data_dir, monkeypatch, caplog):
    from safety_dash.ingest.pipeline import ingest_extract

    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(files_module, "write_cut_files", broken)
    with caplog.at_level(logging.ERROR, logger="safety_dash.readmodel.files"):
        result = ingest_extract(database_url, demo_extract / "cut1")
    assert result.status == "succeeded" and "read model written" in result.seconds
    assert "readmodel build --cut" in caplog.text and "No space left on device" in caplog.text
    assert not (data_dir / "readmodel").exists() or not any((data_dir / "readmodel").rglob(EVENTS_FILE))


def test_failed_read_model_columns_do_not_fail_the_ingestion(database_url, demo_extract, data_dir, monkeypatch, caplog):
    # The columns are built while the derivations are written; a fault there costs the file, not the cut.
    from safety_dash import analysis
    from safety_dash.ingest.pipeline import ingest_extract

    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(analysis, "derived_read_model_columns", broken)
    with caplog.at_level(logging.ERROR, logger="safety_dash.readmodel.files"):
        result = ingest_extract(database_url, demo_extract / "cut1")
    assert result.status == "succeeded", result.message
    assert "without a read model" in caplog.text and "out of memory" in caplog.text
    assert not (data_dir / "readmodel").exists() or not any((data_dir / "readmodel").rglob(EVENTS_FILE))
    cut = load_cut(get_engine(database_url), result.run_id)
    assert len(frames_from_database(get_engine(database_url), cut).events) > 0  # the cut is whole in the database


# --- the command ------------------------------------------------------------------------------------------------


def test_build_writes_what_is_missing_and_keeps_what_is_there(ingested):
    engine = get_engine(ingested.url)
    missing = cut_folder(ingested.root, load_cut(engine, ingested.run_ids[1]))
    shutil.rmtree(missing)  # the events' files and the lab read model in it
    built = build_read_models(engine, study_id=ingested.study_id)
    assert [(b.run_id, b.status) for b in built] == [
        (ingested.run_ids[0], "present"),
        (ingested.run_ids[1], "written"),
        (ingested.run_ids[2], "present"),
    ]
    assert (missing / EVENTS_FILE).is_file() and all(b.megabytes > 0 for b in built)
    again = build_read_models(engine, run_id=ingested.run_ids[0], replace=True)
    assert [(b.run_id, b.status) for b in again] == [(ingested.run_ids[0], "written")]


def test_build_command_prints_each_cut_and_fails_with_a_sentence(ingested, capsys):
    assert run_build_command(ingested.url, None, None, False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(": present," in line for line in lines)
    assert run_build_command(ingested.url, None, 999, False) == 1
    assert "run 999 is not a succeeded data cut" in capsys.readouterr().out
    assert run_build_command(ingested.url, "OTHER", None, False) == 1
    assert "study OTHER has no data cut" in capsys.readouterr().out
    assert run_build_command(ingested.url, "OTHER", ingested.run_ids[0], False) == 1
    assert f"belongs to study {ingested.study_id}" in capsys.readouterr().out
