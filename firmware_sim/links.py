"""The emulator's ends of a line: a new pty, a serial device, TCP, RFC 2217.

Each link gives the serving loop the same small surface: file descriptors to
wait on, ``receive(fd)`` for the bytes a host sent, ``send(data)`` that takes
what the line accepts without blocking, and ``take_events()`` for what
happened to the peer (a new TCP client, a baud change asked over RFC 2217).
This module is the only place in ``firmware_sim`` with file descriptors and
sockets; it knows nothing of the protocol.  TCP and RFC 2217 listeners bind
to loopback unless an address is given.  :class:`DialInLink` puts a dial-in
line (busy, no answer, a handshake, a dropped call:
:mod:`firmware_sim.dialin`) in front of either.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import termios
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import serial

from .dialin import Answer, CallFate, Exchange
from .errors import LinkSetupError
from .rfc2217 import MAX_REPLIES, ComPortServer


@dataclass(frozen=True)
class PeerChanged:
    """A new host connected (the old one, if any, is gone)."""


@dataclass(frozen=True)
class PeerGone:
    """The host disconnected."""


@dataclass(frozen=True)
class BaudChanged:
    baud: int


LinkEvent = PeerChanged | PeerGone | BaudChanged


class Link:
    """Base: no fds, nothing to read, everything written is dropped."""

    url: str = ""
    exposed: bool = False
    """Whether hosts on other machines can reach the link (a listener on a non-loopback address)."""

    def __init__(self) -> None:
        self._events: list[LinkEvent] = []

    def fds(self) -> list[int]:
        return []

    def receive(self, fd: int) -> bytes:
        return b""

    def send(self, data: bytes) -> int:
        return len(data)

    def take_events(self) -> list[LinkEvent]:
        events, self._events = self._events, []
        return events

    def disconnect(self) -> None:
        """Drop the current peer, where the kind of link allows it."""

    def close(self) -> None:
        """Release everything the link holds."""


class PtyLink(Link):
    """A new pseudo-terminal in raw mode, its slave reachable at a stable symlink.

    The emulator keeps its own handle on the slave open, so a host closing and
    reopening the port never leaves the master in the EIO state; output the
    host missed while away is flushed when it reopens (pyserial flushes input
    on open, as a real port would have lost it).
    """

    def __init__(self, link_path: str) -> None:
        super().__init__()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        attrs = termios.tcgetattr(self._slave)
        attrs[3] &= ~termios.ECHO
        termios.tcsetattr(self._slave, termios.TCSANOW, attrs)
        os.set_blocking(self.master, False)
        self.slave_name = os.ttyname(self._slave)
        self.link_path = Path(link_path)
        try:
            if self.link_path.is_symlink() or self.link_path.exists():
                if not self.link_path.is_symlink():
                    raise LinkSetupError(f"{link_path} exists and is not a symlink; not replacing it")
                _refuse_a_live_pty(self.link_path)
                self.link_path.unlink()
            self.link_path.symlink_to(self.slave_name)
        except (OSError, LinkSetupError) as exc:
            self._release()
            if isinstance(exc, LinkSetupError):
                raise
            raise LinkSetupError(f"cannot create symlink {link_path}: {exc.strerror}") from exc
        self.url = str(self.link_path)

    def fds(self) -> list[int]:
        return [self.master]

    def receive(self, fd: int) -> bytes:
        try:
            return os.read(self.master, 65536)
        except BlockingIOError:
            return b""
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise

    def send(self, data: bytes) -> int:
        try:
            return os.write(self.master, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno == errno.EIO:
                return 0
            raise

    def close(self) -> None:
        if self.link_path.is_symlink() and os.readlink(self.link_path) == self.slave_name:
            self.link_path.unlink()
        self._release()

    def _release(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


_PTY_MASTERS = ("/dev/ptmx", "/dev/pts/ptmx")


def _refuse_a_live_pty(link: Path) -> None:
    """LinkSetupError naming the process that serves the pty *link* points to, if one does.

    A link is dead (free to replace) when its target is gone (a unit that died leaves a
    dangling link: the pty vanishes with its last master) or when no other process holds
    the pty, master or slave (Linux: /proc).  Without /proc, a link to an existing device
    counts as live.
    """
    target = os.path.realpath(link)
    if not os.path.exists(target):
        return
    if not os.path.isdir("/proc/self/fd"):
        raise LinkSetupError(f"{link} points to {target}, which exists: remove the link if nothing serves it")
    holders = _pty_holders(target)
    if holders:
        pid = holders[0]
        raise LinkSetupError(
            f"{link} is served by process {pid} ({_command_of(pid)}) on {target}: "
            "stop that process or choose another path"
        )


def _pty_holders(slave: str) -> list[int]:
    """Other processes holding the pty *slave* open, those holding its master first."""
    index = f"tty-index:\t{slave.rsplit('/', 1)[-1]}\n"
    masters: list[int] = []
    slaves: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            fds = list(os.scandir(f"/proc/{pid}/fd"))
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                target = os.readlink(fd.path)
                if target == slave:
                    slaves.append(pid)
                elif target in _PTY_MASTERS and index in Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text():
                    masters.append(pid)
            except OSError:
                continue
    return list(dict.fromkeys(masters + slaves))


def _command_of(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(word.decode(errors="replace") for word in words if word)
    return text if len(text) <= 80 else text[:77] + "..."


class SerialDeviceLink(Link):
    """An existing serial device: a USB-serial adapter or one end of a socat pair."""

    def __init__(self, port: str, baud: int) -> None:
        super().__init__()
        try:
            self._port = serial.serial_for_url(port, baudrate=baud, timeout=0, write_timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise LinkSetupError(f"cannot open {port}: {exc}") from exc
        self.url = port

    def fds(self) -> list[int]:
        return [self._port.fileno()]

    def receive(self, fd: int) -> bytes:
        data: bytes = self._port.read(65536)
        return data

    def send(self, data: bytes) -> int:
        try:
            written = self._port.write(data)
        except serial.SerialTimeoutException:
            return 0
        return int(written or 0)

    def close(self) -> None:
        self._port.close()


def parse_address(text: str) -> tuple[str, int]:
    """``"PORT"`` or ``"HOST:PORT"``; the host defaults to loopback."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", text
    try:
        number = int(port)
    except ValueError:
        raise LinkSetupError(f"bad address {text!r}: expected HOST:PORT") from None
    if not 0 <= number <= 65535:
        raise LinkSetupError(f"bad port {number} in {text!r}")
    return host or "127.0.0.1", number


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class TcpLink(Link):
    """A TCP listener serving one host at a time; a new client replaces the old."""

    scheme = "socket"

    def __init__(self, address: str) -> None:
        super().__init__()
        host, port = parse_address(address)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind((host, port))
        except OSError as exc:
            self._listener.close()
            raise LinkSetupError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._listener.listen(8)  # a host reconnecting at once must not wait for a SYN retry
        self._listener.setblocking(False)
        self.host, self.port = self._listener.getsockname()[:2]
        self.exposed = not is_loopback(host)
        self._client: socket.socket | None = None
        shown = f"[{self.host}]" if family == socket.AF_INET6 else self.host
        self.url = f"{self.scheme}://{shown}:{self.port}"

    def fds(self) -> list[int]:
        fds = [self._listener.fileno()]
        if self._client is not None:
            fds.append(self._client.fileno())
        return fds

    def receive(self, fd: int) -> bytes:
        if fd == self._listener.fileno():
            self._accept()
            return b""
        if self._client is None:
            return b""
        try:
            data = self._client.recv(65536)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self._drop_client()
            return b""
        return self._from_client(data)

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        if self._client is not None:
            self._drop_client()
        client.setblocking(False)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client = client
        self._events.append(PeerChanged())
        self._on_connect()

    def _on_connect(self) -> None:
        """Hook for protocols spoken over the raw socket (RFC 2217)."""

    def _from_client(self, data: bytes) -> bytes:
        return data

    def disconnect(self) -> None:
        self._drop_client()

    def _drop_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._events.append(PeerGone())

    def _raw_send(self, data: bytes) -> int:
        if self._client is None:
            return len(data)
        try:
            return self._client.send(data)
        except BlockingIOError:
            return 0
        except OSError:
            self._drop_client()
            return len(data)

    def send(self, data: bytes) -> int:
        return self._raw_send(data)

    def close(self) -> None:
        self._drop_client()
        self._listener.close()


