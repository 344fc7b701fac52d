"""A reader of turbolog flash images and their identity sidecars, as ``docs/flash-image.md`` specifies them.

:func:`parse_image` checks the chip's header and finds the log as the
controller does at power-up (the head sector, the ring behind it, the valid
records of each sector, ``first_seq``, ``next_seq`` and the counters);
:meth:`FlashImage.sectors` then yields every record the log holds, a sector
at a time, as ``(seq, timestamp, type, raw)`` tuples, the form
:meth:`host.archive.Archive.store_records` takes.  Each sector's records are
delimited by their seqs and lengths, then verified and decoded by
:func:`protocol.records.decode_batch`, the decoder of a pull; a record counts
only as the controller would count it (docs/flash-image.md section 3), so an
image yields exactly the records the unit would serve over its port.
:func:`parse_identity` reads the sidecar that names the unit.

Pure: it parses bytes it is given (a ``bytes`` object or a memory map), opens
no file and writes nothing.  It must never import :mod:`firmware_sim`: the
document is the contract.  An image or sidecar that is foreign, corrupt or of
another schema raises :class:`~host.errors.DeviceError` (the unit's data is
at fault, as with a device that speaks something else).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from protocol.crc import RESIDUE, crc32c
from protocol.enums import RecordType
from protocol.messages import SCHEMA_FINGERPRINT
from protocol.records import LAYOUTS, decode_batch

from .errors import DeviceError

IMAGE_MAGIC = b"TLNORIMG"
IMAGE_VERSION = 1
SECTOR_MAGIC = b"TLG1"
IDENTITY_FORMAT = "turbolog-unit-identity"
IDENTITY_VERSION = 1

_IMAGE_HEADER = struct.Struct("<8sHHIIII")
"""magic, version, reserved, sector_size, sector_count, data_offset, CRC-32C of the bytes before it."""
_COUNTERS_OFFSET = 32
_PAGE = 4096
_MAX_FLASH = 1 << 32
_SECTOR_HEADER = struct.Struct("<4sIIIIIIQI")
"""magic, generation, base_seq, first_seq, operating_s, starts, trips, energy_wh, CRC-32C."""
SECTOR_HEADER_SIZE = _SECTOR_HEADER.size
_RECORD_OVERHEAD = 14
_MAX_RECORD = _RECORD_OVERHEAD + 255
_SAMPLE_SIZE = LAYOUTS[RecordType.SAMPLE].size
_ERASED_SEQ = 0xFFFFFFFF
_SEQ = struct.Struct("<I")
_IDENTITY_SIZES = {"serial": 16, "model": 8, "firmware": 16}

ScannedRecord = tuple[int, int, int, bytes]
"""``(seq, timestamp, type, raw)``, as store_records takes it."""

_COUNTER_FIELDS = ("operating_s", "starts", "trips", "energy_wh")
_COUNTER_INDEX: dict[int, tuple[int, ...]] = {
    rtype: tuple(LAYOUTS[rtype].names.index(prefix + name) for name in _COUNTER_FIELDS)
    for rtype, prefix in ((RecordType.SAMPLE, ""), (RecordType.FAULT, "freeze."))
}
"""Where the lifetime counters sit in the decoded fields of a sample and of a fault."""


@dataclass(frozen=True, slots=True)
class UnitIdentity:
    """Who the unit is, from its identity sidecar."""

    serial: str
    model: str
    firmware: str
    schema_fingerprint: int


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


@dataclass(frozen=True, slots=True)
class SectorRecords:
    """The records one sector of the log holds."""

    header: SectorHeader
    records: list[ScannedRecord]
    """Valid records at or above the log's first_seq, in seq order."""
    discarded: int
    """Records that failed verification where the log expected one (torn by a power cut)."""


