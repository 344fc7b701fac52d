"""The archive file: creation, recognition, migrations, idempotent storage, ranges, evictions."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host import archive as archive_module
from host.archive import APPLICATION_ID, MIGRATIONS, Archive, column_of
from host.archive_path import default_archive_path
from host.errors import ArchiveError, DeviceError, HostError, UnknownUnit, UsageError
from protocol.enums import EventKind, RecordType, Severity, Subsystem
from protocol.records import (
    LAYOUTS,
    RUNUP_CHANNELS,
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    RunupRecord,
    SampleRecord,
    Snapshot,
    UnknownRecord,
    decode_batch,
    decode_rows,
    encode_record,
    record_from_row,
    row_bytes,
    scan_records,
)

T0 = 1_700_000_000


def snapshot(**values: int) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(state=4, speed_rpm=96_000, power_w=64_000, tet1_c_x10=3090, tet2_c_x10=3070)
    fields.update(values)
    return Snapshot(**fields)


def sample(seq: int, exhaust_c_x10: int | None = None, **values: int) -> bytes:
    """A sample; without *exhaust_c_x10*, one of firmware before that channel (as old archives hold)."""
    return encode_record(SampleRecord(seq, T0 + seq, snapshot(operating_s=seq * 60, **values), exhaust_c_x10))


def old_body(values: tuple[object, ...]) -> tuple[object, ...]:
    """The body fields of a decoded record as an archive before schema 5 kept them: a sample
    without the exhaust column (samples before that channel, its None, were all it held)."""
    body = values[4:-1]
    assert values[2] != 1 or body[-1] is None
    return body[:-1] if values[2] == 1 else body


def scanned(*raws: bytes) -> list[tuple[int, int, int, bytes]]:
    records, errors = scan_records(b"".join(raws))
    assert not errors
    return records


def samples(seqs: range | list[int]) -> list[tuple[int, int, int, bytes]]:
    return scanned(*(sample(seq) for seq in seqs))


def add_unit(archive: Archive, serial: str = "S1", model: str = "C65", **counters: int) -> None:
    identify = dict(
        first_seq=0, next_seq=0, capacity_records=100_000, device_time=T0,
        operating_s=0, starts=0, trips=0, energy_wh=0,
    )
    identify.update(counters)
    archive.upsert_unit(serial, model, "fw-1.0", 0xD8247CB9, **identify)


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        add_unit(opened)
        yield opened


# --- the file ---------------------------------------------------------------------


def test_open_creates_directories_and_marks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "archive.sqlite"
    with Archive.open(path):
        pass
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
    assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("PRAGMA page_size").fetchone() == (8192,)


def test_default_path_follows_xdg_data_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_archive_path() == tmp_path / "turbolog" / "archive.sqlite"
    for unusable in ("", "relative/dir"):
        monkeypatch.setenv("XDG_DATA_HOME", unusable)
        assert default_archive_path() == Path.home() / ".local" / "share" / "turbolog" / "archive.sqlite"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert default_archive_path() == Path.home() / ".local" / "share" / "turbolog" / "archive.sqlite"


def test_reopening_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite"
    with Archive.open(path) as first:
        add_unit(first)
        first.store_records("S1", samples(range(10)))
    with Archive.open(path) as again:
        assert [seq for seq, _ in again.iter_raw("S1")] == list(range(10))


def test_two_openers_share_the_file(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite"
    with Archive.open(path) as puller, Archive.open(path) as reader:
        add_unit(puller)
        stream = reader.iter_raw("S1")
        puller.store_records("S1", samples(range(10)))
        assert list(stream) == []
        assert reader.stored_ranges("S1", 0, 20) == [(0, 10)]
        add_unit(reader, "S2")
        assert puller.store_records("S2", samples(range(3))) == 3


def test_an_empty_file_and_an_empty_database_are_adopted(tmp_path: Path) -> None:
    empty_file = tmp_path / "empty.sqlite"
    empty_file.touch()
    empty_db = tmp_path / "empty-db.sqlite"
    db = sqlite3.connect(empty_db)
    db.execute("CREATE TABLE scratch (x)")
    db.execute("DROP TABLE scratch")
    db.close()
    for path in (empty_file, empty_db):
        with Archive.open(path) as opened:
            add_unit(opened)
            assert opened.store_records("S1", samples(range(3))) == 3


def _note_table(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE notes (unit INTEGER NOT NULL, text TEXT NOT NULL)")
    db.execute("ALTER TABLE units ADD COLUMN site TEXT")


def test_a_new_migration_upgrades_an_existing_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "archive.sqlite"
    with Archive.open(path) as v1:
        add_unit(v1)
        v1.store_records("S1", samples(range(5)))
    monkeypatch.setattr(archive_module, "MIGRATIONS", (*MIGRATIONS, _note_table))
    with Archive.open(path) as v2:
        assert [seq for seq, _ in v2.iter_raw("S1")] == list(range(5))
        assert list(v2.query("SELECT COUNT(*) FROM notes")) == [(0,)]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS) + 1,)
    db.close()
    monkeypatch.setattr(archive_module, "MIGRATIONS", MIGRATIONS)
    with pytest.raises(ArchiveError, match=f"schema version {len(MIGRATIONS) + 1}.*upgrade turbolog"):
        Archive.open(path)


def test_a_failing_migration_leaves_the_archive_at_its_old_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "archive.sqlite"
    with Archive.open(path):
        pass

    def broken(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE half (x)")
        db.execute("THIS IS NOT SQL")

    monkeypatch.setattr(archive_module, "MIGRATIONS", (*MIGRATIONS, broken))
    with pytest.raises(ArchiveError):
        Archive.open(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    assert db.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'half'").fetchone() == (0,)


def _foreign_sqlite(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    db.commit()
    db.close()


def _other_application(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA application_id = 1234")
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()


def _text_file(path: Path) -> None:
    path.write_text("serial,seq\nS1,0\n")


def _damaged_archive(path: Path) -> None:
    with Archive.open(path) as opened:
        add_unit(opened)
        opened.store_records("S1", samples(range(500)))
    data = bytearray(path.read_bytes())
    data[100:8192] = b"\xa5" * (8192 - 100)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("make", [_foreign_sqlite, _other_application, _text_file, _damaged_archive])
def test_files_that_are_not_our_archive_are_refused_in_one_line(tmp_path: Path, make) -> None:
    path = tmp_path / "archive.sqlite"
    make(path)
    with pytest.raises(ArchiveError) as refused, Archive.open(path) as opened:
        opened.units()
    assert "\n" not in str(refused.value)
    assert str(path) in str(refused.value)


def test_damage_found_while_reading_is_an_archive_error(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite"
    with Archive.open(path) as opened:
        add_unit(opened)
        opened.store_records("S1", samples(range(3000)))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 32768] = b"\xa5" * 32768
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="malformed"), Archive.open(path) as opened:
        list(opened.iter_raw("S1"))


def test_paths_that_cannot_hold_an_archive_are_refused(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    for path in (tmp_path, tmp_path / "plain-file" / "archive.sqlite"):
        with pytest.raises(ArchiveError):
            Archive.open(path)


def test_archive_errors_carry_their_exit_code() -> None:
    assert issubclass(ArchiveError, HostError)
    assert ArchiveError.exit_code != HostError.exit_code
    assert issubclass(UnknownUnit, UsageError) and issubclass(UnknownUnit, LookupError)


# --- storing ----------------------------------------------------------------------


def _mixed_log() -> list[bytes]:
    freeze = snapshot(operating_s=7200, trips=1)
    return [
        sample(0),
        encode_record(EventRecord(1, T0 + 1, EventKind.START, 0, 1)),
        sample(2),
        encode_record(FaultRecord(3, T0 + 3, 0x0101, Severity.FAST_SHUTDOWN, Subsystem.ENGINE, 0x40, freeze)),
        encode_record(UnknownRecord(4, T0 + 4, 9, b"future")),
        encode_record(UnknownRecord(5, T0 + 5, 1, bytes(60))),
        sample(6),
    ]


def test_storing_is_idempotent_and_keeps_the_bytes(archive: Archive) -> None:
    raws = _mixed_log()
    records = scanned(*raws)
    assert archive.store_records("S1", records) == len(raws)
    assert archive.store_records("S1", records) == 0
    assert archive.store_records("S1", reversed(records)) == 0
    assert list(archive.iter_raw("S1")) == [(seq, raw) for seq, raw in enumerate(raws)]
    assert archive.unit("S1").record_count == len(raws)


def test_an_overlapping_batch_adds_only_the_new_records(archive: Archive) -> None:
    assert archive.store_records("S1", samples(range(0, 60))) == 60
    assert archive.store_records("S1", samples(range(40, 100))) == 40
    assert archive.store_records("S1", samples([5, 5, 150, 150])) == 1
    assert archive.unit("S1").record_count == 101
    assert archive.store_records("S1", []) == 0


def test_records_are_decoded_into_their_tables(archive: Archive) -> None:
    archive.store_records("S1", scanned(*_mixed_log()))
    assert list(archive.query("SELECT seq, operating_s, power_w, tet1_c_x10 FROM samples ORDER BY seq")) == [
        (0, 0, 64_000, 3090), (2, 120, 64_000, 3090), (6, 360, 64_000, 3090),
    ]
    faults = archive.query("SELECT seq, code, severity, subsystem, flags, operating_s, trips FROM faults")
    assert list(faults) == [
        (3, 0x0101, 4, 0, 0x40, 7200, 1),
    ]
    assert list(archive.query("SELECT seq, kind, state_from, state_to FROM events")) == [(1, 2, 0, 1)]
    assert list(archive.query("SELECT seq, type FROM other_records ORDER BY seq")) == [(4, 9), (5, 1)]
    assert list(archive.query("SELECT seq, type FROM records ORDER BY seq")) == [
        (0, 1), (1, 3), (2, 1), (3, 2), (4, 9), (5, 1), (6, 1),
    ]


def test_decoded_columns_cover_every_field_of_the_record_formats(archive: Archive) -> None:
    for rtype, table in ((1, "samples"), (2, "faults"), (3, "events"), (4, "runups")):
        columns = [row[1] for row in archive.query(f"PRAGMA table_info({table})")]
        fields = [column_of(name) for name in LAYOUTS[rtype].names[4:-1]]
        assert columns[:3] == ["unit", "seq", "timestamp"]  # a field added later is a column at the end
        assert sorted(columns[3:]) == sorted([*fields, "crc"])


def test_a_record_failing_its_crc_is_refused_and_nothing_is_stored(archive: Archive) -> None:
    records = samples(range(3))
    seq, timestamp, rtype, raw = records[1]
    records[1] = (seq, timestamp, rtype, raw[:-1] + bytes([raw[-1] ^ 1]))
    with pytest.raises(UsageError, match="record 1 fails its CRC"):
        archive.store_records("S1", records)
    assert archive.max_seq("S1") is None


@pytest.mark.parametrize("index", [0, 1, 3, 4])
def test_a_tuple_that_is_not_its_records_header_is_refused(archive: Archive, index: int) -> None:
    record = scanned(*_mixed_log())[index]
    seq, timestamp, rtype, raw = record
    for wrong in ((seq + 1, timestamp, rtype, raw), (seq, timestamp, rtype ^ 1, raw)):
        with pytest.raises(UsageError, match="not the header"):
            archive.store_records("S1", [wrong])
    assert archive.store_records("S1", [record]) == 1


@pytest.mark.parametrize("later", [[sample(1, power_w=1)], [sample(3), sample(3, power_w=1)]])
def test_a_seq_with_different_bytes_is_a_device_error(archive: Archive, later: list[bytes]) -> None:
    archive.store_records("S1", samples(range(3)))
    with pytest.raises(DeviceError, match="seq [13]"):
        archive.store_records("S1", scanned(*later))
    assert [seq for seq, _ in archive.iter_raw("S1")] == [0, 1, 2]


def test_an_unknown_serial_is_refused(archive: Archive) -> None:
    with pytest.raises(UnknownUnit, match="'S9'"):
        archive.store_records("S9", samples(range(1)))
    for call in (archive.unit, archive.max_seq, archive.evicted_count, archive.iter_raw):
        with pytest.raises(UnknownUnit):
            call("S9")
    with pytest.raises(UnknownUnit):
        archive.missing_ranges("S9", 0, 10)


def rows(*raws: bytes) -> list[tuple[object, ...]]:
    decoded, errors = decode_rows(b"".join(raws))
    assert not errors
    return decoded


@pytest.mark.parametrize(
    "raws",
    [[sample(seq) for seq in range(40)], _mixed_log(), [sample(0), sample(1)[:-1] + b"\x00", sample(2)]],
    ids=["samples", "mixed", "one-corrupt"],
)
def test_decode_rows_are_decode_batch_records_as_rows(raws: list[bytes]) -> None:
    """A known record's row is its fields (the bytes rebuild from them); any other keeps its bytes."""
    buf = b"".join(raws)
    batch, batch_errors = decode_batch(buf)
    flat, flat_errors = decode_rows(buf)
    known = [len(values) > 4 for _, values in batch]  # an unknown record decodes as its header alone
    assert flat == [values if ok else (*values, raw) for (raw, values), ok in zip(batch, known, strict=True)]
    assert [row_bytes(row) for row in flat] == [raw for raw, _ in batch]
    assert [type(e) for e in flat_errors] == [type(e) for e in batch_errors]


