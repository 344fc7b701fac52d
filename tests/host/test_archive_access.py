"""Who may open the archive how, and what the reports trust: through host.cli.main and real processes.

- Reading commands (units, summary, faults, export, plot, fleet) open an existing archive read-only:
  a mistyped --db is exit 4 and one line, and creates neither a file nor a directory; an archive of
  an older schema is read by none of them and left as it is.
- Every figure comes from rows checked against their CRC-32C: a value edited with sqlite3 is exit 4,
  never a figure; a deleted row is exit 4 naming the seqs, and the next writable open counts them
  as missing, so a pull (here: storing the record again) restores them.
- Processes creating one new archive at once all succeed.

(As an unprivileged user on a read-only archive or directory: tests/e2e/test_readonly_archive.py.)
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from host import archive as archive_module
from host.archive import APPLICATION_ID, MIGRATIONS, Archive
from host.cli import main
from host.errors import ArchiveError, HostError, UsageError
from host.privileged import ensure_archived
from protocol.enums import EventKind, Severity, Subsystem
from protocol.messages import IdentifyResponse
from protocol.records import (
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    SampleRecord,
    Snapshot,
    encode_record,
    scan_records,
)

T0 = 1_700_000_000
H = 3600
SERIAL = "A1"


def counters(hours: float, starts: int) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(operating_s=int(hours * H), starts=starts, energy_wh=int(hours * 50_000))
    return Snapshot(**fields)


LOG = [
    EventRecord(0, T0, EventKind.POWER_UP),
    EventRecord(1, T0 + 10, EventKind.START),
    SampleRecord(2, T0 + 100, counters(7000, 10)),
    FaultRecord(3, T0 + 1000, 0x101, Severity.FAST_SHUTDOWN, Subsystem.ENGINE, 0, counters(7500, 11)),
    EventRecord(4, T0 + 1100, EventKind.STATE_CHANGE, 6, 0),  # WARMDOWN -> STAND_BY
    EventRecord(5, T0 + 4600, EventKind.FAULT_CLEARED, level=Severity.FAST_SHUTDOWN, value_a=0x101),
    EventRecord(6, T0 + 4700, EventKind.START),
    SampleRecord(7, T0 + 9000, counters(7900, 13)),
    SampleRecord(8, T0 + 10_000, counters(7994, 13)),
]


def store(archive: Archive, records: list[SampleRecord | FaultRecord | EventRecord]) -> int:
    scanned, errors = scan_records(b"".join(encode_record(record) for record in records))
    assert not errors
    return archive.store_records(SERIAL, scanned)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """An archive holding unit A1: 7,994 operating hours, one failure, back up 3,600 s later."""
    path = tmp_path / "archive.sqlite"
    with Archive.open(path) as archive:
        archive.upsert_unit(
            SERIAL, "C65", "fw-2.1", 0xD8247CB9, first_seq=0, next_seq=9, capacity_records=50_000,
            device_time=T0 + 10_000, operating_s=7994 * H, starts=13, trips=1, energy_wh=0,
        )
        store(archive, LOG)
    return path


def turbolog(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``turbolog ARGV``; stderr is empty or one clean line."""
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    assert err == "" or (err.startswith("turbolog: ") and err.count("\n") == 1), repr(err)
    assert "Traceback" not in err
    return status, out, err


def edit(path: Path, sql: str) -> None:
    """Change the file as someone with sqlite3 would."""
    db = sqlite3.connect(path)
    with db:
        assert db.execute(sql).rowcount == 1
    db.close()


# --- reading commands open read-only ----------------------------------------------------------

READING = [
    ["units"],
    ["summary", SERIAL],
    ["faults", SERIAL],
    ["export", SERIAL, "--format", "csv"],
    ["plot", SERIAL, "--out", "unit.png"],
    ["fleet"],
]


