"""Pull a controller's log into the archive: the driver that blocks, reads clocks and writes.

:func:`pull` implements ``docs/protocol.md`` section 6::

    connect ─► ABORT + IDENTIFY ─► same log? ─► plan from the archive ─► stream windows ─► done
       ▲                                  idle timeout: retry ◄───┤ (ABORT first if it heard
       │                                                          │  garbage, or twice in a row)
       └──── link lost: back off, reconnect, re-plan ◄────────────┘

What to request, what to accept, what to commit and when to give up is
decided by :class:`~host.pull_core.PullCore` (no I/O), and how bad the line is
by :class:`~host.line_health.LineHealth`; this module carries out their
actions:

- *Same log?*: before anything is written, the log the unit reports must be
  the one archived for its serial (:func:`host.log_identity.log_mismatch`:
  log id, lifetime counters, end of log, one overlapping record's CRC-32C);
  otherwise DeviceError, or with ``new_log`` the serial's next epoch.  On a
  reconnect the log id must not have changed.
- *Plan*: seqs below the unit's ``first_seq`` never archived are recorded as
  evicted; the core asks for the archive's gaps a span at a time (memory stays
  bounded for any log).
- *Stream*: send what the core asks, read the line, hand it the answers; after
  the idle timeout (:meth:`LineHealth.idle_timeout`, fitted to the link's
  round trip as the session's exchanges measured it, :class:`~host.rtt.RoundTrip`,
  kept across reconnects) tell it the line went quiet.
- *Commit*: store the rows the core hands out (verified by a RANGE_END's
  digest), when the line goes quiet and on the way out (done, link lost,
  failed, even KeyboardInterrupt), when the rows of windows in flight and
  those still waiting for a digest are committed on the strength of their
  CRCs, so a re-run fetches nothing twice.  They go as decode_rows gave them
  (:meth:`~host.archive.Archive.store_decoded`), so no record is checked or
  decoded twice.

The archive is used through these :class:`~host.archive.Archive` methods alone (``unit``,
``missing_ranges``, ``stored_ranges``, ``evicted_ranges``, ``evicted_count``,
``record_evicted``, ``upsert_unit``, ``start_epoch``, ``store_decoded``,
``record_pull``, and what :mod:`host.log_identity` reads: ``max_seq``,
``newest_counters``, ``stored_crc``), so a caller may hand in an object that
serialises those calls.  It never imports pyserial (links come from
``connect``), and never reads the clock except through the ``clock``/``sleep``/``wall``
callables it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from protocol.framing import MAX_STUFFED
from protocol.messages import Abort as AbortRequest
from protocol.messages import IdentifyResponse
from protocol.records import DecodedRow, record_crc

from .archive import Archive
from .driver import DEFAULT_TIMEOUT, Client
from .errors import DeviceError, Interrupted, LinkError, PullFailed, UnknownUnit, UsageError
from .line_health import IDLE_FLOOR_S, IDLE_FRAMES, MAX_STALLS, LineHealth
from .log_identity import ReportedLog, log_mismatch, next_epoch, refusal
from .pull_core import (
    COMMIT_EVERY,
    DEFAULT_DEPTH,
    DEFAULT_WINDOW,
    MAX_ATTEMPTS,
    MAX_DEPTH,
    Abort,
    Done,
    Evict,
    Forget,
    LineCounts,
    PullCore,
    ReadGaps,
    Send,
    Store,
)
from .rtt import RoundTrip
from .session import ClientSession
from .transport import Transport

__all__ = [
    "BACKOFF_S", "COMMIT_EVERY", "DEFAULT_DEPTH", "DEFAULT_WINDOW", "GARBLED_IDLE", "MAX_ATTEMPTS",
    "MAX_DEPTH", "MAX_RECONNECTS", "MAX_STALLS", "PullProgress", "PullResult", "Resume",
    "idle_timeout", "pull",
]

NOISY_TRIES = 40
"""Timeouts' worth of time an exchange gets on a connection that has delivered damaged frames beside
good ones (a noisy line, not a dead one)."""
MAX_RECONNECTS = 5
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
PROGRESS_INTERVAL_S = 0.25
GARBLED_IDLE = 8
"""Bytes arriving keep a request alive, but only for this many idle timeouts without one answer."""

def idle_timeout(baud: int, round_trip: float = 0.0) -> float:
    """The idle timeout of a line that has damaged nothing (full frames streaming): *round_trip*
    (the link's RTO), at least IDLE_FLOOR_S, plus IDLE_FRAMES full frames at *baud*; the longest
    :meth:`LineHealth.idle_timeout` gives for that round trip."""
    return max(IDLE_FLOOR_S, round_trip) + IDLE_FRAMES * MAX_STUFFED * 10 / max(baud, 1)


@dataclass(frozen=True, slots=True)
class PullProgress:
    """Where a pull is, for a progress bar."""

    done: int
    """Records received, verified and accepted so far."""
    total: int
    """Records this pull expects to fetch (grows only if a re-plan finds more)."""
    bytes: int
    bytes_per_s: float
    eta_s: float | None
    retries: int
    """Retry windows plus idle timeouts so far."""
    reconnecting: int = 0
    """The reconnect under way after the link was lost: this pull's 1st, 2nd, ... of at most
    ``reconnects_max``; 0 while records stream.  While it is not 0 there is no ETA."""
    reconnects_max: int = 0


@dataclass(frozen=True, slots=True)
class Resume:
    """What the archive already held when a pull found it had a part of the device's log."""

    serial: str
    held: int
    """Records of the device's log (``first_seq .. next_seq``) already archived."""
    records: int
    """Records the device's log holds."""
    from_seq: int
    """The first seq of the device's log not archived: where fetching starts."""


@dataclass(frozen=True, slots=True)
class PullResult:
    """What one pull did.  The seqs it accounts for are ``planned_from .. last_seq``, and
    each of them is exactly one of added, evicted or already held::

        added + evicted + already_held == last_seq - planned_from + 1

    (with ``last_seq`` None, as for an empty log: 0)."""

    serial: str
    added: int
    """Records this pull stored (new to the archive)."""
    first_seq: int
    """The oldest seq the device's log held when the pull ended (a log overwritten while it
    is pulled moves it up)."""
    last_seq: int | None
    """The newest seq the pull asked for: the device's ``next_seq - 1`` when the pull last
    identified it (records logged after that are for the next pull); None if there was none."""
    evicted: int
    """Seqs this pull newly recorded as evicted (gone from the device before they were read)."""
    planned_from: int
    """The first seq the pull accounts for: where the archive's knowledge of this log ended, or
    the device's first seq if lower (0 for a log new to the archive)."""
    already_held: int
    """Seqs of ``planned_from .. last_seq`` the archive held before this pull (stored, or
    recorded as evicted by an earlier pull)."""
    epoch: int
    """The archive epoch of the serial the pull added to (1 unless the unit's log changed)."""
    retry_windows: int
    """Windows that asked again for records an earlier one did not bring (lost, damaged, or not
    vouched for by a RANGE_END)."""
    timeouts: int
    """Idle timeouts: times the line went quiet with requests outstanding."""
    retries: int
    """``retry_windows + timeouts + reconnects`` (kept for scripts that read it)."""
    bytes: int
    elapsed_s: float
    received: int
    """Records accepted from the line, including any fetched twice (a record sent again only so
    that a RANGE_END vouches for it counts once)."""
    rejected: int
    """Records dropped on arrival: failed their CRC-32C, or not asked for."""
    reconnects: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)



