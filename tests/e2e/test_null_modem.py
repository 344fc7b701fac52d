"""turbosim on one end of a socat null modem, turbolog on the other: the log arrives byte for byte.

The chain: ``turbosim serve --port A`` <-> socat <-> ``turbolog pull B``, with the unit's flash image
as the independent witness of what the device holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from tests.e2e.chain import NullModem, archived, flash_log, pull_json, pulled_equals_device

pytestmark = pytest.mark.e2e

TURBOLOG = Path(sys.executable).with_name("turbolog")
"""The installed command, as a technician runs it."""


def test_turbolog_command_pulls_the_whole_log_through_a_socat_null_modem(
    null_modem: NullModem,
    turbosim_unit: Callable[..., RunningUnit],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Figure held: 300 h of history (about 1,200 records), archive == flash log, a re-pull adds 0."""
    image, db = tmp_path / "unit.img", tmp_path / "archive.sqlite"
    unit = turbosim_unit(link="port", port=str(null_modem.a), flash=image, history="300h", no_pace=True)
    done = subprocess.run(
        [str(TURBOLOG), "pull", str(null_modem.b), "--db", str(db), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["serial"] == unit.serial and result["added"] > 1_000
    assert (result["retries"], result["rejected"], result["reconnects"]) == (0, 0, 0)

    again = pull_json(str(null_modem.b), db, capsys)  # socat keeps the pair across a close and reopen
    assert (again["added"], again["received"]) == (0, 0)

    assert unit.stop() == 0
    pulled_equals_device(db, result, flash_log(image))
    assert len(archived(db, unit.serial)) == result["added"]
