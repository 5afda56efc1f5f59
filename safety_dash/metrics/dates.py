"""ISO 8601 dates as SDTM delivers them (SDTMIG v3.4 §4.4.7; DOMAIN.md §1): one parser for every date column.

A date stands for a range of days: ``2012-02`` is 2012-02-01 .. 2012-02-29, ``2012`` the whole year. Accepted,
in ISO 8601 extended format (the one SDTMIG writes)::

    YYYY[-MM[-DD]][Thh[:mm[:ss]][(.|,)f...][Z | ±hh[:mm] | ±hhmm]]

- reduced precision by right truncation (``2012``, ``2012-02``, ``2023-05-02T14``);
- ``-`` for a component not known, SDTMIG's convention (``2023---15``, ``--05-15``, ``2023-05-15T-:15``,
  ``-----T07:15``);
- a time part with or without seconds, a decimal fraction (``.`` or ``,``, any number of digits) of the last
  component written, a lower-case ``t`` or a blank in place of ``T`` (RFC 3339; many exports write it so);
- a UTC offset ``Z``, ``±hh:mm``, ``±hh`` or ``±hhmm`` (the last is ISO's basic format, which ``strftime('%z')``
  writes; accepted because refusing it would hide an adverse event over punctuation). The offset is checked and
  then ignored: the date is the site's date as written, never moved to UTC.

The time is checked (hour 00–23, minute 00–59, second 00–59, or 60 at 23:59 for a leap second) and then ignored:
the day is what counts here. Only the day's components decide the interval:

- year, month and day known -> that day, level '' (complete);
- year and month known, day not -> the month, level 'D' (day imputed);
- year known, month not (``2012``, ``2023---15``) -> the year, level 'M' (month and day imputed); a day written
  without its month places nothing more;
- year not known (``--05-15``, ``-----T07:15``) -> not placeable on the calendar, like an empty value: ``None``.
  Such text is valid ISO 8601 (so not bad input, DOMAIN.md §3), but a day without a year cannot be compared with
  a dose date; an onset so written is imputed as a missing one (level 'Y') and shown.

Bad input, raised as ``ValueError`` with a sentence: text that is not ISO 8601 in that form (``15/05/2023``,
basic format ``20230515``, ``2023-05-15Z``: an offset belongs to a time) and a day or time that does not exist
(``2021-13-45``, ``2021-02-30``, ``2023-02-29``, ``--02-30``, ``T24:00``). Years outside 1678–2261 are refused
too: no day of them can be held as a pandas date (nanoseconds), and no clinical record has one.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re

import numpy as np
import pandas as pd

_DATE = re.compile(r"(?P<year>\d{4}|-)(?:-(?P<month>\d{2}|-)(?:-(?P<day>\d{2}|-))?)?")
_TIME = re.compile(
    r"(?P<hour>\d{2}|-)(?::(?P<minute>\d{2}|-)(?::(?P<second>\d{2}|-))?)?(?P<fraction>[.,]\d+)?"
    r"(?P<offset>[Zz]|[+-](?P<offset_hour>\d{2})(?::?(?P<offset_minute>\d{2}))?)?"
)
_TIME_DESIGNATOR = re.compile(r"[Tt ]")
_FORM = "YYYY[-MM[-DD]][Thh[:mm[:ss[.f]]]][Z|±hh:mm], with '-' for an unknown component"
#: Years whose every day fits a pandas datetime64[ns] (1677-09-21 .. 2262-04-11).
FIRST_YEAR, LAST_YEAR = 1678, 2261
_LEAP_YEAR = 2000

#: Imputation levels, as admiral's ``--DTF``: D = day imputed, M = month and day, Y = fully missing.
LEVEL_COMPLETE, LEVEL_DAY, LEVEL_MONTH, LEVEL_YEAR = "", "D", "M", "Y"


def _known(part: str | None) -> int | None:
    """The number a date or time component holds; None when truncated away or written '-' (unknown)."""
    return None if part is None or part == "-" else int(part)


class _BadDate(ValueError):
    """A problem found in one part of a date (cached per part); reported with the whole text by the caller."""

    def __init__(self, kind: str, reason: str = "") -> None:
        super().__init__(kind, reason)
        self.kind, self.reason = kind, reason

    def sentence(self, text: str) -> str:
        if self.kind == "syntax":
            return f"{text!r} is not an ISO 8601 date (expected {_FORM})"
        return f"{text!r} is not {self.kind}: {self.reason}"


@functools.lru_cache(maxsize=4096)
def _check_time(time_text: str) -> None:
    """Fail (``_BadDate``) when the time part is not ISO 8601 or names an hour, minute, second or UTC offset that
    does not exist. Cached: a study repeats few distinct times."""
    match = _TIME.fullmatch(time_text)
    if match is None:
        raise _BadDate("syntax")
    hour, minute, second = _known(match["hour"]), _known(match["minute"]), _known(match["second"])
    if match["fraction"] is not None:
        last = next(part for part in (match["second"], match["minute"], match["hour"]) if part is not None)
        if last == "-":
            raise _BadDate("a valid date-time", "a fraction needs a known component before it")
    leap_second = (hour, minute, second) == (23, 59, 60)
    for name, value, limit in (("hour", hour, 23), ("minute", minute, 59), ("second", second, 59)):
        if value is not None and value > limit and not leap_second:
            raise _BadDate("a valid date-time", f"{name} {value} does not exist")
    if match["offset_hour"] is not None:
        offset_minute = match["offset_minute"] or "00"
        if int(match["offset_hour"]) > 23 or int(offset_minute) > 59:
            offset = f"{match['offset'][0]}{match['offset_hour']}:{offset_minute}"
            raise _BadDate("a valid date-time", f"UTC offset {offset} does not exist")


@functools.lru_cache(maxsize=65536)
def _parse_day(date_text: str) -> tuple[dt.date, dt.date, str] | None:
    """The range the date part (before any time) stands for; ``_BadDate`` when it is not ISO 8601 or impossible.
    Cached: a study repeats few distinct dates."""
    match = _DATE.fullmatch(date_text)
    if match is None:
        raise _BadDate("syntax")
    year, month, day = _known(match["year"]), _known(match["month"]), _known(match["day"])
    if month is not None and not 1 <= month <= 12:
        raise _BadDate("a valid date", f"month {month} does not exist")
    if day is not None:
        if month is None and not 1 <= day <= 31:
            raise _BadDate("a valid date", f"no month has day {day}")
        if month is not None and year is None and not 1 <= day <= calendar.monthrange(_LEAP_YEAR, month)[1]:
            raise _BadDate("a valid date", f"no year has day {day} in month {month:02d}")
    if year is None:
        return None
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise _BadDate(
            "a date this tool can place",
            f"only the years {FIRST_YEAR} to {LAST_YEAR} are supported; check the year",
        )
    if month is None:
        return dt.date(year, 1, 1), dt.date(year, 12, 31), LEVEL_MONTH
    last_day = calendar.monthrange(year, month)[1]
    if day is None:
        return dt.date(year, month, 1), dt.date(year, month, last_day), LEVEL_DAY
    if not 1 <= day <= last_day:
        raise _BadDate("a valid date", f"{year}-{month:02d} has no day {day}")
    value = dt.date(year, month, day)
    return value, value, LEVEL_COMPLETE


def parse_partial_date(value: object) -> tuple[dt.date, dt.date, str] | None:
    """The range ``(first day, last day, imputation level)`` an ISO 8601 date stands for (module docstring).

    Level '' for a complete date, 'D' when the day is not known, 'M' when the month is not known. ``None`` for an
    empty value (None, NaN, blank text) and for a date whose year is not known. Surrounding blanks are ignored;
    a time part and a UTC offset are checked, then ignored (the site's date as written). Raises ``ValueError``
    with a sentence when ``value`` is not ISO 8601 as SDTMIG writes it, or names a day or time that does not
    exist (``2021-13-45``, ``2021-02-30``).
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    text = str(value).strip()
    if text == "":
        return None
    # The date and the time part are parsed (and cached) apart: a million date-times share few days and times.
    designator = _TIME_DESIGNATOR.search(text)
    try:
        if designator is None:
            return _parse_day(text)
        _check_time(text[designator.end() :])
        return _parse_day(text[: designator.start()])
    except _BadDate as problem:
        raise ValueError(problem.sentence(text)) from None


def compute_date_ranges(values: pd.Series) -> pd.DataFrame:
    """Vectorised :func:`parse_partial_date` over a Series of ISO 8601 text, parsing each distinct text once.

    Returns columns ``lo``, ``hi`` (datetime64[ns], NaT when empty or the year is unknown) and ``level`` (''
    complete, 'D', 'M', or 'Y' when not placeable), indexed like ``values``. Invalid dates raise ``ValueError``;
    validate them before deriving. A study repeats few distinct dates over many records, which is what makes a
    million onsets affordable: the texts are factorized as they are (no per-row string work) and each distinct
    one is parsed once.
    """
    codes, uniques = pd.factorize(values, sort=False)
    size = len(uniques) + 1  # one extra slot, last, for missing values (factorize codes them -1)
    lows = np.full(size, np.datetime64("NaT"), dtype="datetime64[D]")
    highs = lows.copy()
    levels = np.full(size, LEVEL_YEAR, dtype=object)
    for position, item in enumerate(uniques):
        parsed = parse_partial_date(item)
        if parsed is not None:
            lows[position], highs[position], levels[position] = parsed
    return pd.DataFrame(
        {
            "lo": lows.astype("datetime64[ns]")[codes],
            "hi": highs.astype("datetime64[ns]")[codes],
            "level": levels[codes],
        },
        index=values.index,
    )
