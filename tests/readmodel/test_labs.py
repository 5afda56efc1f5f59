"""The lab read model: written at ingestion from the LB records in hand, equal to the cut graded from the database
(the reference), opened by the web workers instead of grading, rebuilt by the command."""

from __future__ import annotations

import dataclasses
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from safety_dash import lab_values
from safety_dash.analysis import load_cut_context, load_derived_subjects
from safety_dash.db.engine import get_engine
from safety_dash.ingest import pipeline
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.readmodel import build_read_models, load_cut, run_build_command, save_read_model
from safety_dash.readmodel import labcut as labcut_module
from safety_dash.readmodel import labs as labs_module
from safety_dash.readmodel.files import EVENTS_FILE, cut_folder
from safety_dash.readmodel.labcut import load_graded_lab_cut
from safety_dash.readmodel.labs import RECORDS_FILE, lab_folder, open_lab_cut
from safety_dash.views import labs as views
from safety_dash.views.ordering import order_groups
from tests.ingest.builders import lb_row, standard_extract, write_extract

FRAMES = ("tests", "table", "shifts", "hys_law", "worst", "records")
ARRAYS = ("worst_start", "record_start", "subject_ids", "subject_groups", "visits", "units")


def assert_same_lab_cut(found, expected) -> None:
    """Two LabCuts hold the same lab values: every frame and array equal, dtypes included."""
    for name in ("run_id", "study_id", "cutoff", "window_days", "groups"):
        assert getattr(found, name) == getattr(expected, name), name
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(found, name), getattr(expected, name), obj=name)
    for name in ARRAYS:
        assert getattr(found, name).dtype == getattr(expected, name).dtype, name
        np.testing.assert_array_equal(getattr(found, name), getattr(expected, name), err_msg=name)


def graded_from_database(url: str, run_id: int):
    """The reference: the cut's LB records read from the database and graded there (what a worker did)."""
    return load_graded_lab_cut(get_engine(url), run_id)


def recording(function, into: list):
    """``function``, keeping each result in ``into``."""

    def record(*args, **kwargs):
        into.append(function(*args, **kwargs))
        return into[-1]

    return record


def in_display_order(lab):
    """``lab`` with its cohorts in the order the views show them (as :func:`~safety_dash.views.labs.load_lab_cut`)."""
    return dataclasses.replace(lab, groups=tuple(order_groups(lab.groups)))


@pytest.fixture
def lab_caches():
    views.clear_lab_caches()
    yield
    views.clear_lab_caches()


@pytest.fixture
def demo_without_lb(demo_extract, tmp_path):
    """The demo's cut 2 extract without its LB file: its LB records are the ones cut 1 stored."""
    folder = tmp_path / "cut2-without-lb"
    shutil.copytree(demo_extract / "cut2", folder)
    for path in folder.glob("lb.*"):
        path.unlink()
    return folder


# --- written at ingestion, the same as graded from the database --------------------------------------------------


def test_the_lab_file_of_each_cut_equals_the_cut_graded_from_the_database(ingested):
    engine = get_engine(ingested.url)
    for run_id in ingested.run_ids:
        cut = load_cut(engine, run_id)
        from_file = open_lab_cut(ingested.root, cut)
        assert from_file is not None and lab_folder(ingested.root, cut) == cut_folder(ingested.root, cut) / "labs"
        assert from_file.has_labs and len(from_file.hys_law) > 0 and len(from_file.shifts) > 0
        assert_same_lab_cut(from_file, graded_from_database(ingested.url, run_id))
    # the planted potential Hy's law case of the demo is new in cut 3
    last = open_lab_cut(ingested.root, load_cut(engine, ingested.run_ids[-1]))
    assert last.hys_law["HYS_LAW"].sum() == 1


def test_a_cut_whose_extract_omits_lb_grades_the_stored_records(database_url, demo_extract, demo_without_lb, data_dir):
    first = ingest_extract(database_url, demo_extract / "cut1")
    second = ingest_extract(database_url, demo_without_lb)
    assert (first.status, second.status) == ("succeeded", "succeeded"), second.message
    assert "lb" not in second.domains and "lab records read" in second.seconds
    engine = get_engine(database_url)
    cut1, cut2 = (load_cut_context(engine, run.run_id) for run in (first, second))
    kept = lab_values.load_cut_lab_records(engine, cut2)
    assert kept["LB_ID"].tolist() == lab_values.load_cut_lab_records(engine, cut1)["LB_ID"].tolist()  # cut 1's
    from_file = open_lab_cut(data_dir / "readmodel", load_cut(engine, second.run_id))
    assert from_file.has_labs and from_file.cutoff == cut2.cutoff != cut1.cutoff
    assert_same_lab_cut(from_file, graded_from_database(database_url, second.run_id))


