"""Plotly figures of the views: ``make_*_figure`` functions that take the numbers and return a figure.

Figures are plain Plotly JSON dicts (``{"data": [...], "layout": {...}}``), not ``plotly.graph_objects``: the
graph objects validate every property on every call, which cost 30-70 ms per figure, more than the numbers behind
it. No data is read here. Colours say the same thing on every page: CTCAE grade 1 (pale) to 5 (dark red), grey
for an unknown grade; each cohort keeps one colour wherever it is drawn.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.views.ordering import natural_key, order_groups

Figure = dict[str, Any]

FONT = "Inter, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
INK, MUTED, GRID, ACCENT = "#1d2939", "#667085", "#eaecf0", "#1f4e79"
# Neighbouring grades differ in lightness as well as hue (grade 3 orange, 4 crimson, 5 near-black red), so
# they stay apart for readers who do not tell orange from red and on a grey print.
GRADE_COLOURS = {
    "Grade 1": "#c6dbef",
    "Grade 2": "#6baed6",
    "Grade 3": "#f16913",
    "Grade 4": "#a50026",
    "Grade 5": "#4d0011",
    "Grade unknown": "#bdbdbd",
}
COHORT_PALETTE = (
    "#1f4e79", "#2a9d8f", "#e76f51", "#8e6cc1", "#f4a261", "#3a86ff", "#c44569", "#6a994e", "#b08968", "#577590",
    "#ef476f", "#118ab2",
)  # fmt: skip
ALL_COLOUR = "#344054"
TOP_LEGEND = {"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "left", "x": 0}
SIDE_LEGEND = {"orientation": "v", "yanchor": "top", "y": 1.0, "xanchor": "left", "x": 1.01}
MODEBAR_BAND = 32  # px at the top of every figure kept free for the mode bar (its buttons are ~26 px tall)
LEGEND_ROW_HEIGHT = 22  # px per row of a legend above the plot
LEGEND_ENTRIES_PER_ROW = 4  # entries a row holds in a half-width panel (a grade legend takes two rows)
AXIS = {"gridcolor": GRID, "zerolinecolor": GRID, "linecolor": GRID, "automargin": True, "ticks": ""}


def cohort_colours(groups) -> dict[str, str]:
    """One colour per cohort (stable for a set of cohorts: pass every cohort of the cut), ALL in dark grey."""
    names = [g for g in order_groups(groups) if g != ALL_GROUP]
    colours = {name: COHORT_PALETTE[i % len(COHORT_PALETTE)] for i, name in enumerate(names)}
    colours[ALL_GROUP] = ALL_COLOUR
    return colours


def _list(values) -> list:
    """JSON-ready values: numbers as floats (NaN as None), dates as ISO text, anything else as it is."""
    series = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(series):
        return [None if pd.isna(v) else v.strftime("%Y-%m-%d") for v in series]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        numbers = series.astype("float64")
        return [None if np.isnan(v) else float(v) for v in numbers]
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in series.tolist()]


def _columns(*columns) -> list[list]:
    """Rows of ``customdata`` from columns."""
    return [list(row) for row in zip(*(_list(c) for c in columns), strict=True)]


def _legend_entries(data: list[dict]) -> int:
    """How many entries Plotly's legend shows: named traces not hidden from it, when there are two or more."""
    named = [t for t in data if t.get("name") and t.get("showlegend", True) is not False]
    return len(named) if len(named) >= 2 or any(t.get("showlegend") is True for t in data) else 0


def top_margin(data: list[dict], legend: dict, asked: int = 0) -> int:
    """The top margin of a figure: :data:`MODEBAR_BAND` kept free for Plotly's mode bar (drawn over the top right
    corner on hover) and, for a legend above the plot, its rows below that band, so the mode bar never covers a
    legend entry or the data."""
    top = max(asked, MODEBAR_BAND)
    if legend.get("orientation") == "h" and legend.get("y", 0) >= 1:  # a legend above the plot
        rows = math.ceil(_legend_entries(data) / LEGEND_ENTRIES_PER_ROW)
        top = max(asked, MODEBAR_BAND + rows * LEGEND_ROW_HEIGHT + 4)
    return top


