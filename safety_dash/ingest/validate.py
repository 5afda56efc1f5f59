"""Row rules: split an extract into loadable rows and quarantined rows, each with its reason.

Quarantine is only for a row that cannot be placed or read (DOMAIN.md §3 "Bad input versus data queries"):
no subject key, a subject not in DM, a date that is not ISO 8601 or impossible, a grade outside 1..5 or not a
whole number, a negative or non-numeric dose, a duplicate record key (the later row). Everything else loads.
Missing required columns are a problem of the whole file (:class:`~safety_dash.ingest.readers.FileProblem`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from safety_dash.ingest.readers import FIELDS_COLUMN, ROW_COLUMN, FileProblem, SourceFile, format_numbers
from safety_dash.ingest.sdtm import DATE_COLUMNS, DOMAINS, NUMERIC_COLUMNS, REQUIRED, STANDARD
from safety_dash.metrics.dates import parse_partial_date

KEY_COLUMN = "_KEY"
QUARANTINE_COLUMNS = ["domain", "file", "row_number", "column", "value", "reason", "raw"]


@dataclass
class ValidatedExtract:
    """Loadable rows per domain (with ``_ROW`` and ``_KEY``) and the quarantined problems."""

    frames: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    read: dict[str, int]
    quarantined_keys: dict[str, set[str]] = field(default_factory=dict)

    def quarantined_rows(self, domain: str) -> int:
        """How many rows of ``domain`` were quarantined (a row with two problems counts once)."""
        rows = self.quarantine[self.quarantine["domain"] == domain]
        return int(rows["row_number"].nunique())


def check_required_columns(source: SourceFile, key_columns: tuple[str, ...] = ()) -> None:
    """Fail the file when a column every row needs is absent."""
    needed = list(REQUIRED[source.domain]) + [c for c in key_columns if c not in REQUIRED[source.domain]]
    missing = [c for c in needed if c not in source.frame.columns]
    if missing:
        raise FileProblem(source.path.name, "required column is missing", column=", ".join(missing))
    if source.domain == "ae" and not {"AETOXGR", "AESEV"} & set(source.frame.columns):
        raise FileProblem(source.path.name, "neither a grade nor a severity column is present", column="AETOXGR")


def compute_record_keys(frame: pd.DataFrame, key_columns: tuple[str, ...]) -> pd.Series:
    """The record key of every row: its key columns' values joined by ``|`` (normalise them first)."""
    keys = frame[key_columns[0]].astype(str)
    for column in key_columns[1:]:
        keys = keys + "|" + frame[column].astype(str)
    return keys


def normalise_key_values(values: pd.Series) -> pd.Series:
    """Key values as they compare: trimmed text, and in a column whose every non-empty value is a number, the
    number's own text, so that ``01``, ``1`` and ``1.0`` are one key (SDTM --SEQ variables are numeric; a CSV
    writes them as text, sometimes zero-padded). A column with any text that is not a number stays as text.
    Each distinct value is looked at once (a million AESEQ values hold a few hundred distinct ones)."""
    codes, uniques = pd.factorize(values.astype(str), sort=False)
    text = pd.Series(uniques, dtype=object).str.strip()
    filled = text != ""
    numbers = pd.to_numeric(text[filled], errors="coerce")
    if filled.any() and not numbers.isna().any():
        text[filled] = format_numbers(numbers)
    return pd.Series(text.to_numpy(dtype=object)[codes], index=values.index, dtype=object)


def check_study_of_file(source: SourceFile, study_id: str) -> None:
    """Fail the file when STUDYID is filled in and no row names ``study_id``: the file is another study's."""
    if "STUDYID" not in source.frame.columns:
        return
    named = source.frame["STUDYID"].astype(str).str.strip()
    found = sorted(set(named) - {""})
    if found and study_id not in found:
        shown = " or ".join(found[:3]) + (f" (and {len(found) - 3} more)" if len(found) > 3 else "")
        raise FileProblem(
            source.path.name,
            f"STUDYID is {shown} in all {len(named)} rows, not {study_id}; omit --study or name the study of the files",
        )


