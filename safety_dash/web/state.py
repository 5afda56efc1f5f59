"""What is on the screen, as a URL query string: parse and write it (pure functions, no Dash, no database).

The address of every view carries its whole state, so a link sent to a colleague reproduces the view:

=========  ==========================================================  =====================
key        meaning                                                     example
=========  ==========================================================  =====================
study      study id                                                    ``QL1706-DEMO``
cut        data cut: the id of a succeeded ingestion run               ``3``
cohort     one cohort (the study's grouping column); absent: all       ``Ph I 5 mg/kg``
grade      count only events of CTCAE grade >= this (1..5)             ``3``
serious    ``1``: serious events only                                  ``1``
related    ``1``: related events only                                  ``1``
window     ``1``: listings show only events within the risk window     ``1``
soc        selected system organ class                                 ``Skin and ...``
pt         selected preferred term                                     ``Rash``
basket     selected AE basket (e.g. an immune-related category)        ``skin``
test       selected signal's test: ``rising`` or ``cohort`` (out of    ``rising``
           line); with ``soc`` and ``pt`` it names the signal
group      selected signal's group, a cohort or ``ALL``; absent: the   ``ALL``
           cohort filter's cohort, else ``ALL``
subject    selected subject (USUBJID)                                  ``QL1706-DEMO-01-0001``
ref        reference cohort of rate differences                        ``Ph Ib NSCLC``
lab        selected laboratory test (LBTESTCD) of the Labs page        ``ALT``
dir        its direction graded: ``high`` or ``low``                   ``low``
review     records by review status: ``needs`` (not reviewed or        ``needs``
           outdated), ``not-reviewed``, ``outdated``, ``reviewed``
=========  ==========================================================  =====================

Anything else in the query string is ignored, and a value that cannot be read (``grade=9``) is dropped, so an
edited or truncated link still opens. Without ``cut``, a view shows the newest cut of the study; the "Copy link"
button always writes the cut, so a shared link keeps showing the numbers it was sent with.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

GRADES = (1, 2, 3, 4, 5)
TRUE_TEXTS = frozenset({"1", "true", "yes", "y", "on"})


@dataclass(frozen=True)
class ViewState:
    """The filters and selections of a view; ``None`` / ``False`` mean "not set"."""

    study: str | None = None
    cut: int | None = None
    cohort: str | None = None
    min_grade: int | None = None
    serious: bool = False
    related: bool = False
    window: bool = False
    soc: str | None = None
    pt: str | None = None
    basket: str | None = None
    test: str | None = None
    group: str | None = None
    subject: str | None = None
    ref: str | None = None
    lab: str | None = None
    lab_dir: str | None = None
    review: str | None = None

    def replace(self, **changes) -> ViewState:
        """A copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    @property
    def term_label(self) -> str | None:
        """The selected term as shown in titles: the PT, else the basket, else None."""
        if self.pt:
            return self.pt
        if self.basket:
            return f"{self.basket} (basket)"
        return None


# Query-string key of each field, in the order they are written.
KEYS = {
    "study": "study",
    "cut": "cut",
    "cohort": "cohort",
    "min_grade": "grade",
    "serious": "serious",
    "related": "related",
    "window": "window",
    "soc": "soc",
    "pt": "pt",
    "basket": "basket",
    "test": "test",
    "group": "group",
    "subject": "subject",
    "ref": "ref",
    "lab": "lab",
    "lab_dir": "dir",
    "review": "review",
}
FILTER_FIELDS = ("study", "cut", "cohort", "min_grade", "serious", "related", "window")
SELECTION_FIELDS = ("soc", "pt", "basket", "test", "group", "subject", "ref", "lab", "lab_dir")
REVIEW_FILTERS = ("needs", "not-reviewed", "outdated", "reviewed")  # the listings' and profile's review filter
LAB_DIRECTIONS = ("high", "low")  # the directions a laboratory test is graded in (CTCAE)
SIGNAL_TESTS = ("rising", "cohort")  # the tests of DOMAIN.md §7, as safety_dash.metrics.signals names them
ALL_GROUP = "ALL"  # the whole safety population, as safety_dash.metrics.rates names it


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _positive_int(value: str | None) -> int | None:
    value = _text(value)
    if value is None or not value.isdigit():
        return None
    number = int(value)
    return number if number > 0 else None


def _grade(value: str | None) -> int | None:
    number = _positive_int(value)
    return number if number in GRADES else None


def _flag(value: str | None) -> bool:
    return (_text(value) or "").lower() in TRUE_TEXTS


