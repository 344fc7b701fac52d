"""Messages: the typed payloads that frames carry, and their bytes.

Each message is a small frozen dataclass whose fields are exactly the fields
of its construct format in :data:`protocol.formats.MESSAGE_PAYLOADS`; the
mapping between the two is generic, so a format change needs no code here
beyond the dataclass.  Requests go host -> device; responses (high bit set
in the type) carry the ``seq`` of the request they answer as
``request_seq``.  Payload bytes beyond the fields a version knows are
ignored (a newer peer may append fields).  A message type this version does not know decodes as
:class:`UnknownMessage`, raw payload kept, so that a newer peer is not fatal.

A message checks its fields when it is built, as h11's events do: every value must fit its
field of the format (integers in range, byte strings of their size, strings that encode within
their field and come back unchanged, at most MAX_SET_RANGES ranges, records that fit a frame),
else :class:`~protocol.errors.LocalProtocolError` (the caller's fault) at once, not at encoding.
The checks are derived from the formats (:func:`_field_check`).  A message decoded from a peer's
bytes that fails them is :class:`~protocol.errors.MalformedMessage` (the peer's fault).

Pure: no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from construct import (
    Bytes,
    Construct,
    ConstructError,
    FixedSized,
    FocusedSeq,
    FormatField,
    GreedyBytes,
    StringEncoded,
)

from . import formats
from .crc import crc32c
from .enums import MsgType
from .errors import LocalProtocolError, MalformedMessage
from .framing import Frame, encode_frame
from .records import CRC_SIZE, SNAPSHOT_FIELDS, DecodedRow, Snapshot, crc_fields

SCHEMA_FINGERPRINT: int = crc32c(formats.schema_text().encode("ascii"))
"""CRC-32C of the canonical text of every format: changes with any format."""

EARLIER_FINGERPRINTS: dict[int, str] = {
    0xF2447F55: "protocol 2 before RUNUP records (type 4)",
}
"""Schemas of earlier firmware whose logs this version reads in full, with what they lacked:
each is this schema less record types that its logs then never hold, so every record it wrote
decodes here as it did there.  A reader of logs (a flash image) accepts these; a live device
must still match :data:`SCHEMA_FINGERPRINT` (its messages are this version's)."""

READABLE_FINGERPRINTS: frozenset[int] = frozenset({SCHEMA_FINGERPRINT, *EARLIER_FINGERPRINTS})
"""Schemas whose logs this version reads: its own and :data:`EARLIER_FINGERPRINTS`."""

NO_TAG = bytes(formats.AUTH_TAG_LEN)


class _Checked:
    """A message that checks its fields against its format when built (module docstring)."""

    __slots__ = ()
    MSG_TYPE: ClassVar[MsgType]

    def __post_init__(self) -> None:
        for name, check in _CHECKS[self.MSG_TYPE]:
            problem = check(getattr(self, name))
            if problem is not None:
                raise LocalProtocolError(f"{type(self).__name__}.{name}: {problem}")


@dataclass(frozen=True, slots=True)
class Identify(_Checked):
    MSG_TYPE: ClassVar[MsgType] = MsgType.IDENTIFY


@dataclass(frozen=True, slots=True)
class Live(_Checked):
    MSG_TYPE: ClassVar[MsgType] = MsgType.LIVE


@dataclass(frozen=True, slots=True)
class ClockGet(_Checked):
    MSG_TYPE: ClassVar[MsgType] = MsgType.CLOCK_GET


@dataclass(frozen=True, slots=True)
class ClockSet(_Checked):
    new_time: int
    level: int = 0
    tag: bytes = NO_TAG
    MSG_TYPE: ClassVar[MsgType] = MsgType.CLOCK_SET


@dataclass(frozen=True, slots=True)
class LogClear(_Checked):
    level: int = 0
    tag: bytes = NO_TAG
    MSG_TYPE: ClassVar[MsgType] = MsgType.LOG_CLEAR


@dataclass(frozen=True, slots=True)
class ReadRange(_Checked):
    """Stream records ``start_seq .. start_seq + count - 1`` (count <= max_window)."""

    start_seq: int
    count: int
    max_payload: int = 0
    """Record bytes per RECORDS frame at most; 0 lets the device fill frames."""
    MSG_TYPE: ClassVar[MsgType] = MsgType.READ_RANGE


@dataclass(frozen=True, slots=True)
class ReadSet(_Checked):
    """Stream the records of up to MAX_SET_RANGES ``(start_seq, count)`` ranges."""

    ranges: tuple[tuple[int, int], ...]
    max_payload: int = 0
    """As for :class:`ReadRange`."""
    MSG_TYPE: ClassVar[MsgType] = MsgType.READ_SET


@dataclass(frozen=True, slots=True)
class Abort(_Checked):
    """Drop every queued or running stream."""

    MSG_TYPE: ClassVar[MsgType] = MsgType.ABORT


@dataclass(frozen=True, slots=True)
class AuthChallenge(_Checked):
    level: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.AUTH_CHALLENGE


@dataclass(frozen=True, slots=True)
class IdentifyResponse(_Checked):
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
class LiveResponse(_Checked):
    request_seq: int
    timestamp: int
    snapshot: Snapshot
    MSG_TYPE: ClassVar[MsgType] = MsgType.LIVE_RSP


@dataclass(frozen=True, slots=True)
class ClockResponse(_Checked):
    request_seq: int
    device_time: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.CLOCK_RSP


@dataclass(frozen=True, slots=True)
class LogClearResponse(_Checked):
    request_seq: int
    first_seq: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.LOG_CLEAR_RSP


@dataclass(frozen=True, slots=True)
class Records(_Checked):
    """A run of whole records; split and verify with :func:`protocol.records.decode_rows`."""

    request_seq: int
    records: bytes
    MSG_TYPE: ClassVar[MsgType] = MsgType.RECORDS

    def __post_init__(self) -> None:
        """The checks of every message, answered at once for the usual frame of a pull."""
        request_seq, records = self.request_seq, self.records
        if not (type(request_seq) is int and 0 <= request_seq <= _REQUEST_SEQ_MAX
                and type(records) is bytes and len(records) <= RECORDS_ROOM):
            _Checked.__post_init__(self)


@dataclass(frozen=True, slots=True)
class RangeEnd(_Checked):
    """Closes a READ_RANGE or READ_SET: what was available and what was sent."""

    request_seq: int
    first_available: int
    next_seq: int
    sent: int
    digest: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.RANGE_END


@dataclass(frozen=True, slots=True)
class AbortResponse(_Checked):
    request_seq: int
    MSG_TYPE: ClassVar[MsgType] = MsgType.ABORT_RSP


@dataclass(frozen=True, slots=True)
class AuthChallengeResponse(_Checked):
    request_seq: int
    nonce: bytes
    MSG_TYPE: ClassVar[MsgType] = MsgType.AUTH_CHALLENGE_RSP


@dataclass(frozen=True, slots=True)
class ErrorResponse(_Checked):
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
_REQUEST_SEQ_MAX = (1 << 8 * RECORDS_PREFIX) - 1
Check = Callable[[Any], str | None]
"""A field's check: what is wrong with a value for it, or None."""


def _int_check(field: FormatField) -> Check:
    bits = 8 * field.sizeof()
    signed = field.fmtstr[-1].islower()
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)

    def check(value: Any) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool):
            return f"must be an integer, not {type(value).__name__}"
        return None if low <= value <= high else f"{value} is outside {low}..{high}"

    return check


