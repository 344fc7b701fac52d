"""The controller's secrets: one key per protected access level, kept power-safe on a small NOR chip.

A unit keeps its keys on a chip of their own, not in the log flash: the log
image is what travels (``turbosim fleet`` writes it, ``turbolog ingest``
reads it, a technician dumps it), and it must not carry the keys with it.
With an image file ``unit.img`` the key chip is the image file
``unit.img.keys`` (the :mod:`firmware_sim.flash` format, created mode 0600);
a unit in memory has its key chip in memory.

Layout (integers little-endian)
-------------------------------

The chip has 2 sectors of 256 bytes, copy A (sector 0) and copy B (sector 1).
A copy in use starts with one record; the rest of the sector reads 0xFF::

    offset  size  field
    0       4     magic b"TKY1"
    4       4     generation   1 for the first keys, +1 every time they are replaced
    8       32    key for access level MAINTENANCE (1)
    40      32    key for access level FACTORY (2)
    72      32    nonce secret (never leaves the unit; see firmware_sim.auth)
    104     4     CRC-32C of bytes 0..103

- Reading (power-up): a copy is valid when its magic and CRC-32C verify; the
  valid copy with the higher generation holds the keys.  No valid copy: the
  unit has no keys yet.  Reading never writes.
- Writing new keys goes to the copy that does *not* hold the current ones:
  erase it (unless it reads all 0xFF), program the record with the next
  generation.  The current copy is never touched, so a power cut at any
  instant leaves either the old keys or the new ones, never neither (except
  during the very first write, when there were no keys to lose: the next
  power-up makes new ones, which nobody can have seen).

Keys are made from a random-bytes function passed in (``os.urandom`` in the
field, a seeded one in tests); this module draws no randomness of its own,
reads no clock, and never writes keys into the log.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from protocol.auth import KEY_LEN
from protocol.crc import RESIDUE, crc32c
from protocol.enums import AccessLevel

from .errors import ConfigError
from .flash import NorFlash

KEY_SECTOR_SIZE = 256
KEY_SECTOR_COUNT = 2
KEY_MAGIC = b"TKY1"
KEY_CHIP_SUFFIX = ".keys"

_BODY = struct.Struct(f"<4sI{KEY_LEN}s{KEY_LEN}s{KEY_LEN}s")
"""magic, generation, maintenance key, factory key, nonce secret; then the CRC-32C."""
RECORD_SIZE = _BODY.size + 4

RandomBytes = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class UnitKeys:
    """A unit's secrets: a key per protected level, and the secret its nonces are derived with."""

    maintenance: bytes
    factory: bytes
    nonce_secret: bytes

    def __post_init__(self) -> None:
        if any(len(key) != KEY_LEN for key in (self.maintenance, self.factory, self.nonce_secret)):
            raise ConfigError(f"every key is {KEY_LEN} bytes")

    @classmethod
    def generate(cls, random_bytes: RandomBytes) -> UnitKeys:
        """New keys drawn from *random_bytes* (pass ``os.urandom`` for a unit in the field)."""
        return cls(random_bytes(KEY_LEN), random_bytes(KEY_LEN), random_bytes(KEY_LEN))

    def for_level(self, level: AccessLevel) -> bytes | None:
        """The key of *level*; None for READ, which needs none."""
        if level == AccessLevel.MAINTENANCE:
            return self.maintenance
        if level == AccessLevel.FACTORY:
            return self.factory
        return None


class KeyStore:
    """A unit's keys on a :class:`NorFlash` of at least 2 sectors; constructing it reads them."""

    def __init__(self, flash: NorFlash) -> None:
        if flash.sector_count < KEY_SECTOR_COUNT or flash.sector_size < RECORD_SIZE:
            raise ConfigError(
                f"a key chip needs {KEY_SECTOR_COUNT} sectors of at least {RECORD_SIZE} bytes, "
                f"not {flash.sector_count} of {flash.sector_size}"
            )
        self._flash = flash
        self._generation = 0
        self._current: int | None = None
        """The copy holding the keys."""
        self._keys: UnitKeys | None = None
        for copy in range(KEY_SECTOR_COUNT):
            found = _unpack(flash.read(copy * flash.sector_size, RECORD_SIZE))
            if found is not None and found[0] > self._generation:
                self._generation, self._keys = found
                self._current = copy

    @property
    def keys(self) -> UnitKeys | None:
        """The keys, or None when none were ever written completely."""
        return self._keys

    @property
    def generation(self) -> int:
        """How many times keys were written (0: never)."""
        return self._generation

    def save(self, keys: UnitKeys) -> None:
        """Make *keys* the unit's keys, durably, in the copy not holding the current ones."""
        flash = self._flash
        target = 1 if self._current == 0 else 0
        if not flash.is_erased(target):
            flash.erase(target)
        generation = self._generation + 1
        flash.program(target * flash.sector_size, _pack(generation, keys))
        self._generation, self._current, self._keys = generation, target, keys


def load_or_create_keys(store: KeyStore, random_bytes: RandomBytes) -> UnitKeys:
    """The keys in *store*; at a unit's first start, new ones drawn from *random_bytes*, saved first."""
    keys = store.keys
    if keys is None:
        keys = UnitKeys.generate(random_bytes)
        store.save(keys)
    return keys


def key_chip_path(flash_path: str | os.PathLike[str]) -> str:
    """The key chip's image file beside the log image at *flash_path*."""
    return os.fspath(flash_path) + KEY_CHIP_SUFFIX


def existing_key_chip(flash_path: str | os.PathLike[str]) -> NorFlash:
    """The key chip of the unit whose log image is *flash_path*; ConfigError if it has none yet."""
    path = key_chip_path(flash_path)
    if not os.path.exists(path):
        raise ConfigError(
            f"{os.fspath(flash_path)} has no keys yet ({path} is missing): a unit makes its keys "
            "at its first start (turbosim run or serve with this --flash)"
        )
    return NorFlash.open(path, KEY_SECTOR_SIZE, KEY_SECTOR_COUNT)


def open_key_chip(path: str | os.PathLike[str]) -> NorFlash:
    """The key chip in the image at *path*, made (readable by its owner only) if missing."""
    if not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return NorFlash.open(path, KEY_SECTOR_SIZE, KEY_SECTOR_COUNT)


def _pack(generation: int, keys: UnitKeys) -> bytes:
    body = _BODY.pack(KEY_MAGIC, generation, keys.maintenance, keys.factory, keys.nonce_secret)
    return body + crc32c(body).to_bytes(4, "little")


def _unpack(raw: bytes) -> tuple[int, UnitKeys] | None:
    if not raw.startswith(KEY_MAGIC) or crc32c(raw) != RESIDUE:
        return None
    _, generation, maintenance, factory, nonce_secret = _BODY.unpack_from(raw)
    return generation, UnitKeys(maintenance, factory, nonce_secret)
