"""A unit's lifetime counters (operating time, starts, trips, exported energy), in wire units.

The same four counters travel in a sample's snapshot and a fault's freeze-frame, in IDENTIFY_RSP
and in every log sector's header (``docs/flash-image.md`` section 2); the emulator keeps them,
the reader reports them.  :class:`LifetimeCounters` is their one definition for both sides: the
values as the wire has them, the rule that none of them ever goes backwards (:meth:`dominates`),
how counters of successive logs add up without counting an hour twice (:meth:`plus`), and their
engineering units.  A value type only: no I/O, no decoding (records give a :class:`Snapshot`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .enums import RecordType
from .records import LAYOUTS, DecodedRow, Snapshot


@dataclass(frozen=True, slots=True)
class LifetimeCounters:
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
    def from_snapshot(cls, snapshot: Snapshot) -> LifetimeCounters:
        """The counters a sample's snapshot or a fault's freeze-frame carries."""
        return cls(snapshot.operating_s, snapshot.starts, snapshot.trips, snapshot.energy_wh)

    @property
    def operating_hours(self) -> float:
        return self.operating_s / 3600

    @property
    def kwh(self) -> float:
        return self.energy_wh / 1000

    def dominates(self, other: LifetimeCounters) -> bool:
        """True when no counter here is below the same counter in *other*."""
        return (
            self.operating_s >= other.operating_s
            and self.starts >= other.starts
            and self.trips >= other.trips
            and self.energy_wh >= other.energy_wh
        )

    def plus(self, other: LifetimeCounters, less: LifetimeCounters | None = None) -> LifetimeCounters:
        """These counters with *other*'s added, less what *less* had counted already (never below 0):
        a log that carries on the counters of the one before adds only its own."""
        base = less or LifetimeCounters()
        return LifetimeCounters(
            self.operating_s + max(other.operating_s - base.operating_s, 0),
            self.starts + max(other.starts - base.starts, 0),
            self.trips + max(other.trips - base.trips, 0),
            self.energy_wh + max(other.energy_wh - base.energy_wh, 0),
        )


COUNTER_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(LifetimeCounters))
_ROW_INDEX: dict[int, tuple[int, ...]] = {
    rtype: tuple(LAYOUTS[rtype].names.index(prefix + name) for name in COUNTER_FIELDS)
    for rtype, prefix in ((RecordType.SAMPLE, ""), (RecordType.FAULT, "freeze."))
}
"""Where the counters sit in a decoded sample (its snapshot) and a decoded fault (its freeze-frame)."""


def counters_of_row(row: DecodedRow) -> LifetimeCounters | None:
    """The counters a decoded record carries (:data:`protocol.records.DecodedRow`): a sample's
    or a fault's; None for any other record (an event, a type or length this version does not know)."""
    where = _ROW_INDEX.get(row[2])
    if where is None or len(row) != len(LAYOUTS[row[2]].names):
        return None
    return LifetimeCounters(*(row[i] for i in where))
