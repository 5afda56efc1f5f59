"""The numbers each page shows, for one cut and one view state, cached per (cut, filters).

Counts are taken over the stored derivations with the metric layer's own definitions (a qualifying event is
:func:`~safety_dash.metrics.events.flag_qualifying_events`); rates, intervals and onset curves are the metric
functions' output, unchanged. Every cached function takes the cut's cache key (engine, run id, derivation time)
and plain filter values, never a DataFrame, so the caches stay small and correct across workers.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from safety_dash.metrics.events import flag_qualifying_events
from safety_dash.metrics.onset import compute_cumulative_incidence, compute_onset_summary, derive_first_onset
from safety_dash.metrics.rates import ALL_GROUP, DAYS_PER_YEAR, compute_rate_difference, compute_rate_table
from safety_dash.views.ordering import order_groups
from safety_dash.web.data import (
    ANY_IMMUNE_BASKET,
    GROUP_COLUMN,
    RESULT_CACHE_SIZE,
    CutFrames,
    CutInfo,
    WebContext,
    load_frames_locked,
    register_result_cache,
)
from safety_dash.web.state import ViewState

log = logging.getLogger(__name__)

GRADE_BUCKETS = ("Grade 1", "Grade 2", "Grade 3", "Grade 4", "Grade 5", "Grade unknown")
MAX_ONSET_POINTS = 1500  # subjects drawn one by one in the onset-day distribution; above, a sample


@dataclass(frozen=True)
class CutKey:
    """What identifies a cut's cached results: the engine, the run and when its derivations were written."""

    context: WebContext
    run_id: int
    derived_at: str

    @property
    def frames(self) -> CutFrames:
        """The cut's derived frames (cached per process)."""
        return load_frames_locked(self.context.engine, self.run_id, self.derived_at)


def cut_key(context: WebContext, cut: CutInfo) -> CutKey:
    """The cache key of ``cut`` read through ``context``."""
    return CutKey(context, cut.run_id, cut.derived_at)


def _event_filters(state: ViewState) -> tuple:
    return state.cohort, state.min_grade, state.serious, state.related


def text_equals(frames: CutFrames, column: str, value: str) -> np.ndarray:
    """Mask of the events whose text column ``column`` equals ``value`` (compared on codes, not on a million texts)."""
    codes, texts = frames.text[column]
    found = np.flatnonzero(texts == value)
    return codes == found[0] if len(found) else np.zeros(len(codes), dtype=bool)


def qualifying_events(frames: CutFrames, cohort: str | None, min_grade, serious: bool, related: bool) -> np.ndarray:
    """Mask of the events counted in this cut's rates (treatment-emergent, not after the cutoff, passing the
    filters) of safety-population subjects, in ``cohort`` when given."""
    events = frames.events
    mask = flag_qualifying_events(events, min_grade, serious, related).to_numpy()
    position = events["SUBJECT_POS"].to_numpy()
    mask &= (position >= 0) & frames.subjects["SAFFL"].to_numpy()[np.maximum(position, 0)]
    if cohort:
        mask &= text_equals(frames, GROUP_COLUMN, cohort)
    return mask


def population(frames: CutFrames, cohort: str | None) -> pd.DataFrame:
    """Safety-population subjects, of ``cohort`` when given."""
    subjects = frames.subjects.loc[frames.subjects["SAFFL"]]
    return subjects.loc[subjects[GROUP_COLUMN] == cohort] if cohort else subjects


def basket_mask(frames: CutFrames, terms: frozenset[str]) -> np.ndarray:
    """Mask of the events whose PT is one of ``terms`` (compared case-insensitively, as baskets match)."""
    wanted = {term.casefold() for term in terms}
    in_basket = np.array([str(pt).casefold() in wanted for pt in frames.pts], dtype=bool)
    return in_basket[frames.events["PT_CODE"].to_numpy()] if len(in_basket) else np.zeros(len(frames.events), bool)


