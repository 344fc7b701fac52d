"""The host issue's acceptance run, against a real `turbosim` on a pty at paced 115200 baud.

One emulated C60 with 2,000 h of history (about 8,000 records, some 48 s of line time at
115200 8N1).  The device runs at a crawl (--speed 1e-6) so its counters do not move while
we compare them.  Figures held: a pull interrupted by a real SIGINT, then resumed, ends with
every record byte-identical to the device's flash; a further pull adds 0; `summary --json`
agrees with `info --json`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.flash import NorFlash
from firmware_sim.logstore import LogStore
from host.archive import Archive
from host.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    where = tmp_path_factory.mktemp("unit")
    link, image = where / "turbine", where / "unit.img"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_sim.cli",
            "serve",
            "--pty",
            str(link),
            "--flash",
            str(image),
            "--model",
            "C60",
            "--serial",
            "C60-E2E",
            "--history",
            "2000h",
            "--speed",
            "0.000001",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    ready = process.stdout.readline()
    if not ready.startswith("ready "):
        process.kill()
        pytest.fail(f"turbosim did not start: {ready!r} {process.stderr.read()}")
    yield str(link), image
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0


def json_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_pull_interrupted_resumed_complete_and_consistent(
    unit: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port, image = unit
    db = tmp_path / "archive.sqlite"
    info = json_of(["info", port, "--json"], capsys)
    assert info["serial"] == "C60-E2E" and info["records"] > 7900

    interrupted = subprocess.Popen(
        [sys.executable, "-m", "host.cli", "pull", port, "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(8)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=30)
    assert interrupted.returncode == 130, err
    assert "Traceback" not in err and "run again to resume" in err
    with Archive.open(db) as archive:
        kept = sum(1 for _ in archive.iter_raw("C60-E2E"))
    assert 0 < kept < info["records"], "the interruption must fall inside the pull"

    resumed = json_of(["pull", port, "--db", str(db), "--json"], capsys)
    assert resumed["added"] == info["records"] - kept
    assert resumed["evicted"] == 0
    again = json_of(["pull", port, "--db", str(db), "--json"], capsys)
    assert again["added"] == 0

    with NorFlash.open(image) as flash:
        store = LogStore(flash)
        device = list(store.iter_raw(store.first_seq, store.next_seq))
    with Archive.open(db) as archive:
        archived = [raw for _, raw in archive.iter_raw("C60-E2E")]
    assert archived == device, "every archived record is byte-identical to the device's flash"

    summary = json_of(["summary", "C60-E2E", "--db", str(db), "--json"], capsys)
    for key in ("operating_hours", "starts", "energy_kwh"):
        assert summary[key] == pytest.approx(info[key], abs=1e-3), key
    assert summary["records"] == info["records"]
