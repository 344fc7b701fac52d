"""The host's local archive: every record ever pulled, byte for byte, in one SQLite file.

Responsible for the file (creating it, recognising it as ours, migrating its
schema), for storing verified records idempotently, and for answering what is
stored, missing or evicted.  It must not talk to devices, decide what to pull,
or compute statistics: :mod:`host.analytics` and :mod:`host.export` read it
through :meth:`Archive.query` and :meth:`Archive.iter_raw`.

The file::

    PRAGMA application_id = 0x54524C47 ("TRLG")   marks the file as a turbolog archive
    PRAGMA user_version   = len(MIGRATIONS)       the schema version
    journal_mode WAL, page size 8 KiB

    units          id, serial, model, firmware, schema_fingerprint,
                   capacity_records, first_seq, next_seq, device_time,
                   operating_s, starts, trips, energy_wh   as last reported by IDENTIFY
                   updated (host time, Unix s), record_count (records stored),
                   epoch, log_id, origin_seq, continues    which log of the serial (below)
    samples        unit, seq, timestamp, <every Snapshot field>, crc,
                   exhaust_c_x10 (version 7; NULL in a sample of earlier firmware)
    faults         unit, seq, timestamp, code, severity, subsystem, flags,
                   <every Snapshot field: the freeze-frame>, crc
    events         unit, seq, timestamp, kind, state_from, state_to, level,
                   value_a, value_b, crc
    runups         unit, seq, timestamp, fault_seq, channel, interval_s, points,
                   value_0 .. value_59, crc            pre-trigger buffers (version 6)
    other_records  unit, seq, timestamp, type, raw       unknown types and lengths
    records        VIEW: unit, seq, timestamp, type over the five tables above
    spans          unit, first_seq, count                disjoint ranges of stored seqs
    evictions      unit, first_seq, count                disjoint ranges reported evicted
    pulls          unit, started, finished, added, evicted, retries, bytes
    dials          url, serial, last_attempt, last_success, outcome,   one row per place
                   added, evicted, error, failures                    `turbolog poll` dials
    unit_profiles  serial, site, duty, commissioned, shipped   where and how a serial runs, and
                   since when (Unix s), from an image's sidecar; NULL where unknown (version 5)

A row of ``units`` is one *epoch*: one log of a serial number (schema
version 3).  A serial gets a new epoch when the unit's log is not the one
archived (a replaced controller, a cleared log, another unit under the same
serial): ``epoch`` counts 1, 2, ... per serial; ``log_id`` is the log's id
from IDENTIFY (NULL for an epoch archived before logs had ids);
``origin_seq`` is the seq the log began at, as far as the archive knows
(evictions are counted from there); ``continues`` is 1 when the log carries
on the lifetime counters of the epoch before (a cleared log on the same
controller), so reports do not count those hours twice.  Record, span,
eviction and pull rows belong to an epoch (their ``unit`` is ``units.id``).
Methods that take a serial number work on its latest epoch unless given
``epoch``.

Records come in through :meth:`Archive.store_records` (``(seq, timestamp,
type, raw)`` tuples: every CRC-32C checked again and every record decoded
here) or :meth:`Archive.store_decoded` (rows that
:func:`protocol.records.decode_rows` already verified and decoded: the
pull's path, which binds them to the INSERT as they are).

Record tables are keyed by ``(unit, seq)`` WITHOUT ROWID; ``unit`` is
``units.id``.  Each record is stored in the one table of its type as its
fields in wire units (``tet1_c_x10``) and its own CRC-32C (``crc``): a known
record's layout is fixed, so its bytes are exactly the fields packed again,
and :meth:`Archive.iter_raw` / :meth:`Archive.iter_rows` rebuild them and
check them against that CRC on every read, so a record stays verified end to
end, from the controller's flash to whatever reads the archive, without its
bytes being kept twice (schema version 2; version 1 kept ``raw`` beside the
columns: 146 bytes a record in the fleet benchmark, against 78).  ``other_records`` keeps unknown types
and lengths whole in ``raw``.  Timestamps are device time in Unix seconds
(UTC).  One table per type means a record costs one B-tree insert.  ``spans``
is kept with the records, in the same transaction, so that stored and missing
ranges cost a few rows whatever the size of the log.

One Archive object is for one thread.  Writes go through one read-write
connection, one transaction per call; reads go through a second, read-only
connection and stream (a query never fetches every row at once), so memory
stays bounded for any log size.  ``Archive.open(path, readonly=True)`` opens
only the read-only connection, on an existing file, and never creates,
migrates or repairs anything.  Every sqlite3 error is translated into
:class:`~host.errors.ArchiveError` with a one-line message.

``units.record_count`` and ``spans`` are bookkeeping kept beside the rows;
:meth:`Archive.check` compares them with the rows (a count of each table), so
a row deleted outside turbolog is found, and a writable open rebuilds a
damaged unit's spans from its rows before planning or storing for it, so that
the records count as missing and are fetched again.
"""

from __future__ import annotations

import heapq
import os
import sqlite3
import struct
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import Any

from protocol.crc import RESIDUE, crc32c
from protocol.enums import RecordType
from protocol.fastpath import FlatLayout
from protocol.formats import RECORD_OVERHEAD
from protocol.records import (
    EARLIER_LAYOUTS,
    LAYOUTS,
    DecodedRow,
    decode_rows,
    is_intact,
    record_crc,
    record_header,
    row_bytes,
    row_packer,
)

from .archive_path import default_archive_path as default_archive_path  # also importable from here, as before
from .errors import ArchiveError, DeviceError, UnknownUnit, UsageError

APPLICATION_ID = 0x54524C47
"""``PRAGMA application_id`` of a turbolog archive: "TRLG" in ASCII."""

_SQLITE_MAGIC = b"SQLite format 3\x00"
_PAGE_SIZE = 8192

