"""Finding the log in a flash: the ring of sectors, the records each holds, the log's bounds,
counters and capacity, as ``docs/flash-image.md`` sections 2 and 3 specify them.

The controller's power-up recovery (:class:`firmware_sim.logstore.LogStore`) and the reader of
a flash image (:mod:`host.flash_image`) both find the log through these functions, so that an
image yields exactly the records the unit would serve::

    headers = [decode_sector_header(first bytes of sector i) for i in range(sector_count)]
    ring    = find_ring(headers)                      # oldest first; the head last
    for sector, stop in zip(ring, ring_stops(ring)):
        scan = scan_sector(bytes of sector.index, sector.header.base_seq, stop)
    first_seq(ring), scan of the head: next_seq, log_counters(head, its rows)

Pure: functions over sector headers and the bytes of one sector at a time, which the caller
reads (from a flash, a file or a memory map).  Nothing here reads, writes or repairs a flash;
how records are written (opening, evicting, clearing sectors) is the controller's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .counters import LifetimeCounters, counters_of_row
from .enums import RecordType
from .fastpath import flatten
from .formats import MAX_RECORD_BODY, RECORD_HEADER, RECORD_OVERHEAD
from .image_formats import SECTOR_HEADER_SIZE, SectorHeader
from .records import LAYOUTS, DecodedRow, decode_rows

MAX_RECORD_SIZE = RECORD_OVERHEAD + MAX_RECORD_BODY
"""The largest record: a log sector must hold its header and one of these."""
SAMPLE_RECORD_SIZE = LAYOUTS[RecordType.SAMPLE].size
ERASED_SEQ = 0xFFFFFFFF
"""What a record's seq field reads in erased flash; never a valid seq (and the stop of the head)."""
_RECORD_HEADER = flatten(RECORD_HEADER)


def log_geometry_problem(sector_size: int, sector_count: int) -> str | None:
    """Why a chip of this geometry cannot hold a log (section 2), or None when it can."""
    if sector_count < 2:
        return "a log needs at least 2 sectors"
    if sector_size < SECTOR_HEADER_SIZE + MAX_RECORD_SIZE:
        return (f"a log sector must hold its header and the largest record "
                f"({SECTOR_HEADER_SIZE + MAX_RECORD_SIZE} bytes), not {sector_size}")
    return None


def capacity_records(sector_size: int, sector_count: int) -> int:
    """Sample records the log is sure to hold (section 3, step 5): every sector but the one
    being evicted, full of samples.  IDENTIFY_RSP reports it as ``capacity_records``."""
    return (sector_count - 1) * ((sector_size - SECTOR_HEADER_SIZE) // SAMPLE_RECORD_SIZE)


@dataclass(frozen=True, slots=True)
class RingSector:
    """A sector of the log: its index on the chip and its valid header."""

    index: int
    header: SectorHeader


def find_ring(headers: Sequence[SectorHeader | None]) -> tuple[RingSector, ...]:
    """The sectors of the log, oldest first, the head last (section 3, steps 1 and 2), from the
    header of every sector by index (None where it is not valid); empty when none is valid."""
    count = len(headers)
    valid = [RingSector(index, header) for index, header in enumerate(headers) if header is not None]
    if not valid:
        return ()
    head = max(valid, key=lambda sector: sector.header.generation)
    ring = [head]
    for back in range(1, count):
        index = (head.index - back) % count
        older = headers[index]
        if older is None or older.generation != head.header.generation - back:
            break
        if older.base_seq > ring[-1].header.base_seq:
            break
        ring.append(RingSector(index, older))
    ring.reverse()
    return tuple(ring)


def ring_stops(ring: Sequence[RingSector]) -> list[int]:
    """The seq each sector's records stop before: the newer sector's base_seq (ERASED_SEQ for
    the head, whose records end where its data does)."""
    return [sector.header.base_seq for sector in ring[1:]] + [ERASED_SEQ] * bool(ring)


def first_seq(ring: Sequence[RingSector]) -> int:
    """The oldest seq the log holds (section 3, step 4); 0 for an empty log."""
    if not ring:
        return 0
    return max(ring[-1].header.first_seq, ring[0].header.base_seq)


@dataclass(frozen=True, slots=True)
class SectorScan:
    """The records one sector holds (section 3, step 3)."""

    rows: list[DecodedRow]
    """The valid records, in seq order from the sector's base_seq, as
    :func:`protocol.records.decode_rows` gives them."""
    offsets: list[int]
    """Offset in the sector of each valid record, then of the byte after the last one: record
    ``i`` is ``sector[offsets[i] : offsets[i + 1]]``, and the sector's data ends at ``offsets[-1]``."""
    discarded: int
    """Records delimited after the last valid one (the first of them failed its CRC-32C: torn
    by a power cut, or damaged); none of them counts."""


def scan_sector(sector: bytes, base_seq: int, stop_seq: int) -> SectorScan:
    """The valid records of one sector's bytes (its header first) with seqs from *base_seq*
    below *stop_seq*.

    Records are delimited by their seqs and lengths (a seq not the one expected, erased flash
    included, or a record running past the sector ends them), then verified and decoded by
    :func:`protocol.records.decode_rows` in one call; the sector's data ends at the first
    record that fails.
    """
    size = len(sector)
    offsets = [SECTOR_HEADER_SIZE]
    add, unpack_header = offsets.append, _RECORD_HEADER.struct.unpack_from
    pos, seq = SECTOR_HEADER_SIZE, base_seq
    while seq < stop_seq and pos + RECORD_OVERHEAD <= size:
        found, _, _, length = unpack_header(sector, pos)
        end = pos + RECORD_OVERHEAD + length
        if found != seq or end > size:
            break
        add(end)
        pos, seq = end, seq + 1
    rows, errors = decode_rows(sector[SECTOR_HEADER_SIZE:pos])
    if errors:
        rows = rows[: next((i for i, row in enumerate(rows) if row[0] != base_seq + i), len(rows))]
    valid = len(rows)
    return SectorScan(rows, offsets[: valid + 1], seq - base_seq - valid)


def log_counters(head: SectorHeader, head_rows: Sequence[DecodedRow]) -> LifetimeCounters:
    """The unit's lifetime counters (section 3, step 4): those of the newest sample or fault in
    the head sector (*head_rows*, its valid records), else the head header's."""
    for row in reversed(head_rows):
        counters = counters_of_row(row)
        if counters is not None:
            return counters
    return head.counters
