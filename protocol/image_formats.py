"""The flash image formats, declared once with construct: the image file's header and erase
counters (the chip), and the header of a log sector (the log).

``docs/flash-image.md`` specifies them for readers; this module is their single definition.
:mod:`firmware_sim.flash` and :mod:`firmware_sim.logstore` write them and
:mod:`host.flash_image` reads them, all through the ``struct`` layouts derived here by
:func:`protocol.fastpath.flatten` and the functions below, so a change of the layout is made
here and nowhere else.  Records inside a sector are those of :mod:`protocol.formats`.

Each header ends its checked fields with their CRC-32C (``*_SEALED`` is the part the CRC
covers).  The chip header is verified here (:func:`decode_image_header` raises
:class:`~protocol.errors.ImageError`); what a log needs of the geometry, the file's size and
the log itself are the callers' business.  Pure: bytes in, values out; nothing here opens a file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from construct import Bytes, Int16ul, Int32ul, Int64ul, Struct

from .counters import LifetimeCounters
from .crc import crc32c
from .errors import ImageError, LocalProtocolError
from .fastpath import FlatLayout, flatten
from .formats import LOG_ID_LEN

# --- the chip: the image file -------------------------------------------------

IMAGE_MAGIC = b"TLNORIMG"
IMAGE_VERSION = 2
"""2: log sectors carry the log's id (sector magic "TLG2"); version 1 logs had none."""
IMAGE_PAGE = 4096
"""``data_offset`` is the end of the erase counters rounded up to a multiple of this."""
MIN_SECTOR_SIZE = 16
MAX_FLASH_SIZE = 1 << 32
"""Flash addresses are 32-bit: a chip is at most 4 GiB."""

IMAGE_HEADER_SEALED = Struct(
    "magic" / Bytes(len(IMAGE_MAGIC)),
    "version" / Int16ul,
    "reserved1" / Int16ul,
    "sector_size" / Int32ul,
    "sector_count" / Int32ul,
    "data_offset" / Int32ul,
)
"""The fields of the image header that its CRC-32C covers."""

IMAGE_HEADER = Struct(
    *IMAGE_HEADER_SEALED.subcons,
    "crc" / Int32ul,
    "reserved2" / Int32ul,
)
"""The image file's header, at offset 0; the erase counters follow it."""

ERASE_COUNTER = Int32ul
"""Erase cycles of one sector; one per sector, in sector order, right after the header.
Not covered by any CRC (they change with every erase)."""

IMAGE_HEADER_SIZE: int = IMAGE_HEADER.sizeof()

# --- the log: a sector's header -----------------------------------------------

SECTOR_MAGIC = b"TLG2"

SECTOR_HEADER_SEALED = Struct(
    "magic" / Bytes(len(SECTOR_MAGIC)),
    "generation" / Int32ul,
    "base_seq" / Int32ul,
    "first_seq" / Int32ul,
    "operating_s" / Int32ul,
    "starts" / Int32ul,
    "trips" / Int32ul,
    "energy_wh" / Int64ul,
    "log_id" / Bytes(LOG_ID_LEN),
)
"""The fields of a sector header that its CRC-32C covers."""

SECTOR_HEADER = Struct(
    *SECTOR_HEADER_SEALED.subcons,
    "crc" / Int32ul,
)
"""The header at the start of every log sector in use; records follow it."""

SECTOR_HEADER_SIZE: int = SECTOR_HEADER.sizeof()

# --- derived layouts ----------------------------------------------------------

_IMAGE_SEALED = flatten(IMAGE_HEADER_SEALED)
_IMAGE = flatten(IMAGE_HEADER)
_SECTOR_SEALED = flatten(SECTOR_HEADER_SEALED)
_SECTOR = flatten(SECTOR_HEADER)
ERASE_COUNTER_LAYOUT = flatten(ERASE_COUNTER)


@dataclass(frozen=True, slots=True)
class ImageHeader:
    """A verified image header: the chip's geometry and where its flash starts in the file."""

    sector_size: int
    sector_count: int
    data_offset: int

    @property
    def image_size(self) -> int:
        """The size of the whole file this header describes."""
        return self.data_offset + self.sector_size * self.sector_count


@dataclass(frozen=True, slots=True)
class SectorHeader:
    """A sector header's fields, magic and CRC aside (the unit's counters as a sample has them)."""

    generation: int
    base_seq: int
    first_seq: int
    operating_s: int
    starts: int
    trips: int
    energy_wh: int
    log_id: bytes
    """The identity of the log the sector belongs to (IDENTIFY_RSP ``log_id``)."""

    @property
    def counters(self) -> LifetimeCounters:
        """The unit's lifetime counters when the sector was opened."""
        return LifetimeCounters(self.operating_s, self.starts, self.trips, self.energy_wh)


