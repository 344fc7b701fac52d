"""Every wire format of the protocol, declared once with construct.

This module is the single definition of the bytes.  Everything else is
derived from it: the fast decode path (:mod:`protocol.fastpath` turns these
Structs into ``struct.Struct`` layouts), the schema fingerprint, and the
byte tables in ``docs/protocol.md``.  All integers are little-endian.  Field
names carry their unit and scale (``tet1_c_x10`` is TET #1 in tenths of a
degree Celsius).  Nothing here parses untrusted lengths: frames are bounded by
:mod:`protocol.framing` before construct sees them, and no format has a count
read from the wire that is not capped by the frame size.
"""

from __future__ import annotations

from construct import (
    Array,
    Bytes,
    Construct,
    FocusedSeq,
    FormatField,
    GreedyBytes,
    Int8ul,
    Int16sl,
    Int16ul,
    Int32sl,
    Int32ul,
    Int64ul,
    PaddedString,
    PascalString,
    Prefixed,
    PrefixedArray,
    Renamed,
    StringEncoded,
    Struct,
    Subconstruct,
)

PROTOCOL_VERSION = 2
"""2: IDENTIFY_RSP carries ``log_id``."""

# --- frames ---------------------------------------------------------------

FRAME_HEADER = Struct(
    "version" / Int8ul,
    "msg_type" / Int8ul,
    "seq" / Int16ul,
    "length" / Int16ul,
)
"""Frame header; followed by ``length`` payload bytes and a CRC-32C (u32)."""

FRAME_CRC = Int32ul
MAX_FRAME = 1024
"""Largest frame before stuffing: header + payload + CRC."""
MAX_PAYLOAD: int = MAX_FRAME - FRAME_HEADER.sizeof() - FRAME_CRC.sizeof()

# --- records --------------------------------------------------------------

RECORD_HEADER = Struct(
    "seq" / Int32ul,
    "timestamp" / Int32ul,
    "type" / Int8ul,
    "length" / Int8ul,
)
"""Record header; followed by ``length`` body bytes and a CRC-32C (u32)
computed over header and body."""

RECORD_TRAILER = Struct(
    "crc" / Int32ul,
)
RECORD_OVERHEAD: int = RECORD_HEADER.sizeof() + RECORD_TRAILER.sizeof()
MAX_RECORD_BODY = 255

SNAPSHOT = Struct(
    "state" / Int8ul,
    "mode" / Int8ul,
    "active_fault" / Int16ul,
    "speed_rpm" / Int32ul,
    "power_w" / Int32sl,
    "tet1_c_x10" / Int16sl,
    "tet2_c_x10" / Int16sl,
    "compressor_inlet_c_x10" / Int16sl,
    "ambient_c_x10" / Int16sl,
    "ambient_pressure_kpa_x100" / Int16ul,
    "fuel_valve_pct_x10" / Int16ul,
    "fuel_power_w" / Int32ul,
    "dc_bus_v_x10" / Int16ul,
    "grid_voltage_v_x10" / Int16ul,
    "grid_freq_hz_x1000" / Int16ul,
    "operating_s" / Int32ul,
    "starts" / Int32ul,
    "trips" / Int32ul,
    "energy_wh" / Int64ul,
)
"""The machine at one instant, with the non-volatile counters: the body of a
runtime sample and the freeze-frame of a fault."""

SAMPLE_BODY = Struct(
    *SNAPSHOT.subcons,
    "exhaust_c_x10" / Int16sl,
)
"""A runtime / performance sample: the snapshot, then the exhaust temperature after the
recuperator (the stack), beside TET before it."""

EARLIER_RECORD_BODIES: dict[int, tuple[Struct, ...]] = {1: (SNAPSHOT,)}
"""Bodies that earlier firmware wrote for a record type, each told apart by its length: a SAMPLE
of 54 bytes is the snapshot alone (protocol 2 before the exhaust channel).  A reader decodes
them as their type, the fields they lack absent."""

