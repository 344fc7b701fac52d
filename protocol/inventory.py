"""A fleet inventory, the list of units to dial, as text: TOML or CSV <-> :class:`InventoryEntry`.

Both sides agree on it here, once: ``turbosim serve-fleet`` writes the inventory it serves and
``turbolog poll`` reads it.  An entry names how to reach a unit (a device path or a URL of a scheme
the host opens), optionally its line rate, the serial number expected there, and a group and site
for the operator's own use::

    [[unit]]                            url,baud,serial,group,site
    url = "socket://127.0.0.1:7000"     socket://127.0.0.1:7000,9600,C30-000001,north,plant-7
    baud = 9600                         /dev/ttyUSB0,,,,
    serial = "C30-000001"
    group = "north"
    site = "plant-7"

In CSV the header row names the columns (``url`` required, the others optional, in any order) and
an empty cell is an absent value.  Anything that is not a well-formed inventory (a malformed line,
an unknown key or column, a duplicate URL, a scheme the host cannot open, a baud that is not a
positive integer, an inventory of no units) raises :class:`~protocol.errors.InventoryError` naming
its line.  Pure text in, values out: this module opens no file and dials nothing.
"""

from __future__ import annotations

import csv
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from .errors import InventoryError

KINDS = ("toml", "csv")
"""The inventory formats, by the name a caller passes as ``kind``."""

FIELDS = ("url", "baud", "serial", "group", "site")
"""An entry's keys (TOML) or columns (CSV), in their written order."""

SCHEMES = frozenset({"socket", "rfc2217", "turbosim", "loop", "spy"})
"""URL schemes the host opens (pyserial's and the emulator's in-process line); anything without
``://`` is a device path."""

TABLE = "unit"
"""The TOML array of tables that lists the units: ``[[unit]]``."""


@dataclass(frozen=True)
class InventoryEntry:
    """One unit to dial: where (``url``), at what line rate, and what serial number should answer."""

    url: str
    baud: int | None = None
    serial: str | None = None
    """The serial number expected at ``url``; None when any unit may answer."""
    group: str | None = None
    site: str | None = None

    def __post_init__(self) -> None:
        _check_text("url", self.url)
        scheme = scheme_of(self.url)
        if scheme is not None and scheme not in SCHEMES:
            known = ", ".join(f"{name}://" for name in sorted(SCHEMES))
            reason = f"unknown scheme {scheme}:// in {self.url!r} (known: {known}, or a device path)"
            raise _FieldError("url", reason)
        if self.baud is not None and (
            isinstance(self.baud, bool) or not isinstance(self.baud, int) or self.baud <= 0
        ):
            raise _FieldError("baud", f"bad baud {self.baud!r}: a positive integer (bit/s)")
        for name in ("serial", "group", "site"):
            value = getattr(self, name)
            if value is not None:
                _check_text(name, value)


def scheme_of(url: str) -> str | None:
    """The lower-cased scheme of *url* (``socket`` of ``socket://host:port``); None for a device path."""
    scheme, separator, _ = url.partition("://")
    return scheme.lower() if separator else None


def same_unit_key(url: str) -> str:
    """What two URLs that reach the same place share (schemes are case-blind)."""
    scheme = scheme_of(url)
    return url if scheme is None else f"{scheme}://{url.partition('://')[2]}"


class _FieldError(InventoryError):
    """An entry's *field* holds a value no inventory may hold."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def _check_text(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise _FieldError(name, f"{name} must be text, not {value!r}")
    if not value:
        raise _FieldError(name, f"{name} is empty")
    if value != value.strip():
        raise _FieldError(name, f"{name} {value!r} starts or ends with white space")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in value):
        raise _FieldError(name, f"{name} {value!r} holds a control character")


def parse_inventory(text: str, *, kind: str) -> list[InventoryEntry]:
    """The entries of an inventory written as *kind* (``"toml"`` or ``"csv"``), in their order."""
    if kind == "toml":
        entries = _parse_toml(text)
    elif kind == "csv":
        entries = _parse_csv(text)
    else:
        raise ValueError(f"unknown inventory kind {kind!r} (known: {', '.join(KINDS)})")
    if not entries:
        raise InventoryError("the inventory lists no units")
    return [entry for entry, _ in entries]


def format_inventory(entries: Iterable[InventoryEntry], *, kind: str) -> str:
    """*entries* written as *kind* (``"toml"`` or ``"csv"``); :func:`parse_inventory` reads it back."""
    if kind == "toml":
        return "\n".join(_toml_table(entry) for entry in entries)
    if kind == "csv":
        out = _Text()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(FIELDS)
        for entry in entries:
            writer.writerow(["" if value is None else value for value in _values(entry)])
        return "".join(out)
    raise ValueError(f"unknown inventory kind {kind!r} (known: {', '.join(KINDS)})")


class _Text(list[str]):
    """Where :mod:`csv` writes: the pieces of the text, in order."""

    def write(self, piece: str) -> None:
        self.append(piece)


def _lines(text: str) -> list[str]:
    """*text*'s lines with their ends, split where TOML and CSV end a line (at LF only)."""
    pieces = text.split("\n")
    return [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])


def _values(entry: InventoryEntry) -> list[str | int | None]:
    return [getattr(entry, field.name) for field in fields(entry)]


