"""The figures' colours and room: neighbouring CTCAE grades are told apart, and the mode bar gets a band of its own
above every legend (the browser test in test_pages_browser.py measures it on the pages)."""

from __future__ import annotations

import pandas as pd
import pytest

from safety_dash.web.figures import (
    ACCENT,
    FLAGGED_COLOUR,
    GRADE_COLOURS,
    LEGEND_ROW_HEIGHT,
    MODEBAR_BAND,
    make_cohort_incidence_figure,
    make_grade_bar_figure,
    make_signal_forest_figure,
)
from safety_dash.web.views import GRADE_BUCKETS


def cie_lab(colour: str) -> tuple[float, float, float]:
    """CIE L*a*b* (D65) of an sRGB ``#rrggbb`` colour."""
    r, g, b = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
    x = (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047
    y = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    z = (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883

    def f(t):
        return t ** (1 / 3) if t > 216 / 24389 else (24389 / 27 * t + 16) / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


def test_cie_lab_of_known_colours():
    # Reference values of the sRGB primaries and white (D65).
    assert cie_lab("#ffffff") == pytest.approx((100.0, 0.0, 0.0), abs=0.05)
    assert cie_lab("#ff0000") == pytest.approx((53.24, 80.09, 67.20), abs=0.05)


@pytest.mark.parametrize("low, high", [(1, 2), (2, 3), (3, 4), (4, 5)])
def test_neighbouring_grades_differ_in_colour_and_lightness(low, high):
    lab_low, lab_high = cie_lab(GRADE_COLOURS[f"Grade {low}"]), cie_lab(GRADE_COLOURS[f"Grade {high}"])
    distance = sum((p - q) ** 2 for p, q in zip(lab_low, lab_high, strict=True)) ** 0.5
    assert distance >= 24  # CIE76; grade 3 and 4 were 22 apart (#fd8d3c, #e6550d): two oranges
    assert lab_low[0] - lab_high[0] >= 5  # each grade darker than the one below it
    if (low, high) == (3, 4):
        assert distance >= 40 and lab_low[0] - lab_high[0] >= 25


def test_grade_legend_sits_below_the_mode_bar_band():
    table = pd.DataFrame({"term": ["Rash", "Pruritus"], "n_subjects": [10, 10], "n_with_event": [3, 1],
                          "incidence_pct": [30.0, 10.0], **{g: [1, 0] for g in GRADE_BUCKETS}})  # fmt: skip
    layout = make_grade_bar_figure(table, GRADE_BUCKETS, None)["layout"]
    # Six grade entries take two legend rows; the legend sits on the plot, so its top is margin - two rows.
    assert layout["margin"]["t"] - 2 * LEGEND_ROW_HEIGHT >= MODEBAR_BAND


def test_figures_without_a_legend_keep_the_band_free():
    by_cohort = pd.DataFrame({"cohort": ["Ph I 1 mg/kg"], "n_dosed": [4], "patient_years": [1.0], "teae": [2],
                              "immune": [1], "grade3": [1], "serious": [0], "fatal": [0], "deaths": [0]})  # fmt: skip
    layout = make_cohort_incidence_figure(by_cohort)["layout"]
    assert layout["margin"]["t"] - LEGEND_ROW_HEIGHT >= MODEBAR_BAND


def test_signal_forest_draws_infinite_and_zero_ratios_as_arrows_inside_the_axis():
    inf = float("inf")
    rows = pd.DataFrame({
        "key": ["a", "b", "c"], "pt": ["Hepatitis", "Colitis", "Rash"], "group_label": ["Ph Ib NSCLC", "All cohorts",
        "Ph Ib NPC"], "test_label": ["Rising", "Rising", "Out of line"], "rr_text": ["2 (1–4)", "∞ (0.5–∞)", "0 (0–3)"],
        "x1": [4, 3, 0], "py1": [2.0, 1.0, 3.0], "x0": [2, 0, 2], "py0": [2.0, 5.0, 1.0],
        "p_one_sided": [0.01, 0.2, 1.0], "q_pt": [0.05, 0.4, 1.0], "flagged": [True, False, False],
        "rate_ratio": [2.0, inf, 0.0], "rr_ci_low": [1.0, 0.5, 0.0], "rr_ci_high": [4.0, inf, 3.0],
    })  # fmt: skip
    figure = make_signal_forest_figure(rows, selected="b")
    trace, axis = figure["data"][0], figure["layout"]["xaxis"]
    # The first row is drawn on top: the figure lists them bottom-up.
    assert trace["y"] == ["Rash · Ph Ib NPC · out of line", "Colitis · All cohorts · rising",
                          "Hepatitis · Ph Ib NSCLC · rising"]  # fmt: skip
    assert trace["marker"]["symbol"] == ["triangle-left", "triangle-right", "diamond"]
    assert trace["marker"]["color"] == [ACCENT, ACCENT, FLAGGED_COLOUR]
    assert trace["marker"]["line"]["width"] == [1, 2.5, 1]  # the selected row ringed
    left, right = (10**v for v in axis["range"])
    assert left == pytest.approx(0.5 / 1.6) and right == pytest.approx(4.0 * 1.6)  # every finite bound, and 1
    assert left < trace["x"][0] < 0.5 and 4.0 < trace["x"][1] < right  # the arrows inside the axis
    assert trace["x"][2] == 2.0
    assert [c[0] for c in trace["customdata"]] == ["c", "b", "a"]
    assert axis["type"] == "log"
