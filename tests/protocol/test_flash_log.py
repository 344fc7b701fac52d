"""protocol.flash_log: finding the log as docs/flash-image.md section 3 says, on bytes alone.

Both the emulator's recovery and the image reader run on these functions
(tests/firmware_sim/test_logstore.py and tests/host/test_flash_image.py check them through
each side); here the rules themselves, on headers and sectors made by hand.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.counters import LifetimeCounters
from protocol.enums import EventKind
from protocol.flash_log import (
    ERASED_SEQ,
    MAX_RECORD_SIZE,
    RingSector,
    capacity_records,
    find_ring,
    first_seq,
    log_counters,
    log_geometry_problem,
    ring_stops,
    scan_sector,
)
from protocol.image_formats import SECTOR_HEADER_SIZE, SectorHeader, encode_sector_header
from protocol.records import EventRecord, Record, SampleRecord, Snapshot, encode_record, row_bytes
from tests.protocol.test_records import snapshots

SECTOR_SIZE = 1024
NONE = LifetimeCounters()
LOG_ID = b"log-id-1"
Chip = tuple[list[SectorHeader | None], list[int]]


def header(generation: int, base_seq: int, first: int = 0, c: LifetimeCounters = NONE) -> SectorHeader:
    return SectorHeader(generation, base_seq, first, c.operating_s, c.starts, c.trips, c.energy_wh, LOG_ID)


@st.composite
def rings(draw: st.DrawFn) -> Chip:
    """Headers of a chip whose log is a ring of known sectors (their indexes, oldest first),
    the others unused, evicted or of an older lap."""
    count = draw(st.integers(2, 12))
    length = draw(st.integers(1, count))
    head = draw(st.integers(0, count - 1))
    head_generation = draw(st.integers(length - 1, 10_000))
    indexes = [(head - back) % count for back in reversed(range(length))]
    headers: list[SectorHeader | None] = [None] * count
    base = draw(st.integers(0, 1_000_000))
    for age, index in enumerate(indexes):
        headers[index] = header(head_generation - (length - 1 - age), base + 10 * age)
    for index in set(range(count)) - set(indexes):
        if draw(st.booleans()) and head_generation > count:
            headers[index] = header(head_generation - count - draw(st.integers(1, 5)), base)
    return headers, indexes


@given(rings())
def test_the_ring_is_the_head_and_the_run_of_sectors_behind_it(chip: Chip) -> None:
    headers, indexes = chip
    ring = find_ring(headers)
    assert [sector.index for sector in ring] == indexes
    assert [sector.header for sector in ring] == [headers[i] for i in indexes]


def test_no_valid_header_is_an_empty_log() -> None:
    assert find_ring([None, None, None]) == ()
    assert first_seq(()) == 0
    assert ring_stops(()) == []


def test_a_sector_whose_base_seq_is_above_the_newer_ones_ends_the_ring() -> None:
    headers: list[SectorHeader | None] = [header(4, 500), header(5, 100), header(6, 200)]
    assert [sector.index for sector in find_ring(headers)] == [1, 2]


def test_bounds_of_a_ring() -> None:
    ring = (RingSector(3, header(7, 100, first=90)), RingSector(0, header(8, 150, first=120)))
    assert ring_stops(ring) == [150, ERASED_SEQ]
    assert first_seq(ring) == 120
    assert first_seq(ring[:1]) == 100


def sector(records: list[Record], base_seq: int) -> bytearray:
    data = bytearray(encode_sector_header(header(1, base_seq)))
    for seq, record in enumerate(records, base_seq):
        data += encode_record(replace(record, seq=seq))
    return data + b"\xff" * (SECTOR_SIZE - len(data))


TIMES = st.integers(0, 1 << 31)
sector_records = st.lists(
    st.one_of(
        st.builds(SampleRecord, seq=st.just(0), timestamp=TIMES, snapshot=snapshots()),
        st.builds(EventRecord, seq=st.just(0), timestamp=TIMES, kind=st.just(EventKind.START)),
    ),
    max_size=(SECTOR_SIZE - SECTOR_HEADER_SIZE) // 68,
)


@given(sector_records, st.integers(0, 1_000_000))
def test_a_sector_holds_its_records_up_to_the_erased_flash(records: list[Record], base_seq: int) -> None:
    data = sector(records, base_seq)
    scan = scan_sector(bytes(data), base_seq, ERASED_SEQ)
    assert [row[0] for row in scan.rows] == list(range(base_seq, base_seq + len(records)))
    assert b"".join(map(row_bytes, scan.rows)) == bytes(data[SECTOR_HEADER_SIZE : scan.offsets[-1]])
    assert [data[a:b] for a, b in pairwise(scan.offsets)] == list(map(row_bytes, scan.rows))
    assert scan.discarded == 0


@given(sector_records.filter(lambda records: len(records) >= 2), st.data())
def test_the_first_record_that_fails_ends_the_data(records: list[Record], data: st.DataObject) -> None:
    raw = sector(records, 0)
    scan = scan_sector(bytes(raw), 0, ERASED_SEQ)
    torn = data.draw(st.integers(0, len(records) - 1))
    start, end = scan.offsets[torn], scan.offsets[torn + 1]
    raw[data.draw(st.integers(start + 10, end - 1))] ^= 0x01  # in its body or CRC: seq, length intact
    damaged = scan_sector(bytes(raw), 0, ERASED_SEQ)
    assert [row[0] for row in damaged.rows] == list(range(torn))
    assert damaged.offsets == scan.offsets[: torn + 1]
    assert damaged.discarded == len(records) - torn


@given(sector_records.filter(bool), st.data())
def test_a_sector_stops_at_the_newer_sectors_base_seq_or_an_unexpected_seq(
    records: list[Record], data: st.DataObject
) -> None:
    raw = bytes(sector(records, 40))
    stop = data.draw(st.integers(40, 40 + len(records)))
    assert len(scan_sector(raw, 40, stop).rows) == stop - 40
    assert scan_sector(raw, 41, ERASED_SEQ).rows == []


def test_a_record_running_past_the_sector_is_not_delimited() -> None:
    raw = sector([EventRecord(0, 1, EventKind.START)] * 3, 0)
    scan = scan_sector(bytes(raw[: scan_sector(bytes(raw), 0, ERASED_SEQ).offsets[-1] - 1]), 0, ERASED_SEQ)
    assert (len(scan.rows), scan.discarded) == (2, 0)


@given(snapshots(), snapshots())
def test_the_counters_are_the_newest_snapshots_in_the_head_else_its_headers(
    first: Snapshot, last: Snapshot
) -> None:
    head = header(1, 0, c=LifetimeCounters(1, 2, 3, 4))
    rows = scan_sector(bytes(sector([SampleRecord(0, 0, first), SampleRecord(0, 1, last),
                                     EventRecord(0, 2, EventKind.START)], 0)), 0, ERASED_SEQ).rows
    assert log_counters(head, rows) == LifetimeCounters.from_snapshot(last)
    assert log_counters(head, rows[2:]) == LifetimeCounters(1, 2, 3, 4)


@pytest.mark.parametrize(("size", "count", "problem"), [
    (SECTOR_HEADER_SIZE + MAX_RECORD_SIZE, 2, ""),
    (SECTOR_HEADER_SIZE + MAX_RECORD_SIZE - 1, 2, "largest record"),
    (4096, 1, "at least 2 sectors"),
])
def test_a_log_needs_two_sectors_holding_the_largest_record(size: int, count: int, problem: str) -> None:
    found = log_geometry_problem(size, count)
    assert (found or "").find(problem) >= 0 if problem else found is None


def test_capacity_is_every_sector_but_one_full_of_samples() -> None:
    assert capacity_records(4096, 16) == 15 * ((4096 - 48) // 70)  # a sample is 70 bytes