def validate_extract(
    sources: dict[str, SourceFile],
    study_id: str,
    ae_key_columns: tuple[str, ...] = ("USUBJID", "AESEQ"),
    lb_key_columns: tuple[str, ...] = ("USUBJID", "LBSEQ"),
) -> ValidatedExtract:
    """Apply every row rule to DM, EX, AE and (when sent) LB; return what loads and what is quarantined, with
    reasons."""
    key_columns = {
        "dm": ("USUBJID",),
        "ex": _exposure_key(sources["ex"].frame),
        "ae": ae_key_columns,
        "lb": lb_key_columns,
    }
    domains = [domain for domain in DOMAINS if domain in sources]
    for domain in domains:
        check_required_columns(sources[domain], key_columns[domain])
        check_study_of_file(sources[domain], study_id)
    problems: list[pd.DataFrame] = []
    frames: dict[str, pd.DataFrame] = {}
    quarantined_keys: dict[str, set[str]] = {}
    dm_subjects: set[str] = set()
    for domain in domains:
        source = sources[domain]
        header_fields = sum(not c.startswith("_") for c in source.frame.columns)
        frame = _with_standard_columns(source.frame, domain)
        if domain == "ae":
            frame["AETOXGR"] = normalise_grades(frame["AETOXGR"])
        for column in key_columns[domain]:
            if column != "USUBJID":  # USUBJID is text, matched across domains as written
                frame[column] = normalise_key_values(frame[column])
        frame[KEY_COLUMN] = compute_record_keys(frame, key_columns[domain])
        found = _find_problems(frame, domain, study_id, key_columns[domain], dm_subjects, header_fields)
        bad_rows = set(found["row_number"]) if len(found) else set()
        good = frame[~frame[ROW_COLUMN].isin(bad_rows)].reset_index(drop=True)
        if domain == "dm":
            dm_subjects = set(good["USUBJID"])
        frames[domain] = good
        quarantined_keys[domain] = set(frame.loc[frame[ROW_COLUMN].isin(bad_rows), KEY_COLUMN]) - set(good[KEY_COLUMN])
        if len(found):
            found = found.assign(domain=domain, file=source.path.name)
            raw = source.frame.set_index(ROW_COLUMN).drop(columns=[FIELDS_COLUMN], errors="ignore")  # as read
            found["raw"] = [raw.loc[r].to_dict() for r in found["row_number"]]
            problems.append(found[QUARANTINE_COLUMNS])
    quarantine = pd.concat(problems, ignore_index=True) if problems else pd.DataFrame(columns=QUARANTINE_COLUMNS)
    read = {domain: len(sources[domain].frame) for domain in domains}
    return ValidatedExtract(frames, quarantine, read, quarantined_keys)


def _exposure_key(frame: pd.DataFrame) -> tuple[str, ...]:
    return ("USUBJID", "EXSEQ") if "EXSEQ" in frame.columns else ("USUBJID", "EXTRT", "EXSTDTC")


def _with_standard_columns(frame: pd.DataFrame, domain: str) -> pd.DataFrame:
    frame = frame.copy()
    for column in STANDARD[domain]:
        if column not in frame.columns:
            frame[column] = ""
    return frame


