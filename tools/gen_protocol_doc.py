"""Generate the byte tables of docs/protocol.md from protocol.formats and protocol.enums.

The construct Structs in :mod:`protocol.formats` are the single definition of
the bytes; this tool walks them and writes, between marker comments in the
spec, one table per record body and per message payload (offset, field, type,
unit, scale, meaning), the tables of the enum values, and the current schema
fingerprint::

    <!-- generated:records -->  ...  <!-- /generated:records -->

On its first run it turns the placeholders RECORD_TABLES, MESSAGE_TABLES,
ERROR_TABLE and FINGERPRINT into such marker pairs; after that it only
rewrites what lies between markers, so it can be re-run at will.  Every field
must have a description in :data:`DESCRIPTIONS`, and every description must
belong to a field: either mismatch stops the tool, so the spec cannot drift
from the formats unnoticed.

    python tools/gen_protocol_doc.py            rewrite docs/protocol.md
    python tools/gen_protocol_doc.py --check    exit 1 if it is stale

It reads the protocol package and one Markdown file, and writes only that file.
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import itertools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from construct import (
    Array,
    Bytes,
    Construct,
    FixedSized,
    FocusedSeq,
    FormatField,
    GreedyBytes,
    NullStripped,
    Prefixed,
    Rebuild,
    Renamed,
    StringEncoded,
    Struct,
)

# Import the protocol package of this checkout, not whichever one is installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol import enums, formats
from protocol.fault_codes import FAULT_CODES
from protocol.messages import SCHEMA_FINGERPRINT

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"

INT_TYPES = {"B": "u8", "H": "u16", "I": "u32", "L": "u32", "Q": "u64",
             "b": "i8", "h": "i16", "i": "i32", "l": "i32", "q": "i64"}
SCALES = {"x10": "0.1", "x100": "0.01", "x1000": "0.001"}
UNITS = {"rpm": "rpm", "w": "W", "wh": "Wh", "c": "°C", "kpa": "kPa", "pct": "%", "v": "V", "hz": "Hz",
         "s": "s"}

DESCRIPTIONS: dict[str, str] = {
    # The machine at one instant (sample body, fault freeze-frame, LIVE_RSP).
    "state": "engine state, see EngineState",
    "mode": "grid mode, see GridMode",
    "active_fault": "code of the highest-severity fault present, 0 when none",
    "speed_rpm": "shaft speed",
    "power_w": "generator output power (negative while motoring)",
    "tet1_c_x10": "turbine exit temperature, thermocouple #1",
    "tet2_c_x10": "turbine exit temperature, thermocouple #2",
    "compressor_inlet_c_x10": "compressor inlet temperature",
    "ambient_c_x10": "ambient temperature",
    "ambient_pressure_kpa_x100": "ambient pressure (101.325 kPa substituted when the sensor has failed)",
    "fuel_valve_pct_x10": "fuel valve position",
    "fuel_power_w": "fuel energy flow (lower heating value)",
    "dc_bus_v_x10": "DC bus voltage",
    "grid_voltage_v_x10": "grid voltage, line to line",
    "grid_freq_hz_x1000": "grid frequency",
    "operating_s": "lifetime time above 0 rpm (warranty counter)",
    "starts": "lifetime engine starts from 0 rpm (warranty counter)",
    "trips": "lifetime shutdown-class faults",
    "energy_wh": "lifetime energy exported",
    # Sample body, after the snapshot.
    "exhaust_c_x10": "exhaust temperature after the recuperator (the stack); absent from a 54-byte "
                     "sample of earlier firmware",
    # Fault body.
    "FAULT.code": "fault code (controller-specific)",
    "severity": "fault severity, see Severity",
    "subsystem": "subsystem at fault, see Subsystem",
    "flags": "inverter-style event flags present, see EventFlag (bit set)",
    "freeze": "freeze-frame: the machine when the fault was raised",
    # Event body.
    "kind": "what happened, see EventKind",
    "state_from": "engine state before (STATE_CHANGE), else 0; see EngineState",
    "state_to": "engine state after (STATE_CHANGE), else 0; see EngineState",
    "EVENT.level": "access level of the request that caused it (CLOCK_SET, LOG_CLEAR, AUTH), else 0; "
                   "see AccessLevel",
    "value_a": "kind-specific; CLOCK_SET: device time before the set",
    "value_b": "kind-specific; CLOCK_SET: device time after the set",
    # Run-up body (the pre-trigger buffer).
    "fault_seq": "seq of the FAULT record whose run-up this is (written just before this record)",
    "channel": "which channel, see RunupChannel (it gives the unit of one step)",
    "interval_s": "seconds between two values",
    "points": "how many of the last values were measured; the ones before read 0",
    "values": "the channel, oldest first; the last at the record's timestamp (the fault's), in "
              "steps of the channel's unit",
    # Message payloads.
    "request_seq": "frame `seq` of the request this answers",
    "new_time": "device time to set, Unix seconds (UTC)",
    "level": "access level, see AccessLevel",
    "tag": "access-control tag (section 7); 16 zero bytes when not used",
    "start_seq": "first record seq asked for",
    "max_payload": "record bytes per RECORDS frame at most; 0 = as many as fit (1012)",
    "count": "number of records from `start_seq` (READ_SET: 0 asks for none)",
    "ranges": "one range of records",
    "protocol_version": "protocol version the device speaks (2)",
    "schema_fingerprint": "CRC-32C of the canonical text of every format (section 8)",
    "model": "model name, ASCII, 0x00-padded",
    "serial": "serial number, ASCII, 0x00-padded",
    "firmware": "firmware version, ASCII, 0x00-padded",
    "capacity_records": "SAMPLE records (70 bytes) the log is sure to keep, the newest: a lower bound, "
                        "not the most it can hold (section 5)",
    "first_seq": "oldest record seq still in the log",
    "next_seq": "seq the next record written will get",
    "device_time": "device time, Unix seconds (UTC)",
    "baud": "configured line rate, bits per second",
    "max_window": "most records one READ_RANGE or READ_SET may ask for",
    "log_id": "the log's identity: random, made anew with a new or cleared log (section 6)",
    "timestamp": "device time of the snapshot, Unix seconds (UTC)",
    "snapshot": "the machine now",
    "records": "whole records (section 3), back to back, to the end of the payload",
    "first_available": "oldest record seq in the log when the stream ended",
    "sent": "records sent for this request, each seq once",
    "digest": "CRC-32C over the 4-byte CRC fields of the records sent, in order (0 if none)",
    "nonce": "challenge nonce for the access-control exchange",
    "ERROR.code": "what went wrong, see ErrorCode",
    "detail": "human-readable detail, UTF-8",
}
"""Meaning of every field, by name.  ``CONTEXT.name`` (a record type or
message type name) overrides a plain ``name`` where one name means two things."""


class DocError(Exception):
    """The formats cannot be documented as they stand (a field without a
    description, a construct this tool does not know), or the document has no
    place for a table."""


@dataclass(frozen=True)
class Row:
    offset: str
    field: str
    type: str
    unit: str
    scale: str
    meaning: str


@dataclass(frozen=True)
class Offset:
    """A byte offset: a constant plus symbolic terms (``1 + 6i``, ``5 + n``)."""

    const: int
    terms: tuple[str, ...] = ()

    def __add__(self, size: int) -> Offset:
        return Offset(self.const + size, self.terms)

    def plus(self, term: str) -> Offset:
        return Offset(self.const, (*self.terms, term))

    def __str__(self) -> str:
        return " + ".join([str(self.const), *self.terms]) if self.terms else str(self.const)


def unit_and_scale(name: str) -> tuple[str, str]:
    """Unit and scale from the field-name suffixes (``tet1_c_x10`` -> °C, 0.1)."""
    parts = name.split("_")
    scale = SCALES[parts.pop()] if parts[-1] in SCALES else ""
    unit = UNITS.get(parts[-1], "") if len(parts) > 1 else ""
    if scale and not unit:
        raise DocError(f"{name}: scaled field without a unit suffix")
    return unit, (scale or "1") if unit else ""


class Walker:
    """Turns one format into table rows, checking every name against DESCRIPTIONS."""

    def __init__(self, context: str) -> None:
        self.context = context
        self.used: set[str] = set()

    def describe(self, path: str) -> str:
        leaf = re.sub(r"\[i\]", "", path.rsplit(".", 1)[-1])
        for key in (f"{self.context}.{leaf}", leaf):
            if key in DESCRIPTIONS:
                self.used.add(key)
                return DESCRIPTIONS[key]
        raise DocError(f"{self.context}: field {path!r} has no description in DESCRIPTIONS")

    def row(self, offset: Offset, path: str, type_: str, meaning: str | None = None) -> Row:
        leaf = path.rsplit(".", 1)[-1]
        unit, scale = unit_and_scale(leaf)
        return Row(str(offset), f"`{path}`", type_, unit, scale,
                   meaning if meaning is not None else self.describe(path))

    def struct(self, fmt: Construct, prefix: str, offset: Offset) -> tuple[list[Row], Offset]:
        """Rows for the fields of a Struct, and the offset after it."""
        rows: list[Row] = []
        for sub in fmt.subcons:
            if not isinstance(sub, Renamed) or not sub.name:
                raise DocError(f"{self.context}: unnamed field after {prefix or 'start'}")
            more, offset = self.field(sub.subcon, f"{prefix}{sub.name}", offset)
            rows += more
        return rows, offset

    def field(self, con: Construct, path: str, offset: Offset) -> tuple[list[Row], Offset]:
        if isinstance(con, FormatField):
            if con.fmtstr[0] != "<" or con.fmtstr[1:] not in INT_TYPES:
                raise DocError(f"{self.context}.{path}: {con.fmtstr!r} is not a little-endian integer")
            return [self.row(offset, path, INT_TYPES[con.fmtstr[1:]])], offset + con.sizeof()
        if isinstance(con, Bytes) and isinstance(con.length, int):
            return [self.row(offset, path, f"bytes[{con.length}]")], offset + con.length
        if isinstance(con, Array) and isinstance(con.count, int) and isinstance(con.subcon, FormatField):
            kind = INT_TYPES[con.subcon.fmtstr[1:]]
            return [self.row(offset, path, f"{kind}[{con.count}]")], offset + con.sizeof()
        if con is GreedyBytes:
            return [self.row(offset, path, f"bytes[length - {offset}]")], offset.plus("rest")
        if isinstance(con, Struct):
            inner, end = self.struct(con, f"{path}.", offset)
            return [self.row(offset, path, f"struct[{con.sizeof()}]"), *inner], end
        if isinstance(con, StringEncoded):
            return self.string(con, path, offset)
        if isinstance(con, FocusedSeq):
            return self.prefixed_array(con, path, offset)
        raise DocError(f"{self.context}.{path}: no table layout for {type(con).__name__}")

    def string(self, con: StringEncoded, path: str, offset: Offset) -> tuple[list[Row], Offset]:
        inner = con.subcon
        if isinstance(inner, FixedSized) and isinstance(inner.subcon, NullStripped):
            return [self.row(offset, path, f"string[{inner.length}]")], offset + inner.length
        if isinstance(inner, Prefixed) and inner.subcon is GreedyBytes:
            length = f"{path}.length"
            size = inner.lengthfield.sizeof()
            rows = [
                self.row(offset, length, INT_TYPES[inner.lengthfield.fmtstr[1:]],
                         f"n, the length of `{path}` in bytes"),
                self.row(offset + size, path, "string[n]"),
            ]
            return rows, (offset + size).plus("n")
        raise DocError(f"{self.context}.{path}: no table layout for this string")

    def prefixed_array(self, con: FocusedSeq, path: str, offset: Offset) -> tuple[list[Row], Offset]:
        """A construct PrefixedArray: a count, then that many fixed-size Structs."""
        subs = {sub.name: sub.subcon for sub in con.subcons}
        count, items = subs.get("count"), subs.get("items")
        if not (isinstance(count, Rebuild) and isinstance(count.subcon, FormatField)
                and isinstance(items, Array) and isinstance(items.subcon, Struct)):
            raise DocError(f"{self.context}.{path}: no table layout for this sequence")
        stride = items.subcon.sizeof()
        rows = [self.row(offset, f"{path}.count", INT_TYPES[count.subcon.fmtstr[1:]],
                         f"number of entries in `{path}`")]
        start = offset + count.subcon.sizeof()
        element = start.plus(f"{stride}i")
        inner, _ = self.struct(items.subcon, f"{path}[i].", element)
        rows.append(self.row(element, f"{path}[i]", f"struct[{stride}], i < `{path}.count`"))
        return rows + inner, start.plus(f"{stride}·count")


def table(rows: list[Row]) -> str:
    lines = ["| offset | field | type | unit | scale | meaning |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.offset} | {r.field} | {r.type} | {r.unit} | {r.scale} | {r.meaning} |" for r in rows]
    return "\n".join(lines)


def size_text(end: Offset) -> str:
    """The size of a format from the offset after its last field."""
    if "rest" in end.terms:
        return f"at least {end.const} bytes"
    return f"{end} bytes" if end.terms or end.const != 1 else "1 byte"


class Generated:
    """The generated blocks, built once so that unused descriptions can be found."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def rows(self, fmt: Struct, context: str) -> tuple[list[Row], Offset]:
        """The rows of *fmt*, and the offset after its last field."""
        walker = Walker(context)
        rows, end = walker.struct(fmt, "", Offset(0))
        self.used |= walker.used
        return rows, end

    def records(self) -> str:
        out = [
            "### Record bodies",
            "",
            f"Offsets count from the first body byte (record offset {formats.RECORD_HEADER.sizeof()}). "
            "Multiply a raw value by its scale to get the unit: `tet1_c_x10` = 6505 is 650.5 °C.",
        ]
        for rtype, body in sorted(formats.RECORD_BODIES.items()):
            name = enums.RecordType(rtype).name
            rows, end = self.rows(body, name)
            out += ["", f"#### Type {rtype}: {name} ({size_text(end)}; record "
                    f"{size_text(end + formats.RECORD_OVERHEAD)})", "", table(rows)]
        out += ["", "### Record field values"]
        for cls in (enums.RecordType, enums.EngineState, enums.GridMode, enums.Severity, enums.Subsystem,
                    enums.EventFlag, enums.EventKind, enums.RunupChannel):
            out += ["", enum_table(cls)]
        return "\n".join(out)

    def messages(self) -> str:
        out = [
            "### Payloads",
            "",
            f"Offsets count from the first payload byte (frame offset {formats.FRAME_HEADER.sizeof()}); "
            "`length` is the frame's payload length.",
        ]
        for mtype, payload in sorted(formats.MESSAGE_PAYLOADS.items()):
            name = enums.MsgType(mtype).name
            if not payload.subcons:
                out += ["", f"#### 0x{mtype:02X} {name} (empty)", "", "No payload: `length` is 0."]
                continue
            rows, end = self.rows(payload, name)
            out += ["", f"#### 0x{mtype:02X} {name} ({size_text(end)})", "", table(rows)]
        out += ["", "### Access levels", "", enum_table(enums.AccessLevel)]
        return "\n".join(out)

    def errors(self) -> str:
        return enum_table(enums.ErrorCode)

    def check_descriptions_used(self) -> None:
        stale = sorted(set(DESCRIPTIONS) - self.used)
        if stale:
            raise DocError(f"DESCRIPTIONS has entries no format uses: {', '.join(stale)}")


