"""A busy port names the process that holds it, where the OS can tell: another program (here a
second Python holding a pty exclusively, as picocom or a forgotten turbolog would) is found among the
open files in /proc; a UUCP lock file (LCK..NAME, as minicom and picocom write) names its process too."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.transport import holders

pytestmark = pytest.mark.e2e

TURBOLOG = [sys.executable, "-m", "host.cli"]
HOLD = (
    "import serial, sys; port = serial.Serial(sys.argv[1], exclusive=True); "
    "print('held', flush=True); sys.stdin.read()"
)


@pytest.fixture
def pty_path() -> Iterator[str]:
    """A pty's device, held open by nobody but its master (here)."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    try:
        yield path
    finally:
        os.close(master)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the OS does not tell (no /proc)")
def test_a_busy_port_names_the_process_holding_it(pty_path: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, pty_path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        result = subprocess.run([*TURBOLOG, "info", pty_path], capture_output=True, text=True, timeout=60)
    finally:
        holder.communicate("", timeout=30)
    name = Path(f"/proc/{os.getpid()}/comm").read_text().strip()  # a Python, as the holder is
    assert result.returncode == 6
    assert result.stderr == f"turbolog: port {pty_path} is busy: held by {name} (pid {holder.pid})\n"


def test_a_lock_file_names_its_process(tmp_path: Path) -> None:
    """A lock file's process is named even where its open files cannot be seen (another user's)."""
    proc, locks = tmp_path / "proc", tmp_path / "lock"
    (proc / "4242").mkdir(parents=True)
    (proc / "4242" / "comm").write_text("minicom\n")
    locks.mkdir()
    (locks / "LCK..ttyUSB0").write_text("      4242\n")
    assert holders("/dev/ttyUSB0", proc=str(proc), locks=str(locks)) == [(4242, "minicom")]
    (locks / "LCK..ttyUSB0").write_text("      4343\n")  # stale: that process is gone
    assert holders("/dev/ttyUSB0", proc=str(proc), locks=str(locks)) == []
