"""Decode rate: the hot path (unstuff, CRC-check, decode) beside struct.iter_unpack.

Builds RECORDS frames of sample records once, then times the host's decode
path over the wire bytes and ``struct.Struct.iter_unpack`` (keeping the
tuples) over the bare record bytes, alternately, in the same run.
"""

from __future__ import annotations

from protocol.framing import FrameDecoder
from protocol.messages import Records, decode_message, encode_message
from protocol.records import LAYOUTS, SampleRecord, Snapshot, decode_batch, encode_record

from .figures import Figure, median_of, timed

RECORDS = 200_000
FEED_CHUNK = 65536


def _sample(seq: int) -> SampleRecord:
    snapshot = Snapshot(4, 0, 0, 96000 - seq % 500, 60000 - seq % 700, 6100, 6120, 150, 150, 10132, 700,
                        214000, 7600, 4800, 60000, 3600 * 1000 + seq, 120, 3, 60_000_000 + seq)
    return SampleRecord(seq, 1_000_000_000 + seq * 60, snapshot)


def build_wire(count: int) -> tuple[bytes, bytes]:
    raws = [encode_record(_sample(seq)) for seq in range(count)]
    per_frame = (1014 - 2) // len(raws[0])
    frames = [
        encode_message(Records(1, b"".join(raws[i : i + per_frame])), i // per_frame)
        for i in range(0, count, per_frame)
    ]
    return b"".join(frames), b"".join(raws)


def decode_wire(wire: bytes) -> int:
    decoder = FrameDecoder()
    decoded = 0
    for offset in range(0, len(wire), FEED_CHUNK):
        for frame in decoder.feed(wire[offset : offset + FEED_CHUNK]):
            message = decode_message(frame)  # type: ignore[arg-type]
            good, _ = decode_batch(message.records)  # type: ignore[union-attr]
            decoded += len(good)
    if decoded != RECORDS:
        raise AssertionError(f"decoded {decoded} of {RECORDS} records")
    return decoded


def run(repeats: int = 7) -> list[Figure]:
    wire, bare = build_wire(RECORDS)
    layout = LAYOUTS[1].struct
    ours = median_of(repeats, lambda: RECORDS / timed(lambda: decode_wire(wire)))
    theirs = median_of(repeats, lambda: RECORDS / timed(lambda: list(layout.iter_unpack(bare))))
    return [
        Figure("decode: unstuff + CRC + decode", ours, "rec/s", 1_000_000,
               reference=f"struct.iter_unpack: {theirs:,.0f} rec/s"),
        Figure("decode / struct.iter_unpack", ours / theirs, "x", None),
    ]
