"""Scheduled ingestion: the inbox is watched, extracts archived or rejected, and never ingested twice."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

from sqlalchemy import func, inspect, select

from safety_dash.config import load_settings
from safety_dash.db.engine import get_engine
from safety_dash.db.models import IngestionRun
from safety_dash.jobs import ingest_inbox
from tests.ingest.builders import ae_row, standard_extract, write_extract

ROOT = Path(__file__).resolve().parents[1]


def settings_for(database_url: str, tmp_path: Path):
    return dataclasses.replace(
        load_settings(),
        database_url=database_url,
        inbox=tmp_path / "inbox",
        archive=tmp_path / "archive",
        rejected=tmp_path / "rejected",
        inbox_settle_seconds=3600.0,
    )


def drop_extracts(inbox: Path, names: list[str]) -> None:
    for name in names:  # the same records, one onset day differing by name: distinct files, nothing removed
        extract = standard_extract()
        day = zlib.crc32(name.encode()) % 28 + 1
        extract["ae"].append(ae_row("T1-002", 10, "Fatigue", f"2021-03-{day:02d}", "1"))
        write_extract(inbox / name, extract)
        (inbox / name / "cutoff.txt").write_text("2021-06-30\n")
        (inbox / name / "READY").touch()


def test_ingest_inbox_archives_good_extracts_in_name_order(database_url, tmp_path):
    settings = settings_for(database_url, tmp_path)
    drop_extracts(settings.inbox, ["2021-07-cut2", "2021-06-cut1"])
    results = ingest_inbox(settings)
    assert [r.status for r in results] == ["succeeded", "succeeded"]
    assert sorted(p.name for p in settings.archive.iterdir()) == ["2021-06-cut1", "2021-07-cut2"]
    assert [p.name for p in settings.inbox.iterdir() if not p.name.startswith(".")] == []
    assert results[0].domains["ae"]["new"] == 5
    assert results[1].domains["ae"] == {"read": 5, "loaded": 5, "quarantined": 0, "new": 0, "changed": 1,
                                        "unchanged": 4, "removed": 0}  # fmt: skip


def test_ingest_inbox_rejects_a_bad_extract_with_its_message_beside_it(database_url, tmp_path):
    settings = settings_for(database_url, tmp_path)
    drop_extracts(settings.inbox, ["cut1"])
    (settings.inbox / "cut1" / "ae.csv").write_bytes(b"")
    [result] = ingest_inbox(settings)
    assert result.status == "failed"
    assert (settings.rejected / "cut1" / "READY").exists()
    error = (settings.rejected / "cut1.error.txt").read_text()
    assert error == f"run {result.run_id} failed: ae.csv: the file is empty (0 bytes)\n"


def test_ingest_inbox_waits_for_an_extract_to_settle(database_url, tmp_path):
    settings = settings_for(database_url, tmp_path)
    drop_extracts(settings.inbox, ["cut1"])
    (settings.inbox / "cut1" / "READY").unlink()
    assert ingest_inbox(settings) == []  # just written, no READY marker: still being copied
    assert ingest_inbox(dataclasses.replace(settings, inbox_settle_seconds=0.0))[0].status == "succeeded"


def test_two_schedulers_never_ingest_one_extract_twice(database_url, tmp_path):
    settings = settings_for(database_url, tmp_path)
    names = [f"cut{i}" for i in range(1, 7)]
    drop_extracts(settings.inbox, names)
    results: list = []
    errors: list = []

    def run_scheduler_job() -> None:
        try:
            results.extend(ingest_inbox(settings))
        except Exception as error:  # a job that crashes is a failure of this test, not a warning
            errors.append(error)

    workers = [threading.Thread(target=run_scheduler_job) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert len(results) == 6
    assert sorted(p.name for p in settings.archive.iterdir()) == names
    with get_engine(database_url).connect() as connection:
        cuts = connection.execute(select(IngestionRun.checksums).where(IngestionRun.status == "succeeded")).all()
    # one cut per extract; a run overtaken by the other scheduler's commit is renumbered, not a second cut
    assert len(cuts) == 6 and len({str(sorted(c.checksums.items())) for c in cuts}) == 6


def test_scheduler_process_ingests_the_inbox_with_its_jobs_in_the_database(tmp_path):
    data = tmp_path / "data"
    env = {**os.environ, "SAFETY_DASH_DATA_DIR": str(data), "SAFETY_DASH_INGEST_INTERVAL_MINUTES": "0.02"}
    drop_extracts(data / "inbox", ["cut1"])
    process = subprocess.Popen([sys.executable, "-m", "safety_dash", "scheduler"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (data / "archive" / "cut1").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        drop_extracts(data / "inbox", ["cut2"])  # a second look at the inbox, 1.2 s later
        while not (data / "archive" / "cut2").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert (data / "archive" / "cut1").exists(), output
    assert (data / "archive" / "cut2").exists(), output
    engine = get_engine(f"sqlite:///{data / 'safety_dash.db'}")
    assert "apscheduler_jobs" in inspect(engine).get_table_names()
    with engine.connect() as connection:
        statuses = connection.execute(select(IngestionRun.status, IngestionRun.trigger)).fetchall()
    assert [tuple(s) for s in statuses] == [("succeeded", "scheduler"), ("succeeded", "scheduler")]


def test_ingest_inbox_archives_an_extract_it_has_already_ingested(database_url, tmp_path):
    # A kill after the commit but before the archive move leaves the extract claimed; once back in the inbox it
    # must not become a second cut.
    settings = settings_for(database_url, tmp_path)
    drop_extracts(settings.inbox, ["cut1"])
    shutil.copytree(settings.inbox / "cut1", tmp_path / "copy")
    [first] = ingest_inbox(settings)
    shutil.copytree(tmp_path / "copy", settings.inbox / "cut1-again")
    assert ingest_inbox(settings) == []
    assert sorted(p.name for p in settings.archive.iterdir()) == ["cut1", "cut1-again"]
    with get_engine(database_url).connect() as connection:
        assert connection.execute(select(func.count()).select_from(IngestionRun)).scalar_one() == 1
    assert first.status == "succeeded"


def test_a_cut_left_without_its_alert_check_is_checked_by_the_next_tick(database_url, tmp_path):
    from safety_dash.alerts.models import AlertEvaluation
    from safety_dash.ingest.pipeline import ingest_extract

    settings = settings_for(database_url, tmp_path)
    cut = ingest_extract(database_url, write_extract(tmp_path / "cut1", standard_extract()))  # no follow-up: a crash
    evaluated = select(AlertEvaluation.run_id).where(AlertEvaluation.run_id == cut.run_id)
    with get_engine(database_url).connect() as connection:
        assert connection.execute(evaluated).fetchall() == []
    assert ingest_inbox(settings) == []  # an empty inbox; the tick still finishes the follow-up
    with get_engine(database_url).connect() as connection:
        assert [r.run_id for r in connection.execute(evaluated)] == [cut.run_id]
    ingest_inbox(settings)
    with get_engine(database_url).connect() as connection:  # evaluated once, not on every tick
        assert len(connection.execute(evaluated).fetchall()) == 1
