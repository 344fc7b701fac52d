"""Duty profiles: when the site wants the unit running, and at what power.

A duty profile answers three questions about simulated Unix time *t*:
:meth:`~DutyProfile.demand` (should the unit run?), :meth:`~DutyProfile.next_change`
(when may that answer change next?) and :meth:`~DutyProfile.setpoint` (the
fraction of the power available now that the site asks for).  Profiles:

- ``baseload``: run around the clock at full available (rated or derated) power;
- ``peak-shaving``: run on weekdays from 07:00 to 21:00 local time at full power;
- ``load-following``: run around the clock following a seeded daily load curve
  between 30 % and 100 % (lower at night and at weekends).

Profiles are pure functions of (seed, time): they never read the wall clock or
global randomness, and know nothing about engines, faults or records.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from typing import ClassVar

from .errors import ConfigError

DAY_S = 86_400
HOUR_S = 3600

MIN_SETPOINT = 0.30
MAX_SETPOINT = 1.00


_EPOCH_WEEKDAY = 3
"""1970-01-01 was a Thursday (Monday = 0)."""


class DutyProfile(ABC):
    """When and how hard the site runs the unit."""

    name: ClassVar[str]

    def __init__(self, *, seed: int, utc_offset_s: int = 0) -> None:
        self.seed = seed
        self.utc_offset_s = utc_offset_s

    @abstractmethod
    def demand(self, t: float) -> bool:
        """True when the site wants the unit running at time *t*."""

    @abstractmethod
    def next_change(self, t: float) -> float:
        """The first time after *t* at which :meth:`demand` may change (``inf`` if never)."""

    @abstractmethod
    def setpoint(self, t: float) -> float:
        """Requested output as a fraction (0..1) of the power available at time *t*."""


class Baseload(DutyProfile):
    """Around the clock at full available power."""

    name = "baseload"

    def demand(self, t: float) -> bool:
        return True

    def next_change(self, t: float) -> float:
        return math.inf

    def setpoint(self, t: float) -> float:
        return 1.0


class PeakShaving(DutyProfile):
    """Monday to Friday from ``start_hour`` to ``stop_hour`` local time, at full available power."""

    name = "peak-shaving"
    start_hour: ClassVar[int] = 7
    stop_hour: ClassVar[int] = 21
    days_per_week: ClassVar[int] = 5

    def demand(self, t: float) -> bool:
        day, second_of_day = divmod(t + self.utc_offset_s, DAY_S)
        return (
            (int(day) + _EPOCH_WEEKDAY) % 7 < self.days_per_week
            and self.start_hour * HOUR_S <= second_of_day < self.stop_hour * HOUR_S
        )

    def next_change(self, t: float) -> float:
        day = int((t + self.utc_offset_s) // DAY_S)
        for d in range(day, day + 8):
            if (d + _EPOCH_WEEKDAY) % 7 >= self.days_per_week:
                continue
            for hour in (self.start_hour, self.stop_hour):
                edge = d * DAY_S + hour * HOUR_S - self.utc_offset_s
                if edge > t:
                    return float(edge)
        raise AssertionError("a week always has a working day")  # pragma: no cover

    def setpoint(self, t: float) -> float:
        return 1.0


_WEEKDAY_SHAPE = (
    0.40, 0.37, 0.35, 0.35, 0.36, 0.42, 0.55, 0.72, 0.85, 0.92, 0.95, 0.97,
    0.96, 0.97, 0.98, 0.97, 0.94, 0.90, 0.86, 0.80, 0.70, 0.60, 0.50, 0.44,
)
"""A commercial site's load by local hour, as a fraction of the unit's power."""

_WEEKEND_SCALE = 0.75
class LoadFollowing(DutyProfile):
    """Around the clock, following a seeded daily load curve (30-100 %).

    Each local day's 24 hourly values come from a ``random.Random`` seeded
    with the profile seed and the day number: the day's level varies, each
    hour has its own noise, weekends run lower.  The setpoint is linear
    between hourly values (across midnight too).
    """

    name = "load-following"

    def __init__(self, *, seed: int, utc_offset_s: int = 0) -> None:
        super().__init__(seed=seed, utc_offset_s=utc_offset_s)
        self._days: dict[int, tuple[float, ...]] = {}

    def _day(self, day: int) -> tuple[float, ...]:
        curve = self._days.get(day)
        if curve is None:
            rng = random.Random(f"{self.seed}:load:{day}")
            level = rng.uniform(0.85, 1.05)
            if (day + _EPOCH_WEEKDAY) % 7 >= 5:
                level *= _WEEKEND_SCALE
            curve = tuple(
                min(MAX_SETPOINT, max(MIN_SETPOINT, base * level + rng.gauss(0.0, 0.04)))
                for base in _WEEKDAY_SHAPE
            )
            if len(self._days) > 4:
                self._days.clear()
            self._days[day] = curve
        return curve

    def demand(self, t: float) -> bool:
        return True

    def next_change(self, t: float) -> float:
        return math.inf

    def setpoint(self, t: float) -> float:
        local = t + self.utc_offset_s
        day, second = divmod(local, DAY_S)
        hour, within = divmod(second, HOUR_S)
        hour = int(hour)
        curve = self._day(int(day))
        now = curve[hour]
        after = curve[hour + 1] if hour < 23 else self._day(int(day) + 1)[0]
        return now + (after - now) * within / HOUR_S


DUTY_PROFILES: dict[str, type[DutyProfile]] = {p.name: p for p in (Baseload, PeakShaving, LoadFollowing)}


def make_duty(name: str, *, seed: int, utc_offset_s: int = 0) -> DutyProfile:
    """The duty profile called *name*; ConfigError (a ValueError) naming the known ones otherwise."""
    try:
        profile = DUTY_PROFILES[name]
    except KeyError:
        known = ", ".join(DUTY_PROFILES)
        raise ConfigError(f"unknown duty profile {name!r}; known profiles: {known}") from None
    return profile(seed=seed, utc_offset_s=utc_offset_s)
