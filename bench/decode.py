"""Decode rate: the host's hot path (unstuff, CRC-check, decode into rows) beside struct.iter_unpack.

Over the same bytes as the unpaced pull (:mod:`bench.unpaced`): the records of
the same flash image, framed as the device frames them (as many whole records
as fit in a RECORDS payload).  Times, alternately in the same run, the host's
decode path over the wire bytes (``FrameDecoder``, ``decode_message`` and
``decode_rows``: what a pull runs for every RECORDS frame) and
``struct.Struct.iter_unpack`` of the sample layout over each frame's record
bytes, keeping each frame's tuples as the decoder keeps its rows.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Iterator
from pathlib import Path

from firmware_sim.flash import NorFlash
from firmware_sim.logstore import LogStore
from protocol.enums import RecordType
from protocol.formats import MAX_PAYLOAD
from protocol.framing import FrameDecoder
from protocol.messages import Records, decode_message, encode_message
from protocol.records import LAYOUTS, SampleRecord, Snapshot, decode_rows

from .device import image
from .figures import Figure, timed
from .unpaced import RECORDS

FEED_CHUNK = 65536
TARGET = 1_000_000
_ROOM = MAX_PAYLOAD - 2
"""Record bytes in a RECORDS payload after its request_seq."""


def sample(seq: int) -> SampleRecord:
    """A plausible sample record (for frames built without an image)."""
    snapshot = Snapshot(4, 0, 0, 96000 - seq % 500, 60000 - seq % 700, 6100, 6120, 150, 150, 10132, 700,
                        214000, 7600, 4800, 60000, 3600 * 1000 + seq, 120, 3, 60_000_000 + seq)
    return SampleRecord(seq, 1_000_000_000 + seq * 60, snapshot)


def image_records(flash: Path) -> Iterator[bytes]:
    """Every record the image's log holds, in seq order."""
    with NorFlash.open(flash) as chip:
        store = LogStore(chip)
        yield from store.iter_raw(store.first_seq, store.next_seq)


def payloads(raws: Iterable[bytes]) -> Iterator[bytes]:
    """Record bytes packed as the device packs them: whole records, as many as fit a RECORDS frame."""
    batch: list[bytes] = []
    room = _ROOM
    for raw in raws:
        if len(raw) > room:
            yield b"".join(batch)
            batch, room = [], _ROOM
        batch.append(raw)
        room -= len(raw)
    if batch:
        yield b"".join(batch)


def decode_wire(wire: bytes, expected: int) -> int:
    decoder = FrameDecoder()
    decoded = 0
    for offset in range(0, len(wire), FEED_CHUNK):
        for frame in decoder.feed(wire[offset : offset + FEED_CHUNK]):
            message = decode_message(frame)  # type: ignore[arg-type]
            rows, _ = decode_rows(message.records)  # type: ignore[union-attr]
            decoded += len(rows)
    if decoded != expected:
        raise AssertionError(f"decoded {decoded} of {expected} records")
    return decoded


def unpack_frames(records: list[bytes]) -> int:
    layout = LAYOUTS[RecordType.SAMPLE].struct
    unpacked = 0
    for chunk in records:
        unpacked += len(list(layout.iter_unpack(chunk[: len(chunk) - len(chunk) % layout.size])))
    return unpacked


def run(repeats: int = 7) -> list[Figure]:
    records = list(payloads(image_records(image(RECORDS))))
    count = sum(len(decode_rows(chunk)[0]) for chunk in records)
    wire = b"".join(encode_message(Records(seq & 0xFFFF, chunk), seq) for seq, chunk in enumerate(records))
    unpacked = unpack_frames(records)
    ours, theirs = [], []
    for _ in range(repeats):
        ours.append(count / timed(lambda: decode_wire(wire, count)))
        theirs.append(unpacked / timed(lambda: unpack_frames(records)))
    decoder, reference = statistics.median(ours), statistics.median(theirs)
    return [
        Figure("decode: unstuff + CRC + decode", decoder, "rec/s", TARGET,
               reference=f"struct.iter_unpack over the same record bytes: {reference:,.0f} rec/s; "
                         f"{count:,} records of the unpaced pull, median of {repeats}",
               limit=reference),
    ]
