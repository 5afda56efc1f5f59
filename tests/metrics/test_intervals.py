"""Confidence intervals: published oracles (DOMAIN.md §4) and hand-worked values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from safety_dash.metrics.intervals import (
    compute_clopper_pearson,
    compute_exact_rate_interval,
    compute_lognormal_rate_interval,
    compute_rate_difference_mn,
    compute_rate_difference_wald,
)

REL = 1e-6


# --- compute_clopper_pearson -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "n", "low", "high"),
    [
        # R binom.test(x, n)$conf.int
        (3, 10, 0.06673951, 0.65245285),
        (1, 2, 0.01257912, 0.98742088),
        # closed forms at the edges: x = 0 -> (0, 1 - 0.025^(1/n)); x = n -> (0.025^(1/n), 1)
        (0, 10, 0.0, 1 - 0.025 ** (1 / 10)),
        (10, 10, 0.025 ** (1 / 10), 1.0),
        # x = 1: lower = 1 - 0.975^(1/n)
        (1, 5, 1 - 0.975 ** (1 / 5), 0.71641794),
    ],
)
def test_compute_clopper_pearson_values(x, n, low, high):
    result = compute_clopper_pearson(x, n)
    assert result == (pytest.approx(low, rel=REL, abs=1e-12), pytest.approx(high, rel=REL))


def test_compute_clopper_pearson_vectorised_and_empty_group():
    low, high = compute_clopper_pearson(np.array([3, 0]), np.array([10, 0]))
    assert low[0] == pytest.approx(0.06673951, rel=REL)
    assert np.isnan(low[1]) and np.isnan(high[1])


def test_compute_clopper_pearson_rejects_x_above_n():
    with pytest.raises(ValueError, match="cannot exceed"):
        compute_clopper_pearson(4, 3)


# --- compute_exact_rate_interval (Garwood) ---------------------------------------------------------------------


def test_compute_exact_rate_interval_tern_oracle():
    # tern h_incidence_rate_exact: T = 200, x = 2, alpha = 0.10
    assert compute_exact_rate_interval(2, 200, alpha=0.10) == (
        pytest.approx(0.001776808, rel=REL),
        pytest.approx(0.031478968, rel=REL),
    )


def test_compute_exact_rate_interval_zero_events():
    # x = 0: lower 0, upper = chi2(0.975; 2) / (2 T) = -ln(0.025) / T
    low, high = compute_exact_rate_interval(0, 4.0)
    assert low == 0.0
    assert high == pytest.approx(-math.log(0.025) / 4.0, rel=REL)


def test_compute_exact_rate_interval_vectorised():
    low, high = compute_exact_rate_interval(np.array([0, 1, 2]), np.array([1.0, 1.0, 1.0]))
    # Poisson exact limits for 0, 1, 2 events (Garwood 1936 table)
    np.testing.assert_allclose(low, [0.0, 0.02531781, 0.24220928], rtol=REL)
    np.testing.assert_allclose(high, [3.68887945, 5.57164339, 7.22468767], rtol=REL)


# --- compute_lognormal_rate_interval ---------------------------------------------------------------------------


def test_compute_lognormal_rate_interval_tern_oracle():
    # tern s_incidence_rate: follow-up 10.1, 20.4, 15.3, 20.8, 18.7, 23.4 months, 4 events, 90% log-normal interval
    person_years = (10.1 + 20.4 + 15.3 + 20.8 + 18.7 + 23.4) / 12
    assert person_years == pytest.approx(9.058333, rel=REL)
    assert 100 * 4 / person_years == pytest.approx(44.15823, rel=REL)
    low, high = compute_lognormal_rate_interval(4, person_years, alpha=0.10)
    assert 100 * low == pytest.approx(19.40154, rel=REL)
    assert 100 * high == pytest.approx(100.50487, rel=REL)


def test_compute_lognormal_rate_interval_undefined_without_events():
    low, high = compute_lognormal_rate_interval(0, 10.0)
    assert np.isnan(low) and np.isnan(high)


# --- compute_rate_difference_mn (Miettinen–Nurminen) -----------------------------------------------------------


def test_compute_rate_difference_mn_lrstat_oracle():
    # lrstat mnRateDiffCI(t1 = c(10, 10), y1 = c(4, 3), t2 = c(20, 10), y2 = c(2, 0)); lrstat solves to 1e-6
    result = compute_rate_difference_mn(y1=[4, 3], t1=[10, 10], y0=[2, 0], t0=[20, 10])
    assert result.estimate == pytest.approx(0.3, rel=REL)
    assert result.ci_low == pytest.approx(0.065117, abs=5e-7)
    assert result.ci_high == pytest.approx(0.6871, abs=5e-5)
    assert result.z_null == pytest.approx(2.424871, rel=REL)


def _mn_score_by_hand(y1: float, t1: float, y0: float, t0: float, delta: float) -> float:
    """Unstratified MN score written out from the restricted MLE: t r0^2 + (t delta - y) r0 - y0 delta = 0."""
    t, y = t1 + t0, y1 + y0
    b = t * delta - y
    r0 = (-b + math.sqrt(b * b + 4 * t * y0 * delta)) / (2 * t)
    r1 = r0 + delta
    return (y1 / t1 - y0 / t0 - delta) / math.sqrt(max(r1 / t1 + r0 / t0, 1e-8))


@pytest.mark.parametrize(("y1", "t1", "y0", "t0"), [(5, 3.0, 1, 4.0), (0, 2.5, 3, 1.5), (12, 40.0, 12, 20.0)])
def test_compute_rate_difference_mn_matches_brentq_on_the_score(y1, t1, y0, t0):
    z = stats.norm.ppf(0.975)
    estimate = y1 / t1 - y0 / t0
    low = optimize.brentq(lambda d: _mn_score_by_hand(y1, t1, y0, t0, d) - z, estimate - 100, estimate, xtol=1e-14)
    high = optimize.brentq(lambda d: _mn_score_by_hand(y1, t1, y0, t0, d) + z, estimate, estimate + 100, xtol=1e-14)
    result = compute_rate_difference_mn(y1, t1, y0, t0)
    assert (result.estimate, result.ci_low, result.ci_high) == (
        pytest.approx(estimate, rel=1e-12),
        pytest.approx(low, rel=1e-9),
        pytest.approx(high, rel=1e-9),
    )
    assert result.z_null == pytest.approx(_mn_score_by_hand(y1, t1, y0, t0, 0.0), rel=1e-12)


def test_compute_rate_difference_mn_vectorised_over_comparisons():
    # shape (K, 1): K unstratified comparisons at once, each equal to its scalar call
    y1, t1, y0, t0 = np.array([5, 0, 12]), np.array([3.0, 2.5, 40.0]), np.array([1, 3, 12]), np.array([4.0, 1.5, 20.0])
    together = compute_rate_difference_mn(y1[:, None], t1[:, None], y0[:, None], t0[:, None])
    for k in range(3):
        alone = compute_rate_difference_mn(y1[k], t1[k], y0[k], t0[k])
        assert together.ci_low[k] == pytest.approx(alone.ci_low, rel=1e-12)
        assert together.ci_high[k] == pytest.approx(alone.ci_high, rel=1e-12)


def test_compute_rate_difference_mn_no_events_in_either_group():
    result = compute_rate_difference_mn(0, 10.0, 0, 10.0)
    assert result.estimate == 0.0
    assert result.ci_low < 0 < result.ci_high
    # symmetric by construction when the times are equal
    assert result.ci_low == pytest.approx(-result.ci_high, rel=1e-9)


# --- compute_rate_difference_wald ------------------------------------------------------------------------------


def test_compute_rate_difference_wald_stratified_by_hand():
    # strata of the lrstat example; w = t1 t0 / (t1 + t0) = 20/3 and 5; both stratum differences are 0.3
    # var = (w1^2 (4/100 + 2/400) + w2^2 (3/100 + 0/100)) / (w1 + w2)^2 = 2.75 / (35/3)^2
    se = math.sqrt(2.75) / (35 / 3)
    z = stats.norm.ppf(0.975)
    result = compute_rate_difference_wald(y1=[4, 3], t1=[10, 10], y0=[2, 0], t0=[20, 10])
    assert result.estimate == pytest.approx(0.3, rel=1e-12)
    assert result.ci_low == pytest.approx(0.3 - z * se, rel=1e-12)
    assert result.ci_high == pytest.approx(0.3 + z * se, rel=1e-12)
    assert result.z_null == pytest.approx(0.3 / se, rel=1e-12)


def test_compute_rate_difference_wald_unstratified():
    # 4 events in 2 PY against 1 in 4 PY: 2 - 0.25, se = sqrt(4/4 + 1/16)
    result = compute_rate_difference_wald(4, 2.0, 1, 4.0, alpha=0.10)
    se = math.sqrt(1 + 1 / 16)
    assert result.estimate == pytest.approx(1.75, rel=1e-12)
    assert result.ci_low == pytest.approx(1.75 - stats.norm.ppf(0.95) * se, rel=1e-12)


def test_compute_rate_difference_rejects_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        compute_rate_difference_wald(1, 1.0, 1, 1.0, alpha=1.5)
    with pytest.raises(ValueError, match="counts >= 0"):
        compute_rate_difference_mn(-1, 1.0, 1, 1.0)
    with pytest.raises(ValueError, match="time at risk in both groups"):
        compute_rate_difference_mn(1, 0.0, 1, 1.0)