def _bytes_check(low: int, high: int) -> Check:
    def check(value: Any) -> str | None:
        if not isinstance(value, bytes):
            return f"must be bytes, not {type(value).__name__}"
        if not low <= len(value) <= high:
            return f"{len(value)} bytes, not {low if low == high else f'{low} to {high}'}"
        return None

    return check


def _string_check(field: StringEncoded) -> Check:
    """A padded string (encoded, at most its size, no NUL: padding would swallow it) or a
    length-prefixed one (encoded, at most what its prefix counts)."""
    padded = isinstance(field.subcon, FixedSized)
    most = field.subcon.length if padded else (1 << 8 * field.subcon.lengthfield.sizeof()) - 1

    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be a string, not {type(value).__name__}"
        try:
            size = len(value.encode(field.encoding))
        except UnicodeError:
            return f"{value!r} is not {field.encoding}"
        if size > most:
            return f"{size} bytes of {field.encoding}, at most {most}"
        if padded and "\x00" in value:
            return "contains a NUL character"
        return None

    return check


def _field_check(field: Construct) -> Check:
    """The check of one payload field, derived from its construct format.  Raises
    LocalProtocolError at import for a kind of field that has none yet."""
    if isinstance(field, FormatField):
        return _int_check(field)
    if isinstance(field, Bytes) and isinstance(field.length, int):
        return _bytes_check(field.length, field.length)
    if isinstance(field, StringEncoded):
        return _string_check(field)
    if field is GreedyBytes:  # a RECORDS payload's records: what the frame leaves them
        return _bytes_check(0, RECORDS_ROOM)
    if field is formats.SNAPSHOT:
        return _snapshot_check(field)
    if isinstance(field, FocusedSeq):  # READ_SET's PrefixedArray of SEQ_RANGE
        return _ranges_check(field.subcons[-1].subcon.subcon, formats.MAX_SET_RANGES)
    raise LocalProtocolError(f"no check for a {type(field).__name__} field")


