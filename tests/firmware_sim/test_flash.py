"""NorFlash: NOR semantics, erase counters, the image file, and torn operations."""

from __future__ import annotations

import pickle
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from construct import Array

from firmware_sim.errors import SimulatorError
from firmware_sim.flash import (
    FlashAddressError,
    FlashError,
    FlashGeometryError,
    FlashImageError,
    FlashOperation,
    NorFlash,
    OpKind,
    PowerCut,
)
from protocol.crc import crc32c
from protocol.image_formats import ERASE_COUNTER, IMAGE_HEADER, IMAGE_HEADER_SEALED


def test_a_new_chip_is_erased_and_unworn() -> None:
    flash = NorFlash(256, 4)
    assert (flash.sector_size, flash.sector_count, flash.size) == (256, 4, 1024)
    assert flash.read(0, 1024) == b"\xff" * 1024
    assert flash.erase_counts() == [0, 0, 0, 0]
    assert all(flash.is_erased(sector) for sector in range(4))


def test_program_only_clears_bits() -> None:
    flash = NorFlash(256, 2)
    flash.program(10, b"\x0f\xaa")
    assert flash.read(10, 2) == b"\x0f\xaa"
    flash.program(10, b"\xf3\xff")
    assert flash.read(10, 2) == b"\x03\xaa"
    flash.program(10, b"\xff\x55")
    assert flash.read(10, 2) == b"\x03\x00", "programming 1s over 0s leaves the 0s"
    assert flash.read(9, 1) == b"\xff" and flash.read(12, 1) == b"\xff"
    assert not flash.is_erased(0) and flash.is_erased(1)


def test_erase_sets_one_sector_to_ff_and_counts_it() -> None:
    flash = NorFlash(256, 3)
    flash.program(0, bytes(768))
    flash.erase(1)
    flash.erase(1)
    assert flash.read(0, 256) == bytes(256)
    assert flash.read(256, 256) == b"\xff" * 256
    assert flash.read(512, 256) == bytes(256)
    assert flash.erase_counts() == [0, 2, 0]
    assert flash.erase_count(1) == 2


@pytest.mark.parametrize(
    "operation",
    [
        lambda f: f.read(1020, 5),
        lambda f: f.read(-1, 1),
        lambda f: f.program(1023, b"\x00\x00"),
        lambda f: f.program(-1, b"\x00"),
        lambda f: f.erase(4),
        lambda f: f.erase(-1),
        lambda f: f.erase_count(4),
        lambda f: f.is_erased(4),
    ],
)
def test_operations_outside_the_chip_raise(operation) -> None:
    flash = NorFlash(256, 4)
    with pytest.raises(FlashAddressError):
        operation(flash)
    assert flash.read(0, 1024) == b"\xff" * 1024


@pytest.mark.parametrize("geometry", [(8, 4), (256, 0), (1 << 20, 1 << 13)])
def test_impossible_geometry_is_refused(geometry: tuple[int, int]) -> None:
    with pytest.raises(FlashGeometryError):
        NorFlash(*geometry)


def test_image_keeps_contents_and_erase_counts_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "flash.img"
    with NorFlash.open(path, sector_size=512, sector_count=8) as flash:
        flash.program(700, b"turbolog")
        flash.erase(3)
        flash.erase(3)
        flash.erase(7)
    with NorFlash.open(path) as flash:
        assert (flash.sector_size, flash.sector_count) == (512, 8)
        assert flash.read(700, 8) == b"turbolog"
        assert flash.erase_counts() == [0, 0, 0, 2, 0, 0, 0, 1]
        flash.program(0, b"\x00")
    with NorFlash.open(path, sector_size=512, sector_count=8) as flash:
        assert flash.read(0, 1) == b"\x00"
        assert flash.read(700, 8) == b"turbolog"


