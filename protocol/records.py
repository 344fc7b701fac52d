"""Log records: values, their bytes, and the fast path between them.

A record is what the controller writes into flash and what the host keeps in
its archive, byte for byte, so its CRC-32C verifies it end to end::

    +-------+-----------+------+--------+-----------------+--------+
    | seq   | timestamp | type | length | body            | crc32c |
    | u32   | u32       | u8   | u8     | `length` bytes  | u32    |
    +-------+-----------+------+--------+-----------------+--------+
    crc32c covers seq..body.  Body formats: protocol.formats.RECORD_BODIES.

Two decoders live here and must agree on every record: :func:`parse_record`
goes through construct (the definition, and the oracle in tests) and
:func:`decode_batch` / :func:`decode_rows` / :func:`scan_records` /
:func:`decode_record` use ``struct`` layouts derived from the same
definitions (about 50x faster).  Encoding uses the derived layouts too.
This module never touches I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from functools import lru_cache
from operator import attrgetter, itemgetter
from typing import Any

from construct import ConstructError

from . import formats
from .crc import RAW_KERNEL, RESIDUE, crc32c
from .enums import RecordType, RunupChannel
from .errors import LocalProtocolError, RecordCrcMismatch, RecordError, RecordTruncated
from .fastpath import FlatLayout, flatten

HEADER_SIZE = formats.RECORD_HEADER.sizeof()
CRC_SIZE = formats.RECORD_TRAILER.sizeof()

_HEADER = flatten(formats.RECORD_HEADER)
_TRAILER = flatten(formats.RECORD_TRAILER)
_SNAPSHOT = flatten(formats.SNAPSHOT)
LAYOUTS: dict[int, FlatLayout] = {
    rtype: flatten(formats.RECORD_HEADER, body, formats.RECORD_TRAILER)
    for rtype, body in formats.RECORD_BODIES.items()
}
"""Whole-record layouts (header, body, crc) by record type."""


@dataclass(frozen=True)
class _Earlier:
    """An earlier firmware's layout of a known type: the current one less fields at the end of
    the body.  Its rows are *widened* to the current layout's shape (the fields it lacks None,
    before the crc); :func:`row_packer` packs such a row back into its bytes."""

    layout: FlatLayout
    missing: int
    """Fields of the current body that this one lacks."""

    def widen(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        return (*values[:-1], *(None,) * self.missing, values[-1])


def _earlier_layouts() -> dict[tuple[int, int], _Earlier]:
    earlier: dict[tuple[int, int], _Earlier] = {}
    for rtype, bodies in formats.EARLIER_RECORD_BODIES.items():
        current = LAYOUTS[rtype].names
        for body in bodies:
            layout = flatten(formats.RECORD_HEADER, body, formats.RECORD_TRAILER)
            kept = len(layout.names) - 1
            if layout.names[:kept] != current[:kept] or len(current) <= len(layout.names):
                raise LocalProtocolError(f"an earlier body of type {rtype} is not the current one cut short")
            earlier[(rtype, body.sizeof())] = _Earlier(layout, len(current) - len(layout.names))
    return earlier


EARLIER_LAYOUTS: dict[tuple[int, int], _Earlier] = _earlier_layouts()
"""Earlier firmware's layouts (:data:`protocol.formats.EARLIER_RECORD_BODIES`) by (type, body length)."""
_BY_LENGTH: dict[tuple[int, int], tuple[FlatLayout, _Earlier | None]] = {
    **{(rtype, layout.size - HEADER_SIZE - CRC_SIZE): (layout, None) for rtype, layout in LAYOUTS.items()},
    **{key: (earlier.layout, earlier) for key, earlier in EARLIER_LAYOUTS.items()},
}
"""The layout of a record of a known (type, body length), and what widens it, when it is an earlier one."""
_NARROWER: dict[tuple[int, int], FlatLayout] = {
    (rtype, earlier.missing): earlier.layout for (rtype, _), earlier in EARLIER_LAYOUTS.items()
}
"""An earlier layout by (type, fields it lacks): what a record whose last fields are None encodes as."""
_WHOLE = {layout.size: struct.Struct(f"{layout.size}s") for layout, _ in _BY_LENGTH.values()}
"""A known record, as one byte string of its layout's size (by that size): splits a run of them in C."""
_first = itemgetter(0)


