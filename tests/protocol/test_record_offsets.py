"""Where a field sits in a record's bytes is protocol's to say, once: checked on the source with ast.

A record is ``seq u32 | timestamp u32 | type u8 | length u8 | body | crc u32`` (protocol.formats).
Code in firmware_sim and host that reads a field by hand (``raw[:4]``, ``raw[4:8]``, ``raw[8]``,
``data[pos + 9]``, ``raw[-4:]``, ``struct.Struct("<I")``) repeats that layout; it must call
protocol instead (``record_header``, ``record_seq``, ``record_timestamp``, ``record_crc``,
``protocol.flash_log.scan_sector``, ...).  The offsets flagged are derived from the formats.

A subscript cannot tell record bytes from a database row, so the few others that use the same
numbers are named below with what they are.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import formats

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("firmware_sim", "host")


def _field_edges() -> tuple[set[int], set[int]]:
    """Offsets where a record's fields start or end (the CRC's counted from the end), and the
    offsets of its one-byte fields (type, length)."""
    edges: set[int] = set()
    single: set[int] = set()
    offset = 0
    for sub in formats.RECORD_HEADER.subcons:
        size = sub.sizeof()
        if size == 1:
            single.add(offset)
        offset += size
        edges.add(offset)
    crc = formats.RECORD_TRAILER.sizeof()
    edges.add(-crc)
    return edges, single | {-crc}


EDGES, SINGLE_BYTES = _field_edges()
ONE_FIELD_STRUCT = re.compile(r"^<[BbHhIiQq]$")
"""A struct format that reads one little-endian integer: how a record field is read by hand."""

NOT_RECORD_BYTES = {
    ("host/analytics.py", "row[9]"): "the epoch column of a units table row (SQL)",
    ("host/analytics.py", "row[:9]"): "the unit columns of a units table row (SQL)",
    ("host/analytics.py", "row[:4]"): "the unit columns before record_count, of a units table row (SQL)",
    ("host/analytics.py", "row[5:9]"): "the unit columns after record_count, of a units table row (SQL)",
    ("host/poll.py", "digest[:8]"): "the first 8 bytes of a URL's SHA-256 (the shard it falls in)",
    ("host/fleet_report.py", "as_of[:10]"): "the date of an ISO-8601 time",
    ("host/transport.py", "raw[:4]"): "a lock file's binary pid",
}
"""Subscripts with a record's numbers that are not on record bytes, and what they are."""

def _constants(node: ast.expr | None) -> list[int]:
    """The int constants of an index or slice bound: ``8``, ``-4``, ``pos + 9``."""
    if node is None:
        return []
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return [node.value]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return [-value for value in _constants(node.operand)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _constants(node.left) + _constants(node.right)
    return []


def _uses_record_offset(node: ast.Subscript) -> bool:
    index = node.slice
    if isinstance(index, ast.Slice):
        return any(value in EDGES for value in _constants(index.lower) + _constants(index.upper))
    return any(value in SINGLE_BYTES for value in _constants(index))


def _is_one_field_struct(node: ast.Call) -> bool:
    func = node.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return False
    if func.value.id != "struct":
        return False
    first = node.args[0] if node.args else None
    return isinstance(first, ast.Constant) and isinstance(first.value, str) and bool(
        ONE_FIELD_STRUCT.match(first.value)
    )


def record_offset_uses(root: Path) -> Iterator[tuple[str, int, str]]:
    """``(path, line, code)`` of every record offset or one-field struct in firmware_sim and host
    under *root* (those of NOT_RECORD_BYTES too)."""
    for package in CHECKED:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), name)):
                if (isinstance(node, ast.Subscript) and _uses_record_offset(node)) or (
                    isinstance(node, ast.Call) and _is_one_field_struct(node)
                ):
                    yield name, node.lineno, ast.unparse(node)


def record_fields_read_by_hand(root: Path) -> list[str]:
    """What :func:`test_no_record_offsets_outside_protocol` refuses, as ``path:line: code``."""
    return [
        f"{path}:{line}: {code}"
        for path, line, code in record_offset_uses(root)
        if (path, code) not in NOT_RECORD_BYTES
    ]


def test_no_record_offsets_outside_protocol() -> None:
    found = record_fields_read_by_hand(ROOT)
    assert not found, "record fields read by hand (use protocol.records, protocol.flash_log):\n" + "\n".join(
        found
    )


def test_every_exception_is_still_needed() -> None:
    """An exception nobody needs any more is removed, so that the list stays honest."""
    assert set(NOT_RECORD_BYTES) <= {(path, code) for path, _, code in record_offset_uses(ROOT)}


@pytest.mark.parametrize(("code", "flagged"), [
    ("seq = int.from_bytes(raw[:4], 'little')", True),
    ("t = int.from_bytes(last[4:8], 'little')", True),
    ("kind = raw[8]", True),
    ("end = pos + 14 + data[pos + 9]", True),
    ("crc = raw[-4:]", True),
    ("SEQ = struct.Struct('<I')", True),
    ("seq, = struct.unpack_from('<I', data, pos)", True),
    ("first = row[0]", False),
    ("body = raw[1:-1]", False),
    ("BODY = struct.Struct('<4sI32s')", False),
    ("baud, = struct.unpack('!I', value)", False),
])
def test_the_check_sees_a_field_read_by_hand(tmp_path: Path, code: str, flagged: bool) -> None:
    (tmp_path / "host").mkdir()
    (tmp_path / "firmware_sim").mkdir()
    (tmp_path / "host" / "reader.py").write_text(f"import struct\n{code}\n")
    assert bool(record_fields_read_by_hand(tmp_path)) == flagged
