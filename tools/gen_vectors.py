"""Generate the protocol test vectors in tests/vectors/.

The vectors are for anyone implementing the protocol (docs/protocol.md), and
for our own tests (tests/protocol/test_vectors.py).  They are built here
*independently* of the code they check: payloads and records with construct
from :mod:`protocol.formats` (the normative definition), CRC-32C with crcmod
directly, and COBS, the frame layout and the receiving procedure with the
small reference implementation below, written from the spec.  The decoded
values are the inputs written in this file; the errors a receiver must
report are stated by hand and cross-checked against the reference receiver.

    frames.json   one vector per message type (and edge cases): wire bytes <-> fields
    records.json  sample, fault, event and unknown records: bytes <-> fields
    corrupt.json  damaged streams <-> the errors reported and the frames still decoded;
                  damaged records <-> the error reported
    crc.json      CRC-32C parameters, check values and residue

    python tools/gen_vectors.py            (re)write tests/vectors/*.json
    python tools/gen_vectors.py --check    exit 1 if any file is stale

Deterministic: no clock, no randomness.  Writes only tests/vectors/.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import crcmod.predefined
from construct import FormatField

# Import the protocol package of this checkout, not whichever one is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol import formats
from protocol.enums import ErrorCode, EventKind, MsgType, RecordType

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors"

crc32c = crcmod.predefined.mkCrcFun("crc-32c")
DELIMITER = b"\x00"
MAX_STUFFED = 1029
MIN_FRAME = 10

# --- reference implementation, from docs/protocol.md section 2 ----------------


def cobs_encode(data: bytes) -> bytes:
    """COBS (Cheshire & Baker) as the cobs package writes it: a frame that ends with a full
    254-byte block gets no trailing 0x01 code (a receiver accepts it either way)."""
    out = bytearray()
    block = bytearray()
    for i, byte in enumerate(data):
        if byte:
            block.append(byte)
            if len(block) == 254:
                out += b"\xff" + block
                block.clear()
                if i == len(data) - 1:
                    return bytes(out)
        else:
            out += bytes([len(block) + 1]) + block
            block.clear()
    return bytes(out + bytes([len(block) + 1]) + block)


def cobs_decode(run: bytes) -> bytes:
    out = bytearray()
    pos = 0
    while pos < len(run):
        code = run[pos]
        if code == 0 or pos + code > len(run):
            raise ValueError("invalid COBS")
        out += run[pos + 1 : pos + code]
        pos += code
        if code != 0xFF and pos < len(run):
            out.append(0)
    return bytes(out)


def frame_body(
    msg_type: int, seq: int, payload: bytes, version: int = formats.PROTOCOL_VERSION, length: int | None = None
) -> bytes:
    header = formats.FRAME_HEADER.build(
        {"version": version, "msg_type": msg_type, "seq": seq,
         "length": len(payload) if length is None else length}
    )
    return header + payload + crc32c(header + payload).to_bytes(4, "little")


def wire(body: bytes) -> bytes:
    return DELIMITER + cobs_encode(body) + DELIMITER


def receive(stream: bytes) -> list[dict[str, Any]]:
    """The receiving procedure of the spec, for a stream that ends with a delimiter."""
    events: list[dict[str, Any]] = []
    for run in stream.split(DELIMITER)[:-1]:
        if not run:
            continue
        if len(run) > MAX_STUFFED:
            events.append({"error": "FrameTooLong"})
            continue
        try:
            body = cobs_decode(run)
        except ValueError:
            events.append({"error": "BadStuffing"})
            continue
        if len(body) < MIN_FRAME:
            events.append({"error": "FrameTruncated"})
        elif crc32c(body[:-4]) != int.from_bytes(body[-4:], "little"):
            events.append({"error": "FrameCrcMismatch"})
        elif body[0] != formats.PROTOCOL_VERSION:
            events.append({"error": "UnsupportedVersion"})
        elif int.from_bytes(body[4:6], "little") != len(body) - MIN_FRAME:
            events.append({"error": "LengthMismatch"})
        else:
            events.append({"frame": {"msg_type": body[1], "seq": int.from_bytes(body[2:4], "little"),
                                     "payload_hex": body[6:-4].hex()}})
    return events


def record_bytes(seq: int, timestamp: int, rtype: int, body: bytes) -> bytes:
    head = formats.RECORD_HEADER.build(
        {"seq": seq, "timestamp": timestamp, "type": rtype, "length": len(body)})
    return head + body + formats.RECORD_TRAILER.build({"crc": crc32c(head + body)})


def jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


# --- values --------------------------------------------------------------------

T0 = 1_700_000_000
"""2023-11-14T22:13:20Z: device time in the vectors."""

SNAPSHOT_AT_LOAD: dict[str, int] = {
    "state": 4, "mode": 0, "active_fault": 0, "speed_rpm": 96_000, "power_w": 64_800,
    "tet1_c_x10": 6_505, "tet2_c_x10": 6_489, "compressor_inlet_c_x10": 168, "ambient_c_x10": 152,
    "ambient_pressure_kpa_x100": 10_132, "fuel_valve_pct_x10": 874, "fuel_power_w": 222_000,
    "dc_bus_v_x10": 7_600, "grid_voltage_v_x10": 4_800, "grid_freq_hz_x1000": 60_000,
    "operating_s": 31_536_000, "starts": 1_234, "trips": 17, "energy_wh": 1_850_000_000,
}
SNAPSHOT_AT_TRIP: dict[str, int] = {
    **SNAPSHOT_AT_LOAD, "state": 6, "active_fault": 3_021, "speed_rpm": 88_000, "power_w": -1_500,
    "tet1_c_x10": 7_021, "tet2_c_x10": 6_950, "grid_freq_hz_x1000": 60_410, "trips": 18,
}


def bound_values(fmt: Any, high: bool) -> dict[str, int]:
    """Every integer field of a format (not nested) at its lowest or highest value."""
    values = {}
    for sub in fmt.subcons:
        if not isinstance(sub.subcon, FormatField):
            continue
        bits = 8 * sub.subcon.sizeof()
        signed = sub.subcon.fmtstr[1].islower()
        low, top = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        values[sub.name] = top if high else low
    return values


SNAPSHOT_MIN = bound_values(formats.SNAPSHOT, high=False)
SNAPSHOT_MAX = bound_values(formats.SNAPSHOT, high=True)

# --- records.json --------------------------------------------------------------

RECORDS: list[dict[str, Any]] = [
    {"name": "sample_at_load", "description": "a runtime sample of a C65 at full load",
     "class": "SampleRecord", "seq": 4_211, "timestamp": T0, "type": RecordType.SAMPLE,
     "fields": {"snapshot": SNAPSHOT_AT_LOAD, "exhaust_c_x10": 3_090}},
    {"name": "sample_of_earlier_firmware",
     "description": "a sample of firmware before the exhaust channel: the 54-byte snapshot alone, "
                    "decoded as a sample without exhaust_c_x10 (null)",
     "class": "SampleRecord", "seq": 4_210, "timestamp": T0 - 60, "type": RecordType.SAMPLE,
     "fields": {"snapshot": SNAPSHOT_AT_LOAD, "exhaust_c_x10": None}},
    {"name": "sample_min",
     "description": "a sample with every field at its lowest value (signed ones negative)",
     "class": "SampleRecord", "seq": 0, "timestamp": 0, "type": RecordType.SAMPLE,
     "fields": {"snapshot": SNAPSHOT_MIN, "exhaust_c_x10": -32_768}},
    {"name": "sample_max", "description": "a sample with every field at its highest value",
     "class": "SampleRecord", "seq": 0xFFFF_FFFE, "timestamp": 0xFFFF_FFFF, "type": RecordType.SAMPLE,
     "fields": {"snapshot": SNAPSHOT_MAX, "exhaust_c_x10": 32_767}},
    {"name": "fault_fast_shutdown",
     "description": "a fault (severity 4, fast shutdown) with its freeze-frame",
     "class": "FaultRecord", "seq": 4_212, "timestamp": T0 + 7, "type": RecordType.FAULT,
     "fields": {"code": 3_021, "severity": 4, "subsystem": 0, "flags": 0x0040 | 0x0008,
                "freeze": SNAPSHOT_AT_TRIP}},
    {"name": "runup_tet_over_limit",
     "description": "the run-up of TET (channel 1, 0.1 degC steps) before that fault, 60 s at 1 s, of which "
                    "the last 45 were measured: rising from 650.0 to 702.1 degC",
     "class": "RunupRecord", "seq": 4_218, "timestamp": T0 + 7, "type": RecordType.RUNUP,
     "fields": {"fault_seq": 4_212, "channel": 1, "interval_s": 1, "points": 45,
                "values": [0] * 15 + [6_500 + round(i * 521 / 44) for i in range(45)]}},
    {"name": "runup_values_at_bounds",
     "description": "a run-up whose values span the whole i16 range, every point measured",
     "class": "RunupRecord", "seq": 4_219, "timestamp": T0 + 12, "type": RecordType.RUNUP,
     "fields": {"fault_seq": 4_212, "channel": 200, "interval_s": 255, "points": 60,
                "values": [-32_768, 32_767] * 30}},
    {"name": "event_clock_set", "description": "the clock set backwards by an hour at access level 1",
     "class": "EventRecord", "seq": 4_213, "timestamp": T0 + 9, "type": RecordType.EVENT,
     "fields": {"kind": EventKind.CLOCK_SET, "state_from": 0, "state_to": 0, "level": 1,
                "value_a": T0 + 9, "value_b": T0 + 9 - 3_600}},
    {"name": "event_state_change", "description": "engine state LOAD -> WARMDOWN",
     "class": "EventRecord", "seq": 4_214, "timestamp": T0 + 9, "type": RecordType.EVENT,
     "fields": {"kind": EventKind.STATE_CHANGE, "state_from": 4, "state_to": 6, "level": 0,
                "value_a": 0, "value_b": 0}},
    {"name": "unknown_type", "description": "a record type this version does not know: kept raw",
     "class": "UnknownRecord", "seq": 4_215, "timestamp": T0 + 10, "type": 0x7F,
     "fields": {"body": bytes.fromhex("0102030405")}},
    {"name": "unknown_empty_body", "description": "an unknown record type with no body",
     "class": "UnknownRecord", "seq": 4_216, "timestamp": T0 + 10, "type": 200, "fields": {"body": b""}},
    {"name": "sample_with_appended_fields",
     "description": "a sample from a newer firmware, 4 bytes longer: a known type with an unexpected "
                    "length decodes as an unknown record",
     "class": "UnknownRecord", "seq": 4_217, "timestamp": T0 + 11, "type": RecordType.SAMPLE,
     "fields": {"body": formats.SAMPLE_BODY.build({**SNAPSHOT_AT_LOAD, "exhaust_c_x10": 3_090})
                + bytes.fromhex("deadbeef")}},
]


def record_body(vector: dict[str, Any]) -> bytes:
    fields = vector["fields"]
    if vector["class"] == "UnknownRecord":
        return bytes(fields["body"])
    if vector["class"] == "SampleRecord":
        if fields["exhaust_c_x10"] is None:
            (earlier,) = formats.EARLIER_RECORD_BODIES[RecordType.SAMPLE]
            return bytes(earlier.build(fields["snapshot"]))
        return bytes(formats.SAMPLE_BODY.build({**fields["snapshot"], "exhaust_c_x10": fields["exhaust_c_x10"]}))
    body_format = formats.RECORD_BODIES[vector["type"]]
    return bytes(body_format.build(fields))


def record_raw(name: str) -> bytes:
    vector = next(v for v in RECORDS if v["name"] == name)
    return record_bytes(vector["seq"], vector["timestamp"], vector["type"], record_body(vector))


def records_json() -> list[dict[str, Any]]:
    out = []
    for vector in RECORDS:
        raw = record_raw(vector["name"])
        decoded = {"seq": vector["seq"], "timestamp": vector["timestamp"]}
        if vector["class"] == "UnknownRecord":
            decoded["type"] = int(vector["type"])
        decoded.update(jsonable(vector["fields"]))
        out.append({
            "name": vector["name"], "description": vector["description"], "hex": raw.hex(),
            "header": {"seq": vector["seq"], "timestamp": vector["timestamp"], "type": int(vector["type"]),
                       "length": len(raw) - formats.RECORD_OVERHEAD},
            "crc": f"0x{int.from_bytes(raw[-4:], 'little'):08X}",
            "class": vector["class"], "decoded": decoded,
        })
    return out


# --- frames.json -----------------------------------------------------------------

RUN = ["sample_at_load", "fault_fast_shutdown", "event_clock_set", "unknown_type"]
"""Records carried by the ``records`` frame vector, in order."""


def digest(names: list[str]) -> int:
    return crc32c(b"".join(record_raw(n)[-4:] for n in names)) if names else 0


def full_records() -> bytes:
    """Records that fill a RECORDS payload to exactly MAX_PAYLOAD bytes."""
    room = formats.MAX_PAYLOAD - 2
    base = record_raw("sample_at_load")
    count = (room - formats.RECORD_OVERHEAD) // len(base)
    run = b"".join(
        record_bytes(100 + i, T0 + i, RecordType.SAMPLE, base[10:-4]) for i in range(count)
    )
    filler = room - len(run) - formats.RECORD_OVERHEAD
    return run + record_bytes(100 + count, T0 + count, 0x7F, bytes(range(1, filler + 1)))


COBS_FULL_DETAIL = (
    "249 bytes of detail: with its length byte and the frame CRC, "
    "the frame ends on a full 254-byte COBS block "
    + "." * 249
)[:249]

FRAMES: list[dict[str, Any]] = [
    {"name": "identify", "description": "IDENTIFY: empty payload", "class": "Identify",
     "msg_type": MsgType.IDENTIFY, "seq": 1, "fields": {}},
    {"name": "live", "description": "LIVE: empty payload", "class": "Live",
     "msg_type": MsgType.LIVE, "seq": 2, "fields": {}},
    {"name": "clock_get", "description": "CLOCK_GET: empty payload", "class": "ClockGet",
     "msg_type": MsgType.CLOCK_GET, "seq": 3, "fields": {}},
    {"name": "clock_set", "description": "CLOCK_SET at access level 1 with a tag", "class": "ClockSet",
     "msg_type": MsgType.CLOCK_SET, "seq": 4,
     "fields": {"new_time": T0, "level": 1, "tag": bytes(range(0xA0, 0xB0))}},
    {"name": "log_clear", "description": "LOG_CLEAR with no tag (16 zero bytes)", "class": "LogClear",
     "msg_type": MsgType.LOG_CLEAR, "seq": 5, "fields": {"level": 0, "tag": bytes(16)}},
    {"name": "read_range", "description": "READ_RANGE of 512 records from seq 4096", "class": "ReadRange",
     "msg_type": MsgType.READ_RANGE, "seq": 6, "fields": {"start_seq": 4_096, "count": 512, "max_payload": 0}},
    {"name": "read_set", "description": "READ_SET of three scattered ranges", "class": "ReadSet",
     "msg_type": MsgType.READ_SET, "seq": 7,
     "fields": {"ranges": [[5, 1], [4_100, 20], [70_000, 0xFFFF]], "max_payload": 136}},
    {"name": "read_set_empty",
     "description": "READ_SET with no range: valid, asks for nothing (the device answers RANGE_END, sent 0)",
     "class": "ReadSet",
     "msg_type": MsgType.READ_SET, "seq": 8, "fields": {"ranges": [], "max_payload": 0}},
    {"name": "abort", "description": "ABORT, with the highest frame seq (the next one wraps to 0)",
     "class": "Abort", "msg_type": MsgType.ABORT, "seq": 0xFFFF, "fields": {}},
    {"name": "auth_challenge", "description": "AUTH_CHALLENGE for access level 2", "class": "AuthChallenge",
     "msg_type": MsgType.AUTH_CHALLENGE, "seq": 0, "fields": {"level": 2}},
    {"name": "identify_rsp", "description": "IDENTIFY_RSP of an emulated C65", "class": "IdentifyResponse",
     "msg_type": MsgType.IDENTIFY_RSP, "seq": 100,
     "fields": {"request_seq": 1, "protocol_version": formats.PROTOCOL_VERSION,
                "schema_fingerprint": crc32c(formats.schema_text().encode("ascii")),
                "model": "C65", "serial": "SN-0001234", "firmware": "4.2.1-sim",
                "capacity_records": 100_000, "first_seq": 0, "next_seq": 4_218, "device_time": T0 + 12,
                "operating_s": 31_536_000, "starts": 1_234, "trips": 18, "energy_wh": 1_850_000_000,
                "baud": 115_200, "max_window": 1_024, "log_id": bytes.fromhex("5ee1ab1e0ddba11c")}},
    {"name": "identify_rsp_max", "description": "IDENTIFY_RSP with every string at its full length and "
                                                "every integer at its highest value",
     "class": "IdentifyResponse", "msg_type": MsgType.IDENTIFY_RSP, "seq": 101,
     "fields": {**bound_values(formats.IDENTIFY_RSP, high=True),
                "model": "C65-ICHP", "serial": "ABCDEFGHIJKLMNOP", "firmware": "0123456789abcdef",
                "log_id": b"\xff" * formats.LOG_ID_LEN}},
    {"name": "live_rsp", "description": "LIVE_RSP at full load", "class": "LiveResponse",
     "msg_type": MsgType.LIVE_RSP, "seq": 102,
     "fields": {"request_seq": 2, "timestamp": T0 + 12, "snapshot": SNAPSHOT_AT_LOAD}},
    {"name": "live_rsp_min", "description": "LIVE_RSP with every snapshot field at its lowest value",
     "class": "LiveResponse", "msg_type": MsgType.LIVE_RSP, "seq": 103,
     "fields": {"request_seq": 0, "timestamp": 0, "snapshot": SNAPSHOT_MIN}},
    {"name": "clock_rsp", "description": "CLOCK_RSP", "class": "ClockResponse",
     "msg_type": MsgType.CLOCK_RSP, "seq": 104, "fields": {"request_seq": 3, "device_time": T0 + 12}},
    {"name": "log_clear_rsp", "description": "LOG_CLEAR_RSP: the log now starts at seq 4218",
     "class": "LogClearResponse", "msg_type": MsgType.LOG_CLEAR_RSP, "seq": 105,
     "fields": {"request_seq": 5, "first_seq": 4_218}},
    {"name": "records", "description": "RECORDS carrying a sample, a fault, an event and a record of an "
                                       "unknown type (records.json: " + ", ".join(RUN) + ")",
     "class": "Records", "msg_type": MsgType.RECORDS, "seq": 106,
     "fields": {"request_seq": 6, "records": b"".join(record_raw(n) for n in RUN)}, "records_in": RUN},
    {"name": "records_empty", "description": "RECORDS with no record", "class": "Records",
     "msg_type": MsgType.RECORDS, "seq": 107, "fields": {"request_seq": 6, "records": b""}, "records_in": []},
    {"name": "records_full", "description": "the largest frame: RECORDS with a 1014-byte payload "
                                            "(1024 bytes before stuffing)",
     "class": "Records", "msg_type": MsgType.RECORDS, "seq": 108,
     "fields": {"request_seq": 6, "records": full_records()}},
    {"name": "range_end", "description": "RANGE_END after the records of the 'records' vector "
                                         "(digest over their four CRC fields)",
     "class": "RangeEnd", "msg_type": MsgType.RANGE_END, "seq": 109,
     "fields": {"request_seq": 6, "first_available": 0, "next_seq": 4_218, "sent": len(RUN),
                "digest": digest(RUN)}},
    {"name": "range_end_empty", "description": "RANGE_END of a stream that sent nothing (digest 0)",
     "class": "RangeEnd", "msg_type": MsgType.RANGE_END, "seq": 110,
     "fields": {"request_seq": 7, "first_available": 4_218, "next_seq": 4_218, "sent": 0, "digest": 0}},
    {"name": "abort_rsp", "description": "ABORT_RSP", "class": "AbortResponse",
     "msg_type": MsgType.ABORT_RSP, "seq": 111, "fields": {"request_seq": 0xFFFF}},
    {"name": "auth_challenge_rsp", "description": "AUTH_CHALLENGE_RSP with a nonce",
     "class": "AuthChallengeResponse", "msg_type": MsgType.AUTH_CHALLENGE_RSP, "seq": 112,
     "fields": {"request_seq": 0, "nonce": bytes(range(0x10, 0x20))}},
    {"name": "error", "description": "ERROR OUT_OF_RANGE with an ASCII detail", "class": "ErrorResponse",
     "msg_type": MsgType.ERROR, "seq": 113,
     "fields": {"request_seq": 6, "code": ErrorCode.OUT_OF_RANGE, "detail": "count 5000 > max_window 1024"}},
    {"name": "error_unsupported_version", "description": "ERROR UNSUPPORTED_VERSION: the device's answer "
                                                         "to the version 1 IDENTIFY (seq 9) of corrupt.json's "
                                                         "wrong_version",
     "class": "ErrorResponse", "msg_type": MsgType.ERROR, "seq": 119,
     "fields": {"request_seq": 9, "code": ErrorCode.UNSUPPORTED_VERSION,
                "detail": f"protocol version 1, this device speaks {formats.PROTOCOL_VERSION}"}},
    {"name": "error_utf8", "description": "ERROR with a UTF-8 detail (multi-byte characters)",
     "class": "ErrorResponse", "msg_type": MsgType.ERROR, "seq": 114,
     "fields": {"request_seq": 4, "code": ErrorCode.UNAUTHORIZED, "detail": "accès refusé: niveau ≥ 1"}},
    {"name": "error_detail_max", "description": "ERROR with the longest detail (255 bytes of UTF-8)",
     "class": "ErrorResponse", "msg_type": MsgType.ERROR, "seq": 115,
     "fields": {"request_seq": 8, "code": ErrorCode.INTERNAL, "detail": "é" * 127 + "!"}},
    {"name": "error_cobs_full_block", "description": "ERROR whose last 254 bytes (detail length, a "
                                                     "249-byte detail, CRC) hold no 0x00: the stuffed "
                                                     "frame ends on a full 254-byte COBS block (code 0xFF)",
     "class": "ErrorResponse", "msg_type": MsgType.ERROR, "seq": 118,
     "fields": {"request_seq": 8, "code": ErrorCode.INTERNAL, "detail": COBS_FULL_DETAIL}},
    {"name": "unknown_message", "description": "a message type this version does not know: kept raw, "
                                               "not fatal",
     "class": "UnknownMessage", "msg_type": 0x42, "seq": 116,
     "fields": {"msg_type": 0x42, "payload": bytes.fromhex("00ff00ff")}},
]

APPENDED: list[dict[str, Any]] = [
    {"name": "clock_rsp_appended_fields", "description": "CLOCK_RSP from a newer peer with 4 more payload "
                                                         "bytes: they are ignored (not canonical: "
                                                         "re-encoding drops them)",
     "class": "ClockResponse", "msg_type": MsgType.CLOCK_RSP, "seq": 117,
     "fields": {"request_seq": 3, "device_time": T0}, "appended": bytes.fromhex("01020304")},
]


def construct_values(vector: dict[str, Any]) -> dict[str, Any]:
    values = dict(vector["fields"])
    if "ranges" in values:
        values["ranges"] = [{"start_seq": s, "count": c} for s, c in values["ranges"]]
    return values


def payload_of(vector: dict[str, Any]) -> bytes:
    if vector["class"] == "UnknownMessage":
        return bytes(vector["fields"]["payload"])
    built = formats.MESSAGE_PAYLOADS[vector["msg_type"]].build(construct_values(vector))
    return bytes(built) + vector.get("appended", b"")


def frames_json() -> list[dict[str, Any]]:
    out = []
    for vector in FRAMES + APPENDED:
        payload = payload_of(vector)
        body = frame_body(vector["msg_type"], vector["seq"], payload)
        entry = {
            "name": vector["name"], "description": vector["description"],
            "hex": wire(body).hex(), "msg_type": int(vector["msg_type"]), "seq": vector["seq"],
            "payload_hex": payload.hex(), "class": vector["class"], "canonical": "appended" not in vector,
            "decoded": jsonable(vector["fields"]),
        }
        if "records_in" in vector:
            entry["records_in"] = vector["records_in"]
        expect = [{"frame": {"msg_type": entry["msg_type"], "seq": entry["seq"],
                             "payload_hex": payload.hex()}}]
        check(receive(wire(body)) == expect, f"reference receiver disagrees on {vector['name']}")
        check(len(body) <= formats.MAX_FRAME, f"{vector['name']} is over the frame cap")
        check(vector["name"] != "records_full" or len(body) == formats.MAX_FRAME, "records_full is not full")
        check(vector["name"] != "error_cobs_full_block" or (0 not in body[-254:] and body[-255] == 0
                                                             and cobs_encode(body)[-255] == 0xFF),
              "error_cobs_full_block does not end on a full COBS block")
        out.append(entry)
    return out


# --- corrupt.json ----------------------------------------------------------------


def frame_vector(name: str) -> dict[str, Any]:
    return next(v for v in FRAMES + APPENDED if v["name"] == name)


def good(name: str) -> tuple[bytes, dict[str, Any]]:
    """A good frame's wire bytes and the event a receiver reports for it."""
    vector = frame_vector(name)
    payload = payload_of(vector)
    event = {"frame": {"msg_type": int(vector["msg_type"]), "seq": vector["seq"],
                       "payload_hex": payload.hex()}}
    return wire(frame_body(vector["msg_type"], vector["seq"], payload)), event


