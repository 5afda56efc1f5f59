"""Cuts in commit order (issue 9): two ingestions of one study that overlap never interleave their versions, and a
run killed at any point leaves the store as it was before or after, never between."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time

from sqlalchemy import and_, func, or_, select

from safety_dash.db.engine import get_engine
from safety_dash.db.models import AdverseEventVersion, DerivedEvent, DerivedSubject, IngestionRun, SubjectVersion
from safety_dash.ingest import pipeline
from safety_dash.ingest.pipeline import ingest_extract
from tests.ingest.builders import ae_row, dm_row, ex_row, standard_extract, write_extract

CUTOFF = dt.date(2021, 6, 30)


def visible(url: str, model, run_id: int) -> int:
    """Versions of ``model`` that are records of cut ``run_id``."""
    in_cut = and_(model.valid_from_run <= run_id, or_(model.valid_to_run.is_(None), model.valid_to_run > run_id))
    with get_engine(url).connect() as connection:
        return connection.execute(select(func.count()).select_from(model).where(in_cut)).scalar_one()


def derived(url: str, model, run_id: int) -> int:
    with get_engine(url).connect() as connection:
        return connection.execute(select(func.count()).select_from(model).where(model.run_id == run_id)).scalar_one()


def runs(url: str) -> list[tuple]:
    with get_engine(url).connect() as connection:
        rows = connection.execute(select(IngestionRun.id, IngestionRun.status, IngestionRun.message).order_by(
            IngestionRun.id)).fetchall()  # fmt: skip
    return [tuple(r) for r in rows]


def test_a_run_overtaken_by_a_later_one_commits_as_the_newer_cut(database_url, tmp_path, monkeypatch):
    base = ingest_extract(database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=CUTOFF)
    larger = standard_extract()  # two subjects and two AEs more than the base
    larger["dm"] += [dm_row("T1-004"), dm_row("T1-005")]
    larger["ex"] += [ex_row("T1-004", 1, "2021-01-04"), ex_row("T1-005", 1, "2021-01-04")]
    larger["ae"] += [ae_row("T1-004", 1, "Fatigue"), ae_row("T1-005", 1, "Fatigue")]
    changed = standard_extract()
    changed["ae"][0]["AETOXGR"] = "3"  # the base with one AE changed

    reached, release = threading.Event(), threading.Event()

    def hold_the_first(run_id: int) -> None:
        if threading.current_thread().name == "first":
            reached.set()
            assert release.wait(60)

    monkeypatch.setattr(pipeline, "before_load_hook", hold_the_first)
    outcome = {}
    first = threading.Thread(
        name="first",
        target=lambda: outcome.update(
            first=ingest_extract(database_url, write_extract(tmp_path / "a", larger), cutoff=CUTOFF)
        ),  # fmt: skip
    )
    first.start()
    assert reached.wait(60)  # the first run has read and validated, and holds before loading
    second = ingest_extract(database_url, write_extract(tmp_path / "b", changed), cutoff=CUTOFF)
    release.set()
    first.join(60)
    late = outcome["first"]

    assert second.status == late.status == "succeeded", (second.message, late.message)
    started_as = second.run_id - 1  # the first run's record was written before the second's
    assert late.run_id > second.run_id > started_as > base.run_id
    assert runs(database_url)[1:] == [
        (started_as, "renumbered",
         f"continued as run {late.run_id}: cut {second.run_id} of study T1 was committed while this run read "
         "its extract"),
        (second.run_id, "succeeded", second.message),
        (late.run_id, "succeeded", late.message),
    ]  # fmt: skip
    # Cut by cut, the stored versions and the derived tables describe the same records.
    expected = {base.run_id: (3, 4), second.run_id: (3, 4), late.run_id: (5, 6)}
    for run_id, (n_subjects, n_events) in expected.items():
        assert visible(database_url, SubjectVersion, run_id) == derived(database_url, DerivedSubject, run_id)
        assert visible(database_url, AdverseEventVersion, run_id) == derived(database_url, DerivedEvent, run_id)
        assert (visible(database_url, SubjectVersion, run_id), visible(database_url, AdverseEventVersion, run_id)) \
            == (n_subjects, n_events)  # fmt: skip
    # The late cut changed the grade back and added two AEs; the second cut's change is its own version.
    assert late.domains["ae"]["new"] == 2 and late.domains["ae"]["changed"] == 1


def test_a_run_killed_at_random_points_leaves_the_store_before_or_after(database_url, tmp_path):
    """kill -9 at a few random moments of an ingestion: every time, cut by cut, versions equal derivations and
    the newest cut is either the previous one or the whole new one."""
    from safety_dash.ingest.demo import write_demo_study

    write_demo_study(tmp_path / "demo", n_subjects=400, seed=7)
    environment = os.environ | {"SAFETY_DASH_DATABASE_URL": database_url, "SAFETY_DASH_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "safety_dash", "ingest"]
    subprocess.run(command + [str(tmp_path / "demo" / "cut1")], env=environment, check=True, capture_output=True)
    generator = random.Random(1706)
    for attempt in range(3):
        before = [r for r in runs(database_url) if r[1] == "succeeded"]
        process = subprocess.Popen(
            command + [str(tmp_path / "demo" / "cut2")], env=environment, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(generator.uniform(0.5, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        after = [r for r in runs(database_url) if r[1] == "succeeded"]
        assert after[: len(before)] == before
        assert len(after) - len(before) in (0, 1), attempt
        for run_id, _status, _message in after:
            assert visible(database_url, AdverseEventVersion, run_id) == derived(database_url, DerivedEvent, run_id)
            assert visible(database_url, SubjectVersion, run_id) == derived(database_url, DerivedSubject, run_id)