def test_a_version_1_archive_is_migrated_record_for_record(tmp_path: Path) -> None:
    """Version 2 drops the raw bytes for the CRC; every record must come out of it as it went in."""
    path = tmp_path / "archive.sqlite"
    db = sqlite3.connect(path)
    with db:
        archive_module.MIGRATIONS[0](db)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO units VALUES (1, 'S1', 'C65', '1.0', 0, 100000, 0, 7, 0, 0, 0, 0, 0, 0, 0)")
        tables = {1: "samples", 2: "faults", 3: "events"}
        for raw, values in decode_batch(b"".join(_mixed_log()))[0]:
            if values[2] in tables and len(values) > 4:
                row = (1, values[0], values[1], *old_body(values), raw)
                db.execute(f"INSERT INTO {tables[values[2]]} VALUES ({', '.join('?' * len(row))})", row)
            else:
                db.execute("INSERT INTO other_records VALUES (1, ?, ?, ?, ?)", (*values[:3], raw))
    db.close()
    with Archive.open(path) as v2:
        assert list(v2.iter_raw("S1")) == list(enumerate(_mixed_log()))
        assert "raw" not in [row[1] for row in v2.query("PRAGMA table_info(samples)")]
        assert v2.store_records("S1", scanned(*_mixed_log())) == 0