def _find_problems(
    frame: pd.DataFrame,
    domain: str,
    study_id: str,
    key_columns: tuple[str, ...],
    dm_subjects: set[str],
    header_fields: int,
) -> pd.DataFrame:
    """One row per problem found: row_number, column, value, reason."""
    found: list[pd.DataFrame] = []

    def add(mask: pd.Series, column: str | None, reason) -> None:
        if mask.any():
            rows = frame.loc[mask]
            values = rows[column] if column else pd.Series("", index=rows.index)
            reasons = [reason(v) for v in values] if callable(reason) else [reason] * len(rows)
            found.append(
                pd.DataFrame({"row_number": rows[ROW_COLUMN], "column": column, "value": values, "reason": reasons})
            )

    if FIELDS_COLUMN in frame.columns:
        fields = frame[FIELDS_COLUMN].astype(int)
        short = frame.loc[fields != header_fields]
        found.append(
            pd.DataFrame(
                {
                    "row_number": short[ROW_COLUMN],
                    "column": None,
                    "value": "",
                    "reason": [
                        f"the row has {n} of {header_fields} fields: cut short, or a delimiter is missing"
                        for n in fields[fields != header_fields]
                    ],
                }
            )
        )
    add(frame["USUBJID"] == "", "USUBJID", "no subject key: USUBJID is empty")
    if "STUDYID" in frame.columns:
        add(
            (frame["STUDYID"] != study_id) & (frame["STUDYID"] != ""),
            "STUDYID",
            lambda v: f"the row belongs to study {v}, not {study_id}",
        )
    if domain != "dm":
        add(
            (frame["USUBJID"] != "") & ~frame["USUBJID"].isin(dm_subjects),
            "USUBJID",
            lambda v: f"subject {v} is not in DM (or its DM row was quarantined)",
        )
    for column in key_columns:
        if column != "USUBJID":
            add(frame[column] == "", column, f"record key column {column} is empty")
    for column in DATE_COLUMNS[domain]:
        messages = _date_messages(frame[column])
        add(messages != "", column, lambda v: _date_problem(v))
    for column in NUMERIC_COLUMNS.get(domain, ()):
        number = _numbers(frame[column])
        what = "dose" if column == "EXDOSE" else f"{column} (a numeric result or limit)"
        add((frame[column] != "") & number.isna(), column, lambda v, what=what: f"{what} {v!r} is not a number")
    if domain == "ex":
        add(_numbers(frame["EXDOSE"]) < 0, "EXDOSE", lambda v: f"dose {v} is negative")
    if domain == "ae":
        add(_bad_grades(frame["AETOXGR"]), "AETOXGR", _grade_problem)
    keyed = frame[KEY_COLUMN]
    duplicate = keyed.duplicated(keep="first") & (frame[list(key_columns)] != "").all(axis=1)
    if duplicate.any():
        first_row = frame.drop_duplicates(KEY_COLUMN).set_index(KEY_COLUMN)[ROW_COLUMN]
        rows = frame.loc[duplicate]
        found.append(
            pd.DataFrame(
                {
                    "row_number": rows[ROW_COLUMN],
                    "column": ",".join(key_columns),
                    "value": rows[KEY_COLUMN],
                    "reason": [
                        f"duplicate record key {k} ({', '.join(key_columns)}): row {first_row[k]} has it already"
                        for k in rows[KEY_COLUMN]
                    ],
                }
            )
        )
    if not found:
        return pd.DataFrame(columns=["row_number", "column", "value", "reason"])
    return pd.concat(found, ignore_index=True).sort_values(["row_number", "column"], kind="stable")


def _numbers(values: pd.Series) -> pd.Series:
    """Each distinct text converted once (four million lab results hold far fewer distinct values)."""
    codes, uniques = pd.factorize(values.astype(str), sort=False)
    converted = pd.to_numeric(pd.Series(uniques, dtype=object).str.strip(), errors="coerce").to_numpy(dtype=float)
    return pd.Series(converted[codes] if len(uniques) else [], index=values.index, dtype=float)


def _date_problem(value: str) -> str:
    try:
        parse_partial_date(value)
    except ValueError as error:
        return str(error)
    return ""


def _date_messages(values: pd.Series) -> pd.Series:
    unique = {v: _date_problem(v) for v in pd.unique(values)}
    return values.map(unique)


def _bad_grades(grades: pd.Series) -> pd.Series:
    return (grades != "") & ~grades.isin(GRADES)


GRADES = ["1", "2", "3", "4", "5"]


def normalise_grades(grades: pd.Series) -> pd.Series:
    """Grades written as decimals of whole numbers (``3.0``, as some exports do) as their integer text."""
    number = pd.to_numeric(grades, errors="coerce")
    whole = number.notna() & (number == number.round()) & number.between(1, 5) & ~grades.isin(GRADES)
    return grades.where(~whole, number[whole].astype("Int64").astype(str))


def _grade_problem(value: str) -> str:
    try:
        number = float(value)
    except ValueError:
        return f"grade {value!r} is not a CTCAE grade (expected a whole number 1..5)"
    if not number.is_integer():
        return f"grade {value} is not a whole number (CTCAE grades are 1..5)"
    return f"grade {value} is outside 1..5"