def test_ingestion_grades_the_records_in_hand_not_the_database(database_url, demo_extract, data_dir, monkeypatch):
    # Reading 4,160,000 LB records back took a worker most of 141 s; the records just loaded serve.
    def refused(*args, **kwargs):
        raise AssertionError("ingestion read the LB records back from the database to grade them")

    monkeypatch.setattr(lab_values, "load_cut_lab_records", refused)
    monkeypatch.setattr(lab_values, "compute_cut_lab_values", refused)
    runs = [ingest_extract(database_url, demo_extract / cut) for cut in ("cut1", "cut2")]
    assert [run.status for run in runs] == ["succeeded"] * 2
    assert all("lab values graded meanwhile" in run.seconds for run in runs)
    monkeypatch.undo()
    engine = get_engine(database_url)
    for run in runs:
        from_file = open_lab_cut(data_dir / "readmodel", load_cut(engine, run.run_id))
        assert from_file is not None, run.message
        assert_same_lab_cut(from_file, graded_from_database(database_url, run.run_id))


def test_the_records_and_subjects_ingestion_grades_are_those_the_database_returns(database_url, tmp_path, data_dir,
                                                                                  monkeypatch):  # fmt: skip
    # Cut 2's LB rows arrive in reverse order and one of them is quarantined (an impossible date): its cut 1
    # version stays current and comes back from the database, after this extract's rows.
    lb = [lb_row("T1-001", 1, "ALT", "30", "2021-01-04", LBBLFL="Y", VISIT="SCREENING"),
          lb_row("T1-001", 2, "ALT", "130", "2021-02-01", VISIT="WEEK 4"),
          lb_row("T1-002", 1, "BILI", "8", "2021-01-20", LBSTRESU="umol/L", LBSTNRHI="20"),
          lb_row("T1-003", 1, "ALT", "45", "2021-03-01", LBSTNRLO="", LBSTRESC="45")]  # fmt: skip
    changed = [*lb[:1], lb_row("T1-001", 2, "ALT", "131", "2021-13-45"), *lb[2:]]
    changed.append(lb_row("T1-002", 2, "ALT", "<5", "2021-02-02", LBSTRESN=""))
    seen = {"records": [], "subjects": []}
    for name, kept in (("prepare_lab_records", seen["records"]), ("prepare_lab_subjects", seen["subjects"])):
        monkeypatch.setattr(lab_values, name, recording(getattr(lab_values, name), kept))
    extract = standard_extract()
    first = ingest_extract(database_url, write_extract(tmp_path / "cut1", extract | {"lb": lb}))
    second = ingest_extract(database_url, write_extract(tmp_path / "cut2", extract | {"lb": changed[::-1]}),
                            accept_large_change=True)  # one LB row of five quarantined  # fmt: skip
    assert (first.status, second.status) == ("succeeded", "succeeded"), second.message
    assert second.domains["lb"]["quarantined"] == 1 and len(seen["records"]) == 2
    engine = get_engine(database_url)
    for run, records, subjects in zip((first, second), seen["records"], seen["subjects"], strict=True):
        cut = load_cut_context(engine, run.run_id)
        pd.testing.assert_frame_equal(records, lab_values.load_cut_lab_records(engine, cut))
        stored = load_derived_subjects(engine, run.run_id)[list(lab_values.LAB_SUBJECT_COLUMNS)]
        pd.testing.assert_frame_equal(subjects, stored)
    assert seen["records"][1]["LBSTRESN"].isna().sum() == 1 and len(seen["records"][1]) == 5
    assert "2021-02-01" in seen["records"][1]["LBDTC"].tolist()  # the kept version of the quarantined row
    assert_same_lab_cut(open_lab_cut(data_dir / "readmodel", load_cut(engine, second.run_id)),
                        graded_from_database(database_url, second.run_id))  # fmt: skip


def test_a_study_without_lb_gets_an_empty_lab_file(database_url, tmp_path, data_dir):
    run = ingest_extract(database_url, write_extract(tmp_path / "cut", standard_extract()))
    assert run.status == "succeeded"
    from_file = open_lab_cut(data_dir / "readmodel", load_cut(get_engine(database_url), run.run_id))
    assert from_file is not None and not from_file.has_labs
    assert_same_lab_cut(from_file, graded_from_database(database_url, run.run_id))


