"""SerialTransport over real ports: pty pairs, sockets, pyserial URLs; and a whole pull through a pty.

Every pyserial failure must come out as a LinkError (or UsageError) with a
message naming the port; reads must honour their timeout.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim import inproc
from firmware_sim.session import DeviceSession
from host.archive import Archive
from host.errors import LinkError, LinkTimeout, UsageError
from host.pull import pull
from host.transport import Guarded, SerialTransport, open_port
from protocol.messages import Identify, encode_message
from tests.host.loopback import ListUnit, make_records

pytestmark = pytest.mark.skipif(os.name != "posix", reason="pty pairs are POSIX")


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    """(master fd, slave path).  The device side keeps its own slave fd open for the
    test: without it the master reads EIO until the host opens the slave."""
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(slave)
    with contextlib.suppress(OSError):
        os.close(master)


def free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_missing_port_is_a_link_error_naming_it() -> None:
    with pytest.raises(LinkError, match="port /dev/ttyTURBOLOG9 does not exist"):
        open_port("/dev/ttyTURBOLOG9")


def test_an_unknown_url_scheme_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="protocol 'bogus' not known"):
        open_port("bogus://somewhere")


def test_socket_url_to_a_closed_port_is_a_link_error() -> None:
    url = f"socket://127.0.0.1:{free_tcp_port()}"
    with pytest.raises(LinkError, match=f"cannot connect to {url}: nothing answers there"):
        open_port(url)


def test_pty_bytes_flow_both_ways(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with open_port(path) as transport:
        os.write(master, b"\x00hello\x00")
        assert transport.read(100, 1.0) == b"\x00hello\x00"
        transport.write(b"\x01\x02\x00")
        assert os.read(master, 100) == b"\x01\x02\x00"


def test_pty_read_returns_what_is_there_up_to_max_bytes(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    with open_port(path) as transport:
        os.write(master, bytes(range(1, 201)))
        time.sleep(0.05)
        assert transport.read(150, 1.0) == bytes(range(1, 151))
        assert transport.read(150, 1.0) == bytes(range(151, 201))


@pytest.mark.parametrize("timeout", [0.0, 0.05, 0.3])
def test_pty_read_timeout_is_honoured(pty_pair: tuple[int, str], timeout: float) -> None:
    _, path = pty_pair
    with open_port(path) as transport:
        started = time.monotonic()
        assert transport.read(100, timeout) == b""
        elapsed = time.monotonic() - started
    assert timeout <= elapsed + 0.005 and elapsed < timeout + 0.15


def test_a_port_already_open_is_busy(pty_pair: tuple[int, str]) -> None:
    _, path = pty_pair
    with open_port(path), pytest.raises(LinkError, match=f"port {path} is busy"):
        open_port(path)


def test_a_vanished_pty_peer_is_a_link_error(pty_pair: tuple[int, str]) -> None:
    master, path = pty_pair
    transport = open_port(path)
    os.close(master)
    with pytest.raises(LinkError, match=f"port {path} disconnected"):
        transport.read(100, 0.5)
    with pytest.raises(LinkError, match=f"port {path} disconnected"):
        transport.write(b"\x00")
    transport.close()
    transport.close()


def test_socket_url_reads_writes_and_notices_the_peer_leaving() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        url = f"socket://127.0.0.1:{listener.getsockname()[1]}"
        transport = open_port(url)
        peer, _ = listener.accept()
        with peer:
            peer.sendall(b"abc\x00")
            assert transport.read(10, 1.0) == b"abc\x00"
            transport.write(b"xyz")
            assert peer.recv(10) == b"xyz"
            started = time.monotonic()
            assert transport.read(10, 0.1) == b""
            assert time.monotonic() - started >= 0.09
        with pytest.raises(LinkError, match=f"port {url} disconnected"):
            transport.read(10, 1.0)
        transport.close()


def test_loop_url_is_accepted() -> None:
    with open_port("loop://") as transport:
        transport.write(b"\x05\x00")
        assert transport.read(10, 0.5) == b"\x05\x00"


def serve_pty(master: int, device: DeviceSession, stop: threading.Event) -> None:
    """A device on the master side of a pty: unpaced, until *stop* or the host leaves."""
    pending = b""
    while not stop.is_set():
        wanted = [master] if pending or device.has_output else []
        readable, writable, _ = select.select([master], wanted, [], 0.05)
        try:
            if readable:
                device.receive_data(os.read(master, 4096))
            if writable:
                pending = pending or device.data_to_send(4096)
                pending = pending[os.write(master, pending) :]
        except OSError:
            return


def test_a_whole_pull_through_a_pty(pty_pair: tuple[int, str], tmp_path: Path) -> None:
    master, path = pty_pair
    raws = make_records(2500)
    unit = ListUnit(raws)
    stop = threading.Event()
    server = threading.Thread(
        target=serve_pty, args=(master, DeviceSession(unit), stop), daemon=True
    )
    server.start()
    try:
        with Archive.open(tmp_path / "a.sqlite") as archive:
            transports: list[SerialTransport] = []

            def connect() -> SerialTransport:
                transports.append(open_port(path))
                return transports[-1]

            result = pull(connect, archive)
            assert result.added == 2500 and result.reconnects == 0
            assert list(archive.iter_raw(unit.serial)) == list(enumerate(raws))
    finally:
        stop.set()
        server.join(5)


def test_an_in_process_line_opens_by_url_and_its_cut_and_close_are_link_errors() -> None:
    """The emulator's in-process line raises OSError (ConnectionResetError when cut, BrokenPipeError
    when closed); opened as turbosim://NAME it is a pyserial port, and the host's one translation
    makes each a LinkError naming the port; an unpublished name is a port that does not exist."""
    line = inproc.Line(ListUnit(make_records(200)), clock=inproc.WallClock(), cuts=[64])
    url = inproc.publish(line, "test-transport-cut")
    try:
        with open_port(url) as port:
            port.write(encode_message(Identify(), 1))
            assert port.read(4096, 1.0)
            with pytest.raises(LinkError, match=f"port {url} disconnected .*in-process line cut"):
                port.read(4096, 0.1)
        raw = line.connect()
        raw.close()
        with pytest.raises(BrokenPipeError):
            raw.write(b"\0")
        with pytest.raises(LinkError, match="port inproc disconnected .*in-process line closed"):
            Guarded(raw, "inproc").write(b"\0")
    finally:
        inproc.withdraw("test-transport-cut")
    with pytest.raises(LinkError, match="port turbosim://test-transport-cut does not exist"):
        open_port(url)


def test_guarded_leaves_host_errors_as_they_are() -> None:
    """A transport that already raises a HostError (a LinkTimeout, itself an OSError) keeps it."""

    class Stuck:
        def write(self, data: bytes) -> None:
            raise LinkTimeout("stuck")

        def read(self, max_bytes: int, timeout: float) -> bytes:
            raise TimeoutError("plain timeout")

        def close(self) -> None:
            raise OSError("already gone")

    guarded = Guarded(Stuck(), "stuck-port")
    with pytest.raises(LinkTimeout, match="^stuck$"):
        guarded.write(b"x")
    with pytest.raises(LinkError, match="port stuck-port disconnected .plain timeout."):
        guarded.read(1, 0.0)
    guarded.close()
