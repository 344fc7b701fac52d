"""pull() and ``turbolog pull`` against devices that misbehave on purpose.

A hostile device is either a byte source with no protocol at all (random bytes, an endless run
without a delimiter, frames declaring huge lengths, one byte per second), or the real
:class:`firmware_sim.session.DeviceSession` on a small log whose outgoing frames a *mangler*
rewrites: replayed, reordered, or valid frames carrying nonsense (next_seq below first_seq, records
outside the window asked for, a RANGE_END claiming more than was sent, 0xFFFFFFFF seqs, two different
records for one seq, strings with terminal escape codes).

What a user must see, whatever the device does: the pull finishes, or fails with a
:class:`~host.errors.HostError` subclass, within the deadline its own timeouts imply (virtual time,
so nothing here sleeps); Python memory stays bounded (tracemalloc); and the archive never holds a
record the device's log does not hold byte for byte.  Through ``host.cli.main`` (a device served on
a loopback socket by a thread), the exit code is the documented one and stderr is one line, never a
traceback.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
from cobs import cobs

from firmware_sim.session import DeviceSession
from host.archive import Archive
from host.cli import main
from host.driver import DEFAULT_TRIES
from host.errors import DeviceError, HostError, LinkTimeout, PullFailed
from host.pull import BACKOFF_S, GARBLED_IDLE, MAX_RECONNECTS, MAX_STALLS, idle_timeout, pull
from protocol.crc import crc32c
from protocol.enums import ErrorCode, MsgType
from protocol.framing import Frame, FrameDecoder, encode_frame
from protocol.messages import (
    ErrorResponse,
    IdentifyResponse,
    RangeEnd,
    Records,
    decode_message,
    encode_message,
)
from protocol.records import SampleRecord, encode_record
from tests.host.loopback import SNAPSHOT, ListUnit, VirtualClock, make_records

LOG = 300
RAWS = make_records(LOG)
BAUD = 115_200
TIMEOUT_S = 2.0
"""The host's per-exchange timeout (turbolog's default)."""
EXCHANGE_S = DEFAULT_TRIES * TIMEOUT_S
SESSION_S = MAX_STALLS * (2 * EXCHANGE_S + GARBLED_IDLE * idle_timeout(BAUD))
"""Worst case of one connection without a record: MAX_STALLS rounds of ABORT and IDENTIFY exchanges
answered at the last moment, then a stream that hears bytes but never an answer for GARBLED_IDLE
idle timeouts."""
DEADLINE_S = (MAX_RECONNECTS + 1) * SESSION_S + sum(BACKOFF_S)
"""The most a pull can take by its own timeouts: every reconnect used, each a worst-case session."""
MEMORY_BOUND = 4 * 2**20
"""Peak Python allocations of one hostile pull (the log itself is 20 KB)."""
ESCAPES = "\x1b[2J\x1b]0;pwned\x07"


# --- the hostile devices ---------------------------------------------------------------------------


class Device(Protocol):
    """What a hostile transport talks to: bytes in, at most *max_bytes* out."""

    def receive(self, data: bytes) -> None: ...

    def output(self, max_bytes: int) -> bytes: ...


class Spewer:
    """Ignores every request and sends what *chunk(n)* makes, forever."""

    def __init__(self, chunk: Callable[[int], bytes]) -> None:
        self._chunk = chunk

    def receive(self, data: bytes) -> None:
        """Requests fall on deaf ears."""

    def output(self, max_bytes: int) -> bytes:
        return self._chunk(max_bytes)


Mangler = Callable[[Frame], list[bytes]]
"""A device frame in, the wire bytes sent instead (none, one frame, several)."""


class Mangled:
    """The real device session on a ListUnit; each frame it sends goes through *mangle*."""

    def __init__(self, mangle: Mangler) -> None:
        self.unit = ListUnit(list(RAWS))
        self._session = DeviceSession(self.unit, entropy=random.Random(0).randbytes)
        self._decoder = FrameDecoder()
        self._mangle = mangle
        self._out = bytearray()

    def receive(self, data: bytes) -> None:
        self._session.receive_data(data)

    def output(self, max_bytes: int) -> bytes:
        while len(self._out) < max_bytes:
            wire = self._session.data_to_send(4096)
            if not wire:
                break
            for frame in self._decoder.feed(wire):
                assert isinstance(frame, Frame)
                self._out += b"".join(self._mangle(frame))
        data = bytes(self._out[:max_bytes])
        del self._out[:max_bytes]
        return data


class Transport:
    """The host's end of an in-process line to *device*, on a virtual clock.

    Bytes cost their line time at BAUD; with *byte_interval* the device gets out one byte per that
    many seconds at most, once *slow_after* bytes have gone at the line rate.
    """

    def __init__(
        self, device: Device, clock: VirtualClock, byte_interval: float | None = None, slow_after: int = 0
    ) -> None:
        self._device = device
        self._clock = clock
        self._interval = byte_interval
        self._fast_left = slow_after
        self._next_byte = clock()

    def write(self, data: bytes) -> None:
        self._device.receive(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        clock, start = self._clock, self._clock()
        slow = self._interval is not None and self._fast_left <= 0
        if slow:
            if self._next_byte > start + timeout:
                clock.advance(timeout)
                return b""
            clock.advance(max(0.0, self._next_byte - start))
            max_bytes = 1
        elif self._fast_left > 0:
            max_bytes = min(max_bytes, self._fast_left)
        data = self._device.output(max_bytes)
        if not data:
            clock.advance(start + timeout - clock())
            return b""
        self._fast_left -= len(data)
        if slow and self._interval is not None:
            self._next_byte = clock() + self._interval
        clock.advance(len(data) * 10 / BAUD)
        return data

    def close(self) -> None:
        """Nothing to release."""


# --- the manglers --------------------------------------------------------------------------------------


M = TypeVar("M", RangeEnd, IdentifyResponse)


def message_rewrite(kind: type[M], change: Callable[[M], M]) -> Mangler:
    """Frames whose message is a *kind* are re-encoded after *change*; the rest pass."""

    def mangle(frame: Frame) -> list[bytes]:
        message = decode_message(frame)
        if isinstance(message, kind):
            return [encode_message(change(message), frame.seq)]
        return [encode_frame(frame.msg_type, frame.seq, frame.payload)]

    return mangle


def untouched(frame: Frame) -> list[bytes]:
    return [encode_frame(frame.msg_type, frame.seq, frame.payload)]


def duplicated(frame: Frame) -> list[bytes]:
    """Every RECORDS frame twice."""
    wire = encode_frame(frame.msg_type, frame.seq, frame.payload)
    return [wire, wire] if frame.msg_type == MsgType.RECORDS else [wire]


class StaleReplay:
    """After each RANGE_END, the first RECORDS frame of that stream again (a stale request_seq)."""

    def __init__(self) -> None:
        self._first: dict[int, bytes] = {}

    def __call__(self, frame: Frame) -> list[bytes]:
        wire = encode_frame(frame.msg_type, frame.seq, frame.payload)
        rseq = int.from_bytes(frame.payload[:2], "little")
        if frame.msg_type == MsgType.RECORDS:
            self._first.setdefault(rseq, wire)
        elif frame.msg_type == MsgType.RANGE_END and rseq in self._first:
            return [wire, self._first.pop(rseq)]
        return [wire]


class Reordered:
    """RECORDS frames swapped in pairs: each held back until the next one has gone."""

    def __init__(self) -> None:
        self._held: bytes | None = None

    def __call__(self, frame: Frame) -> list[bytes]:
        wire = encode_frame(frame.msg_type, frame.seq, frame.payload)
        if frame.msg_type != MsgType.RECORDS:
            held, self._held = self._held, None
            return [wire] if held is None else [held, wire]
        if self._held is None:
            self._held = wire
            return []
        held, self._held = self._held, None
        return [wire, held]


def stray(seq: int) -> bytes:
    return encode_record(SampleRecord(seq, 1_700_000_000, SNAPSHOT))


def strays_around(before: list[int], after: list[int]) -> Mangler:
    """Around each RECORDS frame, frames for the same request holding valid records of the given
    seqs whose bytes are not the log's (a stray's snapshot differs from every logged one)."""

    def mangle(frame: Frame) -> list[bytes]:
        wire = encode_frame(frame.msg_type, frame.seq, frame.payload)
        if frame.msg_type != MsgType.RECORDS:
            return [wire]
        rseq = int.from_bytes(frame.payload[:2], "little")
        first = int.from_bytes(frame.payload[2:6], "little")
        extra = [encode_message(Records(rseq, b"".join(stray(seq) for seq in seqs)), frame.seq)
                 for seqs in (before, after)]
        return [extra[0], wire, extra[1]] if first == 0 else [wire]

    return mangle


def forged_in_place(frame: Frame) -> list[bytes]:
    """Record 0, wherever it leads a RECORDS frame, swapped for a valid record of other contents and
    the same length: nothing on the line contradicts it, only RANGE_END's digest (over what the device
    sent) can."""
    payload = frame.payload
    if frame.msg_type == MsgType.RECORDS and int.from_bytes(payload[2:6], "little") == 0:
        forged = stray(0)
        assert len(forged) == len(RAWS[0])
        payload = payload[:2] + forged + payload[2 + len(forged):]
    return [encode_frame(frame.msg_type, frame.seq, payload)]


class ForgedOnceRangeEndLost:
    """Record 0 forged in place the first time it leads a RECORDS frame, and the RANGE_END of that
    stream dropped: the forgery's CRCs are good and no digest arrives to contradict it."""

    def __init__(self) -> None:
        self._forged_for: int | None = None

    def __call__(self, frame: Frame) -> list[bytes]:
        rseq = int.from_bytes(frame.payload[:2], "little")
        leads_with_0 = frame.msg_type == MsgType.RECORDS and int.from_bytes(frame.payload[2:6], "little") == 0
        if self._forged_for is None and leads_with_0:
            self._forged_for = rseq
            return forged_in_place(frame)
        if frame.msg_type == MsgType.RANGE_END and rseq == self._forged_for:
            return []
        return untouched(frame)


