"""Laboratory values (DOMAIN.md §8): baseline, the on-treatment window, x ULN / x LLN, CTCAE grades from criteria
kept as data, worst grades, shift tables, potential Hy's law cases and the per-test table of the ``labs`` command.

Pure functions on DataFrames, vectorised (integer codes, group-bys; no loop per record or subject). The grading
criteria are :data:`CRITERIA_FILE`, CTCAE v5.0 as admiral's ``atoxgr_criteria_ctcv5`` reads it, written by
``scripts/make_lab_criteria.py``; the caller reads it with ``pd.read_csv(CRITERIA_FILE, dtype=str,
keep_default_na=False)`` and passes the frame. Values, limits and thresholds are in the record's standard unit
(LBSTRESU); a criterion with absolute limits grades only records in its own unit (10^9/L may be written GI/L,
10*9/L, 10E9/L, 10^3/uL). Dates are ``datetime64[ns]`` days.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from safety_dash.metrics.dates import LEVEL_COMPLETE, compute_date_ranges
from safety_dash.metrics.exposure import check_columns, check_cutoff_and_window
from safety_dash.metrics.rates import ALL_GROUP, derive_safety_groups

CRITERIA_FILE = Path(__file__).with_name("lab_criteria_ctcae_v5.csv")
CRITERIA_COLUMNS = ("TESTCD", "TERM", "DIRECTION", "UNIT", "RULE", "GRADE", "BASELINE", "OPERATOR", "REFERENCE")
CRITERIA_COLUMNS += ("MULTIPLE", "CONSTANT", "MISSING", "NOT_GRADABLE")
LB_COLUMNS = ("USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBSTRESC", "LBSTRESN", "LBSTRESU", "LBSTNRLO", "LBSTNRHI")
LB_COLUMNS += ("LBDTC",)
#: ADaM ADLB names read as their SDTM LB counterparts; the unit is AVALU, else the "(unit)" that ends PARAM.
ADLB_NAMES = {"ASEQ": "LBSEQ", "PARAMCD": "LBTESTCD", "PARAM": "LBTEST", "AVALC": "LBSTRESC", "AVAL": "LBSTRESN"}
ADLB_NAMES |= {"AVALU": "LBSTRESU", "ANRLO": "LBSTNRLO", "ANRHI": "LBSTNRHI", "ADT": "LBDTC", "ABLFL": "LBBLFL"}
BASELINE_FLAGS = ("LBBLFL", "LBLOBXFL")
SUBJECT_COLUMNS = ("USUBJID", "SAFFL", "TRTSDT", "TRTEDT", "WINDOW_END")
DIRECTIONS = {"H": "high", "L": "low"}
GRADED, NOT_GRADABLE = "graded", "not gradable"
UNIT_SPELLINGS = dict.fromkeys(("GI/L", "10*9/L", "10E9/L", "X10E9/L", "X10^9/L", "10^3/UL", "10*3/UL"), "10^9/L")
#: The CTCAE terms of the tests in the Hy's law screen (found by term, so SDTM and ADaM codes both work).
HYS_LAW_TERMS = {"ALT": "Alanine aminotransferase increased", "AST": "Aspartate aminotransferase increased"}
HYS_LAW_TERMS |= {"BILI": "Blood bilirubin increased", "ALP": "Alkaline phosphatase increased"}
HYS_LAW_DAYS = 30
PERIODS = ("no date", "not dosed", "after cutoff", "pre-treatment", "on-treatment", "post-window")
#: Why a value has no grade; the criteria's NOT_GRADABLE texts and unit mismatches are added after these.
REASONS = ("", "no result", "the result is text, not a number",
           "the result is a bound (e.g. <0.5) that does not decide the grade",
           "no upper limit of normal (LBSTNRHI)", "no lower limit of normal (LBSTNRLO)", "no baseline value",
           "no unit (LBSTRESU) for a criterion with absolute limits")  # fmt: skip
NO_RESULT, TEXT, BOUND, NO_UNIT, MISSING_REASON = 1, 2, 3, 7, {"ULN": 4, "LLN": 5, "BASE": 6}
LAB_TABLE_COLUMNS = ["group", "test", "test_name", "n_subjects", "n_with_value", "n_worst_grade_1", "n_worst_grade_2"]
LAB_TABLE_COLUMNS += ["n_worst_grade_3", "n_worst_grade_4", "n_grade_3_or_more", "pct_grade_3_or_more", "n_hys_law"]
WORST_COLUMNS = ["USUBJID", "LBTESTCD", "LBTEST", "DIRECTION", "TERM", "CRITERION", "N_ON_TREATMENT", "WORST_GRADE"]
WORST_COLUMNS += ["WORST_ADT", "BASELINE_GRADE"]
HYS_LAW_COLUMNS = ["USUBJID", "PEAK_ALT_XULN", "PEAK_AST_XULN", "PEAK_ALT_AST_XULN", "PEAK_BILI_XULN", "HYS_LAW"]
HYS_LAW_COLUMNS += ["HYS_LAW_ALT", "HYS_LAW_AST", "TRANSAMINASE_ADT", "BILI_ADT", "ALP_XULN", "CHOLESTASIS"]
#: Relative difference below which two numbers are equal (15 significant digits, as admiral's signif(x, 15)).
TOLERANCE = 5e-15
_NUMBER = re.compile(r"^\s*(?P<bound><=|>=|<|>|≤|≥)?\s*(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*$")


def parse_lab_criteria(criteria: pd.DataFrame) -> pd.DataFrame:
    """Check the grading criteria (the CSV read as text) and return them typed: RULE int, GRADE Int64, MULTIPLE
    (default 1) and CONSTANT (default 0) float, UNIT normalised (upper case, 10^9/L spellings merged), sorted by
    TESTCD, DIRECTION, UNIT, RULE.

    Per test code and DIRECTION (H or L): ordered rules, tried in RULE order as admiral's ``case_when`` (the first
    that holds gives the grade, none: grade 0): a grade rule `value OPERATOR MULTIPLE x REFERENCE + CONSTANT`
    (REFERENCE ULN, LLN, BASE or empty) under a BASELINE condition (HIGH: the baseline value was above its ULN;
    NOT_HIGH: it was not, or is unknown; empty: any), or a MISSING rule (that reference is missing: not gradable);
    or a single row with NOT_GRADABLE text. Fails with a sentence naming the first bad row.
    """
    check_columns(criteria, CRITERIA_COLUMNS, "criteria")
    frame = criteria.loc[:, list(CRITERIA_COLUMNS)].astype(str).apply(lambda column: column.str.strip())
    frame["UNIT"] = _normalise_units(frame["UNIT"])
    frame["TESTCD"], frame["DIRECTION"] = frame["TESTCD"].str.upper(), frame["DIRECTION"].str.upper()

    def fail(position: int, problem: str) -> None:
        row = frame.iloc[position]
        raise ValueError(
            f"`criteria` row {position + 1} ({row['TESTCD']} {row['DIRECTION']} rule {row['RULE']!r}) {problem}; "
            "regenerate the file with scripts/make_lab_criteria.py or correct that row."
        )

    for position, row in enumerate(frame.itertuples(index=False)):  # ~150 rows of configuration, not data
        numbers = all(text == "" or _is_number(text) for text in (row.MULTIPLE, row.CONSTANT))
        if row.TESTCD == "" or row.DIRECTION not in DIRECTIONS:
            fail(position, "needs a TESTCD and a DIRECTION of H or L")
        elif row.NOT_GRADABLE:
            continue
        elif row.MISSING and (row.MISSING not in MISSING_REASON or row.GRADE or row.OPERATOR):
            fail(position, "is a MISSING rule: name ULN, LLN or BASE and leave GRADE and OPERATOR empty")
        elif not row.MISSING and (row.GRADE not in {"1", "2", "3", "4"} or row.OPERATOR not in (">", ">=", "<", "<=")):
            fail(position, "needs a GRADE 1-4 and an OPERATOR of >, >=, <, <=")
        elif row.REFERENCE not in ("", "ULN", "LLN", "BASE") or row.BASELINE not in ("", "HIGH", "NOT_HIGH"):
            fail(position, "has an unknown REFERENCE (ULN, LLN, BASE or empty) or BASELINE (HIGH, NOT_HIGH or empty)")
        elif not numbers or (not row.MISSING and row.REFERENCE == "" and not _is_number(row.CONSTANT)):
            fail(position, "needs numbers in MULTIPLE and CONSTANT (a CONSTANT when there is no REFERENCE)")
        elif not row.RULE.isdigit():
            fail(position, "needs a whole RULE number")
    repeated = frame.duplicated(["TESTCD", "DIRECTION", "UNIT", "RULE"])
    if repeated.any():
        fail(int(np.flatnonzero(repeated)[0]), "repeats the RULE number of an earlier row")
    per_pair = frame.groupby(["TESTCD", "DIRECTION"], sort=False)
    mixed = per_pair["NOT_GRADABLE"].transform(lambda notes: (notes != "").any()) & (
        per_pair["RULE"].transform("size") > 1
    )
    if mixed.any():
        fail(int(np.flatnonzero(mixed)[0]), "mixes NOT_GRADABLE with rules for one test and direction")
    out = frame.assign(
        RULE=pd.to_numeric(frame["RULE"]).fillna(0).astype(int),
        GRADE=pd.to_numeric(frame["GRADE"]).astype("Int64"),
        MULTIPLE=pd.to_numeric(frame["MULTIPLE"]).fillna(1.0),
        CONSTANT=pd.to_numeric(frame["CONSTANT"]).fillna(0.0),
    )
    return out.sort_values(["TESTCD", "DIRECTION", "UNIT", "RULE"], kind="stable").reset_index(drop=True)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unit_text(unit: str) -> str:
    text = unit.upper().replace(" ", "")
    return UNIT_SPELLINGS.get(text, text)


def _normalise_units(units: pd.Series) -> np.ndarray:
    codes, texts = _codes(units, _unit_text)
    return np.array(texts, dtype=object)[codes]


def _codes(values: pd.Series, normalise=None) -> tuple[np.ndarray, list[str]]:
    """Integer codes of ``values`` into their distinct texts (stripped, then ``normalise``d; '' for missing); texts
    that become equal share one code."""
    codes, uniques = pd.factorize(values, sort=False)
    texts = [str(item).strip() for item in uniques] + [""]
    if normalise is not None:
        texts = [normalise(text) for text in texts]
    merged, distinct = pd.factorize(np.array(texts, dtype=object), sort=False)
    return merged[np.where(codes < 0, len(texts) - 1, codes)], list(distinct)


def _int_array(values: np.ndarray) -> pd.arrays.IntegerArray:
    """Whole numbers held as floats (NaN for missing) as an Int64 array."""
    missing = np.isnan(values)
    return pd.arrays.IntegerArray(np.where(missing, 0, values).astype(np.int64), missing)


def _holds(value: np.ndarray, side: np.ndarray | None, operator: str, threshold) -> np.ndarray:
    """``value operator threshold`` (``value`` never NaN), numbers equal to 15 significant digits being equal
    (admiral compares ``signif(x, 15)``: 1.05 is not above 1.5 x 0.7). ``side`` says a value is exact (0), or
    the limit just below (-1) or above (+1) it, as the near end of a bound ('<0.5': every value just below 0.5)."""
    with np.errstate(invalid="ignore"):  # R's NA (a NaN with a payload) read from .rda files warns otherwise
        tolerance = TOLERANCE * np.abs(threshold)
        above_it, below_it = value > threshold + tolerance, value < threshold - tolerance
    if operator in (">", ">="):
        exact = above_it if operator == ">" else ~below_it
        below, above = above_it, ~below_it
    else:
        exact = below_it if operator == "<" else ~above_it
        below, above = ~above_it, below_it
    if np.ndim(threshold) and np.isnan(threshold).any():  # a missing reference makes a rule not hold
        known = ~np.isnan(threshold)
        exact, below, above = exact & known, below & known, above & known
    return exact if side is None else np.where(side == 0, exact, np.where(side < 0, below, above))


def _grade(rules: pd.DataFrame, value, side, references: dict[str, np.ndarray], baseline_high) -> tuple:
    """Grades (float; NaN when a MISSING rule stops grading) and the reason code of that stop (0 none)."""
    grade, reason = np.zeros(len(value)), np.zeros(len(value), dtype=np.int16)
    pending = np.ones(len(value), dtype=bool)
    for rule in rules.itertuples(index=False):
        if rule.MISSING:
            hit = pending & np.isnan(references[rule.MISSING])
            grade[hit], reason[hit] = np.nan, MISSING_REASON[rule.MISSING]
        else:
            reference = references[rule.REFERENCE] if rule.REFERENCE else 0.0
            hit = pending & _holds(value, side, rule.OPERATOR, rule.MULTIPLE * reference + rule.CONSTANT)
            if rule.BASELINE:
                hit &= baseline_high if rule.BASELINE == "HIGH" else ~baseline_high
            grade[hit] = rule.GRADE
        pending &= ~hit
    return grade, reason


def _grade_records(rules: pd.DataFrame, rows: np.ndarray, inputs: dict) -> tuple[np.ndarray, np.ndarray]:
    """Grades and reason codes of ``rows`` under one ordered rule list. A bound result is graded at both of its
    ends (the bound, approached from its side, and -inf or +inf): it has a grade only when both ends agree."""
    value, bound = inputs["value"][rows], inputs["bound"][rows]
    references = {name: inputs[name][rows] for name in MISSING_REASON}
    high, numeric, is_bound = inputs["base_high"][rows], ~np.isnan(value), bound != 0
    grade, reason = np.full(len(rows), np.nan), np.zeros(len(rows), dtype=np.int16)
    grade[numeric], reason[numeric] = _grade(rules, value[numeric], None, _take(references, numeric), high[numeric])
    if is_bound.any():
        ends, kind = np.flatnonzero(is_bound), bound[is_bound]
        side = np.select([kind == 1, kind == 3], [-1, 1], 0)  # '<' just below, '>' just above, '<=' '>=' exact
        at = _take(references, ends)
        near, stop = _grade(rules, inputs["bound_value"][rows][ends], side, at, high[ends])
        far, far_stop = _grade(rules, np.where(kind <= 2, -np.inf, np.inf), np.zeros(len(ends)), at, high[ends])
        grade[ends] = np.where(near == far, near, np.nan)
        reason[ends] = np.where(stop > 0, stop, np.where(far_stop > 0, far_stop, np.where(near == far, 0, BOUND)))
    other = ~numeric & ~is_bound
    reason[other] = np.where(inputs["has_result"][rows][other], TEXT, NO_RESULT)
    return grade, reason


def _take(arrays: dict[str, np.ndarray], where: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[where] for name, values in arrays.items()}


def _standardise(lb: pd.DataFrame) -> pd.DataFrame:
    """SDTM LB as it is, or ADaM ADLB (PARAMCD, AVAL, ANRLO, ANRHI, ADT, ABLFL) renamed to the LB columns."""
    if "LBTESTCD" not in lb.columns and "PARAMCD" in lb.columns:
        lb = lb.rename(columns={name: new for name, new in ADLB_NAMES.items() if name in lb.columns})
        if "LBSTRESU" not in lb.columns and "LBTEST" in lb.columns:
            codes, names = _codes(lb["LBTEST"])
            units = pd.Series(names, dtype=object).str.extract(r"\(([^()]*)\)\s*$")[0].fillna("")
            lb = lb.assign(LBSTRESU=units.to_numpy(dtype=object)[codes])
        lb = lb.assign(**{name: "" for name in ("LBSTRESC",) if name not in lb.columns})
        if "LBSEQ" not in lb.columns:
            lb = lb.assign(LBSEQ=np.arange(1, len(lb) + 1))
    check_columns(lb, LB_COLUMNS, "lb")
    return lb


def _analysis_dates(values: pd.Series) -> np.ndarray:
    """ADT: the day of LBDTC when the date is complete (a time part is ignored), NaT otherwise (not imputed)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.normalize().to_numpy(dtype="datetime64[ns]")
    codes, texts = _codes(values)
    days = pd.Series([_date_part(text) for text in texts], dtype=object)
    try:
        ranges = compute_date_ranges(days)
    except ValueError as problem:
        raise ValueError(
            f"`lb` LBDTC: {problem}; validate the dates first (ingestion quarantines such rows)."
        ) from None
    return ranges["lo"].where(ranges["level"] == LEVEL_COMPLETE).to_numpy(dtype="datetime64[ns]")[codes]


