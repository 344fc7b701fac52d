"""The emulated controller's sense of time: simulated Unix seconds.

:class:`SimClock` maps a wall clock that the caller passes in (the CLI passes
``time.monotonic``, tests pass a fake) onto simulated time that starts at a
chosen instant, runs ``speed`` times faster than the wall clock, and can be
jumped forward with :meth:`SimClock.skip` to fast-forward history.

This module never reads a clock by itself.  It goes back only by what
:meth:`SimClock.lose` takes away: simulated time a machine too slow for the
speed asked could not live (so a unit keeps answering at any ``--speed``).
Device time (what CLOCK_SET changes) is an offset kept by the unit, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import ConfigError


class SimClock:
    """Simulated Unix seconds: ``start + speed * (wall() - wall0) + skipped - lost``.

    ``wall0`` is the wall reading taken when the clock is built.
    """

    def __init__(self, start: float, speed: float = 1.0, *, wall: Callable[[], float]) -> None:
        if speed <= 0:
            raise ConfigError(f"speed must be positive, not {speed}")
        self._start = start
        self._speed = speed
        self._wall = wall
        self._wall0 = wall()
        self._skipped = 0.0
        self._lost = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def now(self) -> float:
        """Simulated Unix seconds at this moment of the wall clock."""
        return self._start + self._speed * (self._wall() - self._wall0) + self._skipped - self._lost

    def skip(self, seconds: float) -> None:
        """Jump forward by *seconds* of simulated time (history fast-forward)."""
        if seconds < 0:
            raise ConfigError(f"the clock only skips forward, not by {seconds} s")
        self._skipped += seconds

    def lose(self, seconds: float) -> None:
        """Take back *seconds* of simulated time that were not lived (the simulation fell behind)."""
        if seconds < 0:
            raise ConfigError(f"cannot lose a negative time, {seconds} s")
        self._lost += seconds