def overclaiming(end: RangeEnd) -> RangeEnd:
    return replace(end, sent=end.sent + 5)


def all_evicted(end: RangeEnd) -> RangeEnd:
    return replace(end, first_available=0xFFFFFFFE, next_seq=0xFFFFFFFF)


def huge_counts(info: IdentifyResponse) -> IdentifyResponse:
    return replace(info, capacity_records=0xFFFFFFFF, next_seq=0xFFFFFFFF, max_window=0xFFFFFFFF)


def seqs_backwards(info: IdentifyResponse) -> IdentifyResponse:
    return replace(info, first_seq=200, next_seq=100)


def escaped_identity(info: IdentifyResponse) -> IdentifyResponse:
    return replace(info, model="\x1b[5m", serial=ESCAPES, firmware="\r\n\x1b[31m")


def refusing_with_escapes(frame: Frame) -> list[bytes]:
    """Answers every READ stream with ERROR UNAUTHORIZED whose detail holds escapes and a newline."""
    if frame.msg_type in (MsgType.RECORDS, MsgType.RANGE_END):
        if frame.msg_type == MsgType.RECORDS:
            return []
        rseq = int.from_bytes(frame.payload[:2], "little")
        detail = f"locked{ESCAPES}\nturbolog: all good"
        return [encode_message(ErrorResponse(rseq, ErrorCode.UNAUTHORIZED, detail), frame.seq)]
    return [encode_frame(frame.msg_type, frame.seq, frame.payload)]