_V1_SCHEMA = """
CREATE TABLE units (
    id INTEGER PRIMARY KEY,
    serial TEXT NOT NULL UNIQUE,
    model TEXT NOT NULL,
    firmware TEXT NOT NULL,
    schema_fingerprint INTEGER NOT NULL,
    capacity_records INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    device_time INTEGER NOT NULL,
    operating_s INTEGER NOT NULL,
    starts INTEGER NOT NULL,
    trips INTEGER NOT NULL,
    energy_wh INTEGER NOT NULL,
    updated REAL NOT NULL,
    record_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE samples (
    unit INTEGER NOT NULL REFERENCES units(id),
    seq INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    state INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    active_fault INTEGER NOT NULL,
    speed_rpm INTEGER NOT NULL,
    power_w INTEGER NOT NULL,
    tet1_c_x10 INTEGER NOT NULL,
    tet2_c_x10 INTEGER NOT NULL,
    compressor_inlet_c_x10 INTEGER NOT NULL,
    ambient_c_x10 INTEGER NOT NULL,
    ambient_pressure_kpa_x100 INTEGER NOT NULL,
    fuel_valve_pct_x10 INTEGER NOT NULL,
    fuel_power_w INTEGER NOT NULL,
    dc_bus_v_x10 INTEGER NOT NULL,
    grid_voltage_v_x10 INTEGER NOT NULL,
    grid_freq_hz_x1000 INTEGER NOT NULL,
    operating_s INTEGER NOT NULL,
    starts INTEGER NOT NULL,
    trips INTEGER NOT NULL,
    energy_wh INTEGER NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (unit, seq)
) WITHOUT ROWID;
CREATE TABLE faults (
    unit INTEGER NOT NULL REFERENCES units(id),
    seq INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    code INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    subsystem INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    state INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    active_fault INTEGER NOT NULL,
    speed_rpm INTEGER NOT NULL,
    power_w INTEGER NOT NULL,
    tet1_c_x10 INTEGER NOT NULL,
    tet2_c_x10 INTEGER NOT NULL,
    compressor_inlet_c_x10 INTEGER NOT NULL,
    ambient_c_x10 INTEGER NOT NULL,
    ambient_pressure_kpa_x100 INTEGER NOT NULL,
    fuel_valve_pct_x10 INTEGER NOT NULL,
    fuel_power_w INTEGER NOT NULL,
    dc_bus_v_x10 INTEGER NOT NULL,
    grid_voltage_v_x10 INTEGER NOT NULL,
    grid_freq_hz_x1000 INTEGER NOT NULL,
    operating_s INTEGER NOT NULL,
    starts INTEGER NOT NULL,
    trips INTEGER NOT NULL,
    energy_wh INTEGER NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (unit, seq)
) WITHOUT ROWID;
CREATE TABLE events (
    unit INTEGER NOT NULL REFERENCES units(id),
    seq INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    state_from INTEGER NOT NULL,
    state_to INTEGER NOT NULL,
    level INTEGER NOT NULL,
    value_a INTEGER NOT NULL,
    value_b INTEGER NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (unit, seq)
) WITHOUT ROWID;
CREATE TABLE other_records (
    unit INTEGER NOT NULL REFERENCES units(id),
    seq INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    type INTEGER NOT NULL,
    raw BLOB NOT NULL,
    PRIMARY KEY (unit, seq)
) WITHOUT ROWID;
CREATE VIEW records (unit, seq, timestamp, type, raw) AS
    SELECT unit, seq, timestamp, 1, raw FROM samples
    UNION ALL SELECT unit, seq, timestamp, 2, raw FROM faults
    UNION ALL SELECT unit, seq, timestamp, 3, raw FROM events
    UNION ALL SELECT unit, seq, timestamp, type, raw FROM other_records;
CREATE TABLE spans (
    unit INTEGER NOT NULL REFERENCES units(id),
    first_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (unit, first_seq)
) WITHOUT ROWID;
CREATE TABLE evictions (
    unit INTEGER NOT NULL REFERENCES units(id),
    first_seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (unit, first_seq)
) WITHOUT ROWID;
CREATE TABLE pulls (
    id INTEGER PRIMARY KEY,
    unit INTEGER NOT NULL REFERENCES units(id),
    started REAL NOT NULL,
    finished REAL NOT NULL,
    added INTEGER NOT NULL,
    evicted INTEGER NOT NULL,
    retries INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
"""


def _migrate_to_v1(db: sqlite3.Connection) -> None:
    """Version 1: units, the four record tables, the records view, spans, evictions, pulls."""
    for statement in _V1_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_to_v2(db: sqlite3.Connection) -> None:
    """Version 2: samples, faults and events keep the record's CRC-32C (``crc``) instead of its
    raw bytes, which are rebuilt from the columns and verified against that CRC on every read
    (146 bytes a record in the fleet benchmark, 78 after).  ``records`` loses its ``raw`` column."""
    db.create_function("crc_field", 1, record_crc, deterministic=True)
    db.execute("DROP VIEW records")
    for table in ("samples", "faults", "events"):
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})") if row[1] != "raw"]
        definitions = ", ".join(
            f"{column} INTEGER NOT NULL" + (" REFERENCES units(id)" if column == "unit" else "")
            for column in columns
        )
        db.execute(
            f"CREATE TABLE {table}_v2 ({definitions}, crc INTEGER NOT NULL, PRIMARY KEY (unit, seq)) "
            "WITHOUT ROWID"
        )
        names = ", ".join(columns)
        db.execute(f"INSERT INTO {table}_v2 ({names}, crc) SELECT {names}, crc_field(raw) FROM {table}")
        db.execute(f"DROP TABLE {table}")
        db.execute(f"ALTER TABLE {table}_v2 RENAME TO {table}")
    db.execute(
        """CREATE VIEW records (unit, seq, timestamp, type) AS
               SELECT unit, seq, timestamp, 1 FROM samples
               UNION ALL SELECT unit, seq, timestamp, 2 FROM faults
               UNION ALL SELECT unit, seq, timestamp, 3 FROM events
               UNION ALL SELECT unit, seq, timestamp, type FROM other_records"""
    )


def _migrate_to_v3(db: sqlite3.Connection) -> None:
    """Version 3: a serial number may have several logs, one ``units`` row (an *epoch*) each:
    ``serial`` is no longer unique, ``(serial, epoch)`` is; ``log_id``, ``origin_seq`` and
    ``continues`` are new.  Every existing unit becomes epoch 1 of its serial, with its id, so
    its records, spans, evictions and pulls stay its own, untouched."""
    db.execute(
        """CREATE TABLE units_v3 (
               id INTEGER PRIMARY KEY,
               serial TEXT NOT NULL,
               model TEXT NOT NULL,
               firmware TEXT NOT NULL,
               schema_fingerprint INTEGER NOT NULL,
               capacity_records INTEGER NOT NULL,
               first_seq INTEGER NOT NULL,
               next_seq INTEGER NOT NULL,
               device_time INTEGER NOT NULL,
               operating_s INTEGER NOT NULL,
               starts INTEGER NOT NULL,
               trips INTEGER NOT NULL,
               energy_wh INTEGER NOT NULL,
               updated REAL NOT NULL,
               record_count INTEGER NOT NULL DEFAULT 0,
               epoch INTEGER NOT NULL DEFAULT 1,
               log_id BLOB,
               origin_seq INTEGER NOT NULL DEFAULT 0,
               continues INTEGER NOT NULL DEFAULT 0,
               UNIQUE (serial, epoch)
           )"""
    )
    columns = (
        "id, serial, model, firmware, schema_fingerprint, capacity_records, first_seq, next_seq, "
        "device_time, operating_s, starts, trips, energy_wh, updated, record_count"
    )
    db.execute(f"INSERT INTO units_v3 ({columns}) SELECT {columns} FROM units")
    db.execute("DROP TABLE units")
    db.execute("ALTER TABLE units_v3 RENAME TO units")


def _migrate_to_v4(db: sqlite3.Connection) -> None:
    """Version 4: ``dials``, what ``turbolog poll`` last did at each URL of its inventory: when it
    last tried and last reached it (host Unix seconds), the serial that answered, the outcome of
    the last try (``reached`` or the error's class), its records added and evicted, its error
    line, and the failed tries since the last success (for back-off).  Keyed by URL, not serial:
    a URL that never answered has no serial."""
    db.execute(
        """CREATE TABLE dials (
               url TEXT PRIMARY KEY,
               serial TEXT,
               last_attempt REAL NOT NULL,
               last_success REAL,
               outcome TEXT NOT NULL,
               added INTEGER NOT NULL,
               evicted INTEGER NOT NULL,
               error TEXT,
               failures INTEGER NOT NULL
           )"""
    )


def _migrate_to_v5(db: sqlite3.Connection) -> None:
    """Version 5: ``unit_profiles``, where and how each serial runs and since when (the fleet
    report's filters by site, duty and commissioning year); empty until an ingest fills it."""
    db.execute(
        """CREATE TABLE unit_profiles (
               serial TEXT PRIMARY KEY,
               site TEXT,
               duty TEXT,
               commissioned INTEGER,
               shipped INTEGER
           )"""
    )


_V6_RUNUP_VALUES = 60
"""Values in a run-up record when version 6 was made (protocol.formats.RUNUP_POINTS then)."""
_V6_RUNUP = struct.Struct(f"<IIBBIBBB{_V6_RUNUP_VALUES}hI")
"""A whole RUNUP record (header, body, CRC) as version 6 was made: the step is frozen with it."""