def _figure(data: list[dict], height: int, legend: dict | None = None, **layout) -> Figure:
    legend = legend or TOP_LEGEND
    margin = {"l": 10, "r": 20, "t": 30 if legend is SIDE_LEGEND else 10, "b": 40}
    margin.update(layout.pop("margin", {}))
    asked = margin["t"]
    margin["t"] = top_margin(data, legend, asked)
    base = {
        "height": height + margin["t"] - asked,  # the band adds to the figure, the plot keeps its height
        "font": {"family": FONT, "size": 12, "color": INK},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "margin": margin,
        "hoverlabel": {"font": {"family": FONT}},
        "legend": legend,
        "xaxis": dict(AXIS, **layout.pop("xaxis", {})),
        "yaxis": dict(AXIS, **layout.pop("yaxis", {})),
    }
    base.update(layout)
    return {"data": data, "layout": base}


def _vline(x, colour: str, width: float = 1, dash: str = "solid") -> dict:
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": colour, "width": width, "dash": dash}}  # fmt: skip


def _note(x, y, text: str, colour: str, xanchor: str = "left", yanchor: str = "bottom") -> dict:
    return {"x": x, "y": y, "xref": "x", "yref": "paper", "text": text, "showarrow": False,
            "xanchor": xanchor, "yanchor": yanchor, "font": {"size": 10, "color": colour}}  # fmt: skip


def _date(value) -> str:
    return pd.Timestamp(value).strftime("%Y-%m-%d")


def _short(text: str, width: int) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def make_empty_figure(message: str, height: int = 260) -> Figure:
    """A blank figure carrying ``message`` in its middle (instead of a blank graph)."""
    note = {"text": message, "showarrow": False, "font": {"size": 14, "color": MUTED}, "x": 0.5, "y": 0.5,
            "xref": "paper", "yref": "paper"}  # fmt: skip
    hidden = {"visible": False}
    return _figure([], height, annotations=[note], xaxis=hidden, yaxis=hidden)


def make_grade_bar_figure(table: pd.DataFrame, grades: tuple[str, ...], selected: str | None, limit: int = 30):
    """Horizontal bars of % subjects with an event per term, stacked by worst grade; the selected term stands out.

    ``table`` holds term, n_subjects, n_with_event, incidence_pct and a count column per grade. Each bar carries its
    term first in ``customdata`` so a click can select it.
    """
    if table.empty:
        return make_empty_figure("No qualifying event with these filters")
    shown = table.head(limit).iloc[::-1]
    labels = [_short(term, 48) for term in shown["term"]]
    opacity = [1.0 if selected in (None, term) else 0.35 for term in shown["term"]]
    n_population = shown["n_subjects"].replace(0, np.nan)
    data = []
    for grade in grades:
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": grade,
                "y": labels,
                "x": _list(100.0 * shown[grade] / n_population),
                "marker": {"color": GRADE_COLOURS[grade], "opacity": opacity, "line": {"width": 0}},
                "customdata": _columns(shown["term"], shown[grade], shown["n_with_event"], shown["incidence_pct"]),
                "hovertemplate": "<b>%{customdata[0]}</b><br>" + grade + ": %{customdata[1]} subjects (%{x:.1f}%)"
                "<br>any grade: %{customdata[2]} (%{customdata[3]:.1f}%)<extra></extra>",
            }
        )
    totals = shown["incidence_pct"].to_numpy(dtype=float)
    data.append(
        {
            "type": "scatter",
            "mode": "text",
            "y": labels,
            "x": _list(totals),
            "text": [f"{v:.1f}%" for v in totals],
            "textposition": "middle right",
            "textfont": {"size": 11, "color": MUTED},
            "customdata": _columns(shown["term"]),
            "hoverinfo": "skip",
            "showlegend": False,
        }
    )
    return _figure(
        data,
        max(220, 26 * len(shown) + 90),
        legend=dict(TOP_LEGEND, traceorder="normal"),
        barmode="stack",
        bargap=0.28,
        margin={"t": 34},
        xaxis={"title": {"text": "% of subjects (worst grade)"}, "ticksuffix": "%",
               "range": [0, max(float(np.nanmax(totals)) * 1.18, 5)]},
        yaxis={"tickfont": {"size": 11}},
    )  # fmt: skip


