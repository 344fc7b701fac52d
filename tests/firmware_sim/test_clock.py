"""SimClock: simulated seconds from a wall clock that the test controls."""

from __future__ import annotations

import pytest

from firmware_sim.clock import SimClock


class FakeWall:
    def __init__(self, t: float = 500.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_starts_at_start_whatever_the_wall_reads() -> None:
    clock = SimClock(1_700_000_000, wall=FakeWall(12345.0))
    assert clock.now() == 1_700_000_000


def test_runs_at_wall_speed_by_default() -> None:
    wall = FakeWall()
    clock = SimClock(1_700_000_000, wall=wall)
    wall.t += 2.5
    assert clock.now() == 1_700_000_002.5


def test_speed_multiplies_elapsed_wall_time() -> None:
    wall = FakeWall()
    clock = SimClock(1_000, speed=3600, wall=wall)
    wall.t += 0.5
    assert clock.now() == 1_000 + 1800
    assert clock.speed == 3600


def test_skip_jumps_forward_and_adds_up() -> None:
    wall = FakeWall()
    clock = SimClock(1_000, speed=2, wall=wall)
    clock.skip(7200)
    clock.skip(0)
    wall.t += 1
    assert clock.now() == 1_000 + 7200 + 2


def test_rejects_backward_skips_and_bad_speeds() -> None:
    clock = SimClock(0, wall=FakeWall())
    with pytest.raises(ValueError):
        clock.skip(-1)
    for speed in (0, -1):
        with pytest.raises(ValueError):
            SimClock(0, speed=speed, wall=FakeWall())


def test_reads_the_wall_only_through_the_function_given() -> None:
    calls: list[float] = []

    def wall() -> float:
        calls.append(0.0)
        return 0.0

    clock = SimClock(5, wall=wall)
    clock.now()
    assert len(calls) == 2