# --- the web workers open it ---------------------------------------------------------------------------------------


def test_a_worker_with_the_file_never_grades(ingested, lab_caches, monkeypatch, caplog):
    engine = get_engine(ingested.url)
    cut = load_cut(engine, ingested.run_ids[-1])
    expected = graded_from_database(ingested.url, cut.run_id)

    def refused(*args, **kwargs):
        raise AssertionError("the worker graded the cut's LB records")

    monkeypatch.setattr(lab_values, "compute_cut_lab_values", refused)
    lab = views.load_lab_cut(engine, cut.run_id, cut.derived_at)
    # the pages' views, as the Labs and eDISH callbacks and the subject panel call them
    test, direction = views.choose_lab_test(lab, None, None)
    assert (test, direction) == views.choose_lab_test(expected, None, None)
    rows = views.load_worst_grade_view(lab, None, None)
    pd.testing.assert_frame_equal(rows, views.load_worst_grade_view(expected, None, None))
    assert views.lab_test_options(lab) == views.lab_test_options(expected)
    pd.testing.assert_frame_equal(views.load_shift(lab, test, direction, None),
                                  views.load_shift(expected, test, direction, None))  # fmt: skip
    pd.testing.assert_frame_equal(views.load_worst_grade_distribution(lab, test, direction, None),
                                  views.load_worst_grade_distribution(expected, test, direction, None))  # fmt: skip
    boxes = views.load_visit_boxes(engine, cut.run_id, cut.derived_at, test, direction, None)
    assert len(boxes.boxes) > 0
    edish = views.load_cut_edish(engine, cut.run_id, cut.derived_at, None)
    assert edish.cases["USUBJID"].tolist() == expected.hys_law.loc[expected.hys_law["HYS_LAW"], "USUBJID"].tolist()
    case = edish.cases["USUBJID"].iloc[0]
    assert len(views.load_subject_labs(lab, case).records) == len(views.load_subject_labs(expected, case).records)
    # the file's cut, with the cohorts in display order: dose levels by dose
    assert_same_lab_cut(lab, in_display_order(expected))
    assert lab.groups[:3] == ("Ph I 0.3 mg/kg", "Ph I 1 mg/kg", "Ph I 3 mg/kg")
    # the records are the file's memory, not a copy
    assert not lab.records["XULN"].to_numpy().flags.writeable and not lab.record_start.flags.writeable

    # Without the file the same worker grades the database: the refusal above was on the path.
    shutil.rmtree(lab_folder(ingested.root, cut))
    views.clear_lab_caches()
    with caplog.at_level(logging.WARNING, logger="safety_dash.views.labs"):
        with pytest.raises(AssertionError, match="graded the cut"):
            views.load_lab_cut(engine, cut.run_id, cut.derived_at)
    assert f"readmodel build --cut {cut.run_id}" in caplog.text


def test_a_damaged_lab_file_falls_back_to_the_database(ingested, lab_caches, caplog):
    engine = get_engine(ingested.url)
    first, last = (load_cut(engine, run_id) for run_id in (ingested.run_ids[0], ingested.run_ids[-1]))
    # cut 1's records file in cut 3's folder: another cut's file, refused
    shutil.copy(lab_folder(ingested.root, first) / RECORDS_FILE, lab_folder(ingested.root, last) / RECORDS_FILE)
    with caplog.at_level(logging.ERROR, logger="safety_dash.views.labs"):
        lab = views.load_lab_cut(engine, last.run_id, last.derived_at)
    assert "could not be opened" in caplog.text
    assert_same_lab_cut(lab, in_display_order(graded_from_database(ingested.url, last.run_id)))


# --- failures --------------------------------------------------------------------------------------------------------


