"""``python -m safety_dash labs --by test``: the documented columns and worst grades worked by hand from CTCAE v5.0."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from safety_dash.cli import main
from safety_dash.ingest.pipeline import ingest_extract
from tests.conftest import require_shared
from tests.ingest.builders import lb_row, standard_extract, write_extract

COLUMNS = ("group,test,test_name,n_subjects,n_with_value,n_worst_grade_1,n_worst_grade_2,n_worst_grade_3,"
           "n_worst_grade_4,n_grade_3_or_more,pct_grade_3_or_more,n_hys_law").split(",")  # fmt: skip


@pytest.fixture
def lab_cut(database_url, tmp_path):
    """Three subjects (standard extract: T1-001 and T1-003 in cohort A, T1-002 in B), ALT / bilirubin ULN 40 / 20.

    T1-001: first dose 2021-01-04, risk window to 2021-06-13; T1-002: dosed 2021-01-04, window to 2021-04-04;
    T1-003: dosed 2021-02-01, window to 2021-05-02."""
    extract = standard_extract()
    extract["lb"] = [
        lb_row("T1-001", 1, "ALT", "30", "2021-01-04", LBBLFL="Y"),  # baseline (first dose day: not on treatment)
        lb_row("T1-001", 2, "ALT", "130", "2021-02-01"),  # 3.25 x ULN: grade 2 (> 3-5 x ULN, baseline normal)
        lb_row("T1-001", 3, "BILI", "10", "2021-01-04", LBBLFL="Y", LBSTRESU="umol/L", LBSTNRHI="20"),
        lb_row("T1-001", 4, "BILI", "50", "2021-02-10", LBSTRESU="umol/L", LBSTNRHI="20"),  # 2.5 x ULN: grade 2
        lb_row("T1-002", 1, "ALT", "250", "2021-01-20"),  # 6.25 x ULN: grade 3 (> 5-20 x ULN)
        lb_row("T1-003", 1, "ALT", "45", "2021-03-01"),  # 1.125 x ULN: grade 1
        lb_row("T1-003", 2, "ALT", "900", "2021-06-01"),  # after the risk window (2021-05-02): not counted
    ]
    result = ingest_extract(
        database_url, write_extract(tmp_path / "cut", extract), cutoff=pd.Timestamp("2021-06-30").date()
    )
    assert result.status == "succeeded", result.message
    return database_url


def run_labs(monkeypatch, capsys, url: str, *args: str) -> str:
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", url)
    assert main(["labs", "--by", "test", *args]) == 0
    return capsys.readouterr().out


def test_labs_worst_grades_match_a_table_worked_by_hand(lab_cut, monkeypatch, capsys):
    table = pd.read_csv(io.StringIO(run_labs(monkeypatch, capsys, lab_cut)), keep_default_na=False, dtype=str)
    assert list(table.columns) == COLUMNS
    rows = {(r["group"], r["test"]): r for _, r in table.iterrows()}
    alt = rows[("ALL", "ALT")]
    assert alt["test_name"] == "Alanine Aminotransferase (high)"
    counts = [alt[c] for c in ("n_subjects", "n_with_value", "n_worst_grade_1", "n_worst_grade_2", "n_worst_grade_3",
                               "n_worst_grade_4", "n_grade_3_or_more")]  # fmt: skip
    assert counts == ["3", "3", "1", "1", "1", "0", "1"]
    assert float(alt["pct_grade_3_or_more"]) == pytest.approx(100 / 3, rel=1e-12)
    # Hy's law: T1-001's ALT >= 3 x ULN on 2021-02-01 and bilirubin >= 2 x ULN nine days later.
    assert alt["n_hys_law"] == "1" and rows[("ALL", "BILI")]["n_hys_law"] == "1"
    bili = rows[("ALL", "BILI")]
    assert (bili["n_with_value"], bili["n_worst_grade_2"]) == ("1", "1")
    cohort_a, cohort_b = rows[("A", "ALT")], rows[("B", "ALT")]
    assert (cohort_a["n_subjects"], cohort_a["n_worst_grade_1"], cohort_a["n_worst_grade_2"]) == ("2", "1", "1")
    assert (cohort_b["n_subjects"], cohort_b["n_worst_grade_3"], cohort_b["pct_grade_3_or_more"]) == ("1", "1", "100.0")


def test_labs_min_grade_and_json(lab_cut, monkeypatch, capsys):
    records = json.loads(run_labs(monkeypatch, capsys, lab_cut, "--min-grade", "3", "--format", "json"))
    assert {r["test"] for r in records} == {"ALT"}  # only ALT reaches grade 3
    assert list(records[0]) == COLUMNS
    monkeypatch.setenv("SAFETY_DASH_DATABASE_URL", lab_cut)
    assert main(["labs", "--by", "test", "--group", "NOPE"]) == 2
    assert "--group NOPE is not a DM column" in capsys.readouterr().err


def test_labs_on_the_cdisc_pilot_finds_its_one_hys_law_case(database_url, tmp_path, monkeypatch, capsys):
    pyreadr = pytest.importorskip("pyreadr")
    folder = require_shared(Path(__file__).resolve().parents[2] / "shared" / "data" / "pharmaversesdtm")
    extract = tmp_path / "pilot"
    extract.mkdir()
    for name in ("dm", "ex", "ae", "lb"):
        next(iter(pyreadr.read_r(str(folder / f"{name}.rda")).values())).to_csv(extract / f"{name}.csv", index=False)
    assert ingest_extract(database_url, extract, cutoff=pd.Timestamp("2015-12-31").date()).status == "succeeded"
    table = pd.read_csv(io.StringIO(run_labs(monkeypatch, capsys, database_url)), keep_default_na=False, dtype=str)
    every = table[table["group"] == "ALL"].set_index("test")
    # 01-705-1186 (Placebo): ALT and AST >= 3 x ULN and bilirubin >= 2 x ULN on 2014-01-23 (worked in base R).
    assert (every.loc["ALT", "n_hys_law"], every.loc["AST", "n_hys_law"], every.loc["BILI", "n_hys_law"]) == ("1",) * 3
    placebo = table[(table["group"] == "Placebo") & (table["test"] == "ALT")].iloc[0]
    assert placebo["n_hys_law"] == "1"
