"""Breakdowns of `turbolog summary` and `turbolog fleet` (issue 16, item 4): failures by subsystem
and by code in Pareto order with their MTBF, failures per 1,000 starts, and availability split into
forced outages and planned service (EVENT SERVICE, its duration in value_b).

Figures held (hand-built log, 100 archived operating hours and 40 archived starts over a span of
100,000 s): faults 5012 x3, 8001 x2, 5005 x1 and a warning give 6 trips, engine 4 then grid 2,
codes 5012, 8001, 5005, each with MTBF 100 h / its count; 150 trips per 1,000 starts; one
failure down 1,000 s; two services, one of 3,000 s inside the span and one ending 500 s into it
(500 s counted): 3,500 s planned, availability 99.0 % forced and 95.5 % with planned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from host.archive import Archive
from host.cli import main
from protocol.enums import EngineState, EventKind, Severity, Subsystem
from protocol.records import (
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    SampleRecord,
    Snapshot,
    encode_record,
    scan_records,
)

T0 = 1_700_000_000
H = 3600


def snap(hours: float, starts: int, state: EngineState = EngineState.LOAD) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(operating_s=int(hours * H), starts=starts, state=int(state))
    return Snapshot(**fields)


def fault(
    seq: int, t: int, code: int, subsystem: Subsystem, severity: Severity = Severity.FAST_SHUTDOWN
) -> FaultRecord:
    return FaultRecord(seq, T0 + t, code, severity, subsystem, 0, snap(50, 20))


LOG: list[SampleRecord | FaultRecord | EventRecord] = [
    SampleRecord(0, T0, snap(1000, 10)),
    EventRecord(1, T0 + 500, EventKind.SERVICE, level=0, value_a=1, value_b=1000),  # began before the span
    fault(2, 10_000, 5012, Subsystem.ENGINE),
    EventRecord(3, T0 + 11_000, EventKind.START),
    fault(4, 20_000, 5012, Subsystem.ENGINE),
    EventRecord(5, T0 + 20_000, EventKind.START),
    fault(6, 30_000, 8001, Subsystem.GRID, Severity.NORMAL_SHUTDOWN),
    EventRecord(7, T0 + 30_000, EventKind.START),
    fault(8, 40_000, 5012, Subsystem.ENGINE),
    EventRecord(9, T0 + 40_000, EventKind.START),
    fault(10, 50_000, 8001, Subsystem.GRID, Severity.NORMAL_SHUTDOWN),
    EventRecord(11, T0 + 50_000, EventKind.START),
    fault(12, 60_000, 5005, Subsystem.ENGINE),
    EventRecord(13, T0 + 60_000, EventKind.START),
    fault(14, 65_000, 7015, Subsystem.INVERTER, Severity.WARNING),
    EventRecord(15, T0 + 80_000, EventKind.SERVICE, level=0, value_a=1, value_b=3000),
    SampleRecord(16, T0 + 100_000, snap(1100, 50)),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "b.sqlite"
    with Archive.open(path) as archive:
        archive.upsert_unit(
            "C60-7", "C60", "fw", 1, first_seq=0, next_seq=len(LOG), capacity_records=1000,
            device_time=T0 + 100_000, operating_s=1100 * H, starts=50, trips=6, energy_wh=0,
        )
        scanned, errors = scan_records(b"".join(encode_record(record) for record in LOG))
        assert not errors
        archive.store_records("C60-7", scanned)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out


def check(report: dict[str, Any]) -> None:
    breakdown = report["breakdown"]
    assert [(e["code"], e["failures"]) for e in breakdown["by_code"]] == [(5012, 3), (8001, 2), (5005, 1)]
    subsystems = [(e["subsystem"], e["failures"]) for e in breakdown["by_subsystem"]]
    assert subsystems == [("ENGINE", 4), ("GRID", 2)]
    assert [e["mtbf_hours"] for e in breakdown["by_code"]] == [pytest.approx(100 / 3, abs=1e-3), 50.0, 100.0]
    assert breakdown["by_subsystem"][0]["share"] == pytest.approx(4 / 6, abs=1e-4)
    assert (breakdown["exposure_starts"], breakdown["failures_per_1000_starts"]) == (40, 150.0)
    assert report["downtime_hours"] == round(1000 / H, 3)
    assert report["planned_downtime_hours"] == round(3500 / H, 3)
    assert report["availability"] == pytest.approx(1 - 1000 / 100_000)
    assert report["availability_with_planned"] == pytest.approx(1 - 4500 / 100_000)


def test_the_summary_breaks_failures_and_down_time_down(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out = run(["summary", "C60-7", "--db", str(db), "--json"], capsys)
    assert status == 0
    check(json.loads(out))
    _, out = run(["summary", "C60-7", "--db", str(db)], capsys)
    assert "per 1,000 starts 150.00 failures (40 archived starts)" in out
    assert "availability     99.00 % (forced outages); 95.50 % with 1.0 h planned service" in out


def test_the_fleet_breakdown_in_pareto_order(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = run(["fleet", "--db", str(db), "--json"], capsys)
    check(json.loads(out)["total"])
    _, out = run(["fleet", "--db", str(db)], capsys)
    assert "failures by code" not in out
    _, out = run(["fleet", "--db", str(db), "--breakdown"], capsys)
    lines = out.splitlines()
    code_at = lines.index(next(x for x in lines if x.startswith("code")))
    codes = [line.split()[0] for line in lines[code_at + 1:]]
    assert codes == ["5012", "8001", "5005"]
    subsystem_at = lines.index(next(x for x in lines if x.startswith("subsystem")))
    rows = [line.split()[:2] for line in lines[subsystem_at + 1:subsystem_at + 3]]
    assert rows == [["engine", "4"], ["grid", "2"]]
    total = next(line for line in lines if line.startswith("all") and "150.00" in line)
    assert "99.00%" in total and "95.50%" in total


def test_an_emulated_units_services_are_its_planned_down_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A baseload C60 over 17,000 h passes 8,000 and 16,000 operating hours: two services of 48 h
    each (docs/simulation.md section 6), 96 h of planned down time, none of it counted as forced."""
    from firmware_sim.cli import main as turbosim

    image, db = tmp_path / "s.img", tmp_path / "a.sqlite"
    assert turbosim(["run", "--flash", str(image), "--history", "17000h", "--seed", "5",
                     "--sample-interval", "1h"]) == 0
    assert main(["ingest", str(image), "--db", str(db)]) == 0
    _, out = run(["summary", "C60-000005", "--db", str(db), "--json"], capsys)
    report = json.loads(out)
    assert 16_000 < report["operating_hours"] < 17_000
    assert report["planned_downtime_hours"] == 96.0
    assert report["downtime_hours"] < 48
    span_h = 96 / (report["availability"] - report["availability_with_planned"])
    assert span_h == pytest.approx(17_000, rel=0.01)


def test_each_breakdowns_bounds_match_scipy(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every MTBF bound of the breakdown, against SciPy's chi-square quantiles (an independent oracle)."""
    chi2 = pytest.importorskip("scipy.stats").chi2
    _, out = run(["fleet", "--db", str(db), "--json"], capsys)
    breakdown = json.loads(out)["total"]["breakdown"]
    two_t = 2 * breakdown["exposure_hours"]
    for entry in breakdown["by_code"] + breakdown["by_subsystem"]:
        r = entry["failures"]
        assert entry["mtbf_lower90"] == pytest.approx(two_t / chi2.ppf(0.90, 2 * r + 2), abs=1e-3)
        assert entry["mtbf_ci90"][0] == pytest.approx(two_t / chi2.ppf(0.95, 2 * r + 2), abs=1e-3)
        assert entry["mtbf_ci90"][1] == pytest.approx(two_t / chi2.ppf(0.05, 2 * r), abs=1e-3)
