"""Pulls of a 2,000-record log over a noisy line (40 at the issue's noise, 100 at a tenth of its
dropped and inserted bytes): nothing lost, duplicated or altered.

The line is the in-process loopback (tests/host/loopback.py) with the real device session behind
it, impaired in both directions by :class:`firmware_sim.impairment.LineFaults` (rates per byte, the
bit error rate per bit), at 115,200 baud on a virtual clock.  Each pull gets its own seed.

Figures reported (print, visible with ``-s``, and in every assertion message): pulls completed,
records lost / fetched twice / altered, retries per pull, efficiency = record bytes / bytes the
host received (the line's useful share towards the host), and the pull's time on the line.

At the issue's figures (BER 1e-4, 1 % dropped and 1 % inserted bytes) about 2 % of bytes are hit, so
a frame of n bytes gets through with about e^(-0.021 n): one record per frame (83 bytes) about one
time in six, IDENTIFY_RSP (104 bytes) one in nine, a 1,012-byte frame never.  The best a reader can
do is one record per frame, about 14 % of the bytes it receives being records.  What it takes (measured
when this was written: 100/100 pulls, retries per pull median 3,446, max 3,829; efficiency median
14.1 %, min 12.4 %; line time per pull median 364 s, max 458 s, against 82 s for a perfect reader;
since a record waits for a digest to vouch for it and the idle timeout fits the line (issue 13):
retries median 3,582, max 4,058; efficiency median 12.5 %, min 11.1 %; line time median 127 s,
max 164 s; ``make bench`` holds the line time beside a perfect reader's):

- an exchange sends its request again as soon as its answer visibly came damaged, and keeps
  trying while the connection delivers good frames beside damaged ones (host.driver);
- the session start sends ABORT and IDENTIFY together, two chances per try of a frame that gets
  through, so that a noisy line is not taken for a device speaking something else;
- the frame size (max_payload) follows the damage of the line's recent frames, and windows whose
  frames prove four times too long (and mostly lost) are ended early; READ_SET requests stay as
  short as the frames asked for, four requests stay outstanding, and an idle timeout re-requests
  without a new session start (host.pull_core, host.line_health);
- the idle timeout fits the round trip and the frames asked for, and ABORT goes ahead of the next
  requests without waiting for its answer (host.pull).

The second test holds a tenth of the issue's dropped and inserted bytes, where full frames partly
get through: there the pull must find the frame size that pays (measured: efficiency median 58.5 %,
min 43.0 %; since records wait for a digest, those of a window whose RANGE_END is lost being sent
again: median 55.1 %, min 40.7 %).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from firmware_sim.impairment import LineFaults
from host.archive import Archive
from host.errors import HostError
from host.pull import pull
from tests.host.loopback import Line, ListUnit, make_records

LOG = 2_000
RAWS = make_records(LOG)
RECORD_BYTES = sum(map(len, RAWS))
BAUD = 115_200
ISSUE_NOISE = LineFaults(bit_error_rate=1e-4, drop_rate=0.01, insert_rate=0.01)
MODERATE_NOISE = LineFaults(bit_error_rate=1e-4, drop_rate=1e-3, insert_rate=1e-3)
"""A tenth of the issue's dropped and inserted bytes: a full frame gets through about one time in
twenty, one of 250 bytes about one in two."""


@dataclass
class NoiseReport:
    faults: LineFaults
    pulls: int
    completed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    fetched_twice: int = 0
    altered: int = 0
    retries: list[int] = field(default_factory=list)
    efficiency: list[float] = field(default_factory=list)
    line_s: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        f = self.faults
        line = (
            f"BER {f.bit_error_rate:g}, drop {f.drop_rate:g}, insert {f.insert_rate:g}: "
            f"{self.completed}/{self.pulls} pulls completed; {self.lost} records lost, "
            f"{self.fetched_twice} fetched twice, {self.altered} altered"
        )
        if self.retries:
            median = statistics.median
            line += (
                f"; retries per pull median {median(self.retries):g}, max {max(self.retries)}; "
                f"efficiency median {median(self.efficiency):.1%}, min {min(self.efficiency):.1%}; "
                f"line time per pull median {median(self.line_s):.0f} s, max {max(self.line_s):.0f} s"
            )
        failures = ", ".join(f"{count} x {name}" for name, count in sorted(self.failures.items()))
        return line + (f"; failures: {failures}" if failures else "")


def noisy_pulls(faults: LineFaults, tmp_path: Path, pulls: int) -> NoiseReport:
    report = NoiseReport(faults, pulls)
    for seed in range(pulls):
        unit = ListUnit(list(RAWS))
        line = Line(unit, to_host=faults, to_device=faults, seed=seed, baud=BAUD)
        with Archive.open(tmp_path / f"{seed}.sqlite") as archive:
            try:
                result = pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance)
            except HostError as exc:
                name = type(exc).__name__
                report.failures[name] = report.failures.get(name, 0) + 1
                result = None
            stored = dict(archive.iter_raw(unit.serial)) if archive.units() else {}
        report.lost += sum(1 for seq in range(LOG) if seq not in stored)
        report.altered += sum(1 for seq, raw in stored.items() if raw != RAWS[seq])
        if result is not None:
            report.completed += 1
            report.fetched_twice += result.received - result.added
            report.retries.append(result.retries)
            report.efficiency.append(RECORD_BYTES / result.bytes)
            report.line_s.append(result.elapsed_s)
    print(f"\nnoisy line: {report}")
    return report


def assert_nothing_lost(report: NoiseReport, *, efficiency_at_least: float) -> None:
    assert report.completed == report.pulls, str(report)
    assert (report.lost, report.fetched_twice, report.altered) == (0, 0, 0), str(report)
    assert min(report.efficiency) >= efficiency_at_least, str(report)


@pytest.mark.slow
@pytest.mark.timeout(900)  # ~90 s on an idle machine; 300 s and more when the two cores are shared
def test_40_pulls_at_the_issues_noise(tmp_path: Path) -> None:
    """Figure held: the issue's BER 1e-4, 1 % dropped and 1 % inserted bytes: 40/40 pulls, 0 records
    lost, fetched twice or altered; efficiency at least 10 % in every pull (the ceiling is about 14 %).
    40, not 100, pulls: each takes about 2 s of CPU, and ``make bench`` (noisy) holds the time figure."""
    assert_nothing_lost(noisy_pulls(ISSUE_NOISE, tmp_path, 40), efficiency_at_least=0.10)


@pytest.mark.slow
def test_100_pulls_at_a_tenth_of_the_issues_dropped_and_inserted_bytes(tmp_path: Path) -> None:
    """Figure held: BER 1e-4 with 0.1 % dropped and 0.1 % inserted bytes: 100/100 pulls, 0 records
    lost, fetched twice or altered; efficiency at least 40 % in every pull (full frames from start to
    end would give about 5 %, one record per frame about 65 %)."""
    assert_nothing_lost(noisy_pulls(MODERATE_NOISE, tmp_path, 100), efficiency_at_least=0.40)
