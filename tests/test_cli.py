"""The command line as users' scripts call it: exit codes, the JSON shape, the summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.ingest.builders import ae_row, standard_extract, write_extract

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "safety_dash", *args],
        cwd=ROOT, env={**os.environ, **env}, input=stdin, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_ingest_json_prints_the_documented_shape(tmp_path):
    env = {"SAFETY_DASH_DATA_DIR": str(tmp_path / "data")}
    extract = standard_extract()
    extract["ae"].append(ae_row("T1-001", 9, AETOXGR="7"))
    folder = write_extract(tmp_path / "cut1", extract)
    # one of five AE rows quarantined is above the default 10 % limit: accepted on purpose here
    done = run_cli("ingest", str(folder), "--cutoff", "2021-06-30", "--json", "--accept-large-change", env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert set(summary) == {"run_id", "status", "message", "domains", "files"}
    assert summary["status"] == "succeeded"
    assert summary["domains"]["ae"] == {"read": 5, "loaded": 4, "quarantined": 1, "new": 4, "changed": 0,
                                        "unchanged": 0, "removed": 0}  # fmt: skip
    assert set(summary["domains"]) == {"dm", "ex", "ae"}


def test_ingest_prints_a_summary_naming_quarantined_rows(tmp_path):
    env = {"SAFETY_DASH_DATA_DIR": str(tmp_path / "data")}
    extract = standard_extract()
    extract["ae"].append(ae_row("T1-001", 9, AESTDTC="2021-13-45"))
    folder = write_extract(tmp_path / "cut1", extract)
    done = run_cli("ingest", str(folder), "--cutoff", "2021-06-30", "--accept-large-change", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Run 1 succeeded: study T1, cutoff 2021-06-30"
    assert "  ae.csv row 5, AESTDTC = '2021-13-45': '2021-13-45' is not a valid date: month 13 does not exist" in lines


def test_ingest_exits_2_on_a_file_problem(tmp_path):
    env = {"SAFETY_DASH_DATA_DIR": str(tmp_path / "data")}
    folder = write_extract(tmp_path / "cut1", standard_extract())
    (folder / "dm.csv").write_bytes(b"")
    done = run_cli("ingest", str(folder), "--json", env=env)
    assert done.returncode == 2
    summary = json.loads(done.stdout)
    assert (summary["status"], summary["message"]) == ("failed", "dm.csv: the file is empty (0 bytes)")
    zeros = {"read": 0, "loaded": 0, "quarantined": 0, "new": 0, "changed": 0, "unchanged": 0, "removed": 0}
    assert summary["domains"] == {"dm": zeros, "ex": zeros, "ae": zeros}


def test_ingest_rejects_a_malformed_cutoff(tmp_path):
    done = run_cli("ingest", str(tmp_path), "--cutoff", "2021-13-45", env={"SAFETY_DASH_DATA_DIR": str(tmp_path)})
    assert done.returncode == 2
    assert "'2021-13-45' is not a date YYYY-MM-DD" in done.stderr
