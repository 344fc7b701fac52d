"""Frames on a byte stream: chunking, noise, line damage, endless runs and hostile lengths.

The promise under test (protocol.framing, docs/protocol.md section 2): whatever the line does, a
decoded frame is always one that was sent, a hit costs at most the frame it lands in (the two
frames around a delimiter it lands on), and the decoder never holds more than MAX_STUFFED bytes.
"""

from __future__ import annotations

import struct
import tracemalloc
from dataclasses import dataclass

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import formats
from protocol.crc import crc32c
from protocol.errors import (
    BadStuffing,
    FrameError,
    FrameTooLong,
    LengthMismatch,
    LocalProtocolError,
)
from protocol.framing import MAX_STUFFED, Frame, FrameDecoder, decode_frame, encode_frame

payloads = st.binary(max_size=200)


def frame_list(max_size: int = 8) -> st.SearchStrategy[list[Frame]]:
    """Frames with distinct seqs (so that each decoded frame says which one it is)."""
    return st.lists(st.tuples(st.integers(0, 255), payloads), min_size=1, max_size=max_size).map(
        lambda items: [Frame(t, seq, p) for seq, (t, p) in enumerate(items)])


def wire_of(frames: list[Frame]) -> bytes:
    return b"".join(encode_frame(f.msg_type, f.seq, f.payload) for f in frames)


def feed_all(decoder: FrameDecoder, chunks: list[bytes]) -> list[Frame | FrameError]:
    out: list[Frame | FrameError] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
        assert decoder.buffered <= MAX_STUFFED
    return out


def only_frames(items: list[Frame | FrameError]) -> list[Frame]:
    assert all(isinstance(i, (Frame, FrameError)) for i in items)
    return [i for i in items if isinstance(i, Frame)]


def raw_frame(
    msg_type: int, seq: int, payload: bytes, version: int = formats.PROTOCOL_VERSION,
    length: int | None = None,
) -> bytes:
    """Frame bytes before stuffing, with a good CRC whatever the header says."""
    body = struct.pack("<BBHH", version, msg_type, seq, len(payload) if length is None else length) + payload
    return body + crc32c(body).to_bytes(4, "little")


# --- building frames -------------------------------------------------------------------------------


@given(st.integers(0, 255), st.integers(0, 0xFFFF), st.binary(max_size=formats.MAX_PAYLOAD))
def test_a_frame_round_trips_and_has_no_zero_inside(msg_type: int, seq: int, payload: bytes) -> None:
    wire = encode_frame(msg_type, seq, payload)
    assert wire.startswith(b"\x00") and wire.endswith(b"\x00") and b"\x00" not in wire[1:-1]
    assert len(wire) - 2 <= MAX_STUFFED
    assert decode_frame(wire[1:-1]) == Frame(msg_type, seq, payload)


@pytest.mark.parametrize(("msg_type", "seq", "size"), [
    (0, 0, formats.MAX_PAYLOAD + 1), (-1, 0, 0), (256, 0, 0), (0, -1, 0), (0, 0x10000, 0),
])
def test_encode_refuses_what_a_frame_cannot_carry(msg_type: int, seq: int, size: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(msg_type, seq, bytes(size))


# --- chunking ------------------------------------------------------------------------------------


@given(frame_list(), st.data())
def test_any_chunking_gives_the_same_frames(frames: list[Frame], data: st.DataObject) -> None:
    wire = wire_of(frames)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(wire) - 1)), max_size=20)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert feed_all(FrameDecoder(), [wire]) == frames
    assert feed_all(FrameDecoder(), [wire[i:i + 1] for i in range(len(wire))]) == frames
    assert feed_all(FrameDecoder(), chunks) == frames


def test_feeding_nothing_changes_nothing() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x05ab")
    assert decoder.feed(b"") == []
    assert decoder.buffered == 3


def test_counters() -> None:
    decoder = FrameDecoder()
    wire = encode_frame(1, 1, b"") + b"\xff\xff\x00" + encode_frame(2, 2, b"x")
    decoder.feed(wire)
    assert (decoder.frames, decoder.errors, decoder.bytes_in) == (2, 1, len(wire))


# --- noise around frames ---------------------------------------------------------------------------

noise = st.binary(min_size=1, max_size=300)


@given(frame_list(), st.lists(noise, min_size=1, max_size=9), st.data())
def test_delimited_noise_before_between_and_after_frames_costs_no_frame(
        frames: list[Frame], noises: list[bytes], data: st.DataObject) -> None:
    parts = [b"\x00" + noises[0] + b"\x00"]
    for i, frame in enumerate(frames):
        parts.append(encode_frame(frame.msg_type, frame.seq, frame.payload))
        parts.append(noises[(i + 1) % len(noises)] + b"\x00")
    wire = b"".join(parts)
    chunk = data.draw(st.integers(1, 64))
    out = feed_all(FrameDecoder(), [wire[i:i + chunk] for i in range(0, len(wire), chunk)])
    assert only_frames(out) == frames