def _error_x(high, centre, low) -> dict:
    return {"type": "data", "symmetric": False, "array": _list(high - centre), "arrayminus": _list(centre - low),
            "color": "#98a2b3", "thickness": 1.6, "width": 4}  # fmt: skip


def make_forest_figure(rates: pd.DataFrame, reference: str | None, title: str, colours=None) -> Figure:
    """EAIR per 100 patient-years with its exact 95% interval per cohort (ALL on top), the reference marked."""
    if rates.empty:
        return make_empty_figure("No qualifying event of this term in this cut")
    order = order_groups(rates["group"])[::-1]
    frame = rates.set_index("group").loc[order].reset_index()
    colours = colours or cohort_colours(frame["group"])
    labels = [
        f"{g}  ({int(x)}/{int(n)})"
        for g, x, n in zip(frame["group"], frame["n_with_event"], frame["n_subjects"], strict=True)
    ]
    symbols = ["diamond" if g == ALL_GROUP else ("square" if g == reference else "circle") for g in frame["group"]]
    sizes = np.clip(6 + np.sqrt(frame["n_with_event"].to_numpy(dtype=float)) * 1.6, 7, 22)
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": _list(frame["eair_per_100py"]),
        "y": labels,
        "marker": {"size": _list(sizes), "color": [colours.get(g, ALL_COLOUR) for g in frame["group"]],
                   "symbol": symbols, "line": {"width": 1, "color": "white"}},
        "error_x": _error_x(frame["eair_ci_high"], frame["eair_per_100py"], frame["eair_ci_low"]),
        "customdata": _columns(frame["group"], frame["n_with_event"], frame["n_subjects"],
                               frame["patient_years_at_risk"], frame["eair_ci_low"], frame["eair_ci_high"],
                               frame["incidence_pct"]),
        "hovertemplate": "<b>%{customdata[0]}</b><br>EAIR %{x:.1f} per 100 PY (95% CI %{customdata[4]:.1f}–"
        "%{customdata[5]:.1f})<br>%{customdata[1]} of %{customdata[2]} subjects · %{customdata[3]:.1f} PY at risk"
        "<br>crude incidence %{customdata[6]:.1f}%<extra></extra>",
        "showlegend": False,
    }  # fmt: skip
    overall = frame.loc[frame["group"] == ALL_GROUP, "eair_per_100py"]
    shapes = [_vline(float(overall.iloc[0]), "#98a2b3", dash="dot")] if not overall.empty else []
    return _figure(
        [trace],
        max(260, 34 * len(frame) + 70),
        shapes=shapes,
        xaxis={"title": {"text": f"{title}: EAIR per 100 patient-years (exact 95% CI)"}, "rangemode": "tozero"},
    )