FAULT_BODY = Struct(
    "code" / Int16ul,
    "severity" / Int8ul,
    "subsystem" / Int8ul,
    "flags" / Int16ul,
    "freeze" / SNAPSHOT,
)

EVENT_BODY = Struct(
    "kind" / Int8ul,
    "state_from" / Int8ul,
    "state_to" / Int8ul,
    "level" / Int8ul,
    "value_a" / Int32ul,
    "value_b" / Int32ul,
)

RUNUP_POINTS = 60
"""Values in a RUNUP record: 60 s at 1 s."""

RUNUP_BODY = Struct(
    "fault_seq" / Int32ul,
    "channel" / Int8ul,
    "interval_s" / Int8ul,
    "points" / Int8ul,
    "values" / Array(RUNUP_POINTS, Int16sl),
)
"""The pre-trigger buffer of one channel (:class:`protocol.enums.RunupChannel`, which gives the
unit of a step) before the fault whose seq is ``fault_seq``: ``values[RUNUP_POINTS - 1]`` is the
value at the record's timestamp (the fault's, its freeze-frame's value), each one before it
``interval_s`` earlier.  Only the last ``points`` values were measured; the ones before read 0
(the controller had been up for less than the buffer's length)."""

RECORD_BODIES: dict[int, Struct] = {1: SAMPLE_BODY, 2: FAULT_BODY, 3: EVENT_BODY, 4: RUNUP_BODY}
"""Body format by :class:`protocol.enums.RecordType` value."""

# --- message payloads -----------------------------------------------------

AUTH_TAG_LEN = 16
NONCE_LEN = 16
LOG_ID_LEN = 8
"""Bytes of a log's identity: random, made with a new or cleared log."""

EMPTY = Struct()

IDENTIFY_RSP = Struct(
    "request_seq" / Int16ul,
    "protocol_version" / Int8ul,
    "schema_fingerprint" / Int32ul,
    "model" / PaddedString(8, "ascii"),
    "serial" / PaddedString(16, "ascii"),
    "firmware" / PaddedString(16, "ascii"),
    "capacity_records" / Int32ul,
    "first_seq" / Int32ul,
    "next_seq" / Int32ul,
    "device_time" / Int32ul,
    "operating_s" / Int32ul,
    "starts" / Int32ul,
    "trips" / Int32ul,
    "energy_wh" / Int64ul,
    "baud" / Int32ul,
    "max_window" / Int32ul,
    "log_id" / Bytes(LOG_ID_LEN),
)

LIVE_RSP = Struct(
    "request_seq" / Int16ul,
    "timestamp" / Int32ul,
    "snapshot" / SNAPSHOT,
)

CLOCK_SET = Struct(
    "new_time" / Int32ul,
    "level" / Int8ul,
    "tag" / Bytes(AUTH_TAG_LEN),
)

CLOCK_RSP = Struct(
    "request_seq" / Int16ul,
    "device_time" / Int32ul,
)

LOG_CLEAR = Struct(
    "level" / Int8ul,
    "tag" / Bytes(AUTH_TAG_LEN),
)

LOG_CLEAR_RSP = Struct(
    "request_seq" / Int16ul,
    "first_seq" / Int32ul,
)

READ_RANGE = Struct(
    "start_seq" / Int32ul,
    "count" / Int32ul,
    "max_payload" / Int16ul,
)
"""``max_payload``: record bytes per RECORDS frame at most (0: as many as fit).
A reader on a noisy line asks for small frames: fewer bytes lost per hit."""

SEQ_RANGE = Struct(
    "start_seq" / Int32ul,
    "count" / Int16ul,
)

MAX_SET_RANGES = 160
"""Ranges in one READ_SET; 1 + 160 x 6 + 2 bytes fits well inside a frame."""