def test_a_failed_lab_write_does_not_fail_the_ingestion(database_url, demo_extract, data_dir, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(labs_module, "write_lab_files", broken)
    with caplog.at_level(logging.ERROR, logger="safety_dash.readmodel.labs"):
        result = ingest_extract(database_url, demo_extract / "cut1")
    assert result.status == "succeeded" and "lab read model written" in result.seconds
    assert "readmodel build --cut" in caplog.text and "No space left on device" in caplog.text
    cut = load_cut(get_engine(database_url), result.run_id)
    assert (cut_folder(data_dir / "readmodel", cut) / EVENTS_FILE).is_file()  # the events' files are there
    assert open_lab_cut(data_dir / "readmodel", cut) is None


def test_failed_grading_does_not_fail_the_ingestion(database_url, demo_extract, data_dir, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise MemoryError("out of memory")

    monkeypatch.setattr(labcut_module, "compute_lab_cut", broken)
    with caplog.at_level(logging.ERROR, logger="safety_dash.readmodel.labs"):
        result = ingest_extract(database_url, demo_extract / "cut1")
    assert result.status == "succeeded", result.message
    assert "without a lab read model" in caplog.text and "out of memory" in caplog.text
    assert open_lab_cut(data_dir / "readmodel", load_cut(get_engine(database_url), result.run_id)) is None


def test_the_lab_file_is_written_before_the_commit_and_removed_when_the_commit_fails(
    database_url, demo_extract, data_dir, monkeypatch
):
    written = []

    def write(connection, run_id, lab):
        folder = real(connection, run_id, lab)
        written.append(folder)
        assert (folder / RECORDS_FILE).is_file()
        status = connection.execute(text("SELECT status FROM ingestion_runs WHERE id = :i"), {"i": run_id}).scalar()
        assert status == "succeeded"  # marked in the transaction, not committed yet
        return folder

    def lap(clock, phase):
        if phase == "lab read model written":  # the last step before the commit
            raise RuntimeError("the commit failed")

    real = labs_module.save_lab_read_model_of_new_cut
    monkeypatch.setattr(labs_module, "save_lab_read_model_of_new_cut", write)
    monkeypatch.setattr(pipeline._PhaseClock, "lap", lap)
    result = pipeline.ingest_extract(database_url, demo_extract / "cut1")
    assert (result.status, result.message) == ("failed", "RuntimeError: the commit failed")
    assert len(written) == 1 and not written[0].exists() and not written[0].parent.exists()
    assert not list((data_dir / "readmodel").rglob(RECORDS_FILE))


# --- the command, and the events' files written again ---------------------------------------------------------------


def test_build_writes_missing_lab_files(ingested, capsys):
    engine = get_engine(ingested.url)
    missing = load_cut(engine, ingested.run_ids[1])
    shutil.rmtree(lab_folder(ingested.root, missing))  # as if the write at ingestion had failed
    built = build_read_models(engine, study_id=ingested.study_id)
    assert [(b.status, b.labs) for b in built] == [("present", "present"), ("present", "written"),
                                                   ("present", "present")]  # fmt: skip
    assert all(b.lab_megabytes > 0 for b in built)
    assert_same_lab_cut(open_lab_cut(ingested.root, missing), graded_from_database(ingested.url, missing.run_id))
    shutil.rmtree(lab_folder(ingested.root, missing))
    assert run_build_command(ingested.url, None, missing.run_id, False) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{ingested.study_id} cut {missing.run_id}: present,") and "; labs: written," in line


def test_build_reports_a_failed_lab_write_and_exits_1(ingested, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise OSError("No space left on device")

    shutil.rmtree(lab_folder(ingested.root, load_cut(get_engine(ingested.url), ingested.run_ids[0])))
    monkeypatch.setattr(labs_module, "write_lab_files", broken)
    assert run_build_command(ingested.url, None, ingested.run_ids[0], False) == 1
    assert "labs: failed: OSError: No space left on device" in capsys.readouterr().out


def test_the_events_files_written_again_keep_the_lab_files(ingested):
    engine = get_engine(ingested.url)
    cut = load_cut(engine, ingested.run_ids[0])
    before = (lab_folder(ingested.root, cut) / RECORDS_FILE).stat().st_ino
    save_read_model(engine, cut.run_id, replace=True)
    assert (lab_folder(ingested.root, cut) / RECORDS_FILE).stat().st_ino == before
    # a cut folder holding only the lab files (the events' write had failed) gets its events' files
    for name in ("subjects.arrow", EVENTS_FILE):
        (cut_folder(ingested.root, cut) / name).unlink()
    assert [(b.status, b.labs) for b in build_read_models(engine, run_id=cut.run_id)] == [("written", "present")]
    assert (cut_folder(ingested.root, cut) / EVENTS_FILE).is_file()
    assert_same_lab_cut(open_lab_cut(ingested.root, cut), graded_from_database(ingested.url, cut.run_id))
