"""A simulated NOR flash chip, persisted in an image file, with power cuts on demand.

Semantics are those of real NOR flash, so that the log store above it is
tested against what a controller's chip would do:

- ``erase(sector)`` sets every byte of one sector to 0xFF and counts one more
  erase cycle for that sector (wear).
- ``program(address, data)`` can only clear bits: each byte becomes
  ``old & new``.  Programming a 1 over a 0 silently leaves the 0, as the chip
  does; nothing raises, so a caller that needs to know reads back.
- ``read(address, length)`` returns the bytes as they are.

Power cuts: ``on_operation``, when set, is called with a
:class:`FlashOperation` before every program and erase is applied.  A test
(or the emulator) that wants the power to fail there calls :meth:`NorFlash.tear`
to leave the operation half done and raises :class:`PowerCut`; if the hook
returns, the operation proceeds normally.  Unset, the hook costs one
attribute test per operation.

An image file keeps the chip between runs.  The whole file is one shared
memory mapping, so every program and erase is in the file (the page cache)
the moment it returns: a process killed at any instant leaves the flash
exactly as it was (``flush`` matters only if the machine itself goes down).
A chip made in memory, or by :meth:`NorFlash.copy`, has the same layout in an
anonymous mapping, and pickles as its contents (a unit can live in a worker process
and be served from another).  Its layout (a header, an erase counter per sector, zero
padding, then the flash contents from ``data_offset``) is defined once in
:mod:`protocol.image_formats` and specified in ``docs/flash-image.md``
section 1; this module only uses it.

A missing or empty file becomes a new, erased chip.  A file whose header does
not verify, or whose size disagrees with it, raises :class:`FlashImageError`;
nothing here ever "repairs" an image.  Addresses are 32-bit: a chip is at
most 4 GiB.  ``FlashError`` derives from ``firmware_sim.errors.SimulatorError``.

This module knows nothing about what is stored in the flash (that is
:mod:`firmware_sim.logstore`), reads no clock and uses no global randomness.
"""

from __future__ import annotations

import enum
import mmap
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from protocol.errors import ImageError, LocalProtocolError
from protocol.image_formats import (
    ERASE_COUNTER_LAYOUT,
    IMAGE_HEADER_SIZE,
    decode_image_header,
    encode_image_header,
    erase_counter_offset,
)
from protocol.image_formats import data_offset as image_data_offset

from .errors import SimulatorError

_COUNTER = ERASE_COUNTER_LAYOUT.struct


class FlashError(SimulatorError):
    """Root of the flash errors."""


class FlashGeometryError(FlashError, ValueError):
    """A sector size or count that this flash (or what is built on it) cannot use."""


class FlashAddressError(FlashError, IndexError):
    """An operation outside the chip."""


class FlashImageError(FlashError):
    """An image file that is foreign, corrupt, truncated or of another geometry."""


class PowerCut(FlashError):
    """The power failed during a flash operation (raised by fault-injection hooks).

    Nothing in firmware_sim catches it: like a real power cut, it ends
    whatever was running.  The flash object stays usable for what comes after
    power-up (a fresh log store on the same flash).
    """


class OpKind(enum.Enum):
    PROGRAM = "program"
    ERASE = "erase"


@dataclass(frozen=True, slots=True)
class FlashOperation:
    """One program or erase, as handed to ``NorFlash.on_operation`` before it is applied."""

    kind: OpKind
    address: int
    """First byte affected (the sector's first byte for an erase)."""
    data: bytes
    """The bytes to program; empty for an erase."""
    length: int
    """Bytes affected: ``len(data)``, or the sector size for an erase."""


OperationHook = Callable[[FlashOperation], None]


def _image_header(sector_size: int, sector_count: int) -> tuple[bytes, int]:
    """The image's header bytes (without counters) and its data offset."""
    try:
        head = encode_image_header(sector_size, sector_count)
    except LocalProtocolError as exc:
        raise FlashGeometryError(str(exc)) from exc
    return head, image_data_offset(sector_count)


