"""Read one extract folder into text DataFrames: SAS transport (.xpt), SAS7BDAT or CSV.

Everything comes back as text, the way SDTM defines it: upper-case column names, values stripped, '' for
missing, integral numbers without a trailing ``.0`` and SAS dates as ISO 8601. A file that cannot be read
as a whole raises :class:`FileProblem`, naming the file (and line and column where known); the run then
fails and nothing changes. Row-level problems are not found here but in :mod:`safety_dash.ingest.validate`.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat

SUFFIXES = (".xpt", ".sas7bdat", ".csv")
SDTM_DOMAINS = ("dm", "ex", "ae", "lb")
ADAM_DOMAINS = ("adsl", "adae", "adlb")
ROW_COLUMN = "_ROW"  # 1-based data row number in the source file (the header line of a CSV is not counted)
FIELDS_COLUMN = "_FIELDS"  # fields per row, present only when some CSV row has fewer fields than the header


class FileProblem(Exception):
    """A file that cannot be used as a whole: unreadable, truncated, undecodable, or missing a column."""

    def __init__(self, file: str, message: str, column: str | None = None, row: int | None = None):
        self.file, self.column, self.row = file, column, row
        where = file + (f", row {row}" if row is not None else "") + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")


@dataclass
class SourceFile:
    """One domain's file as read: its text frame and what we know of the file."""

    domain: str
    path: Path
    frame: pd.DataFrame
    sha256: str
    encoding: str
    notes: list[str] = field(default_factory=list)


def find_domain_files(folder: Path) -> dict[str, Path]:
    """The dm/ex/ae and optional lb (or adsl/adae/adlb) files of an extract folder, by lower-case domain name.

    File names are matched case-insensitively; two files for one domain (``ae.xpt`` and ``AE.csv``) are a
    problem, since we cannot tell which one the sender meant.
    """
    if not folder.exists():
        raise FileProblem(str(folder), "does not exist; name the folder holding the dm, ex and ae files")
    if not folder.is_dir():
        raise FileProblem(str(folder), "is a file, not a folder; name the folder holding the dm, ex and ae files")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        stem, suffix = path.stem.lower(), path.suffix.lower()
        if suffix not in SUFFIXES or stem not in SDTM_DOMAINS + ADAM_DOMAINS:
            continue
        if stem in found:
            raise FileProblem(str(path), f"two files for domain {stem}: {found[stem].name} and {path.name}")
        found[stem] = path
    return found


