"""host.flash_image against the emulator's own flash and log store (docs/flash-image.md).

What a user would notice: an image yields exactly the records the controller
would serve after power-up (first_seq, next_seq, counters and every byte),
through wrap-arounds, clears and torn records; a foreign or corrupt image is
refused with a clear DeviceError; an identity sidecar that names another
unit or schema is refused.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest

from firmware_sim.flash import NorFlash
from firmware_sim.logstore import SECTOR_HEADER_SIZE, LogStore
from host.errors import DeviceError
from host.flash_image import FlashImage, parse_identity, parse_image
from protocol.counters import LifetimeCounters
from protocol.crc import crc32c
from protocol.enums import EventKind
from protocol.messages import EARLIER_FINGERPRINTS, SCHEMA_FINGERPRINT
from protocol.records import (
    EventRecord,
    FaultRecord,
    Record,
    SampleRecord,
    Snapshot,
    UnknownRecord,
    row_bytes,
)
from protocol.sidecar import UnitIdentity

SECTOR_SIZE = 512
SECTOR_COUNT = 6


def snapshot(operating_s: int, starts: int) -> Snapshot:
    return Snapshot(4, 0, 0, 96000, 60000, 6100, 6120, 150, 150, 10132, 700, 214000, 7600, 4800, 60000,
                    operating_s, starts, 0, operating_s * 16)


def workload(seed: int, count: int) -> list[Record]:
    """Seeded records of every kind (and an unknown type), counters growing."""
    rng = random.Random(seed)
    records: list[Record] = []
    for i in range(count):
        t = 1_700_000_000 + 60 * i
        roll = rng.random()
        if roll < 0.6:
            records.append(SampleRecord(0, t, snapshot(60 * i, i // 10)))
        elif roll < 0.75:
            records.append(FaultRecord(0, t, 5005, rng.choice([2, 3, 4]), 0, 0, snapshot(60 * i, i // 10)))
        elif roll < 0.97:
            records.append(EventRecord(0, t, EventKind.STATE_CHANGE, 3, 4, 0, i, 0))
        else:
            records.append(UnknownRecord(0, t, 0x42, rng.randbytes(rng.randrange(0, 40))))
    return records


def image_bytes(path: Path) -> bytes:
    return path.read_bytes()


def held(image: FlashImage) -> list[bytes]:
    return [row_bytes(row) for sector in image.sectors() for row in sector.records]


def assert_agrees(image: FlashImage, store: LogStore, flash: NorFlash) -> None:
    """The image reads as the controller's recovery reads the same flash."""
    assert (image.first_seq, image.next_seq) == (store.first_seq, store.next_seq)
    c = store.counters
    assert image.counters == c
    assert held(image) == list(store.iter_raw(store.first_seq, store.next_seq))
    assert image.capacity_records == store.capacity_records
    assert list(image.erase_counts) == flash.erase_counts()
    newest = store.read(store.next_seq - 1) if store.next_seq else None
    assert image.last_timestamp == (int.from_bytes(newest[4:8], "little") if newest else 0)


@pytest.mark.parametrize("seed", range(6))
def test_an_image_reads_as_the_controller_recovers_it(tmp_path: Path, seed: int) -> None:
    path = tmp_path / "unit.img"
    rng = random.Random(seed)
    with NorFlash.open(path, SECTOR_SIZE, SECTOR_COUNT) as flash:
        store = LogStore(flash)
        for record in workload(seed, rng.randrange(20, 400)):
            store.append(record)
            if rng.random() < 0.01:
                store.clear()
        flash.flush()
        image = parse_image(image_bytes(path), path.name)
        assert_agrees(image, LogStore(flash), flash)


def test_an_empty_log_holds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "unit.img"
    NorFlash.open(path, SECTOR_SIZE, SECTOR_COUNT).close()
    image = parse_image(image_bytes(path))
    assert (image.first_seq, image.next_seq, image.last_timestamp) == (0, 0, 0)
    assert image.ring == ()
    assert image.counters == LifetimeCounters()
    assert list(image.sectors()) == []


def test_a_wrapped_log_starts_at_the_oldest_sector_left(tmp_path: Path) -> None:
    path = tmp_path / "unit.img"
    with NorFlash.open(path, SECTOR_SIZE, SECTOR_COUNT) as flash:
        store = LogStore(flash)
        for record in workload(1, 500):
            store.append(record)
        image = parse_image(image_bytes(path))
        assert image.first_seq > 0
        assert len(image.ring) == SECTOR_COUNT
        assert_agrees(image, store, flash)


def test_a_torn_record_ends_its_sector_and_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "unit.img"
    with NorFlash.open(path, SECTOR_SIZE, SECTOR_COUNT) as flash:
        store = LogStore(flash)
        for record in workload(2, 5):
            store.append(record)
    data = bytearray(image_bytes(path))
    data_offset = 4096
    last = data_offset + SECTOR_HEADER_SIZE
    for _ in range(4):
        last += 14 + data[last + 9]
    torn = next(i for i in range(last + 10, last + 14 + data[last + 9]) if data[i])
    data[torn] &= data[torn] - 1  # the power failed before this bit of the last record was programmed
    path.write_bytes(bytes(data))
    image = parse_image(bytes(data))
    assert image.next_seq == 4
    assert [sector.discarded for sector in image.sectors()] == [1]
    with NorFlash.open(path) as flash:
        assert_agrees(image, LogStore(flash), flash)


