"""The code against the published test vectors in tests/vectors/ (made by tools/gen_vectors.py).

Every frame vector decodes to its fields and re-encodes to its bytes; every record vector likewise
through both decoders; every corrupt stream gives exactly the stated errors and frames, however it
is chunked; the CRC values hold; and the files are what the generator makes today.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from protocol import errors
from protocol.crc import RESIDUE, crc32c
from protocol.framing import Frame, FrameDecoder, encode_frame
from protocol.messages import MESSAGE_CLASSES, UnknownMessage, decode_message, encode_message
from protocol.records import (
    EventRecord,
    FaultRecord,
    RunupRecord,
    SampleRecord,
    Snapshot,
    UnknownRecord,
    decode_record,
    encode_record,
    parse_record,
    scan_records,
)

ROOT = Path(__file__).resolve().parents[2]
VECTORS = ROOT / "tests" / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


FRAMES = load("frames.json")
RECORDS = load("records.json")
CORRUPT = load("corrupt.json")
CRC = load("crc.json")
MESSAGE_BY_NAME = {cls.__name__: cls for cls in MESSAGE_CLASSES.values()} | {"UnknownMessage": UnknownMessage}
RECORD_BY_NAME = {
    cls.__name__: cls for cls in (SampleRecord, FaultRecord, EventRecord, RunupRecord, UnknownRecord)
}


def to_json(obj: Any) -> Any:
    """A message or record as the vectors write it: bytes as hex, tuples as lists."""
    if isinstance(obj, bytes):
        return obj.hex()
    if dataclasses.is_dataclass(obj):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [to_json(v) for v in obj]
    return obj


def from_json(cls: type[Any], values: dict[str, Any]) -> Any:
    """The message or record a vector's decoded fields describe, built from their types."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        value = values[field.name]
        if field.type == "bytes":
            value = bytes.fromhex(value)
        elif field.type == "Snapshot":
            value = Snapshot(**value)
        elif field.type.startswith("tuple"):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        kwargs[field.name] = value
    return cls(**kwargs)


def chunkings(data: bytes) -> list[list[bytes]]:
    """The whole input, one byte at a time, and fixed chunks of a few awkward sizes."""
    return [[data], [data[i:i + 1] for i in range(len(data))]] + [
        [data[i:i + n] for i in range(0, len(data), n)] for n in (2, 7, 64, 1030)
    ]


def events(items: list[Frame | errors.FrameError]) -> list[dict[str, Any]]:
    return [
        {"frame": {"msg_type": i.msg_type, "seq": i.seq, "payload_hex": i.payload.hex()}}
        if isinstance(i, Frame) else {"error": type(i).__name__}
        for i in items
    ]


def test_vector_files_are_what_the_generator_makes() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_vectors.py"), "--check"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_there_is_a_frame_vector_for_every_message_type() -> None:
    assert {v["msg_type"] for v in FRAMES} >= set(MESSAGE_CLASSES)
    assert {v["class"] for v in FRAMES} == set(MESSAGE_BY_NAME)


def test_records_vectors_cover_every_record_class() -> None:
    assert {v["class"] for v in RECORDS} == set(RECORD_BY_NAME)


@pytest.mark.parametrize("vector", FRAMES, ids=[v["name"] for v in FRAMES])
def test_frame_vector_decodes_to_its_fields(vector: dict[str, Any]) -> None:
    wire = bytes.fromhex(vector["hex"])
    expected = Frame(vector["msg_type"], vector["seq"], bytes.fromhex(vector["payload_hex"]))
    for chunks in chunkings(wire):
        decoder = FrameDecoder()
        assert [item for chunk in chunks for item in decoder.feed(chunk)] == [expected]
    msg = decode_message(expected)
    assert type(msg).__name__ == vector["class"]
    assert to_json(msg) == vector["decoded"]