@pytest.mark.parametrize("table", ["samples", "faults", "events"])
def test_a_row_altered_outside_turbolog_is_caught_on_reading(archive: Archive, table: str) -> None:
    add_unit(archive)
    archive.store_records("S1", scanned(*_mixed_log()))
    db = sqlite3.connect(archive.path)
    with db:
        db.execute(f"UPDATE {table} SET timestamp = timestamp + 1 WHERE seq = (SELECT MIN(seq) FROM {table})")
    db.close()
    with pytest.raises(ArchiveError, match="does not match its CRC-32C"):
        list(archive.iter_raw("S1"))


def test_stored_rows_equal_stored_records_table_by_table(tmp_path: Path) -> None:
    contents = []
    for store in ("store_records", "store_decoded"):
        with Archive.open(tmp_path / f"{store}.sqlite") as opened:
            add_unit(opened)
            batch = scanned(*_mixed_log()) if store == "store_records" else rows(*_mixed_log())
            assert getattr(opened, store)("S1", batch) == len(_mixed_log())
            contents.append([
                list(opened.query(f"SELECT * FROM {table} ORDER BY 1, 2"))
                for table in ("samples", "faults", "events", "other_records", "spans")
            ])
            assert opened.unit("S1").record_count == len(_mixed_log())
    assert contents[0] == contents[1]


