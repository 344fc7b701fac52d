"""Dial-in through a terminal server: ser2net exposes the socat end as RFC 2217 and as raw TCP.

The chain: ``turbosim serve --port A`` <-> socat <-> B <-> ser2net <-> ``turbolog pull URL``.  The
two accepters are exclusive on one device, so each test starts one.  Every archive must equal the
unit's flash log.

The RFC 2217 chain is driven here through the host library's pull; ``turbolog pull`` over it, with a
resume, identify, live and a signed set-clock, is in the suite over every link (test_every_link.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.archive import Archive
from host.pull import pull
from host.transport import open_port
from tests.e2e.chain import NullModem, Ser2net, flash_log, pull_json, pulled_equals_device

pytestmark = pytest.mark.e2e

Ser2netFactory = Callable[[Literal["rfc2217", "tcp"], Path], Ser2net]


def serve(turbosim_unit: Callable[..., RunningUnit], null_modem: NullModem, image: Path) -> RunningUnit:
    return turbosim_unit(link="port", port=str(null_modem.a), flash=image, history="300h", no_pace=True)


def test_dial_in_through_ser2net_raw_tcp(
    null_modem: NullModem, ser2net: Ser2netFactory, turbosim_unit: Callable[..., RunningUnit],
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Figure held: turbolog pull socket://... gives archive == flash log (300 h, about 1,200 records)."""
    image, db = tmp_path / "unit.img", tmp_path / "archive.sqlite"
    unit = serve(turbosim_unit, null_modem, image)
    accepter = ser2net("tcp", null_modem.b)
    assert accepter.url.startswith("socket://127.0.0.1:")
    result = pull_json(accepter.url, db, capsys)
    assert result["serial"] == unit.serial and result["added"] > 1_000
    assert unit.stop() == 0
    pulled_equals_device(db, result, flash_log(image))


def test_dial_in_through_ser2net_rfc2217_carries_a_host_pull(
    null_modem: NullModem, ser2net: Ser2netFactory, turbosim_unit: Callable[..., RunningUnit], tmp_path: Path,
) -> None:
    """Figure held: host.pull over ser2net's RFC 2217 accepter gives archive == flash log."""
    image, db = tmp_path / "unit.img", tmp_path / "archive.sqlite"
    unit = serve(turbosim_unit, null_modem, image)
    accepter = ser2net("rfc2217", null_modem.b)
    assert accepter.url.startswith("rfc2217://127.0.0.1:") and accepter.url.endswith("?ign_set_control")

    with Archive.open(db) as archive:
        result = pull(lambda: open_port(accepter.url, 115_200), archive)
    assert result.serial == unit.serial and result.added > 1_000
    assert unit.stop() == 0
    pulled_equals_device(db, result.to_json(), flash_log(image))
