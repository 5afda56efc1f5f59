"""ISO 8601 dates as SDTM delivers them: complete, partial (``2012-02``, ``2012``) or empty.

A partial date stands for a range of days: ``2012-02`` is 2012-02-01 .. 2012-02-29. Only right-truncated
forms are accepted; a time part, when present, is checked and then ignored (the day is what counts here).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import pandas as pd

_ISO = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2})(?::(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.\d+)?)?)?)?)?)?$"
)

#: Imputation levels, as admiral's ``--DTF``: D = day imputed, M = month and day, Y = fully missing.
LEVEL_COMPLETE, LEVEL_DAY, LEVEL_MONTH, LEVEL_YEAR = "", "D", "M", "Y"


def parse_partial_date(value: str | None) -> tuple[dt.date, dt.date, str] | None:
    """The range ``(first day, last day, imputation level)`` an ISO 8601 date stands for; None when empty.

    Raises ``ValueError`` with a sentence when ``value`` is not ISO 8601 or names an impossible date
    (``2021-13-45``, ``2021-02-30``).
    """
    if value is None:
        return None
    text = str(value).strip()
    if text == "":
        return None
    match = _ISO.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an ISO 8601 date (expected YYYY, YYYY-MM or YYYY-MM-DD[Thh:mm[:ss]])")
    year = int(match["year"])
    if match["month"] is None:
        return dt.date(year, 1, 1), dt.date(year, 12, 31), LEVEL_MONTH
    month = int(match["month"])
    if not 1 <= month <= 12:
        raise ValueError(f"{text!r} is not a valid date: month {month} does not exist")
    last_day = calendar.monthrange(year, month)[1]
    if match["day"] is None:
        return dt.date(year, month, 1), dt.date(year, month, last_day), LEVEL_DAY
    day = int(match["day"])
    if not 1 <= day <= last_day:
        raise ValueError(f"{text!r} is not a valid date: {year}-{month:02d} has no day {day}")
    for part, limit in (("hour", 23), ("minute", 59), ("second", 59)):
        if match[part] is not None and int(match[part]) > limit:
            raise ValueError(f"{text!r} is not a valid date-time: {part} {int(match[part])} does not exist")
    day_value = dt.date(year, month, day)
    return day_value, day_value, LEVEL_COMPLETE


def compute_date_ranges(values: pd.Series) -> pd.DataFrame:
    """Vectorised :func:`parse_partial_date` over a Series of ISO 8601 text, parsing each distinct date once.

    Returns columns ``lo``, ``hi`` (datetime64, NaT when empty) and ``level`` ('' complete, 'D', 'M', or 'Y'
    when empty), indexed like ``values``. Invalid dates raise ``ValueError``; validate them before deriving.
    A study repeats few distinct dates over many records, which is what makes a million onsets affordable.
    """
    day = values.fillna("").astype(str).str.strip().str.slice(0, 10)
    codes, uniques = pd.factorize(day, sort=False)
    lows, highs, levels = [], [], []
    for item in list(uniques) + [""]:  # one extra slot, last, for missing values (factorize codes them -1)
        parsed = parse_partial_date(item)
        lows.append(pd.NaT if parsed is None else pd.Timestamp(parsed[0]))
        highs.append(pd.NaT if parsed is None else pd.Timestamp(parsed[1]))
        levels.append(LEVEL_YEAR if parsed is None else parsed[2])
    return pd.DataFrame(
        {
            "lo": pd.to_datetime(pd.Series(lows)).to_numpy(dtype="datetime64[ns]")[codes],
            "hi": pd.to_datetime(pd.Series(highs)).to_numpy(dtype="datetime64[ns]")[codes],
            "level": pd.Series(levels, dtype=object).to_numpy()[codes],
        },
        index=values.index,
    )