READ_SET = Struct(
    "ranges" / PrefixedArray(Int8ul, SEQ_RANGE),
    "max_payload" / Int16ul,
)

RECORDS = Struct(
    "request_seq" / Int16ul,
    "records" / GreedyBytes,
)
"""A run of whole records, each self-delimited by its header's length."""

RANGE_END = Struct(
    "request_seq" / Int16ul,
    "first_available" / Int32ul,
    "next_seq" / Int32ul,
    "sent" / Int32ul,
    "digest" / Int32ul,
)

ABORT_RSP = Struct(
    "request_seq" / Int16ul,
)

AUTH_CHALLENGE = Struct(
    "level" / Int8ul,
)

AUTH_CHALLENGE_RSP = Struct(
    "request_seq" / Int16ul,
    "nonce" / Bytes(NONCE_LEN),
)

ERROR_RSP = Struct(
    "request_seq" / Int16ul,
    "code" / Int16ul,
    "detail" / PascalString(Int8ul, "utf8"),
)

MESSAGE_PAYLOADS: dict[int, Struct] = {
    0x01: EMPTY,
    0x02: EMPTY,
    0x03: EMPTY,
    0x04: CLOCK_SET,
    0x05: LOG_CLEAR,
    0x06: READ_RANGE,
    0x07: READ_SET,
    0x08: EMPTY,
    0x09: AUTH_CHALLENGE,
    0x81: IDENTIFY_RSP,
    0x82: LIVE_RSP,
    0x83: CLOCK_RSP,
    0x85: LOG_CLEAR_RSP,
    0x86: RECORDS,
    0x87: RANGE_END,
    0x88: ABORT_RSP,
    0x89: AUTH_CHALLENGE_RSP,
    0xFF: ERROR_RSP,
}
"""Payload format by :class:`protocol.enums.MsgType` value."""


def describe(fmt: Construct) -> str:
    """A canonical one-line description of a format: names, types, sizes.

    Used for the schema fingerprint, so it changes whenever a field is added,
    removed, renamed, retyped, resized or reordered.
    """
    if isinstance(fmt, (Struct, FocusedSeq)):
        return "{" + ",".join(describe(sub) for sub in fmt.subcons) + "}"
    if isinstance(fmt, Renamed):
        return f"{fmt.name}:{describe(fmt.subcon)}"
    if isinstance(fmt, FormatField):
        return str(fmt.fmtstr)
    if isinstance(fmt, Bytes):
        return f"bytes[{fmt.length}]"
    if isinstance(fmt, Array):
        count = describe(fmt.count) if isinstance(fmt.count, Construct) else fmt.count
        return f"array[{count}]({describe(fmt.subcon)})"
    if isinstance(fmt, Prefixed):
        return f"prefixed[{describe(fmt.lengthfield)}]({describe(fmt.subcon)})"
    if isinstance(fmt, StringEncoded):
        return f"str[{fmt.encoding}]({describe(fmt.subcon)})"
    if isinstance(fmt, Subconstruct):
        length = getattr(fmt, "length", "")
        return f"{type(fmt).__name__}[{length}]({describe(fmt.subcon)})"
    return type(fmt).__name__


def schema_text() -> str:
    """Every format, in a fixed order, as one canonical text."""
    parts = [f"v{PROTOCOL_VERSION}", f"frame{describe(FRAME_HEADER)}", f"crc{describe(FRAME_CRC)}"]
    parts += [f"max{MAX_FRAME}", f"record{describe(RECORD_HEADER)}", f"trailer{describe(RECORD_TRAILER)}"]
    parts += [f"r{k}{describe(v)}" for k, v in sorted(RECORD_BODIES.items())]
    parts += [f"e{k}{describe(v)}" for k, bodies in sorted(EARLIER_RECORD_BODIES.items()) for v in bodies]
    parts += [f"m{k}{describe(v)}" for k, v in sorted(MESSAGE_PAYLOADS.items())]
    return ";".join(parts)
