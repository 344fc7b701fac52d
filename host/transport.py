"""Byte links to a controller: the :class:`Transport` seam and its pyserial implementation.

A transport moves bytes and nothing else: ``write(data)``, ``read(max_bytes,
timeout)`` (``b""`` when nothing arrived in time, never blocking past the
timeout) and ``close()``.  The protocol lives above it (:mod:`host.session`,
:mod:`host.driver`), so tests can put an in-process device behind the same
seam.

:func:`open_port` opens anything pyserial opens: device paths (``/dev/ttyUSB0``,
``COM3``, a pty or socat link) and URLs (``socket://``, ``rfc2217://``,
``spy://``, ``loop://``, and ``turbosim://`` for an emulated unit in this
process).  A plain ``socket://HOST:PORT`` is a :class:`SocketTransport`, a TCP socket of our
own: pyserial's sleeps 0.3 s on every close, which a poll of many units would pay per unit.
A link's exceptions (pyserial's ``SerialException``, plain
``OSError`` such as ``BrokenPipeError`` or ``ConnectionResetError``, EIO on a
vanished pty, ``termios`` errors) are translated here, in :func:`link_error`
and nowhere else, into :class:`~host.errors.LinkError` with a one-line message
a user can act on: :class:`SerialTransport` does it for a pyserial port, and
:class:`Guarded` for any other transport (one that raises ``OSError``, as the
emulator's in-process line does).

This is the only module of ``host`` that imports pyserial; it knows nothing of
frames or messages.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol

import serial

from .errors import HostError, LinkError, LinkTimeout, UsageError

if os.name == "posix":
    import termios

    _PORT_ERRORS: tuple[type[BaseException], ...] = (serial.SerialException, OSError, termios.error)
else:
    _PORT_ERRORS = (serial.SerialException, OSError)

_MISSING = {errno.ENOENT, errno.ENODEV, errno.ENXIO}
_BUSY = {errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK}
_DENIED = {errno.EACCES, errno.EPERM}
_REFUSED = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}


class Transport(Protocol):
    """What the driver needs of a link: bytes out, bytes in with a timeout."""

    def write(self, data: bytes) -> None:
        """Send all of *data* (raises LinkError when the link is gone; OSError before :class:`Guarded`)."""
        ...

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Up to *max_bytes* received bytes; ``b""`` if none came within *timeout* seconds."""
        ...

    def close(self) -> None:
        """Release the link; closing twice is harmless."""
        ...


def _errno_of(exc: BaseException) -> int | None:
    """The first errno in the exception chain (pyserial often wraps the OSError)."""
    seen: BaseException | None = exc
    while seen is not None:
        number = getattr(seen, "errno", None)
        if isinstance(number, int):
            return number
        seen = seen.__cause__ or seen.__context__
    return None


def holders(port: str, *, proc: str = "/proc", locks: str = "/var/lock") -> list[tuple[int, str]]:
    """The processes (pid, name) that hold *port* open, where the OS can tell: on Linux the open
    files under *proc*, and a UUCP lock file ``LCK..NAME`` in *locks* (as minicom and picocom
    leave); none where neither says (another OS, or another user's processes).  Not this one."""
    try:
        device = os.path.realpath(port)
    except (OSError, ValueError):
        return []
    found: dict[int, str] = {}
    with contextlib.suppress(OSError):
        pids = [int(entry) for entry in os.listdir(proc) if entry.isdigit()]
        for pid in pids:
            if pid == os.getpid():
                continue
            fds = os.path.join(proc, str(pid), "fd")
            with contextlib.suppress(OSError):
                if any(_points_to(os.path.join(fds, fd), device) for fd in os.listdir(fds)):
                    found[pid] = _process_name(proc, pid)
    with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
        with open(os.path.join(locks, f"LCK..{os.path.basename(device)}"), "rb") as lock:
            raw = lock.read(64)
        pid = int(raw.strip() or b"0") if raw.strip().isdigit() else int.from_bytes(raw[:4], "little")
        if pid > 0 and pid != os.getpid() and os.path.isdir(os.path.join(proc, str(pid))):
            found.setdefault(pid, _process_name(proc, pid))
    return sorted(found.items())


def _points_to(link: str, device: str) -> bool:
    try:
        return os.readlink(link) == device
    except OSError:
        return False


