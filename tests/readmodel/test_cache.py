"""A worker's frames of a cut: opened from the read model, else read from the database and logged, once per cut."""

from __future__ import annotations

import logging
import shutil

import pytest

from safety_dash.db.engine import get_engine
from safety_dash.readmodel import cache, load_cut, load_frames, save_read_model
from safety_dash.readmodel.files import cut_folder


def test_a_cut_is_opened_from_its_file_once_per_process(ingested, caplog):
    engine = get_engine(ingested.url)
    cut = load_cut(engine, ingested.run_ids[-1])
    with caplog.at_level(logging.INFO, logger="safety_dash.readmodel.cache"):
        frames = load_frames(engine, cut.run_id, cut.derived_at)
    assert frames.source == "file" and frames.cut == cut
    assert "opened from its read model" in caplog.text
    assert load_frames(engine, cut.run_id, cut.derived_at) is frames


def test_a_cut_without_a_file_is_read_from_the_database_and_logged(ingested, caplog):
    engine = get_engine(ingested.url)
    cut = load_cut(engine, ingested.run_ids[0])
    shutil.rmtree(cut_folder(ingested.root, cut))
    with caplog.at_level(logging.WARNING, logger="safety_dash.readmodel.cache"):
        frames = load_frames(engine, cut.run_id, cut.derived_at)
    assert frames.source == "database" and len(frames.events) > 0
    assert f"readmodel build --cut {cut.run_id}" in caplog.text
    assert not cut_folder(ingested.root, cut).exists()  # a worker never writes the read model


def test_a_file_written_later_replaces_the_database_copy(ingested, monkeypatch):
    engine = get_engine(ingested.url)
    cut = load_cut(engine, ingested.run_ids[0])
    shutil.rmtree(cut_folder(ingested.root, cut))
    first = load_frames(engine, cut.run_id, cut.derived_at)
    assert first.source == "database"
    save_read_model(engine, cut.run_id)  # e.g. `readmodel build`, after the worker read the database
    assert load_frames(engine, cut.run_id, cut.derived_at) is first  # looked for again only now and then
    monkeypatch.setattr(cache, "RECHECK_SECONDS", 0.0)
    again = load_frames(engine, cut.run_id, cut.derived_at)
    assert again.source == "file" and again.events["AE_ID"].tolist() == first.events["AE_ID"].tolist()


def test_a_damaged_file_falls_back_to_the_database(ingested, caplog):
    engine = get_engine(ingested.url)
    cut = load_cut(engine, ingested.run_ids[1])
    (cut_folder(ingested.root, cut) / "events.arrow").write_bytes(b"not arrow at all")
    with caplog.at_level(logging.WARNING, logger="safety_dash.readmodel.cache"):
        frames = load_frames(engine, cut.run_id, cut.derived_at)
    assert frames.source == "database" and "could not be opened" in caplog.text


def test_an_unknown_cut_fails_with_a_sentence(ingested):
    with pytest.raises(ValueError, match="data cut 999 does not exist"):
        load_frames(get_engine(ingested.url), 999, "")


def test_the_cache_holds_a_few_cuts(ingested, monkeypatch):
    engine = get_engine(ingested.url)
    monkeypatch.setattr(cache, "FRAME_CACHE_SIZE", 2)
    cuts = [load_cut(engine, run_id) for run_id in ingested.run_ids]
    first = load_frames(engine, cuts[0].run_id, cuts[0].derived_at)
    for cut in cuts[1:]:
        load_frames(engine, cut.run_id, cut.derived_at)
    assert load_frames(engine, cuts[0].run_id, cuts[0].derived_at) is not first  # evicted, opened again
    assert len(cache._FRAMES) == 2
