"""Ctrl-C during a pull, as a technician presses it in a 60-column terminal (a pty of that size):
one line with the records kept and that a re-run resumes (exit 130); the re-run says it is
resuming, how much is archived and from which seq it fetches; every progress line drawn fits the
terminal (no stream of new lines).  A command that is not a pull says only that it was interrupted.

The unit is a real `turbosim serve` paced at 115200 baud (about 2,000 records, some 12 s of line
time), so the pull is mid-way when the signal goes.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable

import pytest

from firmware_sim.pytest_plugin import RunningUnit

pytestmark = pytest.mark.e2e

COLUMNS = 60
TURBOLOG = [sys.executable, "-m", "host.cli"]
PROGRESS = re.compile(r"([\d,]+)/([\d,]+) records")
KEPT = re.compile(
    r"turbolog: interrupted; ([\d,]+) records of this pull kept in the archive, run again to resume"
)
RESUMING = re.compile(r"resuming: ([\d,]+) of ([\d,]+) records archived, fetching from seq (\d+)")


class Pty:
    """A command whose stderr (and stdin) is a terminal COLUMNS wide; stdout a pipe."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, COLUMNS, 0, 0))
        env = {**os.environ, "TERM": "xterm"}
        self.process = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=env)
        os.close(slave)
        self.screen = ""

    def read(self, seconds: float) -> bool:
        if not select.select([self.master], [], [], seconds)[0]:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the command exited
            return False
        self.screen += data.decode("utf-8", "replace")
        return bool(data)

    def wait_for_records(self, at_least: int) -> None:
        deadline = time.monotonic() + 120  # a guard against a hang, not a measurement
        while time.monotonic() < deadline and self.process.poll() is None:
            self.read(0.5)
            counts = PROGRESS.findall(self.screen)
            if counts and int(counts[-1][0].replace(",", "")) >= at_least:
                return
        pytest.fail(f"the pull never showed {at_least} records: {self.screen[-300:]!r}")

    def finish(self) -> tuple[int, list[str]]:
        """Exit code, and the terminal's lines as drawn: each \\r-redraw its own line."""
        code = self.process.wait(120)
        while self.read(0.2):
            pass
        os.close(self.master)
        drawn = re.sub(r"\r\n|\r|\n", "\n", self.screen.replace("\x1b[K", "")).splitlines()
        return code, [line for line in drawn if line.strip()]


def records_in(db: str, serial: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as archive:
        row = archive.execute("SELECT record_count FROM units WHERE serial = ?", (serial,)).fetchone()
    return int(row[0]) if row else 0


def test_ctrl_c_mid_pull_then_the_rerun_says_where_it_resumes(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: object
) -> None:
    unit = turbosim_unit(model="C60", history="500h")
    db = os.path.join(str(tmp_path), "archive.sqlite")
    info = json.loads(subprocess.run([*TURBOLOG, "info", unit.url, "--json"], capture_output=True,
                                     check=True).stdout)
    records, first_seq = info["records"], info["first_seq"]

    pulling = Pty([*TURBOLOG, "pull", unit.url, "--db", db])
    pulling.wait_for_records(200)
    pulling.process.send_signal(signal.SIGINT)
    code, lines = pulling.finish()
    assert code == 130
    assert "Traceback" not in pulling.screen
    bars = [line for line in lines if PROGRESS.search(line)]
    said = [line for line in lines if not PROGRESS.search(line)]
    assert bars and all(len(line) <= COLUMNS - 1 for line in bars), [b for b in bars if len(b) >= COLUMNS]
    assert len(said) == 1 and (kept_said := KEPT.fullmatch(said[0])), said
    kept = int(kept_said[1].replace(",", ""))
    assert 0 < kept < records == info["records"]
    assert records_in(db, unit.serial) == kept

    rerun = Pty([*TURBOLOG, "pull", unit.url, "--db", db])
    code, lines = rerun.finish()
    assert code == 0, lines
    resumed = [m for line in lines if (m := RESUMING.fullmatch(line))]
    assert len(resumed) == 1, lines
    assert resumed[0].groups() == (f"{kept:,}", f"{records:,}", str(first_seq + kept))
    assert all(len(line) <= COLUMNS - 1 for line in lines if PROGRESS.search(line))
    assert records_in(db, unit.serial) == records


def test_ctrl_c_in_a_command_that_is_not_a_pull_says_only_interrupted(
    turbosim_unit: Callable[..., RunningUnit],
) -> None:
    unit = turbosim_unit(model="C60", history="50h")
    live = Pty([*TURBOLOG, "live", unit.url, "--json", "--interval", "0.1"])
    assert live.process.stdout is not None
    assert live.process.stdout.readline().startswith(b"{"), "live is reading the unit"
    live.process.send_signal(signal.SIGINT)
    code, lines = live.finish()
    assert "resume" not in live.screen and "records" not in live.screen
    assert "Traceback" not in live.screen
    assert (code, lines) in ((130, ["turbolog: interrupted"]), (0, [])), (code, lines)