@pytest.mark.parametrize("command", READING, ids=lambda argv: argv[0])
def test_a_mistyped_db_is_refused_and_nothing_is_created(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    typo = tmp_path / "archvie" / "archive.sqlite"
    status, out, err = turbolog([*command, "--db", str(typo)], capsys)
    assert status == 4 and out == ""
    assert f"there is no archive at {typo}" in err
    assert sorted(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", READING, ids=lambda argv: argv[0])
def test_reading_commands_leave_an_older_archive_as_it_is(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "archive.sqlite"
    db = sqlite3.connect(path)
    with db:
        MIGRATIONS[0](db)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("PRAGMA user_version = 1")
    db.close()
    before = path.read_bytes()
    status, _, err = turbolog([*command, "--db", str(path)], capsys)
    assert status == 4
    assert "schema version 1" in err and "a pull or an ingest into it (a writable open) migrates it" in err
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["archive.sqlite"]


def test_a_read_only_archive_refuses_writes_and_reads_as_usual(db: Path) -> None:
    with Archive.open(db, readonly=True) as archive:
        assert archive.readonly and archive.unit(SERIAL).record_count == len(LOG)
        with pytest.raises(ArchiveError, match="opened read-only"):
            archive.record_evicted(SERIAL, 100, 1)
    with Archive.open(db) as archive:
        assert archive.evicted_count(SERIAL) == 0


# --- figures come from verified rows -------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE samples SET operating_s = operating_s + 36000000 WHERE seq = 8",  # 17,994 h for 7,994 h
        "UPDATE samples SET timestamp = timestamp - 100 WHERE seq = 2",
        "UPDATE faults SET severity = 0 WHERE seq = 3",  # the failure disappears
        "UPDATE faults SET code = 7 WHERE seq = 3",
        "UPDATE events SET kind = 3 WHERE seq = 5",  # no longer cleared: down time grows
        "UPDATE events SET timestamp = timestamp + 1 WHERE seq = 0",
    ],
)
def test_an_edited_value_is_refused_by_every_report(
    db: Path, sql: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert turbolog(["summary", SERIAL, "--db", str(db)], capsys)[0] == 0
    edit(db, sql)
    picture = db.parent / "unit.png"
    drawn = "events" not in sql  # the unit plot draws samples and faults
    for command in (
        ["summary", SERIAL], ["fleet"], ["summary", SERIAL, "--json"], ["fleet", "--json"],
        *([["plot", SERIAL, "--out", str(picture)]] if drawn else []),
    ):
        status, out, err = turbolog([*command, "--db", str(db)], capsys)
        assert (status, out) == (4, ""), command
        assert "does not match its CRC-32C: the file was altered outside turbolog" in err
    assert not picture.exists()


def test_the_fault_list_filters_only_verified_rows(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = ["faults", SERIAL, "--severity", "normal_shutdown", "--json", "--db", str(db)]
    status, out, _ = turbolog(command, capsys)
    assert status == 0 and '"seq": 3' in out
    edit(db, "UPDATE faults SET severity = 0 WHERE seq = 3")
    status, out, err = turbolog(command, capsys)
    assert (status, out) == (4, "") and "record 3 of unit A1 does not match its CRC-32C" in err


def test_unedited_figures_are_the_records(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = turbolog(["summary", SERIAL, "--json", "--db", str(db)], capsys)
    assert status == 0
    assert '"operating_hours": 7994.0' in out and '"failures": 1' in out and '"downtime_hours": 1.0' in out


@pytest.mark.parametrize("table, seq", [("samples", 7), ("faults", 3), ("events", 5), ("samples", 8)])
def test_a_deleted_row_is_reported_then_fetched_again(
    db: Path, table: str, seq: int, capsys: pytest.CaptureFixture[str]
) -> None:
    edit(db, f"DELETE FROM {table} WHERE seq = {seq}")
    export = ["export", SERIAL, "--format", "jsonl"]  # jsonl has no header to write first
    parquet = ["export", "--format", "parquet", "--out", str(db.parent / "dataset")]
    plot = ["plot", SERIAL, "--out", str(db.parent / "unit.png")]
    for command in (["summary", SERIAL], ["fleet"], ["faults", SERIAL], export, parquet, plot):
        status, out, err = turbolog([*command, "--db", str(db)], capsys)
        assert (status, out) == (4, ""), command
        assert f"1 record of unit A1 (seqs {seq}..{seq}) was deleted outside turbolog" in err
        assert "a pull from the unit fetches it again" in err
    with Archive.open(db) as archive:  # a pull's writable open: the seq counts as missing again
        assert archive.missing_ranges(SERIAL, 0, 9) == [(seq, seq + 1)]
        assert archive.unit(SERIAL).record_count == len(LOG) - 1
        assert store(archive, [LOG[seq]]) == 1
        assert archive.missing_ranges(SERIAL, 0, 9) == []
        archive.check()
    status, out, _ = turbolog(["summary", SERIAL, "--json", "--db", str(db)], capsys)
    assert status == 0 and '"records": 9' in out and '"operating_hours": 7994.0' in out


def test_a_deleted_row_is_found_among_many_units(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Archive.open(db) as archive:
        for n in range(2, 6):
            archive.upsert_unit(
                f"B{n}", "C30", "fw-2.1", 0xD8247CB9, first_seq=0, next_seq=0, capacity_records=50_000,
                device_time=T0, operating_s=0, starts=0, trips=0, energy_wh=0,
            )
    edit(db, "DELETE FROM samples WHERE seq = 2")
    status, _, err = turbolog(["fleet", "--db", str(db)], capsys)
    assert status == 4 and "unit A1 (seqs 2..2)" in err


def test_a_read_only_open_does_not_repair(db: Path) -> None:
    edit(db, "DELETE FROM samples WHERE seq = 7")
    with Archive.open(db, readonly=True) as archive, pytest.raises(ArchiveError, match="seqs 7..7"):
        archive.missing_ranges(SERIAL, 0, 9)
    with Archive.open(db, readonly=True) as archive, pytest.raises(ArchiveError, match="seqs 7..7"):
        archive.check()


# --- creating one archive at once -------------------------------------------------------------


def _create(path: Path, barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    barrier.wait(30)
    try:
        with Archive.open(path) as archive:
            results.put(("ok", archive.units(), next(archive.query("PRAGMA user_version"))[0]))
    except HostError as exc:
        results.put(("error", str(exc), None))


def test_processes_creating_one_new_archive_at_once_all_succeed(tmp_path: Path) -> None:
    """40 pairs of processes each open one new file at the same moment: every one succeeds, and every
    file has the whole schema (without the fix about one pair in four failed "database is locked")."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    outcomes = []
    for pair in range(40):
        path = tmp_path / f"pair-{pair}" / "archive.sqlite"
        barrier = context.Barrier(2)
        processes = [context.Process(target=_create, args=(path, barrier, results)) for _ in range(2)]
        for process in processes:
            process.start()
        outcomes += [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(30)
            assert process.exitcode == 0
    assert outcomes == [("ok", [], len(archive_module.MIGRATIONS))] * 80


def test_clear_log_refuses_while_a_deleted_record_is_not_fetched_again(db: Path) -> None:
    """clear-log's check reads the same ranges: a deleted record is one the unit must still keep."""
    edit(db, "DELETE FROM samples WHERE seq = 7")
    reported = cast(IdentifyResponse, SimpleNamespace(serial=SERIAL, first_seq=0, next_seq=9))
    refused = r"1 of the 9 records .* \(seqs 7\.\.7\)"
    with Archive.open(db) as archive, pytest.raises(UsageError, match=refused):
        ensure_archived(archive, SERIAL, reported)
