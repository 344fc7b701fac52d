"""`turbolog export --format parquet`: the archive as a partitioned Parquet dataset, for other tools.

:func:`export_parquet` writes a directory (pyarrow, the optional extra
``turbolog[parquet]``)::

    OUT/units.parquet                              one row per archived log of a unit: serial,
                                                   epoch, model, firmware, log bounds, clock
                                                   (device_time, a UTC timestamp) and counters
                                                   as last identified
    OUT/samples/model=C60/year=2006/part-0.parquet   one row per record, Hive-partitioned by
    OUT/faults/model=.../year=.../...                model and by the UTC year of the record
    OUT/events/...
    OUT/runups/...                                 pre-trigger buffers: ``value_0`` .. ``value_59``
    OUT/other_records/...                          unknown types and lengths: header and raw bytes

With ``--part NAME`` (one share per archive, e.g. per host of a sharded ``turbolog poll``) every
file is ``part-NAME.parquet`` instead (``OUT/units/part-NAME.parquet`` for the units table), and
OUT may already hold other archives' shares: shares of different names never collide, so the
hosts of a fleet export into one dataset (docs/fleet-polling.md has the DuckDB and Spark queries).

Record rows carry ``serial``, ``epoch`` (which archived log of the serial), ``seq``,
``time`` (a UTC timestamp, the record's header ``timestamp``) and then
every field of their format in wire units and wire types, named as in the
archive (``tet1_c_x10`` is tenths of a degree; a fault's freeze-frame fields
drop the ``freeze.`` prefix; a run-up's ``values`` are one list column, ``runup_steps``, in
steps of its channel's unit, :data:`protocol.records.RUNUP_CHANNELS`), and the record's own
``crc`` (CRC-32C), so any row can be packed back into the record's bytes and verified.  Every
name is in docs/fields.md, the one vocabulary of turbolog's outputs: a wire name is the
vocabulary's name in the unit the device logs (``operating_s``, ``energy_wh``),
with ``_x10``/``_x100``/``_x1000`` where it logs tenths, hundredths, thousandths.  Rows come
from :meth:`~host.archive.Archive.iter_rows` (unknown records: decoded from
their raw bytes by :func:`protocol.records.decode_batch`), which checks every
CRC again: a damaged record stops the export (:class:`~host.errors.ArchiveError`).  One
unit's records, plus at most a row group per partition, are in memory.

The dataset is built in a temporary directory of its own beside OUT and renamed into
place when complete; OUT must not exist or must be an empty directory (whose
permissions it keeps).  A symlink is followed: the dataset replaces its
target, the link stays.  ``-`` (standard output) is refused: a dataset is a
directory.  Files are written
in the calling thread (the archive's connections belong to it).  This module
never changes the archive, and imports pyarrow only when it exports.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from protocol.enums import RecordType
from protocol.records import LAYOUTS, decode_batch

from .archive import Archive, column_of
from .errors import ArchiveError, OutputError, UsageError

ROWS_PER_GROUP = 1 << 17
"""Rows gathered into one Parquet row group (across units)."""

DATASETS: dict[str, int | None] = {
    "samples": RecordType.SAMPLE,
    "faults": RecordType.FAULT,
    "events": RecordType.EVENT,
    "runups": RecordType.RUNUP,
    "other_records": None,
}
"""Dataset directory -> the record type whose archive table of the same name it holds (None: the rest)."""

_STRUCT_TYPES = {
    "B": "uint8", "H": "uint16", "I": "uint32", "L": "uint32", "Q": "uint64",
    "b": "int8", "h": "int16", "i": "int32", "l": "int32", "q": "int64",
}
"""Arrow types of the struct codes of little-endian (standard size) layouts."""
_HEADER_FIELDS = ("seq", "timestamp", "type", "length")
_UNIT_COLUMNS = (
    ("serial", "string"), ("epoch", "uint32"), ("model", "string"), ("firmware", "string"),
    ("schema_fingerprint", "uint32"),
    ("capacity_records", "uint32"), ("first_seq", "uint32"), ("next_seq", "uint32"),
    ("device_time", "timestamp"), ("operating_s", "uint32"), ("starts", "uint32"), ("trips", "uint32"),
    ("energy_wh", "uint64"), ("records", "uint64"),
)
"""units.parquet's columns: each an archive ``units`` column of that name (``records``: ``record_count``);
``timestamp`` is a UTC timestamp made of Unix seconds."""


def _field_types(rtype: int) -> list[tuple[str, str]]:
    """(column name, arrow type name) of every field of a record layout, in wire order."""
    layout = LAYOUTS[rtype]
    codes = [code for count, code in re.findall(r"(\d*)([a-zA-Z])", layout.struct.format) for _ in
             range(int(count or 1))]
    return [(column_of(name), _STRUCT_TYPES[code]) for name, code in zip(layout.names, codes, strict=True)]


def _pyarrow() -> tuple[Any, Any, Any]:
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as exc:
        raise UsageError("the parquet export needs pyarrow: install turbolog[parquet]") from exc
    return pyarrow, pyarrow.compute, pyarrow.parquet


def export_parquet(
    archive: Archive, out_dir: str | os.PathLike[str], serial: str | None = None, part: str | None = None
) -> int:
    """Write the records of *serial*, or of every unit, as the dataset described in the
    module docstring into *out_dir*; returns the number of records written.  With *part*, add
    them to the dataset *out_dir* shared with other archives (:func:`_add_part`).

    Raises UsageError when pyarrow is missing or *out_dir* is not empty,
    :class:`~host.errors.UnknownUnit`, ArchiveError for a damaged record, and
    OutputError when the directory cannot be written.
    """
    pa, pc, pq = _pyarrow()
    if os.fspath(out_dir) == "-":
        raise UsageError("a Parquet dataset is a directory: it cannot go to standard output, give --out DIR")
    named = Path(out_dir)
    out = Path(os.path.realpath(named))
    if part is not None:
        return _add_part(archive, named, out, serial, part)
    try:
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise UsageError(f"{named} already exists and is not an empty directory")
        mode = stat.S_IMODE(out.stat().st_mode) if out.exists() else None
    except OSError as exc:
        raise OutputError(f"cannot write {named}: {exc.strerror or exc}") from exc
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        building = _building_dir(out, "part")
    except OSError as exc:
        raise OutputError(f"cannot write {named}: {exc.strerror or exc}") from exc
    try:
        if mode is not None:
            building.chmod(mode)
        written = _write_dataset(archive, building, serial, "units.parquet", "part-0.parquet")
        building.rename(out)  # over an empty directory too, in one step
    except OSError as exc:
        shutil.rmtree(building, ignore_errors=True)
        raise OutputError(f"cannot write {named}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return written


_PART_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _add_part(archive: Archive, named: Path, out: Path, serial: str | None, part: str) -> int:
    """This archive's share of a dataset shared with other archives (one per host of a sharded
    poll): every file is named ``part-PART.parquet`` (the units table too, as
    ``units/part-PART.parquet``), so shares with different *part* names never collide.  *out* may
    hold other shares already; a share of the same name is refused.  The share is built beside
    *out* and its files moved in one by one once complete."""
    if not _PART_NAME.fullmatch(part):
        raise UsageError(f"--part {part!r}: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit")
    name = f"part-{part}.parquet"
    try:
        if out.exists() and not out.is_dir():
            raise UsageError(f"{named} exists and is not a directory")
        if out.exists() and any(out.rglob(name)):
            raise UsageError(f"{named} already holds a share named {part}: give each archive its own --part")
        out.parent.mkdir(parents=True, exist_ok=True)
        building = _building_dir(out, name)
    except OSError as exc:
        raise OutputError(f"cannot write {named}: {exc.strerror or exc}") from exc
    try:
        (building / "units").mkdir()
        written = _write_dataset(archive, building, serial, f"units/{name}", name)
        files = sorted(path for path in building.rglob("*") if path.is_file())
        for path in files:
            target = out / path.relative_to(building)
            target.parent.mkdir(parents=True, exist_ok=True)
            path.rename(target)
        shutil.rmtree(building)
    except OSError as exc:
        shutil.rmtree(building, ignore_errors=True)
        raise OutputError(f"cannot write {named}: {exc.strerror or exc}") from exc
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return written


def _building_dir(out: Path, what: str) -> Path:
    """A new, empty directory beside *out* to build in, of a name no other export uses (two
    exports at once must not build in, or remove, each other's), with the permissions a new
    directory gets (mkdtemp's are the owner's alone)."""
    building = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=f".{what}", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    building.chmod(0o777 & ~umask)
    return building


def _write_dataset(
    archive: Archive, directory: Path, serial: str | None, units_file: str, file_name: str
) -> int:
    """The dataset of *serial* (or every unit) into the empty *directory*: the units table as
    *units_file*, the records' partitions each as *file_name*; the records written."""
    pa, pc, pq = _pyarrow()
    if serial is not None:
        archive.unit(serial)
    archive.check(serial)  # no record deleted outside turbolog goes missing from the dataset unnoticed
    units = [
        row for row in archive.query("SELECT id, serial, model, epoch FROM units ORDER BY serial, epoch")
        if serial is None or row[1] == serial
    ]
    pq.write_table(_units_table(pa, archive, serial), directory / units_file, compression="zstd")
    written = 0
    for name, rtype in DATASETS.items():
        writer = _PartitionedWriter(pa, pc, pq, directory / name, _schema(pa, rtype), file_name)
        with writer:
            for model, batch in _batches(pa, archive, name, rtype, units, writer.schema):
                writer.write(model, batch)
        written += writer.rows
    return written


def _units_table(pa: Any, archive: Archive, serial: str | None) -> Any:
    names = ", ".join("record_count" if name == "records" else name for name, _ in _UNIT_COLUMNS)
    rows = list(archive.query(
        f"SELECT {names} FROM units WHERE serial = :serial OR :serial IS NULL ORDER BY serial, epoch",
        {"serial": serial},
    ))
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(_UNIT_COLUMNS)
    return pa.table({
        name: pa.array(values, pa.int64()).cast(pa.timestamp("s", tz="UTC")) if kind == "timestamp"
        else pa.array(values, getattr(pa, kind)())
        for (name, kind), values in zip(_UNIT_COLUMNS, columns, strict=True)
    })


_LIST_COLUMNS = {"value": "runup_steps"}
"""An array field's elements (archive columns ``value_0``, ``value_1`` ...) go into one list column."""


def _body_fields(rtype: int | None) -> list[tuple[tuple[int, ...], str, str]]:
    """(indexes in the decoded values, column, arrow type name) of the columns after the header
    ones: one index for a plain column, every element's for an array's list column."""
    if rtype is None:
        return [((2,), "type", "uint8"), ((3,), "length", "uint8")]
    out: list[tuple[tuple[int, ...], str, str]] = []
    for i, (name, kind) in enumerate(_field_types(rtype)):
        array, _, element = name.rpartition("_")
        listed = _LIST_COLUMNS.get(array) if element.isdigit() else None
        if listed is not None and out and out[-1][1] == listed:
            out[-1] = ((*out[-1][0], i), listed, kind)
        elif listed is not None:
            out.append(((i,), listed, kind))
        elif name not in _HEADER_FIELDS:
            out.append(((i,), name, kind))
    return out


def _arrow_type(pa: Any, name: str, kind: str) -> Any:
    element = getattr(pa, kind)()
    return pa.list_(element) if name in _LIST_COLUMNS.values() else element


def _schema(pa: Any, rtype: int | None) -> Any:
    """The columns of one dataset's files (model and year are in the directory names)."""
    return pa.schema(
        [("serial", pa.string()), ("epoch", pa.uint32()), ("seq", pa.uint32()),
         ("time", pa.timestamp("s", tz="UTC"))]
        + [(name, _arrow_type(pa, name, kind)) for _, name, kind in _body_fields(rtype)]
        + ([("raw", pa.binary())] if rtype is None else [])
    )


def _batches(
    pa: Any, archive: Archive, table: str, rtype: int | None, units: list[tuple[Any, ...]], schema: Any
) -> Iterator[tuple[str, Any]]:
    """(model, record batch) of every unit that has records in *table*, decoded and verified."""
    body = _body_fields(rtype)
    for unit, serial, model, epoch in units:
        raws: list[bytes] = []
        if rtype is None:
            rows = archive.query(f"SELECT raw FROM {table} WHERE unit = ? ORDER BY seq", (unit,))
            raws = [raw for (raw,) in rows]
            good, errors = decode_batch(b"".join(raws))
            if errors or len(good) != len(raws):
                raise ArchiveError(f"archive {archive.path}: a record in {table} of {serial} is damaged")
            decoded = [values for _, values in good]
        else:
            decoded = list(archive.iter_rows(serial, rtype, epoch=epoch))
        if not decoded:
            continue
        columns = list(zip(*decoded, strict=False))
        arrays = [
            pa.array([serial] * len(decoded), pa.string()),
            pa.array([epoch] * len(decoded), pa.uint32()),
            pa.array(columns[0], pa.uint32()),
            pa.array(columns[1], pa.int64()).cast(pa.timestamp("s", tz="UTC")),
            *(_column(pa, columns, indexes, name, kind) for indexes, name, kind in body),
            *([pa.array(raws, pa.binary())] if rtype is None else []),
        ]
        yield model, pa.RecordBatch.from_arrays(arrays, schema=schema)


def _column(pa: Any, columns: list[tuple[Any, ...]], indexes: tuple[int, ...], name: str, kind: str) -> Any:
    """The arrow array of one column: a field's values, or an array field's lists of them."""
    if name not in _LIST_COLUMNS.values():
        return pa.array(columns[indexes[0]], getattr(pa, kind)())
    return pa.array(list(zip(*(columns[i] for i in indexes), strict=True)), _arrow_type(pa, name, kind))


class _PartitionedWriter:
    """Batches into ``base/model=M/year=Y/FILE_NAME``, one file per partition, in row
    groups of :data:`ROWS_PER_GROUP`; every write happens in the calling thread."""

    def __init__(self, pa: Any, pc: Any, pq: Any, base: Path, schema: Any, file_name: str) -> None:
        self._pa, self._pc, self._pq = pa, pc, pq
        self._base = base
        self._file_name = file_name
        self.schema = schema
        self.rows = 0
        self._files: dict[tuple[str, int], Any] = {}
        self._pending: dict[tuple[str, int], list[Any]] = {}

    def write(self, model: str, batch: Any) -> None:
        pc = self._pc
        years = pc.year(batch.column("time"))
        for year in pc.unique(years).to_pylist():
            key = (model, year)
            pending = self._pending.setdefault(key, [])
            pending.append(batch.filter(pc.equal(years, year)))
            if sum(part.num_rows for part in pending) >= ROWS_PER_GROUP:
                self._flush(key)
        self.rows += batch.num_rows

    def _flush(self, key: tuple[str, int]) -> None:
        pending = self._pending.pop(key, [])
        if not pending:
            return
        file = self._files.get(key)
        if file is None:
            model, year = key
            folder = self._base / f"model={model}" / f"year={year}"
            folder.mkdir(parents=True)
            file = self._files[key] = self._pq.ParquetWriter(folder / self._file_name, self.schema,
                                                              compression="zstd")
        file.write_table(self._pa.Table.from_batches(pending, self.schema), row_group_size=ROWS_PER_GROUP)

    def __enter__(self) -> _PartitionedWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                for key in list(self._pending):
                    self._flush(key)
        finally:
            for file in self._files.values():
                file.close()
