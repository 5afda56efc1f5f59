"""``python -m safety_dash report``: writes the pack where asked; bad arguments get a sentence and exit 2."""

from __future__ import annotations

import pandas as pd
import pytest

from safety_dash.cli import main
from safety_dash.ingest.pipeline import ingest_extract
from tests.ingest.builders import standard_extract, write_extract


@pytest.fixture
def one_cut(database_url, tmp_path, monkeypatch):
    result = ingest_extract(database_url, write_extract(tmp_path / "cut", standard_extract()),
                            cutoff=pd.Timestamp("2021-06-30").date())  # fmt: skip
    assert result.status == "succeeded", result.message
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", database_url)
    return result.run_id


def test_report_writes_the_pack_as_html_and_pdf(one_cut, tmp_path, capsys):
    html = tmp_path / "pack.html"
    assert main(["report", "--out", str(html), "--format", "html"]) == 0
    assert capsys.readouterr().out == f"committee pack written to {html}\n"
    text = html.read_text(encoding="utf-8")
    assert "Committee pack" in text and "Study T1" in text
    pdf = tmp_path / "pack.pdf"
    assert main(["report", "--out", str(pdf)]) == 0
    assert pdf.read_bytes().startswith(b"%PDF")


def test_report_refuses_bad_arguments_with_a_sentence(one_cut, tmp_path, capsys):
    assert main(["report", "--cut", "99999", "--out", str(tmp_path / "x.pdf")]) == 2
    assert "data cut 99999 does not exist" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "missing" / "x.pdf")]) == 2
    assert "the folder" in capsys.readouterr().err
    assert main(["report", "--since", str(one_cut), "--out", str(tmp_path / "x.pdf")]) == 2
    assert "since" in capsys.readouterr().err.lower()
