"""An in-process line from a host to an emulated controller: no pty, no socket, no thread.

:class:`Line` holds the device end: any :class:`~firmware_sim.session.UnitPort`
served by a :class:`~firmware_sim.session.DeviceSession`, in the calling
thread.  ``Line.connect()`` hands out an :class:`InprocPort`, which has the
shape of the host's transport (``write(data)``, ``read(max_bytes, timeout)``,
``close()``): ``write`` feeds the device, ``read`` takes what the device has
to send.

Time comes from the line's clock.  With a :class:`VirtualClock` a read that
finds nothing advances it by the whole timeout, and with a ``baud`` every
byte read costs its line time, so timeouts and rates are exact and tests
never sleep.  With a :class:`WallClock` the same waits are real sleeps, so a
host reading on ``time.monotonic`` sees a line like any other.

A ``latency_s`` holds what the host writes for that long before the device
sees it (the whole round trip: USB batching, OS buffers).  Each direction can
be impaired with a seeded :class:`~firmware_sim.impairment.Impairment`, and
each connection can be cut after a given number of bytes towards the host;
the device session survives a cut (a stream it was sending stays queued, as
on a real unit whose cable was pulled), so the host must ABORT.

A port that is gone raises what an operating system would: ``BrokenPipeError``
once closed, ``ConnectionResetError`` once cut (both ``OSError``); a reader
translates them as it translates any port's errors.

:func:`publish` names a line ``turbosim://NAME`` for pyserial's
``serial_for_url`` (through :mod:`firmware_sim.protocol_turbosim`), so code
that opens ports by URL opens this one unchanged.

This module knows the protocol only through the device session, and never
imports the host.
"""

from __future__ import annotations

import errno
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol
from urllib.parse import urlsplit

import serial

from .errors import ConfigError
from .impairment import Impairment, LineFaults
from .session import DeviceSession, UnitPort

SCHEME = "turbosim"
"""The URL scheme of a published line: ``turbosim://NAME``."""
HANDLER_PACKAGE = "firmware_sim"
"""The package pyserial searches for ``protocol_turbosim`` once a line is published."""


