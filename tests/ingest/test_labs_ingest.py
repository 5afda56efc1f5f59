"""LB (and ADLB) in an extract: loaded per cut like AE, bad rows quarantined with reasons, optional per extract."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from safety_dash.db.engine import get_engine
from safety_dash.db.models import LabVersion, QuarantinedRow
from safety_dash.ingest.pipeline import ingest_extract
from tests.conftest import require_shared
from tests.ingest.builders import lb_row, standard_extract, write_extract

CUTOFF = pd.Timestamp("2021-06-30").date()


def with_labs(rows: list[dict]) -> dict[str, list[dict]]:
    extract = standard_extract()
    extract["lb"] = rows
    return extract


def current_labs(url: str) -> pd.DataFrame:
    with get_engine(url).connect() as connection:
        rows = connection.execute(select(LabVersion.__table__).where(LabVersion.valid_to_run.is_(None))).all()
    return pd.DataFrame(rows).sort_values("record_key").reset_index(drop=True)


def test_lb_rows_load_as_versioned_records_with_numbers(database_url, tmp_path):
    rows = [lb_row("T1-001", 1, "ALT", "30", "2021-01-04", LBBLFL="Y"), lb_row("T1-001", 2, "ALT", "130", "2021-02-01"),
            lb_row("T1-002", 1, "BILI", "", "2021-01-05", LBSTRESC="<0.5", LBSTNRHI="1.2")]  # fmt: skip
    result = ingest_extract(database_url, write_extract(tmp_path / "c1", with_labs(rows)), cutoff=CUTOFF)
    assert result.status == "succeeded", result.message
    assert result.to_json()["domains"]["lb"] == {
        "read": 3, "loaded": 3, "quarantined": 0, "new": 3, "changed": 0, "unchanged": 0, "removed": 0,
    }  # fmt: skip
    labs = current_labs(database_url)
    assert labs["record_key"].tolist() == ["T1-001|1", "T1-001|2", "T1-002|1"]
    assert labs["lbstresn"].tolist()[:2] == [30.0, 130.0] and pd.isna(labs["lbstresn"].iloc[2])
    assert labs["lbstresc"].iloc[2] == "<0.5" and labs["lbstnrhi"].iloc[2] == 1.2
    assert labs["lbblfl"].tolist() == ["Y", "", ""]

    # Cut 2: one value corrected, one record gone; cut 3 without an LB file leaves LB as it was.
    rows[1] = lb_row("T1-001", 2, "ALT", "131", "2021-02-01")
    folder = write_extract(tmp_path / "c2", with_labs(rows[:2]))
    refused = ingest_extract(database_url, folder, cutoff=CUTOFF)  # 1 of 3 LB records removed: above the 10 % guard
    assert refused.status == "failed" and "mark 1 of the previous cut's 3 LB records removed" in refused.message
    second = ingest_extract(database_url, folder, cutoff=CUTOFF, accept_large_change=True)
    counts = second.to_json()["domains"]["lb"]
    assert (counts["unchanged"], counts["changed"], counts["removed"]) == (1, 1, 1)
    third = ingest_extract(database_url, write_extract(tmp_path / "c3", standard_extract()), cutoff=CUTOFF)
    assert third.status == "succeeded" and "lb" not in third.to_json()["domains"]
    assert current_labs(database_url)["lbstresn"].tolist() == [30.0, 131.0]


def test_bad_lb_rows_are_quarantined_with_file_row_column_and_reason(database_url, tmp_path):
    rows = [lb_row("T1-001", 1), lb_row("T1-001", 2, LBSTRESN="4O"), lb_row("T1-009", 1),
            lb_row("T1-002", 1, date="2021-02-30"), lb_row("T1-002", 2, LBSTNRHI="high"),
            lb_row("T1-001", 1, value="31")]  # fmt: skip
    result = ingest_extract(  # 5 of 6 rows quarantined: accepted, since the test is about the reasons
        database_url, write_extract(tmp_path / "c1", with_labs(rows)), cutoff=CUTOFF, accept_large_change=True
    )
    assert result.status == "succeeded", result.message
    problems = [(q["file"], q["row_number"], q["column"], q["reason"]) for q in result.quarantine]
    assert problems == [
        ("lb.csv", 2, "LBSTRESN", "LBSTRESN (a numeric result or limit) '4O' is not a number"),
        ("lb.csv", 3, "USUBJID", "subject T1-009 is not in DM (or its DM row was quarantined)"),
        ("lb.csv", 4, "LBDTC", problems[2][3]),
        ("lb.csv", 5, "LBSTNRHI", "LBSTNRHI (a numeric result or limit) 'high' is not a number"),
        ("lb.csv", 6, "USUBJID,LBSEQ", "duplicate record key T1-001|1 (USUBJID, LBSEQ): row 1 has it already"),
    ]  # fmt: skip
    assert "2021-02-30" in problems[2][3]
    with get_engine(database_url).connect() as connection:
        stored = connection.execute(select(QuarantinedRow.domain, QuarantinedRow.row_number)).all()
    # rows are numbered from the first data row
    assert sorted(stored) == [("lb", 2), ("lb", 3), ("lb", 4), ("lb", 5), ("lb", 6)]
    assert result.to_json()["domains"]["lb"]["loaded"] == 1


def test_an_lb_file_without_a_required_column_fails_the_run_naming_it(database_url, tmp_path):
    rows = [{k: v for k, v in lb_row("T1-001", 1).items() if k != "LBDTC"}]
    result = ingest_extract(database_url, write_extract(tmp_path / "c1", with_labs(rows)), cutoff=CUTOFF)
    assert (result.status, result.exit_code) == ("failed", 2)
    assert "lb.csv" in result.message and "LBDTC" in result.message


def test_adlb_maps_onto_lb(database_url, tmp_path):
    extract = standard_extract()
    extract["adlb"] = [{"STUDYID": "T1", "USUBJID": "T1-001", "ASEQ": "1", "PARAMCD": "ALT",
                        "PARAM": "Alanine Aminotransferase (U/L)", "AVAL": "45", "ANRLO": "0", "ANRHI": "40",
                        "ADT": "2021-01-25", "ABLFL": "", "AVISIT": "WEEK 3", "ATOXGR": "1"}]  # fmt: skip
    result = ingest_extract(database_url, write_extract(tmp_path / "c1", extract), cutoff=CUTOFF)
    assert result.status == "succeeded", result.message
    labs = current_labs(database_url)
    row = labs.iloc[0]
    assert (row["record_key"], row["lbtestcd"], row["lbstresn"], row["lbstnrhi"], row["lbdtc"], row["visit"]) == (
        "T1-001|1", "ALT", 45.0, 40.0, "2021-01-25", "WEEK 3",
    )  # fmt: skip
    assert row["extra"]["ATOXGR"] == "1"


def test_the_cdisc_pilot_lb_loads_every_row(database_url, tmp_path):
    pyreadr = pytest.importorskip("pyreadr")
    folder = require_shared(Path(__file__).resolve().parents[3] / "shared" / "data" / "pharmaversesdtm")
    extract = tmp_path / "pilot"
    extract.mkdir()
    for name in ("dm", "ex", "ae", "lb"):
        frame = next(iter(pyreadr.read_r(str(folder / f"{name}.rda")).values()))
        frame.to_csv(extract / f"{name}.csv", index=False)
    result = ingest_extract(database_url, extract, cutoff=pd.Timestamp("2015-12-31").date())
    assert result.status == "succeeded", result.message
    assert result.to_json()["domains"]["lb"] == {
        "read": 59580, "loaded": 59580, "quarantined": 0, "new": 59580, "changed": 0, "unchanged": 0, "removed": 0,
    }  # fmt: skip
