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


# --- counting each CSV row's fields without a second parse ------------------------------------------------------

# Python's csv module is the reference: each text's counts are what csv.reader gives, header and blank lines left out.
COUNTED_ALIKE = [
    "A,B,C\nS1,1,Rash\nS2,2\nS3,3,Pruritus,extra\n",
    "A,B,C\r\nS1,1,Rash\r\n\r\nS2,2,x\r\n",  # CRLF, a blank line
    'A,B,C\nS1,"Rash, left arm",x\nS2,"line\nbreak, and ""quote""",y\n',  # quoted delimiter, line break, quotes
    'A,B\n"",""\n"""",x\n"a""b",\n',  # empty quoted, a lone quote, doubled quotes
    "A;B;C\nS1;1,5;x\nS2;2\n",  # semicolons, a comma in a value
    "A,B\nS1,ünïcödé 肝炎\nS2,🧪",  # multibyte text, no final line break
    "A,B\n\n\nS1,x\n\n",  # blank lines
    "A,B\nS1,\nS2,,\n,\n",  # empty values
    '"A","B"\r\n"S1","x"\r\n"S2","y, z"\r\n',  # every value quoted
]


@pytest.mark.parametrize("text", COUNTED_ALIKE)
def test_count_csv_fields_counts_as_the_csv_module_does(text):
    import csv
    import io

    from safety_dash.ingest.readers import count_csv_fields

    delimiter = ";" if text.count(";") > text.count(",") else ","
    expected = [len(row) for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row][1:]
    assert count_csv_fields(text.encode("utf-8"), delimiter).tolist() == expected


def test_count_csv_fields_by_hand():
    from safety_dash.ingest.readers import count_csv_fields

    text = 'A,B,C\nS1,"x,y",z\nS2\n"q\n""r""",,\n'
    assert count_csv_fields(text.encode(), ",").tolist() == [3, 1, 3]


# Quotes only a full parser can place, and a bare carriage return: left to csv.reader.
@pytest.mark.parametrize(
    "text",
    ['A,B\nS1,5" tall\n', 'A,B\nS1,"closed"then\n', 'A,B\nS1,"never closed\n', "A,B\nS1,x\rS2,y\n", 'A\n"x""\n'],
)
def test_count_csv_fields_leaves_unusual_quoting_to_the_parser(text):
    from safety_dash.ingest.readers import count_csv_fields

    assert count_csv_fields(text.encode(), ",") is None


def test_read_domain_file_counts_the_fields_of_a_short_row_among_unusual_quotes(tmp_path):
    # the csv module counts them (a quote inside an unquoted value): the short row is still found
    path = tmp_path / "ae.csv"
    path.write_text('USUBJID,AESEQ,AETERM\nS1,1,Cyst 2" wide\nS2,2\n')
    frame = read_domain_file("ae", path).frame
    assert frame["_FIELDS"].tolist() == ["3", "2"]
    assert frame.loc[0, "AETERM"] == 'Cyst 2" wide'


@pytest.mark.parametrize(
    ("text", "padded"),
    [(" A,B\nx,y\n", True), ("A,B\nx,y \n", True), ("A,B\nx ,y\n", True), ("A,B\nx, y\n", True),
     ('A,B\n"x ",y\n', True), ("A;B\nx; y\n", True), ("A,B\r\nx,y \r\n", True), ("A,B\nx\ty,z\n", True),
     ("A,B\nx,y\x1f\n", True), ("A,B\nx,y\u00a0\n", True), ("A,B\nx y,z w\r\n", False), ("A,B\nx,y", False),
     ("A,B\nx,y ", True)],
)  # fmt: skip
def test_may_be_padded_finds_every_place_a_value_can_carry_whitespace(text, padded):
    from safety_dash.ingest.readers import _may_be_padded

    assert _may_be_padded(text.encode("utf-8")) is padded
