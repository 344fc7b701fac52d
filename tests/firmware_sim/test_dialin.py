"""Dial-in fates: seeded per unit and per call, in the shares asked for, refused when impossible."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.dialin import Answer, DialFaults, Exchange
from firmware_sim.errors import ConfigError, SimulatorError
from firmware_sim.fleet import parse_mix, plan_served_fleet
from firmware_sim.served_fleet import parse_ports, sectors_for

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


def test_a_served_fleet_plan_is_reproducible_and_follows_the_mix() -> None:
    plan = plan_served_fleet(10, parse_mix("C30:0.3,C65:0.7"), 3, 1_704_067_200, 7 * 86400)
    assert plan == plan_served_fleet(10, parse_mix("C30:0.3,C65:0.7"), 3, 1_704_067_200, 7 * 86400)
    assert sorted(p.model for p in plan) == ["C30"] * 3 + ["C65"] * 7
    assert [p.serial[-6:] for p in plan] == [f"{n:06d}" for n in range(1, 11)]
    assert len({p.seed for p in plan}) == 10
    assert all(p.calendar_s == 7 * 86400 for p in plan)
    assert plan != plan_served_fleet(10, parse_mix("C30:0.3,C65:0.7"), 4, 1_704_067_200, 7 * 86400)


@pytest.mark.parametrize(
    ("text", "ports"),
    [("7000", ("127.0.0.1", 7000, None)), ("127.0.0.2:7000-7999", ("127.0.0.2", 7000, 7999)),
     ("0", ("127.0.0.1", 0, None)), ("localhost:9000-9000", ("localhost", 9000, 9000))],
)
def test_ports_are_one_or_a_range(text: str, ports: tuple[str, int, int | None]) -> None:
    assert parse_ports(text) == ports


@pytest.mark.parametrize("text", ["7000-6999", "0-10", "x:7000-y", "7000-70000"])
def test_a_bad_port_range_is_refused(text: str) -> None:
    with pytest.raises(SimulatorError, match="port|address"):
        parse_ports(text)


def test_a_generated_unit_flash_holds_its_history_with_room() -> None:
    week = sectors_for(7 * 86400, 900)
    assert sectors_for(14 * 86400, 900) > week > sectors_for(86400, 900) >= 4
