"""Reliability arithmetic: chi-square quantiles, MTBF confidence bounds, availability.

Pure functions of numbers: no archive, no I/O, no SciPy.  Failures are taken
as a Poisson process on operating hours (time-terminated data), so with T
operating hours, r failures and confidence C = 1 - a::

    point estimate          T / r                           (none when r = 0)
    one-sided lower bound   2T / chi2(C; 2r+2)              (T / ln(1/a) when r = 0)
    two-sided interval      [ 2T / chi2(1 - a/2; 2r+2) , 2T / chi2(a/2; 2r) ]
                                                            (upper end unbounded when r = 0)

chi2(p; k) is the lower-tail p-quantile of the chi-square distribution with k
degrees of freedom.  MTBF needs only even k, where the distribution function
has a closed form through the Poisson sum::

    P(X <= x) = P(Poisson(x/2) >= k/2) = 1 - exp(-x/2) * sum_{i<k/2} (x/2)^i / i!

which :func:`chi2_quantile` inverts by safeguarded Newton iteration to full
double precision.
Invalid arguments raise ValueError, as the math module does.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from statistics import NormalDist

_EPSILON = 1e-17
_MAX_ITERATIONS = 200


def _poisson_pmf(i: int, lam: float) -> float:
    return math.exp(i * math.log(lam) - lam - math.lgamma(i + 1))


def chi2_cdf(x: float, k: int) -> float:
    """P(X <= x) for X chi-square with *k* (even, positive) degrees of freedom.

    Sums whichever Poisson tail is the smaller, so that neither tail loses
    its digits to cancellation; every term is computed in log space, so large
    k does not underflow.
    """
    _check_dof(k)
    m, lam = k // 2, x / 2
    if lam <= 0:
        return 0.0
    if lam < m:
        # P(Poisson >= m): terms fall from i = m on, since i > lam.
        term = total = _poisson_pmf(m, lam)
        i = m
        while term > _EPSILON * total:
            i += 1
            term *= lam / i
            total += term
        return min(total, 1.0)
    # 1 - P(Poisson <= m - 1): terms fall from i = m - 1 down, since i < lam.
    term = total = _poisson_pmf(m - 1, lam)
    i = m - 1
    while i > 0 and term > _EPSILON * total:
        term *= i / lam
        i -= 1
        total += term
    return max(1.0 - total, 0.0)


def chi2_quantile(p: float, k: int) -> float:
    """The lower-tail *p*-quantile of chi-square with *k* (even) degrees of freedom.

    Newton's method on :func:`chi2_cdf` from the Wilson-Hilferty
    approximation, inside a bracket that every step narrows: a step that
    would leave the bracket bisects it instead.  A few iterations reach full
    double precision.
    """
    _check_dof(k)
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability {p} is not strictly between 0 and 1")
    z = NormalDist().inv_cdf(p)
    x = max(k * (1 - 2 / (9 * k) + z * math.sqrt(2 / (9 * k))) ** 3, 1e-3)
    low, high = 0.0, math.inf
    for _ in range(_MAX_ITERATIONS):
        error = chi2_cdf(x, k) - p
        if error == 0:
            return x
        if error < 0:
            low = x
        else:
            high = x
        density = _poisson_pmf(k // 2 - 1, x / 2) / 2
        step = x - error / density if density > 0 else math.nan
        if not low < step < high:
            step = 2 * x if high == math.inf else (low + high) / 2
        if abs(step - x) <= 4 * sys.float_info.epsilon * x:
            return step
        x = step
    return x


def _check_dof(k: int) -> None:
    if k <= 0 or k % 2:
        raise ValueError(f"{k} degrees of freedom: only even, positive k has the closed form")


@dataclass(frozen=True, slots=True)
class MtbfEstimate:
    """MTBF from *hours* of operation with *failures*, at *confidence*; all in hours."""

    hours: float
    failures: int
    confidence: float
    point: float | None
    """T / r; None when there was no failure (no finite point estimate)."""
    lower_one_sided: float
    """MTBF is at least this, with the stated confidence."""
    ci_low: float
    ci_high: float
    """Two-sided interval; ``ci_high`` is ``math.inf`` when there was no failure."""


def mtbf(hours: float, failures: int, confidence: float = 0.90) -> MtbfEstimate:
    """Point estimate and confidence bounds of the mean time between failures.

    >>> e = mtbf(50_000, 4)
    >>> round(e.point), round(e.lower_one_sided), round(e.ci_low), round(e.ci_high)
    (12500, 6255, 5462, 36595)
    """
    if hours < 0 or failures < 0:
        raise ValueError(f"hours ({hours}) and failures ({failures}) cannot be negative")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} is not strictly between 0 and 1")
    alpha = 1.0 - confidence
    two_t = 2.0 * hours
    if failures == 0:
        return MtbfEstimate(
            hours, 0, confidence,
            point=None,
            lower_one_sided=hours / math.log(1.0 / alpha),
            ci_low=hours / math.log(2.0 / alpha),
            ci_high=math.inf,
        )
    dof = 2 * failures
    return MtbfEstimate(
        hours, failures, confidence,
        point=hours / failures,
        lower_one_sided=two_t / chi2_quantile(confidence, dof + 2),
        ci_low=two_t / chi2_quantile(1.0 - alpha / 2, dof + 2),
        ci_high=two_t / chi2_quantile(alpha / 2, dof),
    )


def availability(calendar_s: float, downtime_s: float) -> float:
    """The fraction of *calendar_s* not spent down: ``1 - downtime_s / calendar_s``."""
    if calendar_s <= 0:
        raise ValueError(f"availability needs a positive period, not {calendar_s} s")
    if not 0 <= downtime_s <= calendar_s:
        raise ValueError(f"downtime {downtime_s} s is outside the period of {calendar_s} s")
    return 1.0 - downtime_s / calendar_s