def _intact_check() -> Callable[[bytes], bool]:
    if RAW_KERNEL is None:
        return lambda raw: crc32c(raw) == RESIDUE
    kernel, seed, table, residue = RAW_KERNEL
    return lambda raw: kernel(raw, seed, table) == residue


_intact = _intact_check()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The machine at one instant, in wire units (see the field names)."""

    state: int
    mode: int
    active_fault: int
    speed_rpm: int
    power_w: int
    tet1_c_x10: int
    tet2_c_x10: int
    compressor_inlet_c_x10: int
    ambient_c_x10: int
    ambient_pressure_kpa_x100: int
    fuel_valve_pct_x10: int
    fuel_power_w: int
    dc_bus_v_x10: int
    grid_voltage_v_x10: int
    grid_freq_hz_x1000: int
    operating_s: int
    starts: int
    trips: int
    energy_wh: int

    @property
    def tet_avg_c(self) -> float:
        return (self.tet1_c_x10 + self.tet2_c_x10) / 20

    @property
    def operating_hours(self) -> float:
        return self.operating_s / 3600

    def engineering(self) -> dict[str, float | int]:
        """Values in engineering units (C, kPa, %, V, Hz, h, kWh), for people."""
        out: dict[str, float | int] = {}
        for name, value in zip(SNAPSHOT_FIELDS, astuple(self), strict=True):
            for suffix, scale in (("_x10", 10), ("_x100", 100), ("_x1000", 1000)):
                if name.endswith(suffix):
                    out[name[: -len(suffix)]] = value / scale
                    break
            else:
                out[name] = value
        return out


SNAPSHOT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Snapshot))


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """A runtime / performance sample: the snapshot and the exhaust temperature after the
    recuperator (None in a sample of earlier firmware, which had no such channel)."""

    seq: int
    timestamp: int
    snapshot: Snapshot
    exhaust_c_x10: int | None = None

    @property
    def exhaust_c(self) -> float | None:
        return None if self.exhaust_c_x10 is None else self.exhaust_c_x10 / 10

    TYPE = RecordType.SAMPLE


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A fault, with the freeze-frame snapshot taken when it was raised."""

    seq: int
    timestamp: int
    code: int
    severity: int
    subsystem: int
    flags: int
    freeze: Snapshot

    TYPE = RecordType.FAULT


@dataclass(frozen=True, slots=True)
class EventRecord:
    """Start, stop, state change, power-up, log cleared, clock set, ..."""

    seq: int
    timestamp: int
    kind: int
    state_from: int = 0
    state_to: int = 0
    level: int = 0
    value_a: int = 0
    value_b: int = 0

    TYPE = RecordType.EVENT


@dataclass(frozen=True, slots=True)
class RunupChannelSpec:
    """What a RUNUP channel holds: the key of its value in :meth:`Snapshot.engineering` (and
    ``tet_avg_c``), that value's unit, and the size of one step of the record's ``values``."""

    key: str
    unit: str
    step: float


RUNUP_CHANNELS: dict[int, RunupChannelSpec] = {
    RunupChannel.TET_AVG: RunupChannelSpec("tet_avg_c", "°C", 0.1),
    RunupChannel.SPEED: RunupChannelSpec("speed_rpm", "rpm", 10.0),
    RunupChannel.POWER: RunupChannelSpec("power_w", "W", 100.0),
    RunupChannel.GRID_VOLTAGE: RunupChannelSpec("grid_voltage_v", "V", 0.1),
    RunupChannel.GRID_FREQ: RunupChannelSpec("grid_freq_hz", "Hz", 0.01),
    RunupChannel.DC_BUS: RunupChannelSpec("dc_bus_v", "V", 0.1),
}
"""Every RUNUP channel, in the order a controller writes them after a fault."""


def channel_value(snapshot: Snapshot, channel: int) -> float:
    """*snapshot*'s value of a RUNUP *channel*, in engineering units."""
    key = RUNUP_CHANNELS[channel].key
    return snapshot.tet_avg_c if key == "tet_avg_c" else snapshot.engineering()[key]