def _process_name(proc: str, pid: int) -> str:
    try:
        with open(os.path.join(proc, str(pid), "comm"), encoding="utf-8", errors="replace") as comm:
            return comm.read().strip() or "?"
    except OSError:
        return "?"


def link_error(port: str, exc: BaseException, *, opening: bool = False) -> LinkError:
    """The :class:`LinkError` a user reads for a link's *exc*: the one translation of link errors.

    *opening*: *exc* came while opening *port* (missing, busy, denied, refused).
    """
    if isinstance(exc, serial.SerialTimeoutException):
        return LinkTimeout(f"port {port} did not accept data in time (flow control stuck?)")
    if not opening:
        return LinkError(f"port {port} disconnected ({exc})")
    number = _errno_of(exc)
    if number in _MISSING:
        return LinkError(f"port {port} does not exist")
    if number in _BUSY:
        held = ", ".join(f"{name} (pid {pid})" for pid, name in holders(port))
        by = f"held by {held}" if held else "another program has it open"
        return LinkError(f"port {port} is busy: {by}")
    if number in _DENIED:
        return LinkError(f"no permission to open port {port} (is your user in the dialout group?)")
    if number in _REFUSED:
        return LinkError(f"cannot connect to {port}: nothing answers there ({os.strerror(number)})")
    return LinkError(f"cannot open port {port}: {exc}")


@contextlib.contextmanager
def link_errors(port: str) -> Iterator[None]:
    """Raise a link's errors (pyserial's, ``OSError``, ``termios``) as :func:`link_error` names them;
    a HostError passes unchanged."""
    try:
        yield
    except HostError:
        raise
    except _PORT_ERRORS as exc:
        raise link_error(port, exc) from exc


class Guarded:
    """Any :class:`Transport` whose ``OSError`` becomes :class:`LinkError` (as a pyserial port's does)."""

    def __init__(self, inner: Transport, name: str) -> None:
        self.inner = inner
        self.name = name

    def write(self, data: bytes) -> None:
        with link_errors(self.name):
            self.inner.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        with link_errors(self.name):
            return self.inner.read(max_bytes, timeout)

    def close(self) -> None:
        with contextlib.suppress(*_PORT_ERRORS):  # a vanished link has nothing left to release
            self.inner.close()


RFC2217_READ_SLICE_S = 0.02
"""pyserial's RFC 2217 client takes no write timeout and renegotiates the line on every timeout
change, so its reads use one fixed short timeout instead."""


