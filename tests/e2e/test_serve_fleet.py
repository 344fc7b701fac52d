"""A fleet served by one `turbosim serve-fleet`, pulled unit by unit with the host's own pull.

The host reaches the fleet only through its ports and the inventory it printed: every unit is
pulled over the URL the inventory names, and its archive matches the serial the inventory expects
and the log the unit holds.  Busy and dropped calls only take more calls, never records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from host.archive import Archive
from host.errors import HostError
from host.pull import PullResult, pull
from host.transport import open_port
from protocol.inventory import InventoryEntry
from tests.firmware_sim.fleet_process import ServedFleet, served_fleets

CALLS_PER_UNIT = 12
"""Pulls tried per unit on a line that drops calls: 30 % busy and 30 % dropped leave 1 in 500,000 unlucky."""


@pytest.fixture
def serve_fleet(tmp_path: Path) -> Iterator[Callable[..., ServedFleet]]:
    yield from served_fleets(tmp_path)


def _pull_until_complete(entry: InventoryEntry, archive: Archive) -> tuple[int, PullResult]:
    """Pull *entry*'s unit until a pull ends cleanly; the calls it took and that pull's result."""
    for call in range(1, CALLS_PER_UNIT + 1):
        try:
            result = pull(lambda: open_port(entry.url, baud=entry.baud or 115200), archive, max_reconnects=0)
        except HostError:
            continue
        assert result.serial == entry.serial
        return call, result
    raise AssertionError(f"{entry.serial}: no clean pull in {CALLS_PER_UNIT} calls")


@pytest.mark.parametrize("link", ["--tcp", "--rfc2217"])
def test_every_unit_of_a_served_fleet_is_pulled_whole_from_its_inventory(
    serve_fleet: Callable[..., ServedFleet], tmp_path: Path, link: str
) -> None:
    fleet = serve_fleet("--units", "4", "--history", "2d", "--no-pace", link, "127.0.0.1:0")
    with Archive.open(tmp_path / "archive.sqlite") as archive:
        for entry in fleet.entries:
            result = pull(lambda entry=entry: open_port(entry.url, baud=entry.baud or 115200), archive)
            assert result.serial == entry.serial
            assert result.first_seq == 0 and result.added == result.last_seq + 1
            assert archive.unit(result.serial).record_count == result.added
        archived = sorted(unit.serial for unit in archive.units())
        assert archived == sorted(entry.serial or "" for entry in fleet.entries)


def test_busy_and_dropped_calls_cost_calls_not_records(
    serve_fleet: Callable[..., ServedFleet], tmp_path: Path
) -> None:
    fleet = serve_fleet(
        "--units", "4", "--history", "3d", "--no-pace", "--tcp", "127.0.0.1:0", "--seed", "8",
        "--dial", "busy=0.3,drop=0.3,drop_within=20000",
    )
    calls = 0
    with Archive.open(tmp_path / "archive.sqlite") as archive:
        for entry in fleet.entries:
            took, result = _pull_until_complete(entry, archive)
            calls += took
            assert result.first_seq == 0
            assert archive.unit(result.serial).record_count == result.last_seq + 1, "records lost or doubled"
    assert fleet.stop() == 0
    assert calls > len(fleet.entries), "no call was busy or dropped: the test proved nothing"
    assert "dropped mid-transfer" in fleet.stderr()
