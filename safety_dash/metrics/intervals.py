"""Confidence intervals for proportions, Poisson rates and rate differences (DOMAIN.md §4).

Every function takes numbers or numpy arrays (broadcast together) and returns floats for scalar input, arrays
otherwise. Rates are in events per unit of ``time`` (pass patient-years and multiply by 100 for "per 100 PY").
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

ArrayLike = float | int | np.ndarray


class RateDifference(NamedTuple):
    """A difference of rates (group 1 minus group 0) with its interval and the test statistic for no difference."""

    estimate: ArrayLike
    ci_low: ArrayLike
    ci_high: ArrayLike
    z_null: ArrayLike


def _scalar_or_array(values: np.ndarray) -> ArrayLike:
    return float(values) if np.ndim(values) == 0 else values


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"`alpha` must lie strictly between 0 and 1 (0.05 for a 95% interval), not {alpha!r}.")


def _check_counts(argument: str, values: np.ndarray) -> None:
    if np.any(values < 0) or np.any(np.isnan(values)):
        raise ValueError(f"`{argument}` must hold counts >= 0, not {values!r}.")


def compute_clopper_pearson(x: ArrayLike, n: ArrayLike, alpha: float = 0.05) -> tuple[ArrayLike, ArrayLike]:
    """Exact (Clopper–Pearson) interval of the proportion x/n, as proportions (0..1).

    Lower 0 when x = 0, upper 1 when x = n; NaN when n = 0.
    """
    _check_alpha(alpha)
    x, n = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(n, dtype=float))
    _check_counts("x", x)
    if np.any(x > n):
        raise ValueError("`x` (subjects with the event) cannot exceed `n` (subjects in the group).")
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x == 0, 0.0, stats.beta.ppf(alpha / 2, x, n - x + 1))
        high = np.where(x == n, 1.0, stats.beta.ppf(1 - alpha / 2, x + 1, n - x))
    empty = n == 0
    return _scalar_or_array(np.where(empty, np.nan, low)), _scalar_or_array(np.where(empty, np.nan, high))


def compute_exact_rate_interval(x: ArrayLike, time: ArrayLike, alpha: float = 0.05) -> tuple[ArrayLike, ArrayLike]:
    """Exact (Garwood) interval of the Poisson rate x/time: lower = chi2(alpha/2; 2x) / (2 time),
    upper = chi2(1 - alpha/2; 2x + 2) / (2 time); lower = 0 when x = 0 (tern ``h_incidence_rate_exact``)."""
    _check_alpha(alpha)
    x, time = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(time, dtype=float))
    _check_counts("x", x)
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x == 0, 0.0, stats.chi2.ppf(alpha / 2, 2 * x) / (2 * time))
        high = stats.chi2.ppf(1 - alpha / 2, 2 * x + 2) / (2 * time)
    return _scalar_or_array(low), _scalar_or_array(high)


def compute_lognormal_rate_interval(x: ArrayLike, time: ArrayLike, alpha: float = 0.05) -> tuple[ArrayLike, ArrayLike]:
    """Normal approximation on the log scale of the rate x/time: exp(log(x/time) -/+ z sqrt(1/x))
    (tern ``h_incidence_rate_normal_log``). Undefined (NaN) when x = 0; use the exact interval there."""
    _check_alpha(alpha)
    x, time = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(time, dtype=float))
    _check_counts("x", x)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_rate = np.log(x / time)
        half = z / np.sqrt(x)
        low = np.where(x > 0, np.exp(log_rate - half), np.nan)
        high = np.where(x > 0, np.exp(log_rate + half), np.nan)
    return _scalar_or_array(low), _scalar_or_array(high)


def _strata(y1: ArrayLike, t1: ArrayLike, y0: ArrayLike, t0: ArrayLike):
    """Broadcast inputs to (..., strata) and the Mantel–Haenszel weights w = t1 t0 / (t1 + t0).

    A stratum with no time in either group has weight 0 and drops out.
    """
    y1, t1, y0, t0 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (y1, t1, y0, t0)))
    _check_counts("y1", y1)
    _check_counts("y0", y0)
    if np.any(t1 < 0) or np.any(t0 < 0) or np.any(np.isnan(t1)) or np.any(np.isnan(t0)):
        raise ValueError("`t1` and `t0` (time at risk) must be >= 0.")
    used = (t1 > 0) & (t0 > 0)
    t1_safe, t0_safe = np.where(used, t1, 1.0), np.where(used, t0, 1.0)
    weight = np.where(used, t1_safe * t0_safe / (t1_safe + t0_safe), 0.0)
    if np.any(weight.sum(axis=-1) == 0):
        raise ValueError("Each comparison needs at least one stratum with time at risk in both groups.")
    return y1, t1_safe, y0, t0_safe, weight


def compute_rate_difference_wald(
    y1: ArrayLike, t1: ArrayLike, y0: ArrayLike, t0: ArrayLike, alpha: float = 0.05
) -> RateDifference:
    """Wald interval of the difference of Poisson rates y1/t1 - y0/t0.

    The last axis holds strata, combined with Mantel–Haenszel weights w = t1 t0 / (t1 + t0): estimate
    sum(w d) / sum(w), variance sum(w^2 (y1/t1^2 + y0/t0^2)) / sum(w)^2. Scalars (or a trailing axis of length 1)
    give the unstratified interval; for many unstratified comparisons pass arrays of shape (K, 1).
    """
    _check_alpha(alpha)
    y1, t1, y0, t0, weight = _strata(y1, t1, y0, t0)
    total = weight.sum(axis=-1)
    estimate = (weight * (y1 / t1 - y0 / t0)).sum(axis=-1) / total
    se = np.sqrt((weight**2 * (y1 / t1**2 + y0 / t0**2)).sum(axis=-1)) / total
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_null = np.where(se > 0, estimate / se, np.nan)
    return RateDifference(*(_scalar_or_array(v) for v in (estimate, estimate - z * se, estimate + z * se, z_null)))


def _mn_zstat(y1, t1, y0, t0, weight, delta):
    """Miettinen–Nurminen score statistic for H0: rate1 - rate0 = delta (delta has the shape without strata).

    Restricted maximum likelihood rates per stratum as lrstat ``remlRateDiff``; variance floored at 1e-8 as
    lrstat ``zstatRateDiff`` does.
    """
    d = delta[..., None]
    t = t1 + t0
    b = t * d - (y1 + y0)
    c = -y0 * d
    rate0 = (-b + np.sqrt(np.maximum(b * b - 4.0 * t * c, 0.0))) / (2.0 * t)
    rate1 = rate0 + d
    variance = np.maximum(rate1 / t1 + rate0 / t0, 1e-8)
    numerator = (weight * (y1 / t1 - y0 / t0 - d)).sum(axis=-1)
    return numerator / np.sqrt((weight**2 * variance).sum(axis=-1))


def _solve_decreasing(function, target: np.ndarray, start: np.ndarray, direction: float) -> np.ndarray:
    """Root of function(delta) = target, vectorised, for a function decreasing in delta, searching from ``start``
    towards ``direction`` (-1 lower, +1 upper): bracket by doubling the step, then bisect to float precision."""
    step = np.maximum(np.abs(start), 1.0)
    for _ in range(200):
        value = function(start + direction * step)
        outside = (value < target) if direction < 0 else (value > target)
        if not outside.any():
            break
        step = np.where(outside, step * 2.0, step)
    low, high = (start - step, start) if direction < 0 else (start, start + step)
    for _ in range(200):
        middle = (low + high) / 2.0
        above = function(middle) > target
        low, high = np.where(above, middle, low), np.where(above, high, middle)
        if np.all(high - low <= 4 * np.finfo(float).eps * np.maximum(np.abs(middle), 1e-300)):
            break
    return (low + high) / 2.0


def compute_rate_difference_mn(
    y1: ArrayLike, t1: ArrayLike, y0: ArrayLike, t0: ArrayLike, alpha: float = 0.05
) -> RateDifference:
    """Miettinen–Nurminen score interval of the difference of Poisson rates y1/t1 - y0/t0 (lrstat ``mnRateDiffCI``).

    The last axis holds strata, combined with Mantel–Haenszel weights w = t1 t0 / (t1 + t0); the estimate is
    sum(w d) / sum(w). The limits are the differences delta where the score statistic equals -/+ z(1 - alpha/2),
    solved to float precision (lrstat stops at 1e-6). ``z_null`` is the score statistic at delta = 0. Scalars give
    the unstratified interval; arrays of shape (K, S) give K comparisons of S strata each.
    """
    _check_alpha(alpha)
    y1, t1, y0, t0, weight = _strata(y1, t1, y0, t0)
    estimate = (weight * (y1 / t1 - y0 / t0)).sum(axis=-1) / weight.sum(axis=-1)
    z = stats.norm.ppf(1 - alpha / 2)

    def score(delta: np.ndarray) -> np.ndarray:
        return _mn_zstat(y1, t1, y0, t0, weight, delta)

    low = _solve_decreasing(score, z, estimate, -1.0)
    high = _solve_decreasing(score, -z, estimate, +1.0)
    z_null = score(np.zeros_like(estimate))
    return RateDifference(*(_scalar_or_array(v) for v in (estimate, low, high, z_null)))
