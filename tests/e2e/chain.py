"""The real tools of the end-to-end chains, and how a test reads what came through them.

- :class:`NullModem`: ``socat -d -d pty,raw,echo=0,link=A pty,raw,echo=0,link=B``, ready when socat
  logs that its transfer loop started (both links exist by then).
- :class:`Ser2net`: one ser2net 4 instance from its own YAML file (loopback only, no banner) with one
  accepter on an ephemeral port, read back from the kernel's socket table for ser2net's own sockets:
  ser2net prints nothing when it is ready.  :class:`TerminalServer`: one ser2net instance with an
  RFC 2217 accepter for each of several devices, as a terminal server in front of a fleet.
- :func:`flash_log` (the unit's log, read from its flash image after the unit stopped),
  :func:`archived` and :func:`pull_json` (``turbolog pull --json`` in-process).

Each launcher owns its process group and kills it in ``stop()``; the fixtures in ``conftest.py`` call
it in their finalizers.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import pytest

from firmware_sim.flash import NorFlash
from firmware_sim.logstore import LogStore
from host.archive import Archive
from host.cli import main as turbolog_main

READY_TIMEOUT_S = 15.0
TCP_LISTEN = "0A"
"""State of a listening socket in /proc/net/tcp."""


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class NullModem:
    """Two ptys joined back to back by socat: whatever is written to one is read from the other."""

    def __init__(self, socat: str, directory: Path) -> None:
        self.a = directory / "A"
        self.b = directory / "B"
        self.process = subprocess.Popen(
            [socat, "-d", "-d", f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.process.stderr is not None
        fd = self.process.stderr.fileno()
        log = b""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while b"starting data transfer loop" not in log:
            left = deadline - time.monotonic()
            chunk = os.read(fd, 4096) if left > 0 and select.select([fd], [], [], left)[0] else b""
            if not chunk:
                pytest.fail(f"socat did not start its transfer loop (status {self.process.poll()}):\n{log!r}")
            log += chunk
        assert self.a.is_symlink() and self.b.is_symlink(), log

    def stop(self) -> None:
        _stop_group(self.process)
        if self.process.stderr is not None:
            self.process.stderr.close()
        for link in (self.a, self.b):
            if link.is_symlink():
                link.unlink()


class Ser2net:
    """One ser2net accepter on loopback, RFC 2217 (``telnet(rfc2217)``) or raw TCP, onto *device*."""

    def __init__(
        self, ser2net: str, directory: Path, kind: Literal["rfc2217", "tcp"], device: Path, name: str
    ) -> None:
        accepter = "telnet(rfc2217),tcp" if kind == "rfc2217" else "tcp"
        config = directory / f"{name}.yaml"
        config.write_text(
            "%YAML 1.1\n---\n"
            f"connection: &{name}\n"
            f"  accepter: {accepter},127.0.0.1,0\n"
            f"  connector: serialdev,{device},115200n81,local\n"
        )
        self.stderr_path = directory / f"{name}.stderr"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [ser2net, "-n", "-u", "-c", str(config), "-P", str(directory / f"{name}.pid")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )
        self.scheme = "rfc2217" if kind == "rfc2217" else "socket"
        try:
            self.port = self._wait_listening()
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        query = "?ign_set_control" if self.scheme == "rfc2217" else ""
        return f"{self.scheme}://127.0.0.1:{self.port}{query}"

    def _wait_listening(self) -> int:
        """The port ser2net listens on, once it does (it may exit first: then fail with its stderr)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            ports = listening_ports(self.process.pid)
            if ports:
                (port,) = ports
                return port
            try:
                status = self.process.wait(0.01)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"ser2net exited {status}:\n{self.stderr_path.read_text(errors='replace')}")
        pytest.fail(f"ser2net listened on nothing in {READY_TIMEOUT_S:g} s")

    def stop(self) -> None:
        _stop_group(self.process)


class TerminalServer:
    """One ser2net with an RFC 2217 accepter (an ephemeral loopback port) for each of *devices*.

    Which port leads to which device is not known here: a poll learns it from the serial that
    answers."""

    def __init__(self, ser2net: str, directory: Path, devices: Sequence[Path]) -> None:
        config = directory / "terminal-server.yaml"
        config.write_text("%YAML 1.1\n---\n" + "".join(
            f"connection: &line{number}\n"
            "  accepter: telnet(rfc2217),tcp,127.0.0.1,0\n"
            f"  connector: serialdev,{device},115200n81,local\n"
            for number, device in enumerate(devices)
        ))
        self.stderr_path = directory / "terminal-server.stderr"
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(
                [ser2net, "-n", "-u", "-c", str(config), "-P", str(directory / "terminal-server.pid")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True,
            )
        try:
            self.ports = self._wait_listening(len(devices))
        except BaseException:
            self.stop()
            raise

    @property
    def urls(self) -> list[str]:
        return [f"rfc2217://127.0.0.1:{port}?ign_set_control" for port in self.ports]

    def _wait_listening(self, count: int) -> list[int]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            ports = listening_ports(self.process.pid)
            if len(ports) == count:
                return sorted(ports)
            try:
                status = self.process.wait(0.05)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"ser2net exited {status}:\n{self.stderr_path.read_text(errors='replace')}")
        pytest.fail(f"ser2net did not listen on {count} ports in {READY_TIMEOUT_S:g} s")

    def stop(self) -> None:
        _stop_group(self.process)


def listening_ports(pid: int) -> set[int]:
    """TCP ports that process *pid* listens on (its socket inodes matched in /proc/net/tcp)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            target = os.readlink(fd_dir / fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as rows:
            for row in list(rows)[1:]:
                cells = row.split()
                if cells[3] == TCP_LISTEN and cells[9] in inodes:
                    ports.add(int(cells[1].rsplit(":", 1)[1], 16))
    return ports


def flash_log(image: Path) -> list[tuple[int, bytes]]:
    """``(seq, raw)`` of every record the flash image's log holds (read with the unit stopped)."""
    with NorFlash.open(image) as flash:
        store = LogStore(flash)
        records = store.iter_raw(store.first_seq, store.next_seq)
        return [(int.from_bytes(raw[:4], "little"), raw) for raw in records]


def archived(db: Path, serial: str) -> list[tuple[int, bytes]]:
    with Archive.open(db) as archive:
        return list(archive.iter_raw(serial))


def pull_json(
    port: str, db: Path, capsys: pytest.CaptureFixture[str], extra: Sequence[str] = ()
) -> dict[str, object]:
    """``turbolog pull PORT --db DB --json`` in-process; its JSON result (fails on a non-zero exit)."""
    capsys.readouterr()
    status = turbolog_main(["pull", port, "--db", str(db), "--json", *extra])
    out, err = capsys.readouterr()
    assert status == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def pulled_equals_device(db: Path, result: dict[str, object], device: list[tuple[int, bytes]]) -> None:
    """The archive holds exactly the device's records from its first seq to the last seq the pull saw."""
    last = result["last_seq"]
    assert isinstance(last, int)
    expected = [(seq, raw) for seq, raw in device if seq <= last]
    assert expected and expected[0][0] == result["first_seq"]
    got = archived(db, str(result["serial"]))
    assert len(got) == len(expected) and got == expected
