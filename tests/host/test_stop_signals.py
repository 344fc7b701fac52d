"""`turbolog` under SIGTERM and SIGHUP, in process: a real signal to this process while the command runs.

The e2e suite (tests/e2e/test_stop_signals.py) signals a real `turbolog pull` and `export`; here an
ingest gets the signal between two images (sent by the test from inside the ingest, so it lands at a
known point).  Figures held: exit 143 or 129, one line, the images before it archived, a re-run
completing the rest; the handlers the caller had are back once the command returns; and a progress
bar whose terminal was closed (what SIGHUP means) closes without an error that would hide the signal.
"""

from __future__ import annotations

import errno
import io
import os
import signal
from pathlib import Path

import pytest

import host.ingest
from firmware_sim.fleet import plan_fleet, simulate_fleet
from host.archive import Archive
from host.cli import main
from host.ingest import ImageResult
from host.terminal import ProgressBar

UNITS = 3


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fleet")
    simulate_fleet(plan_fleet(UNITS, {"C30": 1.0}, 100, seed=5), out, workers=1)
    return out


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_between_two_images_ends_the_ingest_cleanly(
    fleet_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    signum: int, code: int,
) -> None:
    ingest_image = host.ingest.ingest_image

    def then_signal(archive: Archive, path: str | os.PathLike[str], **options: bool) -> ImageResult:
        result = ingest_image(archive, path, **options)
        os.kill(os.getpid(), signum)
        return result

    monkeypatch.setattr(host.ingest, "ingest_image", then_signal)
    unhandled: list[int] = []

    def fallback(number: int, frame: object) -> None:
        unhandled.append(number)

    previous = signal.signal(signum, fallback)  # what the process had before turbolog ran
    db = tmp_path / "archive.sqlite"
    try:
        exit_code = main(["ingest", str(fleet_dir), "--db", str(db)])
        assert signal.getsignal(signum) is fallback, "turbolog gives back the handler it found"
    finally:
        signal.signal(signum, previous)
    assert unhandled == [], "turbolog's own handler took the signal"
    assert exit_code == code
    assert capsys.readouterr().err == f"turbolog: stopped by {signal.Signals(signum).name}\n"
    with Archive.open(db) as archive:
        assert len(archive.units()) == 1

    monkeypatch.undo()
    assert main(["ingest", str(fleet_dir), "--db", str(db)]) == 0
    with Archive.open(db) as archive:
        assert len(archive.units()) == UNITS


class ClosedTerminal(io.StringIO):
    """A terminal that hung up after the bar was drawn: every write fails with EIO."""

    hung_up = False

    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if self.hung_up:
            raise OSError(errno.EIO, "Input/output error")
        return super().write(text)


def test_a_progress_bar_on_a_terminal_that_hung_up_closes_quietly() -> None:
    terminal = ClosedTerminal()
    bar = ProgressBar(terminal)
    bar.show(10, 100, "")
    terminal.hung_up = True
    bar.close()
