"""Messages: the typed payloads that frames carry, and their bytes.

Each message is a small frozen dataclass whose fields are exactly the fields
of its construct format in :data:`protocol.formats.MESSAGE_PAYLOADS`; the
mapping between the two is generic, so a format change needs no code here
beyond the dataclass.  Requests go host -> device; responses (high bit set
in the type) carry the ``seq`` of the request they answer as
``request_seq``.  Payload bytes beyond the fields a version knows are
ignored (a newer peer may append fields).  A message type this version does not know decodes as
:class:`UnknownMessage`, raw payload kept, so that a newer peer is not fatal.

Pure: no I/O, no clocks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from construct import ConstructError, FixedSized, StringEncoded

from . import formats
from .crc import crc32c
from .enums import MsgType
from .errors import LocalProtocolError, MalformedMessage
from .framing import Frame, encode_frame
from .records import CRC_SIZE, SNAPSHOT_FIELDS, DecodedRow, Snapshot, crc_fields

SCHEMA_FINGERPRINT: int = crc32c(formats.schema_text().encode("ascii"))
"""CRC-32C of the canonical text of every format: changes with any format."""

NO_TAG = bytes(formats.AUTH_TAG_LEN)


@dataclass(frozen=True, slots=True)
class Identify:
    MSG_TYPE: ClassVar[MsgType] = MsgType.IDENTIFY


@dataclass(frozen=True, slots=True)
class Live:
    MSG_TYPE: ClassVar[MsgType] = MsgType.LIVE


@dataclass(frozen=True, slots=True)
class ClockGet:
    MSG_TYPE: ClassVar[MsgType] = MsgType.CLOCK_GET


@dataclass(frozen=True, slots=True)
class ClockSet:
    new_time: int
    level: int = 0
    tag: bytes = NO_TAG
    MSG_TYPE: ClassVar[MsgType] = MsgType.CLOCK_SET


@dataclass(frozen=True, slots=True)
class LogClear:
    level: int = 0
    tag: bytes = NO_TAG
    MSG_TYPE: ClassVar[MsgType] = MsgType.LOG_CLEAR


@dataclass(frozen=True, slots=True)
class ReadRange:
    """Stream records ``start_seq .. start_seq + count - 1`` (count <= max_window)."""

    start_seq: int
    count: int
    max_payload: int = 0
    """Record bytes per RECORDS frame at most; 0 lets the device fill frames."""
    MSG_TYPE: ClassVar[MsgType] = MsgType.READ_RANGE


@dataclass(frozen=True, slots=True)
class ReadSet:
    """Stream the records of up to MAX_SET_RANGES ``(start_seq, count)`` ranges."""

    ranges: tuple[tuple[int, int], ...]
    max_payload: int = 0
    """As for :class:`ReadRange`."""
    MSG_TYPE: ClassVar[MsgType] = MsgType.READ_SET


@dataclass(frozen=True, slots=True)
class Abort:
    """Drop every queued or running stream."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.ABORT


@dataclass(frozen=True, slots=True)
class AuthChallenge:
    level: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.AUTH_CHALLENGE


@dataclass(frozen=True, slots=True)
class IdentifyResponse:
    request_seq: int
    protocol_version: int
    schema_fingerprint: int
    model: str
    serial: str
    firmware: str
    capacity_records: int
    first_seq: int
    next_seq: int
    device_time: int
    operating_s: int
    starts: int
    trips: int
    energy_wh: int
    baud: int
    max_window: int
    log_id: bytes
    """The log's identity: 8 random bytes the device makes with a new or cleared log."""
    MSG_TYPE: ClassVar[MsgType] = MsgType.IDENTIFY_RSP


@dataclass(frozen=True, slots=True)
class LiveResponse:
    request_seq: int
    timestamp: int
    snapshot: Snapshot
    MSG_TYPE: ClassVar[MsgType] = MsgType.LIVE_RSP


