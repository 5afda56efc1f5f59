"""Write safety_dash/metrics/lab_criteria_ctcae_v5.csv, the CTCAE v5.0 laboratory grading criteria as data.

Source: admiral's ``atoxgr_criteria_ctcv5`` metadata (pharmaverse/admiral, Apache-2.0; the copy and its credit are
in ``../shared/data/admiral-grading``, read here unmodified). For each laboratory test code below, the script reads
admiral's row for the CTCAE term, parses its GRADE_CRITERIA_CODE (R ``case_when`` text) with a small strict parser
into ordered rules (nothing is evaluated: any construct the parser does not know stops the script), and writes one
CSV row per rule with the CTCAE wording of that grade and where the rule came from. A few rules come from CTCAE's own
wording (GRADE_n) for a unit admiral's code does not cover (haemoglobin in mmol/L or g/dL, glucose in mg/dL); the
script checks that the wording states each of their thresholds.

How a criterion reads (safety_dash.metrics.labs evaluates it): the rules of one test, direction and unit are tried
in RULE order, the first that holds gives the grade (admiral's ``case_when``):

- a grade rule: value OPERATOR threshold, threshold = MULTIPLE x REFERENCE + CONSTANT (REFERENCE ULN, LLN or BASE
  the baseline value; blank: the threshold is CONSTANT), when the baseline condition holds (BASELINE HIGH: the
  baseline value was above its ULN, NOT_HIGH: it was not or is unknown, blank: any). A rule whose reference is
  missing does not hold;
- a MISSING rule: the reference it names is missing, so the value is not gradable;
- no rule holds: grade 0.

Rows with NOT_GRADABLE text name a test and direction CTCAE v5.0 does not grade from a value (the value is shown
with its x ULN only). Run: .venv/bin/python scripts/make_lab_criteria.py [--rda PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import csv
import re
from dataclasses import dataclass
from pathlib import Path

import pyreadr

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RDA = ROOT.parent / "shared" / "data" / "admiral-grading" / "atoxgr_criteria_ctcv5.rda"
DEFAULT_OUT = ROOT / "safety_dash" / "metrics" / "lab_criteria_ctcae_v5.csv"
CTCAE_VERSION = "5.0"
COLUMNS = [
    "CTCAE_VERSION",
    "TESTCD",
    "TERM",
    "DIRECTION",
    "UNIT",
    "RULE",
    "GRADE",
    "BASELINE",
    "OPERATOR",
    "REFERENCE",
    "MULTIPLE",
    "CONSTANT",
    "MISSING",
    "NOT_GRADABLE",
    "CTCAE_WORDING",
    "SOURCE",
]

#: (test codes, direction, admiral TERM). SDTM LBTESTCD codes (CDISC CT; the pilot writes LYM) and the ADaM
#: PARAMCDs admiral's ADLB template uses for the same tests (ALKPH, POTAS, LYMPH).
TERMS = [
    (("ALT",), "H", "Alanine aminotransferase increased"),
    (("AST",), "H", "Aspartate aminotransferase increased"),
    (("ALP", "ALKPH"), "H", "Alkaline phosphatase increased"),
    (("BILI",), "H", "Blood bilirubin increased"),
    (("CREAT",), "H", "Creatinine increased"),
    (("NEUT",), "L", "Neutrophil count decreased"),
    (("PLAT",), "L", "Platelet count decreased"),
    (("HGB",), "L", "Anemia"),
    (("HGB",), "H", "Hemoglobin increased"),
    (("LYM", "LYMPH"), "L", "Lymphocyte count decreased"),
    (("LYM", "LYMPH"), "H", "Lymphocyte count increased"),
    (("WBC",), "L", "White blood cell decreased"),
    (("WBC",), "H", "Leukocytosis"),
    (("K", "POTAS"), "L", "Hypokalemia"),
    (("K", "POTAS"), "H", "Hyperkalemia"),
    (("SODIUM",), "L", "Hyponatremia"),
    (("SODIUM",), "H", "Hypernatremia"),
    (("GLUC",), "L", "Hypoglycemia"),
]

#: Rules read from CTCAE's wording for another unit: (test codes, direction, TERM, unit, rules), each rule
#: (grade, operator, reference, multiple, constant) or ("MISSING", reference); the wording of the grade must
#: contain ``operator + number + unit`` (checked below).
WORDING_RULES = [
    (
        ("HGB",),
        "L",
        "Anemia",
        "mmol/L",
        [(3, "<", "", "", 4.9), (2, "<", "", "", 6.2), ("MISSING", "LLN"), (1, "<", "LLN", 1, "")],
    ),
    (
        ("HGB",),
        "L",
        "Anemia",
        "g/dL",
        [(3, "<", "", "", 8.0), (2, "<", "", "", 10.0), ("MISSING", "LLN"), (1, "<", "LLN", 1, "")],
    ),
    (
        ("HGB",),
        "H",
        "Hemoglobin increased",
        "g/dL",
        [("MISSING", "ULN"), (3, ">", "ULN", 1, 4), (2, ">", "ULN", 1, 2), (1, ">", "ULN", 1, "")],
    ),
    (
        ("GLUC",),
        "L",
        "Hypoglycemia",
        "mg/dL",
        [(4, "<", "", "", 30), (3, "<", "", "", 40), (2, "<", "", "", 55), ("MISSING", "LLN"), (1, "<", "LLN", 1, "")],
    ),
]
#: How each wording rule's threshold is written in CTCAE's GRADE_n text.
WORDING_CHECKS = {
    ("Anemia", "mmol/L"): {3: "<4.9 mmol/L", 2: "<6.2 - 4.9 mmol/L", 1: "<LLN - 6.2 mmol/L"},
    ("Anemia", "g/dL"): {3: "<8.0 g/dL", 2: "<10.0 - 8.0 g/dL", 1: "<LLN - 10.0 g/dL"},
    ("Hemoglobin increased", "g/dL"): {3: ">4 g/dL above ULN", 2: ">2 - 4 g/dL above ULN", 1: ">0 - 2 g/Dl above ULN"},
    ("Hypoglycemia", "mg/dL"): {4: "<30 mg/dL", 3: "<40 - 30 mg/dL", 2: "<55 - 40 mg/dL", 1: "<LLN - 55 mg/dL"},
}

NOT_GRADABLE = [
    (
        ("GLUC",),
        "H",
        "Hyperglycemia",
        "CTCAE v5.0 grades hyperglycemia by the intervention it needs, not by a value (admiral's v5.0 criteria have "
        "no Hyperglycemia row): shown with its x ULN, not graded",
    ),
    (
        ("TSH",),
        "H",
        "",
        "CTCAE v5.0 grades thyroid disorders clinically and has no criterion on TSH: shown with its x ULN, not graded",
    ),
]

REFERENCES = {"ANRHI": "ULN", "ANRLO": "LLN", "BASE": "BASE"}


# --- a strict reader of admiral's case_when text (no evaluation) ---------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<string>\"[^\"]*\")|(?P<name>[A-Za-z_.][A-Za-z0-9_.]*)"
    r"|(?P<op>%in%|>=|<=|[~&|!()<>,*+]))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"unexpected text at {text[position : position + 30]!r}")
        kind = match.lastgroup
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


@dataclass
class _Reader:
    tokens: list[tuple[str, str]]
    at: int = 0

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.at >= len(self.tokens):
            raise ValueError("unexpected end of the criteria code")
        token = self.tokens[self.at]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, found {token[1]!r}")
        self.at += 1
        return token

    # condition := conjunction ('|' conjunction)*
    def condition(self) -> tuple:
        parts = [self.conjunction()]
        while self.peek() == "|":
            self.take("|")
            parts.append(self.conjunction())
        return ("or", parts) if len(parts) > 1 else parts[0]

    def conjunction(self) -> tuple:
        parts = [self.unary()]
        while self.peek() == "&":
            self.take("&")
            parts.append(self.unary())
        return ("and", parts) if len(parts) > 1 else parts[0]

    def unary(self) -> tuple:
        if self.peek() == "!":
            self.take("!")
            return ("not", self.unary())
        if self.peek() == "(":
            self.take("(")
            inner = self.condition()
            self.take(")")
            return inner
        kind, word = self.tokens[self.at]
        if word == "TRUE":
            self.take()
            return ("true",)
        if word == "is.na":
            self.take()
            self.take("(")
            name = self.take()[1]
            self.take(")")
            return ("isna", name)
        left = self.operand()
        operator = self.take()[1]
        if operator == "%in%":
            return ("in", left, self.take()[1])
        if operator not in (">", ">=", "<", "<="):
            raise ValueError(f"unknown comparison {operator!r}")
        # '>' '=' never occur split: the tokenizer reads '>=' and '<=' whole.
        return ("compare", left, operator, self.operand())

    # operand := 'signif' '(' sum ',' 'signif_dig' ')' | sum
    def operand(self) -> tuple:
        if self.peek() == "signif":
            self.take()
            self.take("(")
            inner = self.sum()
            self.take(",")
            self.take("signif_dig")
            self.take(")")
            return ("signif", inner)
        return self.sum()

    def sum(self) -> tuple:
        left = self.product()
        while self.peek() == "+":
            self.take("+")
            left = ("+", left, self.product())
        return left

    def product(self) -> tuple:
        left = self.atom()
        while self.peek() == "*":
            self.take("*")
            left = ("*", left, self.atom())
        return left

    def atom(self) -> tuple:
        kind, word = self.take()
        if kind == "number":
            return ("number", float(word))
        if kind == "name":
            return ("name", word)
        raise ValueError(f"unexpected {word!r} in a value")


def parse_case_when(code: str) -> list[tuple[tuple, str | None]]:
    """The clauses (condition, grade text or None for NA_character_) of admiral's ``case_when(...)`` text."""
    reader = _Reader(_tokens(code))
    reader.take("case_when")
    reader.take("(")
    clauses = []
    while True:
        condition = reader.condition()
        reader.take("~")
        kind, word = reader.take()
        if kind == "string":
            result = word.strip('"')
        elif word == "NA_character_":
            result = None
        else:
            raise ValueError(f"unexpected clause result {word!r}")
        clauses.append((condition, result))
        separator = reader.take()[1]
        if separator == ")":
            break
        if separator != ",":
            raise ValueError(f"expected ',' or ')' after a clause, found {separator!r}")
    if reader.peek() is not None:
        raise ValueError("text after the closing parenthesis of case_when")
    return clauses


