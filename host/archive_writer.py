"""One archive for many pulls at once: a writer thread that owns the :class:`~host.archive.Archive`.

An Archive is for one thread (its SQLite connections belong to the thread that opened them), and a
file has one writer.  :class:`ArchiveWriter` opens the archive in a thread of its own and runs
every call handed to it there, one at a time, in the order they come: pulls in other threads call
it as they would call the Archive, and block until their call is done.  A call's exception is
raised in the thread that made it.  So the rows of two pulls that commit at once go in one after
the other, each in its own transaction, and none is lost or written twice.

:class:`PullArchive` names the Archive methods :func:`host.pull.pull` uses; :class:`UnitArchive`
is one unit's view of the writer with those methods, and refuses (:class:`~host.errors.WrongUnit`),
before anything is written, a serial other than the one the inventory expects, or one that another
pull of the same poll holds at that moment.

This module decides nothing about what to pull; it only serialises archive calls.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from protocol.records import DecodedRow

from .archive import Archive, UnitRow
from .errors import ArchiveError, WrongUnit

_P = ParamSpec("_P")
_R = TypeVar("_R")


class PullArchive(Protocol):
    """The archive as :func:`host.pull.pull` uses it (and :mod:`host.log_identity` through it)."""

    def unit(self, serial: str, epoch: int | None = None) -> UnitRow: ...

    def upsert_unit(
        self, serial: str, model: str, firmware: str, schema_fingerprint: int, *, first_seq: int,
        next_seq: int, capacity_records: int, device_time: int, operating_s: int, starts: int,
        trips: int, energy_wh: int, log_id: bytes | None = None,
    ) -> None: ...

    def start_epoch(
        self, serial: str, model: str, firmware: str, schema_fingerprint: int, *, log_id: bytes,
        origin_seq: int, continues: bool, first_seq: int, next_seq: int, capacity_records: int,
        device_time: int, operating_s: int, starts: int, trips: int, energy_wh: int,
    ) -> int: ...

    def newest_counters(self, serial: str) -> tuple[int, int, int, int]: ...

    def max_seq(self, serial: str) -> int | None: ...

    def stored_crc(self, serial: str, seq: int) -> int | None: ...

    def store_decoded(self, serial: str, rows: Iterable[DecodedRow]) -> int: ...

    def stored_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]: ...

    def evicted_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]: ...

    def missing_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]: ...

    def record_evicted(self, serial: str, first: int, count: int) -> None: ...

    def evicted_count(self, serial: str) -> int: ...

    def record_pull(
        self, serial: str, started: float, finished: float, added: int, evicted: int, retries: int,
        bytes_: int,
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class _Call:
    method: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    done: Future[Any]


class ArchiveWriter:
    """The archive at *path*, opened for writing in a thread of its own; :meth:`call` runs an
    Archive method there.  Close it (or use it as a context manager) to close the archive."""

    def __init__(self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.time) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        opened: Future[None] = Future()
        self._thread = threading.Thread(
            target=self._serve, args=(path, clock, opened), name="archive-writer", daemon=True
        )
        self._thread.start()
        opened.result()  # the archive's own error (corrupt, foreign, newer) is raised here

    def _serve(self, path: str | os.PathLike[str], clock: Callable[[], float], opened: Future[None]) -> None:
        try:
            archive = Archive.open(path, clock=clock)
        except BaseException as exc:  # noqa: BLE001 - handed to the thread that waits on it
            opened.set_exception(exc)
            return
        opened.set_result(None)
        with archive:
            while (call := self._calls.get()) is not None:
                try:
                    call.done.set_result(call.method(archive, *call.args, **call.kwargs))
                except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
                    call.done.set_exception(exc)

    def call(self, method: Callable[Concatenate[Archive, _P], _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        """``method(archive, *args, **kwargs)`` run in the writer's thread; its result or its exception."""
        if not self._thread.is_alive():
            raise ArchiveError("the archive was closed while a pull still used it")
        done: Future[_R] = Future()
        self._calls.put(_Call(method, args, kwargs, done))
        return done.result()

    def close(self) -> None:
        """Finish the calls handed over, then close the archive.  Closing twice is harmless."""
        if self._thread.is_alive():
            self._calls.put(None)
            self._thread.join()

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SerialClaims:
    """Which URL each serial is being pulled through right now, so that one unit reached through
    two URLs of one poll is not pulled twice at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, str] = {}

    def claim(self, serial: str, url: str) -> None:
        with self._lock:
            holder = self._holders.setdefault(serial, url)
        if holder != url:
            raise WrongUnit(
                f"unit {serial} answers at {url} and at {holder}, which this poll is pulling it through "
                "right now: the inventory lists one unit twice"
            )

    def release(self, serial: str, url: str) -> None:
        with self._lock:
            if self._holders.get(serial) == url:
                del self._holders[serial]


class UnitArchive:
    """One pull's view of the writer (a :class:`PullArchive`): for the unit at *url*, which must be
    *expected* (when not None) and not held by another pull of the poll."""

    def __init__(self, writer: ArchiveWriter, url: str, expected: str | None, claims: SerialClaims) -> None:
        self._writer = writer
        self._url = url
        self._expected = expected
        self._claims = claims
        self.serial: str | None = None
        """The serial pulled (set by the pull's first archive call, when it is the one expected)."""
        self.answered: str | None = None
        """The serial that answered last, expected or not."""
        self.added = 0
        """Records this view stored (new to the archive), whether or not its pull ended well."""

    def _check(self, serial: str) -> None:
        if serial == self.serial:
            return
        self.answered = serial
        if self._expected is not None and serial != self._expected:
            raise WrongUnit(f"unit {serial} answers there, not {self._expected} as the inventory says")
        if self.serial is not None:
            raise WrongUnit(f"unit {self.serial} answered there, then unit {serial}")
        self._claims.claim(serial, self._url)
        self.serial = serial

    def release(self) -> None:
        """The pull is over: another URL may reach this serial now."""
        if self.serial is not None:
            self._claims.release(self.serial, self._url)

    def unit(self, serial: str, epoch: int | None = None) -> UnitRow:
        self._check(serial)
        return self._writer.call(Archive.unit, serial, epoch)

    def upsert_unit(
        self, serial: str, model: str, firmware: str, schema_fingerprint: int, *, first_seq: int,
        next_seq: int, capacity_records: int, device_time: int, operating_s: int, starts: int,
        trips: int, energy_wh: int, log_id: bytes | None = None,
    ) -> None:
        self._check(serial)
        self._writer.call(
            Archive.upsert_unit, serial, model, firmware, schema_fingerprint, first_seq=first_seq,
            next_seq=next_seq, capacity_records=capacity_records, device_time=device_time,
            operating_s=operating_s, starts=starts, trips=trips, energy_wh=energy_wh, log_id=log_id,
        )

    def start_epoch(
        self, serial: str, model: str, firmware: str, schema_fingerprint: int, *, log_id: bytes,
        origin_seq: int, continues: bool, first_seq: int, next_seq: int, capacity_records: int,
        device_time: int, operating_s: int, starts: int, trips: int, energy_wh: int,
    ) -> int:
        self._check(serial)
        return self._writer.call(
            Archive.start_epoch, serial, model, firmware, schema_fingerprint, log_id=log_id,
            origin_seq=origin_seq, continues=continues, first_seq=first_seq, next_seq=next_seq,
            capacity_records=capacity_records, device_time=device_time, operating_s=operating_s,
            starts=starts, trips=trips, energy_wh=energy_wh,
        )

    def newest_counters(self, serial: str) -> tuple[int, int, int, int]:
        self._check(serial)
        return self._writer.call(Archive.newest_counters, serial)

    def max_seq(self, serial: str) -> int | None:
        self._check(serial)
        return self._writer.call(Archive.max_seq, serial)

    def stored_crc(self, serial: str, seq: int) -> int | None:
        self._check(serial)
        return self._writer.call(Archive.stored_crc, serial, seq)

    def store_decoded(self, serial: str, rows: Iterable[DecodedRow]) -> int:
        self._check(serial)
        added = self._writer.call(Archive.store_decoded, serial, list(rows))
        self.added += added
        return added

    def stored_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]:
        self._check(serial)
        return self._writer.call(Archive.stored_ranges, serial, start, stop)

    def evicted_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]:
        self._check(serial)
        return self._writer.call(Archive.evicted_ranges, serial, start, stop)

    def missing_ranges(self, serial: str, start: int, stop: int) -> list[tuple[int, int]]:
        self._check(serial)
        return self._writer.call(Archive.missing_ranges, serial, start, stop)

    def record_evicted(self, serial: str, first: int, count: int) -> None:
        self._check(serial)
        self._writer.call(Archive.record_evicted, serial, first, count)

    def evicted_count(self, serial: str) -> int:
        self._check(serial)
        return self._writer.call(Archive.evicted_count, serial)

    def record_pull(
        self, serial: str, started: float, finished: float, added: int, evicted: int, retries: int,
        bytes_: int,
    ) -> None:
        self._check(serial)
        self._writer.call(Archive.record_pull, serial, started, finished, added, evicted, retries, bytes_)


_ARCHIVE_SERVES_PULLS: type[PullArchive] = Archive
_VIEW_SERVES_PULLS: type[PullArchive] = UnitArchive
"""mypy checks here that the Archive and the view have every method of :class:`PullArchive`."""
