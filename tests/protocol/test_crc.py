"""CRC-32C: published check values, the residue, continuation, error detection, the C extension."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import crc


def test_crcmod_c_extension_is_in_use() -> None:
    assert crc.USING_C_EXTENSION, (
        "crcmod is running in pure Python (about 30x slower): reinstall it where a C compiler is "
        "available, e.g. `.venv/bin/pip install --force-reinstall --no-binary crcmod crcmod`"
    )


@pytest.mark.parametrize(("data", "expected"), [
    (b"123456789", 0xE3069283),
    (b"", 0x00000000),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
], ids=["check", "empty", "zeros", "ones", "incrementing", "decrementing"])
def test_published_check_values(data: bytes, expected: int) -> None:
    """The catalogue's check value and RFC 3720 (iSCSI) appendix B.4."""
    assert crc.crc32c(data) == expected


def test_module_constants() -> None:
    assert crc.CHECK_VALUE == crc.crc32c(b"123456789") == 0xE3069283
    assert crc.RESIDUE == 0x48674BC7


@given(st.binary(max_size=2048))
def test_any_data_followed_by_its_crc_gives_the_residue(data: bytes) -> None:
    assert crc.crc32c(data + crc.crc32c(data).to_bytes(4, "little")) == crc.RESIDUE


@given(st.binary(max_size=512), st.binary(max_size=512))
def test_a_crc_can_be_continued(head: bytes, tail: bytes) -> None:
    assert crc.crc32c(tail, crc.crc32c(head)) == crc.crc32c(head + tail)


@given(st.binary(min_size=1, max_size=651), st.data())
def test_up_to_five_bit_errors_are_always_detected(data: bytes, draw: st.DataObject) -> None:
    """Hamming distance 6 for data up to 655 bytes (here data + CRC stay within it)."""
    block = bytearray(data + crc.crc32c(data).to_bytes(4, "little"))
    bits = draw.draw(st.sets(st.integers(0, 8 * len(block) - 1), min_size=1, max_size=5))
    for bit in bits:
        block[bit // 8] ^= 1 << (bit % 8)
    assert crc.crc32c(bytes(block)) != crc.RESIDUE


@given(st.binary(min_size=1, max_size=4096), st.data())
def test_any_odd_number_of_bit_errors_is_detected(data: bytes, draw: st.DataObject) -> None:
    block = bytearray(data + crc.crc32c(data).to_bytes(4, "little"))
    count = draw.draw(st.sampled_from([1, 3, 5, 7, 9, 11]))
    bits = draw.draw(st.sets(st.integers(0, 8 * len(block) - 1), min_size=count, max_size=count))
    for bit in bits:
        block[bit // 8] ^= 1 << (bit % 8)
    assert crc.crc32c(bytes(block)) != crc.RESIDUE
