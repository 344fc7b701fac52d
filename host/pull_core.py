"""The pull without I/O: what to request, what to accept, what to commit.

:class:`PullCore` holds one pull's plan, windows in flight, verification and
retry policy.  The driver (:mod:`host.pull`) feeds it events and carries out
what it asks::

    events in                                 actions out (PullCore.poll / returned lists)
    begin(first_seq, next_seq, window)        ReadGaps(start, stop)   the archive's gaps, please
    gaps(start, stop, ranges)                 Send(request)           then sent(request_seq)
    sent(request_seq)                         Forget(request_seq)     stop waiting for its answers
    received(responses, line)                 Evict(start, count)     gone from the device
    timed_out(garbled)                        Store(rows)             verified rows to commit
    quiet()                                   Abort()                 end the device's streams
    leave()                                   Done()                  nothing left to ask

- *Windows*: at most ``window`` records (READ_RANGE for one run, READ_SET for
  scattered runs), as many outstanding as :class:`~host.line_health.LineHealth`
  says; retries first, then fresh windows from the archive's gaps.
- *Accept*: a record is accepted only if its request asked for that seq and it
  comes after the last one accepted for that request; two different records
  for one seq in one window are a DeviceError.  Records of a later request
  mean the device finished the earlier ones (their RANGE_END was lost).
- *Verify*: the digest of RANGE_END covers every record the device sent.  A
  window whose RANGE_END came and nothing is missing is checked at once.  One
  with records missing becomes a *check*: its rows wait, its missing seqs are
  retried, and once every seq it asked for is in hand (from its retries, or
  from rows waiting) its count and digest are checked.  A window whose
  RANGE_END was lost (or that timed out, or was aborted) cannot be checked:
  its rows wait too and all its seqs are asked again, so that a RANGE_END
  covers them.  A check that disagrees drops its waiting rows and asks again.
  So no record is committed without a digest vouching for it, except on the
  way out (:meth:`leave`), when rows waiting are kept on the strength of their
  CRCs, as the windows in flight are.
- *Retry*: missing seqs below ``first_available`` are evicted, the rest asked
  again one attempt higher: smaller windows (``window``, ``/4``, ``/32`` ...
  down to MIN_RETRY_WINDOW), smaller frames and READ_SETs (the attempt or the
  line's level, if higher).  The pull fails when a check disagrees at
  ``max_attempts``, when MAX_UNVOUCHED windows in a row end without a
  RANGE_END, or when retry windows in a row bring nothing.

It never blocks, never reads a clock and never touches the archive: the
archive's view comes in as plain data, what to write goes out as actions.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from operator import itemgetter

from protocol.enums import ErrorCode
from protocol.formats import MAX_PAYLOAD, MAX_SET_RANGES
from protocol.messages import ErrorResponse, RangeDigest, RangeEnd, ReadRange, ReadSet, Records
from protocol.records import DecodedRow, crc_fields, decode_rows

from .errors import DeviceError, PullFailed
from .line_health import MAX_ANSWERED_STALLS, LineHealth, payload_for
from .session import Response, refused

DEFAULT_WINDOW = 2048
"""Records per request: about 12 s of line at 115,200 baud, so two in flight hide any round trip."""
DEFAULT_DEPTH = 2
MAX_DEPTH = 4
"""The device queues at most four streams."""
MAX_ATTEMPTS = 8
"""Re-requests of a window whose digest disagrees before the pull fails; and the attempt
level at which retry windows and frames stop shrinking."""
MAX_UNVOUCHED = 200
"""Windows in a row that end without their RANGE_END (lost, timed out, aborted) before the pull
fails: at 2 % damaged bytes a RANGE_END is lost about one time in two, and a timeout ends up to four
windows at once, so 200 in a row never happen by chance; a device that never ends its streams does."""
MIN_RETRY_WINDOW = 16
"""Records a retry window asks for at the least."""
MIN_SET_RANGES = 4
"""Ranges a READ_SET may hold at the least: 40 bytes on the wire, half a one-record RECORDS frame."""
COMMIT_EVERY = 2048
EARLY_SAMPLE = 16
"""Frames to judge the line by before ending windows whose frames it cannot carry."""
FRAMES_TOO_LONG_SURVIVAL = 0.5
"""A window is ended early only if its frames come through less often than this."""
SPAN_WINDOWS = 64
"""The plan reads the archive's gaps this many windows at a time."""
SET_COUNT_MAX = 0xFFFF
"""A READ_SET range count is a u16."""
_seq_of = itemgetter(0)
MISSING, DISAGREED, UNVOUCHED = "missing", "disagreed", "unvouched"
"""Why seqs are asked again: they did not come; what came contradicts RANGE_END; no RANGE_END came."""


