"""Reading files as text: encodings, file names, numbers and dates, and the files that cannot be read."""

from __future__ import annotations

import shutil

import pytest

from safety_dash.ingest.readers import FileProblem, find_domain_files, read_domain_file


def test_read_domain_file_falls_back_to_windows_1252_for_sas_transport(cdisc_pilot):
    # ts.xpt carries a curly apostrophe as byte 0x92 (cp1252): not UTF-8, and still a valid SAS file.
    source = read_domain_file("ts", cdisc_pilot / "sdtm" / "ts.xpt")
    assert source.encoding == "cp1252"
    assert "Patients with Probable Mild to Moderate Alzheimer\u2019s Disease" in set(source.frame["TSVAL"])


def test_read_domain_file_writes_sas_numbers_and_dates_as_sdtm_text(cdisc_pilot):
    ae = read_domain_file("ae", cdisc_pilot / "sdtm" / "ae.xpt").frame
    assert ae.loc[0, ["_ROW", "USUBJID", "AESEQ", "AESTDTC"]].tolist() == [1, "01-701-1015", "1", "2014-01-03"]
    adsl = read_domain_file("adsl", cdisc_pilot / "adam" / "adsl.xpt").frame
    assert adsl.loc[0, ["TRTSDT", "TRTEDT", "AGE"]].tolist() == ["2014-01-02", "2014-07-02", "63"]


def test_find_domain_files_matches_names_in_any_case(tmp_path, cdisc_pilot):
    shutil.copy(cdisc_pilot / "sdtm" / "ae.xpt", tmp_path / "AE.XPT")
    (tmp_path / "dm.csv").write_text("USUBJID\nS1\n")
    (tmp_path / "notes.txt").write_text("ignored")
    assert {k: p.name for k, p in find_domain_files(tmp_path).items()} == {"ae": "AE.XPT", "dm": "dm.csv"}


def test_find_domain_files_refuses_two_files_for_one_domain(tmp_path):
    (tmp_path / "ae.csv").write_text("USUBJID\n")
    (tmp_path / "AE.sas7bdat").write_bytes(b"x")
    with pytest.raises(FileProblem, match="two files for domain ae: AE.sas7bdat and ae.csv"):
        find_domain_files(tmp_path)


def test_read_domain_file_names_an_unreadable_sas7bdat(tmp_path):
    path = tmp_path / "ae.sas7bdat"
    path.write_bytes(b"not a SAS file, just text" * 100)
    with pytest.raises(FileProblem, match=r"^ae.sas7bdat: not a readable SAS7BDAT file"):
        read_domain_file("ae", path)


def test_read_domain_file_strips_values_and_refuses_repeated_column_names(tmp_path):
    path = tmp_path / "dm.csv"
    path.write_text("usubjid,Cohort\n S1 , A \n")
    frame = read_domain_file("dm", path).frame
    assert frame.loc[0, ["USUBJID", "COHORT"]].tolist() == ["S1", "A"]
    path.write_text("USUBJID,usubjid\nS1,S1\n")
    with pytest.raises(FileProblem, match="dm.csv, column USUBJID: column names repeat"):
        read_domain_file("dm", path)


def test_read_domain_file_counts_the_fields_of_a_short_csv_row(tmp_path):
    # pandas would fill the missing fields with '' silently; the count lets validation quarantine the row.
    path = tmp_path / "ae.csv"
    path.write_text("USUBJID,AESEQ,AETERM\nS1,1,Rash\nS2,2\nS3,3,Pruritus\n")
    frame = read_domain_file("ae", path).frame
    assert frame["_FIELDS"].tolist() == ["3", "2", "3"]


def test_read_domain_file_counts_nothing_when_every_row_is_whole(tmp_path):
    path = tmp_path / "ae.csv"
    path.write_text('USUBJID,AESEQ,AETERM\nS1,1,"Rash, left arm"\n')
    frame = read_domain_file("ae", path).frame
    assert "_FIELDS" not in frame.columns
    assert frame.loc[0, "AETERM"] == "Rash, left arm"


def test_read_domain_file_strips_padding_wherever_it_stands(tmp_path):
    path = tmp_path / "ae.csv"
    path.write_bytes(b'USUBJID,AETERM,AESEV\r\nS1,"Rash ",MILD\r\nS2,Pruritus\xc2\xa0,MILD\r\nS3,Fatigue,MILD\r\n')
    frame = read_domain_file("ae", path).frame
    assert frame["AETERM"].tolist() == ["Rash", "Pruritus", "Fatigue"]
    path.write_bytes(b"USUBJID,AETERM\r\nS1,Rash on trunk\r\n")  # no padding anywhere: read as it is
    assert read_domain_file("ae", path).frame["AETERM"].tolist() == ["Rash on trunk"]
