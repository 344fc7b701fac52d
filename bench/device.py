"""The emulated controller for the benchmarks: flash images with a history, served on a pty.

:func:`image` makes, once per run, a flash image whose log holds a given
number of records (``turbosim run`` with one sample a second, so N seconds of
history hold N samples and a few events), under one temporary directory that
is removed when the run ends.  :func:`serve` runs ``turbosim serve --pty`` on a
fresh copy of an image, so every repeat pulls the same log, with the unit's
clock all but stopped (no record is added while it is pulled), paced to a
baud or unpaced, and optionally with an impaired line.  Everything goes
through the installed ``turbosim`` command, as a user would run it.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
SECTOR_SIZE = 65536
_SECTOR_HEADER = 40
_SAMPLE_SIZE = 68
_STOPPED_CLOCK = "1e-9"
"""``--speed``: simulated seconds per wall second while serving (nothing new is logged)."""

_workdir: list[Path] = []
_images: dict[int, Path] = {}
_serial = itertools.count()


def command(name: str) -> str:
    """The path of an installed command of this project (``turbosim``, ``turbolog``)."""
    found = BIN / name
    return str(found) if found.exists() else name


def workdir() -> Path:
    """This run's scratch directory, removed at exit."""
    if not _workdir:
        path = Path(tempfile.mkdtemp(prefix="turbolog-bench-"))
        atexit.register(shutil.rmtree, path, True)
        _workdir.append(path)
    return _workdir[0]


def image(records: int) -> Path:
    """A flash image whose log holds at least *records* records, none evicted (made once per run)."""
    if records not in _images:
        path = workdir() / f"history-{records}.img"
        per_sector = (SECTOR_SIZE - _SECTOR_HEADER) // _SAMPLE_SIZE
        subprocess.run(
            [command("turbosim"), "run", "--flash", str(path), "--sector-size", str(SECTOR_SIZE),
             "--sectors", str(records // per_sector + 16), "--sample-interval", "1s",
             "--history", f"{records}s"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _images[records] = path
    return _images[records]


@dataclass(frozen=True)
class Served:
    """A running ``turbosim serve``: where to reach it, and its process (for its CPU time)."""

    port: str
    pid: int

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the device process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(flash: Path, *, baud: int | None = None, impair: str | None = None) -> Iterator[Served]:
    """``turbosim serve`` on a new pty over a copy of *flash*; unpaced when *baud* is None."""
    n = next(_serial)
    copy, pty = workdir() / f"served-{n}.img", workdir() / f"pty-{n}"
    shutil.copyfile(flash, copy)
    args = [command("turbosim"), "serve", "--pty", str(pty), "--flash", str(copy),
            "--sample-interval", "1s", "--speed", _STOPPED_CLOCK]
    args += ["--no-pace"] if baud is None else ["--baud", str(baud)]
    if impair:
        args += ["--impair", impair]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"turbosim serve did not start: {line!r}")
        yield Served(str(pty), proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for leftover in workdir().glob(f"served-{n}.img*"):
            leftover.unlink()


def scratch_db() -> Path:
    """A new archive path in the scratch directory (remove it with :func:`remove_db`)."""
    return workdir() / f"archive-{next(_serial)}.sqlite"


def remove_db(path: Path) -> None:
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()
