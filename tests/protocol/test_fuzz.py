"""Fuzz every decoder with random and mutated inputs: nothing but ProtocolError comes out.

The figure this test holds: at least FUZZ_INPUTS = 100,000 inputs per run, drawn from a fixed SEED
(so a failure names the input that reproduces it), through FrameDecoder, decode_message,
scan_records and decode_record (and parse_record, whose verdict must match decode_record's):

- streams: valid frames (from tests/vectors) bit-flipped, truncated, duplicated, spliced, with bytes
  inserted or deleted, hostile integers written over them, or plain random bytes, fed in random
  chunks to one long-lived decoder;
- payloads: mutated or hostile payloads of every message type (a READ_SET count of 255 with a few
  bytes, an ERROR detail longer than its frame, ...) framed with a good CRC, so that they get past
  the frame check and reach the message parser; some under a header with a lying version or length;
- records: mutated records, half of them with the length byte and CRC fixed up so that they reach
  the body decoder.

Every decoder must either return a value within the size caps or raise a ProtocolError subclass
(the frame decoder and scan_records report errors as values and must not raise at all).
"""

from __future__ import annotations

import json
import random
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from cobs import cobs

from protocol import formats
from protocol.crc import crc32c
from protocol.enums import MsgType
from protocol.errors import FrameError, ProtocolError, RecordError
from protocol.framing import MAX_STUFFED, Frame, FrameDecoder, encode_frame
from protocol.messages import ErrorResponse, ReadSet, Records, UnknownMessage, decode_message
from protocol.records import decode_record, parse_record, scan_records

SEED = 0x7B0106
FUZZ_INPUTS = 100_000
VECTORS = Path(__file__).resolve().parents[1] / "vectors"
MAX_RECORD = formats.RECORD_OVERHEAD + formats.MAX_RECORD_BODY
MAX_RANGES_IN_A_FRAME = (formats.MAX_PAYLOAD - 3) // formats.SEQ_RANGE.sizeof()


def corpus() -> tuple[list[bytes], list[tuple[int, bytes]], list[bytes]]:
    """Wire frames, (msg_type, payload) pairs and records from the published vectors."""
    frames = json.loads((VECTORS / "frames.json").read_text(encoding="utf-8"))
    records = json.loads((VECTORS / "records.json").read_text(encoding="utf-8"))
    return (
        [bytes.fromhex(v["hex"]) for v in frames],
        [(v["msg_type"], bytes.fromhex(v["payload_hex"])) for v in frames],
        [bytes.fromhex(v["hex"]) for v in records],
    )


