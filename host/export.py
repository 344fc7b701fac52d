"""Exports of one unit's archived log, chosen by format through one registry.

Every record of the unit, epoch by epoch (each archived log of its serial,
oldest first: the last column, ``epoch``), in seq order, becomes one row: the columns in
:data:`COLUMNS`, named as every output names them (docs/fields.md, :mod:`host.fields`):
values in engineering units with the unit in the column name
(``tet1_c``, ``ambient_pressure_kpa``, ``operating_hours``), ``time`` as ISO 8601 UTC, named
values (states, severities, subsystems, event kinds) by name; a fault's columns are named as
``faults --json`` names them, an event's as the Parquet export does.  A column that does not
apply to a record's type is empty (CSV) or absent (JSON lines).  Rows are decoded from the raw bytes
the archive kept, and streamed: memory stays bounded for any log size.  A
:class:`~host.window.Window` keeps only the records whose timestamps it holds.

:data:`EXPORTERS` maps a format name to an :class:`Exporter`, as python-can's
io registry maps a suffix to its writer.  A new format is one writer function
and one entry; a binary format (``binary=True``) gets a binary stream, and a
directory format (``parquet``: :mod:`host.export_parquet`) writes the archive,
every unit or one, to a directory instead.  This module never changes the archive.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import IO, Any

from protocol.enums import EngineState, EventKind, RecordType, RunupChannel, Severity, Subsystem, name_of
from protocol.errors import RecordError
from protocol.records import (
    RUNUP_CHANNELS,
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    Record,
    RunupRecord,
    SampleRecord,
    Snapshot,
    decode_record,
)

from .archive import Archive
from .errors import ArchiveError, UsageError
from .export_parquet import export_parquet
from .fields import iso_time, snapshot_fields
from .output_file import output_file
from .window import Window

Row = dict[str, Any]

_SNAPSHOT_COLUMNS: tuple[str, ...] = tuple(snapshot_fields(Snapshot(*(0,) * len(SNAPSHOT_FIELDS))))
_FAULT_COLUMNS = ("code", "severity", "subsystem", "flags")
_EVENT_COLUMNS = ("kind", "state_from", "state_to", "level", "value_a", "value_b")
_RUNUP_COLUMNS = ("fault_seq", "channel", "interval_s", "runup_unit", "runup_values")

COLUMNS: tuple[str, ...] = (
    "seq", "time", "type", *_SNAPSHOT_COLUMNS, "exhaust_c", *_FAULT_COLUMNS, *_EVENT_COLUMNS,
    *_RUNUP_COLUMNS, "body_hex", "epoch",
)
"""Every export column, in order.  Samples fill the snapshot columns and ``exhaust_c`` (the
exhaust after the recuperator; empty in a sample of earlier firmware); faults fill them with
their freeze-frame plus code, severity, subsystem and flags; events fill kind .. value_b;
run-ups (pre-trigger buffers) fill fault_seq .. runup_values: the measured values, oldest first,
in ``runup_unit``, the last at the record's time (a list in JSON lines, space-separated in CSV);
records of an unknown type or length fill ``body_hex``."""


def record_row(record: Record, epoch: int = 1) -> Row:
    """The export row of one record of archive *epoch*: only the columns that apply to its type."""
    row: Row = {
        "seq": record.seq,
        "time": iso_time(record.timestamp),
    }
    if isinstance(record, SampleRecord):
        row["type"] = RecordType.SAMPLE.name
        row.update(snapshot_fields(record.snapshot))
        if record.exhaust_c is not None:
            row["exhaust_c"] = record.exhaust_c
    elif isinstance(record, FaultRecord):
        row["type"] = RecordType.FAULT.name
        row.update(snapshot_fields(record.freeze))
        row["code"] = record.code
        row["severity"] = name_of(Severity, record.severity)
        row["subsystem"] = name_of(Subsystem, record.subsystem)
        row["flags"] = record.flags
    elif isinstance(record, EventRecord):
        row["type"] = RecordType.EVENT.name
        row["kind"] = name_of(EventKind, record.kind)
        row["state_from"] = name_of(EngineState, record.state_from)
        row["state_to"] = name_of(EngineState, record.state_to)
        row["level"] = record.level
        row["value_a"] = record.value_a
        row["value_b"] = record.value_b
    elif isinstance(record, RunupRecord):
        row["type"] = RecordType.RUNUP.name
        row["fault_seq"] = record.fault_seq
        row["channel"] = name_of(RunupChannel, record.channel)
        row["interval_s"] = record.interval_s
        spec = RUNUP_CHANNELS.get(record.channel)
        row["runup_unit"] = spec.unit if spec is not None else ""
        row["runup_values"] = [value for _, value in record.series()]
    else:
        row["type"] = name_of(RecordType, record.type)
        row["body_hex"] = record.body.hex()
    row["epoch"] = epoch
    return row


def _write_csv(rows: Iterable[Row], out: IO[str]) -> int:
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        values = row.get("runup_values")
        if values is not None:
            row = {**row, "runup_values": " ".join(map(str, values))}
        writer.writerow(row)
        count += 1
    return count


def _write_jsonl(rows: Iterable[Row], out: IO[str]) -> int:
    count = 0
    for row in rows:
        out.write(json.dumps(row, separators=(",", ":")) + "\n")
        count += 1
    return count


@dataclass(frozen=True, slots=True)
class Exporter:
    """One export format: how it writes rows, and to what kind of stream."""

    name: str
    suffix: str
    description: str
    write: Callable[[Iterable[Row], IO[Any]], int] | None
    """Writes one unit's rows to a stream, returns how many (None for a directory format)."""
    binary: bool = False
    """True when :attr:`write` takes a binary stream."""
    write_directory: Callable[[Archive, str | os.PathLike[str], str | None], int] | None = None
    """Writes the records of every unit, or of the one named, as a directory; returns how many."""
    write_share: Callable[[Archive, str | os.PathLike[str], str | None, str], int] | None = None
    """As :attr:`write_directory`, as the share named by the last argument, into a directory
    shared with other archives (None: the format has no shares)."""


