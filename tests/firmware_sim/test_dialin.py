"""Dial-in fates: seeded per unit and per call, in the shares asked for, refused when impossible."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.dialin import Answer, DialFaults, Exchange
from firmware_sim.errors import ConfigError

shares = st.floats(min_value=0.0, max_value=0.5)


@given(st.text(max_size=12), shares, shares, shares, st.integers(min_value=1, max_value=10**6))
def test_the_nth_call_meets_the_same_fate_in_every_run(
    seed: str, busy: float, silent: float, drop: float, within: int
) -> None:
    faults = DialFaults(delay_s=1.5, busy=busy, silent=silent, drop=drop, drop_within=within)
    first, again = Exchange(faults, seed), Exchange(faults, seed)
    fates = [first.next_call() for _ in range(20)]
    assert fates == [again.next_call() for _ in range(20)]
    for fate in fates:
        if fate.answer is Answer.ANSWERED:
            assert fate.delay_s == 1.5
            assert fate.drop_after is None or 1 <= fate.drop_after <= within
        else:
            assert fate.drop_after is None


@pytest.mark.parametrize(("busy", "silent", "drop"), [(0.1, 0.0, 0.1), (0.3, 0.2, 0.0), (0.0, 0.0, 0.5)])
def test_calls_meet_each_mishap_in_its_share(busy: float, silent: float, drop: float) -> None:
    exchange = Exchange(DialFaults(busy=busy, silent=silent, drop=drop), "C60-000001")
    fates = [exchange.next_call() for _ in range(4000)]
    answered = [fate for fate in fates if fate.answer is Answer.ANSWERED]
    assert sum(fate.answer is Answer.BUSY for fate in fates) / 4000 == pytest.approx(busy, abs=0.02)
    assert sum(fate.answer is Answer.SILENT for fate in fates) / 4000 == pytest.approx(silent, abs=0.02)
    dropped = sum(fate.drop_after is not None for fate in answered)
    assert dropped / len(answered) == pytest.approx(drop, abs=0.03)


def test_units_of_one_fleet_do_not_share_their_fates() -> None:
    faults = DialFaults(busy=0.5)
    one, other = Exchange(faults, "1:C30-000001"), Exchange(faults, "1:C30-000002")
    assert [one.next_call() for _ in range(32)] != [other.next_call() for _ in range(32)]


def test_the_dial_spec_reads_every_key() -> None:
    assert DialFaults.parse("delay=2,busy=0.05,silent=0.02,drop=0.1,drop_within=500") == DialFaults(
        2.0, 0.05, 0.02, 0.1, 500
    )
    assert DialFaults.parse("") == DialFaults()


@pytest.mark.parametrize(
    "spec", ["busy=-0.1", "drop=2", "busy=0.7,silent=0.4", "delay=-1", "drop_within=0", "ring=2", "busy"]
)
def test_an_impossible_dial_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        DialFaults.parse(spec)