def make_rate_difference_figure(difference: pd.DataFrame, reference: str, colours=None) -> Figure:
    """EAIR difference to ``reference`` per cohort with Miettinen–Nurminen 95% intervals; 0 marked."""
    if difference.empty:
        return make_empty_figure("No rate difference to show", height=220)
    order = [g for g in order_groups(difference["group"]) if g in set(difference["group"])][::-1]
    frame = difference.set_index("group").loc[order].reset_index()
    colours = colours or cohort_colours(list(frame["group"]) + [reference])
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": _list(frame["eair_difference_per_100py"]),
        "y": list(frame["group"]),
        "marker": {"size": 10, "color": [colours.get(g, ALL_COLOUR) for g in frame["group"]]},
        "error_x": _error_x(frame["mn_ci_high"], frame["eair_difference_per_100py"], frame["mn_ci_low"]),
        "customdata": _columns(frame["group"], frame["mn_ci_low"], frame["mn_ci_high"], frame["mn_z"]),
        "hovertemplate": "<b>%{customdata[0]}</b> − " + reference + "<br>%{x:+.1f} per 100 PY "
        "(MN 95% CI %{customdata[1]:.1f} to %{customdata[2]:.1f}; z = %{customdata[3]:.2f})<extra></extra>",
        "showlegend": False,
    }
    return _figure(
        [trace],
        max(220, 32 * len(frame) + 70),
        shapes=[_vline(0, INK)],
        xaxis={"title": {"text": f"EAIR difference to {reference} per 100 PY (Miettinen–Nurminen 95% CI)"}},
    )


def _band(x, low, high, fill: str, shape: str = "linear") -> dict:
    """A shaded interval between ``low`` and ``high`` along ``x``."""
    return {"type": "scatter", "mode": "lines", "x": _list(x) + _list(x)[::-1], "y": _list(high) + _list(low)[::-1],
            "fill": "toself", "fillcolor": fill, "line": {"width": 0, "shape": shape}, "hoverinfo": "skip",
            "showlegend": False}  # fmt: skip


def make_rate_trend_figure(trend: pd.DataFrame, cohort: str | None, colours=None) -> Figure:
    """EAIR per cohort at each data cut (x = cutoff date), with the 95% interval as a band for one cohort / ALL."""
    if trend.empty:
        return make_empty_figure("No earlier cut to compare with", height=260)
    groups = [cohort] if cohort else order_groups(trend["group"])
    colours = colours or cohort_colours(trend["group"])
    data = []
    for group in groups:
        part = trend.loc[trend["group"] == group].sort_values("cutoff")
        if part.empty:
            continue
        if cohort or group == ALL_GROUP:
            data.append(_band(part["cutoff"], part["eair_ci_low"], part["eair_ci_high"], "rgba(52,64,84,0.08)"))
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": group,
                "x": _list(part["cutoff"]),
                "y": _list(part["eair_per_100py"]),
                "line": {"color": colours.get(group, ALL_COLOUR), "width": 3 if group == ALL_GROUP else 2},
                "customdata": _columns(part["n_with_event"], part["n_subjects"], part["run_id"]),
                "hovertemplate": "<b>" + group + "</b><br>cut %{customdata[2]} (%{x|%Y-%m-%d})<br>EAIR %{y:.1f} per"
                " 100 PY<br>%{customdata[0]} of %{customdata[1]} subjects<extra></extra>",
            }
        )
    return _figure(
        data,
        300,
        legend=SIDE_LEGEND,
        xaxis={"title": {"text": "data cutoff"}, "type": "date"},
        yaxis={"title": {"text": "EAIR per 100 PY"}, "rangemode": "tozero"},
    )


