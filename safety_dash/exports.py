"""CSV files that are safe to open in a spreadsheet: every CSV the product writes goes through :func:`to_safe_csv`.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return as a formula, so
a verbatim term, comment or subject id from an extract (``=HYPERLINK(...)``, ``+cmd|' /C calc'!A0``) would run on
the reader's machine. Following OWASP's CSV injection guidance, such a text cell gets a leading ``'``, which the
spreadsheet reads as "this is text" and does not show. Numbers stay numbers: numeric, boolean and date columns are
not touched, and neither is a text cell that is a plain number ("-1.5", "+3", "-2e-4"). Column labels and text
index labels are cells of the file too and are treated the same way. :func:`to_safe_csv` also writes a carriage
return inside a cell as a line feed, which the CSV writer quotes: a spreadsheet would otherwise start a new row, and
a new first cell, in the middle of the text.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
TEXT_MARKER = "'"
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_cell(value: Any) -> Any:
    """``value`` with a leading ``'`` when it is text a spreadsheet would run as a formula; anything else as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(value):
        return TEXT_MARKER + value
    return value


def _is_text(dtype) -> bool:
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    return pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)


def _map_text(column: pd.Series, change) -> pd.Series:
    """``column`` with ``change`` applied to its text cells; the same object when nothing changes (one pass in
    Python over the values: faster than pandas' string methods on object columns)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        try:
            return column.cat.rename_categories(change)
        except ValueError:  # two categories would become one ("=a" and "'=a"): go on as plain text
            column = column.astype(object)
    values = column.to_numpy(dtype=object)
    changed = {}
    for position, value in enumerate(values):
        if isinstance(value, str):
            new = change(value)
            if new is not value:
                changed[position] = new
    if not changed:
        return column
    values = values.copy()
    for position, new in changed.items():
        values[position] = new
    return pd.Series(values, index=column.index, name=column.name, dtype=column.dtype)


def _map_frame(frame: pd.DataFrame, change) -> pd.DataFrame:
    safe = frame.copy()
    for position in range(safe.shape[1]):
        if _is_text(safe.dtypes.iloc[position]):
            safe.isetitem(position, _map_text(safe.iloc[:, position], change))
    safe = safe.rename(columns=change)
    if _is_text(safe.index.dtype):  # a RangeIndex of a million rows is not walked
        safe = safe.rename(index=change)
    return safe


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` in which every text cell a spreadsheet would run as a formula starts with ``'``.

    Text columns (object, string, categorical) are checked cell by cell, and in an object column only the ``str``
    cells; numeric, boolean and datetime columns are returned untouched. Text column labels and text index labels
    are neutralised the same way. Write the result with :func:`to_safe_csv`, which also keeps line breaks inside
    cells.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, not {type(frame).__name__}")
    return _map_frame(frame, neutralise_cell)


def _unix_line_breaks(value: Any) -> Any:
    if isinstance(value, str) and "\r" in value:
        return value.replace("\r\n", "\n").replace("\r", "\n")
    return value


def to_safe_csv(frame: pd.DataFrame, **to_csv_kwargs) -> str:
    """``frame`` as CSV text, formulas neutralised (:func:`neutralise_formulas`); ``to_csv_kwargs`` go to
    :meth:`pandas.DataFrame.to_csv` (``index=False``, ``date_format=...``, ``lineterminator=...``).

    A carriage return inside a cell becomes a line feed unless the line terminator holds one: the CSV writer quotes
    only cells holding a character of the line terminator, and a spreadsheet starts a new row at an unquoted
    carriage return, whose next cell could then be a formula.
    """
    if "path_or_buf" in to_csv_kwargs:
        raise ValueError("to_safe_csv returns the CSV text; write it yourself instead of passing path_or_buf")
    safe = neutralise_formulas(frame)
    if "\r" not in to_csv_kwargs.get("lineterminator", os.linesep):
        safe = _map_frame(safe, _unix_line_breaks)
    return safe.to_csv(**to_csv_kwargs)