def test_store_decoded_is_idempotent_and_merges_spans(archive: Archive) -> None:
    first = rows(*(sample(seq) for seq in range(0, 60)))
    assert archive.store_decoded("S1", first) == 60
    assert archive.store_decoded("S1", iter(first)) == 0
    assert archive.store_decoded("S1", rows(*(sample(seq) for seq in range(40, 100)))) == 40
    assert archive.store_decoded("S1", rows(sample(5), sample(5), sample(150), sample(150))) == 1
    assert archive.store_decoded("S1", []) == 0
    assert archive.unit("S1").record_count == 101
    assert archive.stored_ranges("S1", 0, 200) == [(0, 100), (150, 151)]
    assert [seq for seq, _ in archive.iter_raw("S1")] == [*range(100), 150]


def test_store_decoded_refuses_a_seq_with_different_bytes(archive: Archive) -> None:
    archive.store_decoded("S1", rows(*(sample(seq) for seq in range(3))))
    with pytest.raises(DeviceError, match="seq 1"):
        archive.store_decoded("S1", rows(sample(1, power_w=1)))
    with pytest.raises(DeviceError, match="seq 7"):
        archive.store_decoded("S1", rows(sample(7), sample(7, power_w=1)))
    with pytest.raises(UnknownUnit):
        archive.store_decoded("S9", rows(sample(0)))
    assert [seq for seq, _ in archive.iter_raw("S1")] == [0, 1, 2]


