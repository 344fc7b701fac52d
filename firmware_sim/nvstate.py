"""What the emulated controller keeps in non-volatile memory, as types.

The interface through which the simulated machine hands records to its log.
The simulator depends on :class:`LogSink`, not on the flash log itself, so
that it can run against a plain list in tests.  The lifetime counters the log
keeps are :class:`protocol.counters.LifetimeCounters` (the reader reports the
same ones).  No logic lives here.
"""

from __future__ import annotations

from typing import Protocol

from protocol.records import Record


class LogSink(Protocol):
    """Where records go.  ``append`` assigns the record's seq (the seq field of
    the record passed in is ignored), makes it durable, and returns the seq."""

    def append(self, record: Record) -> int: ...