def _threshold(operand: tuple) -> tuple[str, float | str, float | str]:
    """(REFERENCE, MULTIPLE, CONSTANT) of a comparison's right-hand side."""
    if operand[0] == "signif":
        operand = operand[1]
    if operand[0] == "number":
        return "", "", operand[1]
    if operand[0] == "name" and operand[1] in REFERENCES:
        return REFERENCES[operand[1]], 1.0, ""
    if operand[0] == "*" and operand[1][0] == "number" and operand[2][0] == "name" and operand[2][1] in REFERENCES:
        return REFERENCES[operand[2][1]], operand[1][1], ""
    if operand[0] == "+" and operand[1][0] == "name" and operand[1][1] in REFERENCES and operand[2][0] == "number":
        return REFERENCES[operand[1][1]], 1.0, operand[2][1]
    raise ValueError(f"unsupported threshold {operand!r}")


def _rule(condition: tuple, result: str | None) -> dict | None:
    """One CSV rule from a clause; None for the clauses every criterion has implicitly (value missing, else 0)."""
    if condition == ("true",):
        if result != "0":
            raise ValueError("the last clause must give grade 0")
        return None
    missing = _missing_names(condition)
    if missing is not None:
        if result is not None:
            raise ValueError("a clause on missing values must give NA")
        references = [REFERENCES[name] for name in missing if name != "AVAL"]
        if not references:
            return None  # value missing: not gradable, implicit
        if len(references) != 1:
            raise ValueError(f"more than one missing reference in one clause: {missing}")
        return {"MISSING": references[0]}
    parts = condition[1] if condition[0] == "and" else [condition]
    baseline, comparison, required = "", None, set()
    for part in parts:
        if part == ("in", ("name", "BNRIND"), "high_indicator"):
            baseline = "HIGH"
        elif part == ("not", ("in", ("name", "BNRIND"), "high_indicator")):
            baseline = "NOT_HIGH"
        elif part[0] == "not" and part[1][0] == "isna":
            required.add(part[1][1])
        elif part[0] == "compare" and comparison is None:
            comparison = part
        else:
            raise ValueError(f"unsupported condition {part!r}")
    if comparison is None or comparison[1] != ("signif", ("name", "AVAL")):
        raise ValueError(f"a grade clause must compare the value: {condition!r}")
    if result not in {"1", "2", "3", "4"}:
        raise ValueError(f"unexpected grade {result!r}")
    reference, multiple, constant = _threshold(comparison[3])
    # '!is.na(X) & value > k X' says what every rule means here: a missing reference makes the rule not hold.
    if {REFERENCES.get(name) for name in required} - {reference}:
        raise ValueError(f"a clause requires a variable it does not compare with: {condition!r}")
    return {
        "GRADE": int(result),
        "BASELINE": baseline,
        "OPERATOR": comparison[2],
        "REFERENCE": reference,
        "MULTIPLE": multiple,
        "CONSTANT": constant,
    }


