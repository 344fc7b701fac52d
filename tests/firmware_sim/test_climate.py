"""Site climate (seeded, cyclic, with weather) and the derating it causes."""

from __future__ import annotations

import statistics
from itertools import pairwise

import pytest

from firmware_sim.climate import ISO_PRESSURE_KPA, SITES, Climate, Site, derate, get_site

JAN_1_2024 = 1_704_067_200
DAY = 86_400
HOUR = 3600


def test_same_seed_gives_the_same_weather_whatever_order_it_is_asked_in() -> None:
    times = [JAN_1_2024 + k * 7919 for k in range(200)]
    forward = Climate(SITES["temperate"], seed=7)
    backward = Climate(SITES["temperate"], seed=7)
    expected = [forward.conditions(t) for t in times]
    assert [backward.conditions(t) for t in reversed(times)] == expected[::-1]


def test_different_seeds_give_different_weather() -> None:
    a = Climate(SITES["temperate"], seed=1)
    b = Climate(SITES["temperate"], seed=2)
    times = range(JAN_1_2024, JAN_1_2024 + 10 * DAY, HOUR)
    assert [a.conditions(t) for t in times] != [b.conditions(t) for t in times]


def test_weather_is_smooth() -> None:
    climate = Climate(SITES["cold"], seed=3)
    temps = [climate.conditions(t)[0] for t in range(JAN_1_2024, JAN_1_2024 + 20 * DAY, 600)]
    assert max(abs(b - a) for a, b in pairwise(temps)) < 1.0


def test_summer_is_warmer_than_winter_in_the_north() -> None:
    climate = Climate(SITES["temperate"], seed=4)
    january = [climate.conditions(JAN_1_2024 + k * HOUR)[0] for k in range(31 * 24)]
    july = [climate.conditions(JAN_1_2024 + 182 * DAY + k * HOUR)[0] for k in range(31 * 24)]
    assert statistics.mean(july) - statistics.mean(january) > 12


def test_afternoons_are_warmer_than_nights() -> None:
    site = SITES["desert"]
    climate = Climate(site, seed=5)
    local_midnights = [JAN_1_2024 + d * DAY - site.utc_offset_s for d in range(30)]
    afternoons = [climate.conditions(m + 15 * HOUR)[0] for m in local_midnights]
    nights = [climate.conditions(m + 4 * HOUR)[0] for m in local_midnights]
    assert statistics.mean(afternoons) - statistics.mean(nights) > 10


def test_desert_summer_afternoons_reach_the_forties() -> None:
    site = SITES["desert"]
    climate = Climate(site, seed=6)
    july_afternoons = [climate.conditions(JAN_1_2024 + (182 + d) * DAY + 15 * HOUR - site.utc_offset_s)[0]
                       for d in range(31)]
    assert 38 < statistics.mean(july_afternoons) < 48


def test_pressure_stays_near_sea_level_pressure_with_weather() -> None:
    climate = Climate(SITES["temperate"], seed=8)
    pressures = [climate.conditions(t)[1] for t in range(JAN_1_2024, JAN_1_2024 + 365 * DAY, 3 * HOUR)]
    assert statistics.mean(pressures) == pytest.approx(ISO_PRESSURE_KPA, abs=0.3)
    assert 0.3 < statistics.stdev(pressures) < 1.5
    assert all(96 < p < 106 for p in pressures)


def test_altitude_lowers_pressure() -> None:
    assert SITES["desert"].mean_pressure_kpa == pytest.approx(97.4, abs=0.2)
    assert Site("high", 10, 5, 5, altitude_m=1500).mean_pressure_kpa == pytest.approx(84.6, abs=0.3)


def test_the_iso_site_is_iso_conditions() -> None:
    climate = Climate(SITES["iso"], seed=9)
    for t in range(JAN_1_2024, JAN_1_2024 + 365 * DAY, 7 * HOUR):
        assert climate.conditions(t) == pytest.approx((15.0, ISO_PRESSURE_KPA))


def test_derating_is_flat_up_to_15_c_then_falls() -> None:
    assert all(derate(t, ISO_PRESSURE_KPA) == 1.0 for t in range(-30, 16))
    above = [derate(t, ISO_PRESSURE_KPA) for t in range(15, 51)]
    assert all(b < a for a, b in pairwise(above))
    assert derate(40, ISO_PRESSURE_KPA) < 0.85
    assert derate(50, ISO_PRESSURE_KPA) < 0.75
    assert derate(50, ISO_PRESSURE_KPA) > 0.5


def test_thin_air_derates_and_dense_air_does_not_exceed_rated() -> None:
    assert derate(15, 90.0) == pytest.approx(90.0 / ISO_PRESSURE_KPA)
    assert derate(0, 104.0) == 1.0


def test_unknown_site_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="temperate"):
        get_site("atlantis")


def test_negative_amplitudes_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        Site("odd", 10, -1, 5)