class LineClock(Protocol):
    """Where a line's time comes from: ``now`` (also its call) in seconds, and letting time pass."""

    @property
    def now(self) -> float: ...

    def __call__(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


class VirtualClock:
    """Seconds that pass only when told to."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WallClock:
    """The machine's monotonic clock; letting time pass is sleeping."""

    @property
    def now(self) -> float:
        return time.monotonic()

    def __call__(self) -> float:
        return time.monotonic()

    def advance(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class Line:
    """The device end of an in-process line; ``connect()`` is what a host's ``pull`` takes."""

    def __init__(
        self,
        unit: UnitPort,
        *,
        clock: LineClock | None = None,
        baud: int | None = None,
        to_host: LineFaults | None = None,
        to_device: LineFaults | None = None,
        cuts: list[int] | None = None,
        latency_s: float = 0.0,
        seed: int = 0,
        at_bytes: list[tuple[int, Callable[[], None]]] | None = None,
        tick: Callable[[], object] | None = None,
    ) -> None:
        """*baud*: pace the device's output (None: as fast as it is read).  *cuts*: the bytes
        towards the host after which each successive connection is cut.  *at_bytes*: callbacks
        run once the host has received that many bytes in all.  *tick*: called on every read,
        to let the unit's simulated time move (e.g. ``Unit.tick``)."""
        self.unit = unit
        self.clock: LineClock = clock or VirtualClock()
        self.baud = baud
        self.latency_s = latency_s
        self.device = DeviceSession(unit, entropy=random.Random(seed).randbytes)
        self._in_flight: deque[tuple[float, bytes]] = deque()
        self._faults = (to_host, to_device)
        self._cuts = list(cuts or [])
        self._seed = seed
        self._tick = tick
        self.connections = 0
        self.bytes_to_host = 0
        self._at_bytes = sorted(at_bytes or [], key=lambda item: item[0])

    def connect(self) -> InprocPort:
        """A new connection to the device (the session and what it was sending carry over)."""
        to_host, to_device = self._faults
        cut = self._cuts.pop(0) if self._cuts else None
        seed = self._seed * 1000 + self.connections
        self.connections += 1
        host_faults = to_host or LineFaults()
        if cut is not None:
            host_faults = replace(host_faults, disconnect_after=cut)
        return InprocPort(
            self,
            Impairment(host_faults, seed) if to_host or cut is not None else None,
            Impairment(to_device, seed + 1) if to_device else None,
        )

    def to_device(self, data: bytes) -> None:
        if self.latency_s:
            self._in_flight.append((self.clock.now + self.latency_s, data))
        else:
            self.device.receive_data(data)

    def from_device(self, max_bytes: int, timeout: float) -> bytes:
        """What the device sends within *timeout*, letting the clock pass as the line would."""
        if self._tick is not None:
            self._tick()
        clock = self.clock
        deadline = clock.now + timeout
        while True:
            while self._in_flight and self._in_flight[0][0] <= clock.now:
                self.device.receive_data(self._in_flight.popleft()[1])
            data = self.device.data_to_send(max_bytes)
            if data:
                if self.baud:
                    clock.advance(len(data) * 10 / self.baud)
                return data
            arrival = self._in_flight[0][0] if self._in_flight else deadline
            clock.advance(max(0.0, min(arrival, deadline) - clock.now))
            if clock.now >= deadline:
                return b""

    def delivered(self, count: int) -> None:
        self.bytes_to_host += count
        while self._at_bytes and self._at_bytes[0][0] <= self.bytes_to_host:
            self._at_bytes.pop(0)[1]()


class InprocPort:
    """The host's end of one connection, in the same thread as the device."""

    def __init__(self, line: Line, to_host: Impairment | None, to_device: Impairment | None) -> None:
        self.line = line
        self._to_host = to_host
        self._to_device = to_device
        self.closed = False

    def _check(self) -> None:
        if self.closed:
            raise BrokenPipeError(errno.EPIPE, "in-process line closed")
        if self._to_host is not None and self._to_host.disconnected:
            raise ConnectionResetError(errno.ECONNRESET, "in-process line cut")

    def write(self, data: bytes) -> None:
        self._check()
        if self._to_device is not None:
            data = self._to_device.apply(data)
        self.line.to_device(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        self._check()
        line = self.line
        data = line.from_device(max_bytes, timeout)
        if not data:
            return b""
        if self._to_host is not None:
            data = self._to_host.apply(data)
        line.delivered(len(data))
        return data

    def close(self) -> None:
        self.closed = True


_PUBLISHED: dict[str, Line] = {}


def publish(line: Line, name: str) -> str:
    """Make *line* reachable as ``turbosim://NAME`` through pyserial's ``serial_for_url``; the URL."""
    if not name or "/" in name or "?" in name or name in _PUBLISHED:
        raise ConfigError(f"in-process line name {name!r} is empty, has '/' or '?', or is taken")
    if HANDLER_PACKAGE not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append(HANDLER_PACKAGE)
    _PUBLISHED[name] = line
    return f"{SCHEME}://{name}"


def withdraw(name: str) -> None:
    """Forget the line published as *name* (ports already open keep working until closed)."""
    _PUBLISHED.pop(name, None)


def published(url: str) -> Line:
    """The line behind ``turbosim://NAME``; FileNotFoundError when none is published there."""
    parts = urlsplit(url)
    line = _PUBLISHED.get(parts.netloc) if parts.scheme.lower() == SCHEME else None
    if line is None:
        raise FileNotFoundError(errno.ENOENT, f"no in-process unit published as {url}")
    return line


class InprocSerial(serial.SerialBase):  # type: ignore[misc]  # pyserial ships no type hints
    """A pyserial port over a published :class:`Line`: what ``serial_for_url("turbosim://NAME")`` opens.

    ``read`` honours the port's timeout (None: wait for *size* bytes, 0: what is
    there) on the line's clock; line settings are accepted and ignored, as on a
    pty.  Errors of the line (``OSError``) pass through unchanged.
    """

    is_open: bool
    _inproc: InprocPort

    def open(self) -> None:
        if self._port is None:
            raise serial.SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise serial.SerialException("Port is already open.")
        self._inproc = Line.connect(published(self._port))
        self.is_open = True

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._inproc.close()

    def _reconfigure_port(self) -> None:
        """Nothing to configure: the line has no UART."""

    def _update_rts_state(self) -> None:
        """No modem lines."""

    def _update_dtr_state(self) -> None:
        """No modem lines."""

    def _update_break_state(self) -> None:
        """No modem lines."""

    @property
    def in_waiting(self) -> int:
        """Always 0: what the device sends is made when read (read with timeout 0 to poll)."""
        if not self.is_open:
            raise serial.PortNotOpenError()
        return 0

    def reset_input_buffer(self) -> None:
        """Nothing is buffered host-side."""

    def reset_output_buffer(self) -> None:
        """Nothing is buffered host-side."""

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise serial.PortNotOpenError()
        port = self._inproc
        clock = port.line.clock
        timeout: float | None = self._timeout
        deadline = None if timeout is None else clock.now + timeout
        data = bytearray()
        while len(data) < size:
            left = 3600.0 if deadline is None else max(0.0, deadline - clock.now)
            data += port.read(size - len(data), left)
            if deadline is not None and clock.now >= deadline:
                break
        return bytes(data)

    def write(self, data: Any) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        chunk = bytes(data)
        self._inproc.write(chunk)
        return len(chunk)

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
