"""What a fault means, as a technician reads it: `codes` lists and explains the codes of protocol's
table, `faults` names each fault and `--detail` shows its freeze-frame with units, `summary` names
the codes it counts; all against a unit that raised a scripted 5005 (TET over-temperature)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.cli import main
from protocol.fault_codes import FAULT_CODES

SERIAL = "C60-000001"
TET = FAULT_CODES[5005]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def db(tmp_path: Path, turbosim_unit: Callable[..., RunningUnit], capsys: pytest.CaptureFixture[str]) -> str:
    unit = turbosim_unit(link="inproc", history="800h", no_pace=True, faults=["5005@300h"])
    path = str(tmp_path / "archive.sqlite")
    assert run(["pull", unit.url, "--db", path], capsys)[0] == 0
    return path


def test_faults_names_each_fault_and_detail_shows_the_freeze_frame_with_units(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, plain, _ = run(["faults", SERIAL, "--db", db, "--code", "5005"], capsys)
    assert status == 0 and "TET over-temperature" in plain and "rpm" not in plain
    status, detail, _ = run(["faults", SERIAL, "--db", db, "--code", "5005", "--detail"], capsys)
    assert status == 0
    lines = detail.splitlines()
    fault_line = next(i for i, line in enumerate(lines) if "5005  TET over-temperature" in line)
    after = "\n".join(lines[fault_line + 1:])
    assert f"action: {TET.action}" in after
    for label, unit in [("speed", "rpm"), ("power", "kW"), ("TET 1", "°C"), ("ambient pressure", "kPa"),
                        ("fuel valve", "%"), ("grid frequency", "Hz"), ("operating hours", "h"),
                        ("energy", "kWh")]:
        assert any(line.strip().startswith(label) and line.endswith(f" {unit}") for line in lines), label
    assert "active fault      5005 TET over-temperature" in after
    status, as_json, _ = run(["faults", SERIAL, "--db", db, "--code", "5005", "--json"], capsys)
    assert [entry["name"] for entry in json.loads(as_json)] == [TET.name]


def test_detail_shows_the_run_up_to_the_trip_and_json_carries_it(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, detail, _ = run(["faults", SERIAL, "--db", db, "--code", "5005", "--detail"], capsys)
    assert status == 0
    lines = detail.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  run-up: 60 values 1 s apart"))
    runup = lines[start + 1 : start + 7]
    assert [line.strip().split("  ")[0] for line in runup] == [
        "TET average", "speed", "power", "grid voltage", "grid frequency", "DC bus"
    ]
    assert "°C -> " in runup[0] and "steady at 96,000 rpm" in runup[1]
    status, as_json, _ = run(["faults", SERIAL, "--db", db, "--code", "5005", "--json"], capsys)
    (entry,) = json.loads(as_json)
    tet = next(channel for channel in entry["runup"] if channel["channel"] == "TET_AVG")
    limit = 680.0  # C60's TET trip limit (docs/simulation.md)
    assert tet["runup_unit"] == "°C" and len(tet["runup_values"]) == 60
    assert tet["runup_values"][0] < limit < tet["runup_values"][-1]
    freeze_tet = (entry["freeze"]["tet1_c"] + entry["freeze"]["tet2_c"]) / 2
    assert tet["runup_values"][-1] == pytest.approx(freeze_tet, abs=0.1)


def test_summary_names_the_codes_it_counts(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["summary", SERIAL, "--db", db], capsys)
    assert status == 0
    assert any(line.split()[1:4] == ["5005", "TET", "over-temperature"] for line in out.splitlines())


def test_codes_lists_the_protocol_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["codes"], capsys)
    assert status == 0
    listed = {int(line.split()[0]) for line in out.splitlines()[2:] if line[:4].isdigit()}
    assert listed == set(FAULT_CODES)
    status, out, _ = run(["codes", "--json"], capsys)
    assert json.loads(out) == [d.to_json() for d in FAULT_CODES.values()]


def test_codes_explains_one(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["codes", "5005"], capsys)
    assert status == 0
    assert out.splitlines()[0] == "5005 TET over-temperature"
    assert TET.description in out and TET.action in out and "FAST_SHUTDOWN" in out and "ENGINE" in out
    status, out, _ = run(["codes", "5005", "--json"], capsys)
    assert json.loads(out)["action"] == TET.action


def test_an_unknown_code_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["codes", "1234"], capsys)
    assert (status, out) == (2, "")
    assert err == (
        f"turbolog: unknown fault code 1234: `turbolog codes` lists the {len(FAULT_CODES)} known codes\n"
    )


@pytest.mark.parametrize("code", ["x", "70000"])
def test_a_code_that_is_no_code_is_a_usage_error(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["codes", code])
    assert stop.value.code == 2
    assert "fault code" in capsys.readouterr().err.splitlines()[-1]