def test_a_killed_process_keeps_its_flash(tmp_path: Path) -> None:
    path = tmp_path / "flash.img"
    script = (
        "import os, sys\n"
        "from firmware_sim.flash import NorFlash\n"
        "flash = NorFlash.open(sys.argv[1], sector_size=4096, sector_count=4)\n"
        "flash.erase(2)\n"
        "flash.program(5000, b'written, never flushed')\n"
        "os._exit(9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], check=False, timeout=60)
    assert done.returncode == 9
    with NorFlash.open(path) as flash:
        assert flash.read(5000, 22) == b"written, never flushed"
        assert flash.erase_counts() == [0, 0, 1, 0]


def test_geometry_must_match_an_existing_image(tmp_path: Path) -> None:
    path = tmp_path / "flash.img"
    NorFlash.open(path, sector_size=512, sector_count=8).close()
    with pytest.raises(FlashImageError, match="sector_count 8, not 16"):
        NorFlash.open(path, sector_count=16)
    with pytest.raises(FlashImageError, match="sector_size 512, not 1024"):
        NorFlash.open(path, sector_size=1024, sector_count=8)


def test_a_new_image_needs_its_geometry(tmp_path: Path) -> None:
    with pytest.raises(FlashGeometryError):
        NorFlash.open(tmp_path / "flash.img", sector_size=512)


@pytest.mark.parametrize(("sector_size", "sector_count", "data_offset"), [(512, 5, 4096), (16, 1100, 8192)])
def test_the_image_file_is_what_construct_builds(
    tmp_path: Path, sector_size: int, sector_count: int, data_offset: int
) -> None:
    path = tmp_path / "flash.img"
    with NorFlash.open(path, sector_size=sector_size, sector_count=sector_count) as flash:
        flash.erase(1)
        flash.erase(3)
        flash.erase(3)
        flash.program(sector_size + 3, b"\x12\x34")
    fields = {"magic": b"TLNORIMG", "version": 2, "reserved1": 0, "sector_size": sector_size,
              "sector_count": sector_count, "data_offset": data_offset, "reserved2": 0}
    header = IMAGE_HEADER.build({**fields, "crc": crc32c(IMAGE_HEADER_SEALED.build(fields))})
    counters = Array(sector_count, ERASE_COUNTER).build([0, 1, 0, 2] + [0] * (sector_count - 4))
    chip = bytearray(b"\xff" * (sector_size * sector_count))
    chip[sector_size + 3 : sector_size + 5] = b"\x12\x34"
    assert path.read_bytes() == header + counters + bytes(data_offset - len(header) - len(counters)) + chip


def _valid_image(tmp_path: Path) -> bytes:
    path = tmp_path / "good.img"
    NorFlash.open(path, sector_size=512, sector_count=8).close()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda image: b"GIF89a" + bytes(5000), "not a turbolog flash image"),
        (lambda image: image[:20], "not a turbolog flash image"),
        (lambda image: image[:-1], "its header says"),
        (lambda image: image + b"\xff", "its header says"),
        (lambda image: image[:12] + struct.pack("<I", 1024) + image[16:], "CRC-32C mismatch"),
        (lambda image: image[:8] + b"\x07" + image[9:], "CRC-32C mismatch"),
    ],
    ids=["foreign", "short", "truncated", "too long", "geometry changed", "version changed"],
)
def test_a_foreign_or_corrupt_image_is_refused_clearly(tmp_path: Path, damage, message: str) -> None:
    path = tmp_path / "flash.img"
    path.write_bytes(damage(_valid_image(tmp_path)))
    with pytest.raises(FlashImageError, match=message) as caught:
        NorFlash.open(path)
    assert isinstance(caught.value, FlashError) and isinstance(caught.value, SimulatorError)
    assert str(path) in str(caught.value)


def test_a_closed_image_cannot_be_used(tmp_path: Path) -> None:
    flash = NorFlash.open(tmp_path / "flash.img", sector_size=512, sector_count=2)
    flash.close()
    flash.close()
    with pytest.raises(ValueError):
        flash.read(0, 1)