class SerialTransport:
    """A :class:`Transport` over an open pyserial port (device path or URL)."""

    def __init__(self, port: serial.SerialBase, name: str, *, fixed_timeout: bool = False) -> None:
        self._port = port
        self.name = name
        self._timeout: float | None = port.timeout
        self._fixed_timeout = fixed_timeout
        """Never change the port's timeout (RFC 2217 renegotiates every line setting on each change)."""
        self._fd = _selectable_fd(port)
        """The port's file descriptor when reads can wait on it with select: then the port's own
        timeout stays 0 (pyserial reconfigures the tty, two tcsetattr calls, on every change)."""
        if self._fd is not None:
            self._set_timeout(0)

    def write(self, data: bytes) -> None:
        with link_errors(self.name):
            self._port.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        """Wait up to *timeout* for a first byte, then take whatever else is already there."""
        with link_errors(self.name):
            return self._read(max_bytes, timeout)

    def _read(self, max_bytes: int, timeout: float) -> bytes:
        if self._fd is not None:
            if not select.select([self._fd], [], [], max(timeout, 0))[0]:
                return b""
            return bytes(self._port.read(max_bytes))  # timeout 0: what is there, at least a byte
        if self._fixed_timeout:
            return self._read_at_fixed_timeout(max_bytes, timeout)
        self._set_timeout(timeout)
        first = self._port.read(1)
        if not first or max_bytes <= 1:
            return bytes(first)
        self._set_timeout(0)
        return bytes(first + self._port.read(max_bytes - 1))

    def _read_at_fixed_timeout(self, max_bytes: int, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        first = self._port.read(1)
        while not first and time.monotonic() < deadline:
            first = self._port.read(1)
        if not first or max_bytes <= 1:
            return bytes(first)
        return bytes(first + self._port.read(min(self._port.in_waiting, max_bytes - 1)))

    def _set_timeout(self, timeout: float) -> None:
        if timeout != self._timeout:
            self._port.timeout = timeout
            self._timeout = timeout

    def close(self) -> None:
        with contextlib.suppress(*_PORT_ERRORS):  # a vanished link has nothing left to release
            self._port.close()

    def __enter__(self) -> SerialTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _selectable_fd(port: serial.SerialBase) -> int | None:
    """The file descriptor of a local POSIX serial port (a tty, a pty; a ``spy://`` on one),
    which select can wait on; None for anything else (sockets, RFC 2217, Windows)."""
    posix = getattr(serial, "serialposix", None)
    if posix is None or not isinstance(port, posix.Serial):
        return None
    fd = getattr(port, "fd", None)
    return fd if isinstance(fd, int) else None


CONNECT_TIMEOUT_S = 5.0
"""How long a ``socket://`` connection may take to be set up (pyserial's own bound)."""


class SocketTransport:
    """A :class:`Transport` over a TCP connection (``socket://HOST:PORT``): raw bytes both ways,
    as pyserial's ``socket://`` carries them, but closed at once (shut down, then closed)."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self._socket: socket.socket | None = sock
        self.name = name

    @classmethod
    def connect(cls, url: str, host: str, port: int, *, write_timeout: float) -> SocketTransport:
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            raise link_error(url, exc, opening=True) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(write_timeout)
        return cls(sock, url)

    def _open(self) -> socket.socket:
        if self._socket is None:
            raise LinkError(f"port {self.name} is closed")
        return self._socket

    def write(self, data: bytes) -> None:
        sock = self._open()
        try:
            sock.sendall(data)
        except TimeoutError as exc:
            raise LinkTimeout(
                f"port {self.name} did not accept data in time (the peer stopped reading?)"
            ) from exc
        except OSError as exc:
            raise link_error(self.name, exc) from exc

    def read(self, max_bytes: int, timeout: float) -> bytes:
        sock = self._open()
        try:
            if not select.select([sock], [], [], max(timeout, 0))[0]:
                return b""
            data = sock.recv(max_bytes)
        except OSError as exc:
            raise link_error(self.name, exc) from exc
        if not data:
            raise LinkError(f"port {self.name} disconnected (the peer closed the connection)")
        return data

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is None:
            return
        with contextlib.suppress(OSError):  # a peer already gone has nothing left to shut down
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def __enter__(self) -> SocketTransport:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _plain_socket_url(port: str) -> tuple[str, int] | None:
    """(host, port) of a ``socket://HOST:PORT`` URL without options; None for anything else."""
    if not port.lower().startswith("socket://"):
        return None
    host, colon, number = port[len("socket://"):].rpartition(":")
    if not colon or not number.isdigit() or not host or "?" in port or "/" in host:
        return None
    return host.strip("[]"), int(number)


def open_port(
    port: str, baud: int = 115200, *, write_timeout: float = 2.0
) -> SerialTransport | SocketTransport:
    """Open a device path or pyserial URL at *baud*, 8N1, exclusively where the platform can.

    Raises :class:`~host.errors.LinkError` when the port is missing, busy,
    refused or unusable, and :class:`~host.errors.UsageError` for a URL scheme
    or baud rate pyserial does not accept.
    """
    if baud <= 0:
        raise UsageError(f"cannot open {port}: baud rate must be positive, not {baud}")
    plain_socket = _plain_socket_url(port)
    if plain_socket is not None:
        return SocketTransport.connect(port, *plain_socket, write_timeout=write_timeout)
    rfc2217 = port.lower().startswith("rfc2217://")
    options: dict[str, object] = {"timeout": RFC2217_READ_SLICE_S} if rfc2217 else {
        "timeout": 0, "write_timeout": write_timeout, "exclusive": True if os.name == "posix" else None,
    }
    try:
        handle = serial.serial_for_url(port, baudrate=baud, **options)
    except ValueError as exc:
        raise UsageError(f"cannot open {port}: {exc}") from exc
    except _PORT_ERRORS as exc:
        raise link_error(port, exc, opening=True) from exc
    return SerialTransport(handle, port, fixed_timeout=rfc2217)