def _date_part(text: str) -> str:
    """The date of an ISO 8601 date-time text (before 'T', 't' or a blank)."""
    head = text.partition("T")[0]
    return re.split(r"[t ]", head, maxsplit=1)[0] if "t" in head or " " in head else head


def _results(lb: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """AVAL (LBSTRESN, else a plain number in LBSTRESC), the bound code (0 none, 1 '<', 2 '<=', 3 '>', 4 '>=') and
    number of a bound in LBSTRESC where LBSTRESN is empty, and whether the record has any result."""
    value = pd.to_numeric(lb["LBSTRESN"], errors="coerce").to_numpy(dtype=float)
    bound, bound_value = np.zeros(len(lb), dtype=np.int8), np.full(len(lb), np.nan)
    has_result, empty = ~np.isnan(value), np.flatnonzero(np.isnan(value))
    codes, texts = _codes(lb["LBSTRESC"].iloc[empty])
    parsed = pd.Series(texts, dtype=object).str.extract(_NUMBER)
    kinds = {"<": 1, "<=": 2, "≤": 2, ">": 3, ">=": 4, "≥": 4}
    kind = parsed["bound"].map(kinds).fillna(0).to_numpy(dtype=np.int8)[codes]
    number = pd.to_numeric(parsed["number"]).to_numpy(dtype=float)[codes]
    value[empty] = np.where(kind == 0, number, np.nan)
    bound[empty], bound_value[empty] = kind, np.where(kind > 0, number, np.nan)
    has_result[empty] = (np.array(texts, dtype=object) != "")[codes]
    return value, bound, bound_value, has_result


def derive_lab_values(
    lb: pd.DataFrame, subjects: pd.DataFrame, cutoff: dt.date, window_days: int, criteria: pd.DataFrame
) -> pd.DataFrame:
    """One row per LB record: numeric result, limits, x ULN / x LLN, baseline, window and CTCAE grades.

    ``lb``: SDTM LB (LB_COLUMNS; LBBLFL or LBLOBXFL when present) or ADaM ADLB (PARAMCD, AVAL, ANRLO, ANRHI, ADT,
    ABLFL). ``subjects``: :func:`~safety_dash.metrics.exposure.derive_subject_exposure` of the same cut, cutoff and
    ``window_days`` (checked: no WINDOW_END after TRTEDT + window_days or the cutoff). ``criteria``: the CSV of
    :data:`CRITERIA_FILE` (:func:`parse_lab_criteria`). Columns (admiral's ADLB names where they exist):

    - USUBJID, LBSEQ, LBTESTCD (as given), LBTEST, LBCAT when present, LBSTRESC (the text result, kept), LBSTRESU.
    - ``AVAL``: LBSTRESN, else LBSTRESC when it is a plain number ('5.2').
    - ``BOUND``, ``BOUND_VALUE``: a result written as a bound in LBSTRESC with LBSTRESN empty (SDTMIG's '<0.5'):
      its operator ('<', '<=', '>', '>=', else '') and number. **A bound is never read as its number**: AVAL,
      XULN and XLLN stay empty, and it is graded only when every value it allows has the same grade under the
      criterion: '<0.5' neutrophils is grade 4 (any value below 0.5 x 10^9/L is), '<3.42' umol/L bilirubin with
      a ULN of 21 is grade 0 (high), but '<1.2' neutrophils (grade 2, 3 or 4) is not graded. Text that is no
      number ('NEGATIVE') is kept and not graded. ``HAS_RESULT``: a numeric or text result.
    - ``ANRLO``, ``ANRHI`` (LBSTNRLO, LBSTNRHI); ``XULN`` = AVAL / ANRHI, ``XLLN`` = AVAL / ANRLO (admiral's
      R2ANRHI, R2ANRLO; empty when the limit is missing or not positive).
    - ``ADT``: the day of LBDTC when it is a complete date (partial dates are not imputed: NaT); ``ADY`` its day
      from TRTSDT (no day 0, admiral ``derive_vars_dy``).
    - ``BASELINE``: the subject's baseline record of the test (DOMAIN.md §8): the flagged record (LBBLFL, LBLOBXFL
      or ABLFL = Y; the last by ADT and LBSEQ if several), else the last record with a numeric AVAL dated on or
      before TRTSDT. ``BASE``: its AVAL, on every record of the subject and test; ``BNRIND``: its range indicator
      (admiral ``derive_var_anrind``: HIGH above its ANRHI, LOW below its ANRLO, else NORMAL; '' unknown).
    - ``ON_TREATMENT``: TRTSDT < ADT <= WINDOW_END (after the first dose date, on or before the risk window end,
      hence never after the cutoff or death). ``AFTER_CUTOFF``: ADT after the cutoff (kept, not counted).
      ``PERIOD``: one of :data:`PERIODS`.
    - Per direction d, H (high) and L (low): ``CRITERION_d`` ('graded', 'not gradable', or '' when the criteria
      say nothing of the test in that direction), ``ATOXDSCd`` the CTCAE term, ``ATOXGRd`` the grade 0-4 (Int64;
      empty when not graded) and ``ATOXGRd_REASON`` why not (:data:`REASONS`, a unit the criterion does not
      grade, or the criterion's NOT_GRADABLE text, e.g. TSH and high glucose, shown by their x ULN only).

    Grades follow admiral ``derive_var_atoxgr_dir`` with ``atoxgr_criteria_ctcv5`` (numbers equal to 15
    significant digits are equal, as its ``signif``; BNRIND 'HIGH' is the abnormal baseline): ALT, AST, ALP and
    bilirubin are graded against multiples of the baseline when it was above its ULN, creatinine against multiples
    of the ULN or of the baseline. Haemoglobin in mmol/L or g/dL and glucose in mg/dL use CTCAE's own thresholds
    for those units (admiral's criteria hold haemoglobin in g/L and glucose in mmol/L only).
    """
    lb = _standardise(lb)
    check_columns(subjects, SUBJECT_COLUMNS, "subjects")
    check_cutoff_and_window(cutoff, window_days)
    rules = parse_lab_criteria(criteria)
    cutoff_day = pd.Timestamp(cutoff).to_datetime64()
    last_day = (subjects["TRTEDT"] + pd.Timedelta(days=int(window_days))).clip(upper=pd.Timestamp(cutoff))
    if (late := subjects["WINDOW_END"] > last_day).any():
        raise ValueError(
            f"`subjects` has a WINDOW_END after TRTEDT + {window_days} days or the cutoff {cutoff} (USUBJID "
            f"{subjects.loc[late, 'USUBJID'].iloc[0]!r}); derive the subjects with the same cutoff and window_days."
        )
    subject_code, subject_ids = _codes(lb["USUBJID"])
    test_code, test_ids = _codes(lb["LBTESTCD"], str.upper)
    position = pd.Index(subjects["USUBJID"].astype(str).str.strip()).get_indexer(subject_ids)
    nat = np.array(["NaT"], dtype="datetime64[ns]")
    start = np.concatenate([subjects["TRTSDT"].to_numpy(dtype="datetime64[ns]"), nat])[position][subject_code]
    end = np.concatenate([subjects["WINDOW_END"].to_numpy(dtype="datetime64[ns]"), nat])[position][subject_code]

    value, bound, bound_value, has_result = _results(lb)
    low_limit = pd.to_numeric(lb["LBSTNRLO"], errors="coerce").to_numpy(dtype=float)
    high_limit = pd.to_numeric(lb["LBSTNRHI"], errors="coerce").to_numpy(dtype=float)
    adt = _analysis_dates(lb["LBDTC"])
    days = (adt - start) / np.timedelta64(1, "D")
    on_treatment, after_cutoff = (adt > start) & (adt <= end), adt > cutoff_day
    period = np.select([np.isnat(adt), np.isnat(start), after_cutoff, adt <= start, on_treatment], range(5), 5)
    baseline, source = _baseline(lb, subject_code, test_code, len(test_ids), value, adt, start)
    base = np.where(source >= 0, value[source], np.nan)
    base_high = np.where(source >= 0, high_limit[source], np.nan)
    base_low = np.where(source >= 0, low_limit[source], np.nan)
    known_range = (source >= 0) & (~np.isnan(base_high) | ~np.isnan(base_low))
    high, low = _holds(base, None, ">", base_high), _holds(base, None, "<", base_low)
    bnrind = np.select([np.isnan(base), high, low, known_range], [0, 1, 2, 3], 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        xuln = np.where(high_limit > 0, value / high_limit, np.nan)
        xlln = np.where(low_limit > 0, value / low_limit, np.nan)

    passed = ("USUBJID", "LBSEQ", "LBTESTCD", "LBTEST", "LBCAT")
    columns = {name: lb[name].to_numpy(copy=True) for name in passed if name in lb}
    columns |= {
        "LBSTRESC": lb["LBSTRESC"].to_numpy(copy=True), "LBSTRESU": lb["LBSTRESU"].to_numpy(copy=True), "AVAL": value,
        "BOUND": np.array(["", "<", "<=", ">", ">="], dtype=object)[bound], "BOUND_VALUE": bound_value,
        "HAS_RESULT": has_result, "ANRLO": low_limit, "ANRHI": high_limit, "XULN": xuln, "XLLN": xlln, "ADT": adt,
        "ADY": _int_array(np.where(days >= 0, days + 1, days)), "BASELINE": baseline, "BASE": base,
        "BNRIND": np.array(["", "HIGH", "LOW", "NORMAL"], dtype=object)[bnrind], "ON_TREATMENT": on_treatment,
        "AFTER_CUTOFF": after_cutoff, "PERIOD": np.array(PERIODS, dtype=object)[period],
    }  # fmt: skip
    unit_code, unit_ids = _codes(lb["LBSTRESU"], _unit_text)
    inputs = {"value": value, "bound": bound, "bound_value": bound_value, "has_result": has_result, "ULN": high_limit,
              "LLN": low_limit, "BASE": base, "base_high": bnrind == 1, "unit": unit_code}  # fmt: skip
    order = np.argsort(test_code, kind="stable")
    test_rows = np.split(order, np.searchsorted(test_code[order], np.arange(1, len(test_ids))))
    for direction in DIRECTIONS:
        criterion, term, grade, reason = _grade_direction(rules, direction, test_ids, test_rows, unit_ids, inputs)
        columns |= {f"CRITERION_{direction}": criterion[test_code], f"ATOXDSC{direction}": term[test_code]}
        columns |= {f"ATOXGR{direction}": _int_array(grade), f"ATOXGR{direction}_REASON": reason}
    # Every array above is this function's own: no copy, and no consolidation of 30 columns of millions of rows.
    return pd.DataFrame(columns, copy=False)


def _baseline(lb, subject_code, test_code, n_tests: int, value, adt, start) -> tuple[np.ndarray, np.ndarray]:
    """Baseline flag per record, and per record the position of its subject and test's baseline record (-1)."""
    flagged = np.zeros(len(lb), dtype=bool)
    for name in (name for name in BASELINE_FLAGS if name in lb.columns):
        codes, texts = _codes(lb[name], str.upper)
        flagged |= (np.array(texts, dtype=object) == "Y")[codes]
    key = subject_code.astype(np.int64) * n_tests + test_code
    has_flag = np.zeros(int(key.max()) + 1 if len(key) else 0, dtype=bool)
    has_flag[key[flagged]] = True
    candidate = np.flatnonzero(np.where(has_flag[key], flagged, ~np.isnan(value) & (adt <= start)))
    sequence = pd.to_numeric(lb["LBSEQ"], errors="coerce").to_numpy(dtype=float)[candidate]
    order = candidate[np.lexsort((candidate, sequence, adt[candidate].view(np.int64), key[candidate]))]
    last = order[np.append(key[order][1:] != key[order][:-1], True)] if len(order) else order
    baseline, source = np.zeros(len(lb), dtype=bool), np.full(len(has_flag), -1)
    baseline[last], source[key[last]] = True, last
    return baseline, source[key]


def _grade_direction(rules, direction: str, test_ids, test_rows, unit_ids, inputs) -> tuple[np.ndarray, ...]:
    """Per test code: criterion state and CTCAE term; per record: grade (float, NaN when not graded) and reason."""
    criterion, term = np.full(len(test_ids), "", dtype=object), np.full(len(test_ids), "", dtype=object)
    grade, reason = np.full(len(inputs["value"]), np.nan), np.zeros(len(inputs["value"]), dtype=np.int16)
    reasons = list(REASONS)
    for testcd, criteria in rules.loc[rules["DIRECTION"] == direction].groupby("TESTCD", sort=False):
        if testcd not in test_ids:
            continue
        test = test_ids.index(testcd)
        rows, term[test], note = test_rows[test], criteria["TERM"].iloc[0], criteria["NOT_GRADABLE"].iloc[0]
        if note:
            criterion[test], reason[rows] = NOT_GRADABLE, len(reasons)
            reasons.append(note)
            continue
        criterion[test], units, unit = GRADED, set(criteria["UNIT"]), inputs["unit"][rows]
        own = np.isin(unit, [unit_ids.index(name) for name in units - {""} if name in unit_ids])
        if "" not in units:  # absolute limits only: other units are not graded
            no_unit = unit[~own] == (unit_ids.index("") if "" in unit_ids else -1)
            reason[rows[~own]] = np.where(no_unit, NO_UNIT, len(reasons))
            reasons.append(f"the unit is not the criterion's ({', '.join(sorted(units))})")
        for name, unit_rules in criteria.groupby("UNIT", sort=False):
            here = rows[unit == (unit_ids.index(name) if name in unit_ids else -1)] if name else rows[~own]
            grade[here], reason[here] = _grade_records(unit_rules, here, inputs)
    return criterion, term, grade, np.array(reasons, dtype=object)[reason]


def compute_worst_grades(values: pd.DataFrame) -> pd.DataFrame:
    """Per subject, test and direction the criteria name: worst on-treatment grade and baseline grade.

    ``values`` is :func:`derive_lab_values`. One row per subject, test (LBTESTCD, upper case) and direction (H, L)
    where the criteria grade the test or call it not gradable, for every subject with a record of the test:
    LBTEST (of its first record), TERM (CTCAE term), CRITERION, N_ON_TREATMENT (on-treatment records with a
    result), WORST_GRADE (highest grade of its on-treatment records; Int64, empty when none was graded),
    WORST_ADT (the first day that grade was reached), BASELINE_GRADE (grade of the baseline record; empty when
    there is none or it was not graded). Sorted by USUBJID, LBTESTCD, DIRECTION; columns :data:`WORST_COLUMNS`.
    """
    check_columns(values, ("USUBJID", "LBTESTCD", "LBTEST", "ADT", "HAS_RESULT", "BASELINE", "ON_TREATMENT"), "values")
    subject_code, subject_ids = _codes(values["USUBJID"])
    test_code, test_ids = _codes(values["LBTESTCD"], str.upper)
    key_all = subject_code.astype(np.int64) * len(test_ids) + test_code
    on_all = values["ON_TREATMENT"].to_numpy(dtype=bool) & values["HAS_RESULT"].to_numpy(dtype=bool)
    baseline_all, adt_all = values["BASELINE"].to_numpy(dtype=bool), values["ADT"].to_numpy(dtype="datetime64[ns]")
    parts = [pd.DataFrame({name: pd.Series(dtype=object) for name in WORST_COLUMNS})]
    for direction in DIRECTIONS:
        check_columns(values, (f"CRITERION_{direction}", f"ATOXDSC{direction}", f"ATOXGR{direction}"), "values")
        criterion = values[f"CRITERION_{direction}"].to_numpy(dtype=object)
        rows = np.flatnonzero(criterion != "")
        grade = values[f"ATOXGR{direction}"].to_numpy(dtype=float, na_value=np.nan)[rows]
        on, base = on_all[rows], baseline_all[rows]
        # Dense aggregation over the subject-test pairs present (ufunc.at: no sort, no Python loop).
        pair, keys = pd.factorize(key_all[rows], sort=True)
        n_on = np.bincount(pair, weights=on, minlength=len(keys)).astype(np.int64)
        worst, baseline_grade = np.full(len(keys), np.nan), np.full(len(keys), np.nan)
        np.fmax.at(worst, pair[on], grade[on])
        np.fmax.at(baseline_grade, pair[base], grade[base])
        first = np.full(len(keys), len(values))
        np.minimum.at(first, pair, rows)
        reached = on & (grade == worst[pair])
        first_day = np.full(len(keys), np.iinfo(np.int64).max)
        np.minimum.at(first_day, pair[reached], adt_all[rows][reached].view(np.int64))
        first_day = np.where(
            first_day == np.iinfo(np.int64).max, np.datetime64("NaT"), first_day.view("datetime64[ns]")
        )
        part = {
            "USUBJID": np.array(subject_ids, dtype=object)[keys // len(test_ids)],
            "LBTESTCD": np.array(test_ids, dtype=object)[keys % len(test_ids)],
            "LBTEST": values["LBTEST"].to_numpy(dtype=object)[first], "DIRECTION": direction,
            "TERM": values[f"ATOXDSC{direction}"].to_numpy(dtype=object)[first], "CRITERION": criterion[first],
            "N_ON_TREATMENT": n_on, "WORST_GRADE": _int_array(worst), "WORST_ADT": first_day.astype("datetime64[ns]"),
            "BASELINE_GRADE": _int_array(baseline_grade),
        }  # fmt: skip
        parts.append(pd.DataFrame(part))
    worst = pd.concat([part for part in parts if len(part)] or parts[:1], ignore_index=True)
    return worst.sort_values(["USUBJID", "LBTESTCD", "DIRECTION"], kind="stable").reset_index(drop=True)


def _safety_groups(subjects: pd.DataFrame, group_col: str) -> tuple[list[str], pd.Series]:
    """Groups ('ALL', then each group of the safety population, as in the rate tables) and each safety subject's
    group code (1..) indexed by USUBJID."""
    safety = derive_safety_groups(subjects, group_col)
    groups = [ALL_GROUP, *sorted(safety["GROUP"].unique())]
    code_of = pd.Series(np.arange(len(groups)), index=groups)
    return groups, pd.Series(code_of[safety["GROUP"]].to_numpy(), index=safety["USUBJID"].astype(str).str.strip())


def _members(usubjid: pd.Series, member: pd.Series) -> np.ndarray:
    """The group code of each ``usubjid``; -1 outside the safety population."""
    return usubjid.map(member).fillna(-1).to_numpy(dtype=np.int64)


def compute_shift_table(
    values: pd.DataFrame,
    test: str,
    direction: str,
    subjects: pd.DataFrame | None = None,
    group_col: str | None = None,
) -> pd.DataFrame:
    """Baseline grade x worst on-treatment grade, subjects per cell, for one test and direction (DOMAIN.md §8).

    ``values`` is :func:`derive_lab_values`; ``test`` a test code (LBTESTCD or PARAMCD, any case); ``direction``
    'H' or 'L'. Counted: subjects with an on-treatment result of the test; with ``subjects`` and ``group_col``
    only the safety population, per group after 'ALL' as in the rate tables (else one group 'ALL'). Every cell,
    zeros included: group, baseline_grade, worst_grade (Int64 0-4; empty: no baseline grade, or no graded
    on-treatment value), n_subjects; sorted by group, baseline_grade, worst_grade, the empty grade last.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"`direction` must be 'H' (high) or 'L' (low), not {direction!r}.")
    check_columns(values, ("LBTESTCD",), "values")
    codes, texts = _codes(values["LBTESTCD"], str.upper)
    if str(test).strip().upper() not in texts:
        raise ValueError(f"`test` {test!r} has no record in `values`; choose one of {sorted(set(texts) - {''})}.")
    worst = compute_worst_grades(values.loc[codes == texts.index(str(test).strip().upper())])
    worst = worst.loc[(worst["DIRECTION"] == direction) & (worst["N_ON_TREATMENT"] > 0)]
    if (subjects is None) != (group_col is None):
        raise ValueError("Pass both `subjects` and `group_col` to split the shift table by group, or neither.")
    if subjects is None:
        groups, member = [ALL_GROUP], np.zeros(len(worst), dtype=np.int64)
    else:
        groups, members = _safety_groups(subjects, group_col)
        member = _members(worst["USUBJID"], members)
        worst, member = worst.loc[member >= 0], member[member >= 0]
    baseline = np.nan_to_num(worst["BASELINE_GRADE"].to_numpy(dtype=float, na_value=np.nan), nan=5)
    on_treatment = np.nan_to_num(worst["WORST_GRADE"].to_numpy(dtype=float, na_value=np.nan), nan=5)
    cell = (baseline * 6 + on_treatment).astype(np.int64)
    counts = np.bincount(np.concatenate([member * 36 + cell, cell[member > 0]]), minlength=36 * len(groups))
    baseline_code, worst_code = np.divmod(np.tile(np.arange(36), len(groups)), 6)
    return pd.DataFrame(
        {
            "group": np.repeat(np.array(groups, dtype=object), 36),
            "baseline_grade": _int_array(np.where(baseline_code == 5, np.nan, baseline_code)),
            "worst_grade": _int_array(np.where(worst_code == 5, np.nan, worst_code)),
            "n_subjects": counts.astype(np.int64),
        }
    )


def flag_hys_law(values: pd.DataFrame) -> pd.DataFrame:
    """Per subject: peak on-treatment ALT, AST and total bilirubin x ULN, and the potential Hy's law flag.

    DOMAIN.md §8 (FDA DILI guidance, 2009): a **potential Hy's law case** has an on-treatment ALT or AST >= 3 x ULN
    and an on-treatment total bilirubin >= 2 x ULN on the same day or within 30 days after it (bilirubin day -
    transaminase day in 0..30). ALP is shown, not a condition: ALP_XULN is the highest on-treatment ALP x ULN from
    the earliest qualifying transaminase day to its bilirubin day (both included; empty when no ALP was measured
    then); CHOLESTASIS = ALP_XULN >= 2 (empty when unknown).

    ``values`` is :func:`derive_lab_values`; the tests are found by their CTCAE term (ATOXDSCH), so LBTESTCD and
    ADaM PARAMCD codes both work. Only numeric results with a ULN count (a bound such as '>1000' has no x ULN);
    ratios equal to 15 significant digits count as equal, so exactly 3 x ULN qualifies. One row per subject with
    an on-treatment ALT, AST or bilirubin x ULN, sorted by USUBJID; columns :data:`HYS_LAW_COLUMNS`:
    PEAK_ALT_AST_XULN is the larger of the two peaks (eDISH's x axis, PEAK_BILI_XULN its y axis); HYS_LAW_ALT and
    HYS_LAW_AST say which transaminase met the condition with a bilirubin; TRANSAMINASE_ADT and BILI_ADT are the
    days of the earliest qualifying pair.
    """
    check_columns(values, ("USUBJID", "ADT", "XULN", "ON_TREATMENT", "ATOXDSCH"), "values")
    roles = list(HYS_LAW_TERMS)
    term_code, terms = _codes(values["ATOXDSCH"])
    role_of_term = np.array([roles.index(r) if (r := _role(term)) else -1 for term in terms])
    role, xuln = role_of_term[term_code], values["XULN"].to_numpy(dtype=float)
    rows = np.flatnonzero((role >= 0) & values["ON_TREATMENT"].to_numpy(dtype=bool) & ~np.isnan(xuln))
    subject_code, subject_ids = _codes(values["USUBJID"].iloc[rows])
    labs = pd.DataFrame(
        {"subject": subject_code, "role": role[rows], "ADT": values["ADT"].to_numpy(dtype="datetime64[ns]")[rows],
         "XULN": xuln[rows]}
    )  # fmt: skip
    peak = np.full((len(subject_ids), len(roles)), np.nan)
    maxima = labs.groupby(labs["subject"] * len(roles) + labs["role"])["XULN"].max()
    peak.ravel()[maxima.index.to_numpy()] = maxima.to_numpy()
    out = pd.DataFrame({"USUBJID": np.array(subject_ids, dtype=object)})
    out["PEAK_ALT_XULN"], out["PEAK_AST_XULN"], out["PEAK_BILI_XULN"] = peak[:, 0], peak[:, 1], peak[:, 2]
    out["PEAK_ALT_AST_XULN"] = np.fmax(peak[:, 0], peak[:, 1])

    transaminase = labs.loc[(labs["role"] <= 1) & (labs["XULN"] >= 3 * (1 - TOLERANCE))].sort_values(
        "ADT", kind="stable"
    )
    bilirubin = labs.loc[(labs["role"] == 2) & (labs["XULN"] >= 2 * (1 - TOLERANCE)), ["subject", "ADT"]].sort_values(
        "ADT"
    )
    pairs = pd.merge_asof(
        transaminase,
        bilirubin.assign(BILI_ADT=bilirubin["ADT"]),
        on="ADT",
        by="subject",
        direction="forward",
        tolerance=pd.Timedelta(days=HYS_LAW_DAYS),
    ).dropna(subset=["BILI_ADT"])
    first = pairs.sort_values(["subject", "ADT"], kind="stable").drop_duplicates("subject").set_index("subject")
    by_role = pairs.groupby(["subject", "role"]).size().unstack("role").reindex(index=out.index, columns=[0, 1])
    out["HYS_LAW"] = out.index.isin(first.index)
    out["HYS_LAW_ALT"], out["HYS_LAW_AST"] = by_role[0].notna().to_numpy(), by_role[1].notna().to_numpy()
    out["TRANSAMINASE_ADT"] = first["ADT"].reindex(out.index).to_numpy(dtype="datetime64[ns]")
    out["BILI_ADT"] = first["BILI_ADT"].reindex(out.index).to_numpy(dtype="datetime64[ns]")
    alp = labs.loc[(labs["role"] == 3) & labs["subject"].isin(first.index)]
    span = first.reindex(alp["subject"].to_numpy())
    during = (alp["ADT"].to_numpy() >= span["ADT"].to_numpy()) & (alp["ADT"].to_numpy() <= span["BILI_ADT"].to_numpy())
    alp_xuln = alp.loc[during].groupby("subject")["XULN"].max().reindex(out.index).to_numpy(dtype=float)
    out["ALP_XULN"] = alp_xuln
    out["CHOLESTASIS"] = pd.arrays.BooleanArray(alp_xuln >= 2 * (1 - TOLERANCE), np.isnan(alp_xuln))
    screened = ~np.isnan(peak[:, :3]).all(axis=1)
    return out.loc[screened].sort_values("USUBJID", kind="stable").reset_index(drop=True)[HYS_LAW_COLUMNS]


def _role(term: str) -> str:
    return next((role for role, name in HYS_LAW_TERMS.items() if name == term), "")


def compute_lab_table(
    values: pd.DataFrame, subjects: pd.DataFrame, group_col: str, min_grade: int | None = None
) -> pd.DataFrame:
    """Worst on-treatment grades per group, test and direction: the ``labs --by test`` table (DOMAIN.md §6, §8).

    ``values`` is :func:`derive_lab_values`, ``subjects`` :func:`~safety_dash.metrics.exposure.
    derive_subject_exposure` of the same cut. Groups as in the rate tables: 'ALL' (the safety population) first,
    then each value of ``group_col`` ('(missing)' when empty). One row per group and per test and direction the
    criteria name with a record of a safety subject, sorted by group, test, direction (high before low):

    - ``test``: LBTESTCD (PARAMCD for ADaM); ``test_name``: its LBTEST / PARAM (the most frequent spelling) and
      the direction graded, e.g. 'Potassium (low)' (potassium, sodium, glucose, haemoglobin, white cells and
      lymphocytes have criteria in both directions, so two rows);
    - ``n_subjects``: safety subjects of the group; ``n_with_value``: those with an on-treatment result;
    - ``n_worst_grade_1`` .. ``_4``: subjects by worst on-treatment grade; ``n_grade_3_or_more``;
      ``pct_grade_3_or_more`` = 100 n_grade_3_or_more / n_with_value (%, full precision, NaN when no subject has
      a value). Empty (NA) where the test is not graded: the criteria call it not gradable (TSH, high glucose) or
      none of its on-treatment values could be graded (e.g. all in a unit the criteria do not cover);
    - ``n_hys_law``: potential Hy's law cases (:func:`flag_hys_law`) on the rows of the tests that take part: ALT
      counts the cases where ALT met the condition, AST those where AST did, bilirubin every case; empty on others.

    ``min_grade`` (1-4) keeps the tests and directions where some safety subject has a worst grade of at least
    ``min_grade`` (every group of such a test, zeros included). Columns exactly :data:`LAB_TABLE_COLUMNS`.
    """
    if min_grade is not None and (isinstance(min_grade, bool) or min_grade not in (1, 2, 3, 4)):
        raise ValueError(f"`min_grade` must be a whole grade from 1 to 4, or None, not {min_grade!r}.")
    worst = compute_worst_grades(values)
    groups, members = _safety_groups(subjects, group_col)
    member = _members(worst["USUBJID"], members)
    worst, member = worst.loc[member >= 0].reset_index(drop=True), member[member >= 0]
    pairs = worst[["LBTESTCD", "DIRECTION"]].drop_duplicates().sort_values(["LBTESTCD", "DIRECTION"])
    pair_index = pd.MultiIndex.from_frame(pairs)
    pair = pair_index.get_indexer(pd.MultiIndex.from_frame(worst[["LBTESTCD", "DIRECTION"]]))
    n_pairs, n_groups, own = len(pairs), len(groups), member > 0
    # Each subject counts in its own group's cell and in the ALL cell (group 0).
    cells = np.concatenate([member[own] * n_pairs + pair[own], pair])
    grade = worst["WORST_GRADE"].to_numpy(dtype=float, na_value=np.nan)
    grade, has_value = np.concatenate([grade[own], grade]), (worst["N_ON_TREATMENT"].to_numpy() > 0)
    has_value = np.concatenate([has_value[own], has_value])

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(cells[mask], minlength=n_groups * n_pairs)

    n_with_value, by_grade = count(has_value), {k: count(grade == k) for k in (1, 2, 3, 4)}
    n3 = by_grade[3] + by_grade[4]
    n_subjects = np.bincount(members.to_numpy(), minlength=n_groups)
    n_subjects[0] = len(members)
    per_pair = worst.groupby(["LBTESTCD", "DIRECTION"], sort=True)
    graded_any = per_pair["WORST_GRADE"].count().reindex(pair_index).to_numpy() > 0
    criterion, terms = (
        per_pair[name].first().reindex(pair_index).to_numpy(dtype=object) for name in ("CRITERION", "TERM")
    )
    gradable = np.tile((criterion == GRADED) & graded_any, n_groups)
    names = worst.groupby("LBTESTCD")["LBTEST"].agg(lambda spellings: spellings.value_counts().index[0])
    names = names.reindex(pairs["LBTESTCD"]).astype(str).to_numpy(dtype=object)
    names = names + np.array([f" ({DIRECTIONS[d]})" for d in pairs["DIRECTION"]], dtype=object)

    hys = flag_hys_law(values)
    hys_member = _members(hys["USUBJID"], members)
    n_hys = np.full((n_groups, n_pairs), -1, dtype=np.int64)
    for role, column in (("ALT", "HYS_LAW_ALT"), ("AST", "HYS_LAW_AST"), ("BILI", "HYS_LAW")):
        case = hys[column].to_numpy(dtype=bool) & (hys_member >= 0)
        per_group = np.bincount(hys_member[case], minlength=n_groups)
        per_group[0] = case.sum()
        n_hys[:, terms == HYS_LAW_TERMS[role]] = per_group[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(gradable & (n_with_value > 0), 100.0 * n3 / n_with_value, np.nan)

    def known(counts: np.ndarray, where: np.ndarray) -> pd.arrays.IntegerArray:
        return _int_array(np.where(where, counts, np.nan))

    rows_group, rows_pair = np.repeat(np.arange(n_groups), n_pairs), np.tile(np.arange(n_pairs), n_groups)
    table = pd.DataFrame(
        {
            "group": np.array(groups, dtype=object)[rows_group],
            "test": pairs["LBTESTCD"].to_numpy(dtype=object)[rows_pair],
            "test_name": names[rows_pair],
            "n_subjects": n_subjects[rows_group].astype(np.int64),
            "n_with_value": n_with_value.astype(np.int64),
            "n_worst_grade_1": known(by_grade[1], gradable),
            "n_worst_grade_2": known(by_grade[2], gradable),
            "n_worst_grade_3": known(by_grade[3], gradable),
            "n_worst_grade_4": known(by_grade[4], gradable),
            "n_grade_3_or_more": known(n3, gradable),
            "pct_grade_3_or_more": pct,
            "n_hys_law": known(n_hys.ravel(), n_hys.ravel() >= 0),
        },
        columns=LAB_TABLE_COLUMNS,
    )
    if min_grade is not None:
        reached = sum(by_grade[k][:n_pairs] for k in range(min_grade, 5)) > 0
        table = table.loc[reached[rows_pair]].reset_index(drop=True)
    return table