def test_copy_is_independent() -> None:
    flash = NorFlash(256, 2)
    flash.program(3, b"\x00")
    flash.erase(1)
    clone = flash.copy()
    clone.program(4, b"\x00")
    flash.program(5, b"\x00")
    assert clone.read(3, 3) == b"\x00\x00\xff"
    assert flash.read(3, 3) == b"\x00\xff\x00"
    assert clone.erase_counts() == [0, 1]


def test_the_hook_sees_every_operation_before_it_is_applied() -> None:
    flash = NorFlash(256, 2)
    seen: list[tuple[FlashOperation, bytes]] = []
    flash.on_operation = lambda op: seen.append((op, flash.read(op.address, op.length)))
    flash.program(300, b"\x12\x34")
    flash.erase(1)
    assert seen == [
        (FlashOperation(OpKind.PROGRAM, 300, b"\x12\x34", 2), b"\xff\xff"),
        (FlashOperation(OpKind.ERASE, 256, b"", 256), b"\xff" * 44 + b"\x12\x34" + b"\xff" * 210),
    ]


def test_a_hook_that_raises_stops_the_operation() -> None:
    flash = NorFlash(256, 2)

    def cut(op: FlashOperation) -> None:
        raise PowerCut(op.kind.value)

    flash.on_operation = cut
    with pytest.raises(PowerCut):
        flash.program(0, b"\x00")
    with pytest.raises(PowerCut):
        flash.erase(0)
    assert flash.read(0, 1) == b"\xff" and flash.erase_counts() == [0, 0]


def test_a_torn_program_clears_a_prefix_and_part_of_one_byte() -> None:
    rng = random.Random(7)
    data = bytes(rng.getrandbits(8) for _ in range(40))
    old = bytes(rng.getrandbits(8) | 0x81 for _ in range(40))
    lengths = set()
    for _ in range(300):
        flash = NorFlash(256, 1)
        flash.program(16, old)
        flash.tear(FlashOperation(OpKind.PROGRAM, 16, data, len(data)), rng)
        torn = flash.read(16, 40)
        done = next((i for i in range(40) if torn[i] != old[i] & data[i]), 40)
        lengths.add(done)
        assert torn[:done] == bytes(a & b for a, b in zip(old[:done], data[:done], strict=True))
        if done < 40:
            target = old[done] & data[done]
            assert torn[done] & target == target and torn[done] | old[done] == old[done]
            assert torn[done + 1 :] == old[done + 1 :]
        assert flash.read(0, 16) == b"\xff" * 16 and flash.read(56, 200) == b"\xff" * 200
    assert 0 in lengths and 40 in lengths and len(lengths) > 20


def test_a_torn_erase_only_sets_bits_and_counts_a_cycle() -> None:
    rng = random.Random(11)
    outcomes = set()
    for _ in range(200):
        flash = NorFlash(64, 2)
        flash.program(0, bytes(range(128)))
        flash.tear(FlashOperation(OpKind.ERASE, 64, b"", 64), rng)
        torn = flash.read(64, 64)
        assert all(t | o == t for t, o in zip(torn, range(64, 128), strict=True)), "erase clears no bit"
        assert flash.read(0, 64) == bytes(range(64))
        assert flash.erase_counts() == [0, 1]
        outcomes.add(torn == b"\xff" * 64 or torn == bytes(range(64, 128)))
    assert False in outcomes, "some erases are left half done"


def test_a_chip_in_memory_pickles_as_its_contents_and_one_on_a_file_does_not(tmp_path: Path) -> None:
    chip = NorFlash(256, 4)
    chip.program(10, b"\x12\x34")
    chip.erase(2)
    copy = pickle.loads(pickle.dumps(chip))
    assert copy.read(0, chip.size) == chip.read(0, chip.size)
    assert copy.erase_counts() == chip.erase_counts() == [0, 0, 1, 0]
    refused = pytest.raises(TypeError, match="image file")
    with NorFlash.open(tmp_path / "chip.img", 256, 4) as on_file, refused:
        pickle.dumps(on_file)
