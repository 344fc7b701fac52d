"""200 pulls whose link is killed at a random byte, each run again: the resume completes the log and
re-sends at most one window.

The line is the in-process loopback (tests/host/loopback.py) with the real device session; the cut
falls at a uniformly random byte of the device-to-host stream of a whole pull, the first pull gives
up at once (no reconnect), and a second pull over a fresh connection resumes from the archive.  The
device session outlives the cut, as a unit whose cable was pulled does, so its ``records_out``
counts every record it put in a frame across both pulls: ``records_out - LOG`` is what the resume
made it send again.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest

from host.archive import Archive
from host.errors import LinkError
from host.pull import pull
from tests.host.loopback import Line, ListUnit, make_records

PULLS = 200
LOG = 3_000
WINDOW = 512
"""Records per request: the bound on what a resume may send again."""
RAWS = make_records(LOG)


def full_pull_bytes(tmp_path: Path) -> int:
    """Bytes the device sends the host in one uninterrupted pull (where a cut can fall)."""
    line = Line(ListUnit(list(RAWS)))
    with Archive.open(tmp_path / "clean.sqlite") as archive:
        pull(line.connect, archive, clock=line.clock, window=WINDOW)
    return line.bytes_to_host


@pytest.mark.slow
def test_200_cut_pulls_resume_to_the_whole_log_resending_at_most_one_window(tmp_path: Path) -> None:
    """Figure held: 200/200 final archives == the device's log; every resume re-sends <= 512 records
    (one window) and fetches no verified record twice."""
    total = full_pull_bytes(tmp_path)
    rng = random.Random(2024)
    resent: list[int] = []
    kept: list[int] = []
    for attempt in range(PULLS):
        cut = rng.randrange(total)
        unit = ListUnit(list(RAWS))
        line = Line(unit, cuts=[cut], seed=attempt)
        with Archive.open(tmp_path / f"{attempt}.sqlite") as archive:
            with pytest.raises(LinkError):
                pull(line.connect, archive, clock=line.clock, window=WINDOW, max_reconnects=0)
            committed = archive.unit(unit.serial).record_count if archive.units() else 0
            resumed = pull(line.connect, archive, clock=line.clock, window=WINDOW)
            stored = list(archive.iter_raw(unit.serial))
        where = f"cut at byte {cut} of {total}"
        assert stored == [(seq, RAWS[seq]) for seq in range(LOG)], where
        assert resumed.received == LOG - committed, where
        resent.append(line.device.records_out - LOG)
        kept.append(committed)
        assert resent[-1] <= WINDOW, f"{where}: the device sent {resent[-1]} records twice"
    print(
        f"\ncut line: {PULLS} cuts, records kept before the resume median {statistics.median(kept):g}; "
        f"re-sent per resume median {statistics.median(resent):g}, max {max(resent)} (bound {WINDOW})"
    )
