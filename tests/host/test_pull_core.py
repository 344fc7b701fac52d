"""The pull's core without a line: windows accepted, missing, evicted, vouched for, whatever the line does.

A scripted device answers each request the core sends as the protocol says (its records in seq order,
in frames of ``max_payload``, then RANGE_END with count and digest); hypothesis decides what the line
does to the answers: frames lost, sent twice, two neighbours swapped, records the device forges the
first time it sends them (a valid record of other contents), requests lost, pauses long enough for
the idle timeout while the device still sends (so it holds streams the core gave up on, and answers
BUSY to a fifth), and a log overwritten while it is pulled.  After a while the line comes good, so
every pull can finish.  Held: every record committed is the log's, each once; a finished pull has
committed or evicted every seq it planned; and a forged record is never committed, even when its
RANGE_END was lost.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from host.errors import PullFailed
from host.line_health import LineHealth
from host.pull_core import (
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
from host.session import Response
from protocol.crc import crc32c
from protocol.enums import ErrorCode
from protocol.messages import RECORDS_ROOM, ErrorResponse, RangeEnd, ReadRange, ReadSet, Records
from protocol.records import SampleRecord, encode_record
from tests.host.loopback import SNAPSHOT, make_records

LOG = 300
RAWS = make_records(LOG)
STREAMS = 4
"""Streams the device queues; one more is answered BUSY."""


def forged(seq: int) -> bytes:
    """A valid record for *seq* that is not the log's (its CRC-32C is good)."""
    raw = encode_record(SampleRecord(seq, 1_600_000_000, SNAPSHOT))
    assert raw != RAWS[seq]
    return raw


@dataclass
class Line:
    """What hypothesis makes of the line; each list is read one decision per event, then all clean."""

    lose: list[bool]
    twice: list[bool]
    swap: list[bool]
    lose_request: list[bool]
    forge: set[int]
    pause: list[bool] = field(default_factory=list)
    """The device pauses long enough for the idle timeout while it still has answers to send."""
    evict_to: int = 0
    evict_after: int = 0
    """Frames sent before the device's log is overwritten up to ``evict_to``."""
    frames_sent: int = 0
    forged_once: set[int] = field(default_factory=set)

    @staticmethod
    def pick(decisions: list[bool]) -> bool:
        return decisions.pop(0) if decisions else False


@dataclass
class Device:
    line: Line
    first_available: int = 0
    queue: deque[Response] = field(default_factory=deque)

    def request(self, seq: int, request: ReadRange | ReadSet) -> None:
        if Line.pick(self.line.lose_request):
            return
        if sum(isinstance(queued, RangeEnd) for queued in self.queue) >= STREAMS:
            self.queue.appendleft(ErrorResponse(seq, ErrorCode.BUSY, ""))  # answered at once
            return
        ranges = [(request.start_seq, request.count)] if isinstance(request, ReadRange) else request.ranges
        spans = list(ranges)
        seqs = sorted({s for start, count in spans for s in range(start, start + count) if s < LOG})
        payload = request.max_payload if 0 < request.max_payload < RECORDS_ROOM else RECORDS_ROOM
        sent: list[bytes] = []
        frame = b""
        for s in seqs:
            self.line.frames_sent += 1
            if self.line.frames_sent > self.line.evict_after:
                self.first_available = max(self.first_available, self.line.evict_to)
            if s < self.first_available:
                continue
            raw = RAWS[s]
            if s in self.line.forge and s not in self.line.forged_once:
                self.line.forged_once.add(s)
                wire = forged(s)
            else:
                wire = raw
            sent.append(raw)
            if frame and len(frame) + len(wire) > payload:
                self.queue.append(Records(seq, frame))
                frame = b""
            frame += wire
        if frame:
            self.queue.append(Records(seq, frame))
        digest = crc32c(b"".join(raw[-4:] for raw in sent)) if sent else 0
        self.queue.append(RangeEnd(seq, self.first_available, LOG, len(sent), digest))

    def deliver(self) -> list[Response]:
        """The next answer as the line delivers it: lost, twice, or swapped with the one after."""
        line = self.line
        if Line.pick(line.swap) and len(self.queue) > 1:
            first, second = self.queue.popleft(), self.queue.popleft()
            self.queue.appendleft(first)
            self.queue.appendleft(second)
        response = self.queue.popleft()
        if Line.pick(line.lose):
            return []
        return [response, response] if Line.pick(line.twice) else [response]


@dataclass
class Outcome:
    committed: dict[int, bytes] = field(default_factory=dict)
    evicted: set[int] = field(default_factory=set)
    twice: list[int] = field(default_factory=list)
    done: bool = False