def test_upsert_updates_identify_and_keeps_the_record_count(archive: Archive) -> None:
    archive.store_records("S1", samples(range(4)))
    add_unit(archive, operating_s=3600, starts=3, next_seq=4)
    add_unit(archive, "S0", model="C30")
    unit = archive.unit("S1")
    assert (unit.operating_s, unit.starts, unit.next_seq, unit.record_count) == (3600, 3, 4, 4)
    assert [unit.serial for unit in archive.units()] == ["S0", "S1"]
    with pytest.raises(UsageError):
        add_unit(archive, "")


def test_updated_time_comes_from_the_clock(tmp_path: Path) -> None:
    with Archive.open(tmp_path / "a.sqlite", clock=lambda: 1234.5) as opened:
        add_unit(opened)
        assert opened.unit("S1").updated == 1234.5


# --- ranges -------------------------------------------------------------------------


def test_stored_and_missing_ranges(archive: Archive) -> None:
    assert archive.missing_ranges("S1", 0, 40) == [(0, 40)]
    assert archive.max_seq("S1") is None
    archive.store_records("S1", samples([*range(0, 10), *range(20, 25), 30]))
    assert archive.stored_ranges("S1", 0, 40) == [(0, 10), (20, 25), (30, 31)]
    assert archive.missing_ranges("S1", 0, 40) == [(10, 20), (25, 30), (31, 40)]
    assert archive.stored_ranges("S1", 5, 22) == [(5, 10), (20, 22)]
    assert archive.missing_ranges("S1", 5, 22) == [(10, 20)]
    assert archive.missing_ranges("S1", 0, 10) == []
    assert archive.max_seq("S1") == 30
    archive.store_records("S1", samples(range(10, 20)))
    assert archive.stored_ranges("S1", 0, 40) == [(0, 25), (30, 31)]


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.lists(st.integers(0, 200), max_size=40), max_size=6))
def test_ranges_agree_with_the_stored_seqs(batches: list[list[int]]) -> None:
    with tempfile.TemporaryDirectory() as folder, Archive.open(Path(folder) / "a.sqlite") as opened:
        add_unit(opened)
        for batch in batches:
            opened.store_records("S1", samples(batch))
        stored = {seq for batch in batches for seq in batch}
        assert [seq for seq, _ in opened.iter_raw("S1")] == sorted(stored)
        assert opened.unit("S1").record_count == len(stored)
        covered = {seq for a, b in opened.stored_ranges("S1", 0, 201) for seq in range(a, b)}
        gaps = {seq for a, b in opened.missing_ranges("S1", 0, 201) for seq in range(a, b)}
        assert covered == stored
        assert gaps == set(range(201)) - stored


# --- evictions and pulls ------------------------------------------------------------


def test_evictions_merge_and_are_idempotent(archive: Archive) -> None:
    archive.record_evicted("S1", 0, 10)
    archive.record_evicted("S1", 0, 10)
    assert archive.evicted_count("S1") == 10
    archive.record_evicted("S1", 5, 10)
    archive.record_evicted("S1", 20, 5)
    assert archive.evicted_count("S1") == 20
    archive.record_evicted("S1", 15, 5)
    archive.record_evicted("S1", 30, 0)
    assert archive.evicted_count("S1") == 25
    assert list(archive.query("SELECT first_seq, count FROM evictions")) == [(0, 25)]
    with pytest.raises(UsageError):
        archive.record_evicted("S1", 0, -1)