def _migrate_to_v6(db: sqlite3.Connection) -> None:
    """Version 6: ``runups``, the pre-trigger buffers (RUNUP records, type 4) in columns like the
    other known types (``value_0`` .. ``value_59`` for the record's ``values``), and the
    ``records`` view over it too.  A RUNUP record that an earlier version kept whole in
    ``other_records`` (an unknown type then) moves into it."""
    values = ", ".join(f"value_{i} INTEGER NOT NULL" for i in range(_V6_RUNUP_VALUES))
    db.execute(
        f"""CREATE TABLE runups (
               unit INTEGER NOT NULL REFERENCES units(id),
               seq INTEGER NOT NULL,
               timestamp INTEGER NOT NULL,
               fault_seq INTEGER NOT NULL,
               channel INTEGER NOT NULL,
               interval_s INTEGER NOT NULL,
               points INTEGER NOT NULL,
               {values},
               crc INTEGER NOT NULL,
               PRIMARY KEY (unit, seq)
           ) WITHOUT ROWID"""
    )
    kept = db.execute(
        "SELECT unit, raw FROM other_records WHERE type = 4 AND length(raw) = ?", (_V6_RUNUP.size,)
    ).fetchall()
    params = ", ".join("?" * (_V6_RUNUP_VALUES + 8))
    for unit, raw in kept:
        seq, timestamp, _, _, *body = _V6_RUNUP.unpack(raw)
        db.execute(f"INSERT INTO runups VALUES ({params})", (unit, seq, timestamp, *body))
        db.execute("DELETE FROM other_records WHERE unit = ? AND seq = ?", (unit, seq))
    db.execute("DROP VIEW records")
    db.execute(
        """CREATE VIEW records (unit, seq, timestamp, type) AS
               SELECT unit, seq, timestamp, 1 FROM samples
               UNION ALL SELECT unit, seq, timestamp, 2 FROM faults
               UNION ALL SELECT unit, seq, timestamp, 3 FROM events
               UNION ALL SELECT unit, seq, timestamp, 4 FROM runups
               UNION ALL SELECT unit, seq, timestamp, type FROM other_records"""
    )


def _migrate_to_v7(db: sqlite3.Connection) -> None:
    """Version 7: ``samples.exhaust_c_x10``, the exhaust after the recuperator; NULL for the
    samples already archived, which firmware before that channel wrote without it (54-byte
    bodies, rebuilt as such from a NULL)."""
    db.execute("ALTER TABLE samples ADD COLUMN exhaust_c_x10 INTEGER")


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_to_v1, _migrate_to_v2, _migrate_to_v3, _migrate_to_v4, _migrate_to_v5, _migrate_to_v6,
    _migrate_to_v7,
)
"""Schema steps in order: ``MIGRATIONS[v]`` takes a file from version v to v + 1.

Append a function to change the schema; never edit a step already released."""

_DECODED_TABLES: dict[int, str] = {
    RecordType.SAMPLE: "samples",
    RecordType.FAULT: "faults",
    RecordType.EVENT: "events",
    RecordType.RUNUP: "runups",
}
RECORD_TABLES: tuple[str, ...] = (*_DECODED_TABLES.values(), "other_records")
"""Every table holding records: one per known type, then the rest."""


@dataclass(frozen=True, slots=True)
class UnitRow:
    """A unit as the archive knows it: its last IDENTIFY, and how many records are stored."""

    serial: str
    model: str
    firmware: str
    schema_fingerprint: int
    capacity_records: int
    first_seq: int
    next_seq: int
    device_time: int
    operating_s: int
    starts: int
    trips: int
    energy_wh: int
    updated: float
    """Host time of the last :meth:`Archive.upsert_unit`, Unix seconds."""
    record_count: int
    epoch: int = 1
    """Which log of the serial this is: 1, 2, ... (see the module docstring)."""
    log_id: bytes | None = None
    """The log's id from IDENTIFY; None for a log archived before logs had ids."""
    origin_seq: int = 0
    """The seq the log began at, as far as the archive knows."""
    continues: bool = False
    """Whether the log carries on the lifetime counters of the epoch before."""


REACHED = "reached"
"""The ``dials.outcome`` of a try that pulled the unit to the end; any other is an error's class."""


@dataclass(frozen=True, slots=True)
class DialRow:
    """What the last poll did at one URL (a row of ``dials``)."""

    url: str
    serial: str | None
    """The serial that answered there last (None if none ever did)."""
    last_attempt: float
    last_success: float | None
    """Host Unix seconds of the last try that pulled the unit to the end; None if none did."""
    outcome: str
    """:data:`REACHED`, or the class of the last try's error (``LinkError``, ``WrongUnit`` ...)."""
    added: int
    evicted: int
    error: str | None
    failures: int
    """Failed tries since the last success."""


_DIAL_COLUMNS = "url, serial, last_attempt, last_success, outcome, added, evicted, error, failures"

_UNIT_COLUMNS = (
    "serial, model, firmware, schema_fingerprint, capacity_records, first_seq, next_seq, device_time, "
    "operating_s, starts, trips, energy_wh, updated, record_count, epoch, log_id, origin_seq, continues"
)


@dataclass(frozen=True, slots=True)
class _Decoder:
    """How records of one known type and length go into their table and come out again."""

    size: int
    width: int
    """Items in a :data:`~protocol.records.DecodedRow` of this layout: its fields."""
    unpack: Callable[[bytes], tuple[Any, ...]]
    pack: Callable[..., bytes]
    sql: str
    """INSERT taking a DecodedRow (the fields of the layout), with ``{unit}``
    to be filled in with the unit's id."""
    select: str
    """SELECT giving a table's rows as DecodedRows (constants for the type and
    length, which are not stored), with ``{where}`` to be filled in."""


_OTHER_SQL = (
    "INSERT OR IGNORE INTO other_records (unit, seq, timestamp, type, raw) VALUES ({unit}, ?1, ?2, ?3, ?4)"
)
"""INSERT taking ``(seq, timestamp, type, raw)``, with ``{unit}`` to be filled in."""
_seq_of = itemgetter(0)
_type_of = itemgetter(2)


def column_of(field: str) -> str:
    """The archive column of a layout field: a fault's ``freeze.x`` is column ``x``, a run-up's
    ``values.i`` column ``value_i``."""
    if field.startswith("values."):
        return "value_" + field.removeprefix("values.")
    return field.removeprefix("freeze.")


def _decoded_select_sql(rtype: int, table: str, layout: FlatLayout) -> str:
    """SELECT of *table*'s rows as DecodedRows of *layout*, ``{where}`` to be filled in.  A row of
    an earlier firmware's record (its missing fields NULL) gets that record's body length."""
    length = str(layout.size - RECORD_OVERHEAD)
    for (earlier_type, earlier_length), earlier in EARLIER_LAYOUTS.items():
        if earlier_type == rtype:
            first_missing = column_of(layout.names[-1 - earlier.missing])
            length = f"CASE WHEN {first_missing} IS NULL THEN {earlier_length} ELSE {length} END"
    constants = {"type": str(rtype), "length": length}
    columns = ", ".join(constants.get(name, column_of(name)) for name in layout.names)
    return f"SELECT {columns} FROM {table} WHERE {{where}} ORDER BY seq"


def _decoded_insert_sql(db: sqlite3.Connection, table: str, names: tuple[str, ...]) -> str:
    """INSERT for *table* whose parameters are the layout's fields, with
    ``{unit}`` where the unit's id goes (an integer the archive assigned, so it
    is written into the statement: one parameter fewer to bind per row).

    Columns are matched to layout fields by name (a fault's ``freeze.x`` fills
    column ``x``), so the statement follows the schema the file actually has.
    """
    fields = [column_of(name) for name in names]
    columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
    params = []
    for column in columns:
        if column == "unit":
            params.append("{unit}")
        elif column in fields:
            params.append(f"?{fields.index(column) + 1}")
        else:
            raise ArchiveError(f"archive column {table}.{column} has no field in the record format")
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({', '.join(params)})"


