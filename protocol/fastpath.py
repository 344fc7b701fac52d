"""Derive ``struct.Struct`` layouts from the construct definitions.

construct parses a record in about 20 microseconds; ``struct`` does it in well
under one.  The hot decode path therefore uses layouts *generated* from
:mod:`protocol.formats`, never written by hand: a field added there appears
here by itself, and the tests check on every record that both paths agree.

Only fixed-size formats made of integer fields, fixed byte strings, arrays of
a fixed count of integers (one leaf per element, ``values.0``, ``values.1``,
...) and nested Structs of those can be derived; anything else raises
:class:`~protocol.errors.LocalProtocolError` at import time, where a developer
sees it, rather than silently falling back to a slow path.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from construct import Array, Bytes, Construct, FormatField, Renamed, Struct

from .errors import LocalProtocolError


@dataclass(frozen=True)
class FlatLayout:
    """A construct Struct flattened into one ``struct.Struct``.

    ``names`` lists the leaf fields in wire order; a field of a nested Struct
    is named ``outer.inner``.
    """

    struct: struct.Struct
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.struct.size


def _leaves(fmt: Construct, prefix: str) -> list[tuple[str, str]]:
    if isinstance(fmt, Struct):
        leaves: list[tuple[str, str]] = []
        for sub in fmt.subcons:
            if not isinstance(sub, Renamed) or sub.name is None:
                raise LocalProtocolError(f"unnamed field in {prefix or 'struct'}")
            leaves += _leaves(sub.subcon, f"{prefix}{sub.name}.")
        return leaves
    name = prefix.rstrip(".")
    if isinstance(fmt, FormatField):
        if fmt.fmtstr[0] != "<":
            raise LocalProtocolError(f"{name}: only little-endian fields are derived")
        return [(name, fmt.fmtstr[1:])]
    if isinstance(fmt, Bytes) and isinstance(fmt.length, int):
        return [(name, f"{fmt.length}s")]
    if isinstance(fmt, Array) and isinstance(fmt.count, int) and isinstance(fmt.subcon, FormatField):
        return [leaf for i in range(fmt.count) for leaf in _leaves(fmt.subcon, f"{name}.{i}.")]
    raise LocalProtocolError(f"{name}: {type(fmt).__name__} has no fixed struct layout")


def flatten(*formats: Construct) -> FlatLayout:
    """Concatenate fixed-size formats into one little-endian layout."""
    leaves: list[tuple[str, str]] = []
    for fmt in formats:
        leaves += _leaves(fmt, "")
    layout = FlatLayout(
        struct=struct.Struct("<" + "".join(code for _, code in leaves)),
        names=tuple(name for name, _ in leaves),
    )
    expected = sum(f.sizeof() for f in formats)
    if layout.size != expected:
        raise LocalProtocolError(f"derived layout is {layout.size} bytes, construct says {expected}")
    return layout