def parse_state(search: str | None) -> ViewState:
    """The view state written in a query string (``?study=...&cut=3``); unreadable values are dropped."""
    text = (search or "").lstrip("?")
    values: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        values.setdefault(key, value)  # the first value of a repeated key wins
    get = values.get
    return ViewState(
        study=_text(get("study")),
        cut=_positive_int(get("cut")),
        cohort=_text(get("cohort")),
        min_grade=_grade(get("grade")),
        serious=_flag(get("serious")),
        related=_flag(get("related")),
        window=_flag(get("window")),
        soc=_text(get("soc")),
        pt=_text(get("pt")),
        basket=_text(get("basket")),
        test=_text(get("test")) if _text(get("test")) in SIGNAL_TESTS else None,
        group=_text(get("group")),
        subject=_text(get("subject")),
        ref=_text(get("ref")),
        lab=_text(get("lab")),
        lab_dir=_text(get("dir")) if _text(get("dir")) in LAB_DIRECTIONS else None,
        review=_text(get("review")) if _text(get("review")) in REVIEW_FILTERS else None,
    )


def state_to_search(state: ViewState) -> str:
    """The query string of ``state`` (``""`` when nothing is set); keys in a fixed order, so one view has one
    address."""
    pairs = []
    for field_name, key in KEYS.items():
        value = getattr(state, field_name)
        if value is None or value is False:
            continue
        pairs.append((key, "1" if value is True else str(value)))
    return "?" + urlencode(pairs, quote_via=quote) if pairs else ""


def state_href(path: str, state: ViewState) -> str:
    """The address of page ``path`` showing ``state``."""
    return f"{path}{state_to_search(state)}"


def change_filters(state: ViewState, **filters) -> ViewState:
    """``state`` with new filter values. Another study clears the cut, cohort and every selection (they belong to
    the old study); another cut keeps them, so the same question can be asked of an earlier cut."""
    unknown = set(filters) - set(FILTER_FIELDS)
    if unknown:
        raise ValueError(f"change_filters takes only filter fields {FILTER_FIELDS}, not {sorted(unknown)}")
    changed = state.replace(**filters)
    if changed.study != state.study:
        cleared = {name: None for name in SELECTION_FIELDS}
        changed = changed.replace(cut=filters.get("cut"), cohort=filters.get("cohort"), **cleared)
    return changed


def select_soc(state: ViewState, soc: str | None) -> ViewState:
    """Select a SOC (clicking the selected one again clears it); the PT selection is cleared."""
    if soc is not None and soc == state.soc:
        soc = None
    return state.replace(soc=soc, pt=None)


def select_pt(state: ViewState, pt: str | None, soc: str | None = None) -> ViewState:
    """Select a PT (and its SOC when known); a PT and a basket exclude each other, clicking it again clears it."""
    if pt is not None and pt == state.pt:
        return state.replace(pt=None)
    return state.replace(pt=pt, basket=None, soc=soc or state.soc)


def select_term(state: ViewState, term: str | None) -> ViewState:
    """Select a term from a term picker: ``basket:<name>`` selects a basket, ``pt:<name>`` a PT, None neither."""
    if not term:
        return state.replace(pt=None, basket=None)
    kind, _, name = term.partition(":")
    if kind == "basket" and name:
        return state.replace(basket=name, pt=None)
    if kind == "pt" and name:
        return state.replace(pt=name, basket=None)
    raise ValueError(f"term {term!r} is neither 'basket:<name>' nor 'pt:<name>'")


def term_value(state: ViewState) -> str | None:
    """The term picker value of ``state`` (the inverse of :func:`select_term`)."""
    if state.pt:
        return f"pt:{state.pt}"
    if state.basket:
        return f"basket:{state.basket}"
    return None


def signal_group(state: ViewState) -> str:
    """The group of the selected signal: ``group`` when given, else the cohort filter's cohort, else ALL."""
    return state.group or state.cohort or ALL_GROUP


def select_signal(state: ViewState, test: str, group: str, soc: str, pt: str) -> ViewState:
    """Select a signal (test, group, SOC, PT); ``group`` is written only where it differs from the cohort filter's
    cohort (else ALL), so one view has one address. Clicking the selected signal again clears it."""
    if test not in SIGNAL_TESTS:
        raise ValueError(f"test {test!r} is not a signal test; use one of {', '.join(SIGNAL_TESTS)}")
    selected = state.test == test and signal_group(state) == group and state.soc == (soc or None)
    if selected and state.pt == (pt or None):
        return state.replace(test=None, group=None, pt=None)
    default = state.cohort or ALL_GROUP
    return state.replace(test=test, group=None if group == default else group, soc=soc or None, pt=pt or None,
                         basket=None)  # fmt: skip
