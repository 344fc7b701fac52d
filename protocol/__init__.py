"""turbolog's wire protocol: frames, messages and log records, bytes <-> objects.

This package contains no I/O at all: no ports, sockets, threads, files or
clocks.  It imports only the standard library, construct and crcmod (and the
``cobs`` C extension for stuffing).  Both the emulated controller
(``firmware_sim``) and the reader (``host``) build on it; the wire format is
specified for other implementers in ``docs/protocol.md``.

- :mod:`protocol.formats`   every format, declared once with construct
- :mod:`protocol.fastpath`  ``struct`` layouts derived from those formats
- :mod:`protocol.records`   log records (sample, fault, event, run-up) and their bytes
- :mod:`protocol.image_formats`  the flash image's headers (docs/flash-image.md), declared once
- :mod:`protocol.flash_log`  finding the log in a flash: ring, sector scan, bounds, capacity
- :mod:`protocol.sidecar`   the identity sidecar beside a flash image, written and read
- :mod:`protocol.counters`  the unit's lifetime counters, as both sides keep and report them
- :mod:`protocol.framing`   COBS framing, CRC-32C, the streaming frame decoder
- :mod:`protocol.messages`  request/response messages and their payloads
- :mod:`protocol.auth`      the access-control tag both sides compute (HMAC-SHA256)
- :mod:`protocol.inventory`  the fleet inventory (TOML or CSV) turbosim serves and turbolog polls
- :mod:`protocol.enums`     names for the small integers on the wire
- :mod:`protocol.fault_codes`  what each fault code means (name, severity, description, action)
- :mod:`protocol.errors`    the error tree, rooted at :class:`ProtocolError`
"""

from .enums import (
    AccessLevel,
    EngineState,
    ErrorCode,
    EventFlag,
    EventKind,
    GridMode,
    MsgType,
    RecordType,
    RunupChannel,
    Severity,
    Subsystem,
)
from .errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from .formats import MAX_FRAME, MAX_PAYLOAD, PROTOCOL_VERSION
from .framing import Frame, FrameDecoder, encode_frame
from .messages import SCHEMA_FINGERPRINT, decode_message, encode_message
from .records import (
    EventRecord,
    FaultRecord,
    Record,
    RunupRecord,
    SampleRecord,
    Snapshot,
    UnknownRecord,
    decode_record,
    encode_record,
    parse_record,
    scan_records,
)

__all__ = [
    "AccessLevel",
    "EngineState",
    "ErrorCode",
    "EventFlag",
    "EventKind",
    "GridMode",
    "MsgType",
    "RecordType",
    "RunupChannel",
    "Severity",
    "Subsystem",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "PROTOCOL_VERSION",
    "Frame",
    "FrameDecoder",
    "encode_frame",
    "SCHEMA_FINGERPRINT",
    "decode_message",
    "encode_message",
    "EventRecord",
    "FaultRecord",
    "Record",
    "RunupRecord",
    "SampleRecord",
    "Snapshot",
    "UnknownRecord",
    "decode_record",
    "encode_record",
    "parse_record",
    "scan_records",
]