def _missing_names(condition: tuple) -> list[str] | None:
    if condition[0] == "isna":
        return [condition[1]]
    if condition[0] == "or" and all(part[0] == "isna" for part in condition[1]):
        return [part[1] for part in condition[1]]
    return None


def _number(value: float | str) -> str:
    return "" if value == "" else f"{float(value):g}"


def _row(codes, term: str, direction: str, unit: str, rule_number: int, rule: dict, wording: dict, source: str):
    grade = rule.get("GRADE", "")
    return [
        {
            "CTCAE_VERSION": CTCAE_VERSION,
            "TESTCD": code,
            "TERM": term,
            "DIRECTION": direction,
            "UNIT": unit,
            "RULE": rule_number,
            "GRADE": grade,
            "BASELINE": rule.get("BASELINE", ""),
            "OPERATOR": rule.get("OPERATOR", ""),
            "REFERENCE": rule.get("REFERENCE", ""),
            "MULTIPLE": _number(rule.get("MULTIPLE", "")),
            "CONSTANT": _number(rule.get("CONSTANT", "")),
            "MISSING": rule.get("MISSING", ""),
            "NOT_GRADABLE": "",
            "CTCAE_WORDING": wording.get(grade, "") if grade != "" else "",
            "SOURCE": source,
        }
        for code in codes
    ]