_SECTOR_FIELDS = tuple(field.name for field in fields(SectorHeader))


def erase_counter_offset(sector: int) -> int:
    """File offset of the erase counter of *sector* (of the first byte after the
    counters, for *sector* = sector_count)."""
    return IMAGE_HEADER_SIZE + ERASE_COUNTER_LAYOUT.size * sector


def data_offset(sector_count: int) -> int:
    """File offset of sector 0 in an image of *sector_count* sectors."""
    return -(-erase_counter_offset(sector_count) // IMAGE_PAGE) * IMAGE_PAGE


def _geometry_problem(sector_size: int, sector_count: int) -> str | None:
    if sector_size < MIN_SECTOR_SIZE or sector_count < 1:
        return (f"need sector_size >= {MIN_SECTOR_SIZE} and sector_count >= 1, "
                f"got {sector_size} x {sector_count}")
    if sector_size * sector_count > MAX_FLASH_SIZE:
        return f"{sector_size} x {sector_count} bytes is over the 4 GiB address space"
    return None


def _pack(layout: FlatLayout, values: dict[str, object]) -> bytes:
    return layout.struct.pack(*(values[name] for name in layout.names))


def _seal(sealed: FlatLayout, whole: FlatLayout, values: dict[str, object]) -> bytes:
    """The header of *values*, its CRC-32C computed over the bytes of *sealed*."""
    return _pack(whole, {**values, "crc": crc32c(_pack(sealed, values))})


def encode_image_header(sector_size: int, sector_count: int) -> bytes:
    """The image header of a chip of this geometry (the erase counters and padding follow it).

    Raises :class:`LocalProtocolError` for a geometry no image can have."""
    problem = _geometry_problem(sector_size, sector_count)
    if problem is not None:
        raise LocalProtocolError(problem)
    return _seal(_IMAGE_SEALED, _IMAGE, {
        "magic": IMAGE_MAGIC, "version": IMAGE_VERSION, "reserved1": 0, "sector_size": sector_size,
        "sector_count": sector_count, "data_offset": data_offset(sector_count), "reserved2": 0,
    })


def decode_image_header(raw: bytes) -> ImageHeader:
    """The header at the start of *raw* (at least its first IMAGE_HEADER_SIZE bytes).

    Raises :class:`ImageError` for bytes that are not an image header (magic), a header whose
    CRC-32C fails, of another version, of an impossible geometry, or whose data offset is
    not the one its geometry implies.  The file's size is the caller's to check
    (:attr:`ImageHeader.image_size`).
    """
    if len(raw) < IMAGE_HEADER_SIZE or not raw.startswith(IMAGE_MAGIC):
        raise ImageError("not a turbolog flash image")
    values = dict(zip(_IMAGE.names, _IMAGE.struct.unpack_from(raw), strict=True))
    if crc32c(raw[: _IMAGE_SEALED.size]) != values["crc"]:
        raise ImageError("flash image header is corrupt (CRC-32C mismatch)")
    if values["version"] != IMAGE_VERSION:
        older = " (written before logs had an id)" if values["version"] < IMAGE_VERSION else ""
        raise ImageError(f"flash image format {values['version']}{older}, this build reads {IMAGE_VERSION}")
    header = ImageHeader(values["sector_size"], values["sector_count"], values["data_offset"])
    problem = _geometry_problem(header.sector_size, header.sector_count)
    if problem is not None:
        raise ImageError(f"flash image geometry: {problem}")
    if header.data_offset != data_offset(header.sector_count):
        raise ImageError(f"flash image header is corrupt (data offset {header.data_offset})")
    return header


def encode_sector_header(header: SectorHeader) -> bytes:
    """The bytes of a valid sector header (SECTOR_HEADER_SIZE of them)."""
    return _seal(_SECTOR_SEALED, _SECTOR, {"magic": SECTOR_MAGIC, **asdict(header)})


def decode_sector_header(raw: bytes) -> SectorHeader | None:
    """The header at the start of *raw* if it is valid (magic and CRC-32C), else None:
    an unused sector (0xFF), an evicted one (zeros), or a header torn by a power cut."""
    if len(raw) < SECTOR_HEADER_SIZE or not raw.startswith(SECTOR_MAGIC):
        return None
    values = dict(zip(_SECTOR.names, _SECTOR.struct.unpack_from(raw), strict=True))
    if crc32c(raw[: _SECTOR_SEALED.size]) != values["crc"]:
        return None
    return SectorHeader(*(values[name] for name in _SECTOR_FIELDS))
