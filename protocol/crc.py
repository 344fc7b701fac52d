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


def _raw_kernel() -> tuple[Callable[[bytes, int, bytes], int], int, bytes, int] | None:
    """crcmod's C kernel with its table, bypassing the Python wrapper.

    ``crc32c`` is ``lambda data, crc=init, table=T, fun=K: xorout ^ K(data,
    xorout ^ crc, T)``; calling ``K`` directly saves a Python frame per record
    on the hot path.  The wrapper's shape is checked against the public
    function, and None is returned if crcmod ever changes it.
    """
    defaults = getattr(crc32c, "__defaults__", None)
    if not defaults or len(defaults) != 3:
        return None
    init, table, kernel = defaults
    seed = 0xFFFFFFFF ^ init
    probe = b"turbolog" + crc32c(b"turbolog").to_bytes(4, "little")
    try:
        if 0xFFFFFFFF ^ kernel(b"123456789", seed, table) != CHECK_VALUE:
            return None
        return kernel, seed, table, kernel(probe, seed, table)
    except TypeError:
        return None


RAW_KERNEL = _raw_kernel()
"""``(kernel, seed, table, raw_residue)``: ``kernel(block, seed, table) ==
raw_residue`` verifies a block that ends in its own CRC; None if unavailable."""
