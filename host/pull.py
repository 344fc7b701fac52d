"""Pull a controller's log into the archive: plan, stream, verify, retry, resume.

:func:`pull` implements ``docs/protocol.md`` section 6::

    connect ─► ABORT + IDENTIFY ─► same log? ─► plan from the archive ─► stream windows ─► done
       ▲                                  idle timeout: retry ◄───┤ (ABORT first if it heard
       │                                                          │  garbage, or twice in a row)
       └──── link lost: back off, reconnect, re-plan ◄────────────┘

- *Same log?*: before anything is written, the log the unit reports must be
  the one archived for its serial (:func:`host.log_identity.log_mismatch`:
  log id, lifetime counters, end of log, one overlapping record's CRC-32C);
  otherwise DeviceError, or with ``new_log`` the serial's next epoch.  On a
  reconnect the log id must not have changed.
- *Plan*: wanted = ``[first_seq, next_seq)`` less what the archive holds,
  read from the archive a span at a time (memory stays bounded for any log).
  Seqs below ``first_seq`` never archived are recorded as evicted, not wanted.
- *Stream*: windows of at most ``max_window`` records (READ_RANGE for one
  run, READ_SET for scattered runs), ``depth`` requests outstanding so the
  device always has the next one queued (MAX_DEPTH on a noisy line, where
  requests get lost).
- *Verify*: every record's CRC-32C, decoding its fields into an archive
  row on the way (:func:`protocol.records.decode_rows`); a record is
  accepted only if its request asked for that seq and it comes after the
  last one accepted for that request; one that repeats an accepted seq with
  other contents is a DeviceError (the device contradicts itself).  At
  RANGE_END the missing seqs are computed: below ``first_available`` they
  are evicted, the rest are retried with READ_SET; when none are missing,
  ``sent`` and ``digest`` must match or the window's records are dropped and
  it is requested again.  Records of a later request mean the device
  finished the earlier ones (their RANGE_END was lost).
- *Adapt*: frames (``max_payload``) are as long as the damage the line has
  shown calls for, judged from the session start on (:func:`level_for_noise`);
  a window whose frames prove four times too long is ended early; each retry
  level shrinks frames, retry windows and READ_SET ranges further.
- *Time*: a request is presumed lost after :func:`idle_timeout` without a byte, fitted to the
  link's RTO as the session's exchanges measured it (:class:`~host.rtt.RoundTrip`, kept across
  reconnects), so a slow link (a cellular or satellite modem) is waited for.
- *Retry*: retry windows shrink with each attempt (``window``, ``/8``,
  ``/64`` ... down to MIN_RETRY_WINDOW), so the frames that carry the
  stragglers come through.  The pull fails with :class:`~host.errors.PullFailed`
  when a window's count and digest never match in ``max_attempts`` tries, or
  when retry windows in a row bring nothing (MAX_FRUITLESS, more on a noisy line).
- *Commit*: a window's rows are held until it ends; they go to the archive
  unless its RANGE_END's count and digest contradict them (when some records
  are missing or RANGE_END was lost, the digest cannot be checked, and their
  CRCs vouch for them).  Batches of ``commit_every``, when the line goes
  quiet, and on the way out (done, link lost, failed, even KeyboardInterrupt),
  when the windows still in flight are committed too, as if their RANGE_END
  was lost: so a re-run fetches nothing twice.  They go as decode_rows gave
  them (:meth:`~host.archive.Archive.store_decoded`), so no record is checked
  or decoded twice.

It never imports pyserial (links come from ``connect``), never accepts an
unverified or unrequested record, and never reads the clock except through
the ``clock``/``sleep``/``wall`` callables it is given.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from math import log, sqrt
from operator import itemgetter

from protocol.crc import crc32c
from protocol.enums import ErrorCode
from protocol.formats import MAX_PAYLOAD, MAX_SET_RANGES
from protocol.framing import MAX_STUFFED, MIN_FRAME
from protocol.messages import ErrorResponse, IdentifyResponse, RangeEnd, ReadRange, ReadSet, Records
from protocol.records import DecodedRow, crc_fields, decode_rows

from .archive import Archive
from .driver import DEFAULT_TIMEOUT, Client, refused
from .errors import DeviceError, Interrupted, LinkError, PullFailed, UnknownUnit, UsageError
from .log_identity import ReportedLog, log_mismatch, next_epoch, refusal
from .rtt import RoundTrip
from .session import ClientSession, Response
from .transport import Transport

DEFAULT_WINDOW = 2048
"""Records per request: about 12 s of line at 115,200 baud, so two in flight hide any round trip."""
DEFAULT_DEPTH = 2
MAX_DEPTH = 4
"""The device queues at most four streams."""
MAX_ATTEMPTS = 8
"""Re-requests of a window whose digest disagrees before the pull fails; and the attempt
level at which retry windows and frames stop shrinking."""
MAX_FRUITLESS = 40
"""Retry windows in a row that bring not one record before the pull fails (the line is dead)."""
MAX_NOISY_FRUITLESS = 400
"""The same, on a line that damages frames: there a window of one straggler brings nothing
nine times in ten at 2 % damaged bytes."""
MIN_RETRY_WINDOW = 16
"""Records a retry window asks for at the least."""
MIN_SET_RANGES = 4
"""Ranges a READ_SET may hold at the least: 40 bytes on the wire, half a one-record RECORDS frame."""
NOISY_TRIES = 40
"""Timeouts' worth of time an exchange gets on a connection that has delivered damaged frames beside
good ones (a noisy line, not a dead one)."""
COMMIT_EVERY = 2048
MAX_RECONNECTS = 5
MAX_STALLS = 3
"""Idle timeouts in a row without a single new record before the pull fails."""
MAX_NOISY_STALLS = 30
"""The same, on a line that delivers damaged frames beside good ones (noisy, not dead)."""
MAX_ANSWERED_STALLS = 120
"""The same on a noisy line, for timeouts during which the device did answer (an ABORT_RSP, a
RANGE_END) but no record came through: the last straggler of a log gets through about one try in
ten at the issue's noise, so 30 such tries in a row still happen a few times in a hundred pulls,
120 about three times in a million."""
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0)
PROGRESS_INTERVAL_S = 0.25
QUIET_S = 0.05
"""A read that long without a byte commits what has been accepted so far."""
GARBLED_IDLE = 8
"""Bytes arriving keep a request alive, but only for this many idle timeouts without one answer."""
EARLY_SAMPLE = 16
"""Frames to judge the line by before ending windows whose frames it cannot carry."""
_SPAN_WINDOWS = 64
"""The plan reads the archive's gaps this many windows at a time."""
_SET_COUNT_MAX = 0xFFFF
"""A READ_SET range count is a u16."""
_seq_of = itemgetter(0)
_RECORDS_FRAME_BYTES = MIN_FRAME + 2 + 3
"""What a RECORDS frame adds to its records on the line: header, CRC, request_seq, stuffing and
delimiters."""