@dataclass(frozen=True, slots=True)
class RunupRecord:
    """The pre-trigger buffer of one channel before a shutdown-class fault (the record of seq
    ``fault_seq``, whose timestamp this record shares): ``values`` in steps of the channel's
    :data:`RUNUP_CHANNELS` step, the last at the fault, each earlier one ``interval_s`` before
    the next; only the last ``points`` were measured."""

    seq: int
    timestamp: int
    fault_seq: int
    channel: int
    interval_s: int
    points: int
    values: tuple[int, ...]

    TYPE = RecordType.RUNUP

    def __post_init__(self) -> None:
        if len(self.values) != formats.RUNUP_POINTS:
            raise LocalProtocolError(f"a run-up holds {formats.RUNUP_POINTS} values, not {len(self.values)}")

    def series(self) -> list[tuple[int, float]]:
        """``(device time, value in engineering units)`` of the measured points, oldest first
        (an unknown channel's values unscaled; a ``points`` over the buffer's length counts as
        all of it)."""
        spec = RUNUP_CHANNELS.get(self.channel)
        step = spec.step if spec is not None else 1.0
        size = formats.RUNUP_POINTS
        return [
            (self.timestamp - (size - 1 - i) * self.interval_s, round(self.values[i] * step, 6))
            for i in range(size - min(self.points, size), size)
        ]


@dataclass(frozen=True, slots=True)
class UnknownRecord:
    """A verified record of a type this version does not know; kept raw."""

    seq: int
    timestamp: int
    type: int
    body: bytes


Record = SampleRecord | FaultRecord | EventRecord | RunupRecord | UnknownRecord

_S = len(SNAPSHOT_FIELDS)


_snapshot_values = attrgetter(*SNAPSHOT_FIELDS)
_event_values = attrgetter(*(f.name for f in fields(EventRecord)[2:]))


def _body_values(record: Record) -> tuple[object, ...]:
    if isinstance(record, SampleRecord):
        return (*_snapshot_values(record.snapshot), record.exhaust_c_x10)
    if isinstance(record, FaultRecord):
        return (
            record.code,
            record.severity,
            record.subsystem,
            record.flags,
            *_snapshot_values(record.freeze),
        )
    if isinstance(record, EventRecord):
        return tuple(_event_values(record))
    if isinstance(record, RunupRecord):
        return (record.fault_seq, record.channel, record.interval_s, record.points, *record.values)
    raise LocalProtocolError(f"cannot encode {type(record).__name__}")


def encode_record(record: Record) -> bytes:
    """The record's bytes, CRC included.  Raises LocalProtocolError on values
    that do not fit their fields."""
    if isinstance(record, UnknownRecord):
        if len(record.body) > formats.MAX_RECORD_BODY:
            raise LocalProtocolError("record body over 255 bytes")
        try:
            head = _HEADER.struct.pack(record.seq, record.timestamp, record.type, len(record.body))
        except struct.error as exc:
            raise LocalProtocolError(f"UnknownRecord header does not fit its format: {exc}") from exc
        data = head + record.body
        return data + crc32c(data).to_bytes(CRC_SIZE, "little")
    layout = LAYOUTS[record.TYPE]
    values = _body_values(record)
    if values[-1] is None:  # a record of earlier firmware, which lacked the last fields
        kept = len(values)
        while kept and values[kept - 1] is None:
            kept -= 1
        narrower = _NARROWER.get((record.TYPE, len(values) - kept))
        if narrower is not None:
            layout, values = narrower, values[:kept]
    length = layout.size - HEADER_SIZE - CRC_SIZE
    try:
        data = layout.struct.pack(record.seq, record.timestamp, record.TYPE, length, *values, 0)
    except Exception as exc:  # struct.error, or a wrong type in a field
        raise LocalProtocolError(f"{type(record).__name__} does not fit its format: {exc}") from exc
    data = data[:-CRC_SIZE]
    return data + crc32c(data).to_bytes(CRC_SIZE, "little")


def _from_values(values: tuple[Any, ...]) -> Record:
    """The record of a known type's values in the current layout's shape (widened if earlier)."""
    seq, timestamp, rtype = values[0], values[1], values[2]
    if rtype == RecordType.SAMPLE:
        return SampleRecord(seq, timestamp, Snapshot(*values[4 : 4 + _S]), values[4 + _S])
    if rtype == RecordType.FAULT:
        code, severity, subsystem, flags = values[4:8]
        return FaultRecord(seq, timestamp, code, severity, subsystem, flags, Snapshot(*values[8 : 8 + _S]))
    if rtype == RecordType.RUNUP:
        fault_seq, channel, interval_s, points = values[4:8]
        return RunupRecord(seq, timestamp, fault_seq, channel, interval_s, points, tuple(values[8:-1]))
    return EventRecord(seq, timestamp, *values[4:-1])


