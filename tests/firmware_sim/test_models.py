"""Model profiles: the published figures, their consistency, and lookup by name."""

from __future__ import annotations

import dataclasses

import pytest

from firmware_sim.models import C60, PROFILES, ModelProfile, get_profile


@pytest.mark.parametrize(
    ("name", "rated_w", "efficiency", "heat_rate", "fuel_kj_h", "exhaust_c", "mtbf_h"),
    [
        ("C30", 30_000, 0.26, 13_800, 415_000, 275, 15_000),
        ("C60", 60_000, 0.28, 12_900, 771_000, 305, 8_000),
        ("C65", 65_000, 0.29, 12_400, 800_000, 309, 10_000),
    ],
)
def test_profiles_carry_the_published_figures(
    name: str,
    rated_w: int,
    efficiency: float,
    heat_rate: int,
    fuel_kj_h: int,
    exhaust_c: float,
    mtbf_h: float,
) -> None:
    p = PROFILES[name]
    assert (p.name, p.rated_power_w, p.efficiency) == (name, rated_w, efficiency)
    assert (p.heat_rate_kj_per_kwh, p.fuel_input_kj_per_h, p.exhaust_c, p.mtbf_h) == (
        heat_rate, fuel_kj_h, exhaust_c, mtbf_h,
    )


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES)
def test_efficiency_heat_rate_and_fuel_agree(profile: ModelProfile) -> None:
    assert 3600 / profile.efficiency == pytest.approx(profile.heat_rate_kj_per_kwh, rel=0.02)
    assert profile.rated_power_w / profile.fuel_input_w == pytest.approx(profile.efficiency, rel=0.03)


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES)
def test_speeds_temperatures_and_voltages_are_plausible(profile: ModelProfile) -> None:
    assert profile.full_rpm <= 96_000
    assert 40_000 <= profile.idle_rpm <= 50_000
    assert profile.tet_idle_c < profile.tet_full_c < profile.tet_limit_c <= 700
    assert 700 <= profile.dc_bus_v <= 800
    assert (profile.grid_voltage_v, profile.grid_freq_hz) == (480, 60)
    assert profile.max_auto_restarts >= 1
    assert profile.restart_window_h > 0 and profile.restart_limit_repair_h > 0


def test_a_profile_can_be_wired_for_400_v_50_hz() -> None:
    european = C60.with_grid(400, 50)
    assert (european.grid_voltage_v, european.grid_freq_hz) == (400, 50)
    assert european.rated_power_w == C60.rated_power_w


@pytest.mark.parametrize(("volts", "hertz"), [(400, 60), (480, 50), (230, 50)])
def test_unsupported_grids_are_refused(volts: float, hertz: float) -> None:
    with pytest.raises(ValueError, match="400 V / 50 Hz"):
        C60.with_grid(volts, hertz)


def test_inconsistent_figures_are_refused() -> None:
    with pytest.raises(ValueError, match="efficiency"):
        dataclasses.replace(C60, efficiency=0.35)
    with pytest.raises(ValueError, match="speeds"):
        dataclasses.replace(C60, idle_rpm=99_000)


def test_profiles_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        C60.rated_power_w = 1  # type: ignore[misc]


def test_get_profile_by_name() -> None:
    assert get_profile("C65") is PROFILES["C65"]
    assert get_profile("c30") is PROFILES["C30"]


def test_get_profile_names_the_known_models_for_an_unknown_one() -> None:
    with pytest.raises(ValueError, match="C30, C60, C65"):
        get_profile("C200")