def make_cumulative_incidence_figure(curves: pd.DataFrame, cohort: str | None, window_days: int, colours=None):
    """Aalen–Johansen cumulative incidence (death as competing event) by onset day, one step line per cohort; with
    one cohort (or ALL) named, its pointwise 95% interval as a band."""
    if curves.empty:
        return make_empty_figure("No subject to estimate a curve for")
    groups = [cohort] if cohort else order_groups(curves["group"])
    colours = colours or cohort_colours(curves["group"])
    data = []
    for group in groups:
        part = curves.loc[curves["group"] == group]
        if part.empty:
            continue
        if cohort:
            band = part.dropna(subset=["ci_low", "ci_high"])
            data.append(_band(band["day"], 100 * band["ci_low"], 100 * band["ci_high"], "rgba(31,78,121,0.12)", "hv"))
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": group,
                "x": _list(part["day"]),
                "y": _list(100 * part["cumulative_incidence"]),
                "line": {
                    "shape": "hv",
                    "color": colours.get(group, ALL_COLOUR),
                    "width": 3 if group == ALL_GROUP else 2,
                },
                "hovertemplate": "<b>" + group + "</b><br>day %{x}: %{y:.1f}%<extra></extra>",
            }
        )
    return _figure(
        data,
        360,
        legend=SIDE_LEGEND,
        xaxis={"title": {"text": f"days since first dose (risk window: last dose + {window_days} days)"},
               "rangemode": "tozero"},
        yaxis={"title": {"text": "cumulative incidence"}, "ticksuffix": "%", "rangemode": "tozero"},
    )  # fmt: skip


def make_onset_distribution_figure(points: pd.DataFrame, cohort: str | None, colours=None) -> Figure:
    """First onset day per subject by cohort: a box with every subject as a point (click one to open the subject)."""
    if points.empty:
        return make_empty_figure("No subject with a qualifying event")
    groups = [cohort] if cohort else order_groups(points["GROUP"])
    colours = colours or cohort_colours(points["GROUP"])
    data = []
    for group in groups[::-1]:
        part = points.loc[points["GROUP"] == group]
        if part.empty:
            continue
        colour = colours.get(group, ALL_COLOUR)
        data.append(
            {
                "type": "box",
                "orientation": "h",
                "name": group,
                "x": _list(part["FIRST_ONSET_DAY"]),
                "y": [group] * len(part),
                "boxpoints": "all",
                "jitter": 0.45,
                "pointpos": 0,
                "marker": {"size": 5, "opacity": 0.7, "color": colour},
                "line": {"width": 1.3, "color": colour},
                "fillcolor": "rgba(255,255,255,0)",
                "customdata": list(part["USUBJID"]),
                "hovertemplate": "%{customdata}<br>first onset day %{x}<extra></extra>",
                "showlegend": False,
            }
        )
    return _figure(
        data,
        max(260, 38 * len(groups) + 80),
        xaxis={"title": {"text": "onset day of the first qualifying event"}, "rangemode": "tozero"},
    )


def make_cohort_incidence_figure(by_cohort: pd.DataFrame) -> Figure:
    """% of dosed subjects with a TEAE, an immune-related, a grade >= 3 and a serious event, per cohort."""
    if by_cohort.empty:
        return make_empty_figure("No subject dosed")
    frame = by_cohort.set_index("cohort").loc[sorted(by_cohort["cohort"], key=natural_key)[::-1]].reset_index()
    series = [
        ("teae", "any TEAE", "#c6dbef"),
        ("immune", "immune-related", "#6baed6"),
        ("grade3", "grade ≥ 3", GRADE_COLOURS["Grade 3"]),
        ("serious", "serious", "#a50f15"),
    ]
    labels = [f"{c}  (N={n})" for c, n in zip(frame["cohort"], frame["n_dosed"], strict=True)]
    data = []
    for column, label, colour in series[::-1]:  # horizontal groups draw the first trace lowest
        data.append(
            {
                "type": "bar",
                "orientation": "h",
                "name": label,
                "y": labels,
                "x": _list(100.0 * frame[column] / frame["n_dosed"].replace(0, np.nan)),
                "marker": {"color": colour},
                "customdata": _list(frame[column]),
                "hovertemplate": "%{y}<br>" + label + ": %{customdata} subjects (%{x:.1f}%)<extra></extra>",
            }
        )
    return _figure(
        data,
        max(420, 56 * len(frame) + 90),
        legend=dict(TOP_LEGEND, traceorder="reversed"),
        barmode="group",
        bargap=0.22,
        bargroupgap=0.04,
        xaxis={"title": {"text": "% of dosed subjects"}, "ticksuffix": "%", "range": [0, 100]},
    )