def decode_record(raw: bytes) -> Record:
    """Verify one whole record and decode it through the fast layouts.

    Raises :class:`RecordError` for bytes that are not one valid record.
    A known type of an earlier firmware's length (:data:`EARLIER_LAYOUTS`) decodes as
    its type, the fields it lacks None.  A known type with another unexpected length (a
    newer firmware that appended fields) or an unknown type decodes as :class:`UnknownRecord`.
    """
    if len(raw) < HEADER_SIZE + CRC_SIZE:
        raise RecordTruncated(f"{len(raw)} bytes is shorter than a record")
    seq, timestamp, rtype, length = _HEADER.struct.unpack_from(raw)
    if len(raw) != HEADER_SIZE + length + CRC_SIZE:
        raise RecordTruncated(
            f"record {seq}: declares {length} body bytes, has {len(raw) - HEADER_SIZE - CRC_SIZE}"
        )
    if not _intact(raw):
        raise RecordCrcMismatch(f"record {seq}: CRC-32C mismatch")
    known = _BY_LENGTH.get((rtype, length))
    if known is None:
        return UnknownRecord(seq, timestamp, rtype, bytes(raw[HEADER_SIZE:-CRC_SIZE]))
    layout, earlier = known
    values = layout.struct.unpack(raw)
    return _from_values(values if earlier is None else earlier.widen(values))


def parse_record(raw: bytes) -> Record:
    """Decode one record through construct: the reference, slow path."""
    try:
        if len(raw) < HEADER_SIZE + CRC_SIZE:
            raise RecordTruncated(f"{len(raw)} bytes is shorter than a record")
        head = formats.RECORD_HEADER.parse(raw)
        if len(raw) != HEADER_SIZE + head.length + CRC_SIZE:
            raise RecordTruncated(f"record {head.seq}: length field disagrees with size")
        crc = formats.RECORD_TRAILER.parse(raw[-CRC_SIZE:]).crc
        if crc != crc32c(raw[:-CRC_SIZE]):
            raise RecordCrcMismatch(f"record {head.seq}: CRC-32C mismatch")
        bodies = [formats.RECORD_BODIES.get(head.type), *formats.EARLIER_RECORD_BODIES.get(head.type, ())]
        body_format = next((b for b in bodies if b is not None and b.sizeof() == head.length), None)
        body = raw[HEADER_SIZE:-CRC_SIZE]
        if body_format is None:
            return UnknownRecord(head.seq, head.timestamp, head.type, bytes(body))
        parsed = body_format.parse(body)
    except ConstructError as exc:
        raise RecordError(f"record does not parse: {exc}") from exc
    if head.type == RecordType.SAMPLE:
        return SampleRecord(head.seq, head.timestamp, _snapshot_from(parsed), parsed.get("exhaust_c_x10"))
    if head.type == RecordType.FAULT:
        return FaultRecord(
            head.seq,
            head.timestamp,
            parsed.code,
            parsed.severity,
            parsed.subsystem,
            parsed.flags,
            _snapshot_from(parsed.freeze),
        )
    if head.type == RecordType.RUNUP:
        return RunupRecord(
            head.seq, head.timestamp, parsed.fault_seq, parsed.channel, parsed.interval_s, parsed.points,
            tuple(parsed["values"]),
        )
    return EventRecord(
        head.seq, head.timestamp, **{sub.name: parsed[sub.name] for sub in formats.EVENT_BODY.subcons}
    )


def _snapshot_from(parsed: object) -> Snapshot:
    return Snapshot(**{name: parsed[name] for name in SNAPSHOT_FIELDS})  # type: ignore[index]


DecodedRecord = tuple[bytes, tuple[Any, ...]]
"""A verified record: its raw bytes, and its fields in wire order (header,
body, crc; for an unknown type or length only the header: seq, timestamp,
type, length).  A record of an earlier firmware's layout has the current
layout's shape: the fields it lacks are None, before the crc."""

DecodedRow = tuple[Any, ...]
"""A verified record as one flat tuple, the shape of a database row
(``row[0]`` seq, ``row[1]`` timestamp, ``row[2]`` type):

- a known type and length: its fields in wire order, header, body, then its
  CRC-32C as an int; the bytes are ``row_packer(row[2])(*row)``
  (:func:`row_bytes`); a record of an earlier firmware's length (a sample
  without ``exhaust_c_x10``) has the same shape, the fields it lacks None;
- anything else: ``(seq, timestamp, type, length, raw)``, the raw bytes kept
  whole, CRC included."""


