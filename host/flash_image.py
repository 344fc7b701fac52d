"""A reader of turbolog flash images and their identity sidecars, as ``docs/flash-image.md`` specifies them.

:func:`parse_image` checks the chip's header and finds the log as the
controller does at power-up (the head sector, the ring behind it, the valid
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
emulator that writes them); how the log is found from them is implemented
here from the document.

Pure: it parses bytes it is given (a ``bytes`` object or a memory map), opens
no file and writes nothing.  It must never import :mod:`firmware_sim`: the
document and :mod:`protocol` are the contract.  An image or sidecar that is
foreign, corrupt or of another schema raises :class:`~host.errors.DeviceError`
(the unit's data is at fault, as with a device that speaks something else).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from protocol.enums import RecordType
from protocol.errors import ImageError
from protocol.formats import MAX_RECORD_BODY, RECORD_OVERHEAD
from protocol.image_formats import (
    ERASE_COUNTER_LAYOUT,
    IMAGE_HEADER_SIZE,
    SECTOR_HEADER_SIZE,
    decode_image_header,
    decode_sector_header,
    erase_counter_offset,
)
from protocol.messages import SCHEMA_FINGERPRINT
from protocol.records import LAYOUTS, DecodedRow, decode_rows, row_bytes

from .errors import DeviceError

IDENTITY_FORMAT = "turbolog-unit-identity"
IDENTITY_VERSION = 1

_MAX_RECORD = RECORD_OVERHEAD + MAX_RECORD_BODY
_SAMPLE_SIZE = LAYOUTS[RecordType.SAMPLE].size
_ERASED_SEQ = 0xFFFFFFFF
_SEQ = struct.Struct("<I")
_IDENTITY_SIZES = {"serial": 16, "model": 8, "firmware": 16}

_COUNTER_FIELDS = ("operating_s", "starts", "trips", "energy_wh")
_COUNTER_INDEX: dict[int, tuple[int, ...]] = {
    rtype: tuple(LAYOUTS[rtype].names.index(prefix + name) for name in _COUNTER_FIELDS)
    for rtype, prefix in ((RecordType.SAMPLE, ""), (RecordType.FAULT, "freeze."))
}
"""Where the lifetime counters sit in the decoded row of a sample and of a fault."""


@dataclass(frozen=True, slots=True)
class UnitIdentity:
    """Who the unit is, from its identity sidecar."""

    serial: str
    model: str
    firmware: str
    schema_fingerprint: int
    site: str | None = None
    duty: str | None = None
    commissioned: int | None = None
    """Unix s: the unit's age 0 (its counters start there)."""
    shipped: int | None = None
    """Unix s."""


_PROFILE_KEYS = ("site", "duty", "commissioned", "shipped")


def _profile(doc: dict[str, Any], image_name: str) -> dict[str, Any]:
    """The optional ``site``, ``duty``, ``commissioned`` and ``shipped`` of a sidecar: its own
    keys, else those of its ``simulated`` object; dates as ISO-8601 (UTC unless zoned)."""
    simulated = doc.get("simulated")
    found: dict[str, Any] = {}
    for key in _PROFILE_KEYS:
        value = doc.get(key, simulated.get(key) if isinstance(simulated, dict) else None)
        if value is None:
            continue
        if not isinstance(value, str) or not value.isascii() or not 0 < len(value) <= 40:
            raise DeviceError(f"identity of {image_name}: {key} must be 1 to 40 ASCII characters")
        if key in ("commissioned", "shipped"):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise DeviceError(f"identity of {image_name}: {key} {value!r} is not an ISO date") from None
            found[key] = int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
        else:
            found[key] = value
    return found


@dataclass(frozen=True, slots=True)
class LogCounters:
    """The unit's lifetime counters, in wire units."""

    operating_s: int
    starts: int
    trips: int
    energy_wh: int


@dataclass(frozen=True, slots=True)
class SectorHeader:
    """A valid sector header, and where it was found."""

    index: int
    generation: int
    base_seq: int
    first_seq: int
    counters: LogCounters
    log_id: bytes


@dataclass(frozen=True, slots=True)
class SectorRecords:
    """The records one sector of the log holds."""

    header: SectorHeader
    records: list[DecodedRow]
    """Valid records at or above the log's first_seq, in seq order, as
    :func:`protocol.records.decode_rows` gives them (:func:`protocol.records.row_bytes`
    rebuilds a record's bytes)."""
    discarded: int
    """Records that failed verification where the log expected one (torn by a power cut)."""