def idle_timeout(baud: int, round_trip: float = 0.0) -> float:
    """Silence after which an outstanding request is presumed lost: 0.5 s + 4 max frames, or
    *round_trip* + 4 max frames when that is longer: *round_trip* is the link's RTO
    (:class:`~host.rtt.RoundTrip`), what a request's first answer may take on a slow link (a
    cellular or satellite modem) before anything arrives."""
    return max(0.5, round_trip) + 4 * MAX_STUFFED * 10 / max(baud, 1)


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
    retries: int
    """Re-requested windows, plus idle timeouts, plus reconnects."""
    bytes: int
    elapsed_s: float
    received: int
    """Records accepted from the line, including any fetched twice."""
    rejected: int
    """Records dropped on arrival: failed their CRC-32C, or not asked for."""
    reconnects: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def payload_for(level: int) -> int:
    """``max_payload`` asked at retry *level*: the device's full frames first, then halving
    down to one record per frame, so that on a noisy line a hit costs fewer records."""
    return 0 if level <= 0 else max(1, MAX_PAYLOAD >> level)


def ranges_for(level: int) -> int:
    """READ_SET ranges per request at retry *level*: the request no longer than the frames asked
    of the device (six bytes a range), so that it gets through about as often as they do; but
    at least MIN_SET_RANGES, as the device's frames never get shorter than one record."""
    if level <= 0:
        return MAX_SET_RANGES
    return max(MIN_SET_RANGES, min(MAX_SET_RANGES, (payload_for(level) - 3) // 6))


def level_for_noise(session: ClientSession, limit: int) -> int:
    """The retry level the line calls for, judged by the frames it has delivered so far.

    A frame of n bytes comes through whole with about e^(-p n) on a line that damages a byte
    with probability p; p is estimated from the share of frames that came damaged and their
    mean length (one good frame more is assumed, so that a single hit is not taken for a dead
    line).  The payload that carries the most record bytes through such a line is about
    sqrt(overhead / p): the level is the first whose ``max_payload`` is no more than that
    (within a factor of sqrt 2).  A line that damaged nothing keeps full frames."""
    damaged = session.damaged_frames
    if not damaged:
        return 0
    frames = damaged + session.frames_received + 1
    per_byte = -log(1 - damaged / frames) * frames / max(session.bytes_received, 1)
    best = sqrt(_RECORDS_FRAME_BYTES / per_byte) * sqrt(2)
    level = 0
    while level < limit and (payload_for(level) or MAX_PAYLOAD) > best:
        level += 1
    return level


class _Contradiction(Exception):
    """The device sent two different records for one seq."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


class _Window:
    """One READ_RANGE or READ_SET in flight: what it asked for, what came back.

    ``ranges`` are ``(start, stop)``, ascending and disjoint, each with the
    attempt number that requested it (0 for the first request).  The rows
    accepted are held here until the window ends (``rows``, in seq order, beside
    their seqs in ``received``), so that a RANGE_END that contradicts them can
    keep them out of the archive.
    """

    __slots__ = (
        "ranges", "attempts", "starts", "lo", "hi", "last", "received", "rows", "digest", "max_payload",
    )

    def __init__(self, ranges: list[tuple[int, int]], attempts: list[int], level: int = 0) -> None:
        self.ranges = ranges
        self.attempts = attempts
        self.max_payload = payload_for(max(level, *attempts))
        """Record bytes per frame asked of the device: smaller as the line proves noisier."""
        self.starts = [start for start, _ in ranges]
        self.lo = ranges[0][0]
        self.hi = ranges[-1][1]
        self.last = -1
        self.received: list[int] = []
        self.rows: list[DecodedRow] = []
        self.digest = 0

    def request(self) -> ReadRange | ReadSet:
        if len(self.ranges) == 1:
            return ReadRange(self.lo, self.hi - self.lo, self.max_payload)
        return ReadSet(tuple((start, stop - start) for start, stop in self.ranges), self.max_payload)

    def accept(self, good: list[DecodedRow]) -> list[DecodedRow]:
        """The records of *good* this window asked for, in increasing seq order; held in ``rows``.

        Raises _Contradiction for a record of an asked-for seq already accepted with other
        contents (and then drops every row held: which of the two is the log, the line cannot
        tell)."""
        if not good:
            return good
        seqs = list(map(_seq_of, good))
        first = seqs[0]
        consecutive = seqs == list(range(first, first + len(seqs)))
        if consecutive and first > self.last and self._one_range(first, seqs[-1]):
            taken = good  # the usual frame: consecutive seqs inside one asked-for range
        else:
            taken, seqs = self._pick(good)
            if not taken:
                return taken
        self.last = seqs[-1]
        self.received += seqs
        self.rows += taken
        self.digest = crc32c(crc_fields(taken), self.digest)
        return taken

    def _pick(self, good: list[DecodedRow]) -> tuple[list[DecodedRow], list[int]]:
        """Record by record: asked for, and after the last one accepted; a repeat must be the same."""
        last, lo, hi = self.last, self.lo, self.hi
        taken: list[DecodedRow] = []
        seqs: list[int] = []
        for record in good:
            seq = record[0]
            if not (lo <= seq < hi and self._one_range(seq, seq)):
                continue
            if last < seq:
                taken.append(record)
                seqs.append(seq)
                last = seq
            elif self._accepted(seq, taken, seqs) not in (None, record):
                self.rows = []
                raise _Contradiction(seq)
        return taken, seqs

    def _accepted(self, seq: int, taken: list[DecodedRow], seqs: list[int]) -> DecodedRow | None:
        """The row accepted for *seq* so far (held, or *taken* from the frame at hand), if any."""
        for held, held_seqs in ((taken, seqs), (self.rows, self.received)):
            index = bisect_left(held_seqs, seq)
            if index < len(held_seqs) and held_seqs[index] == seq:
                return held[index]
        return None

    def _one_range(self, first: int, last: int) -> bool:
        """Whether ``first .. last`` lies inside one of the ranges asked for."""
        index = bisect_right(self.starts, first) - 1
        return index >= 0 and last < self.ranges[index][1]

    def missing(self) -> list[tuple[int, int, int]]:
        """``(start, stop, attempt)`` runs asked for and not received."""
        if len(self.received) == sum(stop - start for start, stop in self.ranges):
            return []  # received seqs are distinct and asked for (accept): every one came
        out: list[tuple[int, int, int]] = []
        received = iter(self.received)
        upcoming = next(received, None)
        for (start, stop), attempt in zip(self.ranges, self.attempts, strict=True):
            pos = start
            while upcoming is not None and upcoming < stop:
                if upcoming > pos:
                    out.append((pos, upcoming, attempt))
                pos = upcoming + 1
                upcoming = next(received, None)
            if pos < stop:
                out.append((pos, stop, attempt))
        return out


class _Plan:
    """What is left to request: retries first, then fresh windows from the archive's gaps."""

    def __init__(self, archive: Archive, serial: str, start: int, stop: int, window: int, level: int) -> None:
        self.level = level
        """How noisy the line has proved (the highest retry attempt so far): fresh windows
        start that small too, so a re-plan does not begin with requests the line cannot carry."""
        self._archive = archive
        self._serial = serial
        self._cursor = start
        self._stop = stop
        self._window = window
        self._fresh: deque[tuple[int, int, int]] = deque()
        self.retries: deque[tuple[int, int, int]] = deque()
        self.wanted = sum(b - a for a, b in archive.missing_ranges(serial, start, stop))

    def next_window(self) -> _Window | None:
        if self.retries:
            attempt = self.retries[0][2]
            return self._take(self.retries, self._retry_cap(attempt), max(self.level, attempt))
        if not self._fresh:
            self._refill()
        if not self._fresh:
            return None
        cap = self._retry_cap(self.level) if self.level else self._window
        return self._take(self._fresh, cap, self.level)

    def _retry_cap(self, attempt: int) -> int:
        return max(min(MIN_RETRY_WINDOW, self._window), self._window >> (3 * (attempt - 1)))

    def _refill(self) -> None:
        while not self._fresh and self._cursor < self._stop:
            end = min(self._stop, self._cursor + self._window * _SPAN_WINDOWS)
            gaps = self._archive.missing_ranges(self._serial, self._cursor, end)
            self._fresh.extend((start, stop, 0) for start, stop in gaps)
            self._cursor = end

    @staticmethod
    def _take(queue: deque[tuple[int, int, int]], cap: int, level: int) -> _Window:
        """Up to *cap* records in at most ``ranges_for(level)`` ranges from the front of *queue*,
        sorted so that the device's answer comes in increasing seq order."""
        taken: list[tuple[tuple[int, int], int]] = []
        room, ranges = cap, ranges_for(level)
        while queue and room > 0 and len(taken) < ranges:
            start, stop, attempt = queue.popleft()
            count = min(stop - start, room, _SET_COUNT_MAX)
            if count < stop - start:
                queue.appendleft((start + count, stop, attempt))
            taken.append(((start, start + count), attempt))
            room -= count
        taken.sort()
        return _Window([span for span, _ in taken], [attempt for _, attempt in taken], level)


class _Puller:
    """The state of one :func:`pull` across sessions and reconnects."""

    def __init__(
        self,
        archive: Archive,
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
        self.on_resume = on_resume
        self.new_log = new_log
        self.planned_from = 0
        self.last_planned = 0
        """The device's next_seq at the last IDENTIFY: the pull asks for seqs below it."""
        self.already_held = 0
        self.window = window
        self.depth = depth
        self.progress = progress
        self.max_attempts = max_attempts
        self.commit_every = commit_every
        self.clock = clock
        self.started = clock()
        self.serial = ""
        self.info: IdentifyResponse | None = None
        self.evicted_before = 0
        self.batch: list[DecodedRow] = []
        """Rows of ended windows, not yet committed."""
        self.outstanding: dict[int, _Window] = {}
        """Windows in flight, by request seq."""
        self.added = 0
        self.received = 0
        self.rejected = 0
        self.retries = 0
        self.bytes_done = 0
        self.total = 0
        self.first_available = 0
        self.last_progress = self.started
        self.last_report: PullProgress | None = None
        self.level = 0
        self.fruitless = 0
        self.noisy = False
        """Whether the line has damaged a frame: then MAX_DEPTH requests stay outstanding, and
        retries and timeouts in a row get longer to prove the line dead."""
        self.garbled = False
        """Whether the last idle timeout heard bytes that never made an answer."""

    # --- sessions --------------------------------------------------------------

    def session(self, client: Client) -> None:
        """ABORT and IDENTIFY, plan, stream; after each idle timeout stream on, until done.

        Frames start as small as the session start showed the line to need, and each idle
        timeout makes them smaller still.  After a timeout that heard bytes but no answer, or a
        second one in a row without a record, ABORT comes first: it ends whatever the device
        still sends, and on a silent line it asks whether the device is there at all (no
        answer: LinkTimeout, and the pull reconnects)."""
        stalls = answered_stalls = 0
        frames_before = 0
        try:
            info = client.start()
            self.noisy = self.noisy or bool(client.session.damaged_frames)
            if self.info is None:
                self.check_log(client, info)
            plan = self.adopt(info)
            frames_before = client.session.frames_received
            self.level = plan.level = max(self.level, level_for_noise(client.session, self.max_attempts))
            while True:
                before = self.received
                if self.stream(client, plan, idle_timeout(info.baud, client.rtt.rto)):
                    return
                self.retries += 1
                self.level = plan.level = min(self.level + 1, self.max_attempts)  # it did not come through
                if self.received != before:
                    stalls = answered_stalls = 0
                elif self.noisy and client.session.frames_received != frames_before:
                    answered_stalls += 1  # the device answers (stream, ABORT); its records come damaged
                else:
                    stalls += 1
                frames_before = client.session.frames_received
                if (
                    stalls >= (MAX_NOISY_STALLS if self.noisy else MAX_STALLS)
                    or answered_stalls >= MAX_ANSWERED_STALLS
                ):
                    raise PullFailed(
                        f"unit {self.serial} stopped sending records "
                        f"({stalls + answered_stalls} timeouts in a row without one)"
                    )
                if self.garbled or stalls + answered_stalls > 1:
                    client.abort()
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
            return None if raw is None else int.from_bytes(raw[-4:], "little")

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

    def adopt(self, info: IdentifyResponse) -> _Plan:
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
            self.serial = serial
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
        self.first_available = max(self.first_available, info.first_seq)
        self.last_planned = max(self.last_planned, info.next_seq)
        for start, stop in archive.missing_ranges(serial, low, info.first_seq):
            archive.record_evicted(serial, start, stop - start)
        if known_first is not None:
            self.upsert(info)  # after the evictions: a crash in between cannot hide them
        window = min(self.window, info.max_window, _SET_COUNT_MAX)
        if window < 1:
            raise DeviceError(f"unit {serial} reports max_window {info.max_window}: it cannot stream")
        plan = _Plan(archive, serial, info.first_seq, info.next_seq, window, self.level)
        self.total = self.received + plan.wanted
        return plan

    def upsert(self, info: IdentifyResponse) -> None:
        self.archive.upsert_unit(
            info.serial, info.model, info.firmware, info.schema_fingerprint,
            first_seq=info.first_seq, next_seq=info.next_seq, capacity_records=info.capacity_records,
            device_time=info.device_time, operating_s=info.operating_s, starts=info.starts,
            trips=info.trips, energy_wh=info.energy_wh, log_id=info.log_id,
        )

    # --- streaming -------------------------------------------------------------

    def stream(self, client: Client, plan: _Plan, idle: float) -> bool:
        """Run the plan; True when it is done, False when the device went quiet.

        Quiet means no byte for *idle* seconds, or bytes that never make an
        answer for GARBLED_IDLE times that (a device spewing noise); the windows
        in flight then end as if their RANGE_END was lost, and their missing
        seqs are retried.
        """
        outstanding = self.outstanding
        clock = self.clock
        heard_bytes = heard_answer = clock()
        while True:
            while len(outstanding) < (MAX_DEPTH if self.noisy else self.depth):
                self.level = plan.level = max(self.level, level_for_noise(client.session, self.max_attempts))
                window = plan.next_window()
                if window is None:
                    break
                if window.attempts[0]:
                    self.retries += 1
                outstanding[client.send(window.request())] = window
            if not outstanding:
                self.flush()
                self.report(client, force=True)
                return True
            left = min(heard_bytes + idle, heard_answer + idle * GARBLED_IDLE) - clock()
            if left <= 0:
                self.garbled = clock() - heard_bytes < idle
                self.end_all(client, plan)
                return False
            before = client.session.bytes_received
            responses = client.receive(min(left, QUIET_S))
            if client.session.bytes_received == before:
                self.flush()
                continue
            heard_bytes = clock()
            self.noisy = self.noisy or bool(client.session.damaged_frames)
            if not responses:
                continue
            heard_answer = heard_bytes
            for response in responses:
                self.dispatch(client, plan, outstanding, response)
            self.report(client)
            if self.frames_too_long(client.session):
                self.end_all(client, plan)
                client.abort()
                heard_bytes = heard_answer = clock()

    def frames_too_long(self, session: ClientSession) -> bool:
        """Whether the window now streaming has frames four times longer or more than the line
        has shown it can carry: then it is ended early, not waited out."""
        if not self.outstanding or session.damaged_frames + session.frames_received < EARLY_SAMPLE:
            return False
        streaming = next(iter(self.outstanding.values())).max_payload or MAX_PAYLOAD
        return (payload_for(level_for_noise(session, self.max_attempts)) or MAX_PAYLOAD) * 4 <= streaming

    def end_all(self, client: Client, plan: _Plan) -> None:
        """End every window in flight as if its RANGE_END was lost; its answers still to come
        are ignored."""
        for seq in list(self.outstanding):
            client.session.forget(seq)
            self.finish(plan, self.outstanding.pop(seq), None)

    def dispatch(
        self,
        client: Client,
        plan: _Plan,
        outstanding: dict[int, _Window],
        response: Response,
    ) -> None:
        if isinstance(response, Records):
            window = outstanding.get(response.request_seq)
            if window is None:
                return
            self.end_before(client, plan, outstanding, response.request_seq)
            good, bad = decode_rows(response.records)
            try:
                taken = window.accept(good)
            except _Contradiction as contradiction:
                raise DeviceError(
                    f"unit {self.serial} sent two different records for seq {contradiction.seq}: it "
                    "contradicts itself, so neither is archived (records verified before are kept)"
                ) from None
            self.rejected += len(bad) + len(good) - len(taken)
            self.received += len(taken)
        elif isinstance(response, RangeEnd):
            if response.request_seq in outstanding:
                self.end_before(client, plan, outstanding, response.request_seq)
                self.finish(plan, outstanding.pop(response.request_seq), response)
        elif isinstance(response, ErrorResponse):
            window = outstanding.pop(response.request_seq, None)
            if window is None:
                return
            if response.code != ErrorCode.BUSY:
                raise refused(window.request(), response)
            self.finish(plan, window, None)

    def end_before(self, client: Client, plan: _Plan, outstanding: dict[int, _Window], seq: int) -> None:
        """The device answers in order: requests sent before *seq* are over (RANGE_END lost)."""
        for earlier in list(outstanding):
            if earlier == seq:
                return
            client.session.forget(earlier)
            self.finish(plan, outstanding.pop(earlier), None)

    def finish(self, plan: _Plan, window: _Window, end: RangeEnd | None) -> None:
        """Check an ended window's digest, keep its rows unless that contradicts them, and sort
        its missing seqs into evicted and retried.

        The digest covers every record the device sent, so it can be checked only when every
        one asked for came; when some are missing, or RANGE_END was lost, the rows are kept on
        the strength of their CRCs (nothing contradicted them)."""
        if end is not None:
            self.first_available = max(self.first_available, end.first_available)
        missing = window.missing()
        disagrees = not missing and end is not None and (
            (end.sent, end.digest) != (len(window.received), window.digest)
        )
        if disagrees:
            spans = zip(window.ranges, window.attempts, strict=True)
            missing = [(start, stop, attempt) for (start, stop), attempt in spans]
        else:
            self.keep(window.rows)
        window.rows = []
        if not missing:
            return
        if max(window.attempts) > 0:
            self.fruitless = 0 if window.received else self.fruitless + 1
        for start, stop, attempt in missing:
            if start < self.first_available:
                gone = min(stop, self.first_available)
                self.archive.record_evicted(self.serial, start, gone - start)
                start = gone
            if start >= stop:
                continue
            if disagrees and attempt >= self.max_attempts:
                self.flush()
                raise PullFailed(
                    f"unit {self.serial}: records {start}..{stop - 1} never matched the count and digest "
                    f"of the device's RANGE_END in {self.max_attempts} tries: what arrived is not what the "
                    "device reports sending, so it is not archived (records that matched are kept)"
                )
            if self.fruitless >= (MAX_NOISY_FRUITLESS if self.noisy else MAX_FRUITLESS):
                self.flush()
                raise PullFailed(
                    f"unit {self.serial}: records {start}..{stop - 1} still missing; {self.fruitless} "
                    "retries in a row brought nothing: the line is too noisy or the unit cannot read them "
                    "(committed records are kept, "
                    "run the pull again to resume)"
                )
            level = min(attempt + 1, self.max_attempts)
            self.level = plan.level = max(self.level, level)
            plan.retries.append((start, stop, level))

    # --- archive and progress ----------------------------------------------------

    def keep(self, rows: list[DecodedRow]) -> None:
        """Rows to commit: in batches of commit_every."""
        self.batch += rows
        if len(self.batch) >= self.commit_every:
            self.flush()

    def flush(self) -> None:
        """Commit the rows of ended windows, commit_every at a time.  Rows the archive refused are
        dropped (a failure is not retried on the way out); rows an interrupt kept from their
        commit stay, for :meth:`leave` to commit."""
        try:
            while self.batch:
                rows = self.batch[:self.commit_every]
                self.added += self.archive.store_decoded(self.serial, rows)
                del self.batch[:len(rows)]
        except Exception:
            self.batch = []
            raise

    def leave(self) -> None:
        """On the way out (done, link lost, interrupted, failed): the windows still in flight end
        uncontradicted, as if their RANGE_END was lost, so their rows are committed with the rest."""
        for window in self.outstanding.values():
            self.batch += window.rows
        self.outstanding.clear()
        self.flush()

    def report(self, client: Client, *, force: bool = False) -> None:
        if self.progress is None:
            return
        now = self.clock()
        if not force and now - self.last_progress < PROGRESS_INTERVAL_S:
            return
        self.last_progress = now
        elapsed = max(now - self.started, 1e-9)
        done, total = self.received, max(self.total, self.received)
        received_bytes = self.bytes_done + client.session.bytes_received
        rate = done / elapsed
        self.last_report = PullProgress(
            done=done,
            total=total,
            bytes=received_bytes,
            bytes_per_s=received_bytes / elapsed,
            eta_s=(total - done) / rate if rate > 0 else None,
            retries=self.retries,
        )
        self.progress(self.last_report)

    def tell_reconnecting(self, attempt: int, limit: int) -> None:
        """Progress while the link is down: the counts so far, no ETA, which reconnect is tried."""
        if self.progress is None:
            return
        done = self.received
        last = self.last_report or PullProgress(done, max(self.total, done), self.bytes_done, 0.0, None, 0)
        self.progress(
            replace(last, eta_s=None, retries=self.retries, reconnecting=attempt, reconnects_max=limit)
        )

    def result(self, reconnects: int) -> PullResult:
        assert self.info is not None
        info = self.info
        return PullResult(
            serial=self.serial,
            added=self.added,
            first_seq=max(self.first_available, info.first_seq),
            last_seq=self.last_planned - 1 if self.last_planned > self.planned_from else None,
            evicted=self.archive.evicted_count(self.serial) - self.evicted_before,
            planned_from=self.planned_from,
            already_held=self.already_held,
            epoch=self.archive.unit(self.serial).epoch,
            retries=self.retries + reconnects,
            bytes=self.bytes_done,
            elapsed_s=self.clock() - self.started,
            received=self.received,
            rejected=self.rejected,
            reconnects=reconnects,
        )


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
    rtt = RoundTrip()
    puller = _Puller(
        archive, window=window, depth=depth, progress=progress, max_attempts=max_attempts,
        commit_every=commit_every, clock=clock, new_log=new_log, on_resume=on_resume,
    )
    reconnects = 0
    try:
        transport = connect()
        while True:
            try:
                try:
                    client = Client(transport, timeout=timeout, noisy_tries=NOISY_TRIES, clock=clock, rtt=rtt)
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
