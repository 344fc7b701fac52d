"""The flash image formats: the derived fast path against construct (the oracle), and
docs/flash-image.md's byte tables against the construct definitions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from construct import Array, Struct
from hypothesis import given
from hypothesis import strategies as st

from protocol import image_formats as fmt
from protocol.crc import crc32c
from protocol.errors import ImageError, LocalProtocolError
from protocol.fastpath import flatten
from protocol.image_formats import (
    ERASE_COUNTER,
    IMAGE_HEADER,
    IMAGE_HEADER_SEALED,
    SECTOR_HEADER,
    SECTOR_HEADER_SEALED,
    SectorHeader,
    decode_image_header,
    decode_sector_header,
    encode_image_header,
    encode_sector_header,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "flash-image.md"

u32 = st.integers(0, 2**32 - 1)
geometries = st.tuples(st.integers(16, 1 << 16), st.integers(1, 1 << 14)).filter(
    lambda g: g[0] * g[1] <= fmt.MAX_FLASH_SIZE)


def oracle(header: Struct, sealed: Struct, fields: dict[str, Any]) -> bytes:
    """A header built by construct alone, its CRC-32C over the bytes of the sealed part."""
    return bytes(header.build({**fields, "crc": crc32c(sealed.build(fields))}))


def image_fields(sector_size: int, sector_count: int) -> dict[str, Any]:
    """What docs/flash-image.md section 1 says an image header holds."""
    data_offset = -(-(32 + 4 * sector_count) // 4096) * 4096
    return {"magic": b"TLNORIMG", "version": 2, "reserved1": 0, "sector_size": sector_size,
            "sector_count": sector_count, "data_offset": data_offset, "reserved2": 0}


def reseal(raw: bytes, offset: int, value: bytes) -> bytes:
    """*raw* with *value* written at *offset* and the image header's CRC recomputed."""
    data = bytearray(raw)
    data[offset : offset + len(value)] = value
    data[24:28] = crc32c(bytes(data[:24])).to_bytes(4, "little")
    return bytes(data)


def test_the_derived_layouts_are_the_construct_ones() -> None:
    for construct_format in (IMAGE_HEADER, SECTOR_HEADER, IMAGE_HEADER_SEALED, SECTOR_HEADER_SEALED):
        layout = flatten(construct_format)
        assert layout.size == construct_format.sizeof()
        assert layout.names == tuple(sub.name for sub in construct_format.subcons)
    assert (fmt.IMAGE_HEADER_SIZE, fmt.SECTOR_HEADER_SIZE, fmt.ERASE_COUNTER_LAYOUT.size) == (32, 48, 4)


@given(geometries)
def test_an_image_header_is_what_construct_builds(geometry: tuple[int, int]) -> None:
    sector_size, sector_count = geometry
    raw = encode_image_header(sector_size, sector_count)
    assert raw == oracle(IMAGE_HEADER, IMAGE_HEADER_SEALED, image_fields(sector_size, sector_count))
    header = decode_image_header(raw + b"\xff" * 8)
    parsed = IMAGE_HEADER.parse(raw)
    assert (header.sector_size, header.sector_count, header.data_offset) == (
        parsed.sector_size, parsed.sector_count, parsed.data_offset)
    assert header.data_offset == fmt.data_offset(sector_count) >= fmt.erase_counter_offset(sector_count)
    assert header.image_size == parsed.data_offset + sector_size * sector_count