def make_subject_timeline_figure(subject: dict, exposure: pd.DataFrame, events: pd.DataFrame, cutoff, window_days):
    """One subject's course: infusions as ticks, AEs as bars coloured by grade, the risk window after the last dose
    shaded, death marked, the data cutoff drawn when it falls in view."""
    first, last = pd.to_datetime(subject.get("trtsdt")), pd.to_datetime(subject.get("trtedt"))
    death, window_end = pd.to_datetime(subject.get("dthdt")), pd.to_datetime(subject.get("window_end"))
    cutoff = pd.Timestamp(cutoff)
    rows = [f"{seq} · {_short(pt, 34)}" for seq, pt in zip(events["AESEQ"], events["PT"], strict=True)]
    lanes = ["Infusions", *rows]
    data, shapes, notes = [], [], []
    if pd.notna(last) and pd.notna(window_end) and window_end > last:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": _date(last), "x1": _date(window_end),
                       "y0": 0, "y1": 1, "fillcolor": "#fef0d9", "opacity": 0.7, "line": {"width": 0},
                       "layer": "below"})  # fmt: skip
        notes.append(_note(_date(last), 1.0, f"risk window (last dose + {window_days} d)", "#b54708"))
    if not exposure.empty:
        start = pd.to_datetime(exposure["exstdtc"], errors="coerce", format="mixed")
        doses = [
            f"{d:g} {u}".strip() if pd.notna(d) else ""
            for d, u in zip(exposure["exdose"], exposure["exdosu"].fillna(""), strict=True)
        ]
        data.append({"type": "scatter", "mode": "markers", "name": "infusion", "x": _list(start),
                     "y": ["Infusions"] * len(start),
                     "marker": {"symbol": "line-ns", "size": 16, "line": {"width": 3, "color": ACCENT}},
                     "customdata": _columns(exposure["extrt"].fillna(""), doses),
                     "hovertemplate": "%{x|%Y-%m-%d}: %{customdata[0]} %{customdata[1]}<extra></extra>"})  # fmt: skip
    onset = pd.to_datetime(events["ASTDT"])
    ended = events["AEENDTC"].where(events["AEENDTC"].str.len() >= 10)
    end = pd.to_datetime(ended, errors="coerce").fillna(cutoff)
    end = end.where(end >= onset, onset) + pd.Timedelta(days=1)
    for grade_label, colour in GRADE_COLOURS.items():
        grade_value = None if grade_label == "Grade unknown" else int(grade_label[-1])
        mask = events["GRADE"].isna() if grade_value is None else events["GRADE"].eq(grade_value).fillna(False)
        mask = mask.to_numpy(dtype=bool)
        if not mask.any():
            continue
        part = events.loc[mask]
        duration_ms = (end[mask] - onset[mask]).dt.total_seconds() * 1000
        data.append({"type": "bar", "orientation": "h", "name": grade_label, "base": _list(onset[mask]),
                     "x": _list(duration_ms), "y": [rows[i] for i in np.flatnonzero(mask)],
                     "marker": {"color": colour, "line": {"width": 0}},
                     "customdata": _columns(part["PT"], part["AETERM"], onset[mask], part["AEENDTC"], part["SERIOUS"],
                                            part["FLAGS"]),
                     "hovertemplate": "<b>%{customdata[0]}</b> (%{customdata[1]})<br>%{customdata[2]} → "
                     "%{customdata[3]}<br>serious: %{customdata[4]}<br>%{customdata[5]}<extra>" + grade_label
                     + "</extra>"})  # fmt: skip
    if pd.notna(death):
        shapes.append(_vline(_date(death), "#101828", width=2))
        data.append({"type": "scatter", "mode": "markers+text", "name": "death", "x": [_date(death)],
                     "y": ["Infusions"], "text": ["death"], "textposition": "middle right",
                     "marker": {"symbol": "x-thin", "size": 14, "line": {"width": 3, "color": "#101828"}},
                     "hovertemplate": "death %{x|%Y-%m-%d}<extra></extra>"})  # fmt: skip
    # Show the subject's course, not the whole study: from a little before the first dose or event to a little after
    # the last thing known (end of the risk window, death, last AE end); the cutoff line only when it falls inside.
    known = [t for t in (first, window_end, death) if pd.notna(t)] + list(onset.dropna()) + list(end.dropna())
    if pd.isna(window_end):
        known.append(cutoff)
    start_x = min(known) - pd.Timedelta(days=14)
    end_x = max(known) + pd.Timedelta(days=21)
    if start_x <= cutoff <= end_x:
        shapes.append(_vline(_date(cutoff), MUTED, dash="dash"))
        notes.append(_note(_date(cutoff), 0, "data cutoff", MUTED, xanchor="right"))
    return _figure(
        data,
        max(240, 30 * len(lanes) + 90),
        barmode="overlay",
        bargap=0.35,
        shapes=shapes,
        annotations=notes,
        xaxis={"type": "date", "range": [_date(start_x), _date(end_x)]},
        yaxis={"categoryorder": "array", "categoryarray": lanes[::-1], "tickfont": {"size": 11}},
    )


