"""`turbolog set-clock` asks before moving a unit's clock by more than a day, and a wrong key says how many
attempts are left before the unit locks out: run as a technician runs them, on a terminal (a pty) or not.

Figures held: a change of more than a day with no terminal and no ``--yes`` is exit 2, one line, clock
unchanged; on a terminal it asks "[y/N]": "n" is exit 2 and the clock unchanged, "y" sets it; ``--yes`` sets
it without asking; a change within a day is not asked about.  Wrong keys in a row say 4, 3, 2, 1 attempts
left, and the fifth that the unit is locked out now (read from the unit's own audit records,
docs/protocol.md 7.6); the unit then refuses even the right key.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_sim.auth import MAX_FAILURES
from firmware_sim.pytest_plugin import RunningUnit
from host.cli import main
from host.privileged import LOCKOUT_AFTER

pytestmark = pytest.mark.e2e

TURBOLOG = [sys.executable, "-m", "host.cli"]


def keys(image: Path, tmp_path: Path) -> tuple[Path, Path]:
    found = subprocess.run(
        [sys.executable, "-m", "firmware_sim.cli", "keys", "--flash", str(image), "--level", "maintenance"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key, wrong = tmp_path / "maintenance.key", tmp_path / "wrong.key"
    key.write_text(found.stdout)
    wrong.write_text("ab" * 32)
    key.chmod(0o600)
    wrong.chmod(0o600)
    return key, wrong


def device_time(url: str) -> datetime:
    done = subprocess.run([*TURBOLOG, "info", url, "--json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return datetime.fromisoformat(json.loads(done.stdout)["device_time"])


def on_a_terminal(argv: list[str], answer: bytes) -> tuple[int, str]:
    """Run turbolog ARGV with a pty as its terminal (stdin and stderr), answer its question; exit status
    and what the terminal showed."""
    master, slave = os.openpty()
    process = subprocess.Popen([*TURBOLOG, *argv], stdin=slave, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    shown = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: the process closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            if not answered and b"[y/N]" in shown:
                os.write(master, answer)
                answered = True
            if not ready and process.poll() is not None:
                break
        status = process.wait(30)
    finally:
        os.close(master)
    return status, shown.decode(errors="replace")


@pytest.fixture
def unit(turbosim_unit: Callable[..., RunningUnit], tmp_path: Path) -> RunningUnit:
    return turbosim_unit(history="50h", no_pace=True, flash=tmp_path / "unit.img")


def test_a_clock_change_of_more_than_a_day_is_asked_about(unit: RunningUnit, tmp_path: Path) -> None:
    key, _ = keys(unit.flash, tmp_path)  # type: ignore[arg-type]
    before = device_time(unit.url)
    far = ["set-clock", unit.url, "--key-file", str(key), "--time", "2031-01-01T00:00:00"]

    refused = subprocess.run(
        [*TURBOLOG, *far], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2 and refused.stdout == ""
    assert (
        refused.stderr.startswith("turbolog: this moves the unit's clock") and refused.stderr.count("\n") == 1
    )
    assert "days forward" in refused.stderr and "confirm with --yes" in refused.stderr
    assert device_time(unit.url).year == before.year

    status, shown = on_a_terminal(far, b"n\n")
    assert status == 2 and "[y/N]" in shown and "not confirmed" in shown, shown
    assert device_time(unit.url).year == before.year

    status, shown = on_a_terminal(far, b"y\n")
    assert status == 0 and "device clock:" not in shown, shown  # the report went to standard output
    assert device_time(unit.url) >= datetime(2031, 1, 1, tzinfo=UTC)

    back = ["set-clock", unit.url, "--key-file", str(key), "--time", before.isoformat(), "--yes", "--json"]
    done = subprocess.run(
        [*TURBOLOG, *back], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["after"].startswith(before.isoformat()[:13])

    near = [
        "set-clock",
        unit.url,
        "--key-file",
        str(key),
        "--time",
        before.replace(hour=(before.hour + 2) % 24).isoformat(),
    ]
    done = subprocess.run(
        [*TURBOLOG, *near], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_a_wrong_key_says_how_many_attempts_are_left(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert LOCKOUT_AFTER == MAX_FAILURES
    unit = turbosim_unit(link="inproc", history="50h", no_pace=True, flash=tmp_path / "unit.img")
    key, wrong = keys(unit.flash, tmp_path)  # type: ignore[arg-type]
    said = []
    for _ in range(MAX_FAILURES):
        capsys.readouterr()
        assert main(["set-clock", unit.url, "--key-file", str(wrong), "--yes"]) == 9
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "UNAUTHORIZED" in err
        said.append(err.rsplit("; ", 1)[1].strip())
    assert said == [
        "4 attempts left before the unit locks out",
        "3 attempts left before the unit locks out",
        "2 attempts left before the unit locks out",
        "1 attempt left before the unit locks out",
        "the unit is locked out now, after 5 failed attempts in a row",
    ]
    assert main(["clear-log", unit.url, "--key-file", str(key), "--force"]) == 9
    assert "LOCKED_OUT" in capsys.readouterr().err
