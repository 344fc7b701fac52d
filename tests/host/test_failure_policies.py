"""What MTBF is computed over (issue 16, defect 2) and what counts as a failure (``--failures``),
through ``turbolog summary`` and ``turbolog fleet`` as a user types them.

Figures held: an emulated C60 whose small flash overwrote most of its 3,000 h life shows the
hours its archive covers, the failures in them and the coverage beside its lifetime hours, and
MTBF over the archive unless ``--hours lifetime`` (then flagged, over the counters); a hand-built
log of one fault of each kind counts 6 trips, 2 equipment failures, 3 service calls, and what a
custom selection names; every table and --json say the policy; bad policies, codes, subsystems
and bases are one line and exit 2.  The table's lockout field is the emulator's restart policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firmware_sim.cli import main as turbosim
from firmware_sim.faults import CATALOGUE
from host.archive import Archive
from host.cli import main
from host.reliability import mtbf
from protocol.enums import EventFlag, Severity, Subsystem
from protocol.fault_codes import FAULT_CODES
from protocol.records import (
    SNAPSHOT_FIELDS,
    FaultRecord,
    SampleRecord,
    Snapshot,
    encode_record,
    scan_records,
)

T0 = 1_700_000_000
H = 3600


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


# --- defect 2: exposure, failures and coverage beside MTBF ---------------------------------------


@pytest.fixture(scope="module")
def overwritten(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An emulated C60 that lived 3,000 h on 8 flash sectors: the archive holds its last days."""
    where = tmp_path_factory.mktemp("overwritten")
    image = where / "u.img"
    assert turbosim(["run", "--flash", str(image), "--sectors", "8", "--history", "3000h", "--seed", "4",
                     "--fault", "5005@2960h"]) == 0
    db = where / "a.sqlite"
    assert main(["ingest", str(image), "--db", str(db)]) == 0
    return db


