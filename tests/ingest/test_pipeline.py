"""Ingestion end to end: every row loaded or quarantined with a reason, cuts versioned, failures harmless."""

from __future__ import annotations

import datetime as dt
import shutil

import pandas as pd
import pytest
from sqlalchemy import func, select

from safety_dash.db.engine import get_engine
from safety_dash.db.models import AdverseEventVersion, IngestionRun, QuarantinedRow, SubjectVersion
from safety_dash.db.queries import run_query
from safety_dash.ingest.pipeline import EXIT_FILE_PROBLEM, ingest_extract
from tests.ingest.builders import ae_row, standard_extract, write_extract

CUTOFF = dt.date(2021, 6, 30)


def quarantine_of(url: str, run_id: int) -> pd.DataFrame:
    with get_engine(url).connect() as connection:
        rows = connection.execute(select(QuarantinedRow.__table__).where(QuarantinedRow.run_id == run_id)).fetchall()
    return pd.DataFrame(rows)


def count(url: str, model, *where) -> int:
    with get_engine(url).connect() as connection:
        return connection.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


# --- the clean path ------------------------------------------------------------------------------------------


def test_ingest_extract_loads_every_row_of_a_clean_extract(database_url, tmp_path):
    folder = write_extract(tmp_path / "cut1", standard_extract())
    result = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert result.status == "succeeded", result.message
    assert result.study_id == "T1"
    assert result.domains["dm"] == {"read": 3, "loaded": 3, "quarantined": 0, "new": 3, "changed": 0,
                                    "unchanged": 0, "removed": 0}  # fmt: skip
    assert result.domains["ex"]["loaded"] == 5
    assert result.domains["ae"]["new"] == 4
    assert result.to_json().keys() == {"run_id", "status", "message", "domains", "files"}


def test_ingest_extract_twice_changes_nothing(database_url, tmp_path):
    folder = write_extract(tmp_path / "cut1", standard_extract())
    first = ingest_extract(database_url, folder, cutoff=CUTOFF)
    versions_before = count(database_url, AdverseEventVersion)
    second = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert second.status == "succeeded"
    assert second.run_id != first.run_id
    for domain in ("dm", "ex", "ae"):
        counts = second.domains[domain]
        assert (counts["new"], counts["changed"], counts["removed"]) == (0, 0, 0)
        assert counts["unchanged"] == first.domains[domain]["loaded"]
    assert count(database_url, AdverseEventVersion) == versions_before
    assert "no record changed" in second.message


def test_ingest_extract_records_new_changed_removed_and_keeps_the_old_cut(database_url, tmp_path):
    # a small extract: one changed row is above the default 10 % guard, accepted on purpose
    extract = standard_extract()
    cut1 = ingest_extract(
        database_url, write_extract(tmp_path / "cut1", extract), cutoff=CUTOFF, accept_large_change=True
    )
    extract["ae"][0]["AETOXGR"] = "3"  # T1-001 AESEQ 1: grade worsened -> changed
    del extract["ae"][1]  # T1-001 AESEQ 2 dropped by data cleaning -> removed
    extract["ae"].append(ae_row("T1-002", 2, "Colitis", "2021-04-01", "3"))  # -> new
    cut2 = ingest_extract(
        database_url, write_extract(tmp_path / "cut2", extract), cutoff=CUTOFF, accept_large_change=True
    )
    assert cut2.domains["ae"] == {"read": 4, "loaded": 4, "quarantined": 0, "new": 1, "changed": 1,
                                  "unchanged": 2, "removed": 1}  # fmt: skip
    engine = get_engine(database_url)
    old = run_query(engine, "cut_adverse_events", study_id="T1", run_id=cut1.run_id)
    new = run_query(engine, "cut_adverse_events", study_id="T1", run_id=cut2.run_id)
    assert sorted(old["record_key"]) == ["T1-001|1", "T1-001|2", "T1-002|1", "T1-003|1"]
    assert sorted(new["record_key"]) == ["T1-001|1", "T1-002|1", "T1-002|2", "T1-003|1"]
    assert old.set_index("record_key").loc["T1-001|1", "aetoxgr"] == "2"
    assert new.set_index("record_key").loc["T1-001|1", "aetoxgr"] == "3"
    assert set(new.set_index("record_key")["change"].items()) >= {("T1-001|1", "changed"), ("T1-002|2", "new")}
    assert count(database_url, AdverseEventVersion) == 6  # nothing deleted: 4 + 1 changed + 1 new