def _ranges_check(element: Construct, most: int) -> Check:
    start, count = (_int_check(sub.subcon) for sub in element.subcons)

    def check(value: Any) -> str | None:
        if not isinstance(value, tuple):
            return f"must be a tuple of (start_seq, count), not {type(value).__name__}"
        if len(value) > most:
            return f"{len(value)} ranges, at most {most}"
        for pair in value:
            if not isinstance(pair, tuple) or len(pair) != 2:
                return f"{pair!r} is not a (start_seq, count) pair"
            problem = start(pair[0]) or count(pair[1])
            if problem is not None:
                return f"range {pair!r}: {problem}"
        return None

    return check


def _snapshot_check(fmt: Construct) -> Check:
    checks = [(sub.name, _int_check(sub.subcon)) for sub in fmt.subcons]

    def check(value: Any) -> str | None:
        if not isinstance(value, Snapshot):
            return f"must be a Snapshot, not {type(value).__name__}"
        for name, field_check in checks:
            problem = field_check(getattr(value, name))
            if problem is not None:
                return f"{name}: {problem}"
        return None

    return check


_CHECKS: dict[int, tuple[tuple[str, Check], ...]] = {
    msg_type: tuple((sub.name, _field_check(sub.subcon)) for sub in fmt.subcons)
    for msg_type, fmt in formats.MESSAGE_PAYLOADS.items()
}
"""The checks of every message type's fields, in field order."""


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
    try:
        if cls is Records:
            if len(payload) < RECORDS_PREFIX:
                raise MalformedMessage("RECORDS payload shorter than its header")
            return Records(int.from_bytes(payload[:RECORDS_PREFIX], "little"), payload[RECORDS_PREFIX:])
        try:
            parsed = formats.MESSAGE_PAYLOADS[frame.msg_type].parse(payload)
        except (ConstructError, UnicodeError, ValueError) as exc:
            raise MalformedMessage(f"{cls.__name__} payload does not parse: {exc}") from exc
        values = {f.name: parsed[f.name] for f in fields(cls)}
        if cls is LiveResponse:
            values["snapshot"] = Snapshot(**{name: parsed.snapshot[name] for name in SNAPSHOT_FIELDS})
        if cls is ReadSet:
            values["ranges"] = tuple((r.start_seq, r.count) for r in parsed.ranges)
        return cls(**values)  # type: ignore[no-any-return]
    except LocalProtocolError as exc:  # a value its own format can carry but a message cannot hold
        raise MalformedMessage(f"{exc}") from exc


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

    def update_crcs(self, crcs: Iterable[int]) -> None:
        """Add records, as their CRC fields (ints): a reader checking a digest from CRCs it kept."""
        fields = b"".join(crc.to_bytes(CRC_SIZE, "little") for crc in crcs)
        if fields:
            self.value = crc32c(fields, self.value)
            self.count += len(fields) // CRC_SIZE