def parse_identity(text: str, image_name: str) -> UnitIdentity:
    """The identity in sidecar *text*, for the image file called *image_name*.

    Raises DeviceError for text that is not a version-1 identity, names
    another image, disagrees with the file name, or has another schema
    fingerprint than this reader's.
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
    if doc.get("image") != image_name or image_name != f"{doc['serial']}.img":
        raise DeviceError(
            f"identity of {image_name} names unit {doc['serial']!r} and image {doc.get('image')!r}"
        )
    if fingerprint != SCHEMA_FINGERPRINT:
        raise DeviceError(
            f"unit {doc['serial']} (firmware {doc['firmware']}) wrote its log with schema fingerprint "
            f"0x{fingerprint:08X}, this reader knows 0x{SCHEMA_FINGERPRINT:08X}: the formats differ, "
            "so its log cannot be read safely"
        )
    return UnitIdentity(doc["serial"], doc["model"], doc["firmware"], fingerprint)


class FlashImage:
    """The log in one flash image; build it with :func:`parse_image`."""

    def __init__(self, data: Any, name: str) -> None:
        self._data = data
        self.name = name
        head = bytes(data[:_COUNTERS_OFFSET])
        if len(head) < _COUNTERS_OFFSET or not head.startswith(IMAGE_MAGIC):
            raise DeviceError(f"{name}: not a turbolog flash image")
        _, version, _, sector_size, sector_count, data_offset, _ = _IMAGE_HEADER.unpack(head[:28])
        if crc32c(head[:28]) != RESIDUE:
            raise DeviceError(f"{name}: flash image header is corrupt (CRC-32C mismatch)")
        if version != IMAGE_VERSION:
            raise DeviceError(f"{name}: flash image format {version}, this reader knows {IMAGE_VERSION}")
        if sector_count < 2 or sector_size < SECTOR_HEADER_SIZE + _MAX_RECORD:
            raise DeviceError(f"{name}: {sector_count} sectors of {sector_size} bytes cannot hold a log")
        if sector_size * sector_count > _MAX_FLASH:
            raise DeviceError(f"{name}: {sector_size} x {sector_count} bytes is over 4 GiB")
        if data_offset != -(-(_COUNTERS_OFFSET + 4 * sector_count) // _PAGE) * _PAGE:
            raise DeviceError(f"{name}: flash image header is corrupt (data offset {data_offset})")
        expected = data_offset + sector_size * sector_count
        if len(data) != expected:
            raise DeviceError(f"{name}: flash image is {len(data)} bytes, its header says {expected}")
        self.sector_size: int = sector_size
        self.sector_count: int = sector_count
        self.erase_counts: tuple[int, ...] = struct.unpack_from(f"<{sector_count}I", data, _COUNTERS_OFFSET)
        self._base = data_offset
        self.ring = self._find_ring()
        """Sectors of the log, oldest first; the last one is the head."""
        self.first_seq = 0
        self.next_seq = 0
        self.counters = LogCounters(0, 0, 0, 0)
        self.last_timestamp = 0
        """Timestamp of the newest record held (0 if none): an image has no clock."""
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
        raw = bytes(self._data[start : start + SECTOR_HEADER_SIZE])
        if not raw.startswith(SECTOR_MAGIC) or crc32c(raw) != RESIDUE:
            return None
        _, generation, base_seq, first_seq, *counters, _ = _SECTOR_HEADER.unpack(raw)
        return SectorHeader(index, generation, base_seq, first_seq, LogCounters(*counters))

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
        records = self._scan(head, _ERASED_SEQ)[0]
        self.next_seq = head.base_seq + len(records)
        self.counters = head.counters
        for _seq, _timestamp, rtype, raw in reversed(records):
            where = _COUNTER_INDEX.get(rtype)
            if where is not None and len(raw) == LAYOUTS[rtype].size:
                values = LAYOUTS[rtype].struct.unpack(raw)
                self.counters = LogCounters(*(values[i] for i in where))
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

    def _scan(self, sector: SectorHeader, stop_seq: int) -> tuple[list[ScannedRecord], int]:
        """The valid records of *sector* below *stop_seq*, and how many failed verification."""
        data = self._sector(sector.index)
        size = self.sector_size
        unpack_seq = _SEQ.unpack_from
        pos, seq = SECTOR_HEADER_SIZE, sector.base_seq
        while seq < stop_seq and pos + _RECORD_OVERHEAD <= size:
            end = pos + _RECORD_OVERHEAD + data[pos + 9]
            if unpack_seq(data, pos)[0] != seq or end > size:
                break
            pos, seq = end, seq + 1
        good, _errors = decode_batch(data[SECTOR_HEADER_SIZE:pos])
        records: list[ScannedRecord] = []
        expected = sector.base_seq
        for raw, values in good:
            if values[0] != expected:
                break
            records.append((expected, values[1], values[2], raw))
            expected += 1
        return records, seq - expected

    def sectors(self) -> Iterator[SectorRecords]:
        """Every sector of the ring that may hold records at or above first_seq, oldest
        first, with the records it holds (seq order) and how many failed verification in it."""
        for sector, stop in self._ring_bounds():
            if stop <= self.first_seq:
                continue
            records, discarded = self._scan(sector, stop)
            if records and records[0][0] < self.first_seq:
                records = [record for record in records if record[0] >= self.first_seq]
            yield SectorRecords(sector, records, discarded)


def parse_image(data: Any, name: str = "flash image") -> FlashImage:
    """The log in the image *data* (bytes, or a read-only memory map of the file).

    *name* is used in messages.  Raises DeviceError for an image that is not
    a version-1 turbolog flash image or whose header is corrupt; damaged
    records inside the log are not an error (the controller would drop them
    too): :meth:`FlashImage.sectors` counts them.
    """
    return FlashImage(data, name)
