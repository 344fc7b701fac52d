"""Unpaced pull: 1,000,000 records from ``turbosim --no-pace`` over a pty into the SQLite archive.

Each repeat serves a fresh copy of one image (:mod:`bench.device`) and runs
:func:`host.pull.pull` in this process into a new archive, timing the wall
clock, this process's CPU and the device process's CPU.  Beside it, in the
same run:

- *the archive alone*: :meth:`host.archive.Archive.store_decoded` of the same
  rows in the pull's batches, timed alone: the pull cannot be faster than
  the file it writes;
- *the host without the pty*: the byte stream of the first pull, recorded
  read by read, replayed into :func:`host.pull.pull` in this process: what
  the host costs per record when the link costs nothing.

The machine is shared (two cores, other engineers' test runs), so the wall
rate also depends on whoever else runs; the rate per host CPU second is the
host's own cost.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

from host.archive import Archive
from host.pull import COMMIT_EVERY, PullResult, pull
from host.transport import Transport, open_port
from protocol.framing import Frame, FrameDecoder
from protocol.messages import IdentifyResponse, Records, decode_message
from protocol.records import DecodedRow, decode_rows

from .device import image, remove_db, scratch_db, serve
from .figures import Figure

RECORDS = 1_000_000
TARGET = 200_000
HOST_BAUD = 921_600
"""What the host asks of the pty (a pty ignores it)."""


class _Recording:
    """A transport that keeps every chunk it reads, for :class:`_Replay`."""

    def __init__(self, inner: Transport, chunks: list[bytes]) -> None:
        self._inner = inner
        self._chunks = chunks

    def write(self, data: bytes) -> None:
        self._inner.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        data = self._inner.read(max_bytes, timeout)
        if data:
            self._chunks.append(data)
        return data

    def close(self) -> None:
        self._inner.close()


class _Replay:
    """The recorded chunks again, read by read; what the host writes goes nowhere."""

    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = iter(chunks)

    def write(self, data: bytes) -> None:
        pass

    def read(self, max_bytes: int, timeout: float) -> bytes:
        return next(self._chunks, b"")

    def close(self) -> None:
        pass


def _timed_pull(connect: Callable[[], Transport]) -> tuple[PullResult, float, float]:
    """One pull into a new archive: its result, wall seconds and this process's CPU seconds."""
    path = scratch_db()
    try:
        with Archive.open(path) as archive:
            cpu, wall = time.process_time(), time.perf_counter()
            result = pull(connect, archive)
            return result, time.perf_counter() - wall, time.process_time() - cpu
    finally:
        remove_db(path)


def _archive_alone(chunks: list[bytes]) -> tuple[int, float, float]:
    """The recorded stream's records stored alone, in the pull's batches: records, wall s, CPU s."""
    path = scratch_db()
    decoder = FrameDecoder()
    stored, wall, cpu = 0, 0.0, 0.0
    batch: list[DecodedRow] = []
    serial = ""
    try:
        with Archive.open(path) as archive:

            def store() -> None:
                nonlocal stored, wall, cpu
                c, w = time.process_time(), time.perf_counter()
                stored += archive.store_decoded(serial, batch)
                wall += time.perf_counter() - w
                cpu += time.process_time() - c
                batch.clear()

            for chunk in chunks:
                for frame in decoder.feed(chunk):
                    message = decode_message(frame) if isinstance(frame, Frame) else None
                    if isinstance(message, IdentifyResponse) and not serial:
                        serial = message.serial
                        archive.upsert_unit(serial, "bench", "bench", 0, first_seq=0, next_seq=0,
                                            capacity_records=0, device_time=0, operating_s=0, starts=0,
                                            trips=0, energy_wh=0)
                    if isinstance(message, Records):
                        batch += decode_rows(message.records)[0]
                        if len(batch) >= COMMIT_EVERY:
                            store()
            if batch:
                store()
    finally:
        remove_db(path)
    return stored, wall, cpu


def run(repeats: int = 3) -> list[Figure]:
    flash = image(RECORDS)
    walls, cpus, device_cpus, counts = [], [], [], []
    chunks: list[bytes] = []
    for attempt in range(repeats):
        with serve(flash) as device:
            def connect(port: str = device.port, record: bool = attempt == 0) -> Transport:
                transport = open_port(port, HOST_BAUD)
                return _Recording(transport, chunks) if record else transport

            before = device.cpu_s()
            result, wall, cpu = _timed_pull(connect)
            device_cpus.append(device.cpu_s() - before)
        counts.append(result.added)
        walls.append(wall)
        cpus.append(cpu)
    pulled = statistics.median(counts)
    if pulled < RECORDS:
        raise AssertionError(f"the unpaced pull moved {pulled:,} records, not {RECORDS:,}")
    replays = [_timed_pull(lambda: _Replay(chunks)) for _ in range(repeats)]
    if any(result.added != counts[0] for result, _, _ in replays):
        raise AssertionError("the replayed stream did not give the same pull")
    floor = [_archive_alone(chunks) for _ in range(repeats)]
    chunks.clear()

    wall_rate = statistics.median(n / s for n, s in zip(counts, walls, strict=True))
    cpu_rate = statistics.median(n / s for n, s in zip(counts, cpus, strict=True))
    device_rate = statistics.median(  # the device's CPU time comes in clock ticks: 0 for a tiny pull
        n / s if s else math.inf for n, s in zip(counts, device_cpus, strict=True)
    )
    replay_rate = statistics.median(result.added / cpu for result, _, cpu in replays)
    floor_wall = statistics.median(n / w for n, w, _ in floor)
    floor_cpu = statistics.median(n / c for n, _, c in floor)
    beside = (f"archive alone: {floor_cpu:,.0f} rec per CPU s ({floor_wall:,.0f} rec/s); "
              f"{pulled:,.0f} records, median of {repeats}")
    return [
        Figure("unpaced pull, pty -> archive (wall clock)", wall_rate, "rec/s", TARGET,
               reference=f"{beside}; shared 2-core machine, the device process runs beside it",
               limit=floor_wall),
        Figure("unpaced pull, per host CPU second", cpu_rate, "rec/CPU s", TARGET,
               reference=f"{beside}; device: {device_rate:,.0f} rec per device CPU s", limit=floor_cpu),
        Figure("unpaced pull, host without the pty", replay_rate, "rec/CPU s", None,
               reference=f"the first pull's byte stream replayed in-process; {beside}", limit=floor_cpu),
    ]
