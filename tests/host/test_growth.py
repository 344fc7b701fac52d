"""host.growth against independent oracles: a published worked example, SciPy's optimisers and
distributions, and the coverage of its intervals over many simulated fleets of known beta."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize, stats

from host.growth import (
    IMPROVING,
    STEADY,
    WEARING_OUT,
    SystemHistory,
    age_bands,
    crow_amsaa,
    hours_to_demonstrate,
    mean_cumulative,
    trend_test,
    weibull,
)
from host.reliability import mtbf

# The Crow-AMSAA worked example of ReliaSoft's "Reliability Growth and Repairable System Data
# Analysis Reference" (ReliaWiki, "Crow-AMSAA (NHPP)", example 1): a prototype tested until its
# 22nd failure at 620 h; published beta = 0.6142, lambda = 0.4239.
PUBLISHED_TIMES = (2.7, 10.3, 12.5, 30.6, 57.0, 61.3, 80.0, 109.5, 125.0, 128.6, 143.8, 167.9, 229.2,
                   296.7, 320.6, 328.2, 366.2, 396.7, 421.1, 438.2, 501.2, 620.0)


def test_published_example_to_three_significant_figures() -> None:
    fit = crow_amsaa([SystemHistory(0, 620.0, PUBLISHED_TIMES)])
    assert fit is not None
    assert fit.truncation == "failure"
    assert f"{fit.beta:.3g}" == "0.614"
    assert f"{fit.lam:.3g}" == "0.424"
    # failure-truncated: 2 n beta / beta_hat is chi-square with 2 (n - 1) degrees of freedom
    assert fit.beta_low == pytest.approx(fit.beta * stats.chi2.ppf(0.05, 42) / 44, rel=1e-9)
    assert fit.beta_high == pytest.approx(fit.beta * stats.chi2.ppf(0.95, 42) / 44, rel=1e-9)
    assert fit.beta_unbiased == pytest.approx(20 / 22 * fit.beta)


def _simulate(rng: np.random.Generator, beta: float, lam: float, windows: list[tuple[float, float]]
              ) -> list[SystemHistory]:
    """A power-law NHPP per unit over its window of ages (inverse transform of the mean function)."""
    histories = []
    for start, end in windows:
        low, high = start**beta, end**beta
        count = rng.poisson(lam * (high - low))
        ages = np.sort((low + rng.uniform(size=count) * (high - low)) ** (1 / beta))
        histories.append(SystemHistory(start, end, tuple(float(np.clip(a, start, end)) for a in ages)))
    return histories


def _log_likelihood(histories: list[SystemHistory], log_lam: float, log_beta: float) -> float:
    lam, beta = math.exp(log_lam), math.exp(log_beta)
    value = 0.0
    for h in histories:
        value += sum(math.log(lam * beta) + (beta - 1) * math.log(age) for age in h.failures)
        value -= lam * (h.end**beta - h.start**beta)
    return value


def _scipy_fit(histories: list[SystemHistory]) -> tuple[float, float]:
    """(beta, lambda) maximising the likelihood with SciPy's optimiser, on hours in thousands."""
    scaled = [SystemHistory(h.start / 1000, h.end / 1000, tuple(a / 1000 for a in h.failures))
              for h in histories]
    result = optimize.minimize(lambda p: -_log_likelihood(scaled, p[0], p[1]), x0=[0.0, 0.0],
                               method="Nelder-Mead",
                               options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    lam_k, beta = math.exp(result.x[0]), math.exp(result.x[1])
    return beta, lam_k / 1000**beta


@pytest.mark.parametrize("seed", range(5))
def test_mle_with_windows_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    starts = rng.uniform(0, 20_000, size=30)
    windows = [(float(s), float(s + rng.uniform(2_000, 30_000))) for s in starts]
    histories = _simulate(rng, 1.3, 2e-5, windows)
    fit = crow_amsaa(histories)
    assert fit is not None and fit.interval == "likelihood ratio"
    beta, lam = _scipy_fit(histories)
    assert fit.beta == pytest.approx(beta, rel=1e-4)
    assert fit.lam == pytest.approx(lam, rel=1e-3)


def test_likelihood_ratio_interval_matches_scipy() -> None:
    rng = np.random.default_rng(11)
    windows = [(float(s), float(s + 15_000)) for s in rng.uniform(0, 10_000, size=20)]
    histories = _simulate(rng, 0.8, 1e-2, windows)
    fit = crow_amsaa(histories, confidence=0.95)
    assert fit is not None

    def profile(beta: float) -> float:  # lambda maximised numerically, not by the closed form
        best = optimize.minimize_scalar(lambda log_lam: -_log_likelihood(histories, log_lam, math.log(beta)),
                                        bounds=(-60, 10), method="bounded", options={"xatol": 1e-12})
        return -float(best.fun)

    top = profile(fit.beta)
    cut = stats.chi2.ppf(0.95, 1) / 2
    low = optimize.brentq(lambda b: top - profile(b) - cut, 0.05, fit.beta, xtol=1e-10)
    high = optimize.brentq(lambda b: top - profile(b) - cut, fit.beta, 5.0, xtol=1e-10)
    assert fit.beta_low == pytest.approx(low, rel=1e-4)
    assert fit.beta_high == pytest.approx(high, rel=1e-4)


def test_time_truncated_from_age_zero_uses_the_exact_chi_square() -> None:
    rng = np.random.default_rng(3)
    histories = _simulate(rng, 1.0, 1e-3, [(0.0, float(t)) for t in rng.uniform(5_000, 20_000, size=12)])
    fit = crow_amsaa(histories, confidence=0.80)
    assert fit is not None and fit.truncation == "time" and fit.interval == "chi-square (exact)"
    n = fit.failures
    logs = sum(math.log(h.end / a) for h in histories for a in h.failures)
    assert fit.beta == pytest.approx(n / logs)
    assert fit.lam == pytest.approx(n / sum(h.end**fit.beta for h in histories))
    assert fit.beta_low == pytest.approx(fit.beta * stats.chi2.ppf(0.10, 2 * n) / (2 * n), rel=1e-9)
    assert fit.beta_high == pytest.approx(fit.beta * stats.chi2.ppf(0.90, 2 * n) / (2 * n), rel=1e-9)


def _coverage(windows_of: object, beta: float, lam: float, fleets: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    hits = total = 0
    for _ in range(fleets):
        windows = windows_of(rng)  # type: ignore[operator]
        fit = crow_amsaa(_simulate(rng, beta, lam, windows), confidence=0.90)
        if fit is None:
            continue
        total += 1
        hits += fit.beta_low <= beta <= fit.beta_high
    assert total >= 0.95 * fleets
    return hits / total


FLEETS = 2000
"""Simulated fleets per calibration check: a 90 % interval then covers 88-92 % unless it is off
(3 standard deviations of the binomial either side)."""


@pytest.mark.slow
@pytest.mark.parametrize("beta", [0.6, 1.0, 1.8])
def test_exact_interval_covers_ninety_percent(beta: float) -> None:
    def windows(rng: np.random.Generator) -> list[tuple[float, float]]:
        return [(0.0, float(t)) for t in rng.uniform(4_000, 40_000, size=10)]

    lam = 12 / 20_000**beta  # about 12 failures per unit at 20,000 h
    assert 0.88 <= _coverage(windows, beta, lam / 10, FLEETS, seed=int(beta * 100)) <= 0.92


@pytest.mark.slow
@pytest.mark.parametrize("beta", [0.7, 1.0, 1.5])
def test_likelihood_ratio_interval_covers_ninety_percent(beta: float) -> None:
    def windows(rng: np.random.Generator) -> list[tuple[float, float]]:
        starts = rng.uniform(0, 30_000, size=12)
        return [(float(s), float(s + rng.uniform(3_000, 20_000))) for s in starts]

    lam = 3 / 20_000**beta
    assert 0.88 <= _coverage(windows, beta, lam, FLEETS, seed=int(beta * 1000)) <= 0.92


def test_trend_statistics_match_scipy() -> None:
    rng = np.random.default_rng(5)
    windows = [(float(s), float(s + 12_000)) for s in rng.uniform(0, 20_000, size=15)]
    histories = _simulate(rng, 1.4, 2e-6, windows)
    test = trend_test(histories)
    assert test is not None
    ages = [(a, h.start, h.end) for h in histories for a in h.failures]
    u = sum(a - (s + e) / 2 for a, s, e in ages) / math.sqrt(sum((e - s) ** 2 / 12 for _, s, e in ages))
    assert test.laplace_u == pytest.approx(u)
    assert test.laplace_p == pytest.approx(2 * stats.norm.sf(abs(u)))
    chi2 = 2 * sum(math.log((e - s) / (a - s)) for a, s, e in ages)
    assert test.chi2 == pytest.approx(chi2)
    cdf = stats.chi2.cdf(chi2, 2 * len(ages))
    assert test.chi2_p == pytest.approx(2 * min(cdf, 1 - cdf), abs=1e-12)


@pytest.mark.slow
def test_trend_verdict_errs_at_its_stated_rate_and_sees_wear() -> None:
    """At a constant rate the verdict says 'steady' about 90 % of the time (2,000 fleets);
    with beta 2 it says 'wearing out' nearly always, with beta 0.5 'improving'."""
    rng = np.random.default_rng(17)

    def verdict(beta: float) -> str:
        windows = [(float(s), float(s + 20_000)) for s in rng.uniform(0, 5_000, size=10)]
        test = trend_test(_simulate(rng, beta, 40 / 30_000**beta, windows))
        assert test is not None
        return test.verdict

    steady = sum(verdict(1.0) == STEADY for _ in range(FLEETS)) / FLEETS
    assert 0.88 <= steady <= 0.92
    assert sum(verdict(2.0) == WEARING_OUT for _ in range(200)) >= 190
    assert sum(verdict(0.5) == IMPROVING for _ in range(200)) >= 190


@pytest.mark.parametrize("seed", range(4))
def test_weibull_with_suspensions_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lifetimes = 9_000 * rng.weibull(1.7, size=60)
    censor = rng.uniform(2_000, 15_000, size=60)
    failed = [float(t) for t, c in zip(lifetimes, censor, strict=True) if t <= c]
    suspended = [float(c) for t, c in zip(lifetimes, censor, strict=True) if t > c]
    fit = weibull(failed, suspended, confidence=0.90)
    assert fit is not None
    data = stats.CensoredData(uncensored=failed, right=suspended)
    shape, _, scale = stats.weibull_min.fit(data, floc=0)
    assert fit.shape == pytest.approx(shape, rel=1e-4)
    assert fit.scale == pytest.approx(scale, rel=1e-4)

    def nll(p: np.ndarray) -> float:
        k, eta = p
        return -float(stats.weibull_min.logpdf(failed, k, scale=eta).sum()
                      + stats.weibull_min.logsf(suspended, k, scale=eta).sum())

    # observed information by central differences of SciPy's likelihood
    point, steps = np.array([fit.shape, fit.scale]), np.array([1e-4 * fit.shape, 1e-4 * fit.scale])
    hessian = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            ei, ej = np.eye(2)[i] * steps[i], np.eye(2)[j] * steps[j]
            hessian[i, j] = (nll(point + ei + ej) - nll(point + ei - ej) - nll(point - ei + ej)
                             + nll(point - ei - ej)) / (4 * steps[i] * steps[j])
    se_k, se_eta = np.sqrt(np.diag(np.linalg.inv(hessian)))
    z = stats.norm.ppf(0.95)
    assert fit.shape_high == pytest.approx(fit.shape * math.exp(z * se_k / fit.shape), rel=1e-3)
    assert fit.scale_low == pytest.approx(fit.scale / math.exp(z * se_eta / fit.scale), rel=1e-3)


def test_age_bands_add_up_to_the_whole() -> None:
    histories = [SystemHistory(0, 12_000, (100.0, 5_000.0, 11_999.0)),
                 SystemHistory(3_000, 7_000, (6_500.0,))]
    bands = age_bands(histories, 5_000, confidence=0.90)
    assert [(b.low, b.failures, b.exposure_hours) for b in bands] == [
        (0, 1, 5_000 + 2_000), (5_000, 2, 5_000 + 2_000), (10_000, 1, 2_000)
    ]
    assert bands[1].mtbf.lower_one_sided == pytest.approx(2 * 7_000 / stats.chi2.ppf(0.90, 6))


@settings(max_examples=50, deadline=None)
@given(target=st.floats(100, 1e6), hours=st.floats(0, 1e6), failures=st.integers(0, 50),
       confidence=st.floats(0.5, 0.995))
def test_hours_to_demonstrate_reach_the_target_exactly(
    target: float, hours: float, failures: int, confidence: float
) -> None:
    needed = hours_to_demonstrate(target, hours, failures, confidence)
    lower = 2 * (hours + needed) / stats.chi2.ppf(confidence, 2 * failures + 2)
    if needed > 0:
        assert lower == pytest.approx(target, rel=1e-9)
        assert mtbf(hours + needed, failures, confidence).lower_one_sided == pytest.approx(target, rel=1e-9)
    else:
        assert lower >= target * (1 - 1e-12)


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError):
        hours_to_demonstrate(0, 10, 0)
    with pytest.raises(ValueError):
        crow_amsaa([], confidence=1.0)
    with pytest.raises(ValueError):
        SystemHistory(10, 5)
    assert crow_amsaa([SystemHistory(0, 100, (50.0,))]) is None
    assert trend_test([SystemHistory(0, 100)]) is None


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1000), st.floats(1, 1000),
                          st.lists(st.floats(0, 1, exclude_min=True), max_size=5)),
                min_size=1, max_size=8))
def test_mean_cumulative_weighs_each_failure_by_the_units_observed(
    units: list[tuple[float, float, list[float]]]
) -> None:
    histories = [SystemHistory(start, start + length, tuple(sorted(start + f * length for f in fractions)))
                 for start, length, fractions in units]
    points = mean_cumulative(histories)
    ages = sorted(age for h in histories for age in h.failures)
    assert [age for age, _ in points] == ages
    expected = 0.0
    for (age, value) in points:
        expected += 1 / sum(h.start <= age <= h.end for h in histories)
        assert value == pytest.approx(expected)
    if all(h.start == 0 and h.end == histories[0].end for h in histories) and points:
        assert points[-1][1] == pytest.approx(len(ages) / len(histories))