class _Puller:
    """One :func:`pull`'s driver across sessions and reconnects: carries out the core's actions."""

    def __init__(
        self,
        archive: Archive,
        health: LineHealth,
        *,
        window: int,
        depth: int,
        progress: Callable[[PullProgress], None] | None,
        max_attempts: int,
        commit_every: int,
        clock: Callable[[], float],
        new_log: bool = False,
        on_resume: Callable[[Resume], None] | None = None,
    ) -> None:
        self.archive = archive
        self.health = health
        self.core = PullCore(health, depth=depth, max_attempts=max_attempts, commit_every=commit_every)
        self.on_resume = on_resume
        self.new_log = new_log
        self.window = window
        self.progress = progress
        self.clock = clock
        self.started = clock()
        self.serial = ""
        self.info: IdentifyResponse | None = None
        self.planned_from = 0
        self.last_planned = 0
        """The device's next_seq at the last IDENTIFY: the pull asks for seqs below it."""
        self.already_held = 0
        self.evicted_before = 0
        self.added = 0
        self.unstored: list[DecodedRow] = []
        """Rows handed out to store and not yet committed."""
        self.bytes_done = 0
        self.total = 0
        self.last_progress = self.started
        self.last_report: PullProgress | None = None
        self.last_timeout: tuple[ClientSession, int] | None = None
        """The session of the last idle timeout and its ``unexpected`` count then, until judged."""

    # --- sessions --------------------------------------------------------------

    def session(self, client: Client) -> None:
        """ABORT and IDENTIFY, plan, stream; after each idle timeout stream on, until done.

        After a timeout that heard bytes but no answer, or a second one in a row without a
        record, ABORT comes first (the core says when): it ends whatever the device still sends,
        and on a silent line it asks whether the device is there at all (no answer: LinkTimeout,
        and the pull reconnects).  On a noisy line, where the device has shown it is there and an
        exchange would mostly wait out lost answers, ABORT goes ahead of the next windows
        unawaited."""
        try:
            info = client.start()
            self.health.observe(client.session)
            if self.info is None:
                self.check_log(client, info)
            self.adopt(info)
            self.core.session_started(_counts(client.session))
            while not self.stream(client, info.baud):
                pass
        finally:
            self.bytes_done += client.session.bytes_received

    def tell_resume(self, info: IdentifyResponse) -> None:
        """Tell ``on_resume`` where this pull takes up a log the archive holds a part of (not when
        it holds none of it, nor all of it)."""
        assert self.on_resume is not None
        start, stop = info.first_seq, info.next_seq
        missing = self.archive.missing_ranges(info.serial, start, stop)
        held = (stop - start) - sum(b - a for a, b in missing)
        if held > 0 and missing:
            self.on_resume(Resume(info.serial, held, stop - start, missing[0][0]))

    def check_log(self, client: Client, info: IdentifyResponse) -> None:
        """Refuse, before anything is written, a log that is not the one archived for the serial
        (DeviceError); with ``new_log``, archive it as the serial's next epoch instead."""
        archive, serial = self.archive, info.serial
        try:
            row = archive.unit(serial)
        except UnknownUnit:
            return
        log = ReportedLog(serial, info.log_id, info.first_seq, info.next_seq, info.operating_s, info.starts,
                          info.energy_wh)

        def read_crc(seq: int) -> int | None:
            raw = client.read_record(seq)
            return None if raw is None else record_crc(raw)

        problem = log_mismatch(archive, row, log, read_crc)
        if problem is None:
            return
        if not self.new_log:
            raise DeviceError(refusal(serial, row, problem))
        epoch = next_epoch(archive, row, log)
        archive.start_epoch(
            serial, info.model, info.firmware, info.schema_fingerprint, log_id=info.log_id,
            origin_seq=epoch.origin_seq, continues=epoch.continues, first_seq=epoch.origin_seq,
            next_seq=info.next_seq, capacity_records=info.capacity_records, device_time=info.device_time,
            operating_s=info.operating_s, starts=info.starts, trips=info.trips, energy_wh=info.energy_wh,
        )

    def adopt(self, info: IdentifyResponse) -> None:
        """Take in an IDENTIFY: check it is the same unit and log, update the archive, mark
        evictions, plan."""
        if self.info is not None and info.serial != self.serial:
            raise DeviceError(f"the link now leads to unit {info.serial!r}, not {self.serial!r}")
        if self.info is not None and info.log_id != self.info.log_id:
            raise DeviceError(
                f"unit {info.serial}: its log changed during the pull (id {self.info.log_id.hex()} -> "
                f"{info.log_id.hex()}): the log was cleared or the controller replaced; what was pulled "
                "is kept, run the pull again"
            )
        if info.next_seq < info.first_seq:
            raise DeviceError(
                f"unit {info.serial} reports its log from {info.first_seq} to before {info.next_seq}: "
                "a log cannot end before it starts"
            )
        archive, serial = self.archive, info.serial
        try:
            known_first: int | None = archive.unit(serial).first_seq
        except UnknownUnit:
            known_first = None
            self.upsert(info)  # evictions can only be noted for a unit the archive knows
        low = 0 if known_first is None else min(known_first, info.first_seq)
        if self.info is None:
            self.serial = self.core.serial = serial
            self.evicted_before = archive.evicted_count(serial)
            self.planned_from = low
            self.already_held = sum(
                stop - start
                for start, stop in archive.stored_ranges(serial, low, info.next_seq)
                + archive.evicted_ranges(serial, low, info.next_seq)
            )
        first_pass = self.info is None
        self.info = info
        if first_pass and self.on_resume is not None:
            self.tell_resume(info)
        self.last_planned = max(self.last_planned, info.next_seq)
        for start, stop in archive.missing_ranges(serial, low, info.first_seq):
            archive.record_evicted(serial, start, stop - start)
        if known_first is not None:
            self.upsert(info)  # after the evictions: a crash in between cannot hide them
        self.core.begin(info.first_seq, info.next_seq, min(self.window, info.max_window))
        wanted = sum(b - a for a, b in archive.missing_ranges(serial, info.first_seq, info.next_seq))
        self.total = self.core.accepted + wanted

    def upsert(self, info: IdentifyResponse) -> None:
        self.archive.upsert_unit(
            info.serial, info.model, info.firmware, info.schema_fingerprint,
            first_seq=info.first_seq, next_seq=info.next_seq, capacity_records=info.capacity_records,
            device_time=info.device_time, operating_s=info.operating_s, starts=info.starts,
            trips=info.trips, energy_wh=info.energy_wh, log_id=info.log_id,
        )

    # --- streaming -------------------------------------------------------------

    def stream(self, client: Client, baud: int) -> bool:
        """Carry out the core's plan; True when it is done, False after an idle timeout.

        Quiet means no byte for the idle timeout, or bytes that never make an answer for
        GARBLED_IDLE times that (a device spewing noise); the core then ends the windows in
        flight as if their RANGE_END was lost."""
        core, clock, session, health = self.core, self.clock, client.session, self.health
        heard_bytes = heard_answer = clock()
        while True:
            while (action := core.poll()) is not None:
                if isinstance(action, Done):
                    self.report(client, force=True)
                    return True
                self.carry_out(client, action)
            idle = health.idle_timeout(baud, core.largest_frame())
            left = min(heard_bytes + idle, heard_answer + idle * GARBLED_IDLE) - clock()
            if left <= 0:
                garbled = clock() - heard_bytes < idle
                self.judge_timeout(session, answered=False)
                for action in core.timed_out(garbled, _counts(session)):
                    self.carry_out(client, action)
                self.last_timeout = (session, session.unexpected)
                return False
            before = session.bytes_received
            responses = client.receive(min(left, health.quiet(client.answer_timeout)))
            health.observe(session)
            if session.bytes_received == before:
                self.carry_out(client, core.quiet())
                continue
            heard_bytes = clock()
            if not responses:
                continue
            heard_answer = heard_bytes
            self.judge_timeout(session, answered=True)
            for action in core.received(responses):
                self.carry_out(client, action)
            self.report(client)
            if core.frames_too_long(_counts(session)):
                for action in [*core.end_all(), Abort()]:
                    self.carry_out(client, action)
                heard_bytes = heard_answer = clock()

    def judge_timeout(self, session: ClientSession, *, answered: bool) -> None:
        """Once the requests sent after an idle timeout are answered (or time out too): the timeout
        was false if answers to the requests it gave up on came meanwhile (frames to no pending
        request), right otherwise."""
        if self.last_timeout is None:
            return
        timed_out_session, unexpected = self.last_timeout
        self.last_timeout = None
        if timed_out_session is session:
            self.health.timeout_proved(false=answered and session.unexpected > unexpected)

    def carry_out(self, client: Client, action: object) -> None:
        """Do what the core asked."""
        if action is None:
            return
        if isinstance(action, Send):
            self.core.sent(client.send(action.request))
        elif isinstance(action, Store):
            self.store(action.rows)
        elif isinstance(action, Forget):
            client.session.forget(action.request_seq)
        elif isinstance(action, ReadGaps):
            self.core.gaps(action.start, action.stop,
                           self.archive.missing_ranges(self.serial, action.start, action.stop))
        elif isinstance(action, Evict):
            self.archive.record_evicted(self.serial, action.start, action.count)
        elif isinstance(action, Abort):
            if self.health.noisy:
                client.send(AbortRequest())  # streamed ahead of the next windows: the device is alive
            else:
                client.abort()
        else:
            raise AssertionError(f"unknown action {action!r}")

    # --- archive and progress ----------------------------------------------------

    def store(self, rows: list[DecodedRow]) -> None:
        """Commit rows, commit_every at a time.  Rows the archive refused are dropped (a failure is
        not retried on the way out); rows an interrupt kept from their commit stay, for
        :meth:`leave` to commit."""
        self.unstored += rows
        step = self.core.commit_every
        try:
            while self.unstored:
                batch = self.unstored[:step]
                self.added += self.archive.store_decoded(self.serial, batch)
                del self.unstored[:len(batch)]
        except Exception:
            self.unstored = []
            raise

    def leave(self) -> None:
        """On the way out (done, link lost, interrupted, failed): commit every row accepted."""
        store = self.core.leave()
        self.store(store.rows if store is not None else [])

    def report(self, client: Client, *, force: bool = False) -> None:
        if self.progress is None:
            return
        now = self.clock()
        if not force and now - self.last_progress < PROGRESS_INTERVAL_S:
            return
        self.last_progress = now
        elapsed = max(now - self.started, 1e-9)
        done, total = self.core.accepted, max(self.total, self.core.accepted)
        received_bytes = self.bytes_done + client.session.bytes_received
        rate = done / elapsed
        self.last_report = PullProgress(
            done=done,
            total=total,
            bytes=received_bytes,
            bytes_per_s=received_bytes / elapsed,
            eta_s=(total - done) / rate if rate > 0 else None,
            retries=self.core.retry_windows + self.core.timeouts,
        )
        self.progress(self.last_report)

    def tell_reconnecting(self, attempt: int, limit: int) -> None:
        """Progress while the link is down: the counts so far, no ETA, which reconnect is tried."""
        if self.progress is None:
            return
        done = self.core.accepted
        retries = self.core.retry_windows + self.core.timeouts
        last = self.last_report or PullProgress(done, max(self.total, done), self.bytes_done, 0.0, None, 0)
        self.progress(replace(last, eta_s=None, retries=retries, reconnecting=attempt, reconnects_max=limit))

    def result(self, reconnects: int) -> PullResult:
        assert self.info is not None
        core = self.core
        return PullResult(
            serial=self.serial,
            added=self.added,
            first_seq=max(core.first_available, self.info.first_seq),
            last_seq=self.last_planned - 1 if self.last_planned > self.planned_from else None,
            evicted=self.archive.evicted_count(self.serial) - self.evicted_before,
            planned_from=self.planned_from,
            already_held=self.already_held,
            epoch=self.archive.unit(self.serial).epoch,
            retry_windows=core.retry_windows,
            timeouts=core.timeouts,
            retries=core.retry_windows + core.timeouts + reconnects,
            bytes=self.bytes_done,
            elapsed_s=self.clock() - self.started,
            received=core.accepted,
            rejected=core.rejected,
            reconnects=reconnects,
        )


