"""The Signals page's numbers: the signals of a cut ranked for the monitor, their trend across cuts, and the
subjects counted in a signal (DOMAIN.md §7).

Every number is :func:`safety_dash.signal_store.compute_cut_signals`' (stored for the default variant, computed
from the stored derivations for a grade / serious / related filter) or
:func:`safety_dash.metrics.signals.compute_signal_subjects`', unchanged; this module only ranks, narrows to a
cohort and writes them out. Results are cached per process, keyed by the cut (engine, run id, derivation time) and
the filters, like the other views.

The cached functions take a cut source: any hashable object with ``context.engine``, ``context.baskets``,
``run_id``, ``derived_at``, ``frames.cut`` (``study_id``, ``cutoff``) and ``frames.subjects`` / ``frames.events``
(the cut's derivations in metric naming), e.g. :class:`safety_dash.web.views.CutKey`. Nothing here imports
:mod:`safety_dash.web`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from safety_dash.analysis import GROUP_COLUMN, resolve_cut
from safety_dash.db.queries import run_query
from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.metrics.signals import SIGNAL_TESTS, TEST_COHORT, TEST_RISING, compute_signal_subjects
from safety_dash.signal_store import compute_cut_signals, load_previous_cut
from safety_dash.views.ordering import natural_rank

CACHE_SIZE = 128
TEST_LABELS = {TEST_RISING: "Rising", TEST_COHORT: "Out of line"}
INFINITE_SORT_VALUE = 1e12  # where an infinite rate ratio (x0 = 0) sorts: above every finite one


@dataclass(frozen=True)
class Signal:
    """One signal row: its test, group (a cohort or ALL) and term (SOC and PT)."""

    test: str
    group: str
    soc: str
    pt: str

    @property
    def key(self) -> str:
        """The row id of the signal in the Signals grid (JSON text, read back by :func:`signal_from_key`)."""
        return json.dumps([self.test, self.group, self.soc, self.pt], ensure_ascii=False)

    @property
    def label(self) -> str:
        """The signal in words: "Hepatitis rising in Ph Ib NSCLC"."""
        where = "all cohorts" if self.group == ALL_GROUP else self.group
        what = "rising in" if self.test == TEST_RISING else "out of line in"
        return f"{self.pt or self.soc} {what} {where}"


def signal_from_key(key: str) -> Signal | None:
    """The signal whose grid row id is ``key``, or None when ``key`` is not one."""
    try:
        values = json.loads(key)
    except (TypeError, ValueError):
        return None
    if not isinstance(values, list) or len(values) != 4 or not all(isinstance(v, str) for v in values):
        return None
    test, group, soc, pt = values
    return Signal(test, group, soc, pt) if test in SIGNAL_TESTS else None


@dataclass(frozen=True)
class CutLabel:
    """A data cut as the Signals page names it: run id and cutoff."""

    run_id: int
    cutoff: dt.date

    def __str__(self) -> str:
        return f"cut {self.run_id} ({self.cutoff:%Y-%m-%d})"


def load_study_cuts(bind, study_id: str, run_id: int) -> list[tuple[CutLabel, str]]:
    """The succeeded cuts of ``study_id`` up to ``run_id``, oldest first, each with its derivation time."""
    cuts = run_query(bind, "web_cuts", study_id=study_id)
    cuts = cuts.loc[cuts["run_id"] <= run_id]
    return [
        (CutLabel(int(row.run_id), pd.Timestamp(row.cutoff).date()), str(row.derived_at or row.finished_at or ""))
        for row in cuts.itertuples()
    ]


def load_previous_label(bind, run_id: int) -> CutLabel | None:
    """The cut before ``run_id`` (the rising test's t0), or None for a study's first cut."""
    previous = load_previous_cut(bind, run_id)
    return None if previous is None else CutLabel(*previous)


@functools.lru_cache(maxsize=CACHE_SIZE)
def load_signal_table(bind, run_id: int, derived_at: str, min_grade, serious: bool, related: bool) -> pd.DataFrame:
    """The signals of cut ``run_id`` by PT for the study's cohorts (columns of
    :data:`safety_dash.signal_store.SIGNAL_TABLE_COLUMNS`); ``derived_at`` keys the cache (a re-derived cut is
    read again)."""
    cut = resolve_cut(bind, None, int(run_id))
    return compute_cut_signals(bind, cut, "pt", None, None, min_grade, bool(serious), bool(related))


def load_signal_trends(source, min_grade, serious: bool, related: bool) -> pd.DataFrame:
    """Every signal row of every cut of the study up to ``source``'s, with the same filters: columns test, group,
    soc, pt, run_id, cutoff, x1, py1, rate1 (x1 per 100 PY1), rate_ratio, flagged."""
    engine, cut = source.context.engine, source.frames.cut
    parts = []
    for label, derived_at in load_study_cuts(engine, cut.study_id, source.run_id):
        table = load_signal_table(engine, label.run_id, derived_at, min_grade, serious, related)
        parts.append(table.assign(run_id=label.run_id, cutoff=pd.Timestamp(label.cutoff)))
    if not parts:
        return pd.DataFrame(columns=["test", "group", "soc", "pt", "run_id", "cutoff", "x1", "py1", "rate1"])
    trends = pd.concat(parts, ignore_index=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        trends["rate1"] = np.where(trends["py1"] > 0, 100.0 * trends["x1"] / trends["py1"], np.nan)
    return trends


def basket_names(baskets: dict[str, frozenset[str]]) -> dict[str, str]:
    """PT (case-folded) -> the names of the immune-related baskets holding it, joined ("endocrine, skin")."""
    holding: dict[str, list[str]] = {}
    for name, terms in baskets.items():
        for term in terms:
            holding.setdefault(term.casefold(), []).append(name)
    return {term: ", ".join(sorted(names)) for term, names in holding.items()}


def _ratio_text(estimate: float, low: float, high: float) -> str:
    def number(value: float) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return "∞" if math.isinf(value) else f"{value:.3g}"

    if estimate is None or math.isnan(estimate):
        return "–"
    return f"{number(estimate)} ({number(low)}–{number(high)})"


@functools.lru_cache(maxsize=CACHE_SIZE)
def load_signal_rows(source, cohort: str | None, min_grade, serious: bool, related: bool) -> pd.DataFrame:
    """The signal rows a monitor reads, flagged first, then by one-sided p (then q, test, group, term): of
    ``cohort`` only when given (the ALL rows concern every cohort and are left out then).

    Columns: those of the signal table, plus ``key`` (the grid's row id), ``test_label``, ``group_label``,
    ``baskets`` (immune-related baskets of the PT), ``rate1`` / ``rate0`` (x per 100 PY), ``rr_sort`` (the rate
    ratio, infinite as :data:`INFINITE_SORT_VALUE`), ``rr_text`` ("10.8 (2.48–97.8)"), ``since_run`` /
    ``since_cutoff`` / ``since`` (the cut that first flagged the row), ``trend`` (per cut up to this one:
    [run id, x1 per 100 PY1 or None, flagged]) and ``rank`` (1 = first shown).
    """
    engine = source.context.engine
    table = load_signal_table(engine, source.run_id, source.derived_at, min_grade, serious, related)
    if cohort:
        table = table.loc[table["group"] == cohort]
    rows = table.copy()
    rows["test_label"] = rows["test"].map(TEST_LABELS)
    rows["group_label"] = rows["group"].replace({ALL_GROUP: "All cohorts"})
    in_baskets = basket_names(dict(source.context.baskets))  # the configured baskets, not their union
    rows["baskets"] = [in_baskets.get(str(pt).casefold(), "") for pt in rows["pt"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        rows["rate1"] = np.where(rows["py1"] > 0, 100.0 * rows["x1"] / rows["py1"], np.nan)
        rows["rate0"] = np.where(rows["py0"] > 0, 100.0 * rows["x0"] / rows["py0"], np.nan)
    rows["rr_sort"] = rows["rate_ratio"].replace(np.inf, INFINITE_SORT_VALUE)
    rows["rr_text"] = [
        _ratio_text(e, lo, hi)
        for e, lo, hi in zip(rows["rate_ratio"], rows["rr_ci_low"], rows["rr_ci_high"], strict=True)
    ]
    cutoffs = {
        label.run_id: label.cutoff for label, _ in load_study_cuts(engine, source.frames.cut.study_id, source.run_id)
    }
    since = rows["first_flagged_run"]
    rows["since_run"] = since
    rows["since_cutoff"] = [cutoffs.get(int(r)) if pd.notna(r) else None for r in since]
    rows["since"] = [
        f"cut {int(r)} · {cutoffs[int(r)]:%Y-%m-%d}" if pd.notna(r) and int(r) in cutoffs else "" for r in since
    ]
    rows["key"] = [
        Signal(t, g, s, p).key for t, g, s, p in zip(rows["test"], rows["group"], rows["soc"], rows["pt"], strict=True)
    ]
    rows["trend"] = _trend_lists(load_signal_trends(source, min_grade, serious, related), rows)
    rows = rows.assign(_flag=~rows["flagged"], _group=natural_rank(rows["group"].replace({ALL_GROUP: ""})))
    rows = rows.sort_values(["_flag", "p_one_sided", "q_pt", "test", "_group", "pt"], kind="stable", na_position="last")
    rows = rows.drop(columns=["_flag", "_group"]).reset_index(drop=True)
    rows["rank"] = np.arange(1, len(rows) + 1)
    return rows


def _trend_lists(trends: pd.DataFrame, rows: pd.DataFrame) -> list[list]:
    """Per row of ``rows``, its [run id, x1 per 100 PY1, flagged] in each cut where it has a row, oldest first."""
    by_key: dict[tuple, list] = {}
    for t in trends.sort_values("run_id").itertuples(index=False):
        rate = None if pd.isna(t.rate1) else round(float(t.rate1), 3)
        by_key.setdefault((t.test, t.group, t.soc, t.pt), []).append([int(t.run_id), rate, bool(t.flagged)])
    return [by_key.get(key, []) for key in zip(rows["test"], rows["group"], rows["soc"], rows["pt"], strict=True)]


def find_signal(rows: pd.DataFrame, signal: Signal) -> pd.Series | None:
    """The row of ``signal`` in a table of signal rows, or None."""
    found = rows.loc[
        (rows["test"] == signal.test) & (rows["group"] == signal.group) & (rows["soc"] == signal.soc)
        & (rows["pt"] == signal.pt)
    ]  # fmt: skip
    return None if found.empty else found.iloc[0]


@functools.lru_cache(maxsize=CACHE_SIZE)
def load_signal_members(source, signal: Signal, min_grade, serious: bool, related: bool) -> pd.DataFrame:
    """The subjects counted in ``signal`` (x1 and x0) in ``source``'s cut: USUBJID, GROUP, FIRST_ONSET_DAY,
    FIRST_ONSET_DATE and PART (1 for x1, 0 for x0), x1 first (:func:`compute_signal_subjects`)."""
    previous = load_previous_label(source.context.engine, source.run_id)
    if signal.test == TEST_RISING and previous is None:
        raise ValueError(f"Cut {source.run_id} is the study's first cut: it has no rising signals.")
    frames = source.frames
    return compute_signal_subjects(
        frames.events, frames.subjects, "pt", GROUP_COLUMN, signal.test, signal.group, signal.soc, signal.pt,
        previous.cutoff if previous else None, None, min_grade, bool(serious), bool(related),
    )  # fmt: skip


def describe_parts(signal: Signal, previous: CutLabel | None) -> tuple[str, str]:
    """What x1 and x0 are for ``signal``, in words."""
    if signal.test == TEST_RISING:
        since = str(previous) if previous else "the previous cut"
        return f"new since {since}", f"before {since}"
    return f"in {signal.group}", "in the other cohorts"


def mark_signal_records(rows: pd.DataFrame, members: pd.DataFrame, signal: Signal, previous: CutLabel | None):
    """Listing rows of the signal's term with ``X1`` (the record's subject is counted in x1) and ``SIGNAL_PART``
    ("x₁ · new since cut 2", "x₀ · before cut 2", "x₁ · in Ph Ib NPC", or "" for a subject not counted, e.g. whose
    records do not qualify); the x1 subjects' records first, each subject's records together, in listing order."""
    if signal.test == TEST_RISING:
        since = f"cut {previous.run_id}" if previous else "the previous cut"
        x1_text, x0_text = f"new since {since}", f"before {since}"
    else:
        x1_text, x0_text = describe_parts(signal, previous)
    part = dict(zip(members["USUBJID"], members["PART"], strict=True))
    marked = rows.copy()
    parts = marked["USUBJID"].map(part)
    marked["X1"] = (parts == 1).to_numpy()
    marked["SIGNAL_PART"] = np.select([parts == 1, parts == 0], [f"x₁ · {x1_text}", f"x₀ · {x0_text}"], "")
    order = np.select([parts == 1, parts == 0], [0, 1], 2)
    return marked.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def listing_cohort(signal: Signal) -> str | None:
    """The cohort whose records the signal's listing shows: the group for a rising signal of one cohort, every
    cohort for ALL and for an out-of-line signal (its x0 is the other cohorts)."""
    return signal.group if signal.test == TEST_RISING and signal.group != ALL_GROUP else None


def clear_signal_caches() -> None:
    """Forget every cached signal table, row set and subject list."""
    for function in (load_signal_table, load_signal_rows, load_signal_members):
        function.cache_clear()
