"""The device side of the wire protocol: a sans-I/O session of the emulated controller.

:class:`DeviceSession` turns request bytes from the host into response bytes
for the line, following ``docs/protocol.md`` section 5:

- ``receive_data(data)`` takes bytes in any chunking, verifies frames and
  handles every request at once (in arrival order);
- ``data_to_send(max_bytes)`` hands out at most *max_bytes* of the next bytes
  for the line, possibly part of a frame.  Frames are built lazily, one at a
  time, when the previous one has been handed out, so a stream of a million
  records never sits in memory and ABORT takes effect within one frame.

What goes out next, whenever a new frame is due::

    immediate responses (FIFO)  ──► sent first, one frame each
    streams (FIFO, at most 4)   ──► head stream: next RECORDS frame, or its
                                    RANGE_END, after which it is removed

Immediate responses are IDENTIFY_RSP, LIVE_RSP, CLOCK_RSP, LOG_CLEAR_RSP,
AUTH_CHALLENGE_RSP, ABORT_RSP and every ERROR (also ERROR UNSUPPORTED_VERSION for
a request whose frame verified but carries another protocol version).  A stream
sends the seqs it was asked for in increasing order, each once, however READ_SET
ordered or overlapped its ranges.  A frame's ``seq`` is the
device's frame counter, taken when the frame is built, i.e. in sending order.

Access control (``docs/protocol.md`` section 7): reads need nothing.  CLOCK_SET
and LOG_CLEAR are carried out only when they answer this line's pending
challenge; the unit's :class:`~firmware_sim.auth.AccessControl` checks them,
counts failures, locks out and audits.  The session keeps only the line's
pending challenge: every AUTH_CHALLENGE replaces it, and every CLOCK_SET or
LOG_CLEAR consumes it, accepted, refused or malformed.  A new session (a new
peer) starts with none.

The session reaches the controller only through :class:`UnitPort`.  It does no
I/O, never sleeps, never reads a clock (device time comes from the unit) and
never paces: pacing to the line rate is the driver's job.  Not thread-safe:
the driver calls it, and ticks the unit, from one thread.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Callable, Iterator
from typing import Protocol

from protocol.auth import REQUIRED_LEVEL, AuthenticatedRequest
from protocol.counters import LifetimeCounters
from protocol.enums import AccessLevel, ErrorCode, MsgType
from protocol.errors import FrameError, MalformedMessage, UnsupportedVersion
from protocol.formats import NONCE_LEN, PROTOCOL_VERSION
from protocol.framing import Frame, FrameDecoder, encode_frame
from protocol.messages import (
    RECORDS_ROOM,
    SCHEMA_FINGERPRINT,
    Abort,
    AbortResponse,
    AuthChallenge,
    AuthChallengeResponse,
    ClockGet,
    ClockResponse,
    ClockSet,
    ErrorResponse,
    Identify,
    IdentifyResponse,
    Live,
    LiveResponse,
    LogClear,
    LogClearResponse,
    Message,
    RangeDigest,
    RangeEnd,
    ReadRange,
    ReadSet,
    decode_message,
    encode_message,
    records_prefix,
)
from protocol.records import Snapshot, record_seq

from .auth import AccessControl, Challenge, Refusal

MAX_STREAMS = 4
"""Streams queued or running at once; one more is answered with ERROR BUSY."""
MAX_WAITING_ANSWERS = 16
"""Answers queued for the line at once (a controller's transmit queue is finite): a request
arriving while this many wait is dropped unanswered, as if lost on the line, and counted; a
host that sends without reading cannot make the device hold more."""

REQUEST_TYPES = frozenset(t for t in MsgType if t < 0x80)
"""Message types the device handles; every other verified frame is UNKNOWN_MESSAGE."""

_MAX_DETAIL = 255
"""An ERROR detail is a u8-prefixed UTF-8 string."""
_PROTECTED_LEVELS = frozenset(AccessLevel) - {AccessLevel.READ}
"""Levels a challenge can be asked for: READ needs none."""


class UnitPort(Protocol):
    """What the session needs from the emulated controller.

    The log holds seqs in ``[first_seq, next_seq)`` (a record lost to a
    power cut may be missing).  ``iter_raw(start, stop)`` lazily yields the
    raw bytes (CRC included) of the records in ``[start, stop)`` that the log
    holds, in seq order.  The session may keep an iterator open across frames
    while the log changes; it drops one whose next record was evicted.
    """

    @property
    def model(self) -> str: ...
    @property
    def serial(self) -> str: ...
    @property
    def firmware(self) -> str: ...
    @property
    def baud(self) -> int: ...
    @property
    def max_window(self) -> int: ...
    @property
    def capacity_records(self) -> int: ...
    @property
    def first_seq(self) -> int: ...
    @property
    def next_seq(self) -> int: ...
    @property
    def counters(self) -> LifetimeCounters: ...
    @property
    def log_id(self) -> bytes:
        """The log's identity, new with every new or cleared log."""
        ...
    @property
    def access(self) -> AccessControl:
        """The unit's access control (keys, failures, lockout, audit), shared by all its lines."""
        ...

    def iter_raw(self, start_seq: int, stop_seq: int) -> Iterator[bytes]: ...

    def clear_log(self, *, level: int = 0) -> int:
        """Empty the log (logging the clear, at access *level*); return the new first_seq."""
        ...

    def device_time(self) -> int: ...

    def set_device_time(self, new_time: int, *, level: int = 0) -> None:
        """Set device time (logging the set, at access *level*)."""
        ...

    def live_snapshot(self) -> Snapshot: ...


def _normalised(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(start, stop)`` pairs, stop exclusive, sorted and merged, from ``(start, count)`` ranges:
    what a stream sends, in increasing seq order and each seq once (``docs/protocol.md`` 5).
    A count of 0 asks for nothing; none left gives one empty range (RANGE_END, sent 0)."""
    merged: list[tuple[int, int]] = []
    for start, stop in sorted((start, start + count) for start, count in ranges if count > 0):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged or [(0, 0)]


class _Stream:
    """One READ_RANGE or READ_SET: its ranges, where it is, what it sent.

    Reads the log through one ``iter_raw`` iterator at a time.  Between frames
    the stream is either *between iterators* (``_records`` is None and ``_pos``
    is the next seq wanted) or *holding* a record that did not fit in the last
    frame (``_held``, whose seq is ``_pos``), with its iterator left open for the
    next frame.  Records are bounded by ``next_seq`` when an iterator opens; an
    iterator whose held record was evicted meanwhile is dropped and reopened at
    ``first_seq``.
    """

    __slots__ = (
        "request_seq", "_prefix", "_ranges", "_index", "_pos", "_stop", "_records", "_held", "_digest",
        "_room",
    )

    def __init__(self, request_seq: int, ranges: list[tuple[int, int]], max_payload: int = 0) -> None:
        self.request_seq = request_seq
        self._room = max_payload if 0 < max_payload < RECORDS_ROOM else RECORDS_ROOM
        """Record bytes per frame: the reader's max_payload, or all that fit."""
        self._prefix = records_prefix(request_seq)
        self._ranges = ranges
        """``(start, stop)`` pairs, stop exclusive, sorted and disjoint (:func:`_normalised`)."""
        self._index = 0
        self._pos = ranges[0][0]
        self._stop = self._pos
        """Where the open iterator ends (exclusive)."""
        self._records: Iterator[bytes] | None = None
        self._held: bytes | None = None
        self._digest = RangeDigest()

    @property
    def sent(self) -> int:
        return self._digest.count

    def next_payload(self, unit: UnitPort) -> bytes | None:
        """The next RECORDS payload, or None when every range is done."""
        first, next_seq = unit.first_seq, unit.next_seq
        batch: list[bytes] = []
        add = batch.append
        room = self._room
        if self._held is not None:
            if self._pos < first:
                self._records = None
            else:
                add(self._held)
                room -= len(self._held)
            self._held = None
        while self._index < len(self._ranges):
            if self._records is None:
                start = max(self._pos, first)
                stop = min(self._ranges[self._index][1], next_seq)
                if start >= stop:
                    self._next_range()
                    continue
                self._records = iter(unit.iter_raw(start, stop))
                self._stop = stop
            for raw in self._records:
                size = len(raw)
                if size > room and batch:
                    self._held = raw
                    self._pos = record_seq(raw)
                    return self._payload(batch)
                add(raw)
                room -= size
            self._records = None
            self._pos = self._stop
        return self._payload(batch) if batch else None

    def _next_range(self) -> None:
        self._index += 1
        if self._index < len(self._ranges):
            self._pos = self._ranges[self._index][0]

    def _payload(self, batch: list[bytes]) -> bytes:
        self._digest.update_many(batch)
        return self._prefix + b"".join(batch)

    def range_end(self, unit: UnitPort) -> RangeEnd:
        digest = self._digest
        return RangeEnd(self.request_seq, unit.first_seq, unit.next_seq, digest.count, digest.value)


class DeviceSession:
    """The controller's end of one serial line; see the module docstring.

    *entropy* gives the random bytes of AUTH_CHALLENGE nonces: by default the
    operating system's cryptographic source (:func:`secrets.token_bytes`),
    whatever the simulation's seed, so that restoring an old flash image does
    not replay old nonces; a test may pass a seeded ``random.Random().randbytes``.
    Counters: ``frames_in`` (verified frames), ``frames_dropped`` (failed
    verification), ``requests_dropped`` (verified, but the transmit queue was
    full: :data:`MAX_WAITING_ANSWERS`), ``frames_out`` and ``records_out``.
    """

    def __init__(self, unit: UnitPort, *, entropy: Callable[[int], bytes] = secrets.token_bytes) -> None:
        self._unit = unit
        self._entropy = entropy
        self._decoder = FrameDecoder()
        self._immediate: deque[Message] = deque()
        self._streams: deque[_Stream] = deque()
        self._out = b""
        self._out_pos = 0
        self._seq = 0
        self._challenge: Challenge | None = None
        """This line's pending challenge, consumed by the next CLOCK_SET or LOG_CLEAR."""
        self.frames_in = 0
        self.frames_dropped = 0
        self.requests_dropped = 0
        self.frames_out = 0
        self.records_out = 0

    @property
    def has_output(self) -> bool:
        """True while anything is left to send (a stream always ends with RANGE_END)."""
        return self._out_pos < len(self._out) or bool(self._immediate) or bool(self._streams)

    @property
    def streams(self) -> int:
        """Streams queued or running."""
        return len(self._streams)

    # --- input -----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the line; every complete request is handled now."""
        for item in self._decoder.feed(data):
            if isinstance(item, UnsupportedVersion) and item.msg_type in REQUEST_TYPES:
                self.frames_in += 1
                if len(self._immediate) >= MAX_WAITING_ANSWERS:
                    self.requests_dropped += 1
                else:
                    self._error(item.seq, ErrorCode.UNSUPPORTED_VERSION,
                                f"protocol version {item.version}, this device speaks {PROTOCOL_VERSION}")
            elif isinstance(item, FrameError):
                self.frames_dropped += 1
            else:
                self.frames_in += 1
                if len(self._immediate) >= MAX_WAITING_ANSWERS:
                    self.requests_dropped += 1
                else:
                    self._handle(item)

    def _handle(self, frame: Frame) -> None:
        rseq = frame.seq
        if frame.msg_type not in REQUEST_TYPES:
            self._error(rseq, ErrorCode.UNKNOWN_MESSAGE, f"message type 0x{frame.msg_type:02X}")
            return
        try:
            msg = decode_message(frame)
        except MalformedMessage as exc:
            if frame.msg_type in REQUIRED_LEVEL:
                self._challenge = None
            self._error(rseq, ErrorCode.MALFORMED_REQUEST, str(exc))
            return
        unit = self._unit
        match msg:
            case Identify():
                counters = unit.counters
                self._immediate.append(IdentifyResponse(
                    rseq, PROTOCOL_VERSION, SCHEMA_FINGERPRINT, unit.model, unit.serial, unit.firmware,
                    unit.capacity_records, unit.first_seq, unit.next_seq, unit.device_time(),
                    counters.operating_s, counters.starts, counters.trips, counters.energy_wh,
                    unit.baud, unit.max_window, unit.log_id,
                ))
            case Live():
                self._immediate.append(LiveResponse(rseq, unit.device_time(), unit.live_snapshot()))
            case ClockGet():
                self._immediate.append(ClockResponse(rseq, unit.device_time()))
            case ClockSet() | LogClear():
                challenge, self._challenge = self._challenge, None
                outcome = unit.access.perform(challenge, msg, lambda: self._carry_out(rseq, msg))
                if isinstance(outcome, Refusal):
                    self._error(rseq, outcome.error_code, outcome.detail)
                else:
                    self._immediate.append(outcome)
            case AuthChallenge(level=level):
                self._challenge = None
                if level not in _PROTECTED_LEVELS:
                    self._error(rseq, ErrorCode.OUT_OF_RANGE, f"no protected access level {level}")
                elif (lockout := unit.access.lockout_refusal()) is not None:
                    self._error(rseq, lockout.error_code, lockout.detail)
                else:
                    entropy = self._entropy(NONCE_LEN)
                    self._challenge = unit.access.challenge(AccessLevel(level), entropy)
                    self._immediate.append(AuthChallengeResponse(rseq, self._challenge.nonce))
            case Abort():
                self._streams.clear()
                self._immediate.append(AbortResponse(rseq))
            case ReadRange(start_seq=start, count=count, max_payload=max_payload):
                if count < 1:
                    self._error(rseq, ErrorCode.OUT_OF_RANGE, "READ_RANGE of 0 records")
                else:
                    self._start_stream(rseq, [(start, count)], max_payload)
            case ReadSet(ranges=ranges, max_payload=max_payload):
                self._start_stream(rseq, list(ranges), max_payload)

    def _carry_out(self, rseq: int, request: AuthenticatedRequest) -> Message:
        """Do what an accepted CLOCK_SET or LOG_CLEAR asks; its response."""
        unit = self._unit
        if isinstance(request, ClockSet):
            unit.set_device_time(request.new_time, level=request.level)
            return ClockResponse(rseq, unit.device_time())
        return LogClearResponse(rseq, unit.clear_log(level=request.level))

    def _start_stream(self, rseq: int, ranges: list[tuple[int, int]], max_payload: int) -> None:
        """Queue a stream of *ranges* ``(start, count)`` as READ_SET asks (READ_RANGE: one range,
        its count checked before; more than MAX_SET_RANGES ranges never parse, MALFORMED_REQUEST);
        a stream sends its seqs in increasing order, each once."""
        window = self._unit.max_window
        if sum(count for _, count in ranges) > window:
            self._error(rseq, ErrorCode.OUT_OF_RANGE, f"more than max_window ({window}) records")
        elif len(self._streams) >= MAX_STREAMS:
            self._error(rseq, ErrorCode.BUSY, f"{MAX_STREAMS} streams already queued")
        else:
            self._streams.append(_Stream(rseq, _normalised(ranges), max_payload))

    def _error(self, rseq: int, code: ErrorCode, detail: str) -> None:
        text = detail.encode("utf-8")[:_MAX_DETAIL].decode("utf-8", "ignore")
        self._immediate.append(ErrorResponse(rseq, code, text))

    # --- output ----------------------------------------------------------

    def data_to_send(self, max_bytes: int) -> bytes:
        """Up to *max_bytes* of the next bytes for the line (b"" when idle)."""
        parts: list[bytes] = []
        wanted = max_bytes
        while wanted > 0:
            out, pos = self._out, self._out_pos
            if pos >= len(out):
                out = self._next_frame()
                if not out:
                    break
                self._out, pos = out, 0
            end = pos + wanted
            if pos == 0 and end >= len(out):
                parts.append(out)
            else:
                parts.append(out[pos:end])
            taken = min(end, len(out)) - pos
            self._out_pos = pos + taken
            wanted -= taken
        return b"".join(parts)

    def _next_frame(self) -> bytes:
        """The next frame's bytes on the line, or b"" when there is nothing to send."""
        seq = self._seq
        if self._immediate:
            frame = encode_message(self._immediate.popleft(), seq)
        elif self._streams:
            stream = self._streams[0]
            sent = stream.sent
            payload = stream.next_payload(self._unit)
            if payload is None:
                self._streams.popleft()
                frame = encode_message(stream.range_end(self._unit), seq)
            else:
                self.records_out += stream.sent - sent
                frame = encode_frame(MsgType.RECORDS, seq, payload)
        else:
            return b""
        self._seq = (seq + 1) & 0xFFFF
        self.frames_out += 1
        return frame
