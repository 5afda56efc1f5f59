"""CSV safe to open in a spreadsheet: text a spreadsheet would run as a formula gets a leading ', numbers stay
numbers (OWASP's CSV injection guidance)."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
import pytest

from safety_dash.exports import neutralise_cell, neutralise_formulas, to_safe_csv

# text as an extract may hold it                   what the CSV must carry
CELLS = [
    # formulas and what starts one
    ("=1+2",                                        "'=1+2"),
    ("+cmd|' /C calc'!A0",                          "'+cmd|' /C calc'!A0"),
    ("-2+3",                                        "'-2+3"),
    ("@SUM(A1)",                                    "'@SUM(A1)"),
    ("\t=1+2",                                      "'\t=1+2"),
    ("\r=1+2",                                      "'\r=1+2"),
    ("=HYPERLINK(\"http://x.example\",\"x\")",      "'=HYPERLINK(\"http://x.example\",\"x\")"),
    ("-",                                           "'-"),
    # plain numbers written as text stay as they are
    ("-1.5",                                        "-1.5"),
    ("+3",                                          "+3"),
    ("-2e-4",                                       "-2e-4"),
    ("-.5",                                         "-.5"),
    # ordinary text, and text already neutralised
    ("Rash maculo-papular",                         "Rash maculo-papular"),
    ("QL1706-DEMO-01-0001",                         "QL1706-DEMO-01-0001"),
    ("'=1+2",                                       "'=1+2"),
    (" =1+2",                                       " =1+2"),
    ("",                                            ""),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), CELLS, ids=[repr(text) for text, _ in CELLS])
def test_neutralise_cell(text, expected):
    assert neutralise_cell(text) == expected


def test_neutralise_cell_leaves_values_that_are_not_text():
    for value in (-1.5, -3, None, np.nan, pd.Timestamp("2024-01-02"), True):
        assert neutralise_cell(value) is value


def test_neutralise_formulas_touches_text_cells_only():
    frame = pd.DataFrame(
        {
            "AETERM": [text for text, _ in CELLS],
            "AESEQ": range(-8, len(CELLS) - 8),
            "AETOXGR": [-1.5] * len(CELLS),
            "mixed": [-1.5, "-1.5", "=1", None, 2, "@x", *[""] * (len(CELLS) - 6)],
        }
    )
    safe = neutralise_formulas(frame)
    assert safe["AETERM"].tolist() == [expected for _, expected in CELLS]
    pd.testing.assert_series_equal(safe["AESEQ"], frame["AESEQ"])  # numeric columns untouched
    pd.testing.assert_series_equal(safe["AETOXGR"], frame["AETOXGR"])
    assert safe["mixed"].tolist()[:6] == [-1.5, "-1.5", "'=1", None, 2, "'@x"]
    assert frame["AETERM"].iloc[0] == "=1+2"  # the input is not changed


def test_neutralise_formulas_handles_string_categorical_labels_and_index():
    frame = pd.DataFrame(
        {
            "=term": pd.array(["=a", None, "b"], dtype="string"),
            "cohort": pd.Categorical(["+x", "+x", "y"]),
            "day": pd.to_datetime(["2024-01-01", "2024-01-02", None]),
        },
        index=pd.Index(["@row", "ok", "-1"], name="USUBJID"),
    )
    safe = neutralise_formulas(frame)
    assert list(safe.columns) == ["'=term", "cohort", "day"]
    assert safe["'=term"].tolist()[0] == "'=a" and safe["'=term"].isna().tolist() == [False, True, False]
    assert str(safe["'=term"].dtype) == "string"
    assert safe["cohort"].tolist() == ["'+x", "'+x", "y"]
    assert safe.index.tolist() == ["'@row", "ok", "-1"] and safe.index.name == "USUBJID"
    pd.testing.assert_series_equal(safe["day"], frame["day"], check_index=False)


def test_to_safe_csv_writes_neutralised_cells_and_plain_numbers():
    frame = pd.DataFrame({"AETERM": ["=1+2", "-1.5", "Nausea"], "EAIR": [-1.5, 0.25, 12.0], "n": [1, -2, 3]})
    text = to_safe_csv(frame, index=False, lineterminator="\n")
    assert text == "AETERM,EAIR,n\n'=1+2,-1.5,1\n-1.5,0.25,-2\nNausea,12.0,3\n"


def test_to_safe_csv_keeps_a_carriage_return_inside_its_cell():
    frame = pd.DataFrame({"AETERM": ["rash\r=1+2", "pain\r\nfever"], "AESEQ": [1, 2]})
    text = to_safe_csv(frame, index=False, lineterminator="\n")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["AETERM", "AESEQ"], ["rash\n=1+2", "1"], ["pain\nfever", "2"]]
    assert "\r" not in text  # a spreadsheet would start a new row, with a formula in it, at a bare CR
    crlf = to_safe_csv(frame, index=False, lineterminator="\r\n")  # here the writer quotes CR itself
    assert list(csv.reader(io.StringIO(crlf, newline="")))[1] == ["rash\r=1+2", "1"]


def test_to_safe_csv_returns_text_only():
    with pytest.raises(ValueError, match="returns the CSV text"):
        to_safe_csv(pd.DataFrame({"a": [1]}), path_or_buf="out.csv")
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        neutralise_formulas([["=1"]])