@lru_cache(maxsize=256)
def run_register(count: int, size: int) -> int:
    """crcmod's raw CRC register after *count* intact records of *size* bytes.

    CRC-32C is linear: from register ``r``, an intact record of ``L`` bytes
    (one ending in its own CRC) leaves ``A^L (r ^ seed) ^ residue``, where
    ``A^L`` is what ``L`` zero bytes do to a register.  So one pass of the C
    kernel over a whole run of records, compared with this value, verifies
    them all; see :func:`decode_batch` for what that check guarantees.
    """
    if RAW_KERNEL is None:
        raise LocalProtocolError("crcmod's C kernel is not available")
    kernel, seed, table, residue = RAW_KERNEL
    zeros = bytes(size)
    register = seed
    for _ in range(count):
        register = kernel(zeros, register ^ seed, table) ^ residue
    return register


def _uniform_run(buf: bytes) -> tuple[FlatLayout, _Earlier | None] | None:
    """The layout of *buf* (and what widens it, if earlier) if it is a run of intact records of
    one known type and length (the usual page of samples), checked in bulk; else None."""
    if len(buf) < HEADER_SIZE + CRC_SIZE or RAW_KERNEL is None:
        return None
    rtype = buf[8]
    known = _BY_LENGTH.get((rtype, buf[9]))
    if known is None:
        return None
    layout = known[0]
    size = layout.size
    count, rest = divmod(len(buf), size)
    if rest:
        return None
    if buf[8::size] != bytes((rtype,)) * count or buf[9::size] != bytes((buf[9],)) * count:
        return None
    kernel, seed, table, _ = RAW_KERNEL
    if kernel(buf, seed, table) != run_register(count, size):
        return None
    return known


def _decode_each(buf: bytes) -> tuple[list[tuple[bytes, tuple[int, ...], bool]], list[RecordError]]:
    """Record by record, for runs that are not uniform or not all intact:
    ``(raw, values, known)`` of each intact record (``values`` only the header
    when not *known*), and one error per record that failed."""
    good: list[tuple[bytes, tuple[int, ...], bool]] = []
    errors: list[RecordError] = []
    unpack_header = _HEADER.struct.unpack_from
    overhead = HEADER_SIZE + CRC_SIZE
    pos, end = 0, len(buf)
    while pos < end:
        if end - pos < overhead:
            errors.append(RecordTruncated(f"{end - pos} trailing bytes are shorter than a record"))
            break
        header = unpack_header(buf, pos)
        stop = pos + overhead + header[3]
        if stop > end:
            errors.append(RecordTruncated(f"record {header[0]} runs {stop - end} bytes past the end"))
            break
        raw = buf[pos:stop]
        if not _intact(raw):
            errors.append(RecordCrcMismatch(f"record {header[0]}: CRC-32C mismatch"))
        else:
            known = _BY_LENGTH.get((header[2], header[3]))
            if known is None:
                good.append((raw, header, False))
            else:
                layout, earlier = known
                values = layout.struct.unpack(raw)
                good.append((raw, values if earlier is None else earlier.widen(values), True))
        pos = stop
    return good, errors


def decode_batch(buf: bytes) -> tuple[list[DecodedRecord], list[RecordError]]:
    """Split a run of records (a RECORDS payload, a flash page), verify each
    record's CRC-32C and decode its fields.

    Returns the intact records and one error per record that failed.  A
    declared length running past the end stops the split (nothing after it
    can be delimited).

    A run of records of one type and length (the usual case: pages of
    samples) is verified with one pass of the CRC kernel over the whole run
    (:func:`run_register`) and decoded in bulk; if that check fails, record
    by record, so the damaged ones are found.  The joint check rejects every
    run in which one record is damaged (exactly as checking each would), and
    any damage to several records that a CRC-32C over the whole run would
    detect: every odd number of flipped bits, every burst up to 32 bits, any
    3 flipped bits (5 within 655 bytes); other damage passes with probability
    2^-32.
    """
    known = _uniform_run(buf)
    if known is not None:
        layout, earlier = known
        wholes = _WHOLE[layout.size].iter_unpack(buf)
        values = layout.struct.iter_unpack(buf)
        widened = values if earlier is None else map(earlier.widen, values)
        return list(zip(map(_first, wholes), widened, strict=True)), []
    good, errors = _decode_each(buf)
    return [(raw, values) for raw, values, _ in good], errors