@dataclass(frozen=True, slots=True)
class ClockResponse:
    request_seq: int
    device_time: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.CLOCK_RSP


@dataclass(frozen=True, slots=True)
class LogClearResponse:
    request_seq: int
    first_seq: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.LOG_CLEAR_RSP


@dataclass(frozen=True, slots=True)
class Records:
    """A run of whole records; split and verify with :func:`protocol.records.decode_rows`."""

    request_seq: int
    records: bytes
    MSG_TYPE: ClassVar[MsgType] = MsgType.RECORDS


@dataclass(frozen=True, slots=True)
class RangeEnd:
    """Closes a READ_RANGE or READ_SET: what was available and what was sent."""

    request_seq: int
    first_available: int
    next_seq: int
    sent: int
    digest: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.RANGE_END


@dataclass(frozen=True, slots=True)
class AbortResponse:
    request_seq: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.ABORT_RSP


@dataclass(frozen=True, slots=True)
class AuthChallengeResponse:
    request_seq: int
    nonce: bytes
    MSG_TYPE: ClassVar[MsgType] = MsgType.AUTH_CHALLENGE_RSP


@dataclass(frozen=True, slots=True)
class ErrorResponse:
    request_seq: int
    code: int
    detail: str = ""
    MSG_TYPE: ClassVar[MsgType] = MsgType.ERROR


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A verified frame of a type this version does not know; kept raw."""

    msg_type: int
    payload: bytes


Message = (
    Identify
    | Live
    | ClockGet
    | ClockSet
    | LogClear
    | ReadRange
    | ReadSet
    | Abort
    | AuthChallenge
    | IdentifyResponse
    | LiveResponse
    | ClockResponse
    | LogClearResponse
    | Records
    | RangeEnd
    | AbortResponse
    | AuthChallengeResponse
    | ErrorResponse
)

MESSAGE_CLASSES: dict[int, type[Any]] = {
    cls.MSG_TYPE: cls
    for cls in (
        Identify,
        Live,
        ClockGet,
        ClockSet,
        LogClear,
        ReadRange,
        ReadSet,
        Abort,
        AuthChallenge,
        IdentifyResponse,
        LiveResponse,
        ClockResponse,
        LogClearResponse,
        Records,
        RangeEnd,
        AbortResponse,
        AuthChallengeResponse,
        ErrorResponse,
    )
}

RECORDS_PREFIX: int = formats.RECORDS.subcons[0].sizeof()
"""Bytes of a RECORDS payload before its records (its ``request_seq``)."""
RECORDS_ROOM: int = formats.MAX_PAYLOAD - RECORDS_PREFIX
"""Record bytes one RECORDS payload holds at most."""
_PADDED_STRINGS: dict[int, tuple[str, ...]] = {
    msg_type: tuple(
        sub.name
        for sub in fmt.subcons
        if isinstance(sub.subcon, StringEncoded) and isinstance(sub.subcon.subcon, FixedSized)
    )
    for msg_type, fmt in formats.MESSAGE_PAYLOADS.items()
}
"""Fixed-size, NUL-padded string fields: a NUL inside one would not survive."""


def _to_construct(msg: Message) -> dict[str, Any]:
    values: dict[str, Any] = {f.name: getattr(msg, f.name) for f in fields(msg)}
    if isinstance(msg, LiveResponse):
        values["snapshot"] = {name: getattr(msg.snapshot, name) for name in SNAPSHOT_FIELDS}
    if isinstance(msg, ReadSet):
        values["ranges"] = [{"start_seq": s, "count": c} for s, c in msg.ranges]
    return values


def encode_payload(msg: Message) -> bytes:
    """The message's payload bytes, built by construct."""
    if isinstance(msg, Records):
        return records_prefix(msg.request_seq) + msg.records
    for name in _PADDED_STRINGS.get(msg.MSG_TYPE, ()):
        if "\x00" in getattr(msg, name):
            raise LocalProtocolError(f"{type(msg).__name__}.{name} contains a NUL character")
    if isinstance(msg, ReadSet) and len(msg.ranges) > formats.MAX_SET_RANGES:
        raise LocalProtocolError(f"READ_SET takes at most {formats.MAX_SET_RANGES} ranges")
    try:
        return bytes(formats.MESSAGE_PAYLOADS[msg.MSG_TYPE].build(_to_construct(msg)))
    except (ConstructError, UnicodeError, ValueError, TypeError) as exc:
        raise LocalProtocolError(f"{type(msg).__name__} does not fit its format: {exc}") from exc