def test_summary_shows_the_hours_mtbf_is_computed_over(
    overwritten: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(["summary", "C60-000004", "--db", str(overwritten), "--json"], capsys)
    report = json.loads(out)
    assert status == 0 and report["evicted"] > 0
    lifetime, exposure = report["operating_hours"], report["exposure_hours"]
    assert 2990 < lifetime <= 3000 and 0 < exposure < lifetime / 10
    assert report["coverage"] == pytest.approx(exposure / lifetime, abs=1e-4)
    assert report["failures"] == 1 and report["failures_policy"]["name"] == "trips"
    assert report["mtbf_from"] | {"basis": "archive", "hours": exposure, "failures": 1} == report["mtbf_from"]
    assert report["mtbf_hours"] == pytest.approx(exposure)
    status, out, _ = run(["summary", "C60-000004", "--db", str(overwritten)], capsys)
    text = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert f"{exposure:,.1f} h of them ({report['coverage']:.1%})" in text["archive"]
    assert f"1 in {exposure:,.1f} archived h" in text["failures"]
    assert "policy           trips:" in out


def test_lifetime_counters_only_when_asked_and_flagged(
    overwritten: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(["summary", "C60-000004", "--db", str(overwritten), "--hours", "lifetime", "--json"],
                         capsys)
    report = json.loads(out)
    expected = mtbf(report["operating_hours"], report["trips"])
    assert report["mtbf_from"]["basis"] == "lifetime" and "lifetime counters" in report["mtbf_from"]["source"]
    assert report["mtbf_hours"] == pytest.approx(expected.point, abs=1e-3)
    assert report["mtbf_lower90"] == pytest.approx(expected.lower_one_sided, abs=1e-3)
    _, out, _ = run(["summary", "C60-000004", "--db", str(overwritten), "--hours", "lifetime"], capsys)
    assert "MTBF over the lifetime counters, not the archive" in out
    _, out, _ = run(["fleet", "--db", str(overwritten), "--hours", "lifetime"], capsys)
    assert "MTBF over: the devices' lifetime counters" in out


def test_the_fleet_table_shows_exposure_and_coverage(
    overwritten: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(["fleet", "--db", str(overwritten), "--json"], capsys)
    report = json.loads(out)
    total = report["total"]
    assert report["failures_policy"]["name"] == "trips" and report["hours_basis"] == "archive"
    assert total["mtbf_from"]["hours"] == total["exposure_hours"] < total["operating_hours"]
    assert total["coverage"] == pytest.approx(total["exposure_hours"] / total["operating_hours"], abs=1e-4)
    _, out, _ = run(["fleet", "--db", str(overwritten)], capsys)
    header = next(line for line in out.splitlines() if line.startswith("model"))
    assert "failures  exposure h  coverage  MTBF h" in header
    assert f"{total['coverage']:.1%}" in out and "failures (trips):" in out


# --- failure policies ------------------------------------------------------------------------------


def snap(hours: float) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(operating_s=int(hours * H))
    return Snapshot(**fields)


def fault(seq: int, code: int, severity: Severity, subsystem: Subsystem, flags: int = 0) -> FaultRecord:
    return FaultRecord(seq, T0 + seq * H, code, severity, subsystem, flags, snap(seq))


ONE_OF_EACH: list[SampleRecord | FaultRecord] = [
    SampleRecord(0, T0, snap(0)),
    fault(1, 8001, Severity.NORMAL_SHUTDOWN, Subsystem.GRID,
          EventFlag.AC_UNDER_VOLTAGE | EventFlag.GRID_DISCONNECT),
    fault(2, 2022, Severity.FAST_SHUTDOWN, Subsystem.CONTROLS, EventFlag.MANUAL_SHUTDOWN),
    fault(3, 2010, Severity.NORMAL_SHUTDOWN, Subsystem.CONTROLS, EventFlag.CABINET_OPEN),
    fault(4, 5005, Severity.FAST_SHUTDOWN, Subsystem.ENGINE, EventFlag.OVER_TEMPERATURE),
    fault(5, 9001, Severity.FAST_SHUTDOWN, Subsystem.DC_BUS, EventFlag.DC_OVER_VOLTAGE),
    fault(6, 7015, Severity.WARNING, Subsystem.INVERTER, EventFlag.OVER_TEMPERATURE),
    fault(7, 8999, Severity.NORMAL_SHUTDOWN, Subsystem.GRID, EventFlag.GRID_DISCONNECT),  # a newer firmware's
    SampleRecord(8, T0 + 120 * H, snap(120)),
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "p.sqlite"
    with Archive.open(path) as archive:
        archive.upsert_unit(
            "C65-1", "C65", "fw", 1, first_seq=0, next_seq=9, capacity_records=1000, device_time=T0 + 120 * H,
            operating_s=120 * H, starts=1, trips=6, energy_wh=0,
        )
        scanned, errors = scan_records(b"".join(encode_record(record) for record in ONE_OF_EACH))
        assert not errors
        archive.store_records("C65-1", scanned)
    return path


@pytest.mark.parametrize(("policy", "codes"), [
    ("trips", {8001: 1, 2022: 1, 2010: 1, 5005: 1, 9001: 1, 8999: 1}),
    ("equipment", {5005: 1, 9001: 1}),
    ("service-calls", {2022: 1, 2010: 1, 5005: 1}),
    ("5005,dc_bus", {5005: 1, 9001: 1}),
    ("GRID", {8001: 1, 8999: 1}),
])
def test_each_policy_counts_its_failures(
    db: Path, capsys: pytest.CaptureFixture[str], policy: str, codes: dict[int, int]
) -> None:
    status, out, _ = run(["summary", "C65-1", "--db", str(db), "--failures", policy, "--json"], capsys)
    report = json.loads(out)
    assert status == 0
    assert report["failures"] == sum(codes.values())
    assert {int(code): count for code, count in report["failures_by_code"].items()} == codes
    assert report["mtbf_hours"] == pytest.approx(120 / sum(codes.values()), abs=1e-3)
    name = policy if policy in ("trips", "equipment", "service-calls") else "custom"
    assert report["failures_policy"]["name"] == name
    _, out, _ = run(["fleet", "--db", str(db), "--failures", policy, "--json"], capsys)
    fleet = json.loads(out)
    assert fleet["failures_policy"]["name"] == name
    assert fleet["total"]["failures"] == sum(codes.values())
    assert all(model["failures_policy"]["name"] == name for model in fleet["models"])
    _, out, _ = run(["fleet", "--db", str(db), "--failures", policy], capsys)
    assert f"failures ({name}):" in out
    _, out, _ = run(["summary", "C65-1", "--db", str(db), "--failures", policy], capsys)
    assert f"policy           {name}:" in out


@pytest.mark.parametrize("argv", [
    ["--failures", "reliability"],
    ["--failures", "9999"],
    ["--failures", "7015"],
    ["--failures", "5005,turbocharger"],
    ["--hours", "calendar"],
    ["--hours", "lifetime", "--failures", "equipment"],
])
@pytest.mark.parametrize("command", [["summary", "C65-1"], ["fleet"]])
def test_bad_definitions_are_one_line_and_exit_2(
    db: Path, capsys: pytest.CaptureFixture[str], command: list[str], argv: list[str]
) -> None:
    status, out, err = run([*command, "--db", str(db), *argv], capsys)
    assert status == 2 and out == ""
    assert err.startswith("turbolog: ") and err.count("\n") == 1, err


def test_the_tables_lockouts_are_the_emulators() -> None:
    assert {code for code, d in FAULT_CODES.items() if d.lockout} == {
        code for code, entry in CATALOGUE.items() if entry.restart.lockout
    }
