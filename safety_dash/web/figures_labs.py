"""Plotly figures of the laboratory views (DOMAIN.md §8): ``make_*_figure`` functions that take the numbers of
:mod:`safety_dash.views.labs` and return a figure, as plain JSON dicts like :mod:`safety_dash.web.figures` (whose
colours and layout helpers they share: grades 1 pale to 4 crimson, one colour per cohort wherever it is drawn).

×ULN axes are logarithmic: a value at twice the upper limit of normal is as far above the ULN as one at half of it
is below. Coordinates are rounded to 4 significant digits before they are sent: finer than a marker, and a third
of the bytes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.views.labs import HYS_LAW_X, HYS_LAW_Y, QUADRANTS
from safety_dash.views.ordering import order_groups
from safety_dash.web.figures import (
    ALL_COLOUR,
    COHORT_PALETTE,
    FLAGGED_COLOUR,
    GRADE_COLOURS,
    INK,
    MUTED,
    TOP_LEGEND,
    Figure,
    _date,
    _figure,
    _note,
    _vline,
    cohort_colours,
    make_empty_figure,
)

NOT_GRADED_COLOUR = GRADE_COLOURS["Grade unknown"]
LIVER_TESTS = ("ALT", "AST", "BILI", "ALP")  # drawn by default on a subject's lab panel
THRESHOLD_COLOUR = "#b42318"
LOG_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


def _round(values) -> list:
    """Numbers to 4 significant digits (None for missing): what a point on a screen can show. Vectorised: the
    rounded integer is divided (or multiplied) by an exact power of ten, which gives the double nearest to the
    rounded decimal, so it is written as short as ``f"{v:.4g}"`` would write it."""
    v = np.asarray(values, dtype=float)
    out = np.where(np.isfinite(v), v, np.nan)
    ok = np.isfinite(v) & (v != 0)
    x = v[ok]
    exponent = 3 - np.floor(np.log10(np.abs(x)))
    up = exponent >= 0
    small, large = 10.0 ** np.where(up, exponent, 0), 10.0 ** np.where(up, 0, -exponent)
    out[ok] = np.where(up, np.round(x * small) / small, np.round(x / large) * large)
    return [None if number != number else number for number in out.tolist()]  # NaN != NaN


def _group_label(group: str) -> str:
    return "All cohorts" if group == ALL_GROUP else group


def _log_axis(low: float, high: float, title: str, **extra) -> dict:
    """A logarithmic ×ULN axis from ``low`` to ``high`` with readable ticks (1, 2, 3, 5, 10 ...)."""
    ticks = [t for t in LOG_TICKS if low <= t <= high]
    return {"type": "log", "range": [math.log10(low), math.log10(high)], "tickvals": ticks,
            "ticktext": [f"{t:g}" for t in ticks], "title": {"text": title}, **extra}  # fmt: skip


def _hline(y: float, colour: str, dash: str = "solid", width: float = 1) -> dict:
    return {"type": "line", "xref": "paper", "yref": "y", "x0": 0, "x1": 1, "y0": y, "y1": y,
            "line": {"color": colour, "width": width, "dash": dash}, "layer": "below"}  # fmt: skip


def make_worst_grade_figure(distribution: pd.DataFrame, colours=None) -> Figure:
    """Per group (All cohorts first), % of the subjects with an on-treatment result by worst on-treatment grade
    1-4 and "not graded", stacked; grade 0 is the rest of the bar and not drawn, so that rare grades stay visible."""
    if distribution.empty:
        return make_empty_figure("No subject with an on-treatment result of this test")
    groups = order_groups(distribution["group"])
    n_with_value = distribution.groupby("group")["n_with_value"].first()
    labels = [f"{_group_label(g)} (n={int(n_with_value[g])})" for g in groups][::-1]
    data = []
    for grade in (1, 2, 3, 4, None):
        name = f"Grade {grade}" if grade else "not graded"
        rows = distribution.loc[distribution["grade"].isna() if grade is None else distribution["grade"].eq(grade)]
        rows = rows.set_index("group").reindex(groups[::-1])
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": name,
                "y": labels,
                "x": _round(rows["pct"].fillna(0)),
                "customdata": [int(n) for n in rows["n_subjects"].fillna(0)],
                "marker": {"color": GRADE_COLOURS[name] if grade else NOT_GRADED_COLOUR, "line": {"width": 0}},
                "hovertemplate": "%{y}<br>" + name + ": %{customdata} subjects (%{x:.1f}%)<extra></extra>",
            }
        )
    shares = distribution.loc[distribution["grade"].fillna(5) > 0].groupby("group")["pct"].sum()
    top = float(shares.max()) if len(shares) else 0.0
    return _figure(
        data,
        max(170, 34 * len(groups) + 70),
        legend=dict(TOP_LEGEND, traceorder="normal"),
        barmode="stack",
        bargap=0.3,
        xaxis={"title": {"text": "% of subjects with an on-treatment result (grade 0 not drawn)"},
               "ticksuffix": "%", "range": [0, max(top * 1.15, 5.0)]},
        yaxis={"tickfont": {"size": 11}},
    )  # fmt: skip


def make_lab_box_figure(boxes: pd.DataFrame, points: pd.DataFrame, colours=None) -> Figure:
    """×ULN by visit (in visit order) and cohort: boxes of the quartiles, whiskers at the 5th and 95th percentiles
    (statistics computed on the server: the records are never sent), the ULN marked; grade >= 2 values as points,
    each carrying its subject in ``customdata`` so a click can open the subject."""
    if boxes.empty:
        return make_empty_figure("No value with a reference range to draw for this test")
    colours = colours or cohort_colours(boxes["GROUP"])
    visits = boxes.sort_values("VISIT_ORDER")["VISIT"].drop_duplicates().tolist()
    data = []
    for group in order_groups(boxes["GROUP"]):
        part = boxes.loc[boxes["GROUP"] == group]
        colour = colours.get(group, ALL_COLOUR)
        data.append(
            {"type": "box", "name": group, "x": part["VISIT"].tolist(), "q1": _round(part["Q1"]),
             "median": _round(part["MEDIAN"]), "q3": _round(part["Q3"]), "lowerfence": _round(part["P05"]),
             "upperfence": _round(part["P95"]), "offsetgroup": group, "alignmentgroup": "visits",
             "marker": {"color": colour}, "line": {"color": colour, "width": 1.3}, "fillcolor": "rgba(255,255,255,0)",
             "boxpoints": False, "hoverinfo": "x+y+name"}
        )  # fmt: skip
    for group in order_groups(points["GROUP"]) if len(points) else []:
        # A box trace of the raw points, invisible but for them, shares its cohort's slot beside the visit.
        part = points.loc[points["GROUP"] == group]
        data.append(
            {"type": "box", "name": f"{group}: grade ≥ 2", "x": part["VISIT"].tolist(), "y": _round(part["XULN"]),
             "offsetgroup": group, "alignmentgroup": "visits", "showlegend": False, "boxpoints": "all",
             "jitter": 0.3, "pointpos": 0, "hoveron": "points", "line": {"width": 0}, "whiskerwidth": 0,
             "fillcolor": "rgba(255,255,255,0)",
             "marker": {"size": 8, "color": GRADE_COLOURS["Grade 3"], "symbol": "diamond",
                        "line": {"width": 1.2, "color": colours.get(group, ALL_COLOUR)}},
             "customdata": part["USUBJID"].tolist(),
             "text": [f"{a:.4g} {u} · grade {g} · {pd.Timestamp(d):%Y-%m-%d}" if pd.notna(d) else f"grade {g}"
                      for a, u, g, d in zip(part["AVAL"], part["UNIT"], part["GRADE"], part["ADT"], strict=True)],
             "hovertemplate": "%{customdata}<br>%{y:.2f}×ULN · %{text}<extra></extra>"}
        )  # fmt: skip
    low = float(np.nanmin(boxes["P05"].to_numpy(dtype=float)))
    high = float(np.nanmax(boxes["P95"].to_numpy(dtype=float)))
    if len(points):
        values = points["XULN"].to_numpy(dtype=float)
        low, high = min(low, float(values.min())), max(high, float(values.max()))
    low, high = min(low, 1.0) / 1.4, max(high, 1.0) * 1.4
    return _figure(
        data,
        360,
        boxmode="group",
        boxgroupgap=0.25,
        shapes=[_hline(1, INK, width=1.2)],
        annotations=[{"x": 1, "y": 0, "xref": "paper", "yref": "y", "text": "ULN", "showarrow": False,
                      "xanchor": "right", "yanchor": "bottom", "font": {"size": 10, "color": INK}}],
        xaxis={"type": "category", "categoryorder": "array", "categoryarray": visits, "tickangle": -30,
               "tickfont": {"size": 11}},
        yaxis=_log_axis(low, high, "× ULN (log scale)"),
    )  # fmt: skip


def make_edish_figure(points: pd.DataFrame, groups, colours=None, counts: dict[str, int] | None = None) -> Figure:
    """eDISH: each subject's peak on-treatment ALT or AST ×ULN (x) against peak total bilirubin ×ULN (y) on log
    axes, lines at 3×ULN and 2×ULN, the quadrants named; one colour per cohort, potential Hy's law cases ringed in
    red, each quadrant's subjects counted in its corner (``counts``: every subject, drawn or not). Every point carries
    its subject in ``customdata`` so a click can open the subject."""
    if points.empty:
        return make_empty_figure("No subject with both an on-treatment transaminase and a bilirubin ×ULN", 420)
    colours = colours or cohort_colours(groups)
    data = []
    for group in [g for g in order_groups(groups) if g != ALL_GROUP]:
        part = points.loc[points["GROUP"] == group]
        if part.empty:
            continue
        data.append(
            {"type": "scatter", "mode": "markers", "name": group, "x": _round(part["X"]), "y": _round(part["Y"]),
             "customdata": part["USUBJID"].tolist(),
             "marker": {"size": 7, "opacity": 0.75, "color": colours.get(group, ALL_COLOUR),
                        "line": {"width": 0.5, "color": "white"}},
             "hovertemplate": "%{customdata}<br>peak ALT or AST %{x:.2f}×ULN<br>peak bilirubin %{y:.2f}×ULN"
             "<extra>" + group + "</extra>"}
        )  # fmt: skip
    cases = points.loc[points["HYS_LAW"]]
    if len(cases):
        data.append(
            {"type": "scatter", "mode": "markers", "name": "potential Hy's law case", "x": _round(cases["X"]),
             "y": _round(cases["Y"]), "customdata": cases["USUBJID"].tolist(),
             "marker": {"size": 17, "symbol": "circle-open", "color": FLAGGED_COLOUR, "line": {"width": 2.5}},
             "hovertemplate": "<b>%{customdata}</b>: potential Hy's law case<br>peak ALT or AST %{x:.2f}×ULN"
             "<br>peak bilirubin %{y:.2f}×ULN<extra></extra>"}
        )  # fmt: skip
    x, y = points["X"].to_numpy(dtype=float), points["Y"].to_numpy(dtype=float)
    x_low, x_high = min(float(x.min()), 0.3) / 1.5, max(float(x.max()), 10.0) * 1.5
    y_low, y_high = min(float(y.min()), 0.3) / 1.5, max(float(y.max()), 10.0) * 1.5
    corner = {"xref": "paper", "yref": "paper", "showarrow": False, "font": {"size": 11, "color": MUTED}}
    labels = [f"{name} ({counts[name]:,})" if counts and name in counts else name for name in QUADRANTS]
    names = dict(zip(("upper right", "lower right", "upper left", "lower left"), labels, strict=True))
    notes = [
        dict(corner, x=0.995, y=0.995, xanchor="right", yanchor="top", text=f"<b>{names['upper right']}</b>",
             font={"size": 11, "color": THRESHOLD_COLOUR}),
        dict(corner, x=0.995, y=0.005, xanchor="right", yanchor="bottom", text=names["lower right"]),
        dict(corner, x=0.005, y=0.995, xanchor="left", yanchor="top", text=names["upper left"]),
        dict(corner, x=0.005, y=0.005, xanchor="left", yanchor="bottom", text=names["lower left"]),
        {"x": math.log10(HYS_LAW_X), "y": 1, "xref": "x", "yref": "paper", "text": "3×ULN", "showarrow": False,
         "xanchor": "left", "yanchor": "top", "xshift": 3, "yshift": -18, "font": {"size": 10, "color": MUTED}},
        {"x": 1, "y": math.log10(HYS_LAW_Y), "xref": "paper", "yref": "y", "text": "2×ULN", "showarrow": False,
         "xanchor": "right", "yanchor": "bottom", "yshift": 16, "font": {"size": 10, "color": MUTED}},
    ]  # fmt: skip
    line = {"color": THRESHOLD_COLOUR, "width": 1.3, "dash": "dash"}
    shapes = [
        dict(_vline(HYS_LAW_X, THRESHOLD_COLOUR), line=line),
        dict(_hline(HYS_LAW_Y, THRESHOLD_COLOUR), line=line),
    ]
    shapes += [dict(_vline(1, MUTED), line={"color": "#d0d5dd", "width": 1}), _hline(1, "#d0d5dd")]
    return _figure(
        data,
        460,
        shapes=shapes,
        annotations=notes,
        xaxis=_log_axis(x_low, x_high, "peak on-treatment ALT or AST (× ULN, log scale)"),
        yaxis=_log_axis(y_low, y_high, "peak on-treatment total bilirubin (× ULN, log scale)"),
    )


def make_subject_lab_figure(records: pd.DataFrame, shown, subject: dict, exposure: pd.DataFrame, cutoff,
                            window_days: int) -> Figure:  # fmt: skip
    """One subject's lab values as ×ULN over time, one line per test (the tests in ``shown`` drawn, the others a
    click away in the legend), the ULN, 2× and 3× ULN marked, grade >= 3 values enlarged; infusions as ticks along
    the bottom, the risk window after the last dose shaded and the data cutoff dashed, as on the time line."""
    drawn = records.loc[records["XULN"].notna() & (records["XULN"] > 0)]
    if drawn.empty:
        return make_empty_figure("No laboratory value with a reference range for this subject", 240)
    # Columns as arrays once, then one slice per test (tens of tests, hundreds of values: no pandas per test).
    tests, names = drawn["TEST"].to_numpy(dtype=object), drawn["NAME"].to_numpy(dtype=object)
    days = [None if d != d else int(d) for d in drawn["ADY"].to_numpy(dtype=float)]
    dates = np.datetime_as_string(drawn["ADT"].to_numpy(dtype="datetime64[D]"), unit="D").tolist()
    ratios = _round(drawn["XULN"])
    grade = np.fmax(drawn["GRADE_H"].to_numpy(dtype=float), drawn["GRADE_L"].to_numpy(dtype=float))
    text = [f"{a:.4g} {u} · grade {int(g)}" if g >= 0 else f"{a:.4g} {u}"
            for a, u, g in zip(drawn["AVAL"].to_numpy(dtype=float), drawn["UNIT"], grade, strict=True)]  # fmt: skip
    data, shown = [], set(shown)
    for index, test in enumerate(dict.fromkeys(tests)):
        at = np.flatnonzero(tests == test)
        high = grade[at] >= 3
        data.append(
            {"type": "scatter", "mode": "lines+markers", "name": test, "x": [dates[i] for i in at],
             "y": [ratios[i] for i in at], "text": [text[i] for i in at], "customdata": [days[i] for i in at],
             "visible": True if test in shown else "legendonly",
             "line": {"width": 1.6, "color": COHORT_PALETTE[index % len(COHORT_PALETTE)]},
             "marker": {"size": np.where(high, 11, 6).tolist(),
                        "line": {"width": np.where(high, 2, 0).tolist(), "color": FLAGGED_COLOUR}},
             "hovertemplate": f"<b>{names[at[0]] or test}</b><br>" + "%{x|%Y-%m-%d} (day %{customdata})"
             "<br>%{text} · %{y:.2f}×ULN<extra></extra>"}
        )  # fmt: skip
    shapes = [_hline(1, INK, width=1.2), _hline(2, "#98a2b3", dash="dot"), _hline(3, "#98a2b3", dash="dash")]
    notes = [{"x": 1, "y": math.log10(v), "xref": "paper", "yref": "y", "text": t, "showarrow": False,
              "xanchor": "right", "yanchor": "bottom", "font": {"size": 10, "color": MUTED}}
             for v, t in ((1, "ULN"), (2, "2×ULN"), (3, "3×ULN"))]  # fmt: skip
    dates = pd.to_datetime(drawn["ADT"])  # the lab days, as the x range needs them
    first, last = pd.to_datetime(subject.get("trtsdt")), pd.to_datetime(subject.get("trtedt"))
    window_end, cutoff = pd.to_datetime(subject.get("window_end")), pd.Timestamp(cutoff)
    if pd.notna(last) and pd.notna(window_end) and window_end > last:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": _date(last), "x1": _date(window_end),
                       "y0": 0, "y1": 1, "fillcolor": "#fef0d9", "opacity": 0.6, "line": {"width": 0},
                       "layer": "below"})  # fmt: skip
        notes.append(_note(_date(last), 1.0, f"risk window (last dose + {window_days} d)", "#b54708"))
    doses = pd.to_datetime(exposure["exstdtc"], errors="coerce", format="mixed") if len(exposure) else pd.Series()
    for dose in doses.dropna():
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": _date(dose), "x1": _date(dose),
                       "y0": 0, "y1": 0.06, "line": {"color": "#1f4e79", "width": 2.5}})  # fmt: skip
    known = [t for t in (first, window_end) if pd.notna(t)] + [dates.min(), dates.max()]
    start_x, end_x = min(known) - pd.Timedelta(days=14), max(known) + pd.Timedelta(days=21)
    if start_x <= cutoff <= end_x:
        shapes.append(_vline(_date(cutoff), MUTED, dash="dash"))
    visible = drawn.loc[drawn["TEST"].isin(shown), "XULN"].to_numpy(dtype=float)  # the y range fits the tests drawn
    values = visible if len(visible) else drawn["XULN"].to_numpy(dtype=float)
    low, high = min(float(values.min()), 0.5) / 1.4, max(float(values.max()), 3.5) * 1.4
    return _figure(
        data,
        300,
        legend={"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01},
        margin={"t": 30},
        shapes=shapes,
        annotations=notes,
        xaxis={"type": "date", "range": [_date(start_x), _date(end_x)]},
        yaxis=_log_axis(low, high, "× ULN (log scale)"),
    )
