"""CRC-32C (Castagnoli), the one checksum of the protocol.

Catalogue name ``CRC-32C`` (crcmod's predefined ``crc-32c``): polynomial
0x1EDC6F41, reflected in and out, initial value 0xFFFFFFFF, final XOR
0xFFFFFFFF, check value 0xE3069283 for ``b"123456789"``.  Stored on the wire
as a little-endian u32.  This module only computes; it never decides what a
mismatch means.
"""

from __future__ import annotations

from collections.abc import Callable

import crcmod.predefined
from crcmod.crcmod import _usingExtension

crc32c: Callable[..., int] = crcmod.predefined.mkCrcFun("crc-32c")
"""``crc32c(data, crc=0) -> int``; pass a previous result as *crc* to continue."""

CHECK_VALUE = 0xE3069283
USING_C_EXTENSION: bool = bool(_usingExtension)
"""False when crcmod fell back to pure Python (about 30x slower)."""

RESIDUE: int = crc32c(b"\x00" + crc32c(b"\x00").to_bytes(4, "little"))
"""CRC-32C of any data followed by its own little-endian CRC (0x48674BC7).

Checking ``crc32c(data_and_crc) == RESIDUE`` verifies a block in one call,
without slicing the CRC off first."""