def test_pulls_are_recorded(archive: Archive) -> None:
    archive.record_pull("S1", 100.0, 160.5, added=900, evicted=12, retries=3, bytes_=63_000)
    assert list(archive.query("SELECT started, finished, added, evicted, retries, bytes FROM pulls")) == [
        (100.0, 160.5, 900, 12, 3, 63_000),
    ]


# --- reading and closing ------------------------------------------------------------


def test_queries_cannot_write(archive: Archive) -> None:
    with pytest.raises(ArchiveError, match="readonly"):
        archive.query("DELETE FROM units")
    assert archive.unit("S1").serial == "S1"


def test_iter_raw_streams(archive: Archive) -> None:
    archive.store_records("S1", samples(range(2000)))
    stream = archive.iter_raw("S1")
    assert next(stream)[0] == 0
    archive.store_records("S1", samples(range(2000, 2100)))
    assert sum(1 for _ in stream) >= 1999


def test_a_closed_archive_raises_archive_error(tmp_path: Path) -> None:
    opened = Archive.open(tmp_path / "a.sqlite")
    add_unit(opened)
    opened.close()
    opened.close()
    with pytest.raises(ArchiveError):
        opened.units()
    with pytest.raises(ArchiveError):
        opened.store_records("S1", samples(range(1)))


def test_an_archive_of_before_epochs_is_migrated_record_for_record(tmp_path: Path) -> None:
    """Version 3 gives a serial several logs (epochs); every unit of an older archive becomes epoch 1
    of its serial, with every record, span, eviction and pull it had."""
    path = tmp_path / "archive.sqlite"
    db = sqlite3.connect(path)
    with db:
        archive_module.MIGRATIONS[0](db)
        archive_module.MIGRATIONS[1](db)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("PRAGMA user_version = 2")
        tables = {1: "samples", 2: "faults", 3: "events"}
        for unit, serial in ((1, "S1"), (2, "S2")):
            db.execute(f"INSERT INTO units VALUES ({unit}, '{serial}', 'C65', '1.0', 0, 100000, 0, 7, 0, "
                       "7200, 3, 1, 99, 0, 7)")
            for raw, values in decode_batch(b"".join(_mixed_log()))[0]:
                if values[2] in tables and len(values) > 4:
                    row = (unit, values[0], values[1], *old_body(values), int.from_bytes(raw[-4:], "little"))
                    db.execute(f"INSERT INTO {tables[values[2]]} VALUES ({', '.join('?' * len(row))})", row)
                else:
                    db.execute("INSERT INTO other_records VALUES (?, ?, ?, ?, ?)", (unit, *values[:3], raw))
            db.execute("INSERT INTO spans VALUES (?, 0, 7)", (unit,))
        db.execute("INSERT INTO evictions VALUES (2, 100, 5)")
        db.execute("INSERT INTO pulls VALUES (1, 1, 1.0, 2.0, 7, 0, 0, 100)")
    db.close()
    with Archive.open(path) as v3:
        for serial in ("S1", "S2"):
            assert list(v3.iter_raw(serial)) == list(enumerate(_mixed_log()))
            (epoch,) = v3.epochs(serial)
            assert (epoch.epoch, epoch.log_id, epoch.operating_s, epoch.record_count) == (1, None, 7200, 7)
        assert v3.evicted_count("S2") == 5 and v3.missing_ranges("S1", 0, 9) == [(7, 9)]
        assert list(v3.query("SELECT unit, added FROM pulls")) == [(1, 7)]
        assert v3.store_records("S1", scanned(*_mixed_log())) == 0
        v3.start_epoch("S1", "C65", "fw", 0, log_id=b"12345678", origin_seq=0, continues=False, first_seq=0,
                       next_seq=0, capacity_records=1, device_time=0, operating_s=0, starts=0, trips=0,
                       energy_wh=0)
        assert [e.epoch for e in v3.epochs("S1")] == [1, 2] and v3.unit("S1").record_count == 0
        assert v3.unit("S1", epoch=1).record_count == 7


def _log_with_runups() -> list[bytes]:
    """The mixed log, then the run-up of its fault (seq 3): one record per channel."""
    return [*_mixed_log(), *(
        encode_record(RunupRecord(7 + i, T0 + 3, 3, channel, 1, 60, tuple(range(6400 + i, 6460 + i))))
        for i, channel in enumerate(RUNUP_CHANNELS)
    )]


