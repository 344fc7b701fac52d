"""What the emulated controller keeps in non-volatile memory, as types.

The lifetime counters (operating hours, starts, trips, exported energy) and
the interface through which the simulated machine hands records to its log.
The simulator depends on :class:`LogSink`, not on the flash log itself, so
that it can run against a plain list in tests.  No logic lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from protocol.records import Record, Snapshot


@dataclass(frozen=True, slots=True)
class Counters:
    """Lifetime counters; none of them ever goes backwards."""

    operating_s: int = 0
    """Seconds with the shaft above 0 rpm (used for warranty)."""
    starts: int = 0
    """Engine rotations from 0 rpm (used for warranty)."""
    trips: int = 0
    """Shutdown-class faults."""
    energy_wh: int = 0
    """Energy exported, Wh."""

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> Counters:
        return cls(snapshot.operating_s, snapshot.starts, snapshot.trips, snapshot.energy_wh)

    def dominates(self, other: Counters) -> bool:
        """True when no counter here is below the same counter in *other*."""
        return (
            self.operating_s >= other.operating_s
            and self.starts >= other.starts
            and self.trips >= other.trips
            and self.energy_wh >= other.energy_wh
        )


class LogSink(Protocol):
    """Where records go.  ``append`` assigns the record's seq (the seq field of
    the record passed in is ignored), makes it durable, and returns the seq."""

    def append(self, record: Record) -> int: ...
