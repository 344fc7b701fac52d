"""Memory: peak RSS of ``turbolog pull`` of 1,000,000 records, and that it stays flat with the log.

Each measurement runs the real command, ``turbolog pull PTY --db FILE``, as
its own child process against ``turbosim --no-pace`` serving an image of
100,000 or 1,000,000 records (:mod:`bench.device`), and reads that one
child's peak resident set (``VmHWM``) from ``/proc``.  The limit beside it is the same
command's floor in the same run: ``turbolog --help`` (the interpreter and
every module a pull imports, nothing pulled).  Flat means the peak for ten
times the records grows by at most 10 %.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

from .device import command, image, remove_db, scratch_db, serve
from .figures import Figure

SMALL, LARGE = 100_000, 1_000_000
PEAK_TARGET_MB = 100.0
GROWTH_TARGET = 1.10
POLL_S = 0.005


def peak_rss_mb(args: list[str]) -> tuple[float, str]:
    """Run *args* as one child; its peak RSS in MB and its output.

    The peak is the child's own ``VmHWM`` (that of the program it executed,
    not of the interpreter that spawned it, which ``wait4``'s ``ru_maxrss``
    would include), polled every 5 ms until it exits.
    """
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    status = Path(f"/proc/{child.pid}/status")
    peak_kb = 0
    while child.poll() is None:
        try:
            lines = status.read_text().splitlines()
        except (FileNotFoundError, ProcessLookupError):
            break
        for line in lines:
            if line.startswith("VmHWM:"):
                peak_kb = max(peak_kb, int(line.split()[1]))
        time.sleep(POLL_S)
    output, _ = child.communicate()
    if child.returncode:
        raise RuntimeError(f"{' '.join(args)} exited {child.returncode}: {output.decode()[-300:]}")
    return peak_kb / 1024, output.decode()


def pull_peak(records: int) -> float:
    path = scratch_db()
    try:
        with serve(image(records)) as device:
            args = [command("turbolog"), "pull", device.port, "--db", str(path), "--json"]
            peak, output = peak_rss_mb(args)
    finally:
        remove_db(path)
    added = json.loads(output)["added"]
    if added < records:
        raise AssertionError(f"turbolog pull added {added:,} records, not {records:,}")
    return peak


def run(repeats: int = 3) -> list[Figure]:
    floor = statistics.median(peak_rss_mb([command("turbolog"), "--help"])[0] for _ in range(repeats))
    small = statistics.median(pull_peak(SMALL) for _ in range(repeats))
    large = statistics.median(pull_peak(LARGE) for _ in range(repeats))
    return [
        Figure(f"peak RSS, turbolog pull of {LARGE:,} records", large, "MB", PEAK_TARGET_MB, False,
               reference=f"turbolog --help: {floor:.1f} MB; {SMALL:,} records: {small:.1f} MB; "
                         f"median of {repeats}",
               limit=floor),
        Figure(f"peak RSS growth, {SMALL:,} -> {LARGE:,} records", large / small, "x", GROWTH_TARGET, False,
               reference=f"{small:.1f} MB -> {large:.1f} MB"),
    ]
