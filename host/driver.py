"""The blocking client: requests and answers over a :class:`~host.transport.Transport`.

:class:`Client` pairs a transport with a :class:`~host.session.ClientSession`
and gives every wait a deadline.  A request/response exchange sends the
request and waits ``timeout`` seconds for its answer, sending it again until
``tries x timeout`` seconds have passed, where ``timeout`` is the one given
(``--timeout``, the floor and first guess) or, when the link's round trip
proves longer, the RTO of the :class:`~host.rtt.RoundTrip` that every answer
to an exchange times (a cellular or satellite modem); sooner when its answer visibly came
damaged (a frame failed verification and then the line went quiet: waiting on
brings nothing), and for up to ``noisy_tries x timeout`` once this connection
has delivered good frames and damaged ones (noisy, not foreign).  Those
judgements (quiet, noisy) are the :class:`~host.line_health.LineHealth`'s it is
given, which every read keeps informed.  Then it gives up:

- the device answered ERROR                       -> DeviceError naming the code;
- it speaks another protocol version or schema    -> DeviceError saying what differs;
- bytes came but never one valid frame            -> DeviceError (wrong baud rate,
                                                     wrong port, not a controller);
- nothing answered                                -> LinkTimeout.

Streams (READ_RANGE, READ_SET) are not exchanges: :mod:`host.pull` drives them
with :meth:`Client.send` and :meth:`Client.receive`.  An exchange discards
answers to other requests, so run exchanges only while no stream is pending
(:meth:`Client.abort` ends any).

This module never touches pyserial, never sleeps and never waits without a
deadline; time comes from the ``clock`` it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from protocol.errors import UnsupportedVersion
from protocol.formats import PROTOCOL_VERSION
from protocol.messages import (
    NO_TAG,
    SCHEMA_FINGERPRINT,
    Abort,
    AbortResponse,
    AuthChallenge,
    AuthChallengeResponse,
    ClockGet,
    ClockResponse,
    ClockSet,
    ErrorResponse,
    Identify,
    IdentifyResponse,
    Live,
    LiveResponse,
    LogClear,
    LogClearResponse,
    RangeEnd,
    ReadRange,
    Records,
)
from protocol.records import scan_records

from .errors import DeviceError, HostError, LinkTimeout
from .line_health import LineHealth
from .rtt import RoundTrip
from .session import ClientSession, Request, Response, refused
from .transport import Transport

DEFAULT_TIMEOUT = 2.0
"""Seconds to wait for an answer at the least: one full frame at 9,600 baud, plus margin."""
DEFAULT_TRIES = 3
READ_SIZE = 4096

R = TypeVar("R")


class Client:
    """A session with one controller over one open transport."""

    def __init__(
        self,
        transport: Transport,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        tries: int = DEFAULT_TRIES,
        noisy_tries: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        read_size: int = READ_SIZE,
        rtt: RoundTrip | None = None,
        health: LineHealth | None = None,
    ) -> None:
        self.transport = transport
        self.session = ClientSession()
        self.timeout = timeout
        """Seconds to wait for an answer at the least, and before the round trip is measured."""
        self.health = health if health is not None else LineHealth(rtt)
        """How bad the line is (pass one to keep it across connections)."""
        self.rtt = self.health.rtt
        """The link's round trip, timed by every answer to an exchange."""
        self.tries = tries
        self.noisy_tries = max(tries, noisy_tries or tries)
        """Timeouts' worth of time an exchange gets while damaged frames keep arriving beside good
        ones: the line is alive, only noisy (a device that never sent one good frame still gets
        only *tries*)."""
        self.clock = clock
        self._read_size = read_size

    @property
    def answer_timeout(self) -> float:
        """Seconds an exchange waits for each answer: the timeout given, or the link's RTO if longer."""
        return max(self.timeout, self.rtt.rto)

    @property
    def quiet(self) -> float:
        """Silence after a damaged frame that means its answer was hit (:meth:`LineHealth.quiet`)."""
        return self.health.quiet(self.answer_timeout)

    # --- streaming primitives ------------------------------------------------

    def send(self, request: Request) -> int:
        """Write *request*; return its frame seq (pending until answered)."""
        seq, data = self.session.send(request)
        self.transport.write(data)
        return seq

    def receive(self, timeout: float) -> list[Response]:
        """One read of at most *timeout* seconds; the answers to pending requests in it."""
        responses = self.session.receive_data(self.transport.read(self._read_size, timeout))
        self.health.observe(self.session)
        return responses

    # --- exchanges -----------------------------------------------------------

    def abort(self) -> None:
        """End every stream (ours or a previous host's) and discard all until ABORT_RSP."""
        self._exchange(Abort(), AbortResponse)

    def identify(self) -> IdentifyResponse:
        """Who the device is, its log bounds and counters; refuses an incompatible device."""
        return self._compatible(self._exchange(Identify(), IdentifyResponse))

    def start(self) -> IdentifyResponse:
        """Begin a session: end every stream (ours or a previous host's) and identify the device.

        ABORT and IDENTIFY go out together, so that each try has two answers that may get
        through a noisy line (the device handles them in order: IDENTIFY_RSP comes after the
        ABORT took effect).  If the IDENTIFY_RSP came but no ABORT_RSP, ABORT is sent again on
        its own: the first may never have reached the device."""
        aborts = self.session.aborts_answered
        info = self._exchange(Identify(), IdentifyResponse, abort_first=True)
        if self.session.aborts_answered == aborts:
            self.abort()
        return self._compatible(info)

    @staticmethod
    def _compatible(info: IdentifyResponse) -> IdentifyResponse:
        if info.protocol_version != PROTOCOL_VERSION:
            raise DeviceError(
                f"unit {info.serial or '?'} speaks protocol version {info.protocol_version}; "
                f"this reader speaks version {PROTOCOL_VERSION}"
            )
        if info.schema_fingerprint != SCHEMA_FINGERPRINT:
            raise DeviceError(
                f"unit {info.serial} (firmware {info.firmware}) uses record and message formats with "
                f"schema fingerprint 0x{info.schema_fingerprint:08X}, this reader knows "
                f"0x{SCHEMA_FINGERPRINT:08X}: the formats differ, so its log cannot be read safely "
                "(update turbolog or the firmware)"
            )
        return info

    def live(self) -> LiveResponse:
        return self._exchange(Live(), LiveResponse)

    def clock_get(self) -> int:
        """Device time, Unix seconds (UTC)."""
        return self._exchange(ClockGet(), ClockResponse).device_time

    def clock_set(self, new_time: int, *, level: int = 0, tag: bytes = NO_TAG) -> int:
        """Set device time; returns the time the device reports afterwards.  Sent once, never
        repeated: a tagged request is good for one nonce only, and a repeat counts as a failure."""
        return self._exchange(ClockSet(new_time, level, tag), ClockResponse, tries=1).device_time

    def log_clear(self, *, level: int = 0, tag: bytes = NO_TAG) -> int:
        """Empty the device's log; returns its new first seq.  Sent once, never repeated."""
        return self._exchange(LogClear(level, tag), LogClearResponse, tries=1).first_seq

    def auth_challenge(self, level: int) -> bytes:
        """A fresh nonce for *level*.  Sent once: each challenge voids the one before, so a late
        answer to a repeat would hand back a nonce the device no longer holds."""
        return self._exchange(AuthChallenge(level), AuthChallengeResponse, tries=1).nonce

    def read_record(self, seq: int) -> bytes | None:
        """Record *seq* as the device's log holds it (its CRC-32C verified), or None when the log
        does not hold it.  Asked again, up to the exchange's tries, while it comes damaged or not
        at all; use with no stream pending."""
        request = ReadRange(seq, 1)
        timeout = self.answer_timeout
        tries = self.health.exchange_tries(self.tries, self.noisy_tries)
        for _ in range(tries):
            rseq = self.send(request)
            found: bytes | None = None
            deadline = self.clock() + timeout
            try:
                while (left := deadline - self.clock()) > 0:
                    for response in self.receive(left):
                        if response.request_seq != rseq:
                            continue
                        if isinstance(response, ErrorResponse):
                            raise refused(request, response)
                        if isinstance(response, Records):
                            good, _ = scan_records(response.records)
                            found = next((raw for got, _, _, raw in good if got == seq), found)
                        elif isinstance(response, RangeEnd):
                            if found is not None or response.sent == 0:
                                return found
                            deadline = 0.0  # it was sent but came damaged: ask again
            finally:
                self.session.forget(rseq)
        raise self._silence(request, tries, 0, tries * timeout, timeout)

    def _exchange(
        self, request: Request, answer: type[R], *, tries: int | None = None, abort_first: bool = False
    ) -> R:
        """Send *request* until its answer comes; see the module docstring.  With *tries* the
        request is sent that many times at most, each waiting the whole timeout (never sooner).
        With *abort_first* each try sends ABORT just before it."""
        session, clock = self.session, self.clock
        repeatable = tries is None
        started = clock()
        timeout = self.answer_timeout
        deadline = started + (tries or self.tries) * timeout
        sent: list[int] = []
        aborts: list[int] = []
        sent_at: dict[int, float] = {}
        count = hit = 0
        try:
            while True:
                errors_at_send = session.frame_errors
                if abort_first:
                    aborts.append(self.send(Abort()))
                    sent_at[aborts[-1]] = clock()
                sent.append(self.send(request))
                sent_at[sent[-1]] = latest = clock()
                count += 1
                resend_at = clock() + timeout
                while (left := min(resend_at, deadline) - clock()) > 0:
                    damaged = repeatable and session.frame_errors > errors_at_send
                    heard = session.bytes_received
                    for response in self.receive(min(left, self.quiet) if damaged else left):
                        asked = sent_at.pop(response.request_seq, None)
                        if asked is not None:
                            self._time_answer(asked, latest)
                        if response.request_seq in aborts and isinstance(response, ErrorResponse):
                            raise refused(Abort(), response)
                        if response.request_seq not in sent:
                            continue
                        if isinstance(response, ErrorResponse):
                            raise refused(request, response)
                        if isinstance(response, answer):
                            return response
                    if damaged and session.bytes_received == heard:
                        hit += 1
                        break  # its answer came damaged and nothing more is coming: ask again now
                if repeatable:
                    tries_now = self.health.exchange_tries(self.tries, self.noisy_tries)
                    deadline = max(deadline, started + tries_now * timeout)  # noisy, not foreign
                if count == tries or clock() >= deadline:
                    raise self._silence(request, count, hit, clock() - started, timeout)
        finally:
            for seq in sent + aborts:
                self.session.forget(seq)

    def _time_answer(self, asked: float, latest: float) -> None:
        """Time the link by an answer to the request sent at *asked* (its seq names the try it
        answers), the latest try having gone at *latest*.  An earlier try is timed from its own
        sending only on a line that has damaged no frame: on a damaged line a request whose last
        delimiter was lost waits for the next try to complete it, so there it counts from the
        latest try (a lower bound)."""
        since = asked if not self.health.connection_noisy else max(asked, latest)
        self.rtt.sample(self.clock() - since)

    def _silence(self, request: Request, tries: int, hit: int, elapsed: float, timeout: float) -> HostError:
        name = request.MSG_TYPE.name
        waited = f"{tries} x {timeout:.3g} s"
        if hit:
            waited = f"{elapsed:.3g} s ({tries} tries, {hit} answers damaged)"
        session = self.session
        if isinstance(session.last_error, UnsupportedVersion):
            return DeviceError(f"the device answers in another protocol version ({session.last_error})")
        if session.bytes_received and not session.frames_received:
            return DeviceError(
                f"received {session.bytes_received} bytes but not one valid turbolog frame in {waited} "
                f"(last problem: {session.last_error}): "
                "wrong baud rate or port, or not a turbolog controller?"
            )
        if session.echoes and session.echoes == session.frames_received:
            return DeviceError(
                f"the port echoes what it is sent: a loopback, or a modem in command mode? "
                f"({session.echoes} of our requests came back in {waited}, no answer)"
            )
        if not session.bytes_received:
            return LinkTimeout(
                f"no answer to {name} in {waited}: is the controller connected and powered, "
                "and is the port right?"
            )
        return LinkTimeout(
            f"no answer to {name} in {waited} ({session.frames_received} frames received, "
            f"{session.frame_errors} rejected): the line may be too noisy"
        )
