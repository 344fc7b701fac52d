"""How bad the line is: every noisy-line judgement of a session and a pull, in one place.

:class:`LineHealth` watches the counters of each connection's
:class:`~host.session.ClientSession` (good frames, damaged frames, bytes) and
the link's :class:`~host.rtt.RoundTrip`, and answers:

- ``noisy``: a connection of this pull delivered damaged frames beside good
  ones (noisy, not dead); ``connection_noisy``: the current one did (an
  exchange then gets ``noisy_tries``, not ``tries``: noisy, not foreign);
- ``quiet``: silence after a damaged frame that means its answer was hit;
- ``level``: the retry level the line calls for now, from the damage of the
  recent frames (it falls again when a burst of noise is over) and from idle
  timeouts (each raises it by one until a window comes through whole);
- ``idle_timeout``: silence after which a stream's requests are presumed lost,
  fitted to the round trip; on a noisy line, where timeouts are frequent, its
  floor halves with each timeout that proves right (no answer came after it)
  down to the quiet interval, and doubles back with each that proves false;
- the limits that tell a dead line from a noisy one (stalls, fruitless retries)
  and the requests kept outstanding.

What a level means on the wire: ``max_payload`` :func:`payload_for` (the
device's full frames at 0, halving to one record per frame).  Pure: counters
and samples in, judgements out; no clock, no I/O.
"""

from __future__ import annotations

from math import exp, log, sqrt

from protocol.formats import MAX_PAYLOAD
from protocol.framing import MAX_STUFFED, MIN_FRAME
from protocol.messages import RECORDS_PREFIX

from .rtt import RoundTrip
from .session import ClientSession

MAX_LEVEL = 8
"""The retry level at which frames, retry windows and READ_SETs stop shrinking."""
QUIET_S = 0.1
"""Silence that means a damaged answer is all that came (longer on a link whose round trip varies
more; at most a quarter of the answer timeout)."""
IDLE_FLOOR_S = 0.5
"""The least idle timeout on a line that has damaged nothing: a device's pauses (a loaded machine, a
USB adapter's batching) are never taken for a lost request."""
IDLE_FRAMES = 4
"""Frames of the size streaming that an idle timeout allows beyond the round trip."""
MEMORY_FRAMES = 256
"""Frames over which the line's damage is judged: older ones count less, by e^(-age/256)."""
RECORDS_FRAME_BYTES = int(MIN_FRAME) + RECORDS_PREFIX + 3
"""What a RECORDS frame adds to its records on the line: header, CRC, request_seq, stuffing and
delimiters."""
MAX_STUFFED_BYTES = int(MAX_STUFFED)
"""The longest frame on the line."""
DEPTH_NOISY = 4
"""Requests kept outstanding on a noisy line (the device queues at most four streams)."""
MAX_STALLS = 3
"""Idle timeouts in a row without a single new record before a pull fails."""
MAX_NOISY_STALLS = 30
"""The same, on a line that delivers damaged frames beside good ones (noisy, not dead)."""
MAX_ANSWERED_STALLS = 120
"""The same on a noisy line, for timeouts during which the device did answer (an ABORT_RSP, a
RANGE_END) but no record came through: the last straggler of a log gets through about one try in
ten at 2 % damaged bytes, so 30 such tries in a row still happen a few times in a hundred pulls,
120 about three times in a million."""
MAX_FRUITLESS = 40
"""Retry windows in a row that bring not one record before a pull fails (the line is dead)."""
MAX_NOISY_FRUITLESS = 400
"""The same, on a line that damages frames: there a window of one straggler brings nothing
nine times in ten at 2 % damaged bytes."""


def payload_for(level: int) -> int:
    """``max_payload`` asked at retry *level*: the device's full frames first, then halving
    down to one record per frame, so that on a noisy line a hit costs fewer records."""
    return 0 if level <= 0 else max(1, MAX_PAYLOAD >> min(level, MAX_LEVEL))


