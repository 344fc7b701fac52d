"""Time windows of the reporting commands (``--since``, ``--until``): what a user types, and the
range of record timestamps it means for one unit.

A moment is an absolute ISO date or date-time (a naive one is UTC, like device
time), or an age: a number and one of ``d h m s`` (``30d``, ``12h``, ``1.5h``).
An age counts back from the unit's last archived record by default (the
unit's clock: a log read today may end months ago, and its last 30 days are
what a technician means by ``30d``), or from this computer's clock with
``--relative-to now``.  :func:`resolve` turns both ends into inclusive Unix
seconds; an end before the start is a :class:`~host.errors.UsageError`.

Parses text and reads one figure (the last record's timestamp) from the
archive; never writes, never reads the wall clock except through the ``now``
it is given.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .errors import UsageError

if TYPE_CHECKING:  # for annotations only: the parser imports this module, and --help stays fast
    from .archive import Archive

LAST_RECORD = "last-record"
NOW = "now"
RELATIVE_TO = (LAST_RECORD, NOW)
"""What an age counts back from: the unit's last archived record (default), or this computer's clock."""

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}

Moment = datetime | timedelta
"""An absolute moment (aware, UTC) or an age to count back."""

HELP = (
    "an ISO date or date-time (UTC unless it names a zone), or an age like 30d, 12h, 90m "
    "counted back from the unit's last archived record (its clock, not this computer's; "
    "--relative-to now counts from this computer's clock)"
)


def moment_type(text: str) -> Moment:
    """argparse type of ``--since``/``--until``: an ISO date or date-time, or an age like ``30d``."""
    stripped = text.strip()
    if stripped and stripped[-1] in _UNITS and stripped[:-1].replace(".", "", 1).isdigit():
        return timedelta(seconds=float(stripped[:-1]) * _UNITS[stripped[-1]])
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither an ISO date (2024-05-01, 2024-05-01T12:00) nor an age like 30d or 12h"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def last_record_time(archive: Archive, serial: str) -> int | None:
    """The timestamp of *serial*'s last archived record (timestamps never go backwards,
    docs/protocol.md 6.5: the largest is the last), or None when none is archived."""
    from .archive import RECORD_TABLES  # here: the parser imports this module, and --help stays fast

    where = "unit IN (SELECT id FROM units WHERE serial = :serial)"  # every epoch of the serial
    arms = " UNION ALL ".join(
        f"SELECT MAX(timestamp) AS t FROM {table} WHERE {where}"
        for table in RECORD_TABLES
    )
    ((top,),) = archive.query(f"SELECT MAX(t) FROM ({arms})", {"serial": serial})
    return None if top is None else int(top)


@dataclass(frozen=True, slots=True)
class Window:
    """Inclusive bounds on record timestamps, Unix seconds; None is open."""

    since: int | None = None
    until: int | None = None

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def contains(self, timestamp: int) -> bool:
        return (self.since is None or timestamp >= self.since) and (
            self.until is None or timestamp <= self.until
        )

    def describe(self) -> str:
        """``between A and B``, ``since A``, ``until B`` (ISO UTC), or ``at any time``."""
        since, until = (None if t is None else _iso(t) for t in (self.since, self.until))
        if since and until:
            return f"between {since} and {until}"
        if since:
            return f"since {since}"
        if until:
            return f"until {until}"
        return "at any time"


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def resolve(
    archive: Archive,
    serial: str,
    since: Moment | None,
    until: Moment | None,
    relative_to: str = LAST_RECORD,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Window:
    """The :class:`Window` *since* .. *until* means for *serial*; ages count back from its last
    archived record (*relative_to* ``last-record``) or from *now* (``now``).  A unit with no
    record archived has no last record: its ages count from *now*.  UsageError when the end
    comes before the start."""
    if relative_to not in RELATIVE_TO:
        raise UsageError(f"--relative-to is {' or '.join(RELATIVE_TO)}, not {relative_to!r}")
    anchor: datetime | None = None
    if isinstance(since, timedelta) or isinstance(until, timedelta):
        last = last_record_time(archive, serial) if relative_to == LAST_RECORD else None
        anchor = now() if last is None else datetime.fromtimestamp(last, UTC)

    def seconds(moment: Moment | None) -> int | None:
        if moment is None:
            return None
        if isinstance(moment, timedelta):
            assert anchor is not None
            return int((anchor - moment).timestamp())
        return int(moment.timestamp())

    low, high = seconds(since), seconds(until)
    if low is not None and high is not None and high < low:
        raise UsageError(f"--until ({_iso(high)}) is before --since ({_iso(low)}): nothing lies between")
    return Window(low, high)
