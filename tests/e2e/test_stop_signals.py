"""A real SIGTERM or SIGHUP to a real `turbolog` process, as a service manager or a closed terminal sends it.

The pull runs against a real `turbosim serve` paced at 115200 baud (about 2,000 records, some 12 s of
line time, all in the first window of 2,048: nothing is committed until that window ends).  The pull's
stderr is a pseudo-terminal, so it draws its progress bar, and the signal goes when the bar shows
records received: they are in flight, not committed.  Figures held: the documented exit code (143,
129), one line naming the records kept, the archive holding exactly those, and a re-run that fetches
exactly the records not archived (none twice) and ends with the device's whole log.

An export writing into a pipe nobody reads ends the same way on SIGTERM: exit 143, one line, no
traceback.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit

pytestmark = pytest.mark.e2e

PROGRESS = re.compile(rb"([\d,]+)/([\d,]+) records")
IN_FLIGHT = 200
"""Records the progress bar must show before the signal goes."""
KEPT = re.compile(r"turbolog: stopped by (SIG\w+); ([\d,]+) records of this pull kept in the archive, "
                  r"run again to resume")


def turbolog(*argv: str, **options: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "host.cli", *argv], **options)  # type: ignore[call-overload]


def records_in(db: Path, serial: str) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as archive:
        row = archive.execute("SELECT record_count FROM units WHERE serial = ?", (serial,)).fetchone()
    return int(row[0]) if row else 0


def wait_for_progress(terminal: int, process: subprocess.Popen[bytes], at_least: int) -> bytes:
    """What the pull drew on its terminal until its bar shows *at_least* records received."""
    drawn = b""
    deadline = time.monotonic() + 120  # a guard against a hang, not a measurement
    while time.monotonic() < deadline and process.poll() is None:
        if select.select([terminal], [], [], 0.5)[0]:
            drawn += os.read(terminal, 4096)
            counts = PROGRESS.findall(drawn)
            if counts and int(counts[-1][0].replace(b",", b"")) >= at_least:
                return drawn
    pytest.fail(f"the pull never showed {at_least} records (exit {process.poll()}): {drawn[-300:]!r}")


def drain(terminal: int) -> bytes:
    drawn = b""
    try:
        while select.select([terminal], [], [], 0.2)[0]:
            chunk = os.read(terminal, 4096)
            if not chunk:
                break
            drawn += chunk
    except OSError:  # EIO: the other end is closed
        pass
    return drawn


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_mid_pull_keeps_the_windows_in_flight_and_the_rerun_fetches_only_the_rest(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, signum: int, code: int
) -> None:
    unit = turbosim_unit(model="C60", history="500h")
    db = tmp_path / "archive.sqlite"
    info = subprocess.run(
        [sys.executable, "-m", "host.cli", "info", unit.url, "--json"], capture_output=True, check=True
    )
    records = json.loads(info.stdout)["records"]
    assert 1000 < records <= 2048, "the whole log fits the first window: nothing commits before it ends"

    controller, terminal = os.openpty()
    pulling = turbolog("pull", unit.url, "--db", str(db), stdout=subprocess.PIPE, stderr=terminal)
    os.close(terminal)
    try:
        wait_for_progress(controller, pulling, IN_FLIGHT)
        assert records_in(db, unit.serial) == 0, "the records shown are still in flight"
        pulling.send_signal(signum)
        assert pulling.wait(60) == code
        text = drain(controller).decode(errors="replace")
    finally:
        os.close(controller)
    lines = [line for line in re.sub(r"\r|\x1b\[K", "\n", text).splitlines() if line.strip()]
    assert "Traceback" not in text
    assert len(lines) == 1, lines
    said = KEPT.fullmatch(lines[0])
    assert said, lines
    assert said[1] == signal.Signals(signum).name
    kept = int(said[2].replace(",", ""))
    assert IN_FLIGHT <= kept < records
    assert records_in(db, unit.serial) == kept

    resumed = subprocess.run(
        [sys.executable, "-m", "host.cli", "pull", unit.url, "--db", str(db), "--json"],
        capture_output=True, text=True,
    )
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["added"] == result["received"] == records - kept, "the re-run fetches none twice"
    assert records_in(db, unit.serial) == records


def test_an_export_into_a_stalled_pipe_ends_cleanly_on_sigterm(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path
) -> None:
    unit = turbosim_unit(model="C60", history="500h", no_pace=True)
    db = tmp_path / "archive.sqlite"
    subprocess.run(
        [sys.executable, "-m", "host.cli", "pull", unit.url, "--db", str(db)], capture_output=True, check=True
    )
    exporting = turbolog(
        "export", unit.serial, "--format", "jsonl", "--db", str(db), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert exporting.stdout is not None and exporting.stderr is not None
    assert exporting.stdout.readline().startswith(b"{"), "the export has begun"
    # the pipe holds 64 KiB; the export is far longer, so the process now waits on a full pipe
    exporting.send_signal(signal.SIGTERM)
    _, err = exporting.communicate(timeout=60)  # read on: what it had written still comes out
    assert exporting.returncode == 143
    assert err.decode() == "turbolog: stopped by SIGTERM\n", err.decode()
