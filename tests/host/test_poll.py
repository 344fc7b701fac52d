"""The poll's parts without a device: one writer for many pulls committing at once, the gate on the
expected serial, --due and its back-off, --shard's stable shares, the dials table, and a
socket:// link that closes without pausing."""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from host.archive import REACHED, Archive, DialRow
from host.archive_writer import ArchiveWriter, SerialClaims, UnitArchive
from host.errors import ArchiveError, UnknownUnit, UsageError, WrongUnit
from host.poll import RETRY_AFTER_S, Shard, due
from host.transport import open_port
from protocol.inventory import InventoryEntry
from protocol.records import decode_rows
from tests.host.test_archive import add_unit, sample

UNITS = 8
RECORDS = 600


def rows_of(seqs: list[int]) -> list[tuple[object, ...]]:
    good, bad = decode_rows(b"".join(sample(seq) for seq in seqs))
    assert not bad
    return good


def test_pulls_committing_at_once_lose_no_record_and_write_none_twice(tmp_path: Path) -> None:
    """Eight threads store their units' records in shuffled, overlapping batches (each record
    offered twice), all at once through one writer: every record is stored once, each thread's
    count of records added is exactly its unit's, and the archive's bookkeeping agrees."""
    db = tmp_path / "fleet.sqlite"
    with Archive.open(db) as archive:
        for number in range(UNITS):
            add_unit(archive, f"S{number}", next_seq=RECORDS)
    start = threading.Barrier(UNITS)
    added: dict[str, int] = {}
    with ArchiveWriter(db) as writer:
        def pull_like(number: int) -> None:
            serial = f"S{number}"
            view = UnitArchive(writer, f"socket://unit-{number}:1", serial, SerialClaims())
            seqs = list(range(RECORDS)) * 2
            random.Random(number).shuffle(seqs)
            start.wait()
            for at in range(0, len(seqs), 37):
                view.store_decoded(serial, rows_of(sorted(set(seqs[at:at + 37]))))
            added[serial] = view.added

        threads = [threading.Thread(target=pull_like, args=(number,)) for number in range(UNITS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert added == {f"S{number}": RECORDS for number in range(UNITS)}
    with Archive.open(db, readonly=True) as archive:
        archive.check()
        for number in range(UNITS):
            assert [seq for seq, _ in archive.iter_raw(f"S{number}")] == list(range(RECORDS))
            assert archive.unit(f"S{number}").record_count == RECORDS


def test_a_unit_view_refuses_another_serial_before_anything_is_written(tmp_path: Path) -> None:
    db = tmp_path / "fleet.sqlite"
    with Archive.open(db) as archive:
        add_unit(archive, "S1")
        add_unit(archive, "S2")
    claims = SerialClaims()
    with ArchiveWriter(db) as writer:
        expecting = UnitArchive(writer, "socket://a:1", "S1", claims)
        with pytest.raises(WrongUnit, match="unit S2 answers there, not S1 as the inventory says"):
            expecting.store_decoded("S2", rows_of([0, 1]))
        assert expecting.answered == "S2" and expecting.added == 0

        first = UnitArchive(writer, "socket://a:1", None, claims)
        assert first.missing_ranges("S2", 0, 4) == [(0, 4)]
        twin = UnitArchive(writer, "socket://b:2", None, claims)
        with pytest.raises(WrongUnit, match="unit S2 answers at socket://b:2 and at socket://a:1"):
            twin.unit("S2")
        first.release()
        assert twin.unit("S2").serial == "S2"
        with pytest.raises(UnknownUnit):  # the archive's own errors reach the caller's thread
            UnitArchive(writer, "socket://c:3", None, claims).unit("S9")
    with Archive.open(db, readonly=True) as archive:
        assert archive.unit("S2").record_count == 0
    with pytest.raises(ArchiveError, match="closed"):
        writer.call(Archive.units)


def test_a_writer_on_a_foreign_file_fails_in_the_callers_thread(tmp_path: Path) -> None:
    foreign = tmp_path / "notes.sqlite"
    foreign.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ArchiveError):
        ArchiveWriter(foreign)


def test_dials_keep_the_last_try_the_last_success_and_the_failures_since(tmp_path: Path) -> None:
    with Archive.open(tmp_path / "fleet.sqlite") as archive:
        archive.record_dial("socket://a:1", serial="S1", attempted=100.0, outcome=REACHED, added=5,
                            evicted=0, error=None)
        archive.record_dial("socket://a:1", serial=None, attempted=200.0, outcome="LinkError", added=0,
                            evicted=0, error="cannot connect")
        row = archive.record_dial("socket://a:1", serial=None, attempted=300.0, outcome="LinkTimeout",
                                  added=0, evicted=0, error="no answer")
        assert row == DialRow("socket://a:1", "S1", 300.0, 100.0, "LinkTimeout", 0, 0, "no answer", 2)
        row = archive.record_dial("socket://a:1", serial="S1", attempted=400.0, outcome=REACHED, added=1,
                                  evicted=2, error=None)
        assert row == DialRow("socket://a:1", "S1", 400.0, 400.0, REACHED, 1, 2, None, 0)
        assert archive.dials() == [row]


def dial(url: str, *, attempt: float, success: float | None, failures: int) -> DialRow:
    outcome = REACHED if not failures else "LinkError"
    return DialRow(url, "S", attempt, success, outcome, 0, 0, None, failures)


def test_due_skips_units_reached_within_the_age_and_backs_off_failed_ones() -> None:
    now, day = 1_000_000.0, 86_400.0
    entries = [InventoryEntry(f"socket://u:{port}") for port in range(1, 7)]
    dials = {
        "socket://u:1": dial("socket://u:1", attempt=now - 3600, success=now - 3600, failures=0),
        "socket://u:2": dial("socket://u:2", attempt=now - 2 * day, success=now - 2 * day, failures=0),
        "socket://u:3": dial("socket://u:3", attempt=now - RETRY_AFTER_S / 2, success=None, failures=1),
        "socket://u:4": dial("socket://u:4", attempt=now - RETRY_AFTER_S * 1.5, success=None, failures=1),
        "socket://u:5": dial("socket://u:5", attempt=now - RETRY_AFTER_S * 1.5, success=None, failures=2),
    }
    assert [entry.url for entry in due(entries, dials, now, day)] == [
        "socket://u:2", "socket://u:4", "socket://u:6",
    ]
    # the back-off never waits longer than the age asked for
    assert "socket://u:5" in {entry.url for entry in due(entries, dials, now, RETRY_AFTER_S)}


@given(urls=st.lists(st.from_regex(r"socket://[a-z]{1,8}:[0-9]{1,5}", fullmatch=True), unique=True,
                     max_size=40),
       count=st.integers(1, 9))
def test_shards_split_an_inventory_into_disjoint_shares_that_cover_it(urls: list[str], count: int) -> None:
    shares = [[url for url in urls if Shard(index, count).holds(url)] for index in range(1, count + 1)]
    assert sorted(url for share in shares for url in share) == sorted(urls)


def test_a_shard_is_the_same_whoever_computes_it() -> None:
    """Stable across processes and hosts: a hash of the URL, not Python's salted hash()."""
    assert [Shard(k, 4).holds("socket://10.0.0.5:7001") for k in range(1, 5)] == [False, False, True, False]
    assert Shard(1, 2).holds("SOCKET://h:1") == Shard(1, 2).holds("socket://h:1")


@pytest.mark.parametrize("text", ["3/2", "0/2", "1", "a/b", "1/0", "-1/2"])
def test_a_shard_out_of_range_is_refused(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        Shard.parse(text)


def test_a_socket_url_closes_without_pausing(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyserial's socket:// sleeps 0.3 s in close(); ours shuts the socket down and closes it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        transport = open_port(f"socket://127.0.0.1:{listener.getsockname()[1]}")
        peer, _ = listener.accept()

        def no_sleep(seconds: float) -> None:
            raise AssertionError(f"close slept {seconds} s")

        monkeypatch.setattr(time, "sleep", no_sleep)
        transport.close()
        transport.close()
        with peer:
            assert peer.recv(10) == b""  # the peer sees the end of the stream at once
