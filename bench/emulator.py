"""Emulator: one unit-year (8,760 h) of 1-minute samples, simulated in one process.

A C60 :class:`~firmware_sim.unit.Unit` on an in-memory NOR flash of 600
sectors of 64 KiB (room for the year's 525,600 samples and its events) lives
8,760 hours at once (``fast_forward``), as ``turbosim run`` does.  The limit
beside it, in the same run: the log alone, appending the same records to a
fresh :class:`~firmware_sim.logstore.LogStore` on the same kind of flash
(encoding and programming, no simulation).  Beside it, the simulation alone:
a C60 :class:`~firmware_sim.simulator.Simulator` living the same year into a
sink that only encodes each record (no flash, no log), under the same target
(once a timed assertion in tests/firmware_sim/test_simulator.py), its
"÷ limit" the share of the whole unit-year it takes.
"""

from __future__ import annotations

import statistics
import time

from firmware_sim.flash import NorFlash
from firmware_sim.logstore import LogStore
from firmware_sim.models import C60
from firmware_sim.simulator import Simulator
from firmware_sim.unit import Unit, build_unit
from protocol.records import Record, decode_record, encode_record

from .figures import Figure

HOURS = 8760
SAMPLE_INTERVAL_S = 60
SECTOR_SIZE, SECTORS = 65536, 600
TARGET_S = 30.0
START = 1_704_067_200
"""2024-01-01T00:00:00Z."""


def live_a_year() -> tuple[float, Unit]:
    unit = build_unit("C60", "BENCH-YEAR", seed=1, clock=lambda: float(START), sector_size=SECTOR_SIZE,
                      sector_count=SECTORS, sample_interval_s=SAMPLE_INTERVAL_S)
    started = time.perf_counter()
    unit.fast_forward(HOURS * 3600)
    return time.perf_counter() - started, unit


def append_alone(records: list[Record]) -> float:
    store = LogStore(NorFlash(SECTOR_SIZE, SECTORS))
    started = time.perf_counter()
    for record in records:
        store.append(record)
    return time.perf_counter() - started


class _EncodingSink:
    """A log sink that encodes each record and keeps only the count."""

    def __init__(self) -> None:
        self.count = 0

    def append(self, record: Record) -> int:
        encode_record(record)
        self.count += 1
        return self.count - 1


def simulate_alone() -> tuple[float, int]:
    """Seconds the simulation alone takes for the year, and the records it made."""
    sink = _EncodingSink()
    sim = Simulator(C60, seed=1, start_time=START, log=sink, sample_interval_s=SAMPLE_INTERVAL_S)
    started = time.perf_counter()
    sim.advance_to(START + HOURS * 3600)
    seconds = time.perf_counter() - started
    if sink.count < HOURS * 3600 // SAMPLE_INTERVAL_S:
        raise AssertionError(f"{sink.count:,} records in {HOURS:,} h: fewer than one sample a minute")
    return seconds, sink.count


def run(repeats: int = 3) -> list[Figure]:
    times, alone = [], []
    for _ in range(repeats):
        seconds, unit = live_a_year()
        times.append(seconds)
        alone_s, alone_count = simulate_alone()
        alone.append(alone_s)
        count, first, hours = unit.next_seq, unit.first_seq, unit.counters.operating_s / 3600
        records = [decode_record(raw) for raw in unit.iter_raw(first, unit.next_seq)]
        unit.close()
    if first != 0:
        raise AssertionError(f"the flash evicted records {0}..{first - 1}: it is too small for a year")
    floor = statistics.median(append_alone(records) for _ in range(repeats))
    value = statistics.median(times)
    return [
        Figure("emulator: one unit-year of 1-minute samples", value, "s", TARGET_S, False,
               reference=f"the log alone (LogStore.append of the same records): {floor:.1f} s; "
                         f"{count:,} records, {hours:,.0f} operating h, median of {repeats}",
               limit=floor),
        Figure("emulator: the simulation alone, one unit-year", statistics.median(alone), "s", TARGET_S,
               False,
               reference=f"share of the whole unit-year above ({value:.1f} s); {alone_count:,} records "
                         f"encoded into no log, median of {repeats}",
               limit=value),
    ]
