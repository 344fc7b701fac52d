"""One history per log, as a user meets it: real `turbosim` units and images, `turbolog` commands.

Figures held: a second unit under an archived serial number (two emulated units with the same
serial, different seeds) makes `pull` exit 9 with one line and leaves the archive byte for byte
as it was; `pull --new-log` archives it as epoch 2 and `summary` counts the hours of both once
each; a log cleared by `turbolog clear-log` goes on as the next epoch without `--new-log`, its
hours not counted twice; an image written by `turbosim run --flash` ingests, and an image of
another log under the same serial is refused the same way (exit 9, nothing written).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.cli import main

pytestmark = pytest.mark.e2e

SERIAL = "C60-SHARED"


def turbolog(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``turbolog ARGV``."""
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def turbosim(*argv: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "firmware_sim.cli", *argv], capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_two_units_with_one_serial_are_two_epochs_never_one_history(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "archive.sqlite"
    first = turbosim_unit(serial=SERIAL, seed=1, history="300h", no_pace=True)
    second = turbosim_unit(serial=SERIAL, seed=2, history="120h", no_pace=True)
    assert turbolog(["pull", first.url, "--db", str(db)], capsys)[0] == 0
    before = db.read_bytes()

    status, out, err = turbolog(["pull", second.url, "--db", str(db)], capsys)
    assert status == 9 and out == ""
    assert err.count("\n") == 1 and err.startswith(f"turbolog: unit {SERIAL}: its log (id ")
    assert "nothing was written" in err and "--new-log" in err
    assert db.read_bytes() == before

    status, out, _ = turbolog(["pull", second.url, "--db", str(db), "--json", "--new-log"], capsys)
    assert status == 0 and json.loads(out)["epoch"] == 2
    hours = []
    for epoch in ("1", "2"):
        status, out, _ = turbolog(["summary", SERIAL, "--db", str(db), "--json", "--epoch", epoch], capsys)
        hours.append(json.loads(out)["operating_hours"])
    status, out, _ = turbolog(["summary", SERIAL, "--db", str(db), "--json"], capsys)
    whole = json.loads(out)
    assert hours[0] > 250 and 90 < hours[1] < 130
    assert whole["operating_hours"] == pytest.approx(hours[0] + hours[1], abs=0.002)
    assert [e["epoch"] for e in whole["epochs"]] == [1, 2] and whole["counters_consistent"]
    status, out, _ = turbolog(["units", "--db", str(db), "--json"], capsys)
    assert [(row["serial"], row["epoch"]) for row in json.loads(out)] == [(SERIAL, 1), (SERIAL, 2)]


def test_a_log_cleared_by_turbolog_goes_on_as_the_next_epoch(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "archive.sqlite"
    unit = turbosim_unit(seed=5, history="200h", no_pace=True, flash=tmp_path / "unit.img")
    key = tmp_path / "maint.key"
    key.write_text(turbosim("keys", "--flash", str(tmp_path / "unit.img"), "--level", "maintenance"))
    key.chmod(0o600)
    assert turbolog(["pull", unit.url, "--db", str(db)], capsys)[0] == 0
    clear = ["clear-log", unit.url, "--db", str(db), "--key-file", str(key), "--json"]
    status, out, _ = turbolog(clear, capsys)
    assert status == 0 and json.loads(out)["epoch"] == 2
    status, out, err = turbolog(["pull", unit.url, "--db", str(db), "--json"], capsys)
    assert status == 0, err
    assert json.loads(out)["epoch"] == 2
    status, out, _ = turbolog(["info", unit.url, "--json"], capsys)
    on_unit = json.loads(out)["operating_hours"]
    status, out, _ = turbolog(["summary", unit.serial, "--db", str(db), "--json"], capsys)
    summary = json.loads(out)
    assert [e["continues"] for e in summary["epochs"]] == [False, True]
    assert summary["operating_hours"] == pytest.approx(on_unit, abs=1.0), "hours before the clear count once"


def test_an_image_written_by_turbosim_run_is_ingested_and_another_log_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "archive.sqlite"
    first, second = tmp_path / "first.img", tmp_path / "second.img"
    for image, seed, history in ((first, "3", "150h"), (second, "4", "90h")):
        turbosim("run", "--flash", str(image), "--model", "C65", "--serial", SERIAL, "--seed", seed,
                 "--history", history)
    assert json.loads((tmp_path / "first.json").read_text())["image"] == "first.img"

    status, out, err = turbolog(["ingest", str(first), "--db", str(db), "--json"], capsys)
    assert status == 0, err
    result = json.loads(out)
    assert result["ingested"] == 1 and result["added"] == result["records"] > 500
    status, out, _ = turbolog(["units", "--db", str(db), "--json"], capsys)
    (row,) = json.loads(out)
    assert (row["serial"], row["model"], row["epoch"]) == (SERIAL, "C65", 1) and len(row["log_id"]) == 16

    before = db.read_bytes()
    status, out, err = turbolog(["ingest", str(second), "--db", str(db), "--json"], capsys)
    assert status == 9
    (failed,) = json.loads(out)["results"]
    assert "is not the archived one" in failed["error"] and "ingest --new-log" in failed["error"]
    assert db.read_bytes() == before
    status, out, _ = turbolog(["ingest", str(second), "--db", str(db), "--json", "--new-log"], capsys)
    assert status == 0 and json.loads(out)["added"] > 300
    status, out, _ = turbolog(["ingest", str(first), "--db", str(db), "--json"], capsys)
    assert status == 9, "the first log is epoch 1 now, not the serial's latest"
