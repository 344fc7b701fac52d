"""The emulator's link ends, exercised with pyserial as a host would use them."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware_sim.errors import LinkSetupError
from firmware_sim.links import BaudChanged, Link, PeerChanged, PtyLink, Rfc2217Link, TcpLink, parse_address


def pump(link: Link, stop: threading.Event, echo: bool = True) -> None:
    """A tiny device: echo whatever arrives, until stopped."""
    while not stop.is_set():
        readable, _, _ = select.select(link.fds(), [], [], 0.01)
        for fd in readable:
            data = link.receive(fd)
            while echo and data:
                data = data[link.send(data):]


@pytest.fixture
def running() -> Iterator[list[Link]]:
    links: list[Link] = []
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(link: Link) -> Link:
        links.append(link)
        thread = threading.Thread(target=pump, args=(link, stop), daemon=True)
        thread.start()
        threads.append(thread)
        return link

    yield start  # type: ignore[misc]
    stop.set()
    for thread in threads:
        thread.join(2)
    for link in links:
        link.close()


def test_pty_symlink_serves_and_survives_reopen(tmp_path: Path, running) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "turbine"
    link = running(PtyLink(str(path)))
    assert path.is_symlink() and link.url == str(path)
    for _ in range(3):
        with serial.Serial(str(path), 115200, timeout=2) as port:
            port.write(b"hello\x00")
            assert port.read(6) == b"hello\x00"


def test_pty_close_removes_only_its_own_symlink(tmp_path: Path) -> None:
    path = tmp_path / "turbine"
    link = PtyLink(str(path))
    link.close()
    assert not path.exists() and not path.is_symlink()


def test_pty_refuses_to_replace_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "precious"
    path.write_text("keep me")
    with pytest.raises(LinkSetupError, match="not a symlink"):
        PtyLink(str(path))
    assert path.read_text() == "keep me"


def test_pty_reads_nothing_when_the_host_has_gone(tmp_path: Path) -> None:
    link = PtyLink(str(tmp_path / "t"))
    try:
        fd = os.open(link.slave_name, os.O_RDWR | os.O_NOCTTY)
        os.close(fd)
        assert link.receive(link.master) == b""
        assert link.send(b"x" * 10) >= 0
    finally:
        link.close()


def test_tcp_link_serves_socket_url_and_reports_new_peers(running) -> None:  # type: ignore[no-untyped-def]
    link = running(TcpLink("127.0.0.1:0"))
    assert link.url.startswith("socket://127.0.0.1:")
    assert not link.exposed
    for _ in range(2):
        with serial.serial_for_url(link.url, timeout=2) as port:
            port.write(b"ping")
            assert port.read(4) == b"ping"


def test_rfc2217_baud_change_reaches_the_emulator() -> None:
    link = Rfc2217Link("127.0.0.1:0", baud=115200)
    stop = threading.Event()
    events: list[object] = []

    def device() -> None:
        while not stop.is_set():
            readable, _, _ = select.select(link.fds(), [], [], 0.01)
            for fd in readable:
                data = link.receive(fd)
                while data:
                    data = data[link.send(data):]
            events.extend(link.take_events())

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    try:
        with serial.serial_for_url(link.url + "?ign_set_control", baudrate=19200, timeout=2) as port:
            port.write(b"\xff\x00data")
            assert port.read(6) == b"\xff\x00data"
            port.baudrate = 57600
            deadline = time.monotonic() + 2
            while BaudChanged(57600) not in events and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        stop.set()
        thread.join(2)
        link.close()
    assert PeerChanged() in events
    assert BaudChanged(19200) in events
    assert BaudChanged(57600) in events


def test_listener_on_a_taken_port_is_a_clear_error() -> None:
    first = TcpLink("127.0.0.1:0")
    try:
        with pytest.raises(LinkSetupError, match="cannot listen"):
            TcpLink(f"127.0.0.1:{first.port}")
    finally:
        first.close()


@pytest.mark.parametrize("text", ["host:port", "1:99999", "x:-1"])
def test_bad_addresses_are_refused(text: str) -> None:
    with pytest.raises(LinkSetupError):
        parse_address(text)


def test_bare_port_binds_loopback() -> None:
    assert parse_address("5000") == ("127.0.0.1", 5000)
