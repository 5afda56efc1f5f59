"""A small demo study ingested into a new database, with the read model in a data folder of its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from safety_dash.ingest.demo import write_demo_study
from safety_dash.readmodel import clear_frames

DEMO_SUBJECTS = 60


@dataclasses.dataclass(frozen=True)
class IngestedStudy:
    """The database, the run ids of its three cuts, and where their read model lives."""

    url: str
    run_ids: tuple[int, ...]
    study_id: str
    root: Path


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """SAFETY_DASH_DATA_DIR set to a folder of this test's own (the read model goes under it), no cut cached."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("SAFETY_DASH_DATA_DIR", str(folder))
    clear_frames()
    yield folder
    clear_frames()


@pytest.fixture(scope="session")
def demo_extract(tmp_path_factory) -> Path:
    """The demo study's three extracts (written once per session)."""
    folder = tmp_path_factory.mktemp("readmodel-demo")
    write_demo_study(folder, n_subjects=DEMO_SUBJECTS, seed=7)
    return folder


@pytest.fixture
def ingested(database_url, demo_extract, data_dir) -> IngestedStudy:
    """The demo study's three cuts ingested into a new database (SQLite; PostgreSQL too when configured)."""
    from safety_dash.ingest.pipeline import ingest_extract

    runs = [ingest_extract(database_url, demo_extract / cut) for cut in ("cut1", "cut2", "cut3")]
    assert [run.status for run in runs] == ["succeeded"] * 3, [run.message for run in runs]
    return IngestedStudy(database_url, tuple(run.run_id for run in runs), runs[-1].study_id, data_dir / "readmodel")
