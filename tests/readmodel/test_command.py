"""``python -m safety_dash readmodel build``: writes what is missing, says what is present, refuses unknown cuts."""

from __future__ import annotations

import shutil

from safety_dash.cli import main


def test_readmodel_build_writes_missing_cuts_and_leaves_present_ones(ingested, monkeypatch, capsys):
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", ingested.url)
    first, second, third = ingested.run_ids
    shutil.rmtree(ingested.root / ingested.study_id / str(second))  # as if the write at ingestion had failed
    assert main(["readmodel", "build"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1].split(",")[0].strip() for line in lines] == ["present", "written", "present"]
    assert lines[1].startswith(f"{ingested.study_id} cut {second}: written")
    assert (ingested.root / ingested.study_id / str(second)).is_dir()
    assert main(["readmodel", "build", "--cut", "99999"]) == 1
    assert first < second < third
