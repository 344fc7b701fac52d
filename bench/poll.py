"""Poll: ``turbolog poll`` over a fleet served by one ``turbosim serve-fleet`` (issue 14's figures).

Fleet A: 1,000 units (C30 and C60 half and half), each with a week of 15-minute records, 9,600 baud,
loopback TCP, polled once by ``turbolog poll --jobs 200`` (a process of its own, as a user runs it):

- wall time beside the ideal, units x one unit's line time / jobs, where one unit's line time is
  the bytes a pull of it takes on the line at 9,600 baud 8N1 (measured on one unit of the fleet by
  :func:`host.pull.pull` in this process), per record, times the records the poll received;
- records lost (the device's log at its last IDENTIFY less what the archive holds) and written
  twice (records the poll reported added less the records the fresh archive holds);
- host CPU per record (the poll process's user + system time over the records it added) beside a
  single pull's (the CPU of this thread during that one pull, over its records);
- the poll process's peak resident memory.

Fleet B: 200 units, 10 % of calls busy or dropped mid-transfer (``--dial busy=0.05,drop=0.05``),
polled again and again until every unit's log is archived to the end its last IDENTIFY reported:
the polls it took (a unit busy is called again in the same poll, ``--redials``; a call dropped is
dialled again by the pull), and the records fetched twice per dropped call (a dropped call is
one the pull had to dial again, or that ended it after the unit identified itself) beside one
window.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from host.archive import Archive
from host.poll import REDIALS
from host.pull import DEFAULT_WINDOW, pull
from host.transport import open_port
from protocol.inventory import InventoryEntry, parse_inventory

from .figures import Figure

UNITS = 1000
JOBS = 200
RETRY_UNITS = 200
HISTORY = "7d"
BAUD = 9600
DIAL = "busy=0.05,drop=0.05"
MAX_POLLS = 5
"""Polls of fleet B before giving up (the figure's target is 3)."""
READY_TIMEOUT_S = 600.0


@contextmanager
def served_fleet(units: int, directory: Path, dial: str | None = None) -> Iterator[list[InventoryEntry]]:
    """``turbosim serve-fleet`` of *units*; the inventory it serves, until the block ends."""
    inventory = directory / f"fleet-{units}.toml"
    command = [
        sys.executable, "-m", "firmware_sim.cli", "serve-fleet", "--units", str(units), "--mix",
        "C30:0.5,C60:0.5", "--seed", "1", "--history", HISTORY, "--baud", str(BAUD), "--tcp", "127.0.0.1:0",
        "--inventory", str(inventory), *(["--dial", dial] if dial else []),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    try:
        ready: list[str] = []
        stdout = process.stdout
        reader = threading.Thread(target=lambda: ready.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(READY_TIMEOUT_S)
        if not ready or not ready[0].startswith("ready "):
            raise AssertionError("serve-fleet did not get ready")
        yield parse_inventory(inventory.read_text(encoding="utf-8"), kind="toml")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=300)


def poll_process(inventory: Path, db: Path, jobs: int) -> tuple[int, dict[str, Any], float, float, float]:
    """``turbolog poll INVENTORY --db DB --jobs N --json`` as a process: its exit status, its report,
    wall seconds, CPU seconds (user + system) and peak resident MB (from wait4's rusage)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "host.cli", "poll", str(inventory), "--db", str(db), "--jobs", str(jobs),
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    streams: dict[str, bytes] = {}
    readers = [
        threading.Thread(target=lambda name=name, stream=stream: streams.__setitem__(name, stream.read()))
        for name, stream in (("out", process.stdout), ("err", process.stderr))
    ]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    try:
        report = json.loads(streams["out"])
    except ValueError:
        raise AssertionError(
            f"turbolog poll gave no report (exit {process.returncode}): {streams['err'].decode()}"
        ) from None
    return process.returncode, report, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def single_pull(entry: InventoryEntry, directory: Path) -> tuple[float, float, int]:
    """One unit pulled by :func:`host.pull.pull` in this thread: line seconds per record (its bytes
    at the line rate), CPU seconds per record, records."""
    with Archive.open(directory / "single.sqlite") as archive:
        cpu = time.thread_time()
        result = pull(lambda: open_port(entry.url, entry.baud or BAUD), archive)
        cpu = time.thread_time() - cpu
    line_s = result.bytes * 10 / (entry.baud or BAUD)
    return line_s / result.received, cpu / result.added, result.added


def completeness(db: Path) -> tuple[int, int, int]:
    """Units in the archive, records it holds, and records of the devices' logs (at their last
    IDENTIFY) it does not."""
    with Archive.open(db, readonly=True) as archive:
        archive.check()
        units = archive.units()
        missing = 0
        for unit in units:
            _, _, held = archive.holding(unit.serial, unit.epoch, unit.first_seq, unit.next_seq)
            missing += unit.next_seq - unit.first_seq - held
        return len(units), sum(unit.record_count for unit in units), missing


def fleet_a(directory: Path) -> list[Figure]:
    inventory = directory / f"fleet-{UNITS}.toml"
    with served_fleet(UNITS, directory) as entries:
        line_per_record, single_cpu, single_records = single_pull(entries[0], directory)
        status, report, wall, cpu, peak_mb = poll_process(inventory, directory / "a.sqlite", JOBS)
    rows = report["units"]
    received = sum(row["received"] for row in rows)
    added = report["total"]["added"]
    ideal = received * line_per_record / JOBS
    units, stored, lost = completeness(directory / "a.sqlite")
    twice = added - stored
    failed = report["total"]["failed"]
    cpu_per_record = cpu / max(added, 1)
    binds = "CPU" if cpu > wall * 0.8 else "line time"
    return [
        Figure(
            f"poll: {UNITS:,} units x {HISTORY} at {BAUD:,} baud, --jobs {JOBS}: wall over ideal",
            wall / ideal, "x ideal", 1.15, False,
            reference=f"{wall:.0f} s; ideal {ideal:.0f} s = {received:,} records x "
                      f"{line_per_record * 1000:.1f} ms of line each / {JOBS} jobs; exit {status}, "
                      f"{units:,} units archived, {failed} failed",
            limit=1.0,
        ),
        Figure(
            f"poll: {UNITS:,} units: records lost or written twice", lost + abs(twice), "records", 0, False,
            reference=f"{lost:,} lost (device logs less archive), {twice:,} twice (added less stored); "
                      f"{stored:,} records stored",
        ),
        Figure(
            f"poll: {UNITS:,} units: host CPU per record over a single pull's", cpu_per_record / single_cpu,
            "x single pull", 2.0, False,
            reference=f"poll {cpu:.1f} s CPU for {added:,} records ({cpu_per_record * 1e6:.0f} us each); "
                      f"single pull {single_cpu * 1e6:.0f} us each over {single_records:,} records; "
                      f"binds: {binds} ({wall:.0f} s wall, {cpu:.0f} s CPU)",
            limit=1.0,
        ),
        Figure(f"poll: {UNITS:,} units: poller peak resident memory", peak_mb, "MB", 300.0, False,
               reference=f"{JOBS} threads, one archive writer"),
    ]


def fleet_b(directory: Path) -> list[Figure]:
    inventory = directory / f"fleet-{RETRY_UNITS}.toml"
    db = directory / "b.sqlite"
    polls = received = added = dropped = calls = 0
    complete = False
    with served_fleet(RETRY_UNITS, directory, DIAL) as entries:
        while polls < MAX_POLLS and not complete:
            polls += 1
            _, report, _, _, _ = poll_process(inventory, db, JOBS)
            rows = report["units"]
            received += sum(row["received"] for row in rows)
            added += report["total"]["added"]
            calls += sum(row["calls"] + row["reconnects"] for row in rows)
            dropped += sum(row["reconnects"] for row in rows)
            dropped += sum(1 for row in rows if row["error"] is not None and row["serial"] is not None)
            units, _, missing = completeness(db)
            complete = units == len(entries) and missing == 0
    refetched = received - added
    return [
        Figure(
            f"poll: {RETRY_UNITS} units, 10 % of calls busy or dropped: polls until every unit is complete",
            polls if complete else float(MAX_POLLS + 1), "polls", 3, False,
            reference=f"--dial {DIAL}, --redials {REDIALS}; {calls:,} calls; {units} of {len(entries)} "
                      f"units archived, {missing:,} records missing",
        ),
        Figure(
            f"poll: {RETRY_UNITS} units, 10 % of calls busy or dropped: records re-fetched per dropped call",
            refetched / max(dropped, 1), "records", DEFAULT_WINDOW, False,
            reference=f"{refetched:,} fetched twice over {dropped} dropped calls; limit one window "
                      f"({DEFAULT_WINDOW:,} records; a unit's whole week is about 680)",
        ),
    ]


def run() -> list[Figure]:
    directory = Path(tempfile.mkdtemp(prefix="turbolog-bench-poll-"))
    try:
        return fleet_a(directory) + fleet_b(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
