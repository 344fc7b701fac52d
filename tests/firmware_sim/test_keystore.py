"""The key store: A/B copies on their own chip, and what a power cut at any instant leaves of them."""

from __future__ import annotations

import random
import stat
from pathlib import Path

import pytest

from firmware_sim.errors import ConfigError
from firmware_sim.flash import FlashImageError, FlashOperation, NorFlash, PowerCut
from firmware_sim.keystore import (
    KEY_SECTOR_COUNT,
    KEY_SECTOR_SIZE,
    RECORD_SIZE,
    KeyStore,
    UnitKeys,
    existing_key_chip,
    key_chip_path,
    load_or_create_keys,
    open_key_chip,
)
from protocol.crc import crc32c
from protocol.enums import AccessLevel


def keys_from(seed: int) -> UnitKeys:
    return UnitKeys.generate(random.Random(seed).randbytes)


def chip() -> NorFlash:
    return NorFlash(KEY_SECTOR_SIZE, KEY_SECTOR_COUNT)


def recover(flash: NorFlash) -> KeyStore:
    """Power-up: reading the keys never changes the chip."""
    image = flash.read(0, flash.size)
    store = KeyStore(flash)
    assert flash.read(0, flash.size) == image
    return store


def test_a_new_chip_has_no_keys_until_the_first_start_makes_them() -> None:
    flash = chip()
    store = recover(flash)
    assert (store.keys, store.generation) == (None, 0)
    made = load_or_create_keys(store, random.Random(1).randbytes)
    assert made == keys_from(1) and store.generation == 1
    assert recover(flash).keys == made
    assert load_or_create_keys(recover(flash), lambda n: pytest.fail("no new keys at a later start")) == made


def test_the_record_layout_is_as_documented() -> None:
    flash = chip()
    keys = keys_from(2)
    KeyStore(flash).save(keys)
    raw = flash.read(0, RECORD_SIZE)
    assert RECORD_SIZE == 108
    assert raw[:4] == b"TKY1" and raw[4:8] == (1).to_bytes(4, "little")
    assert (raw[8:40], raw[40:72], raw[72:104]) == (keys.maintenance, keys.factory, keys.nonce_secret)
    assert raw[104:] == crc32c(raw[:104]).to_bytes(4, "little")
    assert flash.read(RECORD_SIZE, KEY_SECTOR_SIZE - RECORD_SIZE) == b"\xff" * (KEY_SECTOR_SIZE - RECORD_SIZE)
    assert flash.is_erased(1)


def test_new_keys_alternate_between_the_copies_and_the_newest_wins() -> None:
    flash = chip()
    store = KeyStore(flash)
    for generation in range(1, 6):
        store.save(keys_from(generation))
        assert flash.read(((generation - 1) % 2) * KEY_SECTOR_SIZE + 4, 4) == generation.to_bytes(4, "little")
        again = recover(flash)
        assert (again.keys, again.generation) == (keys_from(generation), generation)


def test_a_damaged_newest_copy_falls_back_to_the_other() -> None:
    flash = chip()
    store = KeyStore(flash)
    store.save(keys_from(1))
    store.save(keys_from(2))
    flash.program(KEY_SECTOR_SIZE + 50, b"\x00")
    assert (recover(flash).keys, recover(flash).generation) == (keys_from(1), 1)


def test_a_power_cut_at_any_instant_leaves_the_old_keys_or_the_new() -> None:
    """Cut every operation of five key changes (the first one from an erased chip), torn many ways."""
    flash = chip()
    store = KeyStore(flash)
    rng = random.Random(7)
    cuts = 0
    for generation in range(1, 6):
        old, new = store.keys, keys_from(generation)
        trial = flash.copy()
        counter: list[FlashOperation] = []
        trial.on_operation = counter.append
        KeyStore(trial).save(new)
        for index in range(len(counter)):
            for _ in range(20):
                cut = flash.copy()
                seen = [0]

                def tear_here(op: FlashOperation, cut: NorFlash = cut, seen: list[int] = seen,
                              index: int = index) -> None:
                    if seen[0] == index:
                        cut.tear(op, rng)
                        raise PowerCut(op.kind.value)
                    seen[0] += 1

                cut.on_operation = tear_here
                with pytest.raises(PowerCut):
                    KeyStore(cut).save(new)
                cut.on_operation = None
                survived = recover(cut)
                assert survived.keys in (old, new)
                assert survived.generation in (generation - 1, generation)
                if old is not None:
                    assert survived.keys is not None
                later = KeyStore(cut)
                later.save(keys_from(100 + generation))
                assert recover(cut).keys == keys_from(100 + generation)
                cuts += 1
        store.save(new)
    assert cuts >= 5 * 20


def test_keys_are_32_bytes_and_read_has_none() -> None:
    keys = keys_from(3)
    assert keys.for_level(AccessLevel.MAINTENANCE) == keys.maintenance
    assert keys.for_level(AccessLevel.FACTORY) == keys.factory
    assert keys.for_level(AccessLevel.READ) is None
    with pytest.raises(ConfigError):
        UnitKeys(bytes(31), bytes(32), bytes(32))


def test_a_chip_too_small_is_refused() -> None:
    with pytest.raises(ConfigError):
        KeyStore(NorFlash(64, 2))
    with pytest.raises(ConfigError):
        KeyStore(NorFlash(KEY_SECTOR_SIZE, 1))


def test_the_key_chip_file_is_made_private_beside_the_log_image(tmp_path: Path) -> None:
    image = tmp_path / "unit.img"
    path = key_chip_path(image)
    assert path == str(image) + ".keys"
    with pytest.raises(ConfigError, match="no keys yet"):
        existing_key_chip(image)
    with open_key_chip(path) as flash:
        assert (flash.sector_size, flash.sector_count) == (KEY_SECTOR_SIZE, KEY_SECTOR_COUNT)
        KeyStore(flash).save(keys_from(4))
    assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
    with existing_key_chip(image) as flash:
        assert KeyStore(flash).keys == keys_from(4)
    other = tmp_path / "other.img.keys"
    NorFlash.open(other, 512, 2).close()
    with pytest.raises(FlashImageError):
        open_key_chip(other)