# --- overview -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    """One figure of the overview."""

    label: str
    value: str
    detail: str = ""
    tone: str = ""


@dataclass(frozen=True)
class Overview:
    """The overview of a cut: cards, a table per cohort, and what changed since the previous cut."""

    n_enrolled: int
    n_dosed: int
    patient_years: float
    counts: dict[str, int]
    by_cohort: pd.DataFrame
    changes: dict[str, int]
    new_events: pd.DataFrame


def format_pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.1f}%" if total else "–"


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_overview(key: CutKey, cohort, min_grade, serious, related, previous_cutoff) -> Overview:
    """Subjects dosed, patient-years, subjects with a TEAE / grade >= 3 / serious / fatal / immune-related event,
    the same per cohort, and what is new or changed since the cut whose cutoff is ``previous_cutoff``."""
    frames = key.frames
    events, subjects = frames.events, frames.subjects
    enrolled = subjects.loc[subjects[GROUP_COLUMN] == cohort] if cohort else subjects
    safety = population(frames, cohort)
    qualifying = qualifying_events(frames, cohort, min_grade, serious, related)
    grade = events["GRADE"].to_numpy(dtype="float64", na_value=np.nan)
    immune = basket_mask(frames, key.context.basket_map.get(ANY_IMMUNE_BASKET, frozenset()))
    masks = {
        "teae": qualifying,
        "grade3": qualifying & (grade >= 3),
        "serious": qualifying & events["SERIOUS"].to_numpy(),
        "fatal": qualifying & (grade == 5),
        "immune": qualifying & immune,
    }
    # Per mask, which subjects have such an event (a bincount over subject rows, not a unique of a million ids).
    position = events["SUBJECT_POS"].to_numpy()
    n_subjects = len(subjects)
    having = {name: np.bincount(position[mask], minlength=n_subjects) > 0 for name, mask in masks.items()}
    counts = {name: int(flags.sum()) for name, flags in having.items()}

    cohort_codes, cohort_names = pd.factorize(subjects[GROUP_COLUMN], sort=True)
    in_safety = subjects["SAFFL"].to_numpy()
    n_groups = len(cohort_names)
    per_group = {name: np.bincount(cohort_codes[flags], minlength=n_groups) for name, flags in having.items()}
    dosed = np.bincount(cohort_codes[in_safety], minlength=n_groups)
    days = subjects["DAYS_AT_RISK"].to_numpy(dtype="float64", na_value=0.0)
    years = np.bincount(cohort_codes[in_safety], weights=days[in_safety], minlength=n_groups) / DAYS_PER_YEAR
    died = np.bincount(cohort_codes[in_safety & subjects["DTHDT"].notna().to_numpy()], minlength=n_groups)
    by_cohort = pd.DataFrame(
        {"cohort": [name or "(missing)" for name in cohort_names], "n_dosed": dosed, "patient_years": years,
         **per_group, "deaths": died}
    )  # fmt: skip
    by_cohort = by_cohort.loc[by_cohort["n_dosed"] > 0]
    if cohort:
        by_cohort = by_cohort.loc[np.asarray(cohort_names)[by_cohort.index] == cohort]
    by_cohort = by_cohort.reset_index(drop=True)

    in_scope = text_equals(frames, GROUP_COLUMN, cohort) if cohort else np.ones(len(events), bool)
    new = in_scope & text_equals(frames, "RECORD_CHANGE", "new")
    changed = in_scope & text_equals(frames, "RECORD_CHANGE", "changed")
    severe = (grade >= 3) | events["SERIOUS"].to_numpy()
    changes = {
        "new_records": int(new.sum()),
        "changed_records": int(changed.sum()),
        "new_teae": int((new & qualifying).sum()),
        "new_or_changed_severe": int(((new | changed) & severe & qualifying).sum()),
    }
    if previous_cutoff is not None:
        since = pd.Timestamp(previous_cutoff)
        changes["newly_dosed"] = int((safety["TRTSDT"] > since).sum())
        changes["new_deaths"] = int((safety["DTHDT"] > since).sum())
    listed = events.loc[(new | changed) & severe & qualifying]
    listed = listed.sort_values(["GRADE", "ASTDT"], ascending=[False, False], na_position="last").head(8)
    new_events = listed[["USUBJID", GROUP_COLUMN, "PT", "GRADE", "SERIOUS", "ASTDT", "RECORD_CHANGE"]]
    return Overview(
        n_enrolled=len(enrolled),
        n_dosed=len(safety),
        patient_years=float(safety["DAYS_AT_RISK"].sum()) / DAYS_PER_YEAR,
        counts=counts,
        by_cohort=by_cohort,
        changes=changes,
        new_events=new_events.reset_index(drop=True),
    )