FLAGGED_COLOUR = "#b42318"  # a flagged signal (the alerts' red)


def _ratio_edges(values: np.ndarray) -> tuple[float, float]:
    """The x range of a rate-ratio plot (log scale): every finite positive value and 1, with room either side."""
    finite = values[np.isfinite(values) & (values > 0)]
    low = min(float(finite.min()) if len(finite) else 1.0, 1.0)
    high = max(float(finite.max()) if len(finite) else 1.0, 1.0)
    return low / 1.6, high * 1.6


def make_signal_forest_figure(rows: pd.DataFrame, selected: str | None = None) -> Figure:
    """Rate ratios of signal rows (the first on top) with their exact 95% intervals on a log scale, 1 marked;
    flagged rows in red, the selected one ringed. An infinite ratio or bound (no subject in x0) is drawn at the right
    edge as an arrow, a ratio of 0 (no subject in x1) at the left edge. Each point carries its row key first in
    ``customdata`` so a click can select it."""
    if rows.empty:
        return make_empty_figure("No signal row to draw", height=240)
    frame = rows.iloc[::-1].reset_index(drop=True)
    estimate, low, high = (frame[c].to_numpy(dtype=float) for c in ("rate_ratio", "rr_ci_low", "rr_ci_high"))
    left, right = _ratio_edges(np.concatenate([estimate, low, high]))
    # An infinite ratio or a ratio of 0 sits just inside its edge, where its arrow stays whole.
    x = np.where(np.isposinf(estimate), right / 1.25, np.where(estimate <= 0, left * 1.25, estimate))
    upper = np.where(np.isposinf(high), right, np.maximum(high, x))
    lower = np.where(np.isnan(low) | (low <= 0), left, np.minimum(low, x))
    symbols = [
        "triangle-right" if np.isposinf(e) else "triangle-left" if e == 0 else "diamond" if f else "circle"
        for e, f in zip(estimate, frame["flagged"], strict=True)
    ]
    is_selected = (frame["key"] == selected).to_numpy() if selected else np.zeros(len(frame), bool)
    labels = [
        f"{_short(pt, 26)} · {_short(group, 16)} · {test.lower()}"
        for pt, group, test in zip(frame["pt"], frame["group_label"], frame["test_label"], strict=True)
    ]
    trace = {
        "type": "scatter",
        "mode": "markers",
        "x": _list(x),
        "y": labels,
        "marker": {"size": [13 if s else 9 for s in is_selected],
                   "color": [FLAGGED_COLOUR if f else ACCENT for f in frame["flagged"]], "symbol": symbols,
                   "line": {"width": [2.5 if s else 1 for s in is_selected],
                            "color": [INK if s else "white" for s in is_selected]}},
        "error_x": _error_x(pd.Series(upper), pd.Series(x), pd.Series(lower)),
        "customdata": _columns(frame["key"], frame["pt"], frame["test_label"], frame["group_label"], frame["rr_text"],
                               frame["x1"], frame["py1"], frame["x0"], frame["py0"], frame["p_one_sided"],
                               frame["q_pt"], frame["flagged"].map({True: "flagged", False: "not flagged"})),
        "hovertemplate": "<b>%{customdata[1]}</b> · %{customdata[2]} · %{customdata[3]}<br>rate ratio "
        "%{customdata[4]}<br>x₁ %{customdata[5]} / %{customdata[6]:.1f} PY against x₀ %{customdata[7]} / "
        "%{customdata[8]:.1f} PY<br>p %{customdata[9]:.2g} · q %{customdata[10]:.2g} · %{customdata[11]}"
        "<extra></extra>",
        "showlegend": False,
    }  # fmt: skip
    ticks = [v for v in (0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300, 1000) if left <= v <= right]
    return _figure(
        [trace],
        max(260, 28 * len(frame) + 80),
        shapes=[_vline(1, INK)],
        xaxis={"type": "log", "range": [math.log10(left), math.log10(right)], "tickvals": ticks,
               "ticktext": [f"{v:g}" for v in ticks], "title": {"text": "rate ratio with exact 95% CI (log scale)"}},
        yaxis={"tickfont": {"size": 11}},
    )  # fmt: skip