class Rfc2217Link(TcpLink):
    """A TCP listener speaking RFC 2217 (Telnet COM-PORT-OPTION, :mod:`firmware_sim.rfc2217`), so
    pyserial's ``rfc2217://`` and terminal-server dial-in work, and a client's baud change reaches
    the emulator's pacing.

    Each connection starts at the unit's configured baud; when a client that changed it leaves,
    the configured baud comes back (a BaudChanged event).  A client whose Telnet input overflows
    the server's bounds is dropped (``clients_dropped``); malformed commands are dropped and
    counted (``malformed``) across connections.
    """

    scheme = "rfc2217"

    def __init__(self, address: str, baud: int) -> None:
        self._settings_baud = baud
        self._server: ComPortServer | None = None
        self._pending_control = b""
        self.malformed = 0
        self.clients_dropped = 0
        super().__init__(address)

    def _on_connect(self) -> None:
        self._server = ComPortServer(self._settings_baud)
        self._pending_control = self._server.take_replies()
        self._flush_control()

    def _flush_control(self) -> None:
        while self._pending_control and self._client is not None:
            sent = self._raw_send(self._pending_control)
            if sent == 0:
                return
            self._pending_control = self._pending_control[sent:]

    def _from_client(self, data: bytes) -> bytes:
        server = self._server
        assert server is not None
        baud, malformed = server.baud, server.malformed
        serial_data = server.receive(data)
        self.malformed += server.malformed - malformed
        if server.overflowed or len(self._pending_control) > MAX_REPLIES:
            self.clients_dropped += 1
            self._drop_client()
            return b""
        if server.baud != baud:
            self._events.append(BaudChanged(server.baud))
        self._pending_control += server.take_replies()
        self._flush_control()
        return serial_data

    def send(self, data: bytes) -> int:
        self._flush_control()
        if self._pending_control or self._server is None:
            return 0 if self._client is not None else len(data)
        escaped = self._server.escape(data)
        if len(escaped) == len(data):
            return self._raw_send(data)
        # Escaped IAC bytes double; send whole so the Telnet stream stays intact.
        self._pending_control += escaped
        self._flush_control()
        return len(data)

    def _drop_client(self) -> None:
        server, self._server = self._server, None
        self._pending_control = b""
        had_client = self._client is not None
        super()._drop_client()
        if had_client and server is not None and server.baud != self._settings_baud:
            self._events.append(BaudChanged(self._settings_baud))