# --- actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadGaps:
    """Tell :meth:`PullCore.gaps` which seqs of ``start .. stop - 1`` the archive lacks."""

    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class Send:
    """Send *request*, then tell :meth:`PullCore.sent` its frame seq."""

    request: ReadRange | ReadSet


@dataclass(frozen=True, slots=True)
class Forget:
    """Stop waiting for the answers to *request_seq*."""

    request_seq: int


@dataclass(frozen=True, slots=True)
class Evict:
    """Record seqs ``start .. start + count - 1`` as evicted (gone from the device unread)."""

    start: int
    count: int


@dataclass(frozen=True, slots=True)
class Store:
    """Commit these verified rows (in seq order within each window)."""

    rows: list[DecodedRow]


@dataclass(frozen=True, slots=True)
class Abort:
    """End every stream on the device (an ABORT exchange) before streaming on."""


@dataclass(frozen=True, slots=True)
class Done:
    """Everything planned is archived or evicted."""


Action = ReadGaps | Send | Forget | Evict | Store | Abort | Done


@dataclass(frozen=True, slots=True)
class LineCounts:
    """What the current connection has received so far (a ClientSession's counters)."""

    frames: int
    damaged: int


def ranges_for(level: int) -> int:
    """READ_SET ranges per request at retry *level*: the request no longer than the frames asked
    of the device (six bytes a range), so that it gets through about as often as they do; but
    at least MIN_SET_RANGES, as the device's frames never get shorter than one record."""
    if level <= 0:
        return MAX_SET_RANGES
    return max(MIN_SET_RANGES, min(MAX_SET_RANGES, (payload_for(level) - 3) // 6))


class Contradiction(Exception):
    """The device sent two different records for one seq."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


class Window:
    """One READ_RANGE or READ_SET in flight: what it asked for, what came back.

    ``ranges`` are ``(start, stop)``, ascending and disjoint, each with the
    attempt number that requested it (0 for the first request).  The rows
    accepted are held here until the window ends (``rows``, in seq order, beside
    their seqs in ``received``).
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
        self.digest = RangeDigest()

    @property
    def size(self) -> int:
        return sum(stop - start for start, stop in self.ranges)

    def request(self) -> ReadRange | ReadSet:
        if len(self.ranges) == 1:
            return ReadRange(self.lo, self.hi - self.lo, self.max_payload)
        return ReadSet(tuple((start, stop - start) for start, stop in self.ranges), self.max_payload)

    def accept(self, good: list[DecodedRow]) -> list[DecodedRow]:
        """The records of *good* this window asked for, in increasing seq order; held in ``rows``.

        Raises Contradiction for a record of an asked-for seq already accepted with other
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
        self.digest.update_rows(taken)
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
                raise Contradiction(seq)
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

    def asks(self, seq: int) -> bool:
        return self._one_range(seq, seq)

    def missing(self) -> list[tuple[int, int, int]]:
        """``(start, stop, attempt)`` runs asked for and not received."""
        if len(self.received) == self.size:
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


@dataclass(slots=True)
class _Check:
    """A window whose RANGE_END came while some of its records were missing: its count and digest,
    to check once every seq it asked for is in hand."""

    ranges: list[tuple[int, int]]
    attempts: list[int]
    sent: int
    digest: int

    def size(self) -> int:
        return sum(stop - start for start, stop in self.ranges)

    def seqs(self) -> range | list[int]:
        if len(self.ranges) == 1:
            return range(*self.ranges[0])
        return [seq for start, stop in self.ranges for seq in range(start, stop)]


class Plan:
    """What is left to request: retries first, then fresh windows from the archive's gaps."""

    def __init__(self, start: int, stop: int, window: int) -> None:
        self.cursor = start
        self.stop = stop
        self.window = window
        self.fresh: deque[tuple[int, int, int]] = deque()
        self.retries: deque[tuple[int, int, int]] = deque()

    def gaps_wanted(self) -> tuple[int, int] | None:
        """The span of the archive to read next, when no fresh window is left to ask."""
        if self.retries or self.fresh or self.cursor >= self.stop:
            return None
        return self.cursor, min(self.stop, self.cursor + self.window * SPAN_WINDOWS)

    def add_gaps(self, stop: int, gaps: list[tuple[int, int]]) -> None:
        self.fresh.extend((start, end, 0) for start, end in gaps)
        self.cursor = max(self.cursor, stop)

    def next_window(self, level: int) -> Window | None:
        if self.retries:
            attempt = self.retries[0][2]
            return self._take(self.retries, self._cap(max(level, attempt)), max(level, attempt))
        if not self.fresh:
            return None
        return self._take(self.fresh, self._cap(level), level)

    def _cap(self, level: int) -> int:
        """Records a window asks for at *level*: ``window``, then a quarter of it, then /8 at each
        level more, at least MIN_RETRY_WINDOW: a window whose RANGE_END is lost is asked again
        whole, so on a line that damages frames that must not cost much."""
        if level <= 0:
            return self.window
        shift = 2 + 3 * (min(level, MAX_ATTEMPTS) - 1)
        return max(min(MIN_RETRY_WINDOW, self.window), self.window >> shift)

    @staticmethod
    def _take(queue: deque[tuple[int, int, int]], cap: int, level: int) -> Window:
        """Up to *cap* records in at most ``ranges_for(level)`` ranges from the front of *queue*,
        sorted so that the device's answer comes in increasing seq order."""
        taken: list[tuple[tuple[int, int], int]] = []
        room, ranges = cap, ranges_for(level)
        while queue and room > 0 and len(taken) < ranges:
            start, stop, attempt = queue.popleft()
            count = min(stop - start, room, SET_COUNT_MAX)
            if count < stop - start:
                queue.appendleft((start + count, stop, attempt))
            taken.append(((start, start + count), attempt))
            room -= count
        taken.sort()
        spans, attempts = [span for span, _ in taken], [attempt for _, attempt in taken]
        return Window(spans, attempts, min(level, MAX_ATTEMPTS))


class PullCore:
    """One pull's decisions, across sessions and reconnects (see the module docstring)."""

    def __init__(
        self,
        health: LineHealth,
        *,
        serial: str = "",
        depth: int = DEFAULT_DEPTH,
        max_attempts: int = MAX_ATTEMPTS,
        commit_every: int = COMMIT_EVERY,
    ) -> None:
        self.health = health
        self.serial = serial
        self.depth = depth
        self.max_attempts = max_attempts
        self.commit_every = commit_every
        self.plan: Plan | None = None
        self.outstanding: dict[int, Window] = {}
        """Windows in flight, by request seq."""
        self._unsent: Window | None = None
        self.batch: list[DecodedRow] = []
        """Verified rows, not yet handed out to store."""
        self.waiting: dict[int, DecodedRow] = {}
        """Rows accepted that no digest has vouched for yet, by seq."""
        self.checks: list[_Check] = []
        self.settled: set[int] = set()
        """Seqs a check vouched for while a window in flight still asks for them (not committed twice)."""
        self.vouched: dict[int, int] = {}
        """CRC-32C of the rows verified while a check waited, by seq, for the checks to use."""
        self.first_available = 0
        self.accepted = 0
        """Records accepted, each seq once (one sent again to be vouched for is not counted again)."""
        self.rejected = 0
        self.retry_windows = 0
        self.timeouts = 0
        self.fruitless = 0
        self.unvouched = 0
        """Windows in a row that ended without their RANGE_END."""
        self.stalls = 0
        self.answered_stalls = 0
        self._received_at_timeout = 0
        self._frames_at_timeout = 0

    # --- events: planning --------------------------------------------------------

    def begin(self, first_seq: int, next_seq: int, window: int) -> None:
        """A (re-)plan after IDENTIFY: ask for ``first_seq .. next_seq - 1`` less what the archive
        holds, in windows of at most *window*.  Windows in flight must have been ended."""
        if window < 1:
            raise DeviceError(f"unit {self.serial} reports max_window {window}: it cannot stream")
        self.first_available = max(self.first_available, first_seq)
        self.plan = Plan(first_seq, next_seq, min(window, SET_COUNT_MAX))
        self.checks.clear()
        self.vouched.clear()
        self.settled.clear()
        self.waiting.clear()  # the new plan asks for whatever is not committed, these too

    def gaps(self, start: int, stop: int, ranges: list[tuple[int, int]]) -> None:
        """The archive lacks *ranges* of ``start .. stop - 1`` (answer to ReadGaps)."""
        assert self.plan is not None
        self.plan.add_gaps(stop, ranges)

    def poll(self) -> Action | None:
        """What to do next: read gaps, send a window, or Done; None: wait for the line."""
        plan = self.plan
        assert plan is not None and self._unsent is None
        if len(self.outstanding) >= self.health.depth(self.depth):
            return None
        wanted = plan.gaps_wanted()
        if wanted is not None:
            return ReadGaps(*wanted)
        window = plan.next_window(self.health.level)
        if window is None:
            return None if self.outstanding else self._done()
        if window.attempts[0]:
            self.retry_windows += 1
        self._unsent = window
        return Send(window.request())

    def _done(self) -> Done | Store:
        if self.batch:
            return self.flush()
        return Done()

    def sent(self, request_seq: int) -> None:
        """The window of the last Send went out as frame *request_seq*."""
        assert self._unsent is not None
        self.outstanding[request_seq] = self._unsent
        self._unsent = None

    # --- events: the line ------------------------------------------------------

    def received(self, responses: list[Response]) -> list[Action]:
        """Answers to windows in flight, in arrival order."""
        actions: list[Action] = []
        outstanding = self.outstanding
        for response in responses:
            window = outstanding.get(response.request_seq)
            if window is None:
                continue
            if isinstance(response, Records):
                actions += self._end_before(response.request_seq)
                good, bad = decode_rows(response.records)
                try:
                    taken = window.accept(good)
                except Contradiction as contradiction:
                    raise DeviceError(
                        f"unit {self.serial} sent two different records for seq {contradiction.seq}: it "
                        "contradicts itself, so neither is archived (records verified before are kept)"
                    ) from None
                self.rejected += len(bad) + len(good) - len(taken)
                self.accepted += len(taken)
                if self.waiting:
                    self.accepted -= sum(1 for row in taken if self.waiting.get(row[0]) == row)
            elif isinstance(response, RangeEnd):
                actions += self._end_before(response.request_seq)
                actions += self._finish(outstanding.pop(response.request_seq), response)
            elif isinstance(response, ErrorResponse):
                del outstanding[response.request_seq]
                if response.code != ErrorCode.BUSY:
                    raise refused(window.request(), response)
                # the device still runs streams this side gave up on: end them all, ask again
                actions += [*self._finish(window, None), *self.end_all(), Abort()]
                break
        return actions

    def frames_too_long(self, line: LineCounts) -> bool:
        """Whether the window now streaming has frames four times longer or more than the line's
        damage calls for, and that it lets through less than half the time: then the driver ends
        every window (:meth:`end_all`) and ABORTs (their records are asked again whole, so a window
        whose frames mostly come through is left to run)."""
        if not self.outstanding or line.frames + line.damaged < EARLY_SAMPLE:
            return False
        streaming = next(iter(self.outstanding.values())).max_payload or MAX_PAYLOAD
        too_long = (payload_for(self.health.noise_level) or MAX_PAYLOAD) * 4 <= streaming
        return too_long and self.health.survival(streaming) < FRAMES_TOO_LONG_SURVIVAL

    def largest_frame(self) -> int:
        """``max_payload`` of the largest frames the windows in flight may bring (0: full)."""
        payloads = [window.max_payload for window in self.outstanding.values()]
        return 0 if not payloads or 0 in payloads else max(payloads)

    def end_all(self) -> list[Action]:
        """End every window in flight as if its RANGE_END was lost; its answers still to come
        are ignored."""
        actions: list[Action] = []
        for seq in list(self.outstanding):
            actions.append(Forget(seq))
            actions += self._finish(self.outstanding.pop(seq), None)
        return actions

    def timed_out(self, garbled: bool, line: LineCounts) -> list[Action]:
        """No answer for the idle timeout (*garbled*: bytes came but no answer): the windows in
        flight end as if their RANGE_END was lost, smaller frames are asked, and after a second
        timeout in a row without a record (or a garbled one) ABORT comes first."""
        actions = self.end_all()
        self.timeouts += 1
        self.health.timed_out()
        if self.accepted != self._received_at_timeout:
            self.stalls = self.answered_stalls = 0
        elif self.health.noisy and line.frames != self._frames_at_timeout:
            self.answered_stalls += 1  # the device answers (stream, ABORT); its records come damaged
        else:
            self.stalls += 1
        self._received_at_timeout, self._frames_at_timeout = self.accepted, line.frames
        if self.stalls >= self.health.max_stalls or self.answered_stalls >= MAX_ANSWERED_STALLS:
            raise PullFailed(
                f"unit {self.serial} stopped sending records "
                f"({self.stalls + self.answered_stalls} timeouts in a row without one)"
            )
        if garbled or self.stalls + self.answered_stalls > 1:
            actions.append(Abort())
        return actions

    def session_started(self, line: LineCounts) -> None:
        """A new session (after ABORT and IDENTIFY): stalls are counted from here."""
        self._received_at_timeout, self._frames_at_timeout = self.accepted, line.frames

    def quiet(self) -> Store | None:
        """The line went quiet: commit what is verified."""
        return self.flush() if self.batch else None

    def leave(self) -> Store | None:
        """On the way out (done, link lost, interrupted, failed): the windows in flight end
        uncontradicted, as if their RANGE_END was lost, and every row accepted is committed with
        the rest on the strength of its CRC, whether or not a digest has vouched for it yet."""
        for window in self.outstanding.values():
            for row in window.rows:
                self.waiting.setdefault(row[0], row)
        self.outstanding.clear()
        self._unsent = None
        self.batch += sorted(self.waiting.values(), key=_seq_of)
        self.waiting.clear()
        self.checks.clear()
        self.vouched.clear()
        self.settled.clear()
        return self.flush() if self.batch else None

    def flush(self) -> Store:
        rows, self.batch = self.batch, []
        return Store(rows)

    # --- windows ending ------------------------------------------------------------

    def _end_before(self, request_seq: int) -> list[Action]:
        """The device answers in order: requests sent before *request_seq* are over (RANGE_END lost)."""
        actions: list[Action] = []
        for earlier in list(self.outstanding):
            if earlier == request_seq:
                break
            actions.append(Forget(earlier))
            actions += self._finish(self.outstanding.pop(earlier), None)
        return actions

    def _finish(self, window: Window, end: RangeEnd | None) -> list[Action]:
        """Verify what an ended window brought, or hold it for a check; ask again what is missing."""
        actions: list[Action] = []
        if end is not None:
            self.first_available = max(self.first_available, end.first_available)
            self.unvouched = 0
        else:
            self.unvouched += 1
        if window.attempts and max(window.attempts) > 0:
            self.fruitless = 0 if window.received else self.fruitless + 1
        settled = self.settled
        if end is None:
            self._hold(window.rows)  # nothing can vouch for them: ask all of it again
            spans = [(first, last, attempt) for start, stop, attempt in _spans(window.ranges, window.attempts)
                     for first, last in _runs_without(start, stop, settled)]
            actions += self._retry(spans, UNVOUCHED)
        elif len(window.received) == window.size:
            if (end.sent, end.digest) == (window.digest.count, window.digest.value):
                self.health.came_through()
                self._verified(window.rows)
                actions += self._resolve()
            else:
                actions += self._disagreed(window.ranges, window.attempts)
        else:
            self._hold(window.rows)
            self.checks.append(_Check(window.ranges, window.attempts, end.sent, end.digest))
            known: Collection[int] = {**self.waiting, **self.vouched} if settled else self.waiting
            unheld = [(first, last, attempt) for start, stop, attempt in window.missing()
                      for first, last in _runs_without(start, stop, known)]
            actions += self._retry(unheld, MISSING)
            actions += self._resolve()
        if settled:
            for start, stop in window.ranges:
                settled.difference_update(range(start, stop))
        window.rows = []
        if len(self.batch) >= self.commit_every:
            actions.append(self.flush())
        return actions

    def _hold(self, rows: list[DecodedRow]) -> None:
        """Rows no digest has vouched for yet (those already vouched for elsewhere are dropped)."""
        settled = self.settled
        for row in rows:
            if row[0] not in settled:
                self.waiting[row[0]] = row
            else:
                self.accepted -= 1

    def _settle(self, check: _Check, crcs: dict[int, int]) -> None:
        """A check vouched for its seqs: none is asked again, and a window in flight that asks for
        one of them will not commit it twice (its CRC stays at hand for that window's own check)."""
        covered = set(crcs)
        plan = self.plan
        assert plan is not None
        if any(start < check.ranges[-1][1] and check.ranges[0][0] < stop for start, stop, _ in plan.retries):
            plan.retries = deque(
                (first, last, attempt) for start, stop, attempt in plan.retries
                for first, last in _runs_without(start, stop, covered)
            )
        for window in self.outstanding.values():
            if window.lo < check.ranges[-1][1] and check.ranges[0][0] < window.hi:
                for seq, crc in crcs.items():
                    if window.lo <= seq < window.hi and window.asks(seq):
                        self.settled.add(seq)
                        self.vouched[seq] = crc

    def _verified(self, rows: list[DecodedRow]) -> None:
        """Rows a digest vouched for: to the batch, and their CRCs kept for the checks waiting."""
        waiting, checks, settled = self.waiting, self.checks, self.settled
        if settled:
            kept = [row for row in rows if row[0] not in settled]
            self.accepted -= len(rows) - len(kept)
            rows = kept
        for row in rows:
            waiting.pop(row[0], None)
        if checks:
            lo = min(check.ranges[0][0] for check in checks)
            hi = max(check.ranges[-1][1] for check in checks)
            for row in rows:
                if lo <= row[0] < hi:
                    self.vouched[row[0]] = int.from_bytes(crc_fields([row]), "little")
        self.batch += rows

    def _resolve(self) -> list[Action]:
        """Check every check whose seqs are all in hand; a check that agrees vouches for its rows."""
        actions: list[Action] = []
        progress = True
        while progress:
            progress = False
            for check in list(self.checks):
                crcs = self._crcs(check)
                if crcs is None:
                    continue
                self.checks.remove(check)
                progress = True
                digest = RangeDigest()
                digest.update_crcs(crcs.values())
                if (check.sent, check.digest) == (digest.count, digest.value):
                    self.health.came_through()
                    self._verified([self.waiting[seq] for seq in check.seqs() if seq in self.waiting])
                    self._settle(check, crcs)
                elif len(crcs) < check.size():
                    # some were evicted meanwhile: nothing can vouch for the rest but a new RANGE_END
                    actions += self._retry(self._unvouched(check.ranges, check.attempts), UNVOUCHED)
                else:
                    actions += self._disagreed(check.ranges, check.attempts)
        if not self.checks and not self.settled:
            self.vouched.clear()
        return actions

    def _crcs(self, check: _Check) -> dict[int, int] | None:
        """The CRC of every seq *check* asked for, by seq in order (those evicted since left out);
        None while one is still to come."""
        crcs: dict[int, int] = {}
        for seq in check.seqs():
            row = self.waiting.get(seq)
            if row is not None:
                crcs[seq] = int.from_bytes(crc_fields([row]), "little")
            elif seq in self.vouched:
                crcs[seq] = self.vouched[seq]
            elif seq >= self.first_available:
                return None
        return crcs


    def _disagreed(self, ranges: list[tuple[int, int]], attempts: list[int]) -> list[Action]:
        """A count and digest that contradict what arrived: drop what no other digest vouched for
        and ask for it again."""
        for start, stop in ranges:
            for seq in range(start, stop):
                self.waiting.pop(seq, None)
        return self._retry(self._unvouched(ranges, attempts), DISAGREED)

    def _unvouched(self, ranges: list[tuple[int, int]], attempts: list[int]) -> list[tuple[int, int, int]]:
        """``(start, stop, attempt)`` runs of a check's *ranges* that no digest has vouched for and
        that no window asks for already (in flight, or queued as a retry)."""
        assert self.plan is not None
        asked = {seq for start, stop, _ in self.plan.retries for seq in range(start, stop)}
        for window in self.outstanding.values():
            asked.update(seq for start, stop in window.ranges for seq in range(start, stop))
        asked.update(self.vouched)
        return [(first, last, attempt) for start, stop, attempt in _spans(ranges, attempts)
                for first, last in _runs_without(start, stop, asked)]

    def _retry(self, spans: list[tuple[int, int, int]], why: str) -> list[Action]:
        """Sort *spans* into evicted (below ``first_available``) and asked again one attempt higher
        (*why*: MISSING, DISAGREED or UNVOUCHED)."""
        actions: list[Action] = []
        plan = self.plan
        assert plan is not None
        for start, stop, attempt in spans:
            if start < self.first_available:
                gone = min(stop, self.first_available)
                actions.append(Evict(start, gone - start))
                for seq in range(start, gone):
                    self.waiting.pop(seq, None)
                start = gone
            if start >= stop:
                continue
            if why == DISAGREED and attempt >= self.max_attempts:
                raise PullFailed(
                    f"unit {self.serial}: records {start}..{stop - 1} never matched the count and digest "
                    f"of the device's RANGE_END in {self.max_attempts} tries: what arrived is not what the "
                    "device reports sending, so it is not archived (records that matched are kept)"
                )
            if why == UNVOUCHED and self.unvouched >= MAX_UNVOUCHED:
                raise PullFailed(
                    f"unit {self.serial}: records {start}..{stop - 1} still unconfirmed; {self.unvouched} "
                    "windows in a row ended without a RANGE_END to vouch for them (committed records "
                    "are kept, run the pull again to resume)"
                )
            if self.fruitless >= self.health.max_fruitless:
                raise PullFailed(
                    f"unit {self.serial}: records {start}..{stop - 1} still missing; {self.fruitless} "
                    "retries in a row brought nothing: the line is too noisy or the unit cannot read them "
                    "(committed records are kept, run the pull again to resume)"
                )
            plan.retries.append((start, stop, attempt + 1))
        return actions


def _spans(ranges: list[tuple[int, int]], attempts: list[int]) -> list[tuple[int, int, int]]:
    return [(start, stop, attempt) for (start, stop), attempt in zip(ranges, attempts, strict=True)]


def _runs_without(start: int, stop: int, taken: Collection[int]) -> list[tuple[int, int]]:
    """The runs of ``start .. stop - 1`` whose seqs are not keys of *taken*."""
    if not taken:
        return [(start, stop)]
    runs: list[tuple[int, int]] = []
    run = start
    for seq in range(start, stop):
        if seq in taken:
            if run < seq:
                runs.append((run, seq))
            run = seq + 1
    if run < stop:
        runs.append((run, stop))
    return runs