def compute_sha256(path: Path) -> str:
    """The SHA-256 checksum of a file, recorded with every run."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_domain_file(domain: str, path: Path) -> SourceFile:
    """Read one file into a text frame with a ``_ROW`` column; raise :class:`FileProblem` if it cannot be."""
    if not path.is_file():
        raise FileProblem(str(path), "does not exist")
    if path.stat().st_size == 0:
        raise FileProblem(path.name, "the file is empty (0 bytes)")
    suffix = path.suffix.lower()
    padded = True  # strip every text value unless the file shows it has nothing to strip
    if suffix == ".csv":
        frame, encoding, padded = _read_csv(path)
    elif suffix == ".xpt":
        frame, encoding = _read_xpt(path)
    else:
        frame, encoding = _read_sas7bdat(path)
    frame = _normalise(frame, path.name, strip=padded)
    frame.insert(0, ROW_COLUMN, range(1, len(frame) + 1))
    return SourceFile(domain, path, frame, compute_sha256(path), encoding)


def _read_xpt(path: Path) -> tuple[pd.DataFrame, str]:
    # SAS V5 transport is a sequence of 80-byte records; a file cut short of that is truncated, and
    # pyreadstat would otherwise return the rows it could read without a word.
    size = path.stat().st_size
    if size % 80:
        raise FileProblem(path.name, f"the file is truncated: {size} bytes is not a whole number of 80-byte records")
    check_transport_complete(path.name, path.read_bytes())
    # Transport files carry no encoding; SAS writes them in the session encoding, usually UTF-8 or
    # WLATIN1 (cp1252). We try UTF-8 first and say so when cp1252 was needed.
    for encoding in ("utf-8", "cp1252"):
        try:
            frame, _meta = pyreadstat.read_xport(str(path), encoding=encoding)
            return frame, encoding
        except UnicodeDecodeError:
            continue
        except Exception as error:  # pyreadstat raises its own error types
            if "encoding" in str(error):
                continue
            raise FileProblem(path.name, f"not a readable SAS transport file ({error})") from None
    raise FileProblem(path.name, "text is neither UTF-8 nor Windows-1252")


_HEADER = b"HEADER RECORD*******"
_MEMBER_HEADERS = (_HEADER + b"MEMBER  HEADER RECORD", _HEADER + b"MEMBV8  HEADER RECORD")
_NAMESTR_HEADERS = (_HEADER + b"NAMESTR HEADER RECORD", _HEADER + b"NAMSTV8 HEADER RECORD")
_OBS_HEADERS = (_HEADER + b"OBS     HEADER RECORD", _HEADER + b"OBSV8   HEADER RECORD")


def _find_header(data: bytes, names: tuple[bytes, ...], start: int = 0) -> int:
    """Offset of the first 80-byte header record among ``names`` at or after ``start`` (records are aligned)."""
    found = [i for i in (data.find(name, start) for name in names) if i >= 0]
    return min(found) if found else -1


def check_transport_complete(file: str, data: bytes) -> None:
    """Fail when the first member of a SAS transport file lost observations at its end.

    A V5/V8 transport file is 80-byte records; observations of fixed length (the namestr records give each
    variable's position and length) are packed one after another and only the last record is padded with
    blanks. A file cut on an 80-byte boundary therefore ends in a partial observation that is not blank, or
    (V8, which writes the count into its OBS header) holds fewer observations than the header says. A cut that
    falls exactly between observations of a V5 file leaves no trace; nothing in the format can tell it.
    """
    member = _find_header(data, _MEMBER_HEADERS)
    namestr = _find_header(data, _NAMESTR_HEADERS, max(member, 0))
    if member < 0 or namestr < 0:
        return  # not a layout we know; pyreadstat reports what it cannot read
    try:
        namestr_length = int(data[member + 74 : member + 78])
        n_variables = int(data[namestr + 54 : namestr + 58])
    except ValueError:
        return
    first = namestr + 80
    observation_length = 0
    for i in range(n_variables):
        record = data[first + i * namestr_length : first + (i + 1) * namestr_length]
        if len(record) < 88:
            raise FileProblem(file, "the file is truncated: it ends inside its variable descriptions")
        length, position = struct.unpack(">h", record[4:6])[0], struct.unpack(">i", record[84:88])[0]
        observation_length = max(observation_length, position + length)
    observations = _find_header(data, _OBS_HEADERS, first)
    if observations < 0:
        raise FileProblem(file, "the file is truncated: it ends before its first observation")
    body = data[observations + 80 :]
    next_member = _find_header(body, _MEMBER_HEADERS)
    body = body if next_member < 0 else body[:next_member]
    if observation_length <= 0:
        return
    partial = len(body) % observation_length
    if partial and body[len(body) - partial :].strip(b" "):
        complete = len(body) // observation_length
        raise FileProblem(
            file,
            f"the file is truncated: it ends {partial} bytes into observation {complete + 1} "
            f"(observations are {observation_length} bytes)",
        )
    if data.startswith(_OBS_HEADERS[1], observations):  # V8 writes the number of observations
        declared = data[observations + 48 : observations + 80].strip()
        held = len(body) // observation_length  # blank padding can only add to this, never take away
        if declared.isdigit() and held < int(declared):
            raise FileProblem(
                file, f"the file is truncated: its header declares {int(declared)} observations, it holds {held}"
            )


def _read_sas7bdat(path: Path) -> tuple[pd.DataFrame, str]:
    try:
        frame, meta = pyreadstat.read_sas7bdat(str(path))
    except UnicodeDecodeError as error:
        raise FileProblem(path.name, f"text cannot be decoded ({error.reason} at byte {error.start})") from None
    except Exception as error:
        raise FileProblem(path.name, f"not a readable SAS7BDAT file ({error})") from None
    if meta.number_rows is not None and meta.number_rows != len(frame):
        raise FileProblem(path.name, f"the file is truncated: header says {meta.number_rows} rows, read {len(frame)}")
    return frame, meta.file_encoding or "utf-8"


# Where a CSV value could carry padding: a space beside a delimiter, quote or line end, or any other whitespace
# str.strip would remove (besides the line end itself). Bytes, as pairs or alone, looked for with numpy.
_SPACE = ord(" ")
_BESIDE_A_SPACE = np.zeros(256, dtype=bool)  # byte -> whether a space beside it may be padding (a lookup table)
_BESIDE_A_SPACE[[ord(c) for c in ',;\n\r"']] = True
_WHITESPACE = np.zeros(256, dtype=bool)  # byte -> whether str.strip removes it (line ends and space aside)
_WHITESPACE[[ord(c) for c in "\t\x0b\x0c\x1c\x1d\x1e\x1f"]] = True
_QUOTE, _LF, _CR = ord('"'), ord("\n"), ord("\r")


def _may_be_padded(raw: bytes) -> bool:
    """False only when no value of the CSV (UTF-8 bytes) can have leading or trailing whitespace: no whitespace but
    spaces and line ends, and no space beside a delimiter, quote, line end or the file's ends. Whole-array numpy
    steps, 0.1 s for 100 MB (substring tests took 1.2 s, a regular expression seconds)."""
    if not raw.isascii():
        return True  # other whitespace (no-break space, ...) may stand anywhere: strip to be safe
    data = np.frombuffer(raw, dtype=np.uint8)
    controls = data[data < _SPACE]  # line ends, mostly: few
    if _WHITESPACE[controls].any():
        return True
    spaces = np.flatnonzero(data == _SPACE)
    if not len(spaces):
        return False
    if spaces[0] == 0 or spaces[-1] == len(data) - 1:
        return True
    return bool(_BESIDE_A_SPACE[data[spaces - 1]].any() or _BESIDE_A_SPACE[data[spaces + 1]].any())


def count_csv_fields(raw: bytes, delimiter: str) -> np.ndarray | None:
    """Fields of each data row of a CSV (UTF-8 bytes) by the CSV rules, the header and blank lines left out, as
    Python's ``csv.reader`` counts them; None when the file uses quotes in a way only a full parser can tell apart
    (a quote inside an unquoted value, text after a closing quote, an unclosed quote) or a bare carriage return.

    A delimiter or line break counts when an even number of quotes stands before it: a quoted value opens and closes
    with one, and a quote inside it is doubled. Every quote is checked to stand where that holds. Whole-array numpy
    steps: 0.1-0.3 s for a million rows, where ``csv.reader`` took 3 s (measured 2026-12-01)."""
    data = np.frombuffer(raw, dtype=np.uint8)
    quotes = np.flatnonzero(data == _QUOTE)
    if len(quotes) % 2:
        return None
    outside = None  # bytes outside quoted values: all of them when there is no quote
    if len(quotes):
        # The 1st, 3rd, ... quote opens a value, the others close it; a doubled quote closes and reopens.
        bounds = np.array([ord(delimiter), _LF, _CR, _QUOTE], dtype=np.uint8)
        opening, closing = quotes[0::2], quotes[1::2]
        before = np.where(opening > 0, data[np.maximum(opening - 1, 0)], _LF)
        after = np.where(closing + 1 < len(data), data[np.minimum(closing + 1, len(data) - 1)], _LF)
        if not (np.isin(before, bounds).all() and np.isin(after, bounds).all()):
            return None
        outside = (np.cumsum(data == _QUOTE, dtype=np.uint8) & 1) == 0  # uint8 wraps, the parity stays right

    def positions(byte: int) -> np.ndarray:
        found = data == byte
        return np.flatnonzero(found if outside is None else found & outside)

    line_ends, returns = positions(_LF), positions(_CR)
    if len(returns) and not np.isin(returns + 1, line_ends).all():
        return None  # a carriage return that ends no line: the full parser decides
    stops = np.append(line_ends, len(data))
    starts = np.concatenate([[0], line_ends + 1])
    kept = starts < len(data)  # the nothing after a final line break is no line
    # A line's delimiters: those before its end less those before the previous line's end (no line end is one).
    fields = np.diff(np.searchsorted(positions(ord(delimiter)), stops), prepend=0) + 1
    lengths = stops - starts - np.isin(stops - 1, returns)  # a line's bytes without its line end
    return fields[kept & (lengths > 0)][1:]


def _read_csv(path: Path) -> tuple[pd.DataFrame, str, bool]:
    """The CSV as text, its encoding, and whether any value may carry padding to strip."""
    raw = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a byte-order mark is allowed, not required
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line, column = _locate_byte(raw, error.start)
        raise FileProblem(
            path.name,
            f"byte 0x{raw[error.start]:02x} is not UTF-8 text; save the file as UTF-8",
            column=column,
            row=line,
        ) from None
    if not text.strip():
        raise FileProblem(path.name, "the file holds no header and no rows")
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False, na_values=[], skip_blank_lines=True
        )
    except pd.errors.ParserError as error:
        raise FileProblem(path.name, f"malformed CSV ({error})") from None
    if len(frame.columns) and not text.endswith(("\n", "\r")) and len(frame):
        last = next(csv.reader([text.rstrip().rsplit("\n", 1)[-1]], delimiter=delimiter))
        if len(last) != len(frame.columns):
            raise FileProblem(
                path.name, f"the file is truncated: its last line has {len(last)} of {len(frame.columns)} fields"
            )
    # pandas fills the missing fields of a short row with '' without a word: count each row's fields, so that
    # validation can quarantine such a row instead of loading it with values that were never sent.
    fields = count_csv_fields(raw, delimiter)
    if fields is None:
        fields = np.array([len(row) for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row][1:])
    if len(fields) != len(frame):
        raise FileProblem(path.name, f"malformed CSV: {len(fields)} rows by the CSV rules, {len(frame)} parsed")
    if (fields != len(frame.columns)).any():
        frame[FIELDS_COLUMN] = fields
    # Stripping a million values costs seconds; one scan of the text tells whether any value needs it.
    return frame, "utf-8", _may_be_padded(raw)


def _locate_byte(raw: bytes, offset: int) -> tuple[int, str | None]:
    """Data row number and column name of the byte at ``offset`` of a CSV file (for error messages)."""
    header_end = raw.find(b"\n")
    header = raw[:header_end].decode("utf-8", errors="replace").strip("\r")
    delimiter = ";" if header.count(";") > header.count(",") else ","
    names = next(csv.reader([header], delimiter=delimiter))
    line_start = raw.rfind(b"\n", 0, offset) + 1
    row = raw.count(b"\n", 0, offset)  # the header is line 0
    before = raw[line_start:offset].decode("utf-8", errors="replace")
    index = before.count(delimiter)
    return row, (names[index].strip().upper() if index < len(names) else None)


def _normalise(frame: pd.DataFrame, file: str, strip: bool = True) -> pd.DataFrame:
    names = [str(c).strip().upper() for c in frame.columns]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise FileProblem(file, "column names repeat (names are case-insensitive)", column=", ".join(duplicated))
    frame = frame.set_axis(names, axis=1)
    return pd.DataFrame({name: _as_text(frame[name], strip) for name in names}, index=range(len(frame)))


def format_numbers(numbers: pd.Series) -> pd.Series:
    """Numbers as SDTM text: whole numbers without a trailing ``.0`` (``1.0`` -> ``1``), others by ``repr``, ''
    for missing; indexed like ``numbers``."""
    numbers = numbers.astype(float)
    whole = numbers.notna() & (numbers == numbers.round()) & (numbers.abs() < 2**53)
    text = pd.Series("", index=numbers.index, dtype=object)
    text[whole] = numbers[whole].astype("int64").astype(str)
    fractional = numbers.notna() & ~whole
    text[fractional] = [repr(float(v)) for v in numbers[fractional]]
    return text


def _as_text(column: pd.Series, strip: bool = True) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column.dtype):
        return format_numbers(column)
    if pd.api.types.is_datetime64_any_dtype(column.dtype):  # a SAS DATETIME (or DATE) format, read by pyreadstat
        return _datetime_text(column.reset_index(drop=True))
    # Text is the rule (CSV always, SAS character columns too): only what is not text is converted one by one.
    values = column.reset_index(drop=True)
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values.str.strip() if strip else values
    is_text = pd.Series([type(v) is str for v in values.to_numpy(dtype=object)])
    out = values.astype(object).copy()
    if is_text.any():
        out[is_text] = values[is_text].str.strip()
    out[~is_text] = [_value_text(v) for v in values[~is_text]]
    return out


def _datetime_text(stamps: pd.Series) -> pd.Series:
    """ISO 8601 text of SAS dates and datetimes: the date alone at midnight, else date and time to the second."""
    text = pd.Series("", index=stamps.index, dtype=object)
    known = stamps.notna()
    with_time = known & (stamps != stamps.dt.normalize())
    text[known & ~with_time] = stamps[known & ~with_time].dt.strftime("%Y-%m-%d")
    text[with_time] = stamps[with_time].dt.strftime("%Y-%m-%dT%H:%M:%S")
    return text


def _number_text(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _value_text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, dt.datetime):
        return (
            value.isoformat(timespec="seconds")
            if (value.hour or value.minute or value.second)
            else value.date().isoformat()
        )
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float | int):
        return _number_text(float(value))
    if value is pd.NaT:
        return ""
    return str(value).strip()
