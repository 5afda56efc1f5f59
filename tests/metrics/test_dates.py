"""ISO 8601 dates as SDTMIG v3.4 §4.4.7 writes them (DOMAIN.md §1): each form beside the interval it stands for."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from safety_dash.metrics.dates import compute_date_ranges, parse_partial_date

VALID = [
    # text                              first day     last day      level
    # --- complete dates and reduced precision (right truncation) -------------------------------------------
    ("2012-02-15", "2012-02-15", "2012-02-15", ""),
    ("2012-02", "2012-02-01", "2012-02-29", "D"),  # a leap February
    ("2013-02", "2013-02-01", "2013-02-28", "D"),
    ("2024-12", "2024-12-01", "2024-12-31", "D"),
    ("2012", "2012-01-01", "2012-12-31", "M"),
    (" 2012-02-15 ", "2012-02-15", "2012-02-15", ""),  # surrounding blanks
    ("1678-01-01", "1678-01-01", "1678-01-01", ""),  # the first and last years a date can be placed
    ("2261-12", "2261-12-01", "2261-12-31", "D"),
    # --- a time part, with or without seconds and fractions: checked, then ignored ---------------------------
    ("2023-05-02T14", "2023-05-02", "2023-05-02", ""),
    ("2023-05-02T14:30", "2023-05-02", "2023-05-02", ""),
    ("2023-05-02T14:30:15", "2023-05-02", "2023-05-02", ""),
    ("2023-05-02T14:30:15.250", "2023-05-02", "2023-05-02", ""),
    ("2023-05-02T14:30:15,5", "2023-05-02", "2023-05-02", ""),  # ISO's decimal comma
    ("2023-05-02T14:30:15.123456789", "2023-05-02", "2023-05-02", ""),
    ("2023-05-02T14:30.5", "2023-05-02", "2023-05-02", ""),  # a fraction of the last component written
    ("2023-05-02T00:00:00", "2023-05-02", "2023-05-02", ""),
    ("2023-05-02T23:59:59", "2023-05-02", "2023-05-02", ""),
    ("2016-12-31T23:59:60", "2016-12-31", "2016-12-31", ""),  # a leap second
    ("2023-05-02t14:30", "2023-05-02", "2023-05-02", ""),  # lower-case designator
    ("2023-05-02 14:30:15", "2023-05-02", "2023-05-02", ""),  # a blank for T, as many exports write it
    # --- UTC offsets: ignored, the site's date as written (not moved to UTC) ---------------------------------
    ("2023-05-05T14:30Z", "2023-05-05", "2023-05-05", ""),
    ("2023-05-05T14:30z", "2023-05-05", "2023-05-05", ""),
    ("2023-05-05T23:30+02:00", "2023-05-05", "2023-05-05", ""),
    ("2023-05-05T23:30-05:00", "2023-05-05", "2023-05-05", ""),  # in UTC this is 2023-05-06
    ("2023-05-05T00:30+0200", "2023-05-05", "2023-05-05", ""),  # basic-format offset, as %z writes it
    ("2023-05-05T14+02", "2023-05-05", "2023-05-05", ""),  # hours-only offset
    ("2023-05-05T14-05", "2023-05-05", "2023-05-05", ""),
    ("2023-05-05T14:30:15.250+05:30", "2023-05-05", "2023-05-05", ""),
    ("2023-05-05T14:30:15-00:00", "2023-05-05", "2023-05-05", ""),
    # --- '-' for an unknown component ----------------------------------------------------------------------
    ("2023---15", "2023-01-01", "2023-12-31", "M"),  # month unknown: the day alone places nothing
    ("2023---31", "2023-01-01", "2023-12-31", "M"),
    ("2023--", "2023-01-01", "2023-12-31", "M"),
    ("2023-05--", "2023-05-01", "2023-05-31", "D"),  # day unknown
    ("2023-05-15T-:15", "2023-05-15", "2023-05-15", ""),  # hour unknown: a complete date
    ("2023-05-15T13:-:17", "2023-05-15", "2023-05-15", ""),  # minute unknown
    ("2023-05-15T-:-:-", "2023-05-15", "2023-05-15", ""),
    ("2023-05--T10:00", "2023-05-01", "2023-05-31", "D"),
    ("2023---15T13:-:17Z", "2023-01-01", "2023-12-31", "M"),
    ("2023-05-15T-:15+02:00", "2023-05-15", "2023-05-15", ""),
]

NOT_PLACEABLE = [
    # empty, or the year unknown: no day on the calendar (an onset is then imputed as missing)
    None,
    np.nan,
    pd.NA,
    "",
    "   ",
    "--05-15",
    "--02-29",  # a day of leap years
    "--05",
    "-----T07:15",  # date unknown, time known
    "-",
]

INVALID = [
    # text                              what the sentence says
    # --- not ISO 8601 (as SDTMIG writes it: extended format) ------------------------------------------------
    ("15/05/2023", "is not an ISO 8601 date"),
    ("2023/05/15", "is not an ISO 8601 date"),
    ("20230515", "is not an ISO 8601 date"),  # basic format
    ("2023-5-15", "is not an ISO 8601 date"),
    ("23-05-15", "is not an ISO 8601 date"),
    ("May 2023", "is not an ISO 8601 date"),
    ("UNK", "is not an ISO 8601 date"),
    ("2023-05-", "is not an ISO 8601 date"),
    ("2023-05-15T", "is not an ISO 8601 date"),
    ("2023-05-15T1430", "is not an ISO 8601 date"),
    ("2023-05-15Z", "is not an ISO 8601 date"),  # an offset belongs to a time
    ("2023-05-15T14:30+2", "is not an ISO 8601 date"),
    ("2023-05-15T14:30+02:00:00", "is not an ISO 8601 date"),
    ("2023-05-15T14:30:15.", "is not an ISO 8601 date"),  # a decimal sign without digits
    ("2023-05-15T14:30:-.5", "a fraction needs a known component"),
    # --- a day that does not exist -----------------------------------------------------------------------
    ("2021-13-45", "month 13 does not exist"),
    ("2021-13", "month 13 does not exist"),
    ("2021-00-10", "month 0 does not exist"),
    ("2021-02-30", "2021-02 has no day 30"),
    ("2023-02-29", "2023-02 has no day 29"),
    ("2021-04-31", "2021-04 has no day 31"),
    ("2021-05-00", "2021-05 has no day 0"),
    ("2023---32", "no month has day 32"),
    ("--02-30", "no year has day 30 in month 02"),
    ("--13-01", "month 13 does not exist"),
    ("1500-01-01", "years 1678 to 2261"),
    ("0000", "years 1678 to 2261"),
    # --- a time that does not exist ----------------------------------------------------------------------
    ("2023-05-02T24:00", "hour 24 does not exist"),
    ("2023-05-02T14:60", "minute 60 does not exist"),
    ("2023-05-02T14:30:61", "second 61 does not exist"),
    ("2023-05-02T14:30:60", "second 60 does not exist"),  # a leap second only at 23:59
    ("2023-05-02T14:30+24:00", "UTC offset \\+24:00 does not exist"),
    ("2023-05-02T14:30+02:60", "UTC offset \\+02:60 does not exist"),
]


@pytest.mark.parametrize(("text", "lo", "hi", "level"), VALID)
def test_parse_partial_date_valid_forms(text, lo, hi, level):
    assert parse_partial_date(text) == (dt.date.fromisoformat(lo), dt.date.fromisoformat(hi), level)


@pytest.mark.parametrize("text", NOT_PLACEABLE)
def test_parse_partial_date_empty_or_year_unknown_is_none(text):
    assert parse_partial_date(text) is None


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_parse_partial_date_rejects_with_a_sentence(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        parse_partial_date(text)
    assert str(caught.value).startswith(repr(text.strip()))


def test_parse_partial_date_table_has_at_least_40_forms():
    assert len(VALID) + len(NOT_PLACEABLE) + len(INVALID) >= 40


# --- compute_date_ranges: the same parser over a Series ---------------------------------------------------------


def test_compute_date_ranges_every_form_like_the_parser():
    texts = [case[0] for case in VALID] + NOT_PLACEABLE
    values = pd.Series(texts, dtype=object, index=range(100, 100 + len(texts)))
    result = compute_date_ranges(values)
    expected = pd.DataFrame(
        {
            "lo": pd.to_datetime([case[1] for case in VALID] + [None] * len(NOT_PLACEABLE)),
            "hi": pd.to_datetime([case[2] for case in VALID] + [None] * len(NOT_PLACEABLE)),
            "level": [case[3] for case in VALID] + ["Y"] * len(NOT_PLACEABLE),
        },
        index=values.index,
    ).astype({"lo": "datetime64[ns]", "hi": "datetime64[ns]", "level": object})
    pd.testing.assert_frame_equal(result, expected)


def test_compute_date_ranges_repeated_values_and_time_parts():
    values = pd.Series(["2021-03-04T10:00", "2021-03-04", None, "2021-03-04T23:59-05:00", "2021-03"])
    result = compute_date_ranges(values)
    assert result["lo"].tolist() == [pd.Timestamp("2021-03-04")] * 2 + [pd.NaT] + [pd.Timestamp("2021-03-04")] + [
        pd.Timestamp("2021-03-01")
    ]
    assert result["hi"].iloc[-1] == pd.Timestamp("2021-03-31")
    assert result["level"].tolist() == ["", "", "Y", "", "D"]


def test_compute_date_ranges_empty_series():
    result = compute_date_ranges(pd.Series([], dtype=object))
    assert list(result.columns) == ["lo", "hi", "level"]
    assert result.empty
    assert result["lo"].dtype == "datetime64[ns]"


def test_compute_date_ranges_raises_on_an_impossible_day():
    with pytest.raises(ValueError, match="2021-02 has no day 30"):
        compute_date_ranges(pd.Series(["2021-02-01", "2021-02-30"]))