@pytest.mark.parametrize("vector", FRAMES, ids=[v["name"] for v in FRAMES])
def test_frame_vector_fields_encode_to_its_bytes(vector: dict[str, Any]) -> None:
    msg = from_json(MESSAGE_BY_NAME[vector["class"]], vector["decoded"])
    if isinstance(msg, UnknownMessage):
        wire = encode_frame(msg.msg_type, vector["seq"], msg.payload)
    else:
        wire = encode_message(msg, vector["seq"])
    if vector["canonical"]:
        assert wire.hex() == vector["hex"]
    else:
        assert wire.hex() != vector["hex"]
        assert decode_message(FrameDecoder().feed(wire)[0]) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize("vector", [v for v in FRAMES if "records_in" in v],
                         ids=[v["name"] for v in FRAMES if "records_in" in v])
def test_records_frame_carries_the_named_record_vectors(vector: dict[str, Any]) -> None:
    by_name = {r["name"]: r for r in RECORDS}
    good, errs = scan_records(bytes.fromhex(vector["decoded"]["records"]))
    assert errs == []
    assert [g[3].hex() for g in good] == [by_name[n]["hex"] for n in vector["records_in"]]


@pytest.mark.parametrize("vector", RECORDS, ids=[v["name"] for v in RECORDS])
def test_record_vector_decodes_and_encodes(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    expected = from_json(RECORD_BY_NAME[vector["class"]], vector["decoded"])
    assert decode_record(raw) == parse_record(raw) == expected
    assert encode_record(expected) == raw
    header = vector["header"]
    assert (header["seq"], header["timestamp"], header["type"], header["length"]) == (
        int.from_bytes(raw[:4], "little"), int.from_bytes(raw[4:8], "little"), raw[8], raw[9])
    assert int(vector["crc"], 16) == int.from_bytes(raw[-4:], "little") == crc32c(raw[:-4])


@pytest.mark.parametrize("vector", CORRUPT["frames"], ids=[v["name"] for v in CORRUPT["frames"]])
def test_corrupt_stream_gives_exactly_the_stated_errors_and_frames(vector: dict[str, Any]) -> None:
    stream = bytes.fromhex(vector["hex"])
    for chunks in chunkings(stream):
        decoder = FrameDecoder()
        assert events([item for chunk in chunks for item in decoder.feed(chunk)]) == vector["expect"]


@pytest.mark.parametrize("vector", [v for v in CORRUPT["records"] if "error" in v],
                         ids=[v["name"] for v in CORRUPT["records"] if "error" in v])
def test_corrupt_record_gives_the_stated_error(vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["hex"])
    error = getattr(errors, vector["error"])
    for decode in (decode_record, parse_record):
        with pytest.raises(error):
            decode(raw)
    good, errs = scan_records(raw)
    assert good == [] and [type(e).__name__ for e in errs] == [vector["error"]]


@pytest.mark.parametrize("vector", [v for v in CORRUPT["records"] if "good" in v],
                         ids=[v["name"] for v in CORRUPT["records"] if "good" in v])
def test_corrupt_run_keeps_the_good_records(vector: dict[str, Any]) -> None:
    good, errs = scan_records(bytes.fromhex(vector["hex"]))
    assert [g[3].hex() for g in good] == vector["good"]
    assert [type(e).__name__ for e in errs] == vector["errors"]


@pytest.mark.parametrize("vector", CRC["vectors"], ids=[v["name"] for v in CRC["vectors"]])
def test_crc_vector(vector: dict[str, Any]) -> None:
    assert crc32c(bytes.fromhex(vector["input_hex"])) == int(vector["crc"], 16)


def test_crc_parameters_and_residue() -> None:
    assert int(CRC["algorithm"]["check"], 16) == crc32c(b"123456789")
    assert int(CRC["residue"], 16) == RESIDUE


def test_a_vector_ends_on_a_full_254_byte_cobs_block() -> None:
    """COBS's edge: the last block of a frame is 254 non-zero bytes (code 0xFF), no final code."""
    (vector,) = [v for v in FRAMES if v["name"] == "error_cobs_full_block"]
    stuffed = bytes.fromhex(vector["hex"])[1:-1]
    assert stuffed[-255] == 0xFF and 0 not in stuffed
    (frame,) = FrameDecoder().feed(bytes.fromhex(vector["hex"]))
    assert isinstance(frame, Frame)
    msg = decode_message(frame)
    assert not isinstance(msg, UnknownMessage)
    assert encode_message(msg, frame.seq) == bytes.fromhex(vector["hex"])
