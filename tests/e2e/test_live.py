"""`turbolog live` as a technician runs it against an emulated unit whose line drops once: it
reconnects and says so instead of exiting; on a terminal (a pty) it highlights changed values,
pauses on space and quits on q."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from firmware_sim.pytest_plugin import RunningUnit

TURBOLOG = [sys.executable, "-m", "host.cli"]
CUT = "cut=700"
"""The line drops once, after a few live readings' worth of bytes."""


def test_off_a_terminal_a_dropped_line_is_reconnected_and_said_on_stderr(
    turbosim_unit: Callable[..., RunningUnit],
) -> None:
    unit = turbosim_unit(link="tcp", history="50h", impair=CUT)
    result = subprocess.run(
        [*TURBOLOG, "live", unit.url, "--count", "12", "--interval", "0.05", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 12
    lost = [line for line in result.stderr.splitlines() if "connection lost" in line]
    assert len(lost) == 1 and lost[0].startswith("turbolog: ") and "reconnecting, attempt 1" in lost[0]
    assert "turbolog: reconnected to " in result.stderr


def test_a_first_connection_that_fails_still_ends_with_its_error() -> None:
    result = subprocess.run(
        [*TURBOLOG, "live", "/nonexistent/tty"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 6 and result.stderr.count("\n") == 1


class Terminal:
    """A command on a pty: what it drew, and keys typed at it."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        env = {**os.environ, "TERM": "xterm"}
        env.pop("NO_COLOR", None)
        self.process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True)
        os.close(slave)
        self.screen = ""

    def read_until(self, text: str, after: int = 0, timeout: float = 60) -> int:
        """Read until *text* appears at or after offset *after*; its offset."""
        deadline = time.monotonic() + timeout
        while (found := self.screen.find(text, after)) < 0:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.5)) and self.process.poll() is not None:
                raise AssertionError(f"{text!r} never appeared; the screen:\n{self.screen[-3000:]}")
        return found

    def _read(self, seconds: float) -> bool:
        """What it drew within *seconds*, added to the screen; False when nothing came."""
        if not select.select([self.master], [], [], seconds)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # the command exited and the pty closed
            return False
        self.screen += data.decode("utf-8", "replace")
        return bool(data)

    def drain(self, seconds: float) -> None:
        """Read whatever it draws for *seconds*."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._read(left)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Callable[[list[str]], Terminal]]:
    opened: list[Terminal] = []

    def open_(argv: list[str]) -> Terminal:
        opened.append(Terminal(argv))
        return opened[-1]

    yield open_
    for t in opened:
        t.close()


def test_on_a_terminal_live_reconnects_highlights_pauses_and_quits(
    turbosim_unit: Callable[..., RunningUnit], terminal: Callable[[list[str]], Terminal],
) -> None:
    unit = turbosim_unit(link="tcp", history="50h", impair=CUT, extra_args=["--speed", "3600"])
    term = terminal([*TURBOLOG, "live", unit.url, "--interval", "0.2"])
    lost = term.read_until("connection lost")
    assert "reconnecting, attempt 1" in term.screen[lost:lost + 300]
    back = term.read_until("reconnected after 1 attempt", lost)
    term.read_until("\x1b[7m", back)  # a value that changed since the last refresh, highlighted
    term.type(" ")
    paused = term.read_until("paused: space pause/resume, q quit", back)
    term.drain(1.0)  # paused: three refreshes' time, and no new reading is drawn
    assert term.screen.count("\x1b[2J", paused) == 0
    term.type(" ")
    term.read_until("\x1b[2J", paused)  # resumed: it draws again
    term.type("q")
    assert term.process.wait(30) == 0