def build_rows(criteria) -> list[dict]:
    """The CSV rows from admiral's criteria table (a pandas DataFrame)."""
    by_term = {row["TERM"]: (position, row) for position, (_, row) in enumerate(criteria.iterrows(), start=1)}
    rows: list[dict] = []
    for codes, direction, term in TERMS:
        position, row = by_term[term]
        if row["DIRECTION"] != direction:
            raise ValueError(f"admiral gives {term} direction {row['DIRECTION']}, not {direction}")
        unit = "" if not isinstance(row["UNIT_CHECK"], str) else row["UNIT_CHECK"]
        wording = {grade: row[f"GRADE_{grade}"] for grade in (1, 2, 3, 4)}
        clauses = parse_case_when(row["GRADE_CRITERIA_CODE"])
        number = 0
        for clause_number, (condition, result) in enumerate(clauses, start=1):
            rule = _rule(condition, result)
            if rule is None:
                continue
            number += 1
            source = (
                f"admiral atoxgr_criteria_ctcv5 row {position} ({term}), GRADE_CRITERIA_CODE clause {clause_number}"
            )
            rows += _row(codes, term, direction, unit, number, rule, wording, source)
    for codes, direction, term, unit, rules in WORDING_RULES:
        position, row = by_term[term]
        wording = {grade: row[f"GRADE_{grade}"] for grade in (1, 2, 3, 4)}
        for grade, phrase in WORDING_CHECKS[(term, unit)].items():
            if phrase not in wording[grade]:
                raise ValueError(f"CTCAE wording of {term} grade {grade} does not state {phrase!r}")
        for number, spec in enumerate(rules, start=1):
            if spec[0] == "MISSING":
                rule = {"MISSING": spec[1]}
            else:
                grade, operator, reference, multiple, constant = spec
                rule = {
                    "GRADE": grade,
                    "OPERATOR": operator,
                    "REFERENCE": reference,
                    "MULTIPLE": multiple,
                    "CONSTANT": constant,
                }
            source = f"CTCAE v5.0 wording in admiral atoxgr_criteria_ctcv5 row {position} ({term}), {unit}"
            rows += _row(codes, term, direction, unit, number, rule, wording, source)
    for codes, direction, term, reason in NOT_GRADABLE:
        for code in codes:
            rows.append(
                {name: "" for name in COLUMNS}
                | {
                    "CTCAE_VERSION": CTCAE_VERSION,
                    "TESTCD": code,
                    "TERM": term,
                    "DIRECTION": direction,
                    "NOT_GRADABLE": reason,
                    "SOURCE": "CTCAE v5.0; admiral atoxgr_criteria_ctcv5 has no such term",
                }
            )
    rows.sort(key=lambda row: (row["TESTCD"], row["DIRECTION"], row["UNIT"], row["RULE"] if row["RULE"] != "" else 0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rda", type=Path, default=DEFAULT_RDA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    criteria = pyreadr.read_r(str(args.rda))["atoxgr_criteria_ctcv5"]
    rows = build_rows(criteria)
    with args.out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rules for {len({row['TESTCD'] for row in rows})} test codes to {args.out}")


if __name__ == "__main__":
    main()