def parse_identity(text: str, image_name: str) -> UnitIdentity:
    """The identity in sidecar *text*, for the image file called *image_name*.

    Raises DeviceError for text that is not a version-1 identity, names
    another image, or has another schema fingerprint than this reader's.
    """
    try:
        doc: Any = json.loads(text)
    except ValueError as exc:
        raise DeviceError(f"identity of {image_name} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != IDENTITY_FORMAT:
        raise DeviceError(f"identity of {image_name} is not a {IDENTITY_FORMAT} document")
    if doc.get("version") != IDENTITY_VERSION:
        raise DeviceError(
            f"identity of {image_name} is version {doc.get('version')!r}; "
            f"this reader knows {IDENTITY_VERSION}"
        )
    for key, size in _IDENTITY_SIZES.items():
        value = doc.get(key)
        if not isinstance(value, str) or not value.isascii() or not 0 < len(value) <= size:
            raise DeviceError(f"identity of {image_name}: {key} must be 1 to {size} ASCII characters")
    fingerprint = doc.get("schema_fingerprint")
    if not isinstance(fingerprint, int):
        raise DeviceError(f"identity of {image_name}: schema_fingerprint must be an integer")
    if doc.get("image") != image_name:
        raise DeviceError(
            f"identity of {image_name} names unit {doc['serial']!r} and image {doc.get('image')!r}"
        )
    if fingerprint != SCHEMA_FINGERPRINT:
        raise DeviceError(
            f"unit {doc['serial']} (firmware {doc['firmware']}) wrote its log with schema fingerprint "
            f"0x{fingerprint:08X}, this reader knows 0x{SCHEMA_FINGERPRINT:08X}: the formats differ, "
            "so its log cannot be read safely"
        )
    profile = _profile(doc, image_name)
    return UnitIdentity(doc["serial"], doc["model"], doc["firmware"], fingerprint, **profile)


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
        if sector_count < 2 or sector_size < SECTOR_HEADER_SIZE + _MAX_RECORD:
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
        self.ring = self._find_ring()
        """Sectors of the log, oldest first; the last one is the head."""
        self.first_seq = 0
        self.next_seq = 0
        self.counters = LogCounters(0, 0, 0, 0)
        self.last_timestamp = 0
        """Timestamp of the newest record held (0 if none): an image has no clock."""
        self.log_id: bytes | None = self.ring[-1].log_id if self.ring else None
        """The log's id (the head sector's), None when no sector is in use."""
        self._head_scan: tuple[list[DecodedRow], int] = ([], 0)
        """The head sector's rows and discarded count (read once, for the bounds and for sectors())."""
        if self.ring:
            self._read_head()

    @property
    def capacity_records(self) -> int:
        """Samples the log is sure to hold, as IDENTIFY reports it."""
        return (self.sector_count - 1) * ((self.sector_size - SECTOR_HEADER_SIZE) // _SAMPLE_SIZE)

    def _sector(self, index: int) -> bytes:
        start = self._base + index * self.sector_size
        return bytes(self._data[start : start + self.sector_size])

    def _header(self, index: int) -> SectorHeader | None:
        start = self._base + index * self.sector_size
        found = decode_sector_header(bytes(self._data[start : start + SECTOR_HEADER_SIZE]))
        if found is None:
            return None
        counters = LogCounters(found.operating_s, found.starts, found.trips, found.energy_wh)
        return SectorHeader(index, found.generation, found.base_seq, found.first_seq, counters, found.log_id)

    def _find_ring(self) -> tuple[SectorHeader, ...]:
        headers = [self._header(index) for index in range(self.sector_count)]
        valid = [header for header in headers if header is not None]
        if not valid:
            return ()
        head = max(valid, key=lambda header: header.generation)
        ring = [head]
        for back in range(1, self.sector_count):
            older = headers[(head.index - back) % self.sector_count]
            if older is None or older.generation != head.generation - back:
                break
            if older.base_seq > ring[-1].base_seq:
                break
            ring.append(older)
        ring.reverse()
        return tuple(ring)

    def _read_head(self) -> None:
        head = self.ring[-1]
        self.first_seq = max(head.first_seq, self.ring[0].base_seq)
        self._head_scan = self._scan(head, _ERASED_SEQ)
        records = self._head_scan[0]
        self.next_seq = head.base_seq + len(records)
        self.counters = head.counters
        for row in reversed(records):
            where = _COUNTER_INDEX.get(row[2])
            if where is not None and len(row) == len(LAYOUTS[row[2]].names):
                self.counters = LogCounters(*(row[i] for i in where))
                break
        for sector, stop in reversed(list(self._ring_bounds())):
            newest = self._scan(sector, stop)[0] if sector is not head else records
            if newest:
                if newest[-1][0] >= self.first_seq:
                    self.last_timestamp = newest[-1][1]
                break

    def _ring_bounds(self) -> Iterator[tuple[SectorHeader, int]]:
        """Each sector of the ring with the seq its records stop before."""
        stops = [sector.base_seq for sector in self.ring[1:]] + [_ERASED_SEQ] * bool(self.ring)
        return zip(self.ring, stops, strict=True)

    def _scan(self, sector: SectorHeader, stop_seq: int) -> tuple[list[DecodedRow], int]:
        """The valid records of *sector* below *stop_seq*, and how many failed verification."""
        data = self._sector(sector.index)
        size = self.sector_size
        unpack_seq = _SEQ.unpack_from
        pos, seq = SECTOR_HEADER_SIZE, sector.base_seq
        while seq < stop_seq and pos + RECORD_OVERHEAD <= size:
            end = pos + RECORD_OVERHEAD + data[pos + 9]
            if unpack_seq(data, pos)[0] != seq or end > size:
                break
            pos, seq = end, seq + 1
        rows, errors = decode_rows(data[SECTOR_HEADER_SIZE:pos])
        if errors:  # the sector's data ends at the first record that failed
            base = sector.base_seq
            rows = rows[: next((i for i, row in enumerate(rows) if row[0] != base + i), len(rows))]
        return rows, seq - sector.base_seq - len(rows)

    def record_crc(self, seq: int) -> int | None:
        """The CRC-32C of record *seq* as the log holds it, or None when it does not hold it."""
        if not self.first_seq <= seq < self.next_seq:
            return None
        for sector, stop in self._ring_bounds():
            if sector.base_seq <= seq < stop:
                records = self._head_scan[0] if sector is self.ring[-1] else self._scan(sector, stop)[0]
                index = seq - sector.base_seq
                if index < len(records) and records[index][0] == seq:
                    return int.from_bytes(row_bytes(records[index])[-4:], "little")
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
    a version-1 turbolog flash image or whose header is corrupt; damaged
    records inside the log are not an error (the controller would drop them
    too): :meth:`FlashImage.sectors` counts them.
    """
    return FlashImage(data, name)
