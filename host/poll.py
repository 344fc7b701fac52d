"""Poll a fleet: pull every unit of an inventory into one archive, ``jobs`` links at a time.

:func:`poll` runs :func:`host.pull.pull` for each unit (the one implementation of a pull: resume,
verification, eviction, noise handling), in a pool of at most ``jobs`` threads, so at most ``jobs``
links are open at once; every archive call of every pull goes through one
:class:`~host.archive_writer.ArchiveWriter`.  A unit that fails (no answer, garbage, another unit
than the inventory expects, a pull that gives up) fails alone, with its reason: the poll goes on,
and its records committed so far stay.  A call that reached no unit is made again, up to
``redials`` times; each unit's last call of a poll is recorded in the archive's ``dials`` table
(:meth:`~host.archive.Archive.record_dial`), which :func:`due` reads to dial only the units not
reached within ``--due``, and failed ones again only after a back-off.

:class:`Stop` ends a poll early (the CLI sets it on SIGINT/SIGTERM/SIGHUP): units not started are
not dialled, and each pull in flight stops at its next read, commits what it verified and ends
(``Interrupted``), as ``turbolog pull`` does on Ctrl-C.  :func:`claim_archive` refuses a second
poll of the same archive while one runs.

This module opens links only through the ``connect`` it is given and never prints: the CLI shows
progress from the :class:`PollStatus` it is handed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import cast

from protocol.inventory import InventoryEntry, same_unit_key

from .archive import REACHED, Archive, DialRow
from .archive_writer import ArchiveWriter, SerialClaims, UnitArchive
from .dial_policy import REDIAL_S, REDIALS, RETRY_AFTER_S
from .errors import ArchiveError, HostError, Interrupted, UsageError
from .pull import PullProgress, pull
from .transport import Transport

NOT_DIALLED = "not dialled"
"""The outcome of a unit the poll was stopped before it dialled."""
INTERRUPTED = "interrupted"
"""The outcome of a unit whose pull the poll's stop ended (what it verified is committed)."""


