"""The controller's record log: a power-loss-safe ring of sectors on a NOR flash.

:class:`LogStore` appends protocol records (stored byte for byte as
:func:`protocol.records.encode_record` makes them, so their own CRC-32C
covers them from flash to the reader's archive), reads them back by seq, and
clears the log.  At power-up it rebuilds everything from the flash alone.
It never decodes records on the append path, never reads a clock, and knows
nothing of the wire beyond the record bytes.

On-flash layout
---------------

Sectors form a ring.  Every sector in use starts with a header (magic "TLG2",
generation, base_seq, first_seq, the unit's lifetime counters when the sector
was opened, the log id, CRC-32C), defined once in :mod:`protocol.image_formats` and
specified in ``docs/flash-image.md`` section 2; records follow back to back,
and the unused rest reads 0xFF::

    sector:  | header (48) | record | record | ... | record | FF FF ... FF |

- ``generation`` is +1 for every sector opened, never reused: the sector
  index is always generation % sector_count.  ``base_seq`` is the seq of the
  sector's first record (next_seq when opened); ``first_seq`` the first
  available seq of the whole log when the sector was opened.
- A sector's records have consecutive seqs from ``base_seq``; the log's
  seqs are consecutive across sectors, oldest sector to newest.
- A slot whose seq field reads 0xFFFFFFFF is erased: the sector's data ends there.
- Opening a sector (when the head is full, after a torn record, or for a
  clear): if the ring is full, the oldest sector is evicted first: zeros are
  programmed over its header (so a cut during the erase cannot leave a sector
  that looks valid with half its records), and ``first_seq`` moves to the
  next sector's ``base_seq``.  Then the sector is erased unless it already
  reads all 0xFF, then its header is programmed.  Sectors are always opened
  in ring order, so wear is even.
- The log id (8 bytes, IDENTIFY_RSP's ``log_id``) is made by ``new_log_id``
  when the first sector of a log is opened and for every clear; every other
  sector copies the head's.  So the log id changes exactly when the log does,
  in the same header program.
- ``clear()`` opens a new sector whose header says ``first_seq = next_seq``
  and carries a new log id: one header program makes the clear durable, and
  seqs carry on.  The
  sectors before it stay in the ring, unreadable, until the ring reaches them.
- A record is acknowledged (``append`` returns its seq) once its program
  returned.  A power cut loses at most the record in flight.

Recovery (``LogStore(flash)``) finds the log as ``docs/flash-image.md`` section 3
specifies, through :mod:`protocol.flash_log` (the reader of an image does the
same): read every sector header; the head is the valid header with the highest
generation; the ring is the run of valid headers walking back from it with
generations and sector indexes both decreasing by one (and base_seq not
increasing).  Each sector's records are verified (the expected seq, CRC-32C)
up to the first erased slot or the first record that fails: that one was torn,
and ends the sector's data.  Then::

    first_seq = max(head.first_seq, oldest sector's base_seq)
    next_seq  = head.base_seq + the valid records in the head
    counters  = the snapshot counters of the last sample or fault record in the
                head sector, or else the head header's counters
    log_id    = the head header's

A head sector that ends in a torn record, or that has anything but 0xFF after
its last valid record, is closed: the next append opens a fresh sector, so no
record is ever programmed over a partial one.  Only records that verified
during recovery (or were programmed since) are indexed; ``read`` and
``iter_raw`` trust that index.  Recovery itself never writes to the flash.
"""

from __future__ import annotations

import hashlib
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from itertools import pairwise

from protocol.counters import LifetimeCounters
from protocol.flash_log import (
    ERASED_SEQ,
    RingSector,
    SectorScan,
    capacity_records,
    find_ring,
    first_seq,
    log_counters,
    log_geometry_problem,
    ring_stops,
    scan_sector,
)
from protocol.formats import LOG_ID_LEN
from protocol.image_formats import (
    SECTOR_HEADER_SIZE,
    SectorHeader,
    decode_sector_header,
    encode_sector_header,
)
from protocol.records import FaultRecord, Record, SampleRecord, Snapshot, encode_record

from .flash import FlashError, FlashGeometryError, NorFlash

_GAP = 0xFFFFFFFF
"""Index entry for a seq the flash does not hold (never a record's address)."""
_INVALID_HEADER = bytes(SECTOR_HEADER_SIZE)


class LogFullError(FlashError):
    """Every seq a record can carry has been used (2^32 - 1 records)."""


LogIdSource = Callable[[int, int], bytes]
"""Makes the id of a new log from the generation of its first sector and the seq it starts at."""