EXPORTERS: dict[str, Exporter] = {
    "csv": Exporter("csv", ".csv", "comma-separated values, one header line, every column", _write_csv),
    "jsonl": Exporter("jsonl", ".jsonl", "one JSON object per record, only its own columns", _write_jsonl),
    "parquet": Exporter(
        "parquet", "", "a Parquet dataset (a directory) of every unit or one, partitioned by model and year",
        None, binary=True, write_directory=export_parquet, write_share=export_parquet,
    ),
}


def _rows(archive: Archive, serial: str, epochs: list[int], window: Window) -> Generator[Row, None, None]:
    for epoch in epochs:
        for seq, raw in archive.iter_raw(serial, epoch):
            try:
                record = decode_record(raw)
            except RecordError as exc:
                raise ArchiveError(
                    f"archive {archive.path}: record {seq} of {serial} is damaged: {exc}"
                ) from exc
            if window.contains(record.timestamp):
                yield record_row(record, epoch)


def export(
    archive: Archive,
    serial: str | None,
    fmt: str,
    out: IO[Any] | str | os.PathLike[str],
    epoch: int | None = None,
    window: Window | None = None,
    part: str | None = None,
) -> int:
    """Write every archived record of *serial* (every epoch, or only *epoch*) in format *fmt* to
    *out* (only those *window* holds); returns the record count.

    *out* is an open stream (text, or binary for a binary format) or a
    target for :func:`host.output_file.output_file` (a path, written to a
    temporary file beside it and renamed into place only when complete; a
    device or FIFO, written in place; ``-``, standard output).  A directory
    format takes the directory's path, and *serial* None for every unit; with *part* it adds
    this archive's share, so named, to a directory shared with other archives.
    Raises UsageError for an unknown format, a missing serial or an out of
    the wrong kind, :class:`~host.errors.UnknownUnit`, and OutputError when a
    target cannot be written; an error writing a stream the caller opened is
    the caller's, and propagates as it is.
    """
    window = window or Window()
    exporter = EXPORTERS.get(fmt)
    if exporter is None:
        raise UsageError(f"unknown export format {fmt!r}: choose one of {', '.join(sorted(EXPORTERS))}")
    if exporter.write_directory is not None:
        if not isinstance(out, (str, os.PathLike)):
            raise UsageError(f"format {fmt} writes a directory: give its path, not a stream")
        if epoch is not None or window.bounded:
            raise UsageError(f"format {fmt} writes every epoch and every record: no epoch or window")
        if part is None:
            return exporter.write_directory(archive, out, serial)
        if exporter.write_share is None:
            raise UsageError(f"format {fmt} writes no shares of a dataset: leave out the part")
        return exporter.write_share(archive, out, serial, part)
    if serial is None:
        raise UsageError(f"format {fmt} exports one unit: name its serial number")
    archive.unit(serial, epoch)
    epochs = [row.epoch for row in archive.epochs(serial) if epoch is None or row.epoch == epoch]
    if isinstance(out, (str, os.PathLike)):
        with output_file(out, binary=exporter.binary) as stream:
            return _write(exporter, archive, serial, stream, epochs, window)
    if exporter.binary == isinstance(out, io.TextIOBase):
        kind = "binary" if exporter.binary else "text"
        raise UsageError(f"format {fmt} writes {kind}; the stream given is not {kind}")
    return _write(exporter, archive, serial, out, epochs, window)


def _write(
    exporter: Exporter, archive: Archive, serial: str, out: IO[Any], epochs: list[int], window: Window
) -> int:
    assert exporter.write is not None  # a directory format never gets here
    rows = _rows(archive, serial, epochs, window)
    try:
        return exporter.write(rows, out)
    finally:
        rows.close()  # now, while the archive is open: its cursors close with it
