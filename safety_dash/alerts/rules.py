"""Alert rules as data: ``<STUDYID>.yaml`` in SAFETY_DASH_RULES_DIR, validated on load.

Every problem is reported with the file, the line and what to write instead; all problems of a file are reported
at once (:class:`RuleFileError`). The format::

    study: QL1706-DEMO                   # optional; must match the file name
    recipients: [safety@example.org]     # optional; default for every rule, else SAFETY_DASH_ALERT_RECIPIENTS
    digest_at: "07:00"                   # optional; UTC time of the daily digest (default 07:00)
    rules:
      - id: grade5                       # letters, digits, '-' and '_'; unique; part of every alert key
        kind: event                      # event | incidence | eair | count | bayesian | signal
        name: Grade 5 adverse event      # optional; the email's title
        min_grade: 5
        delivery: immediate              # immediate (default) | digest (one message per day)
        recipients: [a@example.org]      # optional; replaces the file's list for this rule

Term fields (all kinds): ``pt``, ``soc``, ``basket`` (a basket of SAFETY_DASH_BASKETS_FILE, a list of them meaning
their union, or ``any`` for the union of every basket); filters ``min_grade`` (1..5), ``serious``, ``related``.
Event rules may combine several term fields and lists (a record must match each given one) and take
``treatment_emergent`` (default false: any record of the cut). The other kinds need exactly one of ``pt``, ``soc``,
``basket`` and take ``cohorts`` (default: every cohort; ``ALL`` is the whole safety population):

- ``incidence``: ``above_pct`` (crude incidence % > value), ``min_n`` (default 1);
- ``eair``: ``above_rate`` (per 100 PY), ``lower_bound_above`` (default false), ``min_n``;
- ``count``: ``at_least`` (subjects), ``first_n`` (only the first n dosed subjects of the cohort),
  ``within_days`` (only onsets up to this study day);
- ``bayesian``: ``p0``, ``above_probability``, ``prior: {a: 1, b: 1}``, ``min_n``: fires when
  P(p > p0 | x of n) under the Beta(a + x, b + n - x) posterior exceeds ``above_probability``;
- ``signal``: a row of the ``signals`` command (DOMAIN.md §7) that is ``flagged: true`` or whose q_pt is at most
  ``q_at_most`` (give one of the two); ``test`` (rising or cohort; default both), ``by`` (pt, soc or basket; default
  pt), ``cohorts`` (groups, ``ALL`` for the whole population's rising test); ``pt`` / ``soc`` / ``basket`` are
  optional here and may be lists: they keep the rows about those terms (every term when none is given);
- ``lab``: a subject whose worst on-treatment grade of a lab ``test`` (LBTESTCD, or a list) reaches ``min_grade``
  (1..4), or whose peak on-treatment ×ULN reaches ``xuln_at_least`` (give one of the two); ``direction`` (high or
  low; default either) and ``cohorts``;
- ``hys_law``: a subject who is a potential Hy's law case (DOMAIN.md §8); ``cohorts``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from safety_dash.identifiers import check_identifier

KINDS = ("event", "incidence", "eair", "count", "bayesian", "signal", "lab", "hys_law")
LAB_KINDS = ("lab", "hys_law")
LAB_DIRECTIONS = ("high", "low")
SIGNAL_TESTS = ("rising", "cohort")
SIGNAL_BY = ("pt", "soc", "basket")
DELIVERIES = ("immediate", "digest")
ANY_BASKET = "any"
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
EMAIL = re.compile(r"^[^@\s,<>]+@[^@\s,<>]+$")
DIGEST_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

FILE_FIELDS = ("study", "recipients", "digest_at", "rules")
COMMON_FIELDS = ("id", "kind", "name", "description", "delivery", "recipients", "pt", "soc", "basket", "min_grade",
                 "serious", "related")  # fmt: skip
KIND_FIELDS = {
    "event": ("treatment_emergent",),
    "incidence": ("cohorts", "above_pct", "min_n"),
    "eair": ("cohorts", "above_rate", "lower_bound_above", "min_n"),
    "count": ("cohorts", "at_least", "first_n", "within_days"),
    "bayesian": ("cohorts", "p0", "above_probability", "prior", "min_n"),
    "signal": ("cohorts", "test", "by", "flagged", "q_at_most"),
    "lab": ("cohorts", "test", "direction", "xuln_at_least"),
    "hys_law": ("cohorts",),
}
REQUIRED = {
    "event": (),
    "incidence": ("above_pct",),
    "eair": ("above_rate",),
    "count": ("at_least",),
    "bayesian": ("p0", "above_probability"),
    "signal": (),
    "lab": ("test",),
    "hys_law": (),
}


class RuleFileError(ValueError):
    """A rule file that cannot be used, with every problem as (line, message)."""

    def __init__(self, path: Path, problems: list[tuple[int | None, str]]):
        self.path = Path(path)
        self.problems = sorted(problems, key=lambda p: p[0] or 0)
        lines = [f"{self.path.name}, line {line}: {text}" if line else f"{self.path.name}: {text}"
                 for line, text in self.problems]  # fmt: skip
        super().__init__(f"rule file {self.path} is not valid:\n  " + "\n  ".join(lines))


@dataclass(frozen=True)
class Rule:
    """One validated rule; ``line`` is where it starts in its file."""

    id: str
    kind: str
    name: str
    line: int
    description: str = ""
    delivery: str = "immediate"
    recipients: tuple[str, ...] = ()
    pt: tuple[str, ...] = ()
    soc: tuple[str, ...] = ()
    basket: tuple[str, ...] = ()  # basket names; ("any",) for the union of every basket
    min_grade: int | None = None
    serious: bool = False
    related: bool = False
    treatment_emergent: bool = False
    cohorts: tuple[str, ...] | None = None  # None: every cohort
    params: Mapping[str, Any] = field(default_factory=dict)  # the kind's thresholds

    @property
    def term_label(self) -> str:
        """The term the rule is about, as a monitor reads it (e.g. 'Pneumonitis', 'basket any')."""
        parts = [", ".join(self.pt), ", ".join(self.soc)]
        if self.basket:
            parts.append("any basket" if self.basket == (ANY_BASKET,) else "basket " + " + ".join(self.basket))
        return "; ".join(p for p in parts if p) or "any adverse event"


@dataclass(frozen=True)
class RuleSet:
    """The rules of one study, from one file."""

    study_id: str
    path: Path | None
    rules: tuple[Rule, ...]
    recipients: tuple[str, ...] = ()
    digest_at: tuple[int, int] = (7, 0)  # UTC hour, minute

    def recipients_of(self, rule: Rule) -> tuple[str, ...]:
        """The rule's recipients, else the file's; empty means SAFETY_DASH_ALERT_RECIPIENTS at sending time."""
        return rule.recipients or self.recipients


def rule_file_path(rules_dir: Path, study_id: str) -> Path:
    """Where the rules of ``study_id`` live: ``<rules_dir>/<STUDYID>.yaml``, never outside ``rules_dir``.

    A study id that is not an identifier (``../outside``, say) raises ``IdentifierError`` (a ValueError naming
    it); a file that resolves outside the folder (a symbolic link) raises :class:`RuleFileError`.
    """
    path = Path(rules_dir) / f"{check_identifier(study_id, 'study id')}.yaml"
    folder = Path(rules_dir).resolve()
    if not path.resolve().is_relative_to(folder):
        message = f"resolves to {path.resolve()}, outside the rules folder {folder}; put the file itself there"
        raise RuleFileError(path, [(None, message)])
    return path


def load_rule_file(path: Path, study_id: str | None = None, baskets: Mapping[str, Any] | None = None) -> RuleSet:
    """Read and validate one rule file; raises :class:`RuleFileError` naming each problem's line.

    ``study_id`` defaults to the file name's stem; ``baskets`` (from ``load_baskets``), when given, lets basket
    names be checked.
    """
    path = Path(path)
    if not path.is_file():
        raise RuleFileError(path, [(None, f"no such file; write the study's rules to {path}")])
    return parse_rules(path.read_text(encoding="utf-8"), path, study_id or path.stem, baskets)


def parse_rules(text: str, path: Path, study_id: str, baskets: Mapping[str, Any] | None = None) -> RuleSet:
    """Validate the YAML ``text`` of a rule file (named ``path`` in messages) for ``study_id``."""
    path = Path(path)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise RuleFileError(path, [(line, f"not valid YAML: {error.problem or error.context}")]) from None
    checker = _Checker(baskets)
    ruleset = checker.check_file(root, study_id, path)
    if checker.problems:
        raise RuleFileError(path, checker.problems)
    return ruleset


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _value(node: Node) -> Any:
    """The Python value of a node, constructed as yaml.safe_load would."""
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


class _Checker:
    """Walks the composed YAML nodes, collecting (line, problem) pairs."""

    def __init__(self, baskets: Mapping[str, Any] | None):
        self.baskets = baskets
        self.problems: list[tuple[int | None, str]] = []

    def fail(self, node: Node | int | None, text: str) -> None:
        line = _line(node) if isinstance(node, Node) else node
        self.problems.append((line, text))

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Node, Node]] | None:
        """The key -> (key node, value node) of a mapping node; unknown and repeated keys are problems."""
        if not isinstance(node, MappingNode):
            self.fail(node, f"{what} must be a mapping of 'field: value' lines, not {_describe(node)}")
            return None
        fields: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = _value(key_node) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                self.fail(key_node, f"{what} has a field name that is not text: {_describe(key_node)}")
                continue
            if key in fields:
                self.fail(key_node, f"{what} sets '{key}' twice (first on line {_line(fields[key][0])}); keep one")
                continue
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(allowed)}"
                self.fail(key_node, f"{what} has an unknown field '{key}'; {hint}")
                continue
            fields[key] = (key_node, value_node)
        return fields

    def check_file(self, root: Node | None, study_id: str, path: Path) -> RuleSet:
        if root is None:
            self.fail(1, "the file is empty; write 'rules:' followed by a list of rules")
            return RuleSet(study_id, path, ())
        fields = self.mapping(root, "the file", FILE_FIELDS)
        if fields is None:
            return RuleSet(study_id, path, ())
        if "study" in fields:
            written = _value(fields["study"][1])
            if str(written) != study_id:
                self.fail(fields["study"][1], f"study is {written!r} but this file holds the rules of {study_id!r} "
                                              f"(the file name); rename the file or fix the study")  # fmt: skip
        recipients = self.recipients(fields["recipients"][1], "the file's recipients") if "recipients" in fields else ()
        digest_at = (7, 0)
        if "digest_at" in fields:
            text = _value(fields["digest_at"][1])
            match = DIGEST_AT.match(str(text)) if isinstance(text, str) else None
            if match is None:
                self.fail(fields["digest_at"][1], f'digest_at must be a quoted UTC time "HH:MM", not {text!r}')
            else:
                digest_at = (int(match.group(1)), int(match.group(2)))
        if "rules" not in fields:
            self.fail(root, "the file has no 'rules:' list; add one (it may be empty: 'rules: []')")
            return RuleSet(study_id, path, (), recipients, digest_at)
        rules_node = fields["rules"][1]
        if not isinstance(rules_node, SequenceNode):
            self.fail(rules_node, f"'rules' must be a list of rules ('- id: ...'), not {_describe(rules_node)}")
            return RuleSet(study_id, path, (), recipients, digest_at)
        rules: list[Rule] = []
        seen: dict[str, int] = {}
        for index, node in enumerate(rules_node.value, start=1):
            rule = self.check_rule(node, index)
            if rule is None:
                continue
            if rule.id in seen:
                self.fail(rule.line, f"rule id '{rule.id}' is used twice (first on line {seen[rule.id]}); "
                                     "ids must be unique: they are part of every alert key")  # fmt: skip
                continue
            seen[rule.id] = rule.line
            rules.append(rule)
        return RuleSet(study_id, path, tuple(rules), recipients, digest_at)

    def check_rule(self, node: Node, index: int) -> Rule | None:
        what = f"rule {index}"
        if isinstance(node, MappingNode):  # name the rule by its id in every message, when it has one
            ids = [v.value for k, v in node.value if isinstance(k, ScalarNode) and k.value == "id"]
            if ids and isinstance(ids[0], str) and RULE_ID.match(ids[0]):
                what = f"rule '{ids[0]}'"
        allowed = COMMON_FIELDS + tuple(f for fields in KIND_FIELDS.values() for f in fields if f not in COMMON_FIELDS)
        fields = self.mapping(node, what, tuple(dict.fromkeys(allowed)))
        if fields is None:
            return None
        n_before = len(self.problems)
        for name in ("id", "kind"):
            if name not in fields:
                self.fail(node, f"{what}: the field '{name}' is missing")
        rule_id = self.text(fields, "id", what)
        if rule_id is not None and not RULE_ID.match(rule_id):
            self.fail(fields["id"][1], f"{what}: id {rule_id!r} must be 1-64 letters, digits, '-' or '_'")
        kind = self.text(fields, "kind", what)
        if kind is not None and kind not in KINDS:
            close = difflib.get_close_matches(kind, KINDS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use one of {', '.join(KINDS)}"
            self.fail(fields["kind"][1], f"{what}: kind '{kind}' is not a rule kind; {hint}")
            kind = None
        if kind is not None:
            for name, (key_node, _) in fields.items():
                if name not in COMMON_FIELDS and name not in KIND_FIELDS[kind]:
                    takes = ", ".join(KIND_FIELDS[kind])
                    self.fail(
                        key_node, f"{what}: field '{name}' does not apply to a {kind} rule; {kind} rules take {takes}"
                    )
            for name in REQUIRED[kind]:
                if name not in fields:
                    self.fail(node, f"{what}: a {kind} rule needs '{name}'")
        delivery = self.text(fields, "delivery", what) or "immediate"
        if delivery not in DELIVERIES:
            self.fail(fields["delivery"][1], f"{what}: delivery must be immediate or digest, not {delivery!r}")
        recipients = self.recipients(fields["recipients"][1], f"{what}: recipients") if "recipients" in fields else ()
        terms = {name: self.terms(fields, name, what) for name in ("pt", "soc", "basket")}
        if kind in LAB_KINDS:
            for name in ("pt", "soc", "basket", "serious", "related"):
                if name in fields:
                    self.fail(fields[name][0], f"{what}: field '{name}' is about adverse events; a {kind} rule is "
                                               "about laboratory values")  # fmt: skip
        if kind is not None and kind not in ("event", "signal", *LAB_KINDS):
            given = [name for name in ("pt", "soc", "basket") if name in fields]
            if len(given) != 1:
                self.fail(node, f"{what}: a {kind} rule is about one term: give exactly one of pt, soc or basket "
                                f"(given: {', '.join(given) or 'none'})")  # fmt: skip
            for name in given:
                if name != "basket" and len(terms[name]) > 1:
                    self.fail(fields[name][1], f"{what}: {name} must be one term in a {kind} rule; "
                                               "to pool terms, use a basket")  # fmt: skip
        min_grade = self.number(fields, "min_grade", what, integer=True, low=1, high=5)
        params: dict[str, Any] = {}
        if kind == "incidence":
            params["above_pct"] = self.number(fields, "above_pct", what, low=0, high=100)
            params["min_n"] = self.number(fields, "min_n", what, integer=True, low=1) or 1
        elif kind == "eair":
            params["above_rate"] = self.number(fields, "above_rate", what, low=0)
            params["lower_bound_above"] = self.flag(fields, "lower_bound_above", what)
            params["min_n"] = self.number(fields, "min_n", what, integer=True, low=1) or 1
        elif kind == "count":
            params["at_least"] = self.number(fields, "at_least", what, integer=True, low=1)
            params["first_n"] = self.number(fields, "first_n", what, integer=True, low=1)
            params["within_days"] = self.number(fields, "within_days", what, integer=True, low=1)
        elif kind == "bayesian":
            params["p0"] = self.number(fields, "p0", what, low=0, high=1, open_interval=True)
            params["above_probability"] = self.number(fields, "above_probability", what, low=0, high=1,
                                                      open_interval=True)  # fmt: skip
            params["min_n"] = self.number(fields, "min_n", what, integer=True, low=1) or 1
            params["prior_a"], params["prior_b"] = self.prior(fields, what)
        elif kind == "signal":
            params |= self.signal(fields, node, what)
        elif kind == "lab":
            params |= self.lab(fields, node, what, min_grade)
        cohorts = None
        if "cohorts" in fields:
            cohorts = self.terms(fields, "cohorts", what)
        if len(self.problems) > n_before or rule_id is None or kind is None:
            return None
        return Rule(
            id=rule_id,
            kind=kind,
            name=self.text(fields, "name", what) or rule_id,
            line=_line(node),
            description=self.text(fields, "description", what) or "",
            delivery=delivery,
            recipients=recipients,
            pt=terms["pt"],
            soc=terms["soc"],
            basket=terms["basket"],
            min_grade=min_grade,
            serious=self.flag(fields, "serious", what),
            related=self.flag(fields, "related", what),
            treatment_emergent=self.flag(fields, "treatment_emergent", what),
            cohorts=cohorts,
            params=params,
        )

    def signal(self, fields: dict, node: Node, what: str) -> dict[str, Any]:
        """The thresholds of a signal rule: tests, term level, and flagged or a q_pt bound (exactly one)."""
        tests = self.terms(fields, "test", what) or SIGNAL_TESTS
        for test in tests:
            if test not in SIGNAL_TESTS:
                self.fail(fields["test"][1], f"{what}: test must be rising or cohort (or a list of them), not {test!r}")
        by = self.text(fields, "by", what) or "pt"
        if by not in SIGNAL_BY:
            self.fail(fields["by"][1], f"{what}: by must be pt, soc or basket, not {by!r}")
        flagged = self.flag(fields, "flagged", what) if "flagged" in fields else None
        q_at_most = self.number(fields, "q_at_most", what, low=0, high=1)
        if ("flagged" in fields) == ("q_at_most" in fields):
            self.fail(node, f"{what}: a signal rule needs exactly one of 'flagged: true' or 'q_at_most: <q>'")
        elif flagged is False:
            self.fail(fields["flagged"][1], f"{what}: flagged must be true (to fire on flagged signals)")
        return {"tests": tuple(tests), "by": by, "q_at_most": q_at_most}

    def lab(self, fields: dict, node: Node, what: str, min_grade: int | None) -> dict[str, Any]:
        """The thresholds of a lab rule: tests, direction, and a grade or a multiple of the ULN (exactly one)."""
        tests = tuple(t.upper() for t in self.terms(fields, "test", what))
        direction = self.text(fields, "direction", what)
        if direction is not None and direction not in LAB_DIRECTIONS:
            self.fail(fields["direction"][1], f"{what}: direction must be high or low, not {direction!r}")
        xuln = self.number(fields, "xuln_at_least", what, low=0)
        if ("min_grade" in fields) == ("xuln_at_least" in fields):
            self.fail(node, f"{what}: a lab rule needs exactly one of 'min_grade: <1-4>' or 'xuln_at_least: <k>'")
        elif min_grade == 5:
            self.fail(fields["min_grade"][1], f"{what}: laboratory grades run from 1 to 4, not 5")
        return {"tests": tests, "direction": direction, "xuln_at_least": xuln}

    def text(self, fields: dict, name: str, what: str) -> str | None:
        if name not in fields:
            return None
        node = fields[name][1]
        value = _value(node)
        if not isinstance(value, str) or not value.strip():
            self.fail(node, f"{what}: {name} must be non-empty text, not {_describe(node)}")
            return None
        return value.strip()

    def terms(self, fields: dict, name: str, what: str) -> tuple[str, ...]:
        if name not in fields:
            return ()
        node = fields[name][1]
        value = _value(node)
        values = value if isinstance(value, list) else [value]
        if not values or any(not isinstance(v, str) or not v.strip() for v in values):
            self.fail(node, f"{what}: {name} must be a text or a list of texts, not {_describe(node)}")
            return ()
        values = [v.strip() for v in values]
        if name == "basket":
            if ANY_BASKET in values and len(values) > 1:
                self.fail(node, f"{what}: basket 'any' already means every basket; list no others beside it")
            elif self.baskets is not None and values != [ANY_BASKET]:
                for basket in values:
                    if basket not in self.baskets:
                        self.fail(node, f"{what}: there is no basket '{basket}' in the baskets file; "
                                        f"known baskets: {', '.join(self.baskets)} (or 'any')")  # fmt: skip
        return tuple(values)

    def number(self, fields, name, what, integer=False, low=None, high=None, open_interval=False):
        if name not in fields:
            return None
        node = fields[name][1]
        value = _value(node)
        kind = "a whole number" if integer else "a number"
        ok = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            self.fail(node, f"{what}: {name} must be {kind}, not {_describe(node)}")
            return None
        if open_interval and not (low < value < high):
            self.fail(node, f"{what}: {name} must lie strictly between {low} and {high}, not {value}")
            return None
        if low is not None and value < low or high is not None and value > high:
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            self.fail(node, f"{what}: {name} must be {bounds}, not {value}")
            return None
        return value

    def flag(self, fields: dict, name: str, what: str) -> bool:
        if name not in fields:
            return False
        node = fields[name][1]
        value = _value(node)
        if not isinstance(value, bool):
            self.fail(node, f"{what}: {name} must be true or false, not {_describe(node)}")
            return False
        return value

    def prior(self, fields: dict, what: str) -> tuple[float, float]:
        if "prior" not in fields:
            return 1.0, 1.0
        prior = self.mapping(fields["prior"][1], f"{what}: prior", ("a", "b"))
        if prior is None:
            return 1.0, 1.0
        values = []
        for name in ("a", "b"):
            if name not in prior:
                self.fail(fields["prior"][1], f"{what}: prior needs '{name}' (Beta(a, b); a: 1, b: 1 is uniform)")
                values.append(1.0)
                continue
            value = self.number(prior, name, f"{what}: prior", low=0)
            if value == 0:
                self.fail(prior[name][1], f"{what}: prior {name} must be above 0")
            values.append(float(value or 1.0))
        return values[0], values[1]

    def recipients(self, node: Node, what: str) -> tuple[str, ...]:
        value = _value(node)
        values = value if isinstance(value, list) else [value]
        good = []
        for item in values:
            if not isinstance(item, str) or not EMAIL.match(item.strip()):
                self.fail(node, f"{what} must be email addresses (name@example.org), not {item!r}")
            else:
                good.append(item.strip())
        return tuple(good)


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return repr(_value(node))