class seeded_log_ids:  # noqa: N801  (used as the function it was; an object so that it pickles)
    """Log ids drawn from *seed* (a unit's simulation seed and identity): the first
    LOG_ID_LEN bytes of SHA-256 over the seed, the generation and the seq the new log
    starts at.  Reproducible for one seed; different seeds give different ids, and
    every clear a new one (generations are never reused).  A :data:`LogIdSource`."""

    def __init__(self, *seed: object) -> None:
        self._prefix = repr(seed).encode()

    def __call__(self, generation: int, next_seq: int) -> bytes:
        return hashlib.sha256(b"%s/%d/%d" % (self._prefix, generation, next_seq)).digest()[:LOG_ID_LEN]


_UNSEEDED_LOG_IDS = seeded_log_ids()
"""The default: for a store whose log exists (reading it), or a test's."""


@dataclass(slots=True)
class _Sector:
    index: int
    header: SectorHeader
    count: int = 0
    """Valid records in the sector."""


class LogStore:
    """A circular log of protocol records on a :class:`NorFlash`.

    Implements :class:`firmware_sim.nvstate.LogSink`.  Constructing it is the
    power-up recovery scan.  *new_log_id* makes the id of a new or cleared log
    (pass the unit's :func:`seeded_log_ids`; the default suits a log that exists).
    """

    def __init__(self, flash: NorFlash, *, new_log_id: LogIdSource = _UNSEEDED_LOG_IDS) -> None:
        problem = log_geometry_problem(flash.sector_size, flash.sector_count)
        if problem is not None:
            raise FlashGeometryError(problem)
        self._flash = flash
        self._new_log_id = new_log_id
        self._unborn_log_id: bytes | None = None
        """The id an empty flash's log will get with its first sector (drawn when first asked)."""
        self._ring: deque[_Sector] = deque()
        """Sectors in use, oldest first; the last one is the head."""
        self._first_seq = 0
        self._next_seq = 0
        self._index_base = 0
        """Seq of ``_address[0]``."""
        self._address = array("I")
        """Flash address of every indexed record, by seq - _index_base (_GAP: not held)."""
        self._size = array("H")
        """Byte size of every indexed record, parallel to _address."""
        self._write_at = 0
        self._sector_end = 0
        """The head has room for records in [_write_at, _sector_end); both 0 before the first sector."""
        self._last_snapshot: Snapshot | None = None
        """Snapshot of the newest sample or fault record appended to the head sector, if any."""
        self._head_counters = LifetimeCounters()
        """The counters without such a snapshot: the head's when opened, or as recovered."""
        self._recover()

    # --- state ------------------------------------------------------------

    @property
    def first_seq(self) -> int:
        """The oldest seq still available (older ones were evicted or cleared)."""
        return self._first_seq

    @property
    def next_seq(self) -> int:
        """The seq the next append gets."""
        return self._next_seq

    @property
    def capacity_records(self) -> int:
        """Sample records the log is sure to hold: all sectors but the one
        being evicted, full of 68-byte samples."""
        return capacity_records(self._flash.sector_size, self._flash.sector_count)

    @property
    def log_id(self) -> bytes:
        """The log's identity; a new one after every :meth:`clear`."""
        if self._ring:
            return self._ring[-1].header.log_id
        if self._unborn_log_id is None:
            self._unborn_log_id = self._new_log_id(0, self._next_seq)
        return self._unborn_log_id

    @property
    def counters(self) -> LifetimeCounters:
        """Lifetime counters of the newest durable record that carries a snapshot."""
        if self._last_snapshot is not None:
            return LifetimeCounters.from_snapshot(self._last_snapshot)
        return self._head_counters

    # --- writing ----------------------------------------------------------

    def append(self, record: Record) -> int:
        """Give *record* the next seq, program it, and return the seq once it is durable."""
        seq = self._next_seq
        if seq == ERASED_SEQ:
            raise LogFullError("the log has used every seq")
        raw = encode_record(record if record.seq == seq else replace(record, seq=seq))
        size = len(raw)
        if self._write_at + size > self._sector_end:
            self._open_sector(self._first_seq)
        address = self._write_at
        self._flash.program(address, raw)
        self._address.append(address)
        self._size.append(size)
        self._write_at = address + size
        self._next_seq = seq + 1
        self._ring[-1].count += 1
        if isinstance(record, SampleRecord):
            self._last_snapshot = record.snapshot
        elif isinstance(record, FaultRecord):
            self._last_snapshot = record.freeze
        return seq

    def clear(self) -> int:
        """Make every record unavailable and give the log a new id; seqs carry on.  Returns the
        new first_seq (== next_seq)."""
        self._open_sector(self._next_seq, new_log=True)
        return self._first_seq

    def _open_sector(self, first_seq: int, *, new_log: bool = False) -> None:
        flash, ring = self._flash, self._ring
        counters = self.counters
        if ring:
            index = (ring[-1].index + 1) % flash.sector_count
            generation = ring[-1].header.generation + 1
            log_id = self._new_log_id(generation, self._next_seq) if new_log else ring[-1].header.log_id
        else:
            index = generation = 0
            log_id = self.log_id
        if len(ring) == flash.sector_count:
            flash.program(ring.popleft().index * flash.sector_size, _INVALID_HEADER)
            first_seq = max(first_seq, ring[0].header.base_seq)
        if not flash.is_erased(index):
            flash.erase(index)
        header = SectorHeader(
            generation, self._next_seq, first_seq, counters.operating_s, counters.starts, counters.trips,
            counters.energy_wh, log_id,
        )
        flash.program(index * flash.sector_size, encode_sector_header(header))
        ring.append(_Sector(index, header))
        self._set_first_seq(first_seq)
        self._last_snapshot = None
        self._head_counters = counters
        self._write_at = index * flash.sector_size + SECTOR_HEADER_SIZE
        self._sector_end = (index + 1) * flash.sector_size

    def _set_first_seq(self, first_seq: int) -> None:
        self._first_seq = first_seq
        dead = first_seq - self._index_base
        if dead >= 1024 and dead * 2 >= len(self._address):
            del self._address[:dead]
            del self._size[:dead]
            self._index_base = first_seq

    # --- reading ----------------------------------------------------------

    def read(self, seq: int) -> bytes | None:
        """The stored bytes of record *seq*, or None if the log does not hold it."""
        if not self._first_seq <= seq < self._next_seq:
            return None
        i = seq - self._index_base
        address = self._address[i]
        if address == _GAP:
            return None
        return self._flash.read(address, self._size[i])

    def iter_raw(self, start_seq: int, stop_seq: int) -> Iterator[bytes]:
        """The records held with seqs in [start_seq, stop_seq), in seq order.

        Lazy: a record evicted or cleared before the iteration reaches it is
        skipped, and one appended meanwhile (below *stop_seq*) is included.
        """
        seq = start_seq
        while True:
            seq = max(seq, self._first_seq)
            if seq >= min(stop_seq, self._next_seq):
                return
            i = seq - self._index_base
            address = self._address[i]
            if address != _GAP:
                yield self._flash.read(address, self._size[i])
            seq += 1

    # --- power-up ---------------------------------------------------------

    def _recover(self) -> None:
        flash = self._flash
        size = flash.sector_size
        ring = find_ring([decode_sector_header(flash.read(i * size, SECTOR_HEADER_SIZE))
                          for i in range(flash.sector_count)])
        if not ring:
            return
        self._first_seq = self._index_base = first_seq(ring)
        for sector, stop in zip(ring, ring_stops(ring), strict=True):
            scan = self._index_sector(sector, stop)
        head = self._ring[-1]
        self._next_seq = head.header.base_seq + head.count
        self._pad_index(self._next_seq)
        end = head.index * size + scan.offsets[-1]
        self._sector_end = (head.index + 1) * size
        clean = flash.read(end, self._sector_end - end) == b"\xff" * (self._sector_end - end)
        self._write_at = end if clean else self._sector_end
        self._head_counters = log_counters(head.header, scan.rows)

    def _index_sector(self, sector: RingSector, stop_seq: int) -> SectorScan:
        """Verify and index the sector's records below *stop_seq*, and add it to the ring."""
        start = sector.index * self._flash.sector_size
        scan = scan_sector(self._flash.read(start, self._flash.sector_size), sector.header.base_seq, stop_seq)
        self._pad_index(sector.header.base_seq)
        held = scan.offsets[max(self._index_base - sector.header.base_seq, 0) :]
        self._address.extend([start + offset for offset in held[:-1]])
        self._size.extend([end - offset for offset, end in pairwise(held)])
        self._ring.append(_Sector(sector.index, sector.header, len(scan.rows)))
        return scan

    def _pad_index(self, seq: int) -> None:
        """Mark the seqs from the end of the index up to *seq* as not held."""
        missing = seq - self._index_base - len(self._address)
        if missing > 0:
            self._address.extend([_GAP] * missing)
            self._size.extend([0] * missing)
