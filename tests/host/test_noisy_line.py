"""100 pulls of a 2,000-record log over a noisy line: nothing lost, duplicated or altered.

The line is the in-process loopback (tests/host/loopback.py) with the real device session behind
it, impaired in both directions by :class:`firmware_sim.impairment.LineFaults` (rates per byte, the
bit error rate per bit), at 115,200 baud on a virtual clock.  Each pull gets its own seed.

Figures reported (print, visible with ``-s``, and in every assertion message): pulls completed,
records lost / fetched twice / altered, retries per pull, and efficiency = record bytes / bytes the
host received (the line's useful share towards the host).

The issue's figures (BER 1e-4, 1 % dropped and 1 % inserted bytes) are beyond what the pull
survives: even with one record per frame, a 2 % per-byte loss lets about one frame in six through,
and the pull gives up at its session start (IDENTIFY_RSP, ~100 bytes).  That test is kept at the
issue's figures and marked xfail; a passing test holds the highest noise the pull survives in every
one of its 100 pulls.
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

PULLS = 100
LOG = 2_000
RAWS = make_records(LOG)
RECORD_BYTES = sum(map(len, RAWS))
BAUD = 115_200
ISSUE_NOISE = LineFaults(bit_error_rate=1e-4, drop_rate=0.01, insert_rate=0.01)
SURVIVED_NOISE = LineFaults(bit_error_rate=1e-4, drop_rate=1e-3, insert_rate=1e-3)
"""The highest noise of 1e-2, 3e-3, 1e-3 (drop = insert per byte, BER 1e-4) at which all 100 pulls
completed when this was written, with frames shrinking as the line proves noisy (max_payload); at
3e-3, 10 of 10 trial pulls completed; at 1e-2, none of 3: IDENTIFY itself rarely gets through."""


@dataclass
class NoiseReport:
    faults: LineFaults
    completed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    fetched_twice: int = 0
    altered: int = 0
    retries: list[int] = field(default_factory=list)
    efficiency: list[float] = field(default_factory=list)

    def __str__(self) -> str:
        f = self.faults
        line = (
            f"BER {f.bit_error_rate:g}, drop {f.drop_rate:g}, insert {f.insert_rate:g}: "
            f"{self.completed}/{PULLS} pulls completed; {self.lost} records lost, "
            f"{self.fetched_twice} fetched twice, {self.altered} altered"
        )
        if self.retries:
            line += (
                f"; retries per pull median {statistics.median(self.retries):g}, max {max(self.retries)}; "
                f"efficiency median {statistics.median(self.efficiency):.1%}, min {min(self.efficiency):.1%}"
            )
        failures = ", ".join(f"{count} x {name}" for name, count in sorted(self.failures.items()))
        return line + (f"; failures: {failures}" if failures else "")


def noisy_pulls(faults: LineFaults, tmp_path: Path) -> NoiseReport:
    report = NoiseReport(faults)
    for seed in range(PULLS):
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
    print(f"\nnoisy line: {report}")
    return report


def assert_nothing_lost(report: NoiseReport) -> None:
    assert report.completed == PULLS, str(report)
    assert (report.lost, report.fetched_twice, report.altered) == (0, 0, 0), str(report)


@pytest.mark.slow
def test_100_pulls_at_the_highest_noise_the_pull_survives(tmp_path: Path) -> None:
    """Figure held: BER 1e-4 with 0.1 % dropped and 0.1 % inserted bytes: 100/100 pulls, 0 records
    lost, fetched twice or altered (retries and efficiency reported)."""
    assert_nothing_lost(noisy_pulls(SURVIVED_NOISE, tmp_path))


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="at 1 % dropped and 1 % inserted bytes a frame survives with about e^(-0.02 x its size): even "
    "with one record per frame (max_payload) about 1 in 6; measured 0/100 pulls completed (76 LinkTimeout, "
    "24 DeviceError: they give up at a session start, IDENTIFY or its ABORT never coming through).",
)
def test_100_pulls_at_the_issues_noise(tmp_path: Path) -> None:
    """Figure held: the issue's BER 1e-4, 1 % dropped and 1 % inserted bytes: 100/100 pulls, 0 records
    lost, fetched twice or altered."""
    assert_nothing_lost(noisy_pulls(ISSUE_NOISE, tmp_path))
