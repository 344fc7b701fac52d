"""Ambient conditions at a site, and how they derate a microturbine.

Temperature is an annual cycle plus a daily cycle (warmest at 15:00 local)
plus weather; pressure is the site's altitude pressure plus weather.  Weather
is a seeded anomaly drawn at knots every 12 hours and interpolated smoothly
between them; each knot comes from its own ``random.Random`` seeded with the
site seed and the knot's index, so a value depends only on (seed, time),
never on which times were asked for before.

:func:`derate` gives the fraction of rated output available: flat up to ISO
15 degC, then falling by 0.85 % per degree, and in proportion to pressure
below ISO 101.325 kPa.

This module must not read the wall clock or global randomness, and knows
nothing about engines or records.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .errors import ConfigError

ISO_AMBIENT_C = 15.0
ISO_PRESSURE_KPA = 101.325
DERATE_PER_C = 0.0085
"""Fraction of rated output lost per degree above ISO temperature."""

DAY_S = 86_400
YEAR_S = 365.2422 * DAY_S
WARMEST_HOUR_S = 15 * 3600
WEATHER_KNOT_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Site:
    """Where a unit stands: its climate and its local time zone."""

    name: str
    mean_c: float
    """Annual mean temperature."""
    annual_amplitude_c: float
    """Half the difference between the warmest and coldest days' means."""
    daily_amplitude_c: float
    """Half the difference between afternoon and pre-dawn temperatures."""
    weather_c: float = 3.0
    """Standard deviation of the weather's temperature anomaly."""
    weather_kpa: float = 0.8
    """Standard deviation of the weather's pressure anomaly."""
    altitude_m: float = 0.0
    utc_offset_s: int = 0
    """Local time minus UTC, seconds (used for the daily cycle and by duty profiles)."""
    warmest_day: int = 200
    """Day of the year (0 = 1 January) of the annual maximum; about 20 in the southern hemisphere."""
    grid: tuple[float, float] = (480.0, 60.0)
    """The utility's line-to-line voltage and frequency: a unit there is wired for it."""

    def __post_init__(self) -> None:
        if min(self.annual_amplitude_c, self.daily_amplitude_c, self.weather_c, self.weather_kpa) < 0:
            raise ConfigError(f"site {self.name!r}: amplitudes and weather spreads must not be negative")
        if not -12 * 3600 <= self.utc_offset_s <= 14 * 3600:
            raise ConfigError(f"site {self.name!r}: UTC offset {self.utc_offset_s} s is not in -12..+14 h")

    @property
    def mean_pressure_kpa(self) -> float:
        """Standard-atmosphere pressure at the site's altitude."""
        return ISO_PRESSURE_KPA * float((1 - 2.25577e-5 * self.altitude_m) ** 5.25588)


SITES: dict[str, Site] = {
    site.name: site
    for site in (
        Site("iso", ISO_AMBIENT_C, 0.0, 0.0, weather_c=0.0, weather_kpa=0.0),
        Site("temperate", 11.0, 8.0, 5.0, utc_offset_s=3600, grid=(400.0, 50.0)),
        Site("desert", 24.0, 11.0, 6.5, weather_c=2.0, weather_kpa=0.5, altitude_m=330,
             utc_offset_s=-7 * 3600),
        Site("cold", 2.0, 14.0, 4.0, weather_c=4.5, weather_kpa=1.0, utc_offset_s=-6 * 3600),
    )
}
DEFAULT_SITE = SITES["temperate"]


def get_site(name: str) -> Site:
    """The predefined site called *name*; ConfigError (a ValueError) naming the known ones otherwise."""
    try:
        return SITES[name]
    except KeyError:
        raise ConfigError(f"unknown site {name!r}; known sites: {', '.join(SITES)}") from None


def derate(ambient_c: float, pressure_kpa: float) -> float:
    """Fraction of rated output the engine can give at these conditions (0..1)."""
    heat = 1.0 - DERATE_PER_C * (ambient_c - ISO_AMBIENT_C) if ambient_c > ISO_AMBIENT_C else 1.0
    return max(0.0, min(1.0, heat * pressure_kpa / ISO_PRESSURE_KPA))


class Climate:
    """Seeded ambient temperature and pressure at one site, as functions of Unix time."""

    def __init__(self, site: Site, *, seed: int) -> None:
        self.site = site
        self._seed = seed
        self._offset = site.utc_offset_s
        self._annual_phase_s = site.warmest_day * DAY_S + WARMEST_HOUR_S
        self._pressure = site.mean_pressure_kpa
        self._knot_index = -1
        self._knots = (0.0, 0.0, 0.0, 0.0)

    def _weather(self, index: int) -> tuple[float, float]:
        rng = random.Random(f"{self._seed}:weather:{index}")
        return rng.gauss(0.0, self.site.weather_c), rng.gauss(0.0, self.site.weather_kpa)

    def conditions(self, t: float) -> tuple[float, float]:
        """``(ambient_c, pressure_kpa)`` at Unix time *t*."""
        site = self.site
        local = t + self._offset
        temp = (
            site.mean_c
            + site.annual_amplitude_c * math.cos(2 * math.pi * (local - self._annual_phase_s) / YEAR_S)
            + site.daily_amplitude_c * math.cos(2 * math.pi * (local - WARMEST_HOUR_S) / DAY_S)
        )
        index = int(t // WEATHER_KNOT_S)
        if index != self._knot_index:
            self._knots = (*self._weather(index), *self._weather(index + 1))
            self._knot_index = index
        t0, p0, t1, p1 = self._knots
        w = 0.5 - 0.5 * math.cos(math.pi * (t - index * WEATHER_KNOT_S) / WEATHER_KNOT_S)
        return temp + t0 + (t1 - t0) * w, self._pressure + p0 + (p1 - p0) * w
