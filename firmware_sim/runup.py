"""The pre-trigger buffer: the key channels' last minute before a shutdown-class fault.

A real controller keeps a ring of its key channels, one value a second, and copies it into its
log with every trip, so that a technician sees the run-up.  The simulator runs from event to
event, never second by second, so instead of a value a second :class:`Lookback` keeps the
engine as it was over the last :data:`RUNUP_SPAN_S` seconds: a twin of it from each event on.
Between two events the engine's values are a function of time, so any second of the span can
be measured again when a fault asks for it, and nothing is computed for the seconds that no
fault ever looks at.  :func:`runup_records` turns the measured seconds and the fault's
freeze-frame into RUNUP records, one per channel of
:data:`~protocol.records.RUNUP_CHANNELS`.

This module only keeps and lays out values: the simulator measures them (climate, duty,
drift) and writes the records.  No clock, no randomness, no I/O.
"""

from __future__ import annotations

import copy
from collections import deque

from protocol.formats import RUNUP_POINTS
from protocol.records import RUNUP_CHANNELS, RunupRecord, Snapshot, channel_value

from .engine import Engine

RUNUP_INTERVAL_S = 1
"""Seconds between two values of the buffer."""
RUNUP_SPAN_S = RUNUP_POINTS * RUNUP_INTERVAL_S
"""Seconds the buffer covers, the fault's own included: 60."""
_I16 = (-(1 << 15), (1 << 15) - 1)


class Lookback:
    """The engine over the last :data:`RUNUP_SPAN_S` seconds: ``(from, twin, drift_from)`` for
    each stretch between events, oldest first, where ``drift_from`` is when the simulator's TET
    drift before an over-temperature trip began in it (``inf``: none)."""

    def __init__(self) -> None:
        self._stretches: deque[tuple[float, Engine, float]] = deque()

    def note(self, t: float, engine: Engine, drift_from: float) -> None:
        """From *t* on, the engine is *engine* as it is now (a twin is kept); stretches that
        ended before the span back from *t* are dropped."""
        stretches = self._stretches
        stretches.append((t, copy.copy(engine), drift_from))
        horizon = t - RUNUP_SPAN_S
        while len(stretches) > 1 and stretches[1][0] <= horizon:
            stretches.popleft()

    def at(self, t: float) -> tuple[Engine, float] | None:
        """The engine twin and drift start in force at *t*; None before the first one kept
        (the controller was not up yet)."""
        for start, twin, drift_from in reversed(self._stretches):
            if start <= t:
                return twin, drift_from
        return None


def runup_records(
    timestamp: int, fault_seq: int, freeze: Snapshot, earlier: list[Snapshot | None]
) -> list[RunupRecord]:
    """One RUNUP record per channel for the fault of seq *fault_seq* at *timestamp*: the values of
    *earlier* (the seconds before it, oldest first, None where nothing was measured), then the
    freeze-frame's, so that a run-up ends on the value its fault shows.  *earlier* holds the
    ``RUNUP_POINTS - 1`` seconds before the fault; only its measured tail counts."""
    measured: list[Snapshot] = []
    for snapshot in reversed(earlier):
        if snapshot is None:
            break
        measured.append(snapshot)
    measured.reverse()
    measured.append(freeze)
    padding = (0,) * (RUNUP_POINTS - len(measured))
    low, high = _I16
    return [
        RunupRecord(
            0, timestamp, fault_seq, int(channel), RUNUP_INTERVAL_S, len(measured),
            padding + tuple(
                min(high, max(low, round(channel_value(snapshot, channel) / spec.step)))
                for snapshot in measured
            ),
        )
        for channel, spec in RUNUP_CHANNELS.items()
    ]