def make_signal_trend_figure(trend: pd.DataFrame, x1_label: str, x0_label: str) -> Figure:
    """One signal at each data cut: x1 per 100 PY1 and x0 per 100 PY0 (x = cutoff), the cuts that flagged it
    ringed in red."""
    if trend.empty:
        return make_empty_figure("The signal has no row in any cut", height=240)
    frame = trend.sort_values("run_id")
    with np.errstate(divide="ignore", invalid="ignore"):
        rate1 = np.where(frame["py1"] > 0, 100.0 * frame["x1"] / frame["py1"], np.nan)
        rate0 = np.where(frame["py0"] > 0, 100.0 * frame["x0"] / frame["py0"], np.nan)
    flagged = frame["flagged"].to_numpy(dtype=bool)
    data = []
    parts = ((x0_label, rate0, "x0", "py0", "#98a2b3"), (x1_label, rate1, "x1", "py1", ACCENT))
    for name, rate, x, py, colour in parts:
        data.append({"type": "scatter", "mode": "lines+markers", "name": name, "x": _list(frame["cutoff"]),
                     "y": _list(rate), "line": {"color": colour, "width": 2.5 if x == "x1" else 1.5},
                     "marker": {"size": 8, "color": colour},
                     "customdata": _columns(frame["run_id"], frame[x], frame[py]),
                     "hovertemplate": "cut %{customdata[0]} (%{x|%Y-%m-%d})<br>" + name + ": %{customdata[1]} "
                     "subjects / %{customdata[2]:.1f} PY = %{y:.1f} per 100 PY<extra></extra>"})  # fmt: skip
    if flagged.any():
        data.append({"type": "scatter", "mode": "markers", "name": "flagged", "x": _list(frame["cutoff"][flagged]),
                     "y": _list(rate1[flagged]), "marker": {"size": 15, "color": "rgba(0,0,0,0)",
                     "line": {"width": 2.5, "color": FLAGGED_COLOUR}}, "hoverinfo": "skip"})  # fmt: skip
    return _figure(
        data,
        260,
        legend=SIDE_LEGEND,
        xaxis={"title": {"text": "data cutoff"}, "type": "date", "tickvals": _list(frame["cutoff"]),
               "tickformat": "%Y-%m-%d"},
        yaxis={"title": {"text": "subjects per 100 PY"}, "rangemode": "tozero"},
    )  # fmt: skip
