"""The live screen as a pure function: a fault is shown by its meaning, changed values are marked."""

from __future__ import annotations

from typing import Any

from host.fields import snapshot_fields
from host.live import live_view
from protocol.fault_codes import FAULT_CODES
from protocol.records import Snapshot


def reading(**changes: int) -> dict[str, Any]:
    raw: dict[str, int] = {
        "state": 4, "mode": 0, "active_fault": 0, "speed_rpm": 96_000, "power_w": 58_300,
        "tet1_c_x10": 6429, "tet2_c_x10": 6371, "compressor_inlet_c_x10": 32, "ambient_c_x10": 2,
        "ambient_pressure_kpa_x100": 10097, "fuel_valve_pct_x10": 798, "fuel_power_w": 207_500,
        "dc_bus_v_x10": 7560, "grid_voltage_v_x10": 3988, "grid_freq_hz_x1000": 50_012,
        "operating_s": 359_640, "starts": 2, "trips": 0, "energy_wh": 5_825_000,
    }
    raw.update(changes)
    return {**snapshot_fields(Snapshot(**raw)), "time": "2024-01-05T04:00:05+00:00"}


def mark(text: str) -> str:
    return f"[{text}]"


def test_an_active_fault_is_shown_by_its_name_and_action_not_a_bare_number() -> None:
    screen = live_view("C60-000001", "C60", reading(active_fault=5005, state=10))
    assert "5005 TET over-temperature (FAST_SHUTDOWN, ENGINE)" in screen
    assert FAULT_CODES[5005].action in screen
    assert "FAULT_LOCKOUT" in screen


def test_a_code_the_table_does_not_know_is_still_shown() -> None:
    assert "9999 (unknown code)" in live_view("X", "C60", reading(active_fault=9999))


def test_no_fault_says_none() -> None:
    assert "fault      none" in live_view("X", "C60", reading())


def test_values_shown_differently_from_the_last_refresh_are_marked() -> None:
    before, after = reading(), reading(speed_rpm=95_000, active_fault=4001, energy_wh=5_825_010)
    screen = live_view("X", "C60", after, before, mark=mark)
    assert "[   95,000]" in screen
    assert "[4001 Fuel inlet pressure low]" in screen
    assert "[5,825]" not in screen and "5,825 kWh" in screen  # a change too small to show is not marked
    assert screen.count("[") == 2


def test_nothing_is_marked_without_a_previous_reading_or_without_a_change() -> None:
    assert "[" not in live_view("X", "C60", reading(), None, mark=mark)
    assert "[" not in live_view("X", "C60", reading(), reading(), mark=mark)


def test_the_status_line_ends_the_screen() -> None:
    screen = live_view("X", "C60", reading(), status="connection lost; reconnecting, attempt 2")
    assert screen.splitlines()[-1] == "connection lost; reconnecting, attempt 2"
