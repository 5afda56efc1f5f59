"""Signals of a stored data cut: computed with the cut's derivations, stored, and read back (DOMAIN.md §7).

At derivation (:func:`derive_cut_signals`, inside the load transaction) the signals of the study's cohorts without
filters are stored for ``by='pt'`` and ``by='soc'`` (:data:`STORED_ANALYSES`), each row with the first cut in which
its test, group and term was flagged. Other variants (another grouping column, baskets, grade / serious / related
filters) are computed on demand by :func:`compute_cut_signals` from the stored derivations of the study's cuts, with
the same functions, so the command, the Signals page, the alerts and the committee pack all show the same numbers.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sqlalchemy import Connection, delete

from safety_dash.analysis import GROUP_COLUMN, CutContext, load_derived_frames
from safety_dash.db.bulk import bulk_insert
from safety_dash.db.models import DerivedSignal
from safety_dash.db.queries import run_query
from safety_dash.metrics.signals import SIGNAL_COLUMNS, compute_signals

STORED_ANALYSES = ("pt", "soc")
SIGNAL_TABLE_COLUMNS = [*SIGNAL_COLUMNS, "first_flagged_run"]
SIGNAL_KEY = ["test", "group", "soc", "pt"]


def load_previous_cut(bind, run_id: int) -> tuple[int, dt.date] | None:
    """(run id, cutoff) of the succeeded cut of the same study just before cut ``run_id``; None for the first."""
    previous = run_query(bind, "previous_cut", run_id=run_id)
    if previous.empty:
        return None
    return int(previous.iloc[0]["run_id"]), pd.Timestamp(previous.iloc[0]["cutoff"]).date()


def compute_rising_since(previous: tuple[int, dt.date] | None, cutoff: dt.date) -> dt.date | None:
    """The previous cutoff t0 of the ``rising`` test (``previous`` as :func:`load_previous_cut` gives it), or None
    when there is no earlier cut or it is not before this cut's cutoff.

    A re-delivery with the same (or an earlier) cutoff has no dates after t0: it gets no ``rising`` rows.
    """
    if previous is None or previous[1] >= cutoff:
        return None
    return previous[1]


def derive_first_flagged(table: pd.DataFrame, previous: pd.DataFrame | None, run_id: int) -> pd.DataFrame:
    """``table`` (signal rows of cut ``run_id``) with ``first_flagged_run``: the first cut that flagged its key.

    The key is (test, group, soc, pt). A row keeps the ``first_flagged_run`` of the same key in ``previous`` (the
    previous cut's table, or None), else gets ``run_id`` when flagged now, else stays empty (pandas ``<NA>``).
    """
    table = table.copy()
    carried = pd.Series(pd.NA, index=table.index, dtype="Int64")
    if previous is not None and not previous.empty:
        earlier = previous.dropna(subset=["first_flagged_run"]).drop_duplicates(SIGNAL_KEY)
        merged = table[SIGNAL_KEY].merge(earlier[[*SIGNAL_KEY, "first_flagged_run"]], on=SIGNAL_KEY, how="left")
        carried = pd.Series(merged["first_flagged_run"].to_numpy(), index=table.index).astype("Int64")
    now = pd.Series(np.where(table["flagged"].to_numpy(dtype=bool), run_id, pd.NA), index=table.index).astype("Int64")
    table["first_flagged_run"] = carried.fillna(now)
    return table


def derive_cut_signals(
    connection: Connection, cut: CutContext, subjects: pd.DataFrame, events: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """Compute and store the signals of cut ``cut`` for each of :data:`STORED_ANALYSES`; return them by analysis.

    ``subjects`` / ``events`` are the cut's derived frames as :func:`safety_dash.analysis.derive_cut` makes them.
    Replaces what was stored for the cut (idempotent).
    """
    tables = compute_stored_signals(cut, subjects, events, read_signal_history(connection, cut))
    store_signal_tables(connection, cut, tables)
    return tables


@dataclass(frozen=True)
class SignalHistory:
    """What the signals of a cut need of the cuts before it: the previous cut (run id, cutoff) or None, and its
    signal table per analysis (for ``first_flagged_run``)."""

    previous: tuple[int, dt.date] | None
    earlier: dict[str, pd.DataFrame]


def read_signal_history(bind, cut: CutContext) -> SignalHistory:
    """The :class:`SignalHistory` of ``cut`` (read before its signals are computed, which reads nothing)."""
    previous = load_previous_cut(bind, cut.run_id)
    earlier = {a: _stored_or_computed(bind, previous[0], a) for a in STORED_ANALYSES} if previous else {}
    return SignalHistory(previous, earlier)


def compute_stored_signals(
    cut: CutContext, subjects: pd.DataFrame, events: pd.DataFrame, history: SignalHistory
) -> dict[str, pd.DataFrame]:
    """The signal tables of ``cut`` for each of :data:`STORED_ANALYSES` (columns :data:`SIGNAL_TABLE_COLUMNS`),
    from its derived frames and its :class:`SignalHistory`; reads and writes nothing."""
    since = compute_rising_since(history.previous, cut.cutoff)
    tables = {}
    for analysis in STORED_ANALYSES:
        table = compute_signals(events, subjects, analysis, GROUP_COLUMN, since, cut.cutoff)
        tables[analysis] = derive_first_flagged(table, history.earlier.get(analysis), cut.run_id)
    return tables


def store_signal_tables(connection: Connection, cut: CutContext, tables: dict[str, pd.DataFrame]) -> None:
    """Replace the stored signals of ``cut`` with ``tables`` (by analysis, as :func:`compute_stored_signals`)."""
    connection.execute(delete(DerivedSignal).where(DerivedSignal.run_id == cut.run_id))
    for analysis, table in tables.items():
        bulk_insert(connection, DerivedSignal.__table__, _signal_rows(table, cut.run_id, analysis))


def load_cut_signals(bind, run_id: int, analysis: str) -> pd.DataFrame | None:
    """The stored signals of cut ``run_id`` for ``analysis`` (columns :data:`SIGNAL_TABLE_COLUMNS`), or None.

    None when nothing is stored (a cut derived before signals were stored). Undefined values are NaN, except that
    ``rate_ratio`` and ``rr_ci_high`` are +inf when x0 = 0 < x1 with time in both parts, as computed.
    """
    table = run_query(bind, "cut_signals", run_id=run_id, analysis=analysis)
    if table.empty:
        return None
    return _restore_types(table)


def _restore_types(table: pd.DataFrame) -> pd.DataFrame:
    for column in ("x1", "x0"):
        table[column] = table[column].astype(np.int64)
    floats = ["py1", "py0", "rate_ratio", "rr_ci_low", "rr_ci_high", "p_one_sided", "q_pt", "q_soc"]
    table[floats] = table[floats].astype(float)
    table["flagged"] = table["flagged"].astype(bool)
    table["first_flagged_run"] = table["first_flagged_run"].astype("Int64")
    infinite = (table["x0"] == 0) & (table["x1"] > 0) & (table["py1"] > 0) & (table["py0"] > 0)
    table.loc[infinite, ["rate_ratio", "rr_ci_high"]] = np.inf
    return table[SIGNAL_TABLE_COLUMNS]


def _stored_or_computed(bind, run_id: int, analysis: str) -> pd.DataFrame:
    stored = load_cut_signals(bind, run_id, analysis)
    if stored is not None:
        return stored
    from safety_dash.analysis import load_cut_context

    return compute_cut_signals(bind, load_cut_context(bind, run_id), analysis)


def compute_cut_signals(
    bind,
    cut: CutContext,
    by: str = "pt",
    group: str | None = None,
    baskets: dict[str, frozenset[str]] | None = None,
    min_grade: int | None = None,
    serious: bool = False,
    related: bool = False,
) -> pd.DataFrame:
    """The signals of a data cut (the ``signals`` command's rows), columns :data:`SIGNAL_TABLE_COLUMNS`.

    The stored table when the variant is stored (``by`` pt or soc, the study's cohorts, no filters) and was
    stored; otherwise computed from the stored derivations of this cut and each earlier cut of the study (for
    ``first_flagged_run``). ``group`` is a DM column (upper-cased) or None for the cohort; raises ``ValueError``
    with a sentence for a column the study's DM lacks.
    """
    stored_variant = by in STORED_ANALYSES and group is None and min_grade is None and not serious and not related
    if stored_variant:
        stored = load_cut_signals(bind, cut.run_id, by)
        if stored is not None:
            return stored
    group_col = GROUP_COLUMN if group is None else group.upper()
    cuts = run_query(bind, "study_cuts", study_id=cut.study_id, run_id=cut.run_id)
    run_ids = [int(r) for r in cuts["run_id"]]
    if cut.run_id not in run_ids:
        run_ids.append(cut.run_id)
    cutoffs = {int(r): pd.Timestamp(c).date() for r, c in zip(cuts["run_id"], cuts["cutoff"], strict=True)}
    cutoffs[cut.run_id] = cut.cutoff
    table, previous = None, None
    for run_id in run_ids:
        subjects, events = load_derived_frames(bind, run_id)
        if group_col not in subjects.columns:
            raise ValueError(f"--group {group} is not a DM column of study {cut.study_id}")
        since = compute_rising_since(previous, cutoffs[run_id])
        current = compute_signals(
            events, subjects, by, group_col, since, cutoffs[run_id], baskets, min_grade, serious, related
        )
        table = derive_first_flagged(current, table, run_id)
        previous = (run_id, cutoffs[run_id])
    return table


def load_signal_trend(bind, study_id: str, run_id: int, test: str, group: str, soc: str, pt: str, analysis: str = "pt"):
    """One stored signal across the study's cuts up to ``run_id``, oldest first.

    Columns: run_id, cutoff, x1, py1, x0, py0, rate_ratio, rr_ci_low, rr_ci_high, p_one_sided, q_pt, q_soc, flagged
    (a cut without the row is absent: the term had no subject in either part then).
    """
    trend = run_query(
        bind,
        "signal_trend",
        study_id=study_id,
        run_id=run_id,
        analysis=analysis,
        test=test,
        group_name=group,
        soc=soc,
        pt=pt,
    )
    trend["flagged"] = trend["flagged"].astype(bool)
    return trend


def _signal_rows(table: pd.DataFrame, run_id: int, analysis: str) -> pd.DataFrame:
    rows = table.rename(columns={"group": "group_name"}).copy()
    rows.insert(0, "analysis", analysis)
    rows.insert(0, "run_id", run_id)
    floats = ["rate_ratio", "rr_ci_low", "rr_ci_high", "p_one_sided", "q_pt", "q_soc"]
    rows[floats] = rows[floats].astype(float).replace([np.inf, -np.inf], np.nan)
    rows["soc"] = rows["soc"].fillna("")
    rows["pt"] = rows["pt"].fillna("")
    return rows
