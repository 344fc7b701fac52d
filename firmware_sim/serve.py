"""The serving loop: moves bytes between a link and the device session.

One thread, one ``select``.  Each turn it hands the host's bytes to the
:class:`~firmware_sim.session.DeviceSession`, advances the unit's simulated
clock (in bounded steps for at most ``tick_budget`` of wall time: a simulation
that cannot keep up with its speed never starves the line), and takes as
many output bytes from the session as the
:class:`~firmware_sim.pacing.Pacer` allows, through the optional
:class:`~firmware_sim.impairment.Impairment` of each direction.  While the
link holds bytes it could not take yet, the ``select`` also waits for the
link to become writable, so an unpaced device keeps a pty or socket full
instead of polling it.  The wall
clock is a parameter.  No protocol logic lives here: a new peer simply gets a
fresh session, as a real controller's comms task would restart.

:meth:`Server.turn` is the whole loop for one link.  Its parts (:meth:`Server.service`,
:meth:`Server.receive`, :meth:`Server.timeout`, :attr:`Server.wants_write`) let another
driver wait on many servers' links at once (:mod:`firmware_sim.fleet_server`).
"""

from __future__ import annotations

import select
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from .impairment import Impairment
from .links import BaudChanged, Link, PeerChanged, PeerGone
from .pacing import Pacer


class ByteSession(Protocol):
    """What the loop needs of a device session."""

    def receive_data(self, data: bytes) -> None: ...

    def data_to_send(self, max_bytes: int) -> bytes: ...

    @property
    def has_output(self) -> bool: ...


UNPACED_CHUNK = 65536


class Server:
    """Serve one link until ``stop()`` returns True."""

    def __init__(
        self,
        link: Link,
        new_session: Callable[[], ByteSession],
        tick: Callable[[], bool],
        pacer: Pacer,
        *,
        impair_in: Impairment | None = None,
        impair_out: Impairment | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick_interval: float = 0.05,
        tick_budget: float = 0.02,
        baud_changed: Callable[[int], None] | None = None,
    ) -> None:
        self.link = link
        self._baud_changed = baud_changed
        self._new_session = new_session
        self.session = new_session()
        self._tick = tick
        self.pacer = pacer
        self._paced = pacer.baud is not None
        """An unpaced unit stays unpaced whatever baud a client asks for (IDENTIFY still reports it)."""
        self._impair_in = impair_in
        self._impair_out = impair_out
        self._clock = clock
        self._tick_interval = tick_interval
        self._tick_budget = tick_budget
        self._next_tick = 0.0
        self._unsent = b""
        self._delayed: deque[tuple[float, bytes]] = deque()
        self.bytes_in = 0
        self.bytes_out = 0
        self.sessions = 1
        """Sessions begun (each new peer, lost peer and cut line begins one)."""

    def run(self, stop: Callable[[], bool]) -> None:
        while not stop():
            self.turn()

    def turn(self) -> None:
        """One pass: events, input, clock, output, then wait for the next thing to do."""
        now = self._clock()
        self.service(now)
        fds = self.link.fds()
        readable, _, _ = select.select(fds, fds if self.wants_write else [], [], self.timeout(now))
        for fd in readable:
            self.receive(fd)

    def service(self, now: float) -> None:
        """Everything but waiting: the link's events, the unit's clock, the line's output."""
        self._handle_events(now)
        if now >= self._next_tick:
            self._next_tick = now + self._tick_interval
            deadline = now + self._tick_budget
            while not self._tick():  # behind: bounded steps, but the line is served every budget
                if self._clock() >= deadline:
                    self._next_tick = now
                    break
        self._produce(now)
        self._flush(now)

    def receive(self, fd: int) -> None:
        """Take what the link has on *fd* (readable) to the session."""
        data = self.link.receive(fd)
        # A new peer gets its fresh session before its first bytes: the listener's fd comes
        # first, and the accepted socket may reuse the number of the one it replaced.
        self._handle_events(self._clock())
        if data:
            self.bytes_in += len(data)
            if self._impair_in is not None:
                data = self._impair_in.apply(data)
            self.session.receive_data(data)

    @property
    def wants_write(self) -> bool:
        """Whether the link holds bytes it could not take yet (wait for it to become writable)."""
        return bool(self._unsent)

    def _handle_events(self, now: float) -> None:
        for event in self.link.take_events():
            if isinstance(event, (PeerChanged, PeerGone)):
                self._restart_session()
            elif isinstance(event, BaudChanged):
                if self._paced:
                    self.pacer.set_baud(event.baud, now)
                if self._baud_changed is not None:
                    self._baud_changed(event.baud)

    def _restart_session(self) -> None:
        self.sessions += 1
        self.session = self._new_session()
        self._unsent = b""
        self._delayed.clear()

    def _produce(self, now: float) -> None:
        if self._unsent or not self.session.has_output:
            return
        allowed = self.pacer.allowance(now)
        if allowed == 0:
            return
        chunk = self.session.data_to_send(UNPACED_CHUNK if allowed < 0 else allowed)
        self.pacer.consume(len(chunk))
        impair = self._impair_out
        if impair is not None:
            chunk = impair.apply(chunk)
            if impair.disconnected:
                self._cut_line(impair)
                return
            if impair.faults.latency_s:
                self._delayed.append((now + impair.faults.latency_s, chunk))
                return
        self._unsent = chunk

    def _cut_line(self, impair: Impairment) -> None:
        """The impairment's disconnect point: the peer loses the line once."""
        self._impair_out = Impairment(replace(impair.faults, disconnect_after=None), seed=impair.passed)
        self.link.disconnect()
        self._restart_session()

    def _flush(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now and not self._unsent:
            self._unsent = self._delayed.popleft()[1]
        if self._unsent:
            sent = self.link.send(self._unsent)
            self.bytes_out += sent
            self._unsent = self._unsent[sent:]

    def timeout(self, now: float) -> float:
        """Seconds until this server has something to do unless its link wakes it first."""
        timeout = max(0.0, self._next_tick - now)
        if self._unsent:
            return timeout  # the line taking more bytes wakes the select
        if self._delayed:
            timeout = min(timeout, max(0.0, self._delayed[0][0] - now))
        if self.session.has_output:
            timeout = min(timeout, self.pacer.wait_for(64))
        return timeout