class Mutator:
    """Seeded mutations of byte strings."""

    HOSTILE = [b"\x00", b"\xff", b"\x80", b"\x7f", b"\xff\xff", b"\x00\x80", b"\xff\xff\xff\xff",
               b"\x00\x00\x00\x80", b"\xa0"]

    def __init__(self, rng: random.Random, pool: list[bytes]) -> None:
        self.rng = rng
        self.pool = pool
        self.operators: list[Callable[[bytes], bytes]] = [
            self.flip_bits, self.set_bytes, self.truncate, self.duplicate, self.splice, self.insert,
            self.delete, self.hostile_integer, self.random_bytes,
        ]

    def __call__(self, data: bytes, rounds: int | None = None) -> bytes:
        for _ in range(rounds if rounds is not None else self.rng.choice((1, 1, 1, 2, 3))):
            data = self.rng.choice(self.operators)(data)
        return data

    def _position(self, data: bytes) -> int:
        return self.rng.randrange(len(data)) if data else 0

    def flip_bits(self, data: bytes) -> bytes:
        out = bytearray(data or b"\x00")
        for _ in range(self.rng.randint(1, 8)):
            out[self.rng.randrange(len(out))] ^= 1 << self.rng.randrange(8)
        return bytes(out)

    def set_bytes(self, data: bytes) -> bytes:
        out = bytearray(data or b"\x00")
        for _ in range(self.rng.randint(1, 4)):
            out[self.rng.randrange(len(out))] = self.rng.randrange(256)
        return bytes(out)

    def truncate(self, data: bytes) -> bytes:
        return data[: self._position(data)]

    def duplicate(self, data: bytes) -> bytes:
        start = self._position(data)
        end = min(len(data), start + self.rng.randint(1, 64))
        return data[:end] + data[start:end] * self.rng.randint(1, 4) + data[end:]

    def splice(self, data: bytes) -> bytes:
        other = self.rng.choice(self.pool)
        return data[: self._position(data)] + other[self._position(other):]

    def insert(self, data: bytes) -> bytes:
        at = self._position(data)
        return data[:at] + self.rng.randbytes(self.rng.randint(1, 16)) + data[at:]

    def delete(self, data: bytes) -> bytes:
        at = self._position(data)
        return data[:at] + data[at + self.rng.randint(1, 16):]

    def hostile_integer(self, data: bytes) -> bytes:
        value = self.rng.choice(self.HOSTILE)
        at = self._position(data)
        return data[:at] + value + data[at + len(value):]

    def random_bytes(self, data: bytes) -> bytes:
        return self.rng.randbytes(self.rng.choice((1, 4, 16, 64, 300, 1100, 3000)))


def hostile_payloads(rng: random.Random) -> tuple[int, bytes]:
    """Payloads shaped to make a parser over-read or over-allocate."""
    choice = rng.randrange(4)
    if choice == 0:  # a READ_SET count beyond its bytes (255 with a few ranges)
        count = rng.choice((255, 200, 169, 161, 160, 1))
        return MsgType.READ_SET, bytes([count]) + rng.randbytes(6 * rng.randint(0, min(count, 168)))
    if choice == 1:  # an ERROR detail length beyond its bytes, or not UTF-8
        return MsgType.ERROR, rng.randbytes(4) + bytes([rng.choice((255, 128, 10))]) + rng.randbytes(
            rng.randint(0, 300))
    if choice == 2:  # a known type with a random payload
        return rng.choice(list(MsgType)), rng.randbytes(rng.randint(0, 200))
    return rng.randrange(256), rng.randbytes(rng.randint(0, formats.MAX_PAYLOAD))


def forged_frame(rng: random.Random, payload: bytes) -> bytes:
    """A stuffed frame with a good CRC over a header that may lie (version, length)."""
    version = rng.choice((formats.PROTOCOL_VERSION, formats.PROTOCOL_VERSION, 0, 2, 255))
    length = rng.choice((len(payload), len(payload) + 1, max(0, len(payload) - 1), 0, 0xFFFF))
    body = struct.pack("<BBHH", version, rng.randrange(256), rng.randrange(0x10000), length) + payload
    return cobs.encode(body + crc32c(body).to_bytes(4, "little")) + b"\x00"


def fix_record(raw: bytes) -> bytes:
    """Make the length byte and CRC agree with the bytes, so the body decoder is reached."""
    if len(raw) < formats.RECORD_OVERHEAD or len(raw) > MAX_RECORD:
        return raw
    head = bytearray(raw[:-4])
    head[9] = len(raw) - formats.RECORD_OVERHEAD
    return bytes(head) + crc32c(bytes(head)).to_bytes(4, "little")