def test_noise_before_a_frame_is_cut_off_by_the_frames_leading_delimiter() -> None:
    first, second = encode_frame(1, 1, b"first"), encode_frame(2, 2, b"second")
    out = FrameDecoder().feed(b"\x13\x37" + first + second)
    assert only_frames(out) == [Frame(1, 1, b"first"), Frame(2, 2, b"second")]
    assert len(out) == 3


def test_noise_after_the_last_frame_waits_for_a_delimiter() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(1, 1, b"") + b"\x42\x42") == [Frame(1, 1, b"")]
    assert decoder.buffered == 2


# --- line damage ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    kind: str  # "flip", "drop" or "insert"
    position: int
    value: int  # bit number for a flip, the byte inserted for an insert


def owners(frames: list[Frame]) -> list[tuple[int, bool]]:
    """For each wire byte: the index of the frame it belongs to, and whether it is its delimiter."""
    out: list[tuple[int, bool]] = []
    for i, frame in enumerate(frames):
        size = len(encode_frame(frame.msg_type, frame.seq, frame.payload))
        out += [(i, False)] * (size - 1) + [(i, True)]
    return out


def affected(hit: Hit, owner: list[tuple[int, bool]]) -> set[int]:
    """The frames a hit may cost: the frame it lands in, both frames around a delimiter it lands on."""
    if hit.kind in ("flip", "drop"):
        frame, is_delimiter = owner[hit.position]
        return {frame, frame + 1} if is_delimiter else {frame}
    if hit.position == len(owner):
        return set()  # noise after the last delimiter waits for the next one
    frame, is_delimiter = owner[hit.position]
    if hit.value == 0:  # a delimiter inside a frame splits it; elsewhere it is an empty run
        before = owner[hit.position - 1] if hit.position else None
        return {frame} if before == (frame, False) and not is_delimiter else set()
    if hit.position and owner[hit.position - 1][1]:
        return {frame}  # glued to the start of the next frame
    return {owner[hit.position - 1][0] if hit.position else frame}


def damage(wire: bytes, hits: list[Hit]) -> bytes:
    out = bytearray(wire)
    for hit in sorted(hits, key=lambda h: h.position, reverse=True):
        if hit.kind == "flip":
            out[hit.position] ^= 1 << hit.value
        elif hit.kind == "drop":
            del out[hit.position]
        else:
            out.insert(hit.position, hit.value)
    return bytes(out)


@st.composite
def damaged_streams(draw: st.DrawFn, kinds: tuple[str, ...]) -> tuple[list[Frame], list[Hit]]:
    frames = draw(frame_list(10))
    size = len(wire_of(frames))
    positions = draw(st.sets(st.integers(0, size - 1), min_size=1, max_size=4))
    hits = []
    for position in positions:
        kind = draw(st.sampled_from(kinds))
        value = draw(st.integers(0, 7) if kind == "flip" else st.integers(0, 255))
        hits.append(Hit(kind, position, value))
    return frames, hits


def check_damage(frames: list[Frame], hits: list[Hit]) -> None:
    owner = owners(frames)
    may_lose = set().union(*(affected(h, owner) for h in hits))
    out = FrameDecoder().feed(damage(wire_of(frames), hits) + b"\x00")  # the stream goes on
    decoded = only_frames(out)
    sent = {f.seq: f for f in frames}
    assert all(sent.get(f.seq) == f for f in decoded), "a damaged stream yielded a frame that was not sent"
    assert [f.seq for f in decoded] == sorted(f.seq for f in decoded), "frames came out of order"
    lost = set(sent) - {f.seq for f in decoded}
    assert lost <= may_lose, f"lost {sorted(lost - may_lose)} beyond the frames hit"
    assert len(lost) <= 2 * len(hits)
    if lost:
        assert len(out) > len(decoded), "frames were lost without an error being reported"


@pytest.mark.slow
@given(damaged_streams(("flip",)))
@settings(max_examples=400)
def test_flipped_bits_never_yield_a_frame_that_was_not_sent(case: tuple[list[Frame], list[Hit]]) -> None:
    check_damage(*case)


@pytest.mark.slow
@given(damaged_streams(("drop", "insert")))
@settings(max_examples=400)
def test_dropped_and_inserted_bytes_cost_only_the_frames_hit(case: tuple[list[Frame], list[Hit]]) -> None:
    check_damage(*case)


@pytest.mark.slow
@given(damaged_streams(("flip", "drop", "insert")))
@settings(max_examples=400)
def test_mixed_damage_costs_only_the_frames_hit(case: tuple[list[Frame], list[Hit]]) -> None:
    check_damage(*case)


def test_a_hit_inside_a_frame_costs_exactly_that_frame() -> None:
    frames = [Frame(1, i, bytes([i + 1]) * 20) for i in range(3)]
    wire = wire_of(frames)
    middle = len(encode_frame(1, 0, frames[0].payload)) + 5
    out = FrameDecoder().feed(damage(wire, [Hit("flip", middle, 0)]))
    assert [isinstance(i, FrameError) for i in out] == [False, True, False]
    assert only_frames(out) == [frames[0], frames[2]]