@given(st.lists(u32, min_size=1, max_size=64))
def test_erase_counters_are_an_array_of_u32_after_the_header(counts: list[int]) -> None:
    packed = b"".join(fmt.ERASE_COUNTER_LAYOUT.struct.pack(count) for count in counts)
    assert packed == Array(len(counts), ERASE_COUNTER).build(counts)
    assert fmt.erase_counter_offset(0) == IMAGE_HEADER.sizeof()
    assert fmt.erase_counter_offset(len(counts)) == IMAGE_HEADER.sizeof() + len(packed)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda raw: b"TLNORIMX" + raw[8:], "not a turbolog flash image"),
    (lambda raw: raw[:31], "not a turbolog flash image"),
    (lambda raw: raw[:13] + b"\x01" + raw[14:], "CRC-32C mismatch"),
    (lambda raw: reseal(raw, 8, b"\x03\x00"), "format 3"),
    (lambda raw: reseal(raw, 12, b"\x08\x00\x00\x00"), "sector_size >= 16"),
    (lambda raw: reseal(raw, 16, b"\x00\x00\x00\x00"), "sector_count >= 1"),
    (lambda raw: reseal(raw, 12, b"\x00\x00\x10\x00"), "over the 4 GiB"),
    (lambda raw: reseal(raw, 20, b"\x00\x20\x00\x00"), "data offset 8192"),
], ids=["magic", "short", "crc", "version", "sector-size", "sector-count", "4-GiB", "data-offset"])
def test_a_foreign_or_corrupt_image_header_is_refused(damage: Any, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        decode_image_header(damage(encode_image_header(4096, 8192)))


@pytest.mark.parametrize("geometry", [(15, 4), (16, 0), (1 << 20, 4097)])
def test_an_impossible_geometry_is_not_built(geometry: tuple[int, int]) -> None:
    with pytest.raises(LocalProtocolError):
        encode_image_header(*geometry)


sector_headers = st.builds(
    SectorHeader, u32, u32, u32, u32, u32, u32, st.integers(0, 2**64 - 1), st.binary(min_size=8, max_size=8)
)


@given(sector_headers)
def test_a_sector_header_is_what_construct_builds(header: SectorHeader) -> None:
    fields = {"magic": b"TLG2", "generation": header.generation, "base_seq": header.base_seq,
              "first_seq": header.first_seq, "operating_s": header.operating_s, "starts": header.starts,
              "trips": header.trips, "energy_wh": header.energy_wh, "log_id": header.log_id}
    raw = encode_sector_header(header)
    assert raw == oracle(SECTOR_HEADER, SECTOR_HEADER_SEALED, fields)
    assert decode_sector_header(raw) == header
    assert decode_sector_header(raw + b"\x00" * 20) == header


@given(sector_headers, st.integers(0, 47), st.integers(0, 7))
def test_a_damaged_sector_header_is_not_valid(header: SectorHeader, where: int, bit: int) -> None:
    raw = bytearray(encode_sector_header(header))
    raw[where] ^= 1 << bit
    assert decode_sector_header(bytes(raw)) is None


@pytest.mark.parametrize("raw", [b"\xff" * 48, bytes(48), b"TLG2"], ids=["erased", "evicted", "short"])
def test_unused_and_evicted_sectors_have_no_header(raw: bytes) -> None:
    assert decode_sector_header(raw) is None


# --- docs/flash-image.md ------------------------------------------------------------------------------

ROW = re.compile(r"^ (\d+) +(\d+) +([a-z][a-z0-9_]*)(?: {2,}|$)", re.MULTILINE)


def doc_section(number: int) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {number}. ")
    return text[start : text.index("\n## ", start + 1)]


def construct_rows(header: Struct) -> list[tuple[int, int, str]]:
    rows, offset = [], 0
    for sub in header.subcons:
        rows.append((offset, sub.sizeof(), sub.name))
        offset += sub.sizeof()
    return rows


@pytest.mark.parametrize(("section", "header"), [(1, IMAGE_HEADER), (2, SECTOR_HEADER)],
                         ids=["image-header", "sector-header"])
def test_the_documented_tables_are_the_construct_definitions(section: int, header: Struct) -> None:
    documented = [(int(offset), int(size), name) for offset, size, name in ROW.findall(doc_section(section))]
    assert documented == construct_rows(header)


def test_the_documented_counters_and_data_offset_are_the_construct_ones() -> None:
    chip = doc_section(1)
    assert re.search(rf"^ {IMAGE_HEADER.sizeof()} +{ERASE_COUNTER.sizeof()} x n +erase counter", chip, re.M)
    assert f"`data_offset` is `{IMAGE_HEADER.sizeof()} + {ERASE_COUNTER.sizeof()} x sector_count` " \
           f"rounded up to a multiple of {fmt.IMAGE_PAGE}" in " ".join(chip.split())
    assert f"`sector_size >= {fmt.MIN_SECTOR_SIZE}`" in chip
    assert f"a {SECTOR_HEADER.sizeof()}-byte header" in " ".join(doc_section(2).split())