def enum_docs(cls: type[enum.Enum]) -> tuple[str, dict[str, str]]:
    """The class docstring and the docstrings written under members in the
    source (Python does not keep the latter at run time)."""
    classdef = ast.parse(inspect.getsource(cls)).body[0]
    assert isinstance(classdef, ast.ClassDef)
    docs: dict[str, str] = {}
    for stmt, nxt in itertools.pairwise(classdef.body):
        if (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.targets[0].id] = " ".join(nxt.value.value.split())
    return " ".join((ast.get_docstring(classdef) or "").split()), docs


def enum_table(cls: type[enum.IntEnum] | type[enum.IntFlag]) -> str:
    doc, member_docs = enum_docs(cls)
    is_flag = issubclass(cls, enum.IntFlag)
    lines = [f"#### {cls.__name__}" + (" (bit flags)" if is_flag else ""), ""]
    if doc:
        lines += [doc, ""]
    members = [m for m in cls.__members__.values() if not (is_flag and m.value == 0)]
    if member_docs:
        lines += ["| value | name | meaning |", "|---|---|---|"]
    else:
        lines += ["| value | name |", "|---|---|"]
    for member in members:
        value = f"0x{member.value:04X}" if is_flag else str(member.value)
        meaning = f" {member_docs.get(member.name, '')} |" if member_docs else ""
        lines.append(f"| {value} | `{member.name}` |{meaning}")
    return "\n".join(lines)


