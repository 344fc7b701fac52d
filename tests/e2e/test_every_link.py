"""One suite over every kind of link (back to back, as python-can's): the same scenarios, the same figures.

Links: the in-process line (``turbosim://``, no process), a pty, raw TCP, turbosim's RFC 2217, a socat
null modem, and ser2net's RFC 2217 in front of a socat null modem.  Scenarios: identify and a live
reading agree with each other; a pull archives exactly the device's log and a second adds 0; a pull
cut short resumes with only the rest; a set-clock signed with the unit's key is carried out and one
with a wrong key is refused.  Each unit is small (200 h, about 800 records), unpaced and held still
(``--speed 1e-6``, so its log and counters do not move while compared); the unit's flash image is
the independent witness of what the device holds.  What is specific to one kind of link stays in
its own file (pacing over RFC 2217, the installed command, ser2net's raw TCP, SIGINT, hostile input).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.archive import Archive
from host.cli import main as turbolog_main
from host.errors import LinkError
from host.pull import pull
from host.transport import Guarded, Transport, open_port
from tests.e2e.chain import NullModem, Ser2net, archived, flash_log, pull_json, pulled_equals_device

pytestmark = pytest.mark.e2e

LINKS = [
    "inproc", "pty", "tcp",
    *(pytest.param(kind, marks=pytest.mark.slow) for kind in ("rfc2217", "socat", "ser2net")),
]
"""The links through a tool or a chain are slow (make test runs them; each also has its own fast file)."""
HISTORY = "200h"
CUT_AFTER = 20_000
"""Bytes towards the host after which the interrupted pull's line is cut (the log is about 55 kB)."""


@dataclass
class Served:
    unit: RunningUnit
    url: str
    """What the host opens: the unit's own URL, or the far end of the chain in front of it."""
    image: Path


@pytest.fixture(params=LINKS)
def served(
    request: pytest.FixtureRequest, turbosim_unit: Callable[..., RunningUnit], tmp_path: Path
) -> Served:
    """A unit with a flash image, reached over the link kind of the parameter."""
    image = tmp_path / "unit.img"
    options = {"flash": image, "history": HISTORY, "no_pace": True, "extra_args": ["--speed", "0.000001"]}
    kind = request.param
    if kind in ("socat", "ser2net"):
        modem: NullModem = request.getfixturevalue("null_modem")
        unit = turbosim_unit(link="port", port=str(modem.a), **options)
        if kind == "socat":
            return Served(unit, str(modem.b), image)
        start: Callable[[str, Path], Ser2net] = request.getfixturevalue("ser2net")
        return Served(unit, start("rfc2217", modem.b).url, image)
    unit = turbosim_unit(link=kind, **options)
    return Served(unit, unit.url, image)


def turbolog(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``turbolog ARGV`` in-process: exit status, stdout, stderr."""
    capsys.readouterr()
    status = turbolog_main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_identify_and_a_live_reading_agree(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: info names the unit and its whole log; the live reading's counters and time are
    the ones IDENTIFY reported."""
    status, out, err = turbolog(["info", served.url, "--json"], capsys)
    assert status == 0, err
    info = json.loads(out)
    assert (info["serial"], info["model"]) == (served.unit.serial, served.unit.model)
    assert info["first_seq"] == 0 and info["records"] > 700

    status, out, err = turbolog(["live", served.url, "--count", "1", "--json"], capsys)
    assert status == 0, err
    live = json.loads(out)
    assert live["starts"] == info["starts"]
    assert live["operating_hours"] == pytest.approx(info["operating_hours"], abs=1e-3)
    assert datetime.fromisoformat(live["time"]) == datetime.fromisoformat(info["device_time"])
    assert served.unit.stop() == 0
    # the log info named, then the records of the orderly power-down that SIGTERM makes
    assert len([seq for seq, _ in flash_log(served.image) if seq <= info["last_seq"]]) == info["records"]


def test_a_pull_archives_exactly_the_devices_log(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: archive == flash log, byte for byte, with no retry; a second pull adds 0."""
    db = tmp_path / "archive.sqlite"
    result = pull_json(served.url, db, capsys)
    assert result["serial"] == served.unit.serial
    assert isinstance(result["added"], int) and result["added"] > 700
    assert (result["retries"], result["rejected"], result["reconnects"]) == (0, 0, 0)
    again = pull_json(served.url, db, capsys)
    assert (again["added"], again["received"]) == (0, 0)
    assert served.unit.stop() == 0
    pulled_equals_device(db, result, flash_log(served.image))


class CutAfter:
    """A transport that fails as a pulled cable does once *limit* bytes have come through."""

    def __init__(self, inner: Transport, limit: int) -> None:
        self.inner = inner
        self.left = limit

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        if self.left <= 0:
            raise ConnectionResetError("cable pulled")
        data = self.inner.read(max_bytes, timeout)
        self.left -= len(data)
        return data

    def close(self) -> None:
        self.inner.close()


def test_a_pull_cut_short_resumes_with_only_the_rest(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: a pull whose line is cut after 20 kB (no reconnect) keeps what it verified; the
    next pull adds exactly the rest, and the archive equals the flash log."""
    db = tmp_path / "archive.sqlite"
    with Archive.open(db) as archive, pytest.raises(LinkError, match="cable pulled"):
        pull(
            lambda: Guarded(CutAfter(open_port(served.url), CUT_AFTER), served.url), archive,
            max_reconnects=0, commit_every=64,
        )
    kept = len(archived(db, served.unit.serial))
    assert kept > 0
    resumed = pull_json(served.url, db, capsys)
    assert isinstance(resumed["added"], int) and resumed["added"] > 0, "the cut must fall inside the pull"
    assert resumed["added"] == resumed["last_seq"] + 1 - kept  # type: ignore[operator]
    assert resumed["evicted"] == 0
    assert served.unit.stop() == 0
    pulled_equals_device(db, resumed, flash_log(served.image))


def test_set_clock_needs_the_units_key(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: a wrong key is refused by the unit (exit 9, clock unchanged); the maintenance key
    from ``turbosim keys`` sets the clock to 2031-01-01."""
    keys = subprocess.run(
        [sys.executable, "-m", "firmware_sim.cli", "keys", "--flash", str(served.image),
         "--level", "maintenance"],
        capture_output=True, text=True, timeout=60, check=True,
    )
    key, wrong = tmp_path / "maintenance.key", tmp_path / "wrong.key"
    key.write_text(keys.stdout)
    wrong.write_text("ab" * 32)
    when = ["--time", "2031-01-01T00:00:00", "--json", "--yes"]

    status, _, err = turbolog(["set-clock", served.url, "--key-file", str(wrong), *when], capsys)
    assert status == 9 and "UNAUTHORIZED" in err, err
    status, out, err = turbolog(["info", served.url, "--json"], capsys)
    assert status == 0 and not json.loads(out)["device_time"].startswith("2031"), err

    status, out, err = turbolog(["set-clock", served.url, "--key-file", str(key), *when], capsys)
    assert status == 0, err
    assert json.loads(out)["after"].startswith("2031-01-01")
    status, out, err = turbolog(["info", served.url, "--json"], capsys)
    assert datetime.fromisoformat(json.loads(out)["device_time"]) >= datetime(2031, 1, 1, tzinfo=UTC)
    assert served.unit.stop() == 0