@pytest.mark.parametrize("store", ["store_records", "store_decoded"])
def test_run_ups_are_kept_in_their_own_table_and_come_back_byte_for_byte(
    archive: Archive, store: str
) -> None:
    add_unit(archive)
    raws = _log_with_runups()
    batch = scanned(*raws) if store == "store_records" else rows(*raws)
    assert getattr(archive, store)("S1", batch) == len(raws)
    assert list(archive.iter_raw("S1")) == list(enumerate(raws))
    runups = [record_from_row(row) for row in archive.iter_rows("S1", RecordType.RUNUP)]
    assert [(r.seq, r.fault_seq, r.channel) for r in runups if isinstance(r, RunupRecord)] == [
        (7 + i, 3, channel) for i, channel in enumerate(RUNUP_CHANNELS)
    ]
    assert list(archive.query("SELECT COUNT(*) FROM other_records")) == [(2,)]  # the two unknown ones
    assert list(archive.query("SELECT COUNT(*) FROM records WHERE type = 4")) == [(len(RUNUP_CHANNELS),)]
    assert archive.max_seq("S1") == len(raws) - 1
    archive.check("S1")


def test_a_version_3_archive_moves_the_run_ups_it_kept_whole_into_their_table(tmp_path: Path) -> None:
    """Before version 4 a RUNUP record was of an unknown type, kept whole in other_records."""
    path = tmp_path / "archive.sqlite"
    raws = _log_with_runups()
    db = sqlite3.connect(path)
    with db:
        for step in archive_module.MIGRATIONS[:3]:
            step(db)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("PRAGMA user_version = 3")
        db.execute(
            "INSERT INTO units (id, serial, model, firmware, schema_fingerprint, capacity_records, "
            "first_seq, next_seq, device_time, operating_s, starts, trips, energy_wh, updated, "
            "record_count) "
            f"VALUES (1, 'S1', 'C65', '1.0', 0, 100000, 0, {len(raws)}, 0, 7200, 3, 1, 99, 0, {len(raws)})"
        )
        tables = {1: "samples", 2: "faults", 3: "events"}
        for raw, values in decode_batch(b"".join(raws))[0]:
            if values[2] in tables and len(values) > 4:
                row = (1, values[0], values[1], *old_body(values), int.from_bytes(raw[-4:], "little"))
                db.execute(f"INSERT INTO {tables[values[2]]} VALUES ({', '.join('?' * len(row))})", row)
            else:
                db.execute("INSERT INTO other_records VALUES (1, ?, ?, ?, ?)", (*values[:3], raw))
        db.execute(f"INSERT INTO spans VALUES (1, 0, {len(raws)})")
    db.close()
    with Archive.open(path) as v4:
        assert list(v4.iter_raw("S1")) == list(enumerate(raws))
        assert len(list(v4.iter_rows("S1", RecordType.RUNUP))) == len(RUNUP_CHANNELS)
        assert list(v4.query("SELECT COUNT(*) FROM other_records")) == [(2,)]
        assert v4.store_records("S1", scanned(*raws)) == 0
        v4.check("S1")


@pytest.mark.parametrize("store", ["store_records", "store_decoded"])
def test_samples_with_and_without_exhaust_are_kept_side_by_side_byte_for_byte(
    archive: Archive, store: str
) -> None:
    """An archive that held a unit's log from before the exhaust channel goes on with the same
    unit's samples after a firmware update: both read back as they were received."""
    add_unit(archive)
    earlier = [sample(seq) for seq in range(3)]
    raws = earlier + [sample(seq, exhaust_c_x10=3_050 - seq) for seq in (3, 4, 5)]
    assert sorted({len(raw) for raw in raws}) == [68, 70]
    batch = scanned(*raws) if store == "store_records" else rows(*raws)
    assert getattr(archive, store)("S1", batch) == 6
    assert list(archive.iter_raw("S1")) == list(enumerate(raws))
    records = [record_from_row(row) for row in archive.iter_rows("S1", RecordType.SAMPLE)]
    exhaust = [r.exhaust_c_x10 for r in records if isinstance(r, SampleRecord)]
    assert exhaust == [None, None, None, 3_047, 3_046, 3_045]
    assert getattr(archive, store)("S1", batch) == 0
    archive.check("S1")