def records_prefix(request_seq: int) -> bytes:
    """The bytes a RECORDS payload answering request *request_seq* starts with (the device's fast
    path: the records follow, whole, at most RECORDS_ROOM bytes of them)."""
    if not 0 <= request_seq <= 0xFFFF:
        raise LocalProtocolError(f"request_seq {request_seq} is outside u16")
    return request_seq.to_bytes(RECORDS_PREFIX, "little")


def encode_message(msg: Message, seq: int) -> bytes:
    """Stuffed, delimited frame bytes carrying *msg*, with frame sequence *seq*."""
    return encode_frame(msg.MSG_TYPE, seq & 0xFFFF, encode_payload(msg))


def decode_message(frame: Frame) -> Message | UnknownMessage:
    """The message a verified frame carries; MalformedMessage if it does not fit."""
    cls = MESSAGE_CLASSES.get(frame.msg_type)
    if cls is None:
        return UnknownMessage(frame.msg_type, frame.payload)
    payload = frame.payload
    if cls is Records:
        if len(payload) < RECORDS_PREFIX:
            raise MalformedMessage("RECORDS payload shorter than its header")
        return Records(int.from_bytes(payload[:RECORDS_PREFIX], "little"), payload[RECORDS_PREFIX:])
    fmt = formats.MESSAGE_PAYLOADS[frame.msg_type]
    try:
        parsed = fmt.parse(payload)
    except (ConstructError, UnicodeError, ValueError) as exc:
        raise MalformedMessage(f"{cls.__name__} payload does not parse: {exc}") from exc
    values = {f.name: parsed[f.name] for f in fields(cls)}
    if cls is LiveResponse:
        values["snapshot"] = Snapshot(**{name: parsed.snapshot[name] for name in SNAPSHOT_FIELDS})
    if cls is ReadSet:
        if len(parsed.ranges) > formats.MAX_SET_RANGES:
            count = len(parsed.ranges)
            raise MalformedMessage(f"READ_SET of {count} ranges (at most {formats.MAX_SET_RANGES})")
        values["ranges"] = tuple((r.start_seq, r.count) for r in parsed.ranges)
    return cls(**values)  # type: ignore[no-any-return]


class RangeDigest:
    """The digest a RANGE_END carries: CRC-32C over the CRC fields (4 bytes,
    as on the wire) of the records sent for that request, in the order sent.

    Both sides compute it from raw record bytes; an empty range digests to 0.
    """

    __slots__ = ("value", "count")

    def __init__(self) -> None:
        self.value = 0
        self.count = 0

    def update(self, raw_record: bytes) -> None:
        """Add one record, as its bytes."""
        self.value = crc32c(raw_record[-CRC_SIZE:], self.value)
        self.count += 1

    def update_many(self, raw_records: list[bytes]) -> None:
        """Add records, as their bytes (the device's side)."""
        if raw_records:
            self.value = crc32c(b"".join(raw[-CRC_SIZE:] for raw in raw_records), self.value)
            self.count += len(raw_records)

    def update_rows(self, rows: list[DecodedRow]) -> None:
        """Add records, as :func:`protocol.records.decode_rows` gives them (the reader's side)."""
        if rows:
            self.value = crc32c(crc_fields(rows), self.value)
            self.count += len(rows)
