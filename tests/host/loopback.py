"""An in-process line from the host to an emulated controller, for tests.

:class:`Line` holds the device end: a :class:`ListUnit` (a log backed by a
list of encoded records) served by :class:`firmware_sim.session.DeviceSession`,
in the calling thread.  ``Line.connect()`` hands out a
:class:`LoopbackTransport` (the host's :class:`~host.transport.Transport`):
``write`` feeds the device, ``read`` takes what the device has to send.  Time
is virtual (:class:`VirtualClock`): a read that finds nothing advances it by
the whole timeout, and with a ``baud`` every byte read costs its line time, so
timeouts and rates are exact and tests never sleep.

A ``latency_s`` holds what the host writes for that long before the device
sees it (it stands for the whole round trip: USB batching, OS buffers), so
pipelining is measured, not assumed.  Each direction can be impaired with a seeded
:class:`firmware_sim.impairment.Impairment` (bit errors, dropped and inserted
bytes), and each connection can be cut after a given number of bytes towards
the host; the device session survives a cut (a stream it was sending stays
queued, as on a real unit whose cable was pulled), so the host must ABORT.
No threads, no ports, no sleeping.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace

from firmware_sim.auth import AccessControl
from firmware_sim.impairment import Impairment, LineFaults
from firmware_sim.keystore import UnitKeys
from firmware_sim.nvstate import Counters
from firmware_sim.session import DeviceSession
from host.errors import LinkError
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


class VirtualClock:
    """Seconds that pass only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
    def counters(self) -> Counters:
        return Counters(3600, 2, 0, 65000)

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


class Line:
    """The device end of an in-process line; ``connect()`` is what ``pull`` takes."""

    def __init__(
        self,
        unit: ListUnit,
        *,
        clock: VirtualClock | None = None,
        baud: int | None = None,
        to_host: LineFaults | None = None,
        to_device: LineFaults | None = None,
        cuts: list[int] | None = None,
        latency_s: float = 0.0,
        seed: int = 0,
        at_bytes: list[tuple[int, Callable[[], None]]] | None = None,
    ) -> None:
        self.unit = unit
        self.clock = clock or VirtualClock()
        self.baud = baud
        self.latency_s = latency_s
        self.device = DeviceSession(unit, rng=random.Random(seed))
        self._in_flight: deque[tuple[float, bytes]] = deque()
        self._faults = (to_host, to_device)
        self._cuts = list(cuts or [])
        self._seed = seed
        self.connections = 0
        self.bytes_to_host = 0
        self._at_bytes = sorted(at_bytes or [], key=lambda item: item[0])

    def connect(self) -> LoopbackTransport:
        to_host, to_device = self._faults
        cut = self._cuts.pop(0) if self._cuts else None
        seed = self._seed * 1000 + self.connections
        self.connections += 1
        host_faults = to_host or LineFaults()
        if cut is not None:
            host_faults = replace(host_faults, disconnect_after=cut)
        return LoopbackTransport(
            self,
            Impairment(host_faults, seed) if to_host or cut is not None else None,
            Impairment(to_device, seed + 1) if to_device else None,
        )

    def to_device(self, data: bytes) -> None:
        if self.latency_s:
            self._in_flight.append((self.clock.now + self.latency_s, data))
        else:
            self.device.receive_data(data)

    def from_device(self, max_bytes: int, timeout: float) -> bytes:
        """What the device sends within *timeout*, advancing the clock as the line would."""
        clock = self.clock
        deadline = clock.now + timeout
        while True:
            while self._in_flight and self._in_flight[0][0] <= clock.now:
                self.device.receive_data(self._in_flight.popleft()[1])
            data = self.device.data_to_send(max_bytes)
            if data:
                if self.baud:
                    clock.advance(len(data) * 10 / self.baud)
                return data
            arrival = self._in_flight[0][0] if self._in_flight else deadline
            clock.advance(max(0.0, min(arrival, deadline) - clock.now))
            if clock.now >= deadline:
                return b""

    def delivered(self, count: int) -> None:
        self.bytes_to_host += count
        while self._at_bytes and self._at_bytes[0][0] <= self.bytes_to_host:
            self._at_bytes.pop(0)[1]()


class LoopbackTransport:
    """The host's end: a :class:`host.transport.Transport` in the same thread as the device."""

    def __init__(self, line: Line, to_host: Impairment | None, to_device: Impairment | None) -> None:
        self._line = line
        self._to_host = to_host
        self._to_device = to_device
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise LinkError("loopback closed")
        if self._to_host is not None and self._to_host.disconnected:
            raise LinkError("loopback port disconnected")

    def write(self, data: bytes) -> None:
        self._check()
        if self._to_device is not None:
            data = self._to_device.apply(data)
        self._line.to_device(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        self._check()
        line = self._line
        data = line.from_device(max_bytes, timeout)
        if not data:
            return b""
        if self._to_host is not None:
            data = self._to_host.apply(data)
        line.delivered(len(data))
        return data

    def close(self) -> None:
        self.closed = True