def huge_lengths(rng: random.Random) -> Callable[[int], bytes]:
    """Well-stuffed frames with a good CRC whose header declares 0xFFFF payload bytes (and carries
    two), between 64 KiB runs without a delimiter."""
    body = struct.pack("<BBHH", 1, MsgType.RECORDS, 1, 0xFFFF) + b"\x00\x00"
    liar = b"\x00" + cobs.encode(body + crc32c(body).to_bytes(4, "little")) + b"\x00"

    def chunk(max_bytes: int) -> bytes:
        if rng.random() < 0.5:
            return liar[:max_bytes]
        return bytes(rng.randrange(1, 256) for _ in range(min(max_bytes, 65536)))

    return chunk


@dataclass(frozen=True)
class Scenario:
    name: str
    make: Callable[[], Device]
    byte_interval: float | None = None
    slow_after: int = 0
    """Bytes the device sends at the line rate before *byte_interval* applies."""
    complete: bool = False
    """The pull must finish with the whole log (the damage is recoverable)."""
    fails_with: tuple[type[HostError], ...] = ()
    """When not complete: the errors allowed (empty: finishing is allowed too)."""


def _rng_bytes(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def _no_delimiter(seed: int) -> Callable[[int], bytes]:
    rng = random.Random(seed)
    return lambda n: bytes(rng.randrange(1, 256) for _ in range(min(n, 4096)))


def rewrite(kind: type[M], change: Callable[[M], M]) -> Callable[[], Device]:
    return lambda: Mangled(message_rewrite(kind, change))


SCENARIOS = [
    Scenario("random bytes", lambda: Spewer(_rng_bytes(1)), fails_with=(DeviceError,)),
    Scenario("endless run without a delimiter", lambda: Spewer(_no_delimiter(2)), fails_with=(DeviceError,)),
    Scenario(
        "huge declared lengths", lambda: Spewer(huge_lengths(random.Random(3))), fails_with=(DeviceError,)
    ),
    Scenario(
        "one byte per second", lambda: Mangled(untouched), byte_interval=1.0,
        fails_with=(DeviceError, LinkTimeout),
    ),
    Scenario(
        "one byte per second after IDENTIFY", lambda: Mangled(untouched), byte_interval=1.0, slow_after=200,
        fails_with=(DeviceError, LinkTimeout, PullFailed),
    ),
    Scenario("every RECORDS frame twice", lambda: Mangled(duplicated), complete=True),
    Scenario("stale frames replayed", lambda: Mangled(StaleReplay()), complete=True),
    Scenario("RECORDS frames reordered", lambda: Mangled(Reordered()), complete=True),
    Scenario(
        "records outside the window and 0xFFFFFFFF seqs",
        lambda: Mangled(strays_around([0xFFFFFFFF, 10_000_000], [0xFFFFFFFF])), complete=True,
    ),
    # Two different valid records for one seq: which one is the log the line cannot tell, so the pull
    # stops and archives neither, whichever came first.
    Scenario(
        "a replay with other bytes after the real record", lambda: Mangled(strays_around([], [0, 1])),
        fails_with=(DeviceError,),
    ),
    Scenario(
        "a forged record ahead of the real one", lambda: Mangled(strays_around([0], [])),
        fails_with=(DeviceError,),
    ),
    Scenario(
        "a forged record instead of the real one", lambda: Mangled(forged_in_place), fails_with=(PullFailed,)
    ),
    Scenario(
        "a forged record whose RANGE_END is lost", lambda: Mangled(ForgedOnceRangeEndLost()), complete=True
    ),
    Scenario("RANGE_END claims more than sent", rewrite(RangeEnd, overclaiming), fails_with=(PullFailed,)),
    Scenario("RANGE_END claims everything evicted", rewrite(RangeEnd, all_evicted)),
    Scenario(
        "IDENTIFY with 0xFFFFFFFF counts", rewrite(IdentifyResponse, huge_counts), fails_with=(PullFailed,)
    ),
    Scenario(
        "IDENTIFY with next_seq below first_seq", rewrite(IdentifyResponse, seqs_backwards),
        fails_with=(DeviceError,),
    ),
    Scenario(
        "IDENTIFY strings with escape codes", rewrite(IdentifyResponse, escaped_identity), complete=True
    ),
    Scenario(
        "ERROR detail with escape codes", lambda: Mangled(refusing_with_escapes), fails_with=(DeviceError,)
    ),
]


# --- in-process: outcome, deadline, memory, archive --------------------------------------------------


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        yield opened


def archive_contents(archive: Archive) -> tuple[int, list[int]]:
    """How many records the archive holds, and the seqs of those that are not the device's bytes."""
    count, wrong = 0, []
    for unit in archive.units():
        for seq, raw in archive.iter_raw(unit.serial):
            count += 1
            if seq >= LOG or raw != RAWS[seq]:
                wrong.append(seq)
    return count, wrong


@pytest.mark.parametrize("scenario", [pytest.param(scenario, id=scenario.name) for scenario in SCENARIOS])
def test_a_hostile_device_cannot_hang_bloat_or_corrupt_the_pull(scenario: Scenario, archive: Archive) -> None:
    """Figures held: finished or a HostError within DEADLINE_S of virtual time (about 355 s, from the
    host's own timeouts), Python peak under 4 MiB, and no archived record that differs from the log."""
    clock = VirtualClock()
    connections = 0

    def connect() -> Transport:
        nonlocal connections
        connections += 1
        return Transport(scenario.make(), clock, scenario.byte_interval, scenario.slow_after)

    tracemalloc.start()
    try:
        outcome: BaseException | None = None
        try:
            pull(connect, archive, clock=clock, sleep=clock.advance, timeout=TIMEOUT_S)
        except HostError as exc:
            outcome = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    stored, wrong = archive_contents(archive)
    print(f"\n{scenario.name}: {type(outcome).__name__ if outcome else 'finished'} after {clock():.1f} s "
          f"(virtual), {connections} connection(s), peak {peak / 1024:.0f} KiB, {stored} records archived, "
          f"{len(wrong)} not the device's" + (f": {outcome}" if outcome else ""))
    assert not wrong, f"archived records that are not the device's: {wrong}"
    assert clock() <= DEADLINE_S, (clock(), outcome)
    assert peak <= MEMORY_BOUND, peak
    if scenario.complete:
        assert outcome is None and stored == LOG, outcome
    elif scenario.fails_with:
        assert isinstance(outcome, scenario.fails_with), outcome


# --- through the command: exit code and one line on stderr -----------------------------------------------


class SocketDevice:
    """Serves a fresh *make()* device to each client of a loopback TCP listener, from a thread."""

    def __init__(self, make: Callable[[], Device]) -> None:
        self._make = make
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hostile-device")
        self._thread.start()

    def _serve(self) -> None:
        """One client at a time (a new one replaces the old), until close()."""
        client: socket.socket | None = None
        device, pending = self._make(), b""
        while not self._stop.is_set():
            watched = [self._listener] + ([client] if client else [])
            readable, writable, _ = select.select(watched, [client] if client else [], [], 0.05)
            if self._listener in readable:
                if client is not None:
                    client.close()
                client, device, pending = self._listener.accept()[0], self._make(), b""
                client.setblocking(False)
                continue
            if client is None:
                continue
            try:
                if client in readable:
                    data = client.recv(65536)
                    if not data:
                        raise ConnectionResetError("the host hung up")
                    device.receive(data)
                if client in writable:
                    pending = pending or device.output(4096)
                    pending = pending[client.send(pending):]
            except BlockingIOError:
                continue
            except OSError:
                client.close()
                client = None
        if client is not None:
            client.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()


Serve = Callable[[Callable[[], Device]], SocketDevice]


@pytest.fixture
def served() -> Iterator[Serve]:
    """Factory: ``served(make)`` serves *make()* devices on loopback until the test ends."""
    devices: list[SocketDevice] = []

    def serve(make: Callable[[], Device]) -> SocketDevice:
        devices.append(SocketDevice(make))
        return devices[-1]

    yield serve
    for device in devices:
        device.close()


def turbolog_pull(url: str, db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["pull", url, "--db", str(db), "--timeout", "0.3"])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    ("make", "code", "message"),
    [
        (lambda: Spewer(_rng_bytes(7)), 9, "not one valid turbolog frame"),
        (lambda: Spewer(_no_delimiter(8)), 9, "not one valid turbolog frame"),
        (lambda: Mangled(message_rewrite(RangeEnd, overclaiming)), 8, "never matched the count and digest"),
    ],
    ids=["random bytes", "no delimiter", "RANGE_END overclaims"],
)
def test_turbolog_pull_on_a_hostile_device_exits_with_its_code_and_one_line(
    make: Callable[[], Device], code: int, message: str, served: Serve, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Figure held: the documented exit code, and stderr is exactly one line naming the problem."""
    status, _, err = turbolog_pull(served(make).url, tmp_path / "archive.sqlite", capsys)
    assert status == code, err
    assert err.startswith("turbolog: ") and err.count("\n") == 1 and message in err, err
    assert "Traceback" not in err


def test_turbolog_shows_a_hostile_identity_without_its_escape_codes(
    served: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: a serial of escape codes pulls (exit 0) and reaches the terminal as '?'s."""
    status, out, err = turbolog_pull(
        served(lambda: Mangled(message_rewrite(IdentifyResponse, escaped_identity))).url,
        tmp_path / "archive.sqlite", capsys,
    )
    assert status == 0, err
    assert "\x1b" not in out + err and "\x07" not in out + err
    assert f"{LOG:,} records added" in out


def test_turbolog_shows_a_hostile_error_detail_as_one_clean_line(
    served: Serve, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: exit 9, one stderr line, no ESC or BEL byte from the device."""
    device = served(lambda: Mangled(refusing_with_escapes))
    status, _, err = turbolog_pull(device.url, tmp_path / "archive.sqlite", capsys)
    assert status == 9, err
    assert "UNAUTHORIZED" in err and "Traceback" not in err
    assert err.count("\n") == 1 and "\x1b" not in err and "\x07" not in err, repr(err)
