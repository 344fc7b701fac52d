"""One history per log: a pull never stitches another log onto an archived serial number.

Over the in-process line (tests/host/loopback.py): the log a unit reports must be the one
archived for its serial (log id, lifetime counters, end of log, one overlapping record),
or the pull stops with a DeviceError (exit 9) and writes nothing; ``new_log`` archives it
as the serial's next epoch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from host.archive import Archive
from host.errors import DeviceError
from host.pull import PullResult, pull
from protocol.counters import LifetimeCounters
from protocol.records import SampleRecord, encode_record
from tests.host.loopback import SNAPSHOT, Line, ListUnit, make_records


class CountingUnit(ListUnit):
    """A ListUnit whose lifetime counters can be set."""

    def __init__(self, raws: list[bytes], counters: LifetimeCounters, **kw: object) -> None:
        super().__init__(raws, **kw)  # type: ignore[arg-type]
        self._counters = counters

    @property
    def counters(self) -> LifetimeCounters:
        return self._counters


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "archive.sqlite"


@pytest.fixture
def archive(path: Path) -> Iterator[Archive]:
    with Archive.open(path) as opened:
        yield opened


def run(unit: ListUnit, archive: Archive, **options: object) -> PullResult:
    line = Line(unit)
    return pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance, **options)  # type: ignore[arg-type]


def dump(path: Path) -> list[object]:
    """Every row of every table: what "nothing written" compares."""
    db = sqlite3.connect(path)
    try:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [(table, sorted(db.execute(f"SELECT * FROM {table}"), key=repr)) for table in sorted(tables)]
    finally:
        db.close()


def other_records(count: int) -> list[bytes]:
    """Another machine's log: the same seqs, other contents."""
    other = replace(SNAPSHOT, power_w=7)
    return [encode_record(SampleRecord(seq, 1_600_000_000 + seq, other)) for seq in range(count)]


@pytest.mark.parametrize("other_length", [500, 2000, 3000], ids=["behind", "as-long", "ahead"])
def test_another_log_under_an_archived_serial_is_refused_and_nothing_is_written(
    archive: Archive, path: Path, other_length: int
) -> None:
    run(ListUnit(make_records(2000), log_id=b"first-lg"), archive)
    before = dump(path)
    with pytest.raises(DeviceError, match=r"TL-0001: its log \(id .*\) is not the archived one .*--new-log"):
        run(ListUnit(other_records(other_length), log_id=b"other-lg"), archive)
    assert dump(path) == before


def test_the_same_log_id_with_other_records_is_caught_by_the_overlapping_record(
    archive: Archive, path: Path
) -> None:
    run(ListUnit(make_records(2000)), archive)
    before = dump(path)
    with pytest.raises(DeviceError, match="its record 1,999 differs from the archived one"):
        run(ListUnit(other_records(3000)), archive)
    assert dump(path) == before


def test_counters_that_went_backwards_are_refused(archive: Archive, path: Path) -> None:
    """The archived records carry 1 h (make_records); a unit reporting half an hour is not their log."""
    run(ListUnit(make_records(100)), archive)
    before = dump(path)
    with pytest.raises(DeviceError, match=r"counters went backwards \(operating hours 0.5 < 1.0 archived"):
        run(CountingUnit(make_records(200), LifetimeCounters(1800, 5, 0, 90000)), archive)
    assert dump(path) == before


def test_identify_counters_ahead_of_the_log_may_fall_back_to_it(archive: Archive) -> None:
    """A power cut loses what the unit had not logged yet: only the records' counters bind."""
    run(CountingUnit(make_records(100), LifetimeCounters(7200, 5, 0, 90000)), archive)
    assert run(CountingUnit(make_records(200), LifetimeCounters(3600, 2, 0, 65000)), archive).added == 100


def test_a_log_that_ends_below_the_archive_is_refused(archive: Archive) -> None:
    run(ListUnit(make_records(2000)), archive)
    with pytest.raises(DeviceError, match="its log ends before seq 1,500, but epoch 1 holds up to seq 1,999"):
        run(ListUnit(make_records(1500)), archive)


def test_new_log_archives_the_other_log_as_the_next_epoch(archive: Archive) -> None:
    first = run(ListUnit(make_records(2000), log_id=b"first-lg"), archive)
    other = other_records(300)
    second = run(ListUnit(other, log_id=b"other-lg"), archive, new_log=True)
    assert (first.epoch, second.epoch, second.added) == (1, 2, 300)
    one, two = archive.epochs("TL-0001")
    assert (one.log_id, one.record_count) == (b"first-lg", 2000)
    assert (two.log_id, two.record_count) == (b"other-lg", 300)
    assert not two.continues and two.origin_seq == 0
    assert list(archive.iter_raw("TL-0001", epoch=1)) == list(enumerate(make_records(2000)))
    assert list(archive.iter_raw("TL-0001")) == list(enumerate(other))
    again = run(ListUnit(other, log_id=b"other-lg"), archive)
    assert (again.epoch, again.added) == (2, 0), "the next pull goes on in the new epoch"


def test_new_log_on_the_archived_log_just_pulls(archive: Archive) -> None:
    unit = ListUnit(make_records(100))
    run(unit, archive)
    unit.raws += make_records(50, start=100)
    result = run(unit, archive, new_log=True)
    assert (result.epoch, result.added) == (1, 50)


def test_a_cleared_log_continues_the_old_one(archive: Archive) -> None:
    unit = ListUnit(make_records(1000), log_id=b"before-c")
    run(unit, archive)
    unit.raws += make_records(100, start=1000)
    unit.evict_to(1050)
    unit.log_id = b"after-cl"
    result = run(unit, archive, new_log=True)
    epoch = archive.unit("TL-0001")
    assert (result.epoch, epoch.continues, epoch.origin_seq) == (2, True, 1000)
    assert (result.added, result.evicted) == (50, 50), "1000..1049 were cleared before they were read"


def test_a_log_id_that_changes_during_a_pull_stops_it(archive: Archive) -> None:
    unit = ListUnit(make_records(3000))

    def clear() -> None:
        unit.log_id = b"cleared!"

    line = Line(unit, cuts=[20_000], at_bytes=[(19_000, clear)])
    with pytest.raises(DeviceError, match="its log changed during the pull"):
        pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance)
    assert archive.unit("TL-0001").record_count > 0, "what was pulled before is kept"


def test_an_epoch_archived_before_logs_had_ids_takes_the_id_once_the_checks_pass(
    archive: Archive, path: Path
) -> None:
    run(ListUnit(make_records(100)), archive)
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE units SET log_id = NULL")
    db.close()
    unit = ListUnit(make_records(150), log_id=b"now-seen")
    assert run(unit, archive).added == 50
    assert archive.unit("TL-0001").log_id == b"now-seen"
