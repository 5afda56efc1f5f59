"""Real-world extracts (issue 8): SAS dates, keys, another study's files, truncation on a record boundary, guards
against a wiped study, and what a run says it read."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil

import pandas as pd
import pyreadstat
import pytest
from sqlalchemy import func, select

from safety_dash.db.engine import get_engine
from safety_dash.db.models import AdverseEventVersion, DerivedEvent, DerivedSubject, IngestionRun
from safety_dash.db.studies import configure_study
from safety_dash.ingest.pipeline import EXIT_FILE_PROBLEM, ingest_extract
from tests.ingest.builders import ae_row, dm_row, ex_row, standard_extract, write_extract

CUTOFF = dt.date(2021, 6, 30)


def count(url: str, model, *where) -> int:
    with get_engine(url).connect() as connection:
        return connection.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def run_row(url: str, run_id: int):
    with get_engine(url).connect() as connection:
        return connection.execute(select(IngestionRun.__table__).where(IngestionRun.id == run_id)).mappings().one()


# --- SAS dates and datetimes (ADaM) ---------------------------------------------------------------------------


def write_adam(folder, adsl: pd.DataFrame, adae: pd.DataFrame):
    folder.mkdir(parents=True, exist_ok=True)
    pyreadstat.write_xport(adsl, str(folder / "adsl.xpt"), table_name="ADSL", file_format_version=5)
    pyreadstat.write_xport(adae, str(folder / "adae.xpt"), table_name="ADAE", file_format_version=5)
    return folder


def test_ingest_extract_loads_adam_with_sas_datetimes_and_no_aeseq(database_url, tmp_path):
    # TRTSDTM / ASTDTM are numeric SAS DATETIME values; ADAE has ASEQ, not AESEQ. The run used to stop with an
    # AttributeError on the first datetime column.
    adsl = pd.DataFrame(
        {
            "STUDYID": ["AD1", "AD1"],
            "USUBJID": ["AD1-01", "AD1-02"],
            "ACTARM": ["5 mg/kg", "10 mg/kg"],
            "TRTSDTM": [dt.datetime(2023, 5, 1, 9, 15), dt.datetime(2023, 5, 3, 0, 0)],
            "TRTEDTM": [dt.datetime(2023, 6, 12, 10, 0), dt.datetime(2023, 5, 3, 0, 0)],
        }
    )
    adae = pd.DataFrame(
        {
            "STUDYID": ["AD1", "AD1", "AD1"],
            "USUBJID": ["AD1-01", "AD1-01", "AD1-02"],
            "ASEQ": [1.0, 2.0, 1.0],
            "AETERM": ["Rash", "Itch", "Rash"],
            "AEDECOD": ["Rash", "Pruritus", "Rash"],
            "AEBODSYS": ["Skin and subcutaneous tissue disorders"] * 3,
            "ASTDTM": [dt.datetime(2023, 5, 5, 14, 30), dt.datetime(2023, 4, 20, 8, 0), dt.datetime(2023, 5, 10)],
            "ATOXGR": ["2", "1", "3"],
        }
    )
    result = ingest_extract(database_url, write_adam(tmp_path / "adam", adsl, adae), cutoff=dt.date(2023, 9, 30))
    assert result.status == "succeeded", result.message
    assert result.domains["ae"]["loaded"] == 3
    with get_engine(database_url).connect() as connection:
        events = connection.execute(
            select(DerivedEvent.usubjid, DerivedEvent.pt, DerivedEvent.astdt, DerivedEvent.astdy, DerivedEvent.trtemfl)
            .where(DerivedEvent.run_id == result.run_id)
            .order_by(DerivedEvent.usubjid, DerivedEvent.astdt)
        ).fetchall()
    # onset day = ASTDT - TRTSDT + 1; the event of 2023-04-20 is before the first dose.
    assert [tuple(e) for e in events] == [
        ("AD1-01", "Pruritus", dt.date(2023, 4, 20), -11, False),
        ("AD1-01", "Rash", dt.date(2023, 5, 5), 5, True),
        ("AD1-02", "Rash", dt.date(2023, 5, 10), 8, True),
    ]


# --- record keys ------------------------------------------------------------------------------------------------


def test_ingest_extract_compares_numeric_keys_as_numbers(database_url, tmp_path):
    first = ingest_extract(database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=CUTOFF)
    padded = standard_extract()
    padded["ae"] = [row | {"AESEQ": row["AESEQ"].zfill(2)} for row in padded["ae"]]  # 01, 02, ... instead of 1, 2
    second = ingest_extract(database_url, write_extract(tmp_path / "cut2", padded), cutoff=CUTOFF)
    assert first.status == second.status == "succeeded", second.message
    assert second.domains["ae"] == {"read": 4, "loaded": 4, "quarantined": 0, "new": 0, "changed": 0,
                                         "unchanged": 4, "removed": 0}  # fmt: skip


def test_ingest_extract_treats_01_and_1_in_one_file_as_one_key(database_url, tmp_path):
    extract = standard_extract()
    extract["ae"].append(ae_row("T1-001", 1, "Fatigue") | {"AESEQ": "01"})
    configure_study(database_url, "T1", max_quarantined_pct=50)  # one of five rows is 20 %
    result = ingest_extract(database_url, write_extract(tmp_path / "cut1", extract), cutoff=CUTOFF)
    assert result.domains["ae"]["quarantined"] == 1
    assert "duplicate record key T1-001|1 (USUBJID, AESEQ): row 1 has it already" in [
        q["reason"] for q in result.quarantine
    ]


# --- the study of the files -------------------------------------------------------------------------------------


def test_ingest_extract_fails_when_no_row_is_of_the_named_study(database_url, tmp_path):
    folder = write_extract(tmp_path / "cut1", standard_extract())
    result = ingest_extract(database_url, folder, study_id="X", cutoff=CUTOFF)
    assert (result.status, result.exit_code) == ("failed", EXIT_FILE_PROBLEM)
    assert result.message == "dm.csv: STUDYID is T1 in all 3 rows, not X; omit --study or name the study of the files"
    assert count(database_url, AdverseEventVersion) == 0


def test_ingest_extract_quarantines_a_row_of_another_study(database_url, tmp_path):
    extract = standard_extract()
    extract["ae"][1]["STUDYID"] = "OTHER"
    configure_study(database_url, "T1", max_quarantined_pct=50)  # one of four AE rows is 25 %
    result = ingest_extract(database_url, write_extract(tmp_path / "cut1", extract), cutoff=CUTOFF)
    assert result.status == "succeeded", result.message
    assert [(q["row_number"], q["column"], q["reason"]) for q in result.quarantine] == [
        (2, "STUDYID", "the row belongs to study OTHER, not T1")
    ]


# --- truncated SAS transport ------------------------------------------------------------------------------------


def test_ingest_extract_fails_on_an_xpt_cut_on_a_record_boundary(database_url, tmp_path, cdisc_pilot):
    folder = tmp_path / "cut"
    folder.mkdir()
    for name in ("dm.xpt", "ex.xpt"):
        shutil.copy(cdisc_pilot / "sdtm" / name, folder / name)
    whole = (cdisc_pilot / "sdtm" / "ae.xpt").read_bytes()
    (folder / "ae.xpt").write_bytes(whole[: 80 * 6000])  # a third of the AEs, a whole number of 80-byte records
    result = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert (result.status, result.exit_code) == ("failed", EXIT_FILE_PROBLEM)
    assert result.message == (
        "ae.xpt: the file is truncated: it ends 191 bytes into observation 380 (observations are 1251 bytes)"
    )
    assert count(database_url, AdverseEventVersion) == 0


# --- guards against a wiped study -----------------------------------------------------------------------------


def test_ingest_extract_refuses_to_remove_most_of_a_domain(database_url, tmp_path):
    first = ingest_extract(database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=CUTOFF)
    smaller = standard_extract()
    smaller["ae"] = smaller["ae"][:1]  # 3 of the 4 AEs gone: 75 % of the previous cut
    folder = write_extract(tmp_path / "cut2", smaller)
    refused = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert (refused.status, refused.exit_code) == ("failed", EXIT_FILE_PROBLEM)
    assert refused.message == (
        "refused, nothing was changed: the run would mark 3 of the previous cut's 4 AE records removed (75.0 %, "
        "limit 10 %). Check the extract; if the change is real, run again with --accept-large-change"
    )
    assert count(database_url, AdverseEventVersion, AdverseEventVersion.valid_to_run.is_not(None)) == 0
    assert count(database_url, DerivedEvent, DerivedEvent.run_id == refused.run_id) == 0

    accepted = ingest_extract(database_url, folder, cutoff=CUTOFF, accept_large_change=True)
    assert accepted.status == "succeeded", accepted.message
    assert accepted.domains["ae"]["removed"] == 3
    assert accepted.message.endswith("accepted with --accept-large-change: the run would mark 3 of the previous "
                                     "cut's 4 AE records removed (75.0 %, limit 10 %)")  # fmt: skip
    assert run_row(database_url, accepted.run_id)["accepted_large_change"] is True
    assert run_row(database_url, first.run_id)["accepted_large_change"] is False


def test_ingest_extract_refuses_to_quarantine_most_of_a_domain_unless_the_study_allows_it(database_url, tmp_path):
    extract = standard_extract()
    for row in extract["ex"][:2]:
        row["EXDOSE"] = "-5"  # 2 of 5 EX rows quarantined: 40 %
    folder = write_extract(tmp_path / "cut1", extract)
    refused = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert refused.exit_code == EXIT_FILE_PROBLEM
    assert "the run would quarantine 2 of 5 EX rows (40.0 %, limit 10 %)" in refused.message
    assert count(database_url, AdverseEventVersion) == 0
    configure_study(database_url, "T1", max_quarantined_pct=40)  # at the limit passes; above it fails
    allowed = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert allowed.status == "succeeded", allowed.message
    assert allowed.domains["ex"]["quarantined"] == 2


# --- what the run read ------------------------------------------------------------------------------------------


def test_ingest_json_lists_the_files_read_with_checksum_encoding_and_rows(database_url, tmp_path):
    folder = write_extract(tmp_path / "cut1", standard_extract())
    result = ingest_extract(database_url, folder, cutoff=CUTOFF)
    files = result.to_json()["files"]
    assert sorted((f["domain"], f["path"], f["encoding"], f["rows"]) for f in files) == [
        ("ae", str(folder / "ae.csv"), "utf-8", 4),
        ("dm", str(folder / "dm.csv"), "utf-8", 3),
        ("ex", str(folder / "ex.csv"), "utf-8", 5),
    ]
    for f in files:
        assert f["sha256"] == hashlib.sha256((folder / f"{f['domain']}.csv").read_bytes()).hexdigest()
    assert run_row(database_url, result.run_id)["files"] == files


def test_ingest_records_windows_1252_as_the_encoding_it_used(database_url, tmp_path):
    # SAS transport carries no encoding: a file written in WLATIN1 (byte 0x92 for the curly apostrophe) is read
    # as Windows-1252, and the run says so.
    extract = standard_extract()
    folder = write_extract(tmp_path / "cut1", {"dm": extract["dm"], "ex": extract["ex"]})
    ae = pd.DataFrame(extract["ae"])
    ae.loc[0, "AETERM"] = "Patient's rash"
    pyreadstat.write_xport(ae, str(folder / "ae.xpt"), table_name="AE", file_format_version=5)
    raw = (folder / "ae.xpt").read_bytes()
    (folder / "ae.xpt").write_bytes(raw.replace(b"Patient's rash", b"Patient\x92s rash"))
    result = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert result.status == "succeeded", result.message
    assert {f["domain"]: f["encoding"] for f in result.files} == {"dm": "utf-8", "ex": "utf-8", "ae": "cp1252"}
    with get_engine(database_url).connect() as connection:
        terms = connection.execute(select(AdverseEventVersion.aeterm)).scalars().all()
    assert "Patient\u2019s rash" in terms


def test_ingest_extract_counts_a_dose_after_the_cutoff_nowhere(database_url, tmp_path):
    # Issue 8: a dose record dated after the cutoff moved the last dose and stretched days at risk 91 -> 181.
    extract = {
        "dm": [dm_row("T1-001", first="2021-01-01", last="2021-01-01")],
        "ex": [ex_row("T1-001", 1, "2021-01-01"), ex_row("T1-001", 2, "2021-07-01")],
        "ae": [ae_row("T1-001", 1, "Rash", "2021-03-01")],
    }
    result = ingest_extract(database_url, write_extract(tmp_path / "cut1", extract), cutoff=dt.date(2021, 6, 29))
    assert result.status == "succeeded", result.message
    with get_engine(database_url).connect() as connection:
        row = connection.execute(
            select(DerivedSubject.trtedt, DerivedSubject.days_at_risk, DerivedSubject.n_doses).where(
                DerivedSubject.run_id == result.run_id
            )
        ).one()
    # last dose 2021-01-01, window end = min(2021-01-01 + 90, cutoff 2021-06-29) = 2021-04-01: 91 days at risk.
    assert tuple(row) == (dt.date(2021, 1, 1), 91, 1)


@pytest.mark.parametrize("value", ["2023-05-05T14:30Z", "2023-05-05T14:30+02:00", "2023-05-05T14:30:00-05:00"])
def test_ingest_extract_loads_onsets_with_a_utc_offset(database_url, tmp_path, value):
    extract = {
        "dm": [dm_row("T1-001", first="2023-05-01", last="2023-05-01")],
        "ex": [ex_row("T1-001", 1, "2023-05-01")],
        "ae": [ae_row("T1-001", 1, "Rash", value)],
    }
    result = ingest_extract(database_url, write_extract(tmp_path / "cut1", extract), cutoff=dt.date(2023, 6, 30))
    assert result.status == "succeeded" and result.domains["ae"]["loaded"] == 1, result.quarantine
    with get_engine(database_url).connect() as connection:
        onset = connection.execute(select(DerivedEvent.astdt, DerivedEvent.trtemfl)).one()
    assert tuple(onset) == (dt.date(2023, 5, 5), True)  # the site's date as written
