"""A real `turbolog pull` over a slow link: a delaying TCP proxy between it and a real `turbosim serve --tcp`.

The proxy (tests/e2e/delay_proxy.py) delays each direction by half the round trip, keeping order and
bytes, as a cellular or satellite modem does.  The unit is paced at 115200 baud.  Figures held: with a
3 s round trip (before turbolog measured the round trip, 1.4 s ended in exit 8, "unit stopped sending
records") and with 0.5 s, the pull exits 0 with every record of the unit, none fetched twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from tests.e2e.delay_proxy import DelayProxy

pytestmark = pytest.mark.e2e


def turbolog_json(*argv: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "host.cli", *argv, "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize("round_trip_s", [3.0, 0.5])
def test_a_pull_over_a_slow_link_gets_every_record(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, round_trip_s: float
) -> None:
    unit = turbosim_unit(model="C30", history="100h", link="tcp")
    records = turbolog_json("info", unit.url)["records"]
    assert isinstance(records, int) and records > 100
    db = tmp_path / "archive.sqlite"
    with DelayProxy(int(unit.url.rsplit(":", 1)[1]), round_trip_s / 2) as proxy:
        result = turbolog_json("pull", proxy.url, "--db", str(db))
    assert result["added"] == result["received"] == records
    assert turbolog_json("summary", unit.serial, "--db", str(db))["records"] == records
