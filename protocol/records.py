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
from .enums import RecordType
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
_WHOLE = {rtype: struct.Struct(f"{layout.size}s") for rtype, layout in LAYOUTS.items()}
"""Each known record, as one byte string of its layout's size: splits a run of them in C."""
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
    """A runtime / performance sample."""

    seq: int
    timestamp: int
    snapshot: Snapshot

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
class UnknownRecord:
    """A verified record of a type this version does not know; kept raw."""

    seq: int
    timestamp: int
    type: int
    body: bytes


Record = SampleRecord | FaultRecord | EventRecord | UnknownRecord

_S = len(SNAPSHOT_FIELDS)


_snapshot_values = attrgetter(*SNAPSHOT_FIELDS)
_event_values = attrgetter(*(f.name for f in fields(EventRecord)[2:]))


def _body_values(record: Record) -> tuple[object, ...]:
    if isinstance(record, SampleRecord):
        return tuple(_snapshot_values(record.snapshot))
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
    length = layout.size - HEADER_SIZE - CRC_SIZE
    try:
        data = layout.struct.pack(record.seq, record.timestamp, record.TYPE, length, *_body_values(record), 0)
    except Exception as exc:  # struct.error, or a wrong type in a field
        raise LocalProtocolError(f"{type(record).__name__} does not fit its format: {exc}") from exc
    data = data[:-CRC_SIZE]
    return data + crc32c(data).to_bytes(CRC_SIZE, "little")


def _from_values(values: tuple[int, ...]) -> Record:
    seq, timestamp, rtype = values[0], values[1], values[2]
    if rtype == RecordType.SAMPLE:
        return SampleRecord(seq, timestamp, Snapshot(*values[4 : 4 + _S]))
    if rtype == RecordType.FAULT:
        code, severity, subsystem, flags = values[4:8]
        return FaultRecord(seq, timestamp, code, severity, subsystem, flags, Snapshot(*values[8 : 8 + _S]))
    return EventRecord(seq, timestamp, *values[4:-1])


def decode_record(raw: bytes) -> Record:
    """Verify one whole record and decode it through the fast layouts.

    Raises :class:`RecordError` for bytes that are not one valid record.
    A known type with an unexpected length (a newer firmware that appended
    fields) or an unknown type decodes as :class:`UnknownRecord`.
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
    layout = LAYOUTS.get(rtype)
    if layout is None or layout.size != len(raw):
        return UnknownRecord(seq, timestamp, rtype, bytes(raw[HEADER_SIZE:-CRC_SIZE]))
    return _from_values(layout.struct.unpack(raw))


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
        body_format = formats.RECORD_BODIES.get(head.type)
        body = raw[HEADER_SIZE:-CRC_SIZE]
        if body_format is None or body_format.sizeof() != head.length:
            return UnknownRecord(head.seq, head.timestamp, head.type, bytes(body))
        parsed = body_format.parse(body)
    except ConstructError as exc:
        raise RecordError(f"record does not parse: {exc}") from exc
    if head.type == RecordType.SAMPLE:
        return SampleRecord(head.seq, head.timestamp, _snapshot_from(parsed))
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
    return EventRecord(
        head.seq, head.timestamp, **{sub.name: parsed[sub.name] for sub in formats.EVENT_BODY.subcons}
    )


def _snapshot_from(parsed: object) -> Snapshot:
    return Snapshot(**{name: parsed[name] for name in SNAPSHOT_FIELDS})  # type: ignore[index]


DecodedRecord = tuple[bytes, tuple[int, ...]]
"""A verified record: its raw bytes, and its fields in wire order (header,
body, crc; for an unknown type or length only the header: seq, timestamp,
type, length)."""

DecodedRow = tuple[Any, ...]
"""A verified record as one flat tuple, the shape of a database row
(``row[0]`` seq, ``row[1]`` timestamp, ``row[2]`` type):

- a known type and length: its fields in wire order, header, body, then its
  CRC-32C as an int; the bytes are ``LAYOUTS[row[2]].struct.pack(*row)``
  (:func:`row_bytes`);
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


def _uniform_run(buf: bytes) -> FlatLayout | None:
    """The layout of *buf* if it is a run of intact records of one known type
    and length (the usual page of samples), checked in bulk; else None."""
    if len(buf) < HEADER_SIZE + CRC_SIZE or RAW_KERNEL is None:
        return None
    rtype = buf[8]
    layout = LAYOUTS.get(rtype)
    if layout is None:
        return None
    size = layout.size
    count, rest = divmod(len(buf), size)
    if rest or buf[9] != size - HEADER_SIZE - CRC_SIZE:
        return None
    if buf[8::size] != bytes((rtype,)) * count or buf[9::size] != bytes((buf[9],)) * count:
        return None
    kernel, seed, table, _ = RAW_KERNEL
    if kernel(buf, seed, table) != run_register(count, size):
        return None
    return layout


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
            layout = LAYOUTS.get(header[2])
            if layout is not None and layout.size == len(raw):
                good.append((raw, layout.struct.unpack(raw), True))
            else:
                good.append((raw, header, False))
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
    layout = _uniform_run(buf)
    if layout is not None:
        wholes = _WHOLE[buf[8]].iter_unpack(buf)  # byte 8: the run's one record type
        return list(zip(map(_first, wholes), layout.struct.iter_unpack(buf), strict=True)), []
    good, errors = _decode_each(buf)
    return [(raw, values) for raw, values, _ in good], errors


def decode_rows(buf: bytes) -> tuple[list[DecodedRow], list[RecordError]]:
    """As :func:`decode_batch`, each record as one :data:`DecodedRow`: the hot
    path of a pull.  A run of one type is verified and unpacked entirely in C
    (no Python code per record)."""
    layout = _uniform_run(buf)
    if layout is not None:
        return list(layout.struct.iter_unpack(buf)), []
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
        return layout.struct.pack(*row)
    except struct.error as exc:
        raise LocalProtocolError(f"row of record {row[0]} does not fit its layout: {exc}") from exc


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
