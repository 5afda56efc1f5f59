"""The committee pack's figures as SVG (vector graphics, text kept as text), drawn with matplotlib.

matplotlib draws an SVG in about 0.2 s without a browser, against about 4 s for the first image of plotly + kaleido
(a Chromium start) and 0.35 s after (measured on the development machine); the pack must render on a server
without a display or a browser. Colours follow the dashboard: one colour per cohort, ALL in dark grey.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from safety_dash.metrics.rates import ALL_GROUP
from safety_dash.report.tables import order_groups

COHORT_PALETTE = (
    "#1f4e79",
    "#2a9d8f",
    "#e76f51",
    "#8e6cc1",
    "#f4a261",
    "#3a86ff",
    "#c44569",
    "#6a994e",
    "#b08968",
    "#577590",
    "#ef476f",
    "#118ab2",
)
ALL_COLOUR = "#344054"
FONT_FAMILY = ["Liberation Sans", "DejaVu Sans"]
FIGURE_SIZE_INCHES = (10.0, 3.3)
STYLE = {"svg.fonttype": "none", "font.family": FONT_FAMILY, "svg.hashsalt": "safety-dash", "font.size": 8}


def cohort_colours(groups) -> dict[str, str]:
    """One colour per cohort in natural order (as the dashboard colours them), ALL in dark grey."""
    names = [g for g in order_groups(groups) if g != ALL_GROUP]
    colours = {name: COHORT_PALETTE[i % len(COHORT_PALETTE)] for i, name in enumerate(names)}
    colours[ALL_GROUP] = ALL_COLOUR
    return colours


def _new_axes(size=FIGURE_SIZE_INCHES):
    from matplotlib.figure import Figure

    figure = Figure(figsize=size)
    axes = figure.subplots()
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    axes.grid(True, color="#eaecf0", linewidth=0.6)
    axes.set_axisbelow(True)
    axes.tick_params(labelsize=8, colors="#344054")
    return figure, axes


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _styled(draw):
    """Run ``draw`` (which builds a figure and returns its SVG) with the pack's matplotlib style: the fonts the
    PDF uses, text kept as text, no time stamp, the same output for the same input."""

    def wrapper(*args, **kwargs) -> str:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    wrapper.__doc__, wrapper.__name__ = draw.__doc__, draw.__name__
    return wrapper


@_styled
def make_cumulative_incidence_svg(
    curves: pd.DataFrame,
    title: str,
    label_column: str = "group",
    colours: dict[str, str] | None = None,
    window_days: int = 90,
) -> str:
    """Step lines of the Aalen–Johansen cumulative incidence (%) by day since the first dose, one per value of
    ``label_column`` (a cohort, or a basket); ALL drawn thicker. ``curves`` is
    :func:`~safety_dash.metrics.onset.compute_cumulative_incidence` output (one label's rows per line)."""
    figure, axes = _new_axes()
    labels = (
        order_groups(curves[label_column]) if label_column == "group" else list(dict.fromkeys(curves[label_column]))
    )
    palette = colours or {}
    for index, label in enumerate(labels):
        part = _steps(curves.loc[curves[label_column] == label].sort_values("day"))
        if part.empty:
            continue
        colour = palette.get(label) or (ALL_COLOUR if label == ALL_GROUP else COHORT_PALETTE[index % 12])
        axes.step(
            part["day"],
            100 * part["cumulative_incidence"],
            where="post",
            color=colour,
            linewidth=2.2 if label == ALL_GROUP else 1.3,
            label="All cohorts" if label == ALL_GROUP else label,
        )
    axes.set_xlabel(f"Days since first dose (risk window: last dose + {window_days} days)", fontsize=8.5)
    axes.set_ylabel("Cumulative incidence (%)", fontsize=8.5)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_title(title, fontsize=9.5, loc="left", color="#1d2939")
    axes.legend(fontsize=7.5, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    return _svg(figure)


def _steps(part: pd.DataFrame) -> pd.DataFrame:
    """The points of a step curve where its value changes, and its last point: the same drawing, a fraction of the
    points (a curve has a row for every day on which a subject leaves the risk set)."""
    values = part["cumulative_incidence"].to_numpy()
    keep = np.ones(len(values), dtype=bool)
    keep[1:] = values[1:] != values[:-1]
    if len(keep):
        keep[-1] = True
    return part.loc[keep]


@_styled
def make_eair_forest_svg(rates: pd.DataFrame, title: str, colours: dict[str, str] | None = None) -> str:
    """EAIR per 100 PY with its exact 95% interval per group (rows of one term of a rate table), a dot and a line
    each, cohorts from the top in natural order and ALL last."""
    groups = order_groups(rates["group"])
    figure, axes = _new_axes((9.6, 0.5 + 0.28 * max(len(groups), 3)))
    palette = colours or cohort_colours(rates["group"])
    for row, group in enumerate(reversed(groups)):
        item = rates.loc[rates["group"] == group].iloc[0]
        colour = palette.get(group, ALL_COLOUR)
        axes.plot([item["eair_ci_low"], item["eair_ci_high"]], [row, row], color=colour, linewidth=1.4)
        axes.plot([item["eair_per_100py"]], [row], "o", color=colour, markersize=4.5)
    axes.set_yticks(range(len(groups)), ["All cohorts" if g == ALL_GROUP else g for g in reversed(groups)], fontsize=8)
    axes.set_xlabel("EAIR per 100 patient-years (exact 95% CI)", fontsize=8.5)
    axes.set_xlim(left=0)
    axes.set_title(title, fontsize=9.5, loc="left", color="#1d2939")
    figure.tight_layout()
    return _svg(figure)