def test_a_hit_on_a_delimiter_costs_only_the_frame_it_closes() -> None:
    frames = [Frame(1, i, bytes([i + 1]) * 20) for i in range(3)]
    delimiter = len(encode_frame(1, 0, frames[0].payload)) - 1
    out = FrameDecoder().feed(damage(wire_of(frames), [Hit("flip", delimiter, 0)]))
    assert only_frames(out) == [frames[1], frames[2]]
    assert len(out) == 3


# --- endless runs and the buffer cap ----------------------------------------------------------------


def test_an_endless_run_is_reported_once_and_memory_stays_bounded() -> None:
    decoder = FrameDecoder()
    chunk = bytes(range(1, 256)) * 16
    reported: list[Frame | FrameError] = []
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):  # 4 MB without a delimiter
            reported += decoder.feed(chunk)
            assert decoder.buffered <= MAX_STUFFED
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert [type(r) for r in reported] == [FrameTooLong]
    assert peak < 64 * 1024, f"decoder allocated {peak} bytes while discarding"
    assert decoder.feed(b"\x00" + encode_frame(3, 3, b"back")) == [Frame(3, 3, b"back")]


def test_an_endless_run_in_one_chunk_is_reported_once() -> None:
    decoder = FrameDecoder()
    assert [type(r) for r in decoder.feed(b"\x55" * 10_000_000)] == [FrameTooLong]
    assert decoder.buffered == 0
    assert decoder.feed(b"\x55" * 5000) == []
    assert decoder.feed(b"\x00" + encode_frame(3, 3, b"")) == [Frame(3, 3, b"")]


@pytest.mark.parametrize("chunk", [1, 7, 1030, 5000])
def test_an_overlong_run_between_frames_is_reported_once_in_any_chunking(chunk: int) -> None:
    wire = encode_frame(1, 1, b"a") + b"\x55" * (MAX_STUFFED + 1) + b"\x00" + encode_frame(2, 2, b"b")
    out = feed_all(FrameDecoder(), [wire[i:i + chunk] for i in range(0, len(wire), chunk)])
    assert [type(r) for r in out] == [Frame, FrameTooLong, Frame]


def longest_frame() -> bytes:
    """A 1024-byte frame without a zero byte: it stuffs to exactly MAX_STUFFED bytes."""
    for filler in range(1, 256):
        body = raw_frame(0x86, 0x0101, bytes([filler]) * formats.MAX_PAYLOAD)
        if 0 not in body:
            return body
    raise AssertionError("no zero-free frame found")


@pytest.mark.parametrize("chunk", [1, 100, 2000])
def test_the_longest_legal_run_decodes_in_any_chunking(chunk: int) -> None:
    stuffed = cobs.encode(longest_frame())
    assert len(stuffed) == MAX_STUFFED
    wire = stuffed + b"\x00"
    out = feed_all(FrameDecoder(), [wire[i:i + chunk] for i in range(0, len(wire), chunk)])
    assert [(f.msg_type, len(f.payload)) for f in only_frames(out)] == [(0x86, formats.MAX_PAYLOAD)]


def test_one_byte_more_than_the_longest_legal_run_is_too_long() -> None:
    stuffed = b"\x01" + cobs.encode(longest_frame())
    assert [type(r) for r in FrameDecoder().feed(stuffed + b"\x00")] == [FrameTooLong]
    with pytest.raises(FrameTooLong):
        decode_frame(stuffed)


# --- hostile lengths and other receivers' stuffing ---------------------------------------------------


@pytest.mark.parametrize("length", [0, 3, 5, formats.MAX_PAYLOAD + 1, 0xFFFF])
def test_a_header_length_that_disagrees_is_refused_even_with_a_good_crc(length: int) -> None:
    wire = cobs.encode(raw_frame(0x86, 1, b"\x01\x00\x02\x00", length=length)) + b"\x00"
    assert [type(r) for r in FrameDecoder().feed(wire)] == [LengthMismatch]


def test_a_frame_over_1024_bytes_is_refused_even_when_its_stuffing_fits() -> None:
    body = raw_frame(0x86, 1, bytes(formats.MAX_PAYLOAD + 4))
    stuffed = cobs.encode(body)
    assert len(body) == formats.MAX_FRAME + 4 and len(stuffed) <= MAX_STUFFED
    (result,) = FrameDecoder().feed(stuffed + b"\x00")
    assert isinstance(result, FrameError)


def test_stuffing_with_a_trailing_code_after_a_full_block_is_accepted() -> None:
    """Cheshire & Baker's encoder ends a frame whose last block is 254 bytes with an extra 0x01;
    the cobs package leaves it out.  Both are valid COBS: a receiver takes either."""
    for filler in range(1, 256):
        body = raw_frame(0x86, 1, bytes(8) + bytes([filler]) * 250)
        if 0 not in body[-254:]:
            break
    stuffed = cobs.encode(body)
    assert stuffed[-255] == 0xFF
    assert FrameDecoder().feed(stuffed + b"\x01\x00") == [Frame(0x86, 1, body[6:-4])]


def test_a_run_with_a_zero_inside_is_bad_stuffing() -> None:
    with pytest.raises(BadStuffing):
        decode_frame(encode_frame(1, 1, b"")[:3] + b"\x00\x01")
