"""Emulator: one unit-year (8,760 h) of 1-minute samples, simulated in one process.

A C60 :class:`~firmware_sim.unit.Unit` on an in-memory NOR flash of 600
sectors of 64 KiB (room for the year's 525,600 samples and its events) lives
8,760 hours at once (``fast_forward``), as ``turbosim run`` does.  The limit
beside it, in the same run: the log alone, appending the same records to a
fresh :class:`~firmware_sim.logstore.LogStore` on the same kind of flash
(encoding and programming, no simulation).
"""

from __future__ import annotations

import statistics
import time

from firmware_sim.flash import NorFlash
from firmware_sim.logstore import LogStore
from firmware_sim.unit import Unit, build_unit
from protocol.records import Record, decode_record

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


def run(repeats: int = 3) -> list[Figure]:
    times = []
    for _ in range(repeats):
        seconds, unit = live_a_year()
        times.append(seconds)
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
    ]