def frame_bytes(payload: int) -> int:
    """The most a RECORDS frame of *payload* record bytes (0: full) takes on the line."""
    if payload <= 0 or payload >= MAX_PAYLOAD:
        return MAX_STUFFED_BYTES
    return min(MAX_STUFFED_BYTES, payload + RECORDS_FRAME_BYTES + payload // 254 + 1)


class LineHealth:
    """The judgements above for one pull (or one command's session), kept across reconnects."""

    def __init__(self, rtt: RoundTrip | None = None, *, max_level: int = MAX_LEVEL) -> None:
        self.rtt = rtt if rtt is not None else RoundTrip()
        self.max_level = max_level
        self.noisy = False
        """A connection of this pull has delivered damaged frames beside good ones."""
        self.connection_noisy = False
        self._session: ClientSession | None = None
        self._seen = (0, 0, 0)
        self._good = self._damaged = self._bytes = 0.0
        self._timeout_level = 0
        self.idle_floor = IDLE_FLOOR_S
        """The least idle timeout on a noisy line: halved by each timeout that proves right, doubled
        (up to IDLE_FLOOR_S) by each that proves false; never below QUIET_S."""

    # --- events ----------------------------------------------------------------

    def observe(self, session: ClientSession) -> None:
        """Take in what *session* (the current connection's) has received since last observed."""
        if session is not self._session:
            self._session, self._seen = session, (0, 0, 0)
            self.connection_noisy = False
        now = (session.frames_received, session.damaged_frames, session.bytes_received)
        good, damaged, received = (a - b for a, b in zip(now, self._seen, strict=True))
        self._seen = now
        if not (good or damaged):
            return
        fade = exp(-(good + damaged) / MEMORY_FRAMES)
        self._good = self._good * fade + good
        self._damaged = self._damaged * fade + damaged
        self._bytes = self._bytes * fade + received
        if damaged:
            self.noisy = self.connection_noisy = True

    def timed_out(self) -> None:
        """An idle timeout: what was asked did not come through, so ask for smaller frames."""
        self._timeout_level = min(self.level + 1, self.max_level)

    def timeout_proved(self, *, false: bool) -> None:
        """Whether the last idle timeout was false (answers to the requests it gave up on came after
        it: the device had only paused) or right (they never came)."""
        if false:
            self.idle_floor = min(IDLE_FLOOR_S, self.idle_floor * 2)
        else:
            self.idle_floor = max(QUIET_S, self.idle_floor / 2)

    def came_through(self) -> None:
        """A window came through whole (its RANGE_END and every record): one timeout forgiven."""
        self._timeout_level = max(0, self._timeout_level - 1)

    # --- judgements ------------------------------------------------------------

    @property
    def noise_level(self) -> int:
        """The retry level the damage of the recent frames calls for.

        A frame of n bytes comes through whole with about e^(-p n) on a line that damages a byte
        with probability p (``per_byte``: from the share of recent frames that came damaged and
        their mean length, one good frame more assumed, so that a single hit is not taken for a
        dead line).  The payload that carries the most record bytes through such a line is about
        sqrt(overhead / p): the level is the first whose ``max_payload`` is no more than that
        (within a factor of sqrt 2).  A line that damaged nothing lately keeps full frames."""
        per_byte = self.per_byte
        if not per_byte:
            return 0
        best = sqrt(RECORDS_FRAME_BYTES / per_byte) * sqrt(2)
        level = 0
        while level < self.max_level and (payload_for(level) or MAX_PAYLOAD) > best:
            level += 1
        return level

    @property
    def per_byte(self) -> float:
        """The chance the line damages a byte, judged by the recent frames (0: none damaged)."""
        if self._damaged < 0.5:
            return 0.0
        frames = self._damaged + self._good + 1
        return -log(1 - self._damaged / frames) * frames / max(self._bytes, 1.0)

    def survival(self, payload: int) -> float:
        """The share of RECORDS frames of *payload* record bytes (0: full) that come through whole."""
        return exp(-self.per_byte * frame_bytes(payload))

    @property
    def level(self) -> int:
        """The retry level fresh requests are asked at: the noise's, or the timeouts', if higher."""
        return max(self.noise_level, self._timeout_level)

    def quiet(self, answer_timeout: float) -> float:
        """Silence after a damaged frame that means its answer was hit: QUIET_S, or the round trip's
        variation if larger, at most a quarter of *answer_timeout*."""
        return min(max(QUIET_S, self.rtt.rttvar), answer_timeout / 4)

    def idle_timeout(self, baud: int, payload: int = 0) -> float:
        """Silence after which a stream's requests are presumed lost: the round trip's RTO, at least
        IDLE_FLOOR_S (once the line has proved noisy, ``idle_floor``: there timeouts are frequent
        and their waits add up), plus IDLE_FRAMES frames of *payload* record bytes (0: full
        frames) at *baud*."""
        floor = self.idle_floor if self.noisy else IDLE_FLOOR_S
        return max(floor, self.rtt.rto) + IDLE_FRAMES * frame_bytes(payload) * 10 / max(baud, 1)

    def exchange_tries(self, tries: int, noisy_tries: int) -> int:
        """Timeouts' worth of time an exchange gets: more on a connection that is noisy, not foreign."""
        return max(tries, noisy_tries) if self.connection_noisy else tries

    def depth(self, depth: int) -> int:
        """Requests to keep outstanding: more on a noisy line, where requests get lost too."""
        return DEPTH_NOISY if self.noisy else depth

    @property
    def max_stalls(self) -> int:
        return MAX_NOISY_STALLS if self.noisy else MAX_STALLS

    @property
    def max_fruitless(self) -> int:
        return MAX_NOISY_FRUITLESS if self.noisy else MAX_FRUITLESS
