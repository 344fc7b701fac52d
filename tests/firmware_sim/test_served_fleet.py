"""The parts of serve-fleet: its plans, its ports, its units' flash, units the same wherever they lived."""

from __future__ import annotations

import time

import pytest

from firmware_sim import served_fleet
from firmware_sim.errors import SimulatorError
from firmware_sim.fleet import parse_mix, plan_served_fleet
from firmware_sim.served_fleet import parse_ports, sectors_for


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


def test_units_lived_in_worker_processes_come_back_with_the_same_lives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same plans lived here and in two worker processes: the same logs, and the same lives on after."""
    monkeypatch.setattr(served_fleet, "UNITS_PER_BATCH", 2)
    plans = plan_served_fleet(5, parse_mix("C30:0.5,C65:0.5"), 7, 1_704_067_200, 2 * 86400)
    options = {"sample_interval_s": 900, "speed": 1.0, "baud": 9600, "sectors": None, "wall": time.monotonic}
    here = served_fleet.generated_units(plans, **options)  # type: ignore[arg-type]
    there = served_fleet.generated_units(plans, workers=2, **options)  # type: ignore[arg-type]
    try:
        for ours, theirs in zip(here, there, strict=True):
            for member in (ours, theirs):
                member.clock.skip(86400)
                member.unit.tick()
            assert ours.unit.serial == theirs.unit.serial and ours.unit.log_id == theirs.unit.log_id
            assert ours.unit.next_seq > 2 * 96 + 96
            assert list(ours.unit.iter_raw(0, ours.unit.next_seq)) == list(
                theirs.unit.iter_raw(0, theirs.unit.next_seq)
            )
    finally:
        served_fleet.close_units(here)
        served_fleet.close_units(there)