# --- bad rows: quarantined with a reason, the rest loads ---------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "column", "reason"),
    [
        ({"AETOXGR": "7"}, "AETOXGR", "grade 7 is outside 1..5"),
        ({"AETOXGR": "2.5"}, "AETOXGR", "grade 2.5 is not a whole number (CTCAE grades are 1..5)"),
        ({"AESTDTC": "2021-13-45"}, "AESTDTC", "'2021-13-45' is not a valid date: month 13 does not exist"),
        ({"AESTDTC": "2021-02-30"}, "AESTDTC", "'2021-02-30' is not a valid date: 2021-02 has no day 30"),
        ({"USUBJID": "T1-999"}, "USUBJID", "subject T1-999 is not in DM (or its DM row was quarantined)"),
        ({"USUBJID": ""}, "USUBJID", "no subject key: USUBJID is empty"),
    ],
)
def test_ingest_extract_quarantines_a_bad_ae_row_with_its_reason(database_url, tmp_path, change, column, reason):
    # a small extract: one changed row is above the default 10 % guard, accepted on purpose
    extract = standard_extract()
    extract["ae"].append(ae_row("T1-002", 7) | change)  # the 5th data row of ae.csv
    result = ingest_extract(
        database_url, write_extract(tmp_path / "cut", extract), cutoff=CUTOFF, accept_large_change=True
    )
    assert result.status == "succeeded"
    assert result.domains["ae"]["read"] == 5
    assert result.domains["ae"]["loaded"] == 4
    assert result.domains["ae"]["quarantined"] == 1
    quarantined = quarantine_of(database_url, result.run_id)
    row = quarantined.iloc[0]
    assert (row["file"], row["row_number"], row["column"], row["reason"]) == ("ae.csv", 5, column, reason)
    assert row["raw"]["AESEQ"] == "7"  # the row as read is kept: nothing is lost


def test_ingest_extract_quarantines_a_short_csv_row(database_url, tmp_path):
    # a small extract: one changed row is above the default 10 % guard, accepted on purpose
    folder = write_extract(tmp_path / "cut", standard_extract())
    text = (folder / "ae.csv").read_text()
    (folder / "ae.csv").write_text(text + "T1,AE,T1-002,8,8,Fatigue\n")  # 6 of 15 fields
    result = ingest_extract(database_url, folder, cutoff=CUTOFF, accept_large_change=True)
    assert result.status == "succeeded"
    assert (result.domains["ae"]["loaded"], result.domains["ae"]["quarantined"]) == (4, 1)
    row = quarantine_of(database_url, result.run_id).iloc[0]
    assert (row["row_number"], row["reason"]) == (5, "the row has 6 of 15 fields: cut short, or a delimiter is missing")
    assert row["raw"]["AETERM"] == "Fatigue"


def test_ingest_extract_quarantines_the_later_of_two_duplicate_keys(database_url, tmp_path):
    # a small extract: one changed row is above the default 10 % guard, accepted on purpose
    extract = standard_extract()
    extract["ae"].append(ae_row("T1-001", 1, "Fatigue", "2021-02-02", "1"))
    result = ingest_extract(
        database_url, write_extract(tmp_path / "cut", extract), cutoff=CUTOFF, accept_large_change=True
    )
    row = quarantine_of(database_url, result.run_id).iloc[0]
    assert row["row_number"] == 5
    assert row["reason"] == "duplicate record key T1-001|1 (USUBJID, AESEQ): row 1 has it already"
    assert row["raw"]["AETERM"] == "Fatigue"


def test_ingest_extract_keeps_a_known_record_current_when_its_new_row_is_bad(database_url, tmp_path):
    # a small extract: one changed row is above the default 10 % guard, accepted on purpose
    extract = standard_extract()
    ingest_extract(database_url, write_extract(tmp_path / "cut1", extract), cutoff=CUTOFF, accept_large_change=True)
    extract["ae"][0]["AESTDTC"] = "2021-13-45"
    cut2 = ingest_extract(
        database_url, write_extract(tmp_path / "cut2", extract), cutoff=CUTOFF, accept_large_change=True
    )
    assert cut2.domains["ae"]["removed"] == 0
    current = run_query(get_engine(database_url), "cut_adverse_events", study_id="T1", run_id=cut2.run_id)
    assert "T1-001|1" in set(current["record_key"])


def test_ingest_extract_reads_a_csv_with_bom_and_semicolons(database_url, tmp_path):
    folder = write_extract(tmp_path / "cut", standard_extract(), delimiter=";", bom=True)
    result = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert result.status == "succeeded", result.message
    assert result.domains["ae"]["loaded"] == 4
    with get_engine(database_url).connect() as connection:
        first = connection.execute(select(SubjectVersion.usubjid).order_by(SubjectVersion.usubjid)).scalars().first()
    assert first == "T1-001"  # not "\ufeffT1-001": the byte-order mark is not part of the data


# --- file-level problems: the run fails, names the file and column, and nothing changes ----------------------------


def _previous_cut_and_counts(database_url, tmp_path):
    first = ingest_extract(database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=CUTOFF)
    return first, count(database_url, AdverseEventVersion, AdverseEventVersion.valid_to_run.is_(None))