def _counts(session: ClientSession) -> LineCounts:
    return LineCounts(session.frames_received, session.damaged_frames)


def pull(
    connect: Callable[[], Transport],
    archive: Archive,
    *,
    window: int = DEFAULT_WINDOW,
    depth: int = DEFAULT_DEPTH,
    progress: Callable[[PullProgress], None] | None = None,
    max_reconnects: int = MAX_RECONNECTS,
    max_attempts: int = MAX_ATTEMPTS,
    commit_every: int = COMMIT_EVERY,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], float] = time.time,
    new_log: bool = False,
    on_resume: Callable[[Resume], None] | None = None,
) -> PullResult:
    """Bring the archive up to date with the device that ``connect()`` reaches.

    A log that is not the one archived for the unit's serial (``docs/protocol.md`` section 6,
    step 2) is refused with DeviceError before anything is written; with *new_log* it is
    archived as the serial's next epoch.

    ``connect`` opens a fresh transport.  After a link lost once the device
    has identified itself it is called again, at most *max_reconnects* times,
    backing off between tries.  *timeout* bounds each ABORT/IDENTIFY exchange
    at the least; every timeout (exchanges, the stream's idle timeout) grows
    to fit the link's round trip as its answers measure it.
    Raises LinkError (the link could not be kept), LinkTimeout, PullFailed
    (retries exhausted), DeviceError (the device is incompatible, refused, or
    changed identity) or ArchiveError.  Whatever was verified is in the
    archive before any of them is raised; so too before an interrupt (a
    KeyboardInterrupt, or the :class:`~host.errors.Interrupted` a caller's
    signal handler raises), which leaves as Interrupted with ``kept`` set to
    the records this pull committed.
    """
    if window < 1 or not 1 <= depth <= MAX_DEPTH or max_attempts < 0 or commit_every < 1:
        raise UsageError(
            f"window must be >= 1, depth 1..{MAX_DEPTH}, max_attempts >= 0 and commit_every >= 1 "
            f"(got {window}, {depth}, {max_attempts}, {commit_every})"
        )
    started = wall()
    health = LineHealth(RoundTrip(), max_level=max_attempts)
    puller = _Puller(
        archive, health, window=window, depth=depth, progress=progress, max_attempts=max_attempts,
        commit_every=commit_every, clock=clock, new_log=new_log, on_resume=on_resume,
    )
    reconnects = 0
    try:
        transport = connect()
        while True:
            try:
                try:
                    client = Client(
                        transport, timeout=timeout, noisy_tries=NOISY_TRIES, clock=clock, health=health
                    )
                    puller.session(client)
                    break
                finally:
                    puller.leave()
                    transport.close()
            except PullFailed:
                raise
            except LinkError as lost:
                if puller.info is None:
                    raise  # never reached the device: reconnecting would only repeat that
                transport, reconnects = _reconnect(
                    connect, lost, reconnects, max_reconnects, sleep, puller.tell_reconnecting
                )
    except KeyboardInterrupt as stop:
        raise Interrupted.of(stop, kept=puller.added) from None
    result = puller.result(reconnects)
    archive.record_pull(
        result.serial, started, wall(), result.added, result.evicted, result.retries, result.bytes
    )
    return result


def _reconnect(
    connect: Callable[[], Transport],
    lost: LinkError,
    done: int,
    limit: int,
    sleep: Callable[[float], None],
    trying: Callable[[int, int], None] = lambda attempt, limit: None,
) -> tuple[Transport, int]:
    """A new transport after *lost*, and the reconnects used so far; backs off between tries,
    telling *trying* each try's number (and the limit) before it."""
    while done < limit:
        trying(done + 1, limit)
        sleep(BACKOFF_S[min(done, len(BACKOFF_S) - 1)])
        done += 1
        try:
            return connect(), done
        except PullFailed:
            raise
        except LinkError as exc:
            lost = exc
    if done:
        raise type(lost)(f"{lost} (gave up after {done} reconnects)") from lost
    raise lost