class NorFlash:
    """A NOR flash of ``sector_count`` sectors of ``sector_size`` bytes.

    ``NorFlash(sector_size, sector_count)`` is an erased chip in memory;
    :meth:`open` maps one from an image file.
    """

    def __init__(self, sector_size: int, sector_count: int) -> None:
        head, data_offset = _image_header(sector_size, sector_count)
        image = mmap.mmap(-1, data_offset + sector_size * sector_count)
        image.write(head)
        image.seek(data_offset)
        image.write(b"\xff" * (sector_size * sector_count))
        self._setup(sector_size, sector_count, image, data_offset, None)

    def _setup(
        self, sector_size: int, sector_count: int, image: mmap.mmap, base: int, file: int | None
    ) -> None:
        self.sector_size = sector_size
        self.sector_count = sector_count
        self.size = sector_size * sector_count
        self.on_operation: OperationHook | None = None
        self._image = image
        """The whole image: header, erase counters, then the chip from offset _base."""
        self._base = base
        self._file = file
        self._erased_sector = b"\xff" * sector_size

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], sector_size: int | None = None, sector_count: int | None = None
    ) -> NorFlash:
        """Map the image at *path*, creating an erased chip there if the file is
        missing or empty.

        Creating needs both *sector_size* and *sector_count*.  Opening takes the
        geometry from the file; if either is given it must match, otherwise
        :class:`FlashImageError`.
        """
        name = os.fspath(path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                if sector_size is None or sector_count is None:
                    raise FlashGeometryError(f"{name}: a new image needs sector size and count")
                geometry = cls._create_image(fd, sector_size, sector_count)
            else:
                geometry = cls._check_image(fd, size, name)
                for field, wanted, found in (
                    ("sector_size", sector_size, geometry[0]),
                    ("sector_count", sector_count, geometry[1]),
                ):
                    if wanted is not None and wanted != found:
                        raise FlashImageError(f"{name}: image has {field} {found}, not {wanted}")
            image = mmap.mmap(fd, 0)
        except BaseException:
            os.close(fd)
            raise
        flash = cls.__new__(cls)
        found_size, found_count, data_offset = geometry
        flash._setup(found_size, found_count, image, data_offset, fd)
        return flash

    @staticmethod
    def _create_image(fd: int, sector_size: int, sector_count: int) -> tuple[int, int, int]:
        head, data_offset = _image_header(sector_size, sector_count)
        os.write(fd, head + bytes(data_offset - len(head)))
        chunk = b"\xff" * min(sector_size * sector_count, 1 << 20)
        remaining = sector_size * sector_count
        while remaining:
            remaining -= os.write(fd, chunk[:remaining])
        return sector_size, sector_count, data_offset

    @staticmethod
    def _check_image(fd: int, size: int, name: str) -> tuple[int, int, int]:
        try:
            header = decode_image_header(os.pread(fd, IMAGE_HEADER_SIZE, 0))
        except ImageError as exc:
            raise FlashImageError(f"{name}: {exc}") from exc
        if size != header.image_size:
            raise FlashImageError(f"{name}: flash image is {size} bytes, its header says {header.image_size}")
        return header.sector_size, header.sector_count, header.data_offset

    # --- the chip ---------------------------------------------------------

    def read(self, address: int, length: int) -> bytes:
        """*length* bytes from *address*."""
        if address < 0 or length < 0 or address + length > self.size:
            raise FlashAddressError(f"read of {length} bytes at {address:#x} is outside the chip")
        start = self._base + address
        return self._image[start : start + length]

    def program(self, address: int, data: bytes) -> None:
        """Clear the bits that are 0 in *data*, from *address* on (``old & data``)."""
        end = address + len(data)
        if address < 0 or end > self.size:
            raise FlashAddressError(f"program of {len(data)} bytes at {address:#x} is outside the chip")
        if self.on_operation is not None:
            self.on_operation(FlashOperation(OpKind.PROGRAM, address, bytes(data), len(data)))
        image, start, end = self._image, self._base + address, self._base + end
        old = image[start:end]
        image[start:end] = data if old == self._erased_sector[: len(data)] else _and(old, data)

    def erase(self, sector: int) -> None:
        """Set every byte of *sector* to 0xFF and count the erase cycle."""
        address = self._sector_address(sector)
        if self.on_operation is not None:
            self.on_operation(FlashOperation(OpKind.ERASE, address, b"", self.sector_size))
        start = self._base + address
        self._image[start : start + self.sector_size] = self._erased_sector
        self._count_erase(sector)

    def is_erased(self, sector: int) -> bool:
        """True when every byte of *sector* reads 0xFF."""
        start = self._base + self._sector_address(sector)
        return self._image[start : start + self.sector_size] == self._erased_sector

    def erase_count(self, sector: int) -> int:
        """Erase cycles *sector* has been through."""
        self._sector_address(sector)
        return int(_COUNTER.unpack_from(self._image, erase_counter_offset(sector))[0])

    def erase_counts(self) -> list[int]:
        """Erase cycles of every sector, in sector order."""
        counters = self._image[erase_counter_offset(0) : erase_counter_offset(self.sector_count)]
        return [count for (count,) in _COUNTER.iter_unpack(counters)]

    def _sector_address(self, sector: int) -> int:
        if not 0 <= sector < self.sector_count:
            raise FlashAddressError(f"sector {sector} is outside 0..{self.sector_count - 1}")
        return sector * self.sector_size

    def _count_erase(self, sector: int) -> None:
        offset = erase_counter_offset(sector)
        _COUNTER.pack_into(self._image, offset, _COUNTER.unpack_from(self._image, offset)[0] + 1)

    # --- power cuts -------------------------------------------------------

    def tear(self, op: FlashOperation, rng: random.Random) -> None:
        """Apply *op* partially, as a power cut in the middle of it would.

        A program clears the bits of a random prefix of its bytes (0 to all
        of them); the byte where the prefix ends has only a random subset of
        its bits cleared.  An erase is indeterminate, one of: a random prefix
        of the sector reads 0xFF and the rest is unchanged; a random subset
        of its bytes (anywhere, in any proportion) reads 0xFF; every byte has
        a random subset of its bits set to 1.  A torn erase still counts as an
        erase cycle.  The hook is not called.
        """
        image, start = self._image, self._base + op.address
        old = image[start : start + op.length]
        if op.kind is OpKind.PROGRAM:
            done = rng.randint(0, op.length)
            torn = bytearray(_and(old[:done], op.data[:done]))
            if done < op.length:
                torn.append(old[done] & (op.data[done] | rng.getrandbits(8)))
            image[start : start + len(torn)] = torn
            return
        mode = rng.randrange(3)
        if mode == 0:
            done = rng.randint(0, op.length)
            half_erased = self._erased_sector[:done] + old[done:]
        else:
            noise = rng.randbytes(op.length)
            if mode == 1:
                share = rng.randrange(257)
                noise = noise.translate(bytes(0xFF if byte < share else 0 for byte in range(256)))
            half_erased = _or(old, noise)
        image[start : start + op.length] = half_erased
        self._count_erase(op.address // self.sector_size)

    def copy(self) -> NorFlash:
        """An in-memory chip with the same contents and erase counters (no hook)."""
        clone = NorFlash.__new__(NorFlash)
        image = mmap.mmap(-1, len(self._image))
        image.write(self._image[:])
        clone._setup(self.sector_size, self.sector_count, image, self._base, None)
        return clone

    def __reduce__(self) -> tuple[Callable[[int, int, int, bytes], NorFlash], tuple[int, int, int, bytes]]:
        """A chip in memory pickles as its contents (a unit lived in another process comes back
        whole); a chip on an image file does not: the file is the chip."""
        if self._file is not None:
            raise TypeError("a flash chip on an image file is not copied between processes")
        return _chip_from_image, (self.sector_size, self.sector_count, self._base, self._image[:])

    # --- the image file ---------------------------------------------------

    def flush(self) -> None:
        """Ask the OS to write the image to disk (a killed process needs no flush;
        a machine that loses power does)."""
        self._image.flush()

    def close(self) -> None:
        """Flush and unmap the chip.  Using it afterwards raises ValueError."""
        if self._image.closed:
            return
        self.flush()
        self._image.close()
        if self._file is not None:
            os.close(self._file)
            self._file = None

    def __enter__(self) -> NorFlash:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _chip_from_image(sector_size: int, sector_count: int, base: int, image: bytes) -> NorFlash:
    """An in-memory chip holding *image* (header, erase counters, contents): unpickling one."""
    chip = NorFlash.__new__(NorFlash)
    memory = mmap.mmap(-1, len(image))
    memory.write(image)
    chip._setup(sector_size, sector_count, memory, base, None)
    return chip


def _and(old: bytes, new: bytes) -> bytes:
    return (int.from_bytes(old, "little") & int.from_bytes(new, "little")).to_bytes(len(old), "little")


def _or(old: bytes, new: bytes) -> bytes:
    return (int.from_bytes(old, "little") | int.from_bytes(new, "little")).to_bytes(len(old), "little")