def test_ingest_extract_fails_without_a_required_column(database_url, tmp_path):
    first, current = _previous_cut_and_counts(database_url, tmp_path)
    extract = standard_extract()
    for row in extract["ae"]:
        del row["AEDECOD"]
    result = ingest_extract(database_url, write_extract(tmp_path / "cut2", extract), cutoff=CUTOFF)
    assert (result.status, result.exit_code) == ("failed", EXIT_FILE_PROBLEM)
    assert result.message == "ae.csv, column AEDECOD: required column is missing"
    assert count(database_url, AdverseEventVersion, AdverseEventVersion.valid_to_run.is_(None)) == current
    assert count(database_url, IngestionRun, IngestionRun.status == "failed") == 1


def test_ingest_extract_fails_on_a_truncated_xpt(database_url, tmp_path, cdisc_pilot):
    folder = tmp_path / "cut"
    folder.mkdir()
    for name in ("dm.xpt", "ex.xpt"):
        shutil.copy(cdisc_pilot / "sdtm" / name, folder / name)
    data = (cdisc_pilot / "sdtm" / "ae.xpt").read_bytes()
    (folder / "ae.xpt").write_bytes(data[: len(data) // 2 + 17])
    result = ingest_extract(database_url, folder)
    assert (result.status, result.exit_code) == ("failed", EXIT_FILE_PROBLEM)
    assert result.message == "ae.xpt: the file is truncated: 747857 bytes is not a whole number of 80-byte records"
    assert count(database_url, AdverseEventVersion) == 0


def test_ingest_extract_fails_on_an_empty_file(database_url, tmp_path):
    folder = write_extract(tmp_path / "cut", standard_extract())
    (folder / "ex.csv").write_bytes(b"")
    result = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert (result.status, result.exit_code, result.message) == ("failed", 2, "ex.csv: the file is empty (0 bytes)")


def test_ingest_extract_fails_on_text_that_is_not_utf8(database_url, tmp_path):
    folder = write_extract(tmp_path / "cut", standard_extract())
    text = (folder / "ae.csv").read_text(encoding="utf-8").replace("Pruritus", "Prurit\u2019s")
    (folder / "ae.csv").write_bytes(text.encode("cp1252"))
    result = ingest_extract(database_url, folder, cutoff=CUTOFF)
    assert (result.status, result.exit_code) == ("failed", 2)
    assert result.message == "ae.csv, row 3, column AETERM: byte 0x92 is not UTF-8 text; save the file as UTF-8"


# The derivations are computed while the versions are written, and the read model's columns while the derivations
# are written (on PostgreSQL the COPY runs in a thread meanwhile, which must be over before the transaction is rolled
# back); the signals are stored after. A failure at any of these steps rolls the whole cut back.
@pytest.mark.parametrize("failing", ["compute_cut_derivations", "derived_events", "store_signal_tables"])
def test_ingest_extract_fails_whole_when_the_database_fails_midway(database_url, tmp_path, monkeypatch, failing):
    first, current = _previous_cut_and_counts(database_url, tmp_path)
    extract = standard_extract()
    extract["ae"][0]["AETOXGR"] = "4"
    extract["ae"].append(ae_row("T1-002", 5, "Colitis", "2021-04-01", "3"))

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    if failing == "derived_events":  # the COPY of the derived events fails, in its thread on PostgreSQL
        from safety_dash.db import bulk

        insert = bulk.bulk_insert

        def fail_on_derived_events(connection, table, rows):
            if table.name == "derived_events":
                fail()
            insert(connection, table, rows)

        monkeypatch.setattr(bulk, "bulk_insert", fail_on_derived_events)
    elif failing == "store_signal_tables":
        monkeypatch.setattr(f"safety_dash.signal_store.{failing}", fail)
    else:
        monkeypatch.setattr(f"safety_dash.analysis.{failing}", fail)
    result = ingest_extract(database_url, write_extract(tmp_path / "cut2", extract), cutoff=CUTOFF)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert result.message == "RuntimeError: database went away"
    assert count(database_url, AdverseEventVersion) == 4
    assert count(database_url, AdverseEventVersion, AdverseEventVersion.valid_from_run == result.run_id) == 0
    assert count(database_url, AdverseEventVersion, AdverseEventVersion.valid_to_run.is_(None)) == current


def test_ingest_extract_marks_a_run_of_a_dead_process_as_interrupted(database_url, tmp_path):
    import socket

    with get_engine(database_url).begin() as connection:
        connection.execute(
            IngestionRun.__table__.insert().values(
                source="x", trigger="cli", status="running", message="", worker=f"{socket.gethostname()}:999999",
                checksums={}, counts={}, started_at=dt.datetime.now(dt.UTC),
            )
        )  # fmt: skip
    ingest_extract(database_url, write_extract(tmp_path / "cut1", standard_extract()), cutoff=CUTOFF)
    with get_engine(database_url).connect() as connection:
        status, message = connection.execute(
            select(IngestionRun.status, IngestionRun.message).where(IngestionRun.source == "x")
        ).one()
    assert status == "failed"
    assert message.startswith("interrupted: process")


# --- the CDISC pilot: 1,191 AE rows, 26 partial onset dates ---------------------------------------------------------


def test_ingest_extract_loads_the_cdisc_pilot_completely(database_url, cdisc_pilot):
    result = ingest_extract(database_url, cdisc_pilot / "sdtm")
    assert result.status == "succeeded", result.message
    assert result.study_id == "CDISCPILOT01"
    for domain, rows in (("dm", 306), ("ex", 591), ("ae", 1191)):
        counts = result.domains[domain]
        assert counts["read"] == rows
        assert counts["loaded"] + counts["quarantined"] == rows
    assert result.domains["ae"]["loaded"] == 1191  # partial dates are valid, so nothing needs quarantine
    engine = get_engine(database_url)
    ae = run_query(engine, "cut_adverse_events", study_id="CDISCPILOT01", run_id=result.run_id)
    assert (ae["aestdtc"].str.len() == 7).sum() == 15
    assert (ae["aestdtc"].str.len() == 4).sum() == 11
    again = ingest_extract(database_url, cdisc_pilot / "sdtm")
    assert again.domains["ae"]["unchanged"] == 1191


def test_ingest_extract_accepts_adam_input(database_url, cdisc_pilot):
    result = ingest_extract(database_url, cdisc_pilot / "adam", cutoff=dt.date(2015, 12, 31))
    assert result.status == "succeeded", result.message
    assert result.domains["dm"]["loaded"] == 254
    assert result.domains["ae"]["read"] == 1191
    assert result.domains["ex"]["read"] == 0
    engine = get_engine(database_url)
    subjects = run_query(engine, "derived_subjects", run_id=result.run_id)
    assert subjects["saffl"].astype(bool).sum() == 254  # first dose from ADSL TRTSDT when there is no EX


def test_derivations_of_a_new_cut_equal_those_recomputed_from_the_database(database_url, tmp_path):
    # a small extract: one changed row is above the default 10 % guard, accepted on purpose
    from safety_dash.analysis import derive_cut

    extract = standard_extract()
    ingest_extract(database_url, write_extract(tmp_path / "cut1", extract), cutoff=CUTOFF, accept_large_change=True)
    extract["ae"][0]["AETOXGR"] = "3"
    extract["ae"][2]["AESTDTC"] = "2021-13-45"  # quarantined: its cut-1 version stays in cut 2
    extract["ae"].append(ae_row("T1-002", 2, "Colitis", "2021-04-01", "3"))
    cut2 = ingest_extract(
        database_url, write_extract(tmp_path / "cut2", extract), cutoff=CUTOFF, accept_large_change=True
    )
    engine = get_engine(database_url)
    stored = (run_query(engine, "derived_subjects", run_id=cut2.run_id),
              run_query(engine, "derived_events", run_id=cut2.run_id))  # fmt: skip
    assert len(stored[1]) == 5
    with engine.begin() as connection:
        derive_cut(connection, cut2.run_id)  # from the database this time
    again = (run_query(engine, "derived_subjects", run_id=cut2.run_id),
             run_query(engine, "derived_events", run_id=cut2.run_id))  # fmt: skip
    pd.testing.assert_frame_equal(stored[0], again[0])
    pd.testing.assert_frame_equal(stored[1], again[1])
    changes = dict(zip(again[1]["record_key"], again[1]["record_change"], strict=True))
    assert changes == {"T1-001|1": "changed", "T1-001|2": "unchanged", "T1-002|1": "unchanged",
                       "T1-002|2": "new", "T1-003|1": "unchanged"}  # fmt: skip


def test_quarantine_keeps_the_row_exactly_as_read(database_url, tmp_path):
    # a small extract: one changed row is above the default 10 % guard, accepted on purpose
    extract = standard_extract()
    extract["ae"].append(ae_row("T1-002", 7, AETOXGR="7.0", AESTDTC="2021-13-45"))
    result = ingest_extract(
        database_url, write_extract(tmp_path / "cut", extract), cutoff=CUTOFF, accept_large_change=True
    )
    quarantined = quarantine_of(database_url, result.run_id)
    assert sorted(quarantined["column"]) == ["AESTDTC", "AETOXGR"]  # two problems, one row
    assert result.domains["ae"]["quarantined"] == 1
    raw = quarantined.iloc[0]["raw"]
    assert (raw["AETOXGR"], raw["AESTDTC"]) == ("7.0", "2021-13-45")
    assert "AESDTH" not in raw  # a column the file did not have is not made up