@pytest.mark.parametrize("damaged", [0, 2, 4])
def test_a_damaged_record_ends_its_sector_not_the_log(tmp_path: Path, damaged: int) -> None:
    """A record that fails its CRC in an older sector: the records after it in that sector are
    not held (as the controller's recovery drops them), those of the newer sectors are."""
    path = tmp_path / "unit.img"
    with NorFlash.open(path, SECTOR_SIZE, SECTOR_COUNT) as flash:
        store = LogStore(flash)
        for record in workload(3, 40):
            store.append(record)
    data = bytearray(image_bytes(path))
    at = 4096 + SECTOR_HEADER_SIZE
    for _ in range(damaged):
        at += 14 + data[at + 9]
    data[at + 12] ^= 0x10  # a bit of the body (or CRC) flipped: seq and length still delimit it
    path.write_bytes(bytes(data))
    image = parse_image(bytes(data))
    first, *_ = image.sectors()
    assert [row[0] for row in first.records] == list(range(damaged))
    assert first.discarded > 0 and len(image.ring) > 1
    with NorFlash.open(path) as flash:
        assert_agrees(image, LogStore(flash), flash)


def good_header(path: Path) -> bytearray:
    NorFlash.open(path, SECTOR_SIZE, SECTOR_COUNT).close()
    return bytearray(image_bytes(path))


def reseal(data: bytearray) -> bytes:
    """Recompute the header CRC, so that only the field changed is wrong."""
    data[24:28] = crc32c(bytes(data[:24])).to_bytes(4, "little")
    return bytes(data)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda d: b"SQLite format 3\x00" + bytes(d[16:]), "not a turbolog flash image"),
    (lambda d: bytes(d[:12]) + b"\x01" + bytes(d[13:]), "CRC-32C mismatch"),
    (lambda d: reseal(bytearray(d[:8]) + struct.pack("<H", 1) + d[10:]), "format 1 .written before logs had"),
    (lambda d: reseal(d[:20] + struct.pack("<I", 8192) + d[24:]), "data offset 8192"),
    (lambda d: reseal(d[:16] + struct.pack("<I", 1) + d[20:]), "cannot hold a log"),
    (lambda d: bytes(d[:-1]), "its header says"),
    (lambda d: b"", "not a turbolog flash image"),
], ids=["foreign", "crc", "version", "data-offset", "one-sector", "truncated", "empty"])
def test_a_foreign_or_corrupt_image_is_refused(tmp_path: Path, damage: object, message: str) -> None:
    data = damage(good_header(tmp_path / "unit.img"))  # type: ignore[operator]
    with pytest.raises(DeviceError, match=message):
        parse_image(data, "unit.img")


def identity(**changes: object) -> str:
    doc = {
        "format": "turbolog-unit-identity", "version": 1, "serial": "C60-000001", "model": "C60",
        "firmware": "turbosim-1.0", "schema_fingerprint": SCHEMA_FINGERPRINT, "image": "C60-000001.img",
        "simulated": {"seed": 1},
    }
    doc.update(changes)
    return json.dumps(doc)


def test_a_sidecar_names_the_unit() -> None:
    assert parse_identity(identity(), "C60-000001.img") == UnitIdentity(
        "C60-000001", "C60", "turbosim-1.0", SCHEMA_FINGERPRINT
    )


def test_a_sidecar_of_an_earlier_schema_whose_logs_this_reader_reads_is_accepted() -> None:
    earlier = next(iter(EARLIER_FINGERPRINTS))
    parsed = parse_identity(identity(schema_fingerprint=earlier), "C60-000001.img")
    assert parsed.schema_fingerprint == earlier


def test_a_sidecar_gives_the_units_profile_its_own_keys_first() -> None:
    simulated = {"site": "desert", "duty": "baseload", "commissioned": "2001-03-04T00:00:00+00:00",
                 "shipped": "2001-02-01"}
    unit = parse_identity(identity(simulated=simulated), "C60-000001.img")
    assert (unit.site, unit.duty) == ("desert", "baseload")
    assert (unit.commissioned, unit.shipped) == (983664000, 980985600)
    assert parse_identity(identity(simulated=simulated, site="cold"), "C60-000001.img").site == "cold"


@pytest.mark.parametrize("changes", [{"commissioned": "last spring"}, {"site": ""}, {"duty": 7}])
def test_a_malformed_profile_is_refused_in_one_line(changes: dict[str, object]) -> None:
    with pytest.raises(DeviceError, match="identity of C60-000001.img: (commissioned|site|duty)"):
        parse_identity(identity(**changes), "C60-000001.img")


@pytest.mark.parametrize(("text", "message"), [
    ("{", "not JSON"),
    ("[]", "not a turbolog-unit-identity"),
    (identity(format="other"), "not a turbolog-unit-identity"),
    (identity(version=2), "version 2"),
    (identity(serial="C60-0000000000001"), "serial must be 1 to 16"),
    (identity(model=""), "model must be 1 to 8"),
    (identity(firmware=7), "firmware must be"),
    (identity(schema_fingerprint="0x1"), "schema_fingerprint must be an integer"),
    (identity(image="other.img"), "names unit"),
    (identity(serial="C60-000002", image="C60-000002.img"), "names unit"),
    (identity(schema_fingerprint=SCHEMA_FINGERPRINT ^ 1), "formats differ"),
], ids=["json", "array", "format", "version", "serial", "model", "firmware", "fingerprint-type",
        "image", "file-name", "schema"])
def test_a_sidecar_for_another_unit_or_schema_is_refused(text: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        parse_identity(text, "C60-000001.img")
