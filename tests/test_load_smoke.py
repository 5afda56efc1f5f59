"""The load smoke test (issue 14, part 4): ``bench/load.py`` small, as CI runs it.

Three signed-in sessions walk the monitor's path (overview, explorer, a term, its listing, a subject, signals) for
20 seconds against two gunicorn workers on a small demo study, while a new cut of it is ingested; any failed
request fails the test. On PostgreSQL when SAFETY_DASH_TEST_POSTGRES_URL is set (CI), else on SQLite. About 40 s.
The figures of the full run (50 sessions, 1,000,000 AEs) are in the README's Benchmarks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL_VARIABLE

ROOT = Path(__file__).resolve().parents[1]
LAST_LINE = re.compile(
    r"^load: (\d+) requests, (\d+) errors, p95 (\d+) ms, cold first page (\d+\.\d) s, peak worker RSS (\d+) MB$"
)
# Small: the demo's own records (no grown copies with variant PTs), two workers, a few sessions.
SMALL = ["--subjects", "80", "--events", "400", "--workers", "2", "--sessions", "3", "--seconds", "20", "--think", "1"]


@pytest.mark.load_smoke
def test_load_smoke_walks_the_dashboard_without_an_error_while_a_cut_is_ingested(tmp_path):
    postgres = os.environ.get(POSTGRES_URL_VARIABLE)
    database = ["--database", "postgresql", "--postgres", postgres] if postgres else ["--database", "sqlite"]
    command = [sys.executable, str(ROOT / "bench" / "load.py"), *SMALL, *database, "--ingest-during",
               "--workdir", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr[-3000:]
    figures = LAST_LINE.match(lines[-1])
    assert figures is not None, (lines[-1], done.stderr[-3000:])
    requests, errors = int(figures[1]), int(figures[2])
    assert errors == 0, done.stdout[-4000:]
    assert done.returncode == 0, done.stderr[-3000:]
    assert requests >= 100, done.stdout[-4000:]  # the sessions did walk: every step of the path, several times
    assert "ingestion of the new cut during the load: exit 0, succeeded" in done.stdout
    assert "3 of 3 sessions signed in" in done.stdout
    steps = {line.split()[0] for line in lines if re.match(r"^(overview|explorer|term|listing|subject|signals) ", line)}
    assert steps == {"overview", "explorer", "term", "listing", "subject", "signals"}