def fault_code_table() -> str:
    """Every fault code of protocol.fault_codes, with its meaning."""
    lines = ["| code | name | subsystem | severity | description | action |", "|---|---|---|---|---|---|"]
    for d in FAULT_CODES.values():
        lines.append(f"| {d.code} | {d.name} | `{d.subsystem.name}` | `{d.severity.name}` | "
                     f"{d.description} | {d.action} |")
    return "\n".join(lines)


def schema_block() -> str:
    """The canonical schema text (protocol.formats.schema_text), one ``;``-separated part a line."""
    return "```\n" + "\n".join(formats.schema_text().split(";")) + "\n```"


BLOCKS: dict[str, str] = {
    "records": "RECORD_TABLES", "faults": "FAULT_CODE_TABLE", "messages": "MESSAGE_TABLES",
    "errors": "ERROR_TABLE", "schema": "SCHEMA_TEXT",
}
"""Block marker key -> the placeholder line it replaces on the first run."""


def render(text: str) -> str:
    """*text* with every generated block (re)filled."""
    generated = Generated()
    builders: dict[str, Callable[[], str]] = {
        "records": generated.records, "faults": fault_code_table, "messages": generated.messages,
        "errors": generated.errors, "schema": schema_block,
    }
    for key, placeholder in BLOCKS.items():
        block = (f"<!-- generated:{key} by tools/gen_protocol_doc.py from protocol/; do not edit -->\n"
                 f"{builders[key]()}\n<!-- /generated:{key} -->")
        text = _replace_once(text, key, re.compile(
            rf"<!-- generated:{key}\b[^>]*-->\n.*?<!-- /generated:{key} -->", re.S
        ), re.compile(rf"^{placeholder}$", re.M), block)
    generated.check_descriptions_used()
    fingerprint = (f"<!-- generated:fingerprint -->`0x{SCHEMA_FINGERPRINT:08X}`"
                   "<!-- /generated:fingerprint -->")
    return _replace_once(text, "fingerprint", re.compile(
        r"<!-- generated:fingerprint -->.*?<!-- /generated:fingerprint -->"
    ), re.compile(r"`?\bFINGERPRINT\b`?"), fingerprint)


def _replace_once(text: str, key: str, marked: re.Pattern[str], placeholder: re.Pattern[str],
                  new: str) -> str:
    found = {"markers": len(marked.findall(text)), "placeholder": len(placeholder.findall(text))}
    if found == {"markers": 1, "placeholder": 0}:
        return marked.sub(lambda _: new, text)
    if found == {"markers": 0, "placeholder": 1}:
        return placeholder.sub(lambda _: new, text)
    raise DocError(f"{key}: expected one marker pair or one placeholder, found {found}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    parser.add_argument("--doc", type=Path, default=DOC, help="the Markdown file (default: %(default)s)")
    args = parser.parse_args(argv)
    current = args.doc.read_text(encoding="utf-8")
    try:
        wanted = render(current)
    except DocError as exc:
        print(f"gen_protocol_doc: {exc}", file=sys.stderr)
        return 2
    if wanted == current:
        print(f"{args.doc}: up to date")
        return 0
    if args.check:
        print(f"{args.doc} is stale: run python tools/gen_protocol_doc.py", file=sys.stderr)
        return 1
    args.doc.write_text(wanted, encoding="utf-8")
    print(f"{args.doc}: tables regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
