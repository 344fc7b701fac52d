"""Chi-square quantiles and MTBF bounds against the worked values of REFERENCE.md and tables."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host.reliability import MtbfEstimate, availability, chi2_cdf, chi2_quantile, mtbf


def test_worked_example_four_failures_in_50000_hours() -> None:
    estimate = mtbf(50_000, 4, 0.90)
    assert estimate.point == 12_500
    assert round(estimate.lower_one_sided) == 6_255
    assert (round(estimate.ci_low), round(estimate.ci_high)) == (5_462, 36_595)


def test_worked_example_no_failure_in_50000_hours() -> None:
    estimate = mtbf(50_000, 0, 0.90)
    assert estimate.point is None
    assert round(estimate.lower_one_sided) == 21_715
    assert estimate.ci_high == math.inf
    assert estimate.ci_low == pytest.approx(50_000 / math.log(20))


def test_zero_failure_bound_is_the_chi_square_bound_with_two_degrees() -> None:
    assert mtbf(50_000, 0).lower_one_sided == pytest.approx(2 * 50_000 / chi2_quantile(0.90, 2), rel=1e-12)


@pytest.mark.parametrize(
    ("p", "k", "table"),
    [
        (0.95, 2, 5.991), (0.05, 2, 0.103), (0.90, 10, 15.987), (0.95, 10, 18.307), (0.05, 8, 2.733),
        (0.975, 20, 34.170), (0.025, 20, 9.591), (0.99, 100, 135.807), (0.01, 1000, 898.912),
    ],
)
def test_quantiles_match_published_tables(p: float, k: int, table: float) -> None:
    assert chi2_quantile(p, k) == pytest.approx(table, abs=5e-4)


@settings(max_examples=200, deadline=None)
@given(p=st.floats(1e-9, 1 - 1e-9), half_k=st.integers(1, 500))
def test_quantile_inverts_the_distribution_function(p: float, half_k: int) -> None:
    k = 2 * half_k
    x = chi2_quantile(p, k)
    assert chi2_cdf(x, k) == pytest.approx(p, rel=1e-9, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(x=st.floats(0, 2000), half_k=st.integers(1, 300))
def test_distribution_function_is_a_probability_rising_with_x(x: float, half_k: int) -> None:
    k = 2 * half_k
    assert 0.0 <= chi2_cdf(x, k) <= chi2_cdf(x * 1.01 + 0.01, k) <= 1.0


@settings(max_examples=200, deadline=None)
@given(
    hours=st.floats(1, 1e8),
    failures=st.integers(0, 2000),
    confidence=st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]),
)
def test_interval_contains_the_point_estimate(hours: float, failures: int, confidence: float) -> None:
    estimate = mtbf(hours, failures, confidence)
    assert 0 < estimate.ci_low <= estimate.lower_one_sided
    if failures:
        assert estimate.point is not None
        assert estimate.ci_low < estimate.point < estimate.ci_high < math.inf
    else:
        assert estimate.point is None and estimate.ci_high == math.inf


def test_estimates_are_frozen_values() -> None:
    estimate = mtbf(1000, 1)
    assert isinstance(estimate, MtbfEstimate)
    with pytest.raises(AttributeError):
        estimate.point = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "call",
    [
        lambda: chi2_quantile(0.5, 3),
        lambda: chi2_quantile(0.5, 0),
        lambda: chi2_quantile(1.0, 2),
        lambda: chi2_quantile(0.0, 2),
        lambda: mtbf(-1, 0),
        lambda: mtbf(1, -1),
        lambda: mtbf(1, 1, 1.0),
        lambda: availability(0, 0),
        lambda: availability(10, 11),
    ],
)
def test_invalid_arguments_raise_value_error(call) -> None:
    with pytest.raises(ValueError):
        call()


def test_availability_is_the_fraction_of_time_not_down() -> None:
    assert availability(1000, 0) == 1.0
    assert availability(1000, 250) == 0.75
    assert availability(1000, 1000) == 0.0