def _new_records(serial: str, batch: list[DecodedRow], stored: dict[int, bytes]) -> list[DecodedRow]:
    """*batch* less the records already stored and repeats of one seq within it.

    Raises :class:`DeviceError` if a seq comes with bytes other than those
    already stored or already met in the batch.
    """
    seen = dict(stored)
    new = []
    for record in batch:
        seq, raw = record[0], row_bytes(record)
        known = seen.get(seq)
        if known is None:
            seen[seq] = raw
            new.append(record)
        elif known != raw:
            raise DeviceError(
                f"unit {serial}: two different records carry seq {seq}; the unit's log is not the "
                "archived one (controller replaced or log reset?)"
            )
    return new


def _header_mismatch(serial: str, record: tuple[int, int, int, bytes]) -> UsageError:
    seq, timestamp, rtype, raw = record
    return UsageError(
        f"unit {serial}: ({seq}, {timestamp}, {rtype}) is not the header of its record "
        f"{record_header(raw)[:3]}; pass scan_records' tuples unchanged"
    )


def _runs(seqs: list[int]) -> Iterator[tuple[int, int]]:
    """Maximal runs ``[a, b)`` of consecutive values in sorted, distinct *seqs*."""
    start = prev = seqs[0]
    for seq in seqs[1:]:
        if seq != prev + 1:
            yield start, prev + 1
            start = seq
        prev = seq
    yield start, prev + 1