# --- AE explorer ----------------------------------------------------------------------------------------------


def _worst_grade_table(frames: CutFrames, mask: np.ndarray, level: str, n_population: int) -> pd.DataFrame:
    """Subjects with a qualifying event per term (SOC or PT), split by their worst grade in that term."""
    events = frames.events
    code_column, names = ("SOC_CODE", frames.socs) if level == "soc" else ("PT_CODE", frames.pts)
    codes = events[code_column].to_numpy()[mask].astype(np.int64)
    position = events["SUBJECT_POS"].to_numpy()[mask].astype(np.int64)
    grade = events["GRADE"].to_numpy(dtype="float64", na_value=np.nan)[mask]
    grade = np.where(np.isnan(grade), 0, grade)  # 0: unknown, so any known grade is worse
    width = max(len(frames.subjects), 1)
    worst = pd.Series(grade).groupby(codes * width + position).max()
    term = (worst.index.to_numpy() // width).astype(np.int64)
    bucket = np.where(worst.to_numpy() == 0, 5, worst.to_numpy() - 1).astype(np.int64)
    table = np.zeros((len(names), len(GRADE_BUCKETS)), dtype=np.int64)
    np.add.at(table, (term, bucket), 1)
    frame = pd.DataFrame(table, columns=list(GRADE_BUCKETS))
    frame.insert(0, "term", names)
    if level == "pt":
        frame.insert(1, "soc", frames.socs[frames.pt_soc])
    frame["n_with_event"] = table.sum(axis=1)
    frame["n_subjects"] = n_population
    frame["incidence_pct"] = 100.0 * frame["n_with_event"] / n_population if n_population else np.nan
    frame = frame.loc[frame["n_with_event"] > 0]
    return frame.sort_values(["n_with_event", "term"], ascending=[False, True]).reset_index(drop=True)


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_soc_grades(key: CutKey, cohort, min_grade, serious, related) -> pd.DataFrame:
    """Per SOC: subjects with a qualifying event, by worst grade, and incidence % of the population."""
    frames = key.frames
    mask = qualifying_events(frames, cohort, min_grade, serious, related)
    return _worst_grade_table(frames, mask, "soc", len(population(frames, cohort)))


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_pt_grades(key: CutKey, cohort, min_grade, serious, related, soc) -> pd.DataFrame:
    """Per PT (of ``soc`` when given): subjects with a qualifying event, by worst grade, and incidence %."""
    frames = key.frames
    mask = qualifying_events(frames, cohort, min_grade, serious, related)
    if soc:
        mask &= text_equals(frames, "SOC", soc)
    return _worst_grade_table(frames, mask, "pt", len(population(frames, cohort)))


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_rate_table(key: CutKey, by: str, min_grade, serious, related) -> pd.DataFrame:
    """:func:`compute_rate_table` of the cut for every cohort (and ALL), by 'soc', 'pt' or 'basket'."""
    frames = key.frames
    baskets = key.context.basket_map if by == "basket" else None
    return compute_rate_table(
        frames.events, frames.subjects, by, GROUP_COLUMN, baskets, min_grade=min_grade, serious=serious, related=related
    )


def load_rate_rows(key: CutKey, state: ViewState) -> pd.DataFrame:
    """The PT rate rows the explorer grid pages through: the selected SOC's PTs (all PTs without one), the
    selected cohort's rows (every cohort and ALL without one), the PT with most subjects first (in the cohort, or
    overall), with the intervals written out."""
    return _rate_rows(key, state.min_grade, state.serious, state.related, state.soc, state.cohort)


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def _rate_rows(key: CutKey, min_grade, serious, related, soc, cohort) -> pd.DataFrame:
    table = load_rate_table(key, "pt", min_grade, serious, related)
    if soc:
        table = table.loc[table["soc"] == soc]
    if cohort:  # one cohort: its own most frequent terms first
        table = table.loc[table["group"] == cohort].assign(_overall=lambda rows: rows["n_with_event"])
    else:  # every cohort: the terms most frequent overall first, each with its rows for ALL and every cohort
        overall = table.loc[table["group"] == ALL_GROUP, ["soc", "pt", "n_with_event"]]
        table = table.merge(overall.rename(columns={"n_with_event": "_overall"}), on=["soc", "pt"], how="left")
    # Within a PT: ALL first, then the cohorts in natural order (dose levels by dose, not 0.3, 1, 10, 3, 5).
    order = {group: rank for rank, group in enumerate(order_groups(table["group"]))}
    table = table.assign(_group=table["group"].map(order))
    table = table.sort_values(["_overall", "pt", "_group"], ascending=[False, True, True], kind="stable")
    table = table.drop(columns=["_overall", "_group"]).reset_index(drop=True)
    table["group"] = table["group"].replace({ALL_GROUP: "All cohorts"})
    table["incidence_ci"] = [
        f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(table["incidence_ci_low"], table["incidence_ci_high"], strict=True)
    ]
    table["eair_ci"] = [
        f"{lo:.1f}–{hi:.1f}" for lo, hi in zip(table["eair_ci_low"], table["eair_ci_high"], strict=True)
    ]
    return table


# --- one term (PT or basket): rates, trend, onset -------------------------------------------------------------


def term_of(context: WebContext, frames: CutFrames, state: ViewState) -> tuple[str, str]:
    """The term a rate or onset view shows: ('pt', name) or ('basket', name); without a selection the union of the
    immune-related baskets, or the most frequent PT when no basket is configured."""
    if state.pt:
        return "pt", state.pt
    baskets = context.basket_map
    if state.basket and state.basket in baskets:
        return "basket", state.basket
    if state.basket:
        raise ValueError(f"Basket {state.basket!r} is not configured; choose one of {', '.join(baskets)}.")
    if baskets:
        return "basket", ANY_IMMUNE_BASKET
    counts = np.bincount(frames.events["PT_CODE"].to_numpy(), minlength=len(frames.pts))
    return "pt", str(frames.pts[int(np.argmax(counts))]) if len(counts) else ""


def soc_of_pt(key: CutKey, pt: str) -> str | None:
    """The SOC a PT is coded to in this cut (the SOC of its first record), or None for an unknown PT."""
    frames = key.frames
    where = np.flatnonzero(frames.pts == pt)
    return str(frames.socs[frames.pt_soc[where[0]]]) if len(where) else None


def term_events(key: CutKey, kind: str, name: str) -> pd.DataFrame:
    """The records of one term: a PT's, or those whose PT is in the basket."""
    frames = key.frames
    if kind == "pt":
        return frames.events.loc[text_equals(frames, "PT", name)]
    return frames.events.loc[basket_mask(frames, key.context.basket_map[name])]


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_term_rates(key: CutKey, kind: str, name: str, min_grade, serious, related) -> pd.DataFrame:
    """Incidence, EAIR and EAER of one PT or basket per cohort and ALL (a row per group, zeros included)."""
    frames = key.frames
    events = term_events(key, kind, name)
    if kind == "pt":  # a PT coded under two SOCs (a data query) is still one term: count its subjects once
        events = events.assign(SOC="")
    baskets = {name: key.context.basket_map[name]} if kind == "basket" else None
    table = compute_rate_table(
        events, frames.subjects, kind, GROUP_COLUMN, baskets, min_grade=min_grade, serious=serious, related=related
    )
    # Empty when no group has a qualifying event of the term: the page says so instead of drawing zeros.
    table = table.loc[table["pt"] == name]
    return table.reset_index(drop=True)


def load_rate_difference(term_rates: pd.DataFrame, reference: str) -> pd.DataFrame:
    """EAIR difference of each cohort to ``reference`` for one term (Wald and Miettinen–Nurminen intervals)."""
    if term_rates["patient_years_at_risk"].isna().all():
        return pd.DataFrame()
    return compute_rate_difference(term_rates, reference)


def load_rate_trend(context: WebContext, cuts: list[CutInfo], kind: str, name: str, state: ViewState) -> pd.DataFrame:
    """EAIR of one term per cohort in each of ``cuts`` (oldest first): how it moved from cut to cut."""
    parts = []
    for cut in cuts:
        key = cut_key(context, cut)
        if kind == "basket" and name not in context.basket_map:
            continue
        rates = load_term_rates(key, kind, name, state.min_grade, state.serious, state.related)
        parts.append(rates.assign(run_id=cut.run_id, cutoff=pd.Timestamp(cut.cutoff)))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


@dataclass(frozen=True)
class Onset:
    """Time to onset of one term: cumulative incidence curves, a summary and the subjects' first onset days."""

    curves: pd.DataFrame
    summary: pd.DataFrame
    points: pd.DataFrame
    n_points_total: int


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_onset(key: CutKey, kind: str, name: str, min_grade, serious, related) -> Onset:
    """Aalen–Johansen curves (death as competing event), median/IQR and first onset days of one term."""
    frames = key.frames
    events = term_events(key, kind, name)
    filters = {"min_grade": min_grade, "serious": serious, "related": related}
    curves = compute_cumulative_incidence(events, frames.subjects, GROUP_COLUMN, **filters)
    summary = compute_onset_summary(events, frames.subjects, GROUP_COLUMN, **filters)
    first = derive_first_onset(events, frames.subjects, GROUP_COLUMN, **filters)
    points = first.loc[first["FIRST_ONSET_DAY"].notna(), ["USUBJID", "GROUP", "FIRST_ONSET_DAY"]]
    total = len(points)
    if total > MAX_ONSET_POINTS:
        points = points.sample(MAX_ONSET_POINTS, random_state=1706)
    return Onset(curves, summary, points.reset_index(drop=True), total)


@functools.lru_cache(maxsize=RESULT_CACHE_SIZE)
def load_onset_curve(key: CutKey, kind: str, name: str, min_grade, serious, related, cohort) -> pd.DataFrame:
    """The cumulative incidence curve of one term for one population: ``cohort``, or all cohorts together.

    The same Aalen–Johansen estimate as :func:`load_onset`'s ALL (or cohort) curve, fitted once instead of once per
    cohort: the population is given one group, so the metric's ALL row is the curve asked for.
    """
    frames = key.frames
    subjects = frames.subjects
    if cohort:
        subjects = subjects.loc[subjects[GROUP_COLUMN] == cohort]
    subjects = subjects.assign(**{GROUP_COLUMN: "one population"})
    curves = compute_cumulative_incidence(
        term_events(key, kind, name), subjects, GROUP_COLUMN, min_grade=min_grade, serious=serious, related=related
    )
    curves = curves.loc[curves["group"] == ALL_GROUP].copy()
    curves["group"] = cohort or ALL_GROUP
    return curves.reset_index(drop=True)


def term_options(key: CutKey) -> list[dict[str, str]]:
    """Choices of a term picker: the baskets, then every PT of the cut."""
    options = [{"label": f"Basket · {name}", "value": f"basket:{name}"} for name in key.context.basket_map]
    options += [{"label": str(pt), "value": f"pt:{pt}"} for pt in sorted(key.frames.pts, key=str.casefold)]
    return options


def clear_result_caches() -> None:
    """Forget every cached result."""
    for function in (
        load_overview,
        load_soc_grades,
        load_pt_grades,
        load_rate_table,
        _rate_rows,
        load_term_rates,
        load_onset,
        load_onset_curve,
    ):
        function.cache_clear()


register_result_cache(clear_result_caches)


@dataclass(frozen=True)
class View:
    """Everything a page callback needs: the context, the resolved view state, the cut and its cache key."""

    context: WebContext
    state: ViewState
    cut: CutInfo
    key: CutKey


def load_view(search: str | None) -> View:
    """The view the address ``search`` asks for, with study and cut resolved (fails with a sentence)."""
    from safety_dash.web.data import current_context, resolve_state
    from safety_dash.web.state import parse_state

    context = current_context()
    state, cut = resolve_state(context.engine, parse_state(search))
    return View(context, state, cut, cut_key(context, cut))


def find_subjects(key: CutKey, text: str | None, limit: int = 20, cohort: str | None = None) -> list[str]:
    """Subjects of the cut (of ``cohort`` when given) whose USUBJID contains ``text`` (case-insensitive), at most
    ``limit``, in order."""
    frame = key.frames.subjects
    subjects = frame.loc[frame[GROUP_COLUMN] == cohort, "USUBJID"] if cohort else frame["USUBJID"]
    if text:
        subjects = subjects.loc[subjects.str.contains(text.strip(), case=False, regex=False)]
    return subjects.head(limit).tolist()


def subjects_of_note(key: CutKey, limit: int = 8, cohort: str | None = None) -> pd.DataFrame:
    """Subjects (of ``cohort`` when given) with the most grade >= 3 or serious counted records (DOMAIN.md §3): where
    a profile is worth a look."""
    frames = key.frames
    events = frames.events
    grade = events["GRADE"].to_numpy(dtype="float64", na_value=np.nan)
    severe = events["COUNTED"].to_numpy() & ((grade >= 3) | events["SERIOUS"].to_numpy())
    if cohort:
        severe &= text_equals(frames, GROUP_COLUMN, cohort)
    counts = events.loc[severe].groupby("USUBJID").agg(n=("AE_ID", "size"), worst=("GRADE", "max"))
    counts = counts.sort_values(["worst", "n"], ascending=False).head(limit).reset_index()
    cohort = frames.subjects.set_index("USUBJID")[GROUP_COLUMN]
    counts[GROUP_COLUMN] = counts["USUBJID"].map(cohort)
    return counts


def warm_up(context: WebContext) -> None:
    """Read the newest cut of every study into memory and compute its default views, so that the first person to
    open the dashboard after a worker starts does not wait for a million records to load."""
    from safety_dash.views.labs import load_lab_cut
    from safety_dash.views.signals import load_signal_rows
    from safety_dash.web.data import load_studies, previous_cut, resolve_state
    from safety_dash.web.listing import listing_positions

    started = time.perf_counter()
    for study in load_studies(context.engine):
        try:
            state, cut = resolve_state(context.engine, ViewState(study=study))
            key = cut_key(context, cut)
            before = previous_cut(context.engine, cut)
            load_overview(key, None, None, False, False, before.cutoff if before else None)
            load_soc_grades(key, None, None, False, False)
            load_pt_grades(key, None, None, False, False, None)
            load_rate_table(key, "pt", None, False, False)
            kind, name = term_of(context, key.frames, state)
            load_term_rates(key, kind, name, None, False, False)
            load_onset(key, kind, name, None, False, False)
            listing_positions(key, None, None, False, False, False, None, None, None)
            load_signal_rows(key, None, None, False, False)
            load_lab_cut(context.engine, cut.run_id, cut.derived_at)
        except Exception:  # a warm-up failure must not stop the worker; the page will show the error
            log.exception("warming up the views of study %s failed", study)
    log.info("views warmed up in %.1f s", time.perf_counter() - started)