@dataclass(frozen=True)
class Shard:
    """``--shard K/N``: the K-th of N stable shares of an inventory, by a hash of each URL."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"K/N"`` with 1 <= K <= N; UsageError otherwise."""
        index, slash, count = text.partition("/")
        if not slash or not index.isdigit() or not count.isdigit():
            raise UsageError(f"--shard takes K/N (the K-th of N shares, e.g. 1/4), not {text!r}")
        shard = cls(int(index), int(count))
        if not 1 <= shard.index <= shard.count:
            raise UsageError(f"--shard {text}: K must be 1..N")
        return shard

    def holds(self, url: str) -> bool:
        """Whether *url* is in this share: the same answer on every host, for every N."""
        digest = hashlib.sha256(same_unit_key(url).encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1

    @property
    def name(self) -> str:
        """A file-name-safe id of the share (``shard-2-of-4``)."""
        return f"shard-{self.index}-of-{self.count}"


def due(
    entries: Sequence[InventoryEntry], dials: dict[str, DialRow], now: float, within_s: float
) -> list[InventoryEntry]:
    """The entries to dial: not reached in the last *within_s* seconds, and, if the last try
    failed, at least :data:`RETRY_AFTER_S` x 2^(failures-1) (at most *within_s*) after it."""
    chosen = []
    for entry in entries:
        row = dials.get(entry.url)
        if row is None:
            chosen.append(entry)
            continue
        if row.last_success is not None and now - row.last_success < within_s:
            continue
        if row.failures and now - row.last_attempt < min(RETRY_AFTER_S * 2 ** (row.failures - 1), within_s):
            continue
        chosen.append(entry)
    return chosen


@dataclass(frozen=True)
class UnitOutcome:
    """What the poll did at one inventory entry."""

    url: str
    serial: str | None
    """The serial that answered (None if none did)."""
    expected_serial: str | None
    group: str | None
    site: str | None
    added: int
    evicted: int
    received: int
    """Records the pull accepted from the line, any fetched twice included (as far as its progress
    reports told, for a pull that failed)."""
    reconnects: int
    """Times the pull's link was lost and dialled again (a pull that failed: 0)."""
    error: str | None
    """None when the unit was pulled to the end; else the one line saying why not."""
    outcome: str
    """``reached``, ``not dialled`` (the poll stopped first), ``interrupted`` (stopped in the
    middle), or the error's class."""
    seconds: float
    """Of the last call."""
    calls: int = 1
    """Calls made to the unit in this poll (more than one when it did not answer at first)."""

    @property
    def reached(self) -> bool:
        return self.outcome == REACHED

    def to_json(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class PollStatus:
    """A poll in progress, for a status display: updated by the poll's threads, read by anyone."""

    units: int
    started: float
    done: int = 0
    failed: int = 0
    records: int = 0
    """Records received and verified by the pulls so far (finished and in flight)."""
    in_flight: dict[str, int] = field(default_factory=dict)
    """URL -> records received so far, for each pull in progress."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def progress(self, url: str, received: int) -> None:
        with self.lock:
            self.records += received - self.in_flight.get(url, 0)
            self.in_flight[url] = received

    def finished(self, url: str, ok: bool) -> None:
        with self.lock:
            self.in_flight.pop(url, None)
            self.done += 1
            self.failed += not ok

    def eta_s(self, now: float) -> float | None:
        """Seconds left, from the pace of units finished so far; None before one has finished."""
        with self.lock:
            done, left = self.done, self.units - self.done
        return (now - self.started) / done * left if done else None


class Stop:
    """Asks a poll to end early: set once, by a signal handler or a test; *signum* says which."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signum = 0

    def set(self, signum: int) -> None:
        self.signum = signum
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Interrupted` (which a pull handles as Ctrl-C) once the stop is set."""
        if self._event.is_set():
            raise Interrupted(self.signum)

    def sleep(self, seconds: float) -> None:
        """Sleep, but raise Interrupted as soon as the stop is set (a pull's back-off)."""
        if self._event.wait(seconds):
            raise Interrupted(self.signum)


class _Stoppable:
    """A transport whose every read and write first checks the poll's :class:`Stop`."""

    def __init__(self, inner: Transport, stop: Stop) -> None:
        self._inner = inner
        self._stop = stop

    def write(self, data: bytes) -> None:
        self._stop.check()
        self._inner.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        self._stop.check()
        return self._inner.read(max_bytes, timeout)

    def close(self) -> None:
        self._inner.close()


@contextlib.contextmanager
def claim_archive(path: Path) -> Iterator[None]:
    """Hold the archive at *path* for one poll: a second poll of it, from this host, is refused
    with :class:`ArchiveError` while this one runs (a lock on ``PATH.poll-lock``, left in place)."""
    lock_path = Path(f"{path}.poll-lock")
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ArchiveError(f"cannot lock archive {path} for a poll ({lock_path}): {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            raise ArchiveError(
                f"archive {path} is being polled by another turbolog poll (pid {holder}): wait for it "
                "to finish, or poll into another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode("ascii"), 0)
        yield
    finally:
        os.close(fd)


def poll(
    entries: Sequence[InventoryEntry],
    writer: ArchiveWriter,
    connect: Callable[[InventoryEntry], Transport],
    *,
    jobs: int,
    stop: Stop | None = None,
    status: PollStatus | None = None,
    timeout: float = 2.0,
    redials: int = REDIALS,
    wall: Callable[[], float] = time.time,
    clock: Callable[[], float] = time.monotonic,
) -> list[UnitOutcome]:
    """Pull every unit of *entries* through ``connect(entry)``, at most *jobs* at once; the
    outcome of each, in inventory order.  A call that no unit answered (busy, refused, silent) is
    made again up to *redials* times, :data:`REDIAL_S` apart.  When *stop* is set, units not
    dialled yet are not (outcome ``not dialled``) and pulls in flight end (``interrupted``); each
    unit's committed records are kept either way, and its last call is recorded in ``dials``."""
    if jobs < 1:
        raise UsageError(f"--jobs must be 1 or more, not {jobs}")
    stop = stop or Stop()
    claims = SerialClaims()

    def one(entry: InventoryEntry) -> UnitOutcome:
        calls = 0
        while True:
            calls += 1
            started = wall()
            outcome = _pull_one(entry, writer, connect, claims, stop, status, timeout, clock)
            if calls > redials or not _unanswered(outcome) or stop.is_set():
                break
            try:
                stop.sleep(REDIAL_S)
            except Interrupted:
                break
        if outcome.outcome not in (NOT_DIALLED, INTERRUPTED):  # a unit stopped short stays due, unblamed
            with contextlib.suppress(HostError):  # the pull's records are in; a lost note only dials it again
                writer.call(
                    Archive.record_dial, entry.url, serial=outcome.serial, attempted=started,
                    outcome=outcome.outcome, added=outcome.added, evicted=outcome.evicted,
                    error=outcome.error,
                )
        if status is not None:
            status.finished(entry.url, outcome.reached)
        return replace(outcome, calls=calls if outcome.outcome != NOT_DIALLED else 0)

    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="poll") as pool:
        return list(pool.map(one, entries))


def _pull_one(
    entry: InventoryEntry,
    writer: ArchiveWriter,
    connect: Callable[[InventoryEntry], Transport],
    claims: SerialClaims,
    stop: Stop,
    status: PollStatus | None,
    timeout: float,
    clock: Callable[[], float],
) -> UnitOutcome:
    begun = clock()
    view = UnitArchive(writer, entry.url, entry.serial, claims)
    evicted = received = reconnects = 0
    error: str | None = None
    outcome = REACHED
    if stop.is_set():
        return _outcome(entry, None, (0, 0, 0, 0), "the poll was stopped before this unit was dialled",
                        NOT_DIALLED, 0.0)

    def progress(p: PullProgress) -> None:
        nonlocal received
        received = p.done
        if status is not None:
            status.progress(entry.url, p.done)

    try:
        result = pull(
            lambda: _Stoppable(connect(entry), stop),
            cast(Archive, view),  # pull takes an Archive; the view has every method it calls
            progress=progress,
            timeout=timeout,
            sleep=stop.sleep,
            clock=clock,
        )
        evicted, received, reconnects = result.evicted, result.received, result.reconnects
    except Interrupted:
        error, outcome = "stopped before the unit's log was complete", INTERRUPTED
    except HostError as exc:
        error, outcome = str(exc), type(exc).__name__
    except Exception as exc:  # noqa: BLE001 - a bug in one pull must not end the others
        error, outcome = f"unexpected error: {type(exc).__name__}: {exc}", "bug"
    finally:
        view.release()
    added = view.added  # what a failed or stopped pull committed too
    counts = (added, evicted, received, reconnects)
    return _outcome(entry, view.answered, counts, error, outcome, clock() - begun)


def _unanswered(outcome: UnitOutcome) -> bool:
    """Whether the call reached no unit at all (busy, refused, silent): worth dialling again."""
    return outcome.serial is None and outcome.outcome in ("LinkError", "LinkTimeout")


def _outcome(
    entry: InventoryEntry, serial: str | None, counts: tuple[int, int, int, int], error: str | None,
    outcome: str, seconds: float,
) -> UnitOutcome:
    added, evicted, received, reconnects = counts
    return UnitOutcome(
        url=entry.url, serial=serial, expected_serial=entry.serial, group=entry.group, site=entry.site,
        added=added, evicted=evicted, received=received, reconnects=reconnects, error=error,
        outcome=outcome, seconds=round(seconds, 3),
    )
