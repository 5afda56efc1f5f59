"""Fixtures of the committee pack tests: the demo study and the CDISC pilot ingested once per session, their packs
made once and read back as text with pypdf."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from safety_dash.alerts.evaluate import evaluate_alerts_for_cut
from safety_dash.analysis import load_baskets
from safety_dash.config import DEFAULT_BASKETS_FILE
from safety_dash.db.engine import dispose_engine, get_engine, upgrade_database
from safety_dash.db.studies import configure_study
from safety_dash.ingest.demo import write_demo_study
from safety_dash.ingest.pipeline import ingest_extract
from safety_dash.report import make_committee_pack
from tests.conftest import CDISC_PILOT, require_shared

DEMO_RULES = Path(__file__).resolve().parents[2] / "safety_dash" / "alerts" / "demo_rules.yaml"
PILOT_CUTOFF = dt.date(2015, 12, 31)  # after the pilot's last record (as tests/metrics/test_cdisc_pilot.py)


@dataclasses.dataclass(frozen=True)
class Pack:
    """A pack made for a test: the database, the cut, the file and its text, page by page."""

    url: str
    run_ids: list[int]
    path: Path
    pages: list[str]
    landscape: list[bool]
    summary: dict

    @property
    def engine(self):
        return get_engine(self.url)

    def section(self, title: str) -> str:
        """The text of the pages of the section whose running header is ``title`` (e.g. '4. Incidence by ...'),
        whitespace collapsed to single spaces."""
        found = [page for page in self.pages if title in page]
        assert found, f"no page of the pack has the section {title!r}"
        return flatten(" ".join(found))


def flatten(text: str) -> str:
    """Text with every run of whitespace as one space (cells wrap onto lines in the PDF)."""
    return re.sub(r"\s+", " ", text)


def read_pack(path: Path) -> tuple[list[str], list[bool]]:
    reader = PdfReader(str(path))
    pages = [page.extract_text() for page in reader.pages]
    landscape = [float(page.mediabox.width) > float(page.mediabox.height) for page in reader.pages]
    return pages, landscape


@pytest.fixture(scope="session")
def demo_pack(tmp_path_factory) -> Pack:
    """The demo study (500 subjects, three cuts, alerts of the demo rules evaluated) and the PDF pack of its
    latest cut since the previous one."""
    folder = tmp_path_factory.mktemp("report_demo")
    summary = write_demo_study(folder / "demo")
    url = f"sqlite:///{folder / 'demo.db'}"
    upgrade_database(url)
    rules = folder / "rules"
    rules.mkdir()
    shutil.copy(DEMO_RULES, rules / "QL1706-DEMO.yaml")
    baskets = load_baskets(DEFAULT_BASKETS_FILE)
    run_ids = []
    for cut in ("cut1", "cut2", "cut3"):
        result = ingest_extract(url, folder / "demo" / cut)
        assert result.status == "succeeded", result.message
        with get_engine(url).begin() as connection:
            evaluate_alerts_for_cut(connection, result.run_id, rules, baskets)
        run_ids.append(result.run_id)
    path = make_committee_pack(get_engine(url), out_path=folder / "pack.pdf")
    pages, landscape = read_pack(path)
    yield Pack(url, run_ids, path, pages, landscape, summary)
    dispose_engine(url)


@pytest.fixture(scope="session")
def pilot_pack(tmp_path_factory) -> Pack:
    """The CDISC pilot's SDTM (grouped by the planned arm, as its published tables are) as one cut, and its pack."""
    sdtm = require_shared(CDISC_PILOT) / "sdtm"
    folder = tmp_path_factory.mktemp("report_pilot")
    url = f"sqlite:///{folder / 'pilot.db'}"
    upgrade_database(url)
    configure_study(url, "CDISCPILOT01", cohort_column="ARM")
    result = ingest_extract(url, sdtm, cutoff=PILOT_CUTOFF)
    assert result.status == "succeeded", result.message
    path = make_committee_pack(get_engine(url), out_path=folder / "pilot.pdf")
    pages, landscape = read_pack(path)
    yield Pack(url, [result.run_id], path, pages, landscape, {})
    dispose_engine(url)