class DialInLink(Link):
    """A TCP or RFC 2217 listener reached as a dial-in line: each call meets the fate its
    :class:`~firmware_sim.dialin.Exchange` draws for it.

    A busy call is closed as soon as it is taken; a silent one is held and never heard nor
    answered; an answered one is heard only after its handshake (what the host sent before is
    lost, ``lost_bytes``), and a dropped one is closed after its share of bytes towards the host.
    The session behind sees a peer only once its call is answered.  *clock* gives seconds (the
    serving loop's clock).  ``fates`` counts the calls by :class:`~firmware_sim.dialin.Answer`
    and ``dropped`` the calls cut mid-transfer.
    """

    def __init__(self, inner: TcpLink, exchange: Exchange, clock: Callable[[], float]) -> None:
        super().__init__()
        self._inner = inner
        self._exchange = exchange
        self._clock = clock
        self.url = inner.url
        self.exposed = inner.exposed
        self._call: CallFate | None = None
        self._heard_from = 0.0
        self._sent = 0
        self.lost_bytes = 0
        self.fates = dict.fromkeys(Answer, 0)
        self.dropped = 0

    def fds(self) -> list[int]:
        return self._inner.fds()

    def receive(self, fd: int) -> bytes:
        data = self._inner.receive(fd)
        self._take_inner_events()
        call = self._call
        if call is None or call.answer is not Answer.ANSWERED or self._clock() < self._heard_from:
            self.lost_bytes += len(data)
            return b""
        return data

    def _take_inner_events(self) -> None:
        for event in self._inner.take_events():
            if isinstance(event, PeerChanged):
                self._answer(self._exchange.next_call())
            elif isinstance(event, PeerGone):
                if self._call is not None and self._call.answer is Answer.ANSWERED:
                    self._events.append(event)
                self._call = None
            else:
                self._events.append(event)

    def _answer(self, call: CallFate) -> None:
        self.fates[call.answer] += 1
        self._call, self._sent = call, 0
        if call.answer is Answer.BUSY:
            self._inner.disconnect()
            self._inner.take_events()
            self._call = None
        elif call.answer is Answer.ANSWERED:
            self._heard_from = self._clock() + call.delay_s
            self._events.append(PeerChanged())

    def send(self, data: bytes) -> int:
        call = self._call
        if call is None or call.answer is not Answer.ANSWERED:
            return len(data)
        if call.drop_after is None:
            return self._inner.send(data)
        sent = self._inner.send(data[: call.drop_after - self._sent])
        self._sent += sent
        if self._sent >= call.drop_after:
            self.dropped += 1
            self.disconnect()
            return len(data)
        return sent

    def disconnect(self) -> None:
        self._inner.disconnect()
        self._take_inner_events()

    def close(self) -> None:
        self._inner.close()
