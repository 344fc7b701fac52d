"""One thread serving many units: a selector over every link, a timetable of every server.

Each unit keeps its own :class:`~firmware_sim.serve.Server` (its link, device
session, pacer, impairments, clock ticks): this module only decides when each
one runs.  One ``selectors`` selector waits on every link's file descriptors
(the write side only of a link holding bytes it could not take), and a heap
holds each server's next deadline (its next tick, or when its pacer allows
the next bytes).  A turn services the servers whose descriptors woke or whose
deadline came, and no others, so a thousand idle units cost a few wake-ups a
second each, not a scan of all of them per byte.

Registrations follow each link's descriptors: a new client, a client gone
(whose number the next client may reuse) or a change of the write interest
re-registers that server's descriptors.  The wall clock is a parameter.  No
protocol logic and no unit logic live here.
"""

from __future__ import annotations

import heapq
import selectors
import time
from collections.abc import Callable, Sequence

from .serve import Server


class FleetServer:
    """Serve every server of *servers* from this thread until ``stop()`` returns True."""

    def __init__(self, servers: Sequence[Server], *, clock: Callable[[], float] = time.monotonic) -> None:
        self.servers = list(servers)
        self._clock = clock
        self._selector = selectors.DefaultSelector()
        self._registered: list[tuple[int, tuple[int, ...], bool]] = [(-1, (), False)] * len(self.servers)
        """Per server: (its sessions, its fds, write wanted) when last registered."""
        self._due: list[float | None] = [0.0] * len(self.servers)
        """Per server: its deadline in the timetable (None: none, it was just due)."""
        self._timetable: list[tuple[float, int]] = [(0.0, index) for index in range(len(self.servers))]
        self.turns = 0

    def run(self, stop: Callable[[], bool]) -> None:
        try:
            while not stop():
                self.turn()
        finally:
            self._selector.close()

    def turn(self) -> None:
        """Wait for a link or a deadline, then service the servers concerned."""
        self.turns += 1
        timeout = None
        if self._timetable:
            timeout = max(0.0, self._timetable[0][0] - self._clock())
        woken: set[int] = set()
        for key, mask in self._selector.select(timeout):
            index: int = key.data
            if mask & selectors.EVENT_READ:
                self.servers[index].receive(key.fd)
            woken.add(index)
        now = self._clock()
        while self._timetable and self._timetable[0][0] <= now:
            due, index = heapq.heappop(self._timetable)
            if due == self._due[index]:
                self._due[index] = None
                woken.add(index)
        for index in woken:
            self._service(index, now)

    def _service(self, index: int, now: float) -> None:
        server = self.servers[index]
        server.service(now)
        due = now + server.timeout(now)
        if due != self._due[index]:
            self._due[index] = due
            heapq.heappush(self._timetable, (due, index))
        self._register(index, server)

    def _register(self, index: int, server: Server) -> None:
        fds = tuple(server.link.fds())
        wanted = (server.sessions, fds, server.wants_write)
        registered = self._registered[index]
        if wanted == registered:
            return
        for fd in registered[1]:
            self._unregister(fd, index)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if server.wants_write else 0)
        for fd in fds:
            self._unregister(fd, None)  # the number may be left from another server's closed socket
            self._selector.register(fd, events, index)
        self._registered[index] = wanted

    def _unregister(self, fd: int, owner: int | None) -> None:
        """Forget *fd* if *owner* (None: anyone) still holds it in the selector."""
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            return
        if owner is None or key.data == owner:
            self._selector.unregister(fd)
