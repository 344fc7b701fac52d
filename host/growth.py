"""Trend, growth and life arithmetic: Crow-AMSAA, trend tests, age bands, Weibull, demonstration.

Pure functions of numbers (operating hours): no archive, no I/O, no SciPy.
The data is a set of :class:`SystemHistory`, one per unit: the unit's age
(lifetime operating hours) at the start and the end of the stretch the archive
covers, and its age at each failure in it.  Formulas and sources are in
``docs/reliability.md``; in short:

- **Crow-AMSAA** (power-law NHPP, MIL-HDBK-189C section 5, IEC 61710 section
  5): failure intensity ``lambda * beta * t**(beta - 1)`` in a unit's age t.
  Maximum-likelihood beta and lambda over several systems each seen on
  [S, T].  A system whose stretch ends at a failure is failure-truncated,
  the others time-truncated.  When every stretch starts at age 0 the
  interval on beta is exact: ``2 N' beta / beta_hat`` is chi-square with
  2 N' degrees of freedom (N' = failures less one per failure-truncated
  system).  Otherwise it is the profile-likelihood interval (likelihood ratio,
  chi-square with 1 degree of freedom).
- **Trend tests** on the same data: Laplace's U (normal under a constant
  rate) and the MIL-HDBK-189 chi-square; the verdict (improving, steady,
  wearing out) is Laplace's, two-sided at the confidence asked for.
- **Mean cumulative function** (Nelson): the failures per unit by each age,
  each failure weighed by the units observed at its age; the points of the
  Crow-AMSAA plot.
- **Age bands**: failures and exposure hours in bands of unit age, each
  band's MTBF with its chi-square bounds (:func:`host.reliability.mtbf`).
- **Weibull with suspensions**: maximum likelihood shape and scale of the
  time to first failure, with Fisher-matrix bounds.
- **Demonstration**: the operating hours still needed, with no further
  failure, for the one-sided lower bound of MTBF to reach a target.

Invalid arguments raise ValueError, as the math module does.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist

from .reliability import MtbfEstimate, chi2_cdf, chi2_quantile, mtbf

_BISECTIONS = 200
_BETA_MIN, _BETA_MAX = 1e-3, 100.0
"""Where beta is looked for: beyond, the data says nothing a fleet engineer would use."""

IMPROVING, STEADY, WEARING_OUT = "improving", "steady", "wearing out"


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence {confidence} is not strictly between 0 and 1")


@dataclass(frozen=True, slots=True)
class SystemHistory:
    """One unit: its age (operating hours) where the archive's stretch starts and ends, and at
    each failure in it."""

    start: float
    end: float
    failures: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"a stretch from age {self.start} h to {self.end} h")
        if any(not self.start <= age <= self.end for age in self.failures):
            raise ValueError(f"a failure outside the stretch {self.start}..{self.end} h")
        if any(age <= 0 for age in self.failures):
            raise ValueError("a failure at age 0: the power law has none there")
        if list(self.failures) != sorted(self.failures):
            raise ValueError("failure ages must be in order")

    @property
    def failure_truncated(self) -> bool:
        """The stretch ends at a failure (the archive's last record is that failure)."""
        return bool(self.failures) and self.failures[-1] == self.end

    @property
    def trend_events(self) -> tuple[float, ...]:
        """Failures a trend test weighs: all, less the one that ends a failure-truncated stretch."""
        return self.failures[:-1] if self.failure_truncated else self.failures


def _bisect(function: Callable[[float], float], low: float, high: float) -> float:
    """A root of *function* (negative at *low*, positive at *high*, or the reverse) in log space."""
    f_low = function(low)
    for _ in range(_BISECTIONS):
        middle = math.sqrt(low * high)
        value = function(middle)
        if value == 0 or high / low - 1 < 1e-13:
            return middle
        if (value < 0) == (f_low < 0):
            low, f_low = middle, value
        else:
            high = middle
    return math.sqrt(low * high)


# --- Crow-AMSAA -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PowerLawFit:
    """The Crow-AMSAA fit: expected failures of a unit by age t are ``lam * t**beta``."""

    beta: float
    lam: float
    """Per operating hour to the power beta."""
    failures: int
    systems: int
    exposure_hours: float
    truncation: str
    """"time", "failure" or "mixed" (some stretches end at a failure, others do not)."""
    confidence: float
    beta_low: float
    beta_high: float
    interval: str
    """How the interval was found: "chi-square (exact)" or "likelihood ratio"."""

    truncated_systems: int = 0
    """Stretches that end at a failure."""

    @property
    def beta_unbiased(self) -> float:
        """MIL-HDBK-189C's unbiased beta, ``(N' - 1) / N * beta`` (N' as in the module docstring)."""
        return (self.failures - self.truncated_systems - 1) / self.failures * self.beta

    def expected_failures(self, age: float) -> float:
        """The fitted cumulative failures of one unit by *age*."""
        return self.lam * math.pow(age, self.beta)

    def intensity(self, age: float) -> float:
        """Failures per operating hour of one unit at *age*."""
        return self.lam * self.beta * math.pow(age, self.beta - 1)


def _prepared(histories: Iterable[SystemHistory]) -> tuple[list[SystemHistory], float]:
    """The stretches that are not empty, and the largest age (the fit's unit of time)."""
    kept = [history for history in histories if history.end > history.start]
    scale = max((history.end for history in kept), default=0.0)
    return kept, scale


def crow_amsaa(histories: Iterable[SystemHistory], confidence: float = 0.90) -> PowerLawFit | None:
    """The maximum-likelihood Crow-AMSAA fit and its two-sided interval on beta, or None with
    fewer than 2 failures (or none after the first)."""
    _check_confidence(confidence)
    systems, scale = _prepared(histories)
    total = sum(len(history.failures) for history in systems)
    truncated = sum(history.failure_truncated for history in systems)
    dof = total - truncated
    if total < 2 or dof < 1:
        return None
    stretches = [(history.start / scale, history.end / scale) for history in systems]
    log_ages = sum(math.log(age / scale) for history in systems for age in history.failures)

    def window_sum(beta: float) -> float:
        return sum(math.pow(end, beta) - math.pow(start, beta) for start, end in stretches)

    def window_slope(beta: float) -> float:
        return sum(
            math.pow(end, beta) * math.log(end) - (math.pow(start, beta) * math.log(start) if start else 0.0)
            for start, end in stretches
        )

    def profile(beta: float) -> float:
        return total * math.log(beta) + (beta - 1) * log_ages - total * math.log(window_sum(beta))

    exact = all(history.start == 0 for history in systems)
    if exact:
        logs = sum(math.log(history.end / age) for history in systems for age in history.failures)
        if logs <= 0:
            return None  # every failure at the end of its stretch: nothing to fit
        beta = total / logs
        alpha = 1 - confidence
        low = beta * chi2_quantile(alpha / 2, 2 * dof) / (2 * total)
        high = beta * chi2_quantile(1 - alpha / 2, 2 * dof) / (2 * total)
        method = "chi-square (exact)"
    else:
        def score(b: float) -> float:
            return total / b + log_ages - total * window_slope(b) / window_sum(b)

        if not score(_BETA_MIN) > 0 > score(_BETA_MAX):
            return None  # the likelihood has no maximum inside: too few failures to say
        beta = _bisect(score, _BETA_MIN, _BETA_MAX)
        drop = NormalDist().inv_cdf((1 + confidence) / 2) ** 2 / 2
        top = profile(beta)

        def excess(b: float) -> float:
            return profile(b) - top + drop

        low = 0.0 if excess(_BETA_MIN) > 0 else _bisect(excess, _BETA_MIN, beta)
        high = math.inf if excess(_BETA_MAX) > 0 else _bisect(excess, beta, _BETA_MAX)
        method = "likelihood ratio"
    lam = math.exp(math.log(total / window_sum(beta)) - beta * math.log(scale))
    kind = "time" if truncated == 0 else "failure" if truncated == len(systems) else "mixed"
    exposure = sum(history.end - history.start for history in systems)
    return PowerLawFit(
        beta, lam, total, len(systems), exposure, kind, confidence, low, high, method, truncated
    )


def mean_cumulative(histories: Sequence[SystemHistory]) -> list[tuple[float, float]]:
    """Nelson's mean cumulative function: at each failure age t (ascending), the failures per
    unit by age t, each failure counting ``1 / (units observed at its age)``; what the
    Crow-AMSAA plot draws beside the fit ``lam * t**beta``."""
    starts = sorted(history.start for history in histories)
    ends = sorted(history.end for history in histories)
    mcf, points = 0.0, []
    for age in sorted(age for history in histories for age in history.failures):
        at_risk = bisect_right(starts, age) - bisect_left(ends, age)
        mcf += 1 / at_risk
        points.append((age, mcf))
    return points


# --- trend tests ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrendTest:
    """Whether the failure rate changes with unit age."""

    events: int
    """Failures weighed (a failure-truncated stretch's last one is not)."""
    laplace_u: float
    """Laplace's statistic: about N(0, 1) at a constant rate; above 0 the rate rises with age."""
    laplace_p: float
    """Two-sided p-value of U."""
    chi2: float
    """MIL-HDBK-189's ``2 sum ln((T - S) / (X - S))``: chi-square with 2 * events degrees of
    freedom at a constant rate; small when the rate rises with age, large when it falls."""
    chi2_p: float
    """Two-sided p-value of the chi-square statistic."""
    confidence: float

    @property
    def verdict(self) -> str:
        """Laplace's, two-sided at the confidence: improving, steady, or wearing out."""
        if self.laplace_p >= 1 - self.confidence:
            return STEADY
        return WEARING_OUT if self.laplace_u > 0 else IMPROVING


def trend_test(histories: Iterable[SystemHistory], confidence: float = 0.90) -> TrendTest | None:
    """Laplace and MIL-HDBK-189 tests of a constant failure rate against unit age, or None
    without a failure to weigh."""
    _check_confidence(confidence)
    systems = [history for history in histories if history.end > history.start]
    events = sum(len(history.trend_events) for history in systems)
    if events == 0:
        return None
    centred = sum(
        age - (history.start + history.end) / 2 for history in systems for age in history.trend_events
    )
    spread = sum(len(history.trend_events) * (history.end - history.start) ** 2 / 12 for history in systems)
    u = centred / math.sqrt(spread)
    normal = NormalDist()
    laplace_p = 2 * (1 - normal.cdf(abs(u)))
    chi2 = 2 * sum(
        math.log((history.end - history.start) / (age - history.start)) if age > history.start else math.inf
        for history in systems for age in history.trend_events
    )
    below = chi2_cdf(chi2, 2 * events) if math.isfinite(chi2) else 1.0
    return TrendTest(events, u, laplace_p, chi2, min(1.0, 2 * min(below, 1 - below)), confidence)


# --- age bands --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgeBand:
    """Failures and exposure of units while their age was in [low, high) operating hours."""

    low: float
    high: float
    failures: int
    exposure_hours: float
    mtbf: MtbfEstimate

    @property
    def rate_per_1000h(self) -> float | None:
        return 1000 * self.failures / self.exposure_hours if self.exposure_hours > 0 else None


def age_bands(
    histories: Sequence[SystemHistory], width: float, confidence: float = 0.90
) -> list[AgeBand]:
    """Bands of *width* hours of unit age, from 0 to the oldest age seen."""
    if width <= 0:
        raise ValueError(f"an age band of {width} h")
    oldest = max((history.end for history in histories), default=0.0)
    bands = []
    for index in range(max(1, math.ceil(oldest / width))):
        low, high = index * width, (index + 1) * width
        exposure = sum(max(0.0, min(h.end, high) - max(h.start, low)) for h in histories)
        failures = sum(low <= age < high or (age == high == oldest) for h in histories for age in h.failures)
        bands.append(AgeBand(low, high, failures, exposure, mtbf(exposure, failures, confidence)))
    return bands


# --- Weibull with suspensions -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WeibullFit:
    """Weibull ``1 - exp(-(t / scale)**shape)`` of the time to first failure."""

    shape: float
    scale: float
    failures: int
    suspensions: int
    confidence: float
    shape_low: float
    shape_high: float
    scale_low: float
    scale_high: float
    """Two-sided Fisher-matrix bounds (normal on the logarithms)."""


def weibull(
    failures: Sequence[float], suspensions: Sequence[float] = (), confidence: float = 0.90
) -> WeibullFit | None:
    """Maximum-likelihood Weibull of failure times with right-censored *suspensions* (units that
    had not failed by then), or None with fewer than 2 distinct failure times."""
    _check_confidence(confidence)
    if any(t <= 0 for t in (*failures, *suspensions)):
        raise ValueError("Weibull times must be positive")
    if len(set(failures)) < 2:
        return None
    scale_unit = max((*failures, *suspensions))
    failed = [t / scale_unit for t in failures]
    every = failed + [t / scale_unit for t in suspensions]
    r = len(failed)
    mean_log = sum(map(math.log, failed)) / r

    def score(shape: float) -> float:
        powers = [math.pow(t, shape) for t in every]
        weighted = sum(p * math.log(t) for p, t in zip(powers, every, strict=True))
        return weighted / sum(powers) - 1 / shape - mean_log

    shape = _bisect(score, 1e-3, 1e3)
    scale = (sum(t**shape for t in every) / r) ** (1 / shape)
    # observed information in (shape, scale), on the normalised times
    u = [t / scale for t in every]
    sum_u = sum(x**shape for x in u)
    sum_ul = sum(x**shape * math.log(x) for x in u)
    sum_ul2 = sum(x**shape * math.log(x) ** 2 for x in u)
    i_kk = r / shape**2 + sum_ul2
    i_ee = -r * shape / scale**2 + shape * (shape + 1) / scale**2 * sum_u
    i_ke = r / scale - sum_u / scale - shape / scale * sum_ul
    determinant = i_kk * i_ee - i_ke**2
    var_shape, var_scale = i_ee / determinant, i_kk / determinant
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    spread_k = math.exp(z * math.sqrt(var_shape) / shape)
    spread_e = math.exp(z * math.sqrt(var_scale) / scale)
    scale *= scale_unit
    return WeibullFit(
        shape, scale, r, len(suspensions), confidence,
        shape / spread_k, shape * spread_k, scale / spread_e, scale * spread_e,
    )


# --- demonstration ----------------------------------------------------------------------------


def hours_to_demonstrate(target: float, hours: float, failures: int, confidence: float = 0.90) -> float:
    """Operating hours still needed, with no further failure, for the one-sided lower bound of
    MTBF (:func:`host.reliability.mtbf`) to reach *target*: ``target * chi2(C; 2r+2) / 2 - T``,
    0 when it is reached already."""
    _check_confidence(confidence)
    if target <= 0:
        raise ValueError(f"a target MTBF of {target} h")
    if hours < 0 or failures < 0:
        raise ValueError(f"hours ({hours}) and failures ({failures}) cannot be negative")
    return max(0.0, target * chi2_quantile(confidence, 2 * failures + 2) / 2 - hours)
