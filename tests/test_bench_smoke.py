"""Every ``make bench`` suite runs end to end at a toy size.

A full bench run takes some 12 minutes and is not part of ``make test``, so a change that breaks a
suite (the link suite once read a column the archive no longer has) would otherwise be found only
by the next full run.  Here each suite's ``run()`` goes through all its steps (images, turbosim
processes, pulls, the fleet) with its sizes shrunk.  The figures themselves are not judged: at
these sizes they mean nothing, and speed belongs to ``make bench`` (a benchmark reports, it does
not gate); what is checked is that every suite returns every figure it promises, each a finite
number with its target.
"""

from __future__ import annotations

import math

import pytest

from bench import decode, emulator, fleet, latency, link, memory, noisy, poll, serve_fleet, startup, unpaced
from bench.figures import Figure

pytestmark = pytest.mark.slow


@pytest.fixture
def toy_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpaced, "RECORDS", 3_000)
    monkeypatch.setattr(decode, "RECORDS", 3_000)
    monkeypatch.setattr(memory, "SMALL", 1_000)
    monkeypatch.setattr(memory, "LARGE", 3_000)
    monkeypatch.setattr(emulator, "HOURS", 48)
    monkeypatch.setattr(latency, "ROUND_TRIPS", 50)
    monkeypatch.setattr(link, "RECORDS", 400)
    monkeypatch.setattr(link, "RUNS", ((921_600, None, 1), (921_600, link.BER, 1)))
    monkeypatch.setattr(startup, "RUNS", 1)
    monkeypatch.setattr(noisy, "RECORDS", 300)
    monkeypatch.setattr(noisy, "NOISY_PULLS", 2)
    monkeypatch.setattr(noisy, "CLEAN_PULLS", 1)
    monkeypatch.setenv("TURBOLOG_FLEET_UNITS", "4")
    monkeypatch.setattr(serve_fleet, "UNITS", 12)
    monkeypatch.setattr(serve_fleet, "STREAMING", 4)
    monkeypatch.setattr(serve_fleet, "HISTORY", "6h")
    monkeypatch.setattr(serve_fleet, "IDLE_S", 0.5)
    monkeypatch.setattr(poll, "UNITS", 6)
    monkeypatch.setattr(poll, "JOBS", 3)
    monkeypatch.setattr(poll, "RETRY_UNITS", 6)
    monkeypatch.setattr(poll, "HISTORY", "6h")


def well_formed(figures: list[Figure], count: int) -> None:
    assert len(figures) == count, [f.name for f in figures]
    for figure in figures:
        assert math.isfinite(figure.value) and figure.value >= 0, figure
        assert figure.verdict in {"met", "MISSED", "info"}, figure


@pytest.mark.usefixtures("toy_sizes")
@pytest.mark.parametrize(
    ("suite", "figures"),
    [
        (startup.run, 2),
        (lambda: decode.run(repeats=1), 1),
        (lambda: unpaced.run(repeats=1), 3),
        (lambda: memory.run(repeats=1), 2),
        (lambda: emulator.run(repeats=1), 2),
        (latency.run, 2),
        (link.run, 2),
        (noisy.run, 4),
        (fleet.run, 9),
        (serve_fleet.run, 5),
        (poll.run, 6),
    ],
    ids=["startup", "decode", "unpaced", "memory", "emulator", "latency", "link", "noisy", "fleet",
         "serve_fleet", "poll"],
)
def test_a_bench_suite_runs_end_to_end(suite: object, figures: int) -> None:
    well_formed(suite(), figures)  # type: ignore[operator]