def decode_rows(buf: bytes) -> tuple[list[DecodedRow], list[RecordError]]:
    """As :func:`decode_batch`, each record as one :data:`DecodedRow`: the hot
    path of a pull.  A run of one type is verified and unpacked entirely in C
    (no Python code per record)."""
    known = _uniform_run(buf)
    if known is not None:
        layout, earlier = known
        rows = layout.struct.iter_unpack(buf)
        return list(rows if earlier is None else map(earlier.widen, rows)), []
    good, errors = _decode_each(buf)
    return [values if known else (*values, raw) for raw, values, known in good], errors


def row_bytes(row: DecodedRow) -> bytes:
    """The record bytes of a :data:`DecodedRow` (CRC included), exactly as received.

    Raises :class:`LocalProtocolError` for a tuple that is not a row of a
    known layout (nothing is verified here: check the CRC of the result)."""
    last = row[-1]
    if isinstance(last, bytes | bytearray):
        return bytes(last)
    layout = LAYOUTS.get(row[2])
    if layout is None or len(row) != len(layout.names):
        raise LocalProtocolError(f"a row of {len(row)} fields of type {row[2]} has no layout")
    try:
        return row_packer(row[2])(*row)
    except struct.error as exc:
        raise LocalProtocolError(f"row of record {row[0]} does not fit its layout: {exc}") from exc


def row_packer(rtype: int) -> Callable[..., bytes]:
    """``pack(*row)``: the bytes of a :data:`DecodedRow` of known type *rtype* (no checks; C
    speed for a type that no earlier firmware wrote otherwise).  A row whose last body fields are
    None packs as the earlier layout that lacked them (with that layout's body length)."""
    pack = LAYOUTS[rtype].struct.pack
    narrower = {
        missing: (layout.struct.pack, layout.size - HEADER_SIZE - CRC_SIZE)
        for (t, missing), layout in _NARROWER.items() if t == rtype
    }
    if not narrower:
        return pack

    def pack_row(*row: Any) -> bytes:
        if row[-2] is not None:
            return pack(*row)
        missing = 1
        while row[-2 - missing] is None:
            missing += 1
        earlier, length = narrower[missing]
        return earlier(*row[:3], length, *row[4 : -1 - missing], row[-1])

    return pack_row


def record_from_row(row: DecodedRow) -> Record:
    """The record object of a :data:`DecodedRow` (no CRC check: rows come verified)."""
    last = row[-1]
    if isinstance(last, bytes | bytearray):
        return UnknownRecord(row[0], row[1], row[2], bytes(last[HEADER_SIZE:-CRC_SIZE]))
    return _from_values(row)


def is_intact(raw: bytes) -> bool:
    """True if *raw* ends in the CRC-32C of the bytes before it (one C call)."""
    return _intact(raw)


def record_header(buf: bytes, offset: int = 0) -> tuple[int, int, int, int]:
    """``(seq, timestamp, type, length)`` of the record that starts at *offset* in *buf*
    (unverified: check the record before trusting them)."""
    seq, timestamp, rtype, length = _HEADER.struct.unpack_from(buf, offset)
    return seq, timestamp, rtype, length


def record_seq(raw: bytes) -> int:
    """The seq of the record *raw* (unverified)."""
    return record_header(raw)[0]


def record_timestamp(raw: bytes) -> int:
    """The timestamp of the record *raw* (unverified)."""
    return record_header(raw)[1]


def record_crc(raw: bytes) -> int:
    """The CRC-32C field of the whole record *raw*, as an int (unverified)."""
    return int(_TRAILER.struct.unpack_from(raw, len(raw) - CRC_SIZE)[0])


def crc_fields(rows: list[DecodedRow]) -> bytes:
    """The 4-byte CRC fields of *rows* (as :func:`decode_rows` gives them),
    concatenated in order: what a RANGE_END digest covers."""
    last = list(map(itemgetter(-1), rows))
    if all(type(value) is int for value in last):
        return struct.pack(f"<{len(last)}I", *last)
    return b"".join(
        value.to_bytes(CRC_SIZE, "little") if isinstance(value, int) else bytes(value[-CRC_SIZE:])
        for value in last
    )


def scan_records(buf: bytes) -> tuple[list[tuple[int, int, int, bytes]], list[RecordError]]:
    """As :func:`decode_batch`, giving ``(seq, timestamp, type, raw)`` per record."""
    good, errors = decode_batch(buf)
    return [(values[0], values[1], values[2], raw) for raw, values in good], errors