def _toml_table(entry: InventoryEntry) -> str:
    lines = [f"[[{TABLE}]]"]
    for name, value in zip(FIELDS, _values(entry), strict=True):
        if value is not None:
            lines.append(f"{name} = {value if isinstance(value, int) else _toml_string(value)}")
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class _Entries(list[tuple[InventoryEntry, int]]):
    """Entries with their lines, refusing a URL seen before."""

    def __init__(self) -> None:
        super().__init__()
        self._lines: dict[str, int] = {}

    def add(self, values: Mapping[str, object], line: int, *, key_lines: Mapping[str, int]) -> None:
        try:
            entry = InventoryEntry(**values)  # type: ignore[arg-type]
        except _FieldError as exc:
            raise InventoryError(exc.reason, line=key_lines.get(exc.field, line)) from None
        key = same_unit_key(entry.url)
        if key in self._lines:
            first = self._lines[key]
            reason = f"duplicate URL {entry.url} (first on line {first})"
            raise InventoryError(reason, line=key_lines.get("url", line))
        self._lines[key] = line
        self.append((entry, line))


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column \d+\)$")
_TOML_HEADER = re.compile(r"^\s*\[\[\s*" + TABLE + r"\s*\]\]")
_TOML_TABLE = re.compile(r"^\s*\[")
_TOML_KEY = re.compile(r"^\s*\"?([A-Za-z0-9_-]+)\"?\s*=")


def _parse_toml(text: str) -> list[tuple[InventoryEntry, int]]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        line = int(found.group(1)) if found else None
        raise InventoryError(f"not TOML: {_TOML_POSITION.sub('', message)}", line=line) from None
    lines = [line.rstrip("\r\n") for line in _lines(text)]
    for key in document:
        if key != TABLE:
            raise InventoryError(
                f"unknown top-level key {key!r} (list units as [[{TABLE}]] tables)",
                line=_first_line(lines, key) or 1,
            )
    units = document.get(TABLE, [])
    headers = [number for number, line in enumerate(lines, 1) if _TOML_HEADER.match(line)]
    if not isinstance(units, list) or len(headers) != len(units):
        raise InventoryError(f"list units as [[{TABLE}]] tables", line=_first_line(lines, TABLE) or 1)
    entries = _Entries()
    for index, (unit, header) in enumerate(zip(units, headers, strict=True)):
        end = headers[index + 1] if index + 1 < len(headers) else len(lines) + 1
        key_lines = _key_lines(lines, header, end)
        for key in unit:
            if key not in FIELDS:
                raise InventoryError(
                    f"unknown key {key!r} in a [[{TABLE}]] (known: {', '.join(FIELDS)})",
                    line=key_lines.get(key, header),
                )
        if "url" not in unit:
            raise InventoryError(f"a [[{TABLE}]] without url", line=header)
        entries.add(unit, header, key_lines=key_lines)
    return list(entries)


def _first_line(lines: list[str], key: str) -> int | None:
    for number, line in enumerate(lines, 1):
        found = _TOML_KEY.match(line)
        if (found and found.group(1) == key) or re.match(r"^\s*\[+\s*" + re.escape(key) + r"\s*\]", line):
            return number
    return None


def _key_lines(lines: list[str], header: int, end: int) -> dict[str, int]:
    """The line of each key of the table whose header is on line *header*, up to line *end*."""
    found: dict[str, int] = {}
    for number in range(header + 1, end):
        line = lines[number - 1]
        if _TOML_TABLE.match(line):
            break
        key = _TOML_KEY.match(line)
        if key:
            found.setdefault(key.group(1), number)
    return found


def _parse_csv(text: str) -> list[tuple[InventoryEntry, int]]:
    reader = csv.reader(_lines(text.removeprefix("\ufeff")), strict=True)
    columns: list[str] | None = None
    entries = _Entries()
    begins = 1
    try:
        for row in reader:
            line, begins = begins, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if columns is None:
                columns = _csv_header(row, line)
                continue
            if len(row) != len(columns):
                raise InventoryError(f"{len(row)} fields where the header names {len(columns)}", line=line)
            values: dict[str, object] = {
                name: _csv_value(name, cell.strip(), line) for name, cell in zip(columns, row, strict=True)
            }
            if values["url"] is None:
                raise InventoryError("no url", line=line)
            entries.add({k: v for k, v in values.items() if v is not None}, line, key_lines={})
    except csv.Error as exc:
        raise InventoryError(f"not CSV: {exc}", line=begins) from None
    return list(entries)


def _csv_header(row: list[str], line: int) -> list[str]:
    columns = [cell.strip().lower() for cell in row]
    for name in columns:
        if name not in FIELDS:
            raise InventoryError(
                f"unknown column {name!r} in the header (known: {', '.join(FIELDS)})", line=line
            )
    if len(set(columns)) != len(columns):
        raise InventoryError("a column named twice in the header", line=line)
    if "url" not in columns:
        raise InventoryError("the header has no url column", line=line)
    return columns


def _csv_value(name: str, cell: str, line: int) -> str | int | None:
    if not cell:
        return None
    if name != "baud":
        return cell
    if not cell.isascii() or not cell.isdigit():
        raise InventoryError(f"bad baud {cell!r}: a positive integer (bit/s)", line=line)
    return int(cell)