def body_of(name: str) -> bytes:
    vector = frame_vector(name)
    return frame_body(vector["msg_type"], vector["seq"], payload_of(vector))


def flip(data: bytes, index: int, bit: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


def line_flip_in_body(name: str, body_index: int, bit: int) -> bytes:
    """The wire bytes of a frame with one bit flipped on the line, inside body byte *body_index*
    (a data byte that stays nonzero, so the stuffed bytes differ in exactly that bit)."""
    body = body_of(name)
    flipped = flip(body, body_index, bit)
    check(body[body_index] != 0 and flipped[body_index] != 0, "flip must keep the byte nonzero")
    a, b = wire(body), wire(flipped)
    differing_bits = (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()
    check(len(a) == len(b) and differing_bits == 1, "not a single bit")
    return b


def corrupt_streams() -> list[dict[str, Any]]:
    g1, e1 = good("clock_rsp")
    g2, e2 = good("identify")
    g3, e3 = good("read_range")
    rr_body = body_of("read_range")
    header = formats.FRAME_HEADER.sizeof()
    cut = cobs_encode(body_of("live_rsp"))
    last_block = 0
    while last_block + cut[last_block] < len(cut):
        last_block += cut[last_block]
    check(len(cut) - last_block > 3, "the last COBS block must be longer than the cut")
    inserted_at = 8
    merged = g1[:-1] + b"\x01" + g2
    streams = [
        ("payload_bit_flip", "a bit flipped on the line in a READ_RANGE payload",
         g1 + line_flip_in_body("read_range", header + 1, 3) + g2, [e1, {"error": "FrameCrcMismatch"}, e2]),
        ("crc_bit_flip", "a bit flipped on the line in a frame's CRC field",
         g1 + line_flip_in_body("read_range", len(rr_body) - 2, 6) + g2,
         [e1, {"error": "FrameCrcMismatch"}, e2]),
        ("header_bit_flip", "a bit flipped in the header's msg_type: the CRC catches it",
         g1 + line_flip_in_body("read_range", 1, 0) + g2, [e1, {"error": "FrameCrcMismatch"}, e2]),
        ("bad_cobs", "the first COBS code byte points past the end of the run",
         g1 + b"\xfe" + g3[1:] + g2, [e1, {"error": "BadStuffing"}, e2]),
        ("truncated_frame", "a well-stuffed run of 7 bytes: shorter than header + CRC",
         g1 + wire(rr_body[:7]) + g2, [e1, {"error": "FrameTruncated"}, e2]),
        ("cut_on_line", "a LIVE_RSP whose last 3 stuffed bytes were lost: its last COBS block is short",
         g1 + cut[:-3] + DELIMITER + g2, [e1, {"error": "BadStuffing"}, e2]),
        ("wrong_version", "a frame of protocol version 1 (before logs had an id) with a good CRC",
         g1 + wire(frame_body(MsgType.IDENTIFY, 9, b"", version=1)) + g2,
         [e1, {"error": "UnsupportedVersion"}, e2]),
        ("length_mismatch", "a header announcing one payload byte more than the frame has, with a good CRC",
         g1 + wire(frame_body(MsgType.READ_RANGE, 9, rr_body[6:-4], length=9)) + g2,
         [e1, {"error": "LengthMismatch"}, e2]),
        ("hostile_length", "a header announcing 65535 payload bytes, with a good CRC",
         g1 + wire(frame_body(MsgType.RECORDS, 9, b"\x00\x00", length=0xFFFF)) + g2,
         [e1, {"error": "LengthMismatch"}, e2]),
        ("overlong_run", "1030 bytes without a delimiter: dropped and reported once",
         g1 + b"\x55" * (MAX_STUFFED + 1) + DELIMITER + g2, [e1, {"error": "FrameTooLong"}, e2]),
        ("endless_run", "5000 bytes without a delimiter: still reported once",
         g1 + bytes(range(1, 251)) * 20 + DELIMITER + g2, [e1, {"error": "FrameTooLong"}, e2]),
        ("longest_run_is_not_too_long", "1029 bytes of noise: not too long, but not valid COBS either",
         g1 + b"\x55" * MAX_STUFFED + DELIMITER + g2, [e1, {"error": "BadStuffing"}, e2]),
        ("garbage_between_frames", "delimited noise between two frames",
         g1 + b"\xff\xff\xff" + DELIMITER + g2, [e1, {"error": "BadStuffing"}, e2]),
        ("garbage_glued_to_frame", "noise right before a frame: the frame's leading delimiter saves it",
         g1 + b"\x01\x01" + g3 + g2, [e1, {"error": "FrameTruncated"}, e3, e2]),
        ("leading_and_empty_delimiters", "a delimiter before each frame and empty runs: ignored",
         DELIMITER + g1 + DELIMITER * 3 + g2 + DELIMITER, [e1, e2]),
        ("delimiter_hit", "the delimiter after a frame hit (00 -> 01): that frame is lost, the next one "
         "survives on its own leading delimiter", merged + g3, [{"error": "FrameCrcMismatch"}, e2, e3]),
        ("inserted_delimiter", "a 0x00 inserted inside a frame splits it into two bad runs",
         g1 + g3[:inserted_at] + DELIMITER + g3[inserted_at:] + g2,
         [e1, {"error": "FrameTruncated"}, {"error": "FrameCrcMismatch"}, e2]),
        ("dropped_byte", "one byte of a frame lost on the line",
         g1 + g3[:5] + g3[6:] + g2, [e1, {"error": "FrameCrcMismatch"}, e2]),
    ]
    out = []
    for name, description, stream, expect in streams:
        check(receive(stream) == expect, f"reference receiver disagrees on corrupt vector {name}: "
                                         f"{receive(stream)}")
        out.append({"name": name, "description": description, "hex": stream.hex(), "expect": expect})
    return out


def corrupt_records() -> list[dict[str, Any]]:
    sample = record_raw("sample_at_load")
    event = record_raw("event_clock_set")
    fault = record_raw("fault_fast_shutdown")
    overrun = bytearray(sample)
    overrun[9] = 200
    singles = [
        ("record_bit_flip", "a sample with one bit flipped in its body", flip(sample, 30, 2),
         "RecordCrcMismatch"),
        ("record_crc_flip", "a sample with one bit flipped in its CRC", flip(sample, len(sample) - 1, 7),
         "RecordCrcMismatch"),
        ("record_missing_last_byte", "a sample one byte short", sample[:-1], "RecordTruncated"),
        ("record_shorter_than_header", "9 bytes: shorter than a record can be", sample[:9],
         "RecordTruncated"),
        ("record_length_overrun", "a length byte of 200 on a 54-byte body", bytes(overrun),
         "RecordTruncated"),
    ]
    out: list[dict[str, Any]] = [
        {"name": n, "description": d, "hex": raw.hex(), "error": e} for n, d, raw, e in singles
    ]
    scans = [
        ("scan_one_bad", "a run of three records, the middle one damaged: the others are kept",
         sample + flip(event, 12, 0) + fault, [sample, fault], ["RecordCrcMismatch"]),
        ("scan_truncated_tail", "a run whose last record is cut short: the scan stops there",
         sample + fault[:-10], [sample], ["RecordTruncated"]),
        ("scan_trailing_bytes", "a run followed by 5 bytes too short to be a record",
         sample + event + b"\x01\x02\x03\x04\x05", [sample, event], ["RecordTruncated"]),
    ]
    out += [
        {"name": n, "description": d, "hex": raw.hex(), "good": [g.hex() for g in kept], "errors": errors}
        for n, d, raw, kept, errors in scans
    ]
    return out


# --- crc.json --------------------------------------------------------------------

CRC_VECTORS: list[tuple[str, str, bytes, int]] = [
    ("check", "the catalogue check input, ASCII 123456789", b"123456789", 0xE3069283),
    ("empty", "no data", b"", 0x00000000),
    ("zeros_32", "32 bytes of 0x00 (RFC 3720, B.4)", bytes(32), 0x8A9136AA),
    ("ones_32", "32 bytes of 0xFF (RFC 3720, B.4)", b"\xff" * 32, 0x62A8AB43),
    ("incrementing_32", "bytes 0x00..0x1F (RFC 3720, B.4)", bytes(range(32)), 0x46DD794E),
    ("decrementing_32", "bytes 0x1F..0x00 (RFC 3720, B.4)", bytes(range(31, -1, -1)), 0x113FDB5C),
]
"""Published CRC-32C values (the catalogue's check, RFC 3720 appendix B.4), not taken from crcmod."""

RESIDUE = 0x48674BC7


def crc_json() -> dict[str, Any]:
    for name, _, data, value in CRC_VECTORS:
        check(crc32c(data) == value, f"crcmod disagrees with the published CRC-32C of {name}")
    check(crc32c(b"123456789" + (0xE3069283).to_bytes(4, "little")) == RESIDUE, "residue")
    return {
        "algorithm": {"name": "CRC-32C", "width": 32, "poly": "0x1EDC6F41", "init": "0xFFFFFFFF",
                      "refin": True, "refout": True, "xorout": "0xFFFFFFFF", "check": "0xE3069283",
                      "stored": "little-endian u32 after the data it covers"},
        "vectors": [{"name": n, "description": d, "input_hex": data.hex(), "crc": f"0x{value:08X}"}
                    for n, d, data, value in CRC_VECTORS],
        "residue": f"0x{RESIDUE:08X}",
        "residue_description": "CRC-32C of any data followed by its own CRC (little-endian)",
    }


# --- output ----------------------------------------------------------------------


class VectorError(Exception):
    """A hand-stated expectation disagrees with the reference implementation."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise VectorError(message)


def render() -> dict[str, str]:
    """File name -> text of every vector file."""
    documents: dict[str, Any] = {
        "frames.json": frames_json(),
        "records.json": records_json(),
        "corrupt.json": {"frames": corrupt_streams(), "records": corrupt_records()},
        "crc.json": crc_json(),
    }
    return {name: json.dumps(doc, indent=1, ensure_ascii=False) + "\n" for name, doc in documents.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any vector file is stale")
    parser.add_argument("--out", type=Path, default=OUT, help="directory (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        wanted = render()
    except VectorError as exc:
        print(f"gen_vectors: {exc}", file=sys.stderr)
        return 2
    stale = [name for name, text in wanted.items()
             if not (args.out / name).exists() or (args.out / name).read_text(encoding="utf-8") != text]
    if args.check:
        if stale:
            print(f"stale: {', '.join(stale)}: run python tools/gen_vectors.py", file=sys.stderr)
            return 1
        print(f"{args.out}: up to date")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (args.out / name).write_text(wanted[name], encoding="utf-8")
    print(f"{args.out}: wrote {', '.join(stale) or 'nothing (up to date)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
