"""A reader of turbolog flash images and their identity sidecars, as ``docs/flash-image.md`` specifies them.

:func:`parse_image` checks the chip's header and finds the log as the
controller does at power-up, through the same functions
(:mod:`protocol.flash_log`: the head sector, the ring behind it, the valid
records of each sector, ``first_seq``, ``next_seq`` and the counters);
:meth:`FlashImage.sectors` then yields every record the log holds, a sector
at a time, as rows of :func:`protocol.records.decode_rows` (the form
:meth:`host.archive.Archive.store_decoded` takes).  Each sector's records are
delimited by their seqs and lengths, then verified (CRC-32C) and decoded by
decode_rows, the decoder of a pull, once; a record counts only as the
controller would count it (docs/flash-image.md section 3), so an image
yields exactly the records the unit would serve over its port.
:func:`parse_identity` reads the sidecar that names the unit.

The image header, erase counters and sector headers are read through
:mod:`protocol.image_formats`, their single definition (shared with the
emulator that writes them), and the sidecar through :mod:`protocol.sidecar`.

Pure: it parses bytes it is given (a ``bytes`` object or a memory map), opens
no file and writes nothing.  It must never import :mod:`firmware_sim`: the
document and :mod:`protocol` are the contract.  An image or sidecar that is
foreign, corrupt or of another schema raises :class:`~host.errors.DeviceError`
(the unit's data is at fault, as with a device that speaks something else).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from protocol.counters import LifetimeCounters
from protocol.errors import ImageError
from protocol.flash_log import (
    RingSector,
    capacity_records,
    find_ring,
    first_seq,
    log_counters,
    log_geometry_problem,
    ring_stops,
    scan_sector,
)
from protocol.image_formats import (
    ERASE_COUNTER_LAYOUT,
    IMAGE_HEADER_SIZE,
    SECTOR_HEADER_SIZE,
    decode_image_header,
    decode_sector_header,
    erase_counter_offset,
)
from protocol.records import DecodedRow, record_crc, row_bytes
from protocol.sidecar import UnitIdentity, decode_identity

from .errors import DeviceError


@dataclass(frozen=True, slots=True)
class SectorRecords:
    """The records one sector of the log holds."""

    sector: RingSector
    records: list[DecodedRow]
    """Valid records at or above the log's first_seq, in seq order, as
    :func:`protocol.records.decode_rows` gives them (:func:`protocol.records.row_bytes`
    rebuilds a record's bytes)."""
    discarded: int
    """Records that failed verification where the log expected one (torn by a power cut)."""


def parse_identity(text: str, image_name: str) -> UnitIdentity:
    """The identity in sidecar *text*, for the image file called *image_name*
    (:func:`protocol.sidecar.decode_identity`).

    Raises DeviceError for text that is not a version-1 identity, names
    another image, or has a schema fingerprint whose logs this reader cannot read (its own and
    :data:`~protocol.messages.EARLIER_FINGERPRINTS`).
    """
    try:
        return decode_identity(text, image_name)
    except ImageError as exc:
        raise DeviceError(str(exc)) from exc


class FlashImage:
    """The log in one flash image; build it with :func:`parse_image`."""

    def __init__(self, data: Any, name: str) -> None:
        self._data = data
        self.name = name
        try:
            header = decode_image_header(bytes(data[:IMAGE_HEADER_SIZE]))
        except ImageError as exc:
            raise DeviceError(f"{name}: {exc}") from exc
        sector_size, sector_count = header.sector_size, header.sector_count
        if log_geometry_problem(sector_size, sector_count) is not None:
            raise DeviceError(f"{name}: {sector_count} sectors of {sector_size} bytes cannot hold a log")
        expected = header.image_size
        if len(data) != expected:
            raise DeviceError(f"{name}: flash image is {len(data)} bytes, its header says {expected}")
        self.sector_size: int = sector_size
        self.sector_count: int = sector_count
        counters = data[erase_counter_offset(0) : erase_counter_offset(sector_count)]
        self.erase_counts: tuple[int, ...] = tuple(
            count for (count,) in ERASE_COUNTER_LAYOUT.struct.iter_unpack(counters)
        )
        self._base = header.data_offset
        self.ring: tuple[RingSector, ...] = find_ring([
            decode_sector_header(bytes(self._data[start : start + SECTOR_HEADER_SIZE]))
            for start in range(self._base, self._base + sector_count * sector_size, sector_size)
        ])
        """Sectors of the log, oldest first; the last one is the head."""
        self.first_seq = first_seq(self.ring)
        self.next_seq = 0
        self.counters = LifetimeCounters()
        self.last_timestamp = 0
        """Timestamp of the newest record held (0 if none): an image has no clock."""
        self.log_id: bytes | None = self.ring[-1].header.log_id if self.ring else None
        """The log's id (the head sector's), None when no sector is in use."""
        self._head_scan: tuple[list[DecodedRow], int] = ([], 0)
        """The head sector's rows and discarded count (read once, for the bounds and for sectors())."""
        if self.ring:
            self._read_head()

    @property
    def capacity_records(self) -> int:
        """Samples the log is sure to hold, as IDENTIFY reports it."""
        return capacity_records(self.sector_size, self.sector_count)

    def _read_head(self) -> None:
        head = self.ring[-1]
        self._head_scan = self._scan(head, ring_stops(self.ring)[-1])
        records = self._head_scan[0]
        self.next_seq = head.header.base_seq + len(records)
        self.counters = log_counters(head.header, records)
        for sector, stop in reversed(list(self._ring_bounds())):
            newest = self._scan(sector, stop)[0] if sector is not head else records
            if newest:
                if newest[-1][0] >= self.first_seq:
                    self.last_timestamp = newest[-1][1]
                break

    def _ring_bounds(self) -> Iterator[tuple[RingSector, int]]:
        """Each sector of the ring with the seq its records stop before."""
        return zip(self.ring, ring_stops(self.ring), strict=True)

    def _scan(self, sector: RingSector, stop_seq: int) -> tuple[list[DecodedRow], int]:
        """The valid records of *sector* below *stop_seq*, and how many failed verification."""
        start = self._base + sector.index * self.sector_size
        data = bytes(self._data[start : start + self.sector_size])
        scan = scan_sector(data, sector.header.base_seq, stop_seq)
        return scan.rows, scan.discarded

    def record_crc(self, seq: int) -> int | None:
        """The CRC-32C of record *seq* as the log holds it, or None when it does not hold it."""
        if not self.first_seq <= seq < self.next_seq:
            return None
        for sector, stop in self._ring_bounds():
            if sector.header.base_seq <= seq < stop:
                records = self._head_scan[0] if sector is self.ring[-1] else self._scan(sector, stop)[0]
                index = seq - sector.header.base_seq
                if index < len(records) and records[index][0] == seq:
                    return record_crc(row_bytes(records[index]))
        return None

    def sectors(self) -> Iterator[SectorRecords]:
        """Every sector of the ring that may hold records at or above first_seq, oldest
        first, with the records it holds (seq order) and how many failed verification in it."""
        for sector, stop in self._ring_bounds():
            if stop <= self.first_seq:
                continue
            records, discarded = self._head_scan if sector is self.ring[-1] else self._scan(sector, stop)
            if records and records[0][0] < self.first_seq:
                records = records[self.first_seq - records[0][0] :]
            yield SectorRecords(sector, records, discarded)


def parse_image(data: Any, name: str = "flash image") -> FlashImage:
    """The log in the image *data* (bytes, or a read-only memory map of the file).

    *name* is used in messages.  Raises DeviceError for an image that is not
    a version-2 turbolog flash image or whose header is corrupt; damaged
    records inside the log are not an error (the controller would drop them
    too): :meth:`FlashImage.sectors` counts them.
    """
    return FlashImage(data, name)