def run(line: Line, *, depth: int, window: int, noisy: bool) -> Outcome:
    health = LineHealth()
    health.noisy = noisy
    core = PullCore(health, serial="T", depth=depth)
    device = Device(line)
    outcome = Outcome()
    core.begin(0, LOG, window)
    next_seq = 0

    def carry_out(action: object) -> None:
        nonlocal next_seq
        if isinstance(action, Send):
            device.request(next_seq, action.request)
            core.sent(next_seq)
            next_seq += 1
        elif isinstance(action, ReadGaps):
            wanted = [s for s in range(action.start, action.stop) if s not in outcome.committed]
            core.gaps(action.start, action.stop, [(s, s + 1) for s in wanted])
        elif isinstance(action, Store):
            for row in action.rows:
                seq = row[0]
                if seq in outcome.committed:
                    outcome.twice.append(seq)
                outcome.committed[seq] = RAWS[seq] if row_is_log(row) else b"forged"
        elif isinstance(action, Evict):
            outcome.evicted.update(range(action.start, action.start + action.count))
        elif isinstance(action, Abort):
            device.queue.clear()
        else:
            assert isinstance(action, Forget)

    for _ in range(20_000):
        action = core.poll()
        while action is not None and not isinstance(action, Done):
            carry_out(action)
            action = core.poll()
        if isinstance(action, Done):
            outcome.done = True
            return outcome
        if not device.queue or Line.pick(line.pause):
            for action in core.timed_out(False, LineCounts(next_seq, 0)):
                carry_out(action)
            continue
        for action in core.received(device.deliver()):
            carry_out(action)
    raise AssertionError("the pull neither finished nor failed")


def row_is_log(row: tuple[object, ...]) -> bool:
    """Whether a decoded row is the log's record of its seq (by its CRC-32C field)."""
    seq = row[0]
    assert isinstance(seq, int)
    crc = row[-1]
    return (crc if isinstance(crc, int) else int.from_bytes(bytes(crc)[-4:], "little")) == int.from_bytes(
        RAWS[seq][-4:], "little"
    )


decisions = st.lists(st.booleans(), max_size=120)


@st.composite
def lines(draw: st.DrawFn) -> Line:
    return Line(
        lose=draw(decisions), twice=draw(decisions), swap=draw(decisions), lose_request=draw(decisions),
        forge=set(draw(st.lists(st.integers(0, LOG - 1), max_size=6))), pause=draw(decisions),
        evict_to=draw(st.sampled_from([0, 0, 17, 120])), evict_after=draw(st.integers(0, 400)),
    )


@settings(max_examples=300, deadline=None)
@given(line=lines(), depth=st.integers(1, 4), window=st.sampled_from([7, 64, 300]), noisy=st.booleans())
def test_what_the_core_commits_is_the_log_whatever_the_line_does(
    line: Line, depth: int, window: int, noisy: bool
) -> None:
    """Figures held: no forged or duplicated record committed; a finished pull accounts for every seq
    (committed or evicted, never both), and commits every seq the device still held; a pull whose
    line has shown noise (so its limits are a noisy line's) always finishes."""
    try:
        outcome = run(line, depth=depth, window=window, noisy=noisy)
    except PullFailed:
        assert not noisy  # a clean line's limits are tight: there a burst of damage may end the pull
        return
    assert b"forged" not in outcome.committed.values()
    assert outcome.twice == []
    assert outcome.done
    assert not set(outcome.committed) & outcome.evicted
    assert set(outcome.committed) | outcome.evicted == set(range(LOG))
    assert set(range(line.evict_to, LOG)) <= set(outcome.committed)


def test_a_forged_record_whose_range_end_is_lost_is_asked_again_and_never_committed() -> None:
    """The digest of the window that brought the forgery never arrives; its retry brings the log's
    record with a RANGE_END that vouches for it."""
    line = Line(lose=[False, True], twice=[], swap=[], lose_request=[], forge={0})
    outcome = run(line, depth=1, window=LOG, noisy=False)
    assert outcome.done and outcome.committed == {seq: RAWS[seq] for seq in range(LOG)}


def test_a_range_end_with_records_missing_is_checked_once_its_retries_complete() -> None:
    """A forged record in a window some of whose records were lost: the window's own RANGE_END is
    checked once the retries have brought the rest, and the forgery is dropped and asked again."""
    line = Line(lose=[False, True], twice=[], swap=[], lose_request=[], forge={0})
    outcome = run(line, depth=1, window=LOG, noisy=False)
    assert outcome.done and outcome.committed == {seq: RAWS[seq] for seq in range(LOG)}
