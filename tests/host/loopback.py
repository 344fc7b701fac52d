"""Test data for the in-process line: a list-backed unit and deterministic records.

The line itself is a product part, :mod:`firmware_sim.inproc` (:class:`~firmware_sim.inproc.Line`,
:class:`~firmware_sim.inproc.VirtualClock`).  Here: :class:`ListUnit` (a log backed by a list of
encoded records, keys of all zero bytes), :func:`make_records`, and :class:`Line`, the emulator's
line whose connections come wrapped in :class:`host.transport.Guarded`, as a host wraps any
transport that is not a pyserial port, so a cut or closed line is a ``LinkError`` to ``pull``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from firmware_sim import inproc
from firmware_sim.auth import AccessControl
from firmware_sim.inproc import VirtualClock
from firmware_sim.keystore import UnitKeys
from host.transport import Guarded
from protocol.counters import LifetimeCounters
from protocol.enums import EngineState, EventKind
from protocol.records import (
    EventRecord,
    FaultRecord,
    Record,
    SampleRecord,
    Snapshot,
    UnknownRecord,
    encode_record,
)

__all__ = ["SNAPSHOT", "Line", "ListUnit", "VirtualClock", "make_records"]

SNAPSHOT = Snapshot(
    state=EngineState.LOAD, mode=0, active_fault=0, speed_rpm=96000, power_w=65000, tet1_c_x10=6200,
    tet2_c_x10=6180, compressor_inlet_c_x10=150, ambient_c_x10=150, ambient_pressure_kpa_x100=10132,
    fuel_valve_pct_x10=640, fuel_power_w=222000, dc_bus_v_x10=7600, grid_voltage_v_x10=4800,
    grid_freq_hz_x1000=60000, operating_s=3600, starts=2, trips=0, energy_wh=65000,
)


def make_records(count: int, start: int = 0) -> list[bytes]:
    """Deterministic raw records: mostly samples, some faults and events, a few of an unknown type."""
    out = []
    for seq in range(start, start + count):
        timestamp = 1_700_000_000 + seq
        if seq % 97 == 5:
            record: Record = FaultRecord(seq, timestamp, 5005, 3, 0, 0, SNAPSHOT)
        elif seq % 31 == 7:
            record = EventRecord(seq, timestamp, EventKind.STATE_CHANGE, 3, 4, 0, seq, 0)
        elif seq % 211 == 11:
            record = UnknownRecord(seq, timestamp, 42, bytes(range(seq % 50)))
        else:
            record = SampleRecord(seq, timestamp, replace(SNAPSHOT, power_w=seq % 65000))
        out.append(encode_record(record))
    return out


class ListUnit:
    """A contiguous log ``[first_seq, next_seq)`` over a list of raw records (seq = index)."""

    model = "C65"
    firmware = "fw-test"

    def __init__(self, raws: list[bytes], *, serial: str = "TL-0001", baud: int = 115200,
                 max_window: int = 4096, first_seq: int = 0, log_id: bytes = b"log-id-1") -> None:
        self.raws = raws
        self.serial = serial
        self.log_id = log_id
        self.baud = baud
        self.max_window = max_window
        self.first_seq = first_seq
        self.time = 1_700_000_000
        self.access = AccessControl(
            UnitKeys(bytes(32), bytes(32), bytes(32)), clock=lambda: float(self.time),
            audit=lambda level, outcome: None, boot_salt=b"",
        )
        """Keys of all zero bytes: the host tests here never send a privileged command."""

    @property
    def next_seq(self) -> int:
        return len(self.raws)

    @property
    def capacity_records(self) -> int:
        return max(len(self.raws), 1)

    @property
    def counters(self) -> LifetimeCounters:
        return LifetimeCounters(3600, 2, 0, 65000)

    def iter_raw(self, start_seq: int, stop_seq: int) -> Iterator[bytes]:
        seq = max(start_seq, self.first_seq)
        while seq < min(stop_seq, self.next_seq):
            if seq < self.first_seq:  # evicted while the stream was running
                seq = self.first_seq
                continue
            yield self.raws[seq]
            seq += 1

    def evict_to(self, first_seq: int) -> None:
        self.first_seq = max(self.first_seq, first_seq)

    def clear_log(self, *, level: int = 0) -> int:
        self.first_seq = self.next_seq
        return self.first_seq

    def device_time(self) -> int:
        return self.time

    def set_device_time(self, new_time: int, *, level: int = 0) -> None:
        self.time = new_time

    def live_snapshot(self) -> Snapshot:
        return SNAPSHOT


class Line(inproc.Line):
    """The emulator's in-process line, its connections guarded as the host guards any transport:
    the line's ``OSError`` (closed, cut) comes out as :class:`host.errors.LinkError`."""

    def connect(self) -> Guarded:  # type: ignore[override]
        return Guarded(super().connect(), "in-process line")