class Checks:
    """Runs one input through the decoders and checks what comes out."""

    def __init__(self) -> None:
        self.decoder = FrameDecoder()
        self.outcomes: Counter[str] = Counter()

    def stream(self, data: bytes, cuts: list[int]) -> None:
        for chunk in (data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)):
            items = self.decoder.feed(chunk)  # must not raise
            assert self.decoder.buffered <= MAX_STUFFED
            for item in items:
                if isinstance(item, Frame):
                    self.frame(item)
                else:
                    assert isinstance(item, FrameError), item
                    self.outcomes[type(item).__name__] += 1

    def frame(self, frame: Frame) -> None:
        assert len(frame.payload) <= formats.MAX_PAYLOAD
        self.outcomes["frame"] += 1
        try:
            msg = decode_message(frame)
        except ProtocolError as exc:
            self.outcomes[type(exc).__name__] += 1
            return
        self.outcomes[type(msg).__name__] += 1
        if isinstance(msg, ReadSet):
            assert len(msg.ranges) <= MAX_RANGES_IN_A_FRAME
        elif isinstance(msg, ErrorResponse):
            assert len(msg.detail.encode("utf-8")) <= 255
        elif isinstance(msg, UnknownMessage):
            assert msg.msg_type not in formats.MESSAGE_PAYLOADS
        elif isinstance(msg, Records):
            self.records(msg.records)

    def records(self, run: bytes) -> None:
        good, errors = scan_records(run)  # must not raise
        assert all(isinstance(e, RecordError) for e in errors)
        for _, _, _, raw in good:
            assert len(raw) <= MAX_RECORD
            self.record(raw)

    def record(self, raw: bytes) -> None:
        try:
            fast: object = decode_record(raw)
        except ProtocolError as exc:
            fast = type(exc)
        try:
            oracle: object = parse_record(raw)
        except ProtocolError as exc:
            oracle = type(exc)
        assert fast == oracle, (fast, oracle)
        self.outcomes[fast.__name__ if isinstance(fast, type) else type(fast).__name__] += 1


@pytest.mark.slow
def test_fuzz_decoders_with_100k_inputs() -> None:
    rng = random.Random(SEED)
    wires, payloads, records = corpus()
    mutate_wire = Mutator(rng, wires)
    mutate_payload = Mutator(rng, [p for _, p in payloads])
    mutate_record = Mutator(rng, records)
    checks = Checks()
    inputs = 0
    while inputs < FUZZ_INPUTS:
        inputs += 1
        kind = rng.random()
        try:
            if kind < 0.45:
                data = mutate_wire(b"".join(rng.choice(wires) for _ in range(rng.randint(1, 3))))
                cuts = sorted(rng.sample(range(1, len(data)), min(max(len(data) - 1, 0), rng.randint(0, 3))))
                checks.stream(data, cuts)
            elif kind < 0.75:
                if rng.random() < 0.3:
                    msg_type, payload = hostile_payloads(rng)
                else:
                    msg_type, payload = rng.choice(payloads)
                    payload = mutate_payload(payload)
                    msg_type = msg_type if rng.random() < 0.9 else rng.randrange(256)
                payload = payload[: formats.MAX_PAYLOAD]
                if rng.random() < 0.1:
                    checks.stream(forged_frame(rng, payload), [])
                else:
                    checks.stream(encode_frame(msg_type, inputs & 0xFFFF, payload), [])
            else:
                raw = mutate_record(rng.choice(records))
                if rng.random() < 0.5:
                    raw = fix_record(raw)
                checks.record(raw)
                checks.records(raw + rng.choice(records))
        except Exception as exc:
            raise AssertionError(f"fuzz input {inputs} (seed {SEED:#x}) broke a decoder: {exc!r}") from exc
    assert inputs >= 100_000
    # Each kind of outcome must have been reached, or the fuzzing is not exercising the decoders.
    for outcome in ("frame", "FrameCrcMismatch", "BadStuffing", "FrameTooLong", "FrameTruncated",
                    "LengthMismatch", "UnsupportedVersion", "MalformedMessage",
                    "ReadSet", "ErrorResponse", "Records", "UnknownMessage", "SampleRecord", "FaultRecord",
                    "EventRecord", "UnknownRecord", "RecordCrcMismatch", "RecordTruncated"):
        assert checks.outcomes[outcome] > 0, f"no fuzz input reached {outcome}: {dict(checks.outcomes)}"