class Archive:
    """A turbolog archive file; open with :meth:`Archive.open`, use as a context manager."""

    def __init__(
        self,
        path: Path,
        db: sqlite3.Connection,
        ro: sqlite3.Connection,
        clock: Callable[[], float],
        *,
        readonly: bool = False,
    ) -> None:
        self.path = path
        self.readonly = readonly
        """Opened with ``readonly=True``: every write raises :class:`ArchiveError`."""
        self._db = db
        self._ro = ro
        self._clock = clock
        self._unit_ids: dict[str, int] = {}
        self._reconciled: set[int] = set()
        self._decoders = {
            rtype: _Decoder(
                layout.size, len(layout.names), layout.struct.unpack, row_packer(rtype),
                _decoded_insert_sql(db, table, layout.names), _decoded_select_sql(rtype, table, layout),
            )
            for rtype, table in _DECODED_TABLES.items()
            for layout in (LAYOUTS[rtype],)
        }

    # --- opening and closing -------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time, readonly: bool = False
    ) -> Archive:
        """Open the archive at *path*, creating it (and its directories) if needed.

        Raises :class:`ArchiveError` for a file that is not SQLite, is SQLite
        but not a turbolog archive, has a newer schema than this version
        knows, is corrupt, or cannot be created.  *clock* gives the host time
        recorded in ``units.updated``.  Processes opening one new file at once
        wait for each other: one creates it, the others find it made.

        *readonly* opens an existing archive for reading only (see
        :meth:`_open_readonly`): nothing is created, migrated or written, and
        a file the user may read but not write, or in a directory they may not
        write, can be read.
        """
        path = Path(path)
        _check_file(path)
        if readonly:
            return cls._open_readonly(path, clock)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArchiveError(f"cannot create the archive directory {path.parent}: {exc.strerror}") from exc
        db: sqlite3.Connection | None = None
        ro: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(path, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
            _prepare(db, path)
            db.execute("PRAGMA synchronous = NORMAL")
            ro = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
            return cls(path, db, ro, clock)
        except (sqlite3.Error, ArchiveError) as exc:
            for conn in (ro, db):
                if conn is not None:
                    conn.close()
            if isinstance(exc, ArchiveError):
                raise
            raise ArchiveError(f"cannot open archive {path}: {exc}") from exc

    @classmethod
    def _open_readonly(cls, path: Path, clock: Callable[[], float]) -> Archive:
        """Open the existing archive at *path* with SQLite's read-only mode (``mode=ro``).

        Reading a WAL file goes through a ``-shm`` file that SQLite creates
        and leaves beside it.  So where the user may not write the file or its
        directory, and no ``-wal`` holds changes, the file is opened
        ``immutable=1``: nothing is created, and no other user's later writes
        are blocked by a ``-shm`` file they do not own.  Changes in a ``-wal``
        are always read (through the ``-shm`` found or made there), or refused
        in one line when that cannot be done.  An archive of an older schema
        is refused with a line saying that a writable open migrates it.
        """
        wal = Path(f"{path}-wal")
        try:
            if not path.exists() or path.stat().st_size == 0:
                raise ArchiveError(
                    f"there is no archive at {path} (a pull or an ingest creates one; --db names another)"
                )
            pending = wal.exists() and wal.stat().st_size > 0
        except OSError as exc:
            raise ArchiveError(f"cannot read archive {path}: {exc.strerror}") from exc
        writable = os.access(path, os.W_OK) and os.access(path.absolute().parent, os.W_OK | os.X_OK)
        immutable = not writable and not pending
        uri = f"{path.absolute().as_uri()}?mode=ro" + ("&immutable=1" if immutable else "")
        ro: sqlite3.Connection | None = None
        try:
            ro = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=_BUSY_TIMEOUT_S)
            version = _identify(ro, path)
            if version < len(MIGRATIONS):
                raise ArchiveError(
                    f"{path} has archive schema version {version}, older than this turbolog's "
                    f"{len(MIGRATIONS)}: a pull or an ingest into it (a writable open) migrates it"
                )
            return cls(path, ro, ro, clock, readonly=True)
        except (sqlite3.Error, ArchiveError) as exc:
            if ro is not None:
                ro.close()
            if isinstance(exc, ArchiveError):
                raise
            if pending and not Path(f"{path}-shm").exists():
                raise ArchiveError(
                    f"cannot read archive {path}: {wal.name} holds changes that can only be read by "
                    f"someone who may write {path.absolute().parent} (a pull or an ingest by the "
                    "archive's owner folds them in)"
                ) from exc
            raise ArchiveError(f"cannot open archive {path}: {exc}") from exc

    def close(self) -> None:
        """Close the file; further calls raise ArchiveError.  Closing twice is harmless."""
        self._ro.close()
        self._db.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- units ---------------------------------------------------------------

    def upsert_unit(
        self,
        serial: str,
        model: str,
        firmware: str,
        schema_fingerprint: int,
        *,
        first_seq: int,
        next_seq: int,
        capacity_records: int,
        device_time: int,
        operating_s: int,
        starts: int,
        trips: int,
        energy_wh: int,
        log_id: bytes | None = None,
    ) -> None:
        """Record what IDENTIFY reported for *serial* in its latest epoch (epoch 1, with
        *log_id*, for a serial the archive does not know); a unit exists in the archive from
        here on.  A *log_id* given is taken for an epoch that had none (archived before logs had
        ids); check it before (a different one is a new epoch: :meth:`start_epoch`)."""
        if not serial:
            raise UsageError("a unit needs a non-empty serial number")
        values = (model, firmware, schema_fingerprint, capacity_records, first_seq, next_seq,
                  device_time, operating_s, starts, trips, energy_wh, self._clock())
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM units WHERE serial = ? ORDER BY epoch DESC LIMIT 1", (serial,)
            ).fetchone()
            if row is None:
                db.execute(
                    f"INSERT INTO units ({_IDENTIFY_COLUMNS}, serial, log_id) "
                    f"VALUES ({_IDENTIFY_PARAMS}, ?, ?)",
                    (*values, serial, log_id),
                )
                return
            db.execute(
                f"""UPDATE units SET ({_IDENTIFY_COLUMNS}) = ({_IDENTIFY_PARAMS}),
                        log_id = COALESCE(log_id, ?) WHERE id = ?""",
                (*values, log_id, row[0]),
            )

    def set_profile(
        self, serial: str, *, site: str | None, duty: str | None, commissioned: int | None,
        shipped: int | None,
    ) -> None:
        """Record where and how *serial* runs and since when (Unix s); None is unknown."""
        with self._write() as db:
            db.execute(
                """INSERT INTO unit_profiles (serial, site, duty, commissioned, shipped)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (serial) DO UPDATE SET site = excluded.site, duty = excluded.duty,
                       commissioned = excluded.commissioned, shipped = excluded.shipped""",
                (serial, site, duty, commissioned, shipped),
            )

    def start_epoch(
        self,
        serial: str,
        model: str,
        firmware: str,
        schema_fingerprint: int,
        *,
        log_id: bytes,
        origin_seq: int,
        continues: bool,
        first_seq: int,
        next_seq: int,
        capacity_records: int,
        device_time: int,
        operating_s: int,
        starts: int,
        trips: int,
        energy_wh: int,
    ) -> int:
        """Archive a new log of *serial* as its next epoch, from what IDENTIFY reported; return
        the epoch's number.  Records stored for *serial* from here on go to this epoch."""
        values = (model, firmware, schema_fingerprint, capacity_records, first_seq, next_seq,
                  device_time, operating_s, starts, trips, energy_wh, self._clock())
        with self._write() as db:
            (last,) = db.execute("SELECT MAX(epoch) FROM units WHERE serial = ?", (serial,)).fetchone()
            epoch = (last or 0) + 1
            cursor = db.execute(
                f"""INSERT INTO units ({_IDENTIFY_COLUMNS}, serial, log_id, epoch, origin_seq, continues)
                    VALUES ({_IDENTIFY_PARAMS}, ?, ?, ?, ?, ?)""",
                (*values, serial, log_id, epoch, origin_seq, int(continues)),
            )
        self._unit_ids[serial] = cursor.lastrowid or 0
        return epoch

    def units(self) -> list[UnitRow]:
        """Every epoch of every unit, by serial number, then epoch."""
        with self._translate():
            rows = self._ro.execute(f"SELECT {_UNIT_COLUMNS} FROM units ORDER BY serial, epoch").fetchall()
        return [_unit_row(row) for row in rows]

    def epochs(self, serial: str) -> list[UnitRow]:
        """Every epoch of *serial*, oldest first; raises :class:`UnknownUnit` if there is none."""
        with self._translate():
            rows = self._ro.execute(
                f"SELECT {_UNIT_COLUMNS} FROM units WHERE serial = ? ORDER BY epoch", (serial,)
            ).fetchall()
        if not rows:
            raise UnknownUnit(f"unit {serial!r} is not in the archive {self.path}")
        return [_unit_row(row) for row in rows]

    def unit(self, serial: str, epoch: int | None = None) -> UnitRow:
        """One unit's latest epoch, or its *epoch*; raises :class:`UnknownUnit` if the archive has
        never seen it (or has no such epoch)."""
        unit = self._unit_id(serial, epoch)
        with self._translate():
            row = self._ro.execute(f"SELECT {_UNIT_COLUMNS} FROM units WHERE id = ?", (unit,)).fetchone()
        return _unit_row(row)

    def newest_counters(self, serial: str) -> tuple[int, int, int, int]:
        """``(operating_s, starts, trips, energy_wh)`` of the newest archived record of the latest
        epoch of *serial* that carries counters (counters never go backwards within a log), zeros
        if none does.  Only records count: what IDENTIFY reported may be ahead of what the unit
        had made durable, and lost in a power cut."""
        unit = self._unit_id(serial)
        found: list[tuple[Any, ...]] = [(0, 0, 0, 0)]
        for table in ("samples", "faults"):
            found += [tuple(row) for row in self.query(
                f"""SELECT operating_s, starts, trips, energy_wh FROM {table}
                    WHERE unit = :unit ORDER BY seq DESC LIMIT 1""", {"unit": unit}
            )]
        operating_s, starts, trips, energy_wh = (max(values) for values in zip(*found, strict=True))
        return operating_s, starts, trips, energy_wh

    def stored_crc(self, serial: str, seq: int) -> int | None:
        """The CRC-32C of record *seq* of the latest epoch of *serial* as archived, or None."""
        unit = self._unit_id(serial)
        params = {"unit": unit, "seq": seq}
        for table in _DECODED_TABLES.values():
            for (crc,) in self.query(f"SELECT crc FROM {table} WHERE unit = :unit AND seq = :seq", params):
                return int(crc)
        for (raw,) in self.query("SELECT raw FROM other_records WHERE unit = :unit AND seq = :seq", params):
            return record_crc(raw)
        return None

    # --- records -------------------------------------------------------------

    def store_records(self, serial: str, records: Iterable[tuple[int, int, int, bytes]]) -> int:
        """Store ``(seq, timestamp, type, raw)`` tuples as :func:`protocol.records.scan_records`
        returns them, in one transaction; returns how many were new.

        Idempotent: a seq already stored with the same bytes is skipped.  Each
        record's CRC-32C is checked again, and its tuple against its header (a
        failure is the caller's bug: :class:`UsageError`, nothing stored).  A seq already stored with
        *different* bytes means the unit's log is not the one archived (a
        replaced controller reusing the serial): :class:`DeviceError`, nothing
        stored.  The batch is held in memory: pass a few thousand at a time.
        """
        batch = list(records)
        if not batch:
            return 0
        unit = self._unit_id(serial)
        if any(crc != RESIDUE for crc in map(crc32c, [record[3] for record in batch])):
            bad = next(record[0] for record in batch if crc32c(record[3]) != RESIDUE)
            raise UsageError(f"unit {serial}: record {bad} fails its CRC-32C; refusing to archive it")
        rows: list[DecodedRow] = []
        decoders = self._decoders
        for record in batch:
            raw = record[3]
            decoder = decoders.get(record[2])
            if decoder is not None and len(raw) == decoder.size:
                values = decoder.unpack(raw)
                if values[0] != record[0] or values[2] != record[2]:
                    raise _header_mismatch(serial, record)
            else:  # an earlier firmware's layout (widened to the current one), or kept whole
                (values,), _ = decode_rows(raw)
                if tuple(values[:3]) != tuple(record[:3]):
                    raise _header_mismatch(serial, record)
            rows.append(values)
        return self._store(serial, unit, rows)

    def store_decoded(self, serial: str, rows: Iterable[DecodedRow]) -> int:
        """Store rows exactly as :func:`protocol.records.decode_rows` returns them,
        in one transaction; returns how many were new.

        The fast path of a pull: decode_rows has already verified every
        record's CRC-32C and decoded its fields, so neither is done again
        (pass its rows unchanged: they are stored as given), and its rows are
        bound to the INSERT as they are.  Otherwise as :meth:`store_records`:
        idempotent, and a seq already stored with different bytes is a
        :class:`DeviceError`, nothing stored.  The batch is held in memory.
        """
        batch = rows if isinstance(rows, list) else list(rows)
        if not batch:
            return 0
        return self._store(serial, self._unit_id(serial), batch)

    def _store(self, serial: str, unit: int, rows: list[DecodedRow]) -> int:
        """Insert the verified, decoded rows of *unit* not stored yet; update its count and spans."""
        seqs = list(map(_seq_of, rows))
        first = seqs[0]
        if seqs == list(range(first, first + len(seqs))):
            runs, distinct = [(first, first + len(seqs))], True  # the usual batch of a pull
        else:
            unique = sorted(set(seqs))
            runs, distinct = list(_runs(unique)), len(unique) == len(rows)
        self._reconcile(serial, unit)
        with self._write() as db:
            stored = self._stored_raw(unit, runs)
            if stored or not distinct:
                rows = _new_records(serial, rows, stored)
            before = db.total_changes
            for sql, group in self._by_table(rows):
                db.executemany(sql.format(unit=unit), group)
            added = db.total_changes - before
            db.execute("UPDATE units SET record_count = record_count + ? WHERE id = ?", (added, unit))
            for start, end in runs:
                _merge_range(db, "spans", unit, start, end)
        return added

    def _by_table(self, rows: list[DecodedRow]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
        """``(INSERT, parameter rows)`` for each table *rows* go to."""
        decoders = self._decoders
        types, widths = set(map(_type_of, rows)), set(map(len, rows))
        if len(types) == 1 and len(widths) == 1:
            decoder = decoders.get(types.pop())
            if decoder is not None and widths.pop() == decoder.width:
                yield decoder.sql, rows  # a run of one layout: the rows are the parameters
                return
        groups: dict[int, list[tuple[Any, ...]]] = {rtype: [] for rtype in decoders}
        others: list[tuple[Any, ...]] = []
        for row in rows:
            decoder = decoders.get(row[2])
            if decoder is not None and len(row) == decoder.width:
                groups[row[2]].append(row)
            else:
                others.append((row[0], row[1], row[2], row[-1]))
        for rtype, decoder in decoders.items():
            if groups[rtype]:
                yield decoder.sql, groups[rtype]
        if others:
            yield _OTHER_SQL, others

    def _stored_raw(self, unit: int, runs: list[tuple[int, int]]) -> dict[int, bytes]:
        """The stored bytes of the seqs in *runs* already in the archive (on the write connection,
        inside its transaction)."""
        stored: dict[int, bytes] = {}
        where = "unit = :unit AND seq >= :start AND seq < :stop"
        for start, stop in runs:
            params = {"unit": unit, "start": start, "stop": stop}
            for decoder in self._decoders.values():
                rows = self._db.execute(decoder.select.format(where=where), params)
                stored.update((row[0], decoder.pack(*row)) for row in rows)
            stored.update(self._db.execute(f"SELECT seq, raw FROM other_records WHERE {where}", params))
        return stored

    def iter_rows(
        self, serial: str, rtype: int, where: str = "", params: dict[str, Any] | None = None,
        *, epoch: int | None = None,
    ) -> Generator[DecodedRow, None, None]:
        """The stored records of *serial* of one known type, in seq order, streamed, each as the
        :data:`~protocol.records.DecodedRow` it was stored from, checked against its CRC-32C
        (of the latest epoch, or of *epoch*).

        *where* adds SQL conditions on the type's table (its columns, named *params*).
        Raises :class:`ArchiveError` for a row that no longer matches its CRC (the file was
        altered outside turbolog) and :class:`UsageError` for a type with no table.
        """
        decoder = self._decoders.get(rtype)
        if decoder is None:
            raise UsageError(f"record type {rtype} has no table of its own; see iter_raw")
        clause = "unit = :unit" + (f" AND ({where})" if where else "")
        named = {**(params or {}), "unit": self._unit_id(serial, epoch)}
        return self._verified(serial, decoder, self.query(decoder.select.format(where=clause), named))

    def _verified(
        self, serial: str, decoder: _Decoder, rows: Generator[tuple[Any, ...], None, None]
    ) -> Generator[DecodedRow, None, None]:
        pack = decoder.pack
        for row in rows:
            if not is_intact(pack(*row)):
                rows.close()  # now, while the file is open: the error may outlive the archive
                raise ArchiveError(
                    f"archive {self.path}: record {row[0]} of unit {serial} does not match its "
                    "CRC-32C: the file was altered outside turbolog"
                )
            yield row

    def iter_raw(self, serial: str, epoch: int | None = None) -> Iterator[tuple[int, bytes]]:
        """``(seq, raw)`` of every stored record of *serial* (its latest epoch, or *epoch*), in
        seq order, streamed: the record's bytes exactly as received (rebuilt from the columns
        and checked against the record's CRC-32C; :class:`ArchiveError` if they no longer match,
        or, on a read-only archive, if records were deleted: see :meth:`_reconcile`)."""
        unit = self._unit_id(serial, epoch)
        self._reconcile(serial, unit)
        streams = [self._raw_of_rows(serial, rtype, epoch) for rtype in self._decoders]
        streams.append(self.query("SELECT seq, raw FROM other_records WHERE unit = ? ORDER BY seq", (unit,)))
        return heapq.merge(*streams, key=_seq_of)

    def _raw_of_rows(self, serial: str, rtype: int, epoch: int | None) -> Iterator[tuple[int, bytes]]:
        """``(seq, raw)`` from :meth:`iter_rows` (whose query runs now, not at the first next)."""
        pack = self._decoders[rtype].pack
        return ((row[0], pack(*row)) for row in self.iter_rows(serial, rtype, epoch=epoch))

    def max_seq(self, serial: str) -> int | None:
        """The highest stored seq of *serial*, or None when nothing is stored."""
        unit = self._unit_id(serial)
        arms = " UNION ALL ".join(
            f"SELECT MAX(seq) AS seq FROM {table} WHERE unit = :unit"
            for table in RECORD_TABLES
        )
        with self._translate():
            (top,) = self._ro.execute(f"SELECT MAX(seq) FROM ({arms})", {"unit": unit}).fetchone()
        return top  # type: ignore[no-any-return]

    def stored_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]:
        """Maximal ranges ``[a, b)`` of stored seqs within ``[start, stop)``, ascending.

        The ranges are the ``spans`` bookkeeping, checked against the rows
        once per unit and open (:meth:`_reconcile`): records deleted outside
        turbolog are missing here, so a pull fetches them again."""
        unit = self._unit_id(serial)
        self._reconcile(serial, unit)
        return [
            (max(first, start), min(end, stop))
            for first, end in self.query(
                """SELECT first_seq, first_seq + count FROM spans
                   WHERE unit = ? AND first_seq < ? AND first_seq + count > ? ORDER BY first_seq""",
                (unit, stop, start),
            )
        ]

    def holding(self, serial: str, epoch: int, start: int, stop: int) -> tuple[int | None, int | None, int]:
        """What the archive holds of *serial*'s *epoch*, by its ``spans`` bookkeeping: the lowest
        and highest stored seq (None, None when it holds none) and how many stored seqs lie within
        ``[start, stop)`` (the device's log, say)."""
        unit = self._unit_id(serial, epoch)
        ((low, top, within),) = self.query(
            """SELECT MIN(first_seq), MAX(first_seq + count) - 1,
                      COALESCE(SUM(MAX(0, MIN(first_seq + count, :stop) - MAX(first_seq, :start))), 0)
               FROM spans WHERE unit = :unit""",
            {"unit": unit, "start": start, "stop": stop},
        )
        return low, top, int(within)

    def evicted_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]:
        """Maximal ranges ``[a, b)`` of seqs recorded as evicted within ``[start, stop)``, ascending."""
        unit = self._unit_id(serial)
        return [
            (max(first, start), min(end, stop))
            for first, end in self.query(
                """SELECT first_seq, first_seq + count FROM evictions
                   WHERE unit = ? AND first_seq < ? AND first_seq + count > ? ORDER BY first_seq""",
                (unit, stop, start),
            )
        ]

    def missing_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]:
        """Maximal ranges ``[a, b)`` within ``[start, stop)`` that are not stored, ascending."""
        missing: list[tuple[int, int]] = []
        cursor = start
        for first, end in self.stored_ranges(serial, start, stop):
            if first > cursor:
                missing.append((cursor, first))
            cursor = end
        if cursor < stop:
            missing.append((cursor, stop))
        return missing

    # --- the bookkeeping checked against the rows -------------------------------

    def check(self, serial: str | None = None) -> None:
        """Raise :class:`ArchiveError` unless the rows stored for *serial* (for every unit when
        None) are as many as its bookkeeping says (``units.record_count`` and ``spans``), in each
        of its epochs: rows deleted or added outside turbolog.  Cheap: a count of each record
        table (of the unit's key range when *serial* is given), which SQLite takes from the
        tables' pages."""
        if serial is not None:
            for row in self.epochs(serial):
                unit = self._unit_id(serial, row.epoch)
                if not _consistent(self._tally(unit)):
                    raise self._damage(serial, unit)
            return
        with self._translate():
            totals = self._ro.execute(_TOTALS_SQL).fetchone()
            if _consistent(totals):
                return
            units = self._ro.execute("SELECT serial, id FROM units ORDER BY serial").fetchall()
        damaged = [(serial, unit) for serial, unit in units if not _consistent(self._tally(unit))]
        if not damaged:
            raise ArchiveError(
                f"archive {self.path} holds {totals[0]:,} records where its bookkeeping says "
                f"{totals[1]:,}: records of no unit were added or removed outside turbolog"
            )
        error = self._damage(*damaged[0])
        if len(damaged) > 1:
            error = ArchiveError(f"{error} (and {len(damaged) - 1:,} more units are damaged)")
        raise error

    def _tally(self, unit: int) -> tuple[int, int, int]:
        """``(rows stored, units.record_count, seqs in spans)`` of *unit*."""
        with self._translate():
            return self._ro.execute(_TALLY_SQL, {"unit": unit}).fetchone()  # type: ignore[no-any-return]

    def _damage(self, serial: str, unit: int) -> ArchiveError:
        """The one line saying how *unit*'s rows and bookkeeping disagree."""
        rows, count, _ = self._tally(unit)
        with self._translate():
            spans = self._ro.execute(
                "SELECT first_seq, first_seq + count FROM spans WHERE unit = ? ORDER BY first_seq", (unit,)
            ).fetchall()
            gone = _subtract(spans, self._stored_runs(self._ro, unit))
        if not gone:
            return ArchiveError(
                f"archive {self.path}: unit {serial} holds {rows:,} records where its bookkeeping says "
                f"{count:,}: the file was altered outside turbolog"
            )
        missing = sum(end - start for start, end in gone)
        shown = ", ".join(f"{start}..{end - 1}" for start, end in gone[:3])
        shown += ", ..." if len(gone) > 3 else ""
        records, were, them = ("record", "was", "it") if missing == 1 else ("records", "were", "them")
        return ArchiveError(
            f"archive {self.path}: {missing:,} {records} of unit {serial} (seqs {shown}) {were} deleted "
            f"outside turbolog: a pull from the unit fetches {them} again"
        )

    @staticmethod
    def _stored_runs(db: sqlite3.Connection, unit: int) -> list[tuple[int, int]]:
        """Maximal runs ``[a, b)`` of the seqs that have a row, from the rows themselves."""
        streams = [db.execute(f"SELECT seq FROM {table} WHERE unit = ? ORDER BY seq", (unit,))
                   for table in RECORD_TABLES]
        runs: list[tuple[int, int]] = []
        for (seq,) in heapq.merge(*streams):
            if runs and runs[-1][1] >= seq:
                runs[-1] = (runs[-1][0], max(runs[-1][1], seq + 1))
            else:
                runs.append((seq, seq + 1))
        return runs

    def _reconcile(self, serial: str, unit: int) -> None:
        """Once per unit and open: if *unit*'s rows and bookkeeping disagree, rebuild its spans
        and record count from the rows (a writable archive), so that records deleted outside
        turbolog count as missing and are fetched again; a read-only one raises ArchiveError."""
        if unit in self._reconciled:
            return
        if not _consistent(self._tally(unit)):
            if self.readonly:
                raise self._damage(serial, unit)
            with self._write() as db:
                runs = self._stored_runs(db, unit)
                db.execute("DELETE FROM spans WHERE unit = ?", (unit,))
                db.executemany(
                    "INSERT INTO spans (unit, first_seq, count) VALUES (?, ?, ?)",
                    [(unit, start, end - start) for start, end in runs],
                )
                db.execute(
                    "UPDATE units SET record_count = ? WHERE id = ?", (sum(b - a for a, b in runs), unit)
                )
        self._reconciled.add(unit)

    # --- evictions and pulls -------------------------------------------------

    def record_evicted(self, serial: str, first: int, count: int) -> None:
        """Note that seqs ``first .. first + count - 1`` are gone from the device unread.

        Idempotent: ranges are merged with overlapping or adjacent ones already noted.
        """
        unit = self._unit_id(serial)
        if count < 0:
            raise UsageError(f"unit {serial}: cannot evict {count} records")
        if count == 0:
            return
        with self._write() as db:
            _merge_range(db, "evictions", unit, first, first + count)

    def evicted_count(self, serial: str) -> int:
        """How many seqs of *serial* were reported evicted."""
        unit = self._unit_id(serial)
        with self._translate():
            (total,) = self._ro.execute(
                "SELECT COALESCE(SUM(count), 0) FROM evictions WHERE unit = ?", (unit,)
            ).fetchone()
        return total  # type: ignore[no-any-return]

    def record_pull(
        self,
        serial: str,
        started: float,
        finished: float,
        added: int,
        evicted: int,
        retries: int,
        bytes_: int,
    ) -> None:
        """Append one pull to the history; *started* and *finished* are host Unix seconds."""
        unit = self._unit_id(serial)
        with self._write() as db:
            db.execute(
                """INSERT INTO pulls (unit, started, finished, added, evicted, retries, bytes)
                   VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (unit, started, finished, added, evicted, retries, bytes_),
            )

    def record_dial(
        self,
        url: str,
        *,
        serial: str | None,
        attempted: float,
        outcome: str,
        added: int,
        evicted: int,
        error: str | None,
    ) -> DialRow:
        """Note one poll's try at *url* (started at host time *attempted*): reached the end when
        *outcome* is :data:`REACHED`, else failed with *error*; the row as it now stands."""
        reached = outcome == REACHED
        with self._write() as db:
            db.execute(
                f"""INSERT INTO dials ({_DIAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (url) DO UPDATE SET
                        serial = COALESCE(excluded.serial, serial),
                        last_attempt = excluded.last_attempt,
                        last_success = COALESCE(excluded.last_success, last_success),
                        outcome = excluded.outcome, added = excluded.added, evicted = excluded.evicted,
                        error = excluded.error,
                        failures = CASE WHEN excluded.failures = 0 THEN 0 ELSE failures + 1 END""",
                (url, serial, attempted, attempted if reached else None, outcome, added, evicted,
                 error, 0 if reached else 1),
            )
            row = db.execute(f"SELECT {_DIAL_COLUMNS} FROM dials WHERE url = ?", (url,)).fetchone()
        return DialRow(*row)

    def dials(self) -> list[DialRow]:
        """What the last poll did at every URL it ever dialled, by URL."""
        with self._translate():
            rows = self._ro.execute(f"SELECT {_DIAL_COLUMNS} FROM dials ORDER BY url").fetchall()
        return [DialRow(*row) for row in rows]

    # --- reading -------------------------------------------------------------

    def query(
        self, sql: str, params: Iterable[Any] | dict[str, Any] = ()
    ) -> Generator[tuple[Any, ...], None, None]:
        """Run a read-only query (the tables in this module's docstring) and stream its rows.

        The query runs on a read-only connection: it cannot change the file.
        ``unit`` columns are ``units.id``; join ``units`` for the serial.
        """
        with self._translate():
            cursor = self._ro.execute(sql, params if isinstance(params, dict) else tuple(params))
        return self._stream(cursor)

    def _stream(self, cursor: sqlite3.Cursor) -> Generator[tuple[Any, ...], None, None]:
        with self._translate():
            yield from cursor

    # --- internals -----------------------------------------------------------

    def _unit_id(self, serial: str, epoch: int | None = None) -> int:
        """The ``units.id`` of *serial*'s latest epoch, or of its *epoch*."""
        if epoch is not None:
            with self._translate():
                row = self._ro.execute(
                    "SELECT id FROM units WHERE serial = ? AND epoch = ?", (serial, epoch)
                ).fetchone()
            if row is None:
                raise UnknownUnit(f"unit {serial!r} has no epoch {epoch} in the archive {self.path}")
            return int(row[0])
        unit = self._unit_ids.get(serial)
        if unit is None:
            with self._translate():
                row = self._ro.execute(
                    "SELECT id FROM units WHERE serial = ? ORDER BY epoch DESC LIMIT 1", (serial,)
                ).fetchone()
            if row is None:
                raise UnknownUnit(f"unit {serial!r} is not in the archive {self.path}")
            unit = self._unit_ids[serial] = row[0]
        return unit

    @contextmanager
    def _translate(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise ArchiveError(f"archive {self.path}: {exc}") from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        if self.readonly:
            raise ArchiveError(f"archive {self.path} was opened read-only: it cannot be written")
        with self._translate():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


_IDENTIFY_COLUMNS = (
    "model, firmware, schema_fingerprint, capacity_records, first_seq, next_seq, device_time, "
    "operating_s, starts, trips, energy_wh, updated"
)
_IDENTIFY_PARAMS = ", ".join("?" * 12)


def _unit_row(row: tuple[Any, ...]) -> UnitRow:
    """A row of ``SELECT {_UNIT_COLUMNS}`` as a UnitRow."""
    log_id, origin_seq, continues = row[-3:]
    log_id = None if log_id is None else bytes(log_id)
    values: tuple[Any, ...] = (*row[:-3], log_id, origin_seq, bool(continues))
    return UnitRow(*values)


_TALLY_SQL = (
    "SELECT " + " + ".join(f"(SELECT COUNT(*) FROM {table} WHERE unit = :unit)" for table in RECORD_TABLES)
    + ", (SELECT record_count FROM units WHERE id = :unit)"
    + ", (SELECT COALESCE(SUM(count), 0) FROM spans WHERE unit = :unit)"
)
"""``(rows, units.record_count, seqs in spans)`` of one unit."""
_TOTALS_SQL = (
    "SELECT " + " + ".join(f"(SELECT COUNT(*) FROM {table})" for table in RECORD_TABLES)
    + ", (SELECT COALESCE(SUM(record_count), 0) FROM units)"
    + ", (SELECT COALESCE(SUM(count), 0) FROM spans)"
)
"""``(rows, units.record_count, seqs in spans)`` of the whole archive."""


def _consistent(tally: tuple[int, int, int]) -> bool:
    rows, count, spanned = tally
    return rows == count == spanned


def _subtract(ranges: list[tuple[int, int]], minus: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of sorted, disjoint *ranges* ``[a, b)`` outside the sorted, disjoint *minus*."""
    out: list[tuple[int, int]] = []
    i = 0
    for start, end in ranges:
        cursor = start
        while i < len(minus) and minus[i][1] <= cursor:
            i += 1
        j = i
        while j < len(minus) and minus[j][0] < end:
            if minus[j][0] > cursor:
                out.append((cursor, minus[j][0]))
            cursor = max(cursor, minus[j][1])
            j += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def _merge_range(db: sqlite3.Connection, table: str, unit: int, low: int, high: int) -> None:
    """Add ``[low, high)`` to *table*'s disjoint, non-adjacent ``(first_seq, count)`` ranges.

    Only the range starting at or before *low* and those starting inside
    ``(low, high]`` can touch the new one; both are found through the key.
    """
    below = db.execute(
        f"""SELECT first_seq, count FROM {table}
            WHERE unit = ? AND first_seq <= ? ORDER BY first_seq DESC LIMIT 1""",
        (unit, low),
    ).fetchall()
    inside = db.execute(
        f"SELECT first_seq, count FROM {table} WHERE unit = ? AND first_seq > ? AND first_seq <= ?",
        (unit, low, high),
    ).fetchall()
    touching = [(first, count) for first, count in below if first + count >= low] + inside
    for first, count in touching:
        low, high = min(low, first), max(high, first + count)
    db.executemany(
        f"DELETE FROM {table} WHERE unit = ? AND first_seq = ?", [(unit, first) for first, _ in touching]
    )
    db.execute(f"INSERT INTO {table} (unit, first_seq, count) VALUES (?, ?, ?)", (unit, low, high - low))


def _check_file(path: Path) -> None:
    """Refuse, before SQLite touches it, anything at *path* that is not an SQLite file."""
    try:
        if path.is_dir():
            raise ArchiveError(f"{path} is a directory, not an archive file")
        if not path.exists() or path.stat().st_size == 0:
            return
        with path.open("rb") as file:
            magic = file.read(len(_SQLITE_MAGIC))
    except OSError as exc:
        raise ArchiveError(f"cannot read archive {path}: {exc.strerror}") from exc
    if magic != _SQLITE_MAGIC:
        raise ArchiveError(f"{path} is not a turbolog archive (not an SQLite file)")


def _prepare(db: sqlite3.Connection, path: Path) -> None:
    """Recognise the file as ours (or as empty), then bring its schema up to date.

    Every step waits for other processes as a write does: the file is
    identified in one snapshot, WAL mode is set (retried while another
    process holds the lock: SQLite does not call the busy handler there),
    and each migration runs in a ``BEGIN IMMEDIATE`` transaction that looks
    at the version again, so of processes creating one file at once, one
    creates it and the others find it made.
    """
    version = _identify(db, path)
    if version == 0:
        db.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
    _use_wal(db)
    while version < len(MIGRATIONS):
        db.execute("BEGIN IMMEDIATE")
        try:
            version = _identify(db, path)  # another process may have moved on
            if version < len(MIGRATIONS):
                if version == 0:
                    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                MIGRATIONS[version](db)
                version += 1
                db.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


def _identify(db: sqlite3.Connection, path: Path) -> int:
    """The schema version of the file, 0 for an empty one, read in one statement (one snapshot);
    ArchiveError for a file that is not a turbolog archive or is newer than this turbolog."""
    app_id, version, objects = db.execute(
        """SELECT (SELECT application_id FROM pragma_application_id),
                  (SELECT user_version FROM pragma_user_version),
                  (SELECT COUNT(*) FROM sqlite_master)"""
    ).fetchone()
    if app_id == 0 and version == 0 and objects == 0:
        return 0
    if app_id != APPLICATION_ID:
        raise ArchiveError(f"{path} is an SQLite file but not a turbolog archive")
    _refuse_newer(path, version)
    return version  # type: ignore[no-any-return]


_BUSY_TIMEOUT_S = 10.0
"""How long opening or writing waits for another process's lock."""


def _use_wal(db: sqlite3.Connection) -> None:
    """``journal_mode = WAL``, retried for up to :data:`_BUSY_TIMEOUT_S` while the file is locked."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL").fetchall()
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.005)


def _refuse_newer(path: Path, version: int) -> None:
    if version > len(MIGRATIONS):
        raise ArchiveError(
            f"{path} has archive schema version {version}; this turbolog knows up to "
            f"{len(MIGRATIONS)}: upgrade turbolog"
        )
