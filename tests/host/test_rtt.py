"""The round-trip estimator (host.rtt): RFC 6298's smoothing, on numbers alone."""

from __future__ import annotations

import pytest

from host.rtt import MAX_RTO_S, RoundTrip


def test_before_any_sample_it_adds_nothing() -> None:
    rtt = RoundTrip()
    assert rtt.srtt is None and rtt.rto == 0.0


def test_the_first_sample_counts_with_half_of_itself_as_variation() -> None:
    rtt = RoundTrip()
    rtt.sample(3.0)
    assert (rtt.srtt, rtt.rttvar) == (3.0, 1.5)
    assert rtt.rto == pytest.approx(9.0)


def test_a_steady_link_tightens_towards_its_round_trip() -> None:
    rtt = RoundTrip()
    for _ in range(40):
        rtt.sample(0.5)
    assert rtt.srtt == pytest.approx(0.5)
    assert 0.5 <= rtt.rto < 0.51


def test_a_link_that_slows_down_is_followed_by_one_sample() -> None:
    """What a pull relies on when a modem's round trip grows mid-pull: the ABORT after a stall
    times the new link, and the RTO covers it at once."""
    rtt = RoundTrip()
    for _ in range(20):
        rtt.sample(0.2)
    rtt.sample(3.0)
    assert rtt.rto > 3.0


def test_samples_below_zero_count_as_zero_and_the_rto_is_capped() -> None:
    rtt = RoundTrip()
    rtt.sample(-1.0)
    assert rtt.rto == 0.0
    rtt.sample(1000.0)
    assert rtt.rto == MAX_RTO_S
