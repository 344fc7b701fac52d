"""Configuration mistakes anywhere in firmware_sim raise its own ConfigError.

ConfigError is also a ValueError (as python-can's CanTimeoutError is also a
TimeoutError), so code that caught ValueError keeps working, while
``except SimulatorError`` (turbosim's own one-line report, exit 2) now
catches every one of them.  An in-process unit's options are read by
turbosim's own parser: a bad one raises ConfigError in the test instead of
printing usage and exiting the test's process.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

import firmware_sim
from firmware_sim.clock import SimClock
from firmware_sim.errors import ConfigError, SimulatorError
from firmware_sim.impairment import LineFaults
from firmware_sim.models import C60
from firmware_sim.pacing import Pacer
from firmware_sim.pytest_plugin import Turbosim
from firmware_sim.simulator import Simulator
from protocol.records import Record

JAN_1_2024 = 1_704_067_200


class _Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> int:
        self.records.append(record)
        return len(self.records) - 1


def _clock() -> SimClock:
    return SimClock(0, wall=lambda: 0.0)


def _simulator_sent_back() -> None:
    sim = Simulator(C60, seed=1, start_time=JAN_1_2024, log=_Sink())
    sim.advance_to(JAN_1_2024 + 100)
    sim.advance_to(JAN_1_2024 + 99)


MISTAKES: dict[str, Callable[[], object]] = {
    "clock speed 0": lambda: SimClock(0, speed=0, wall=lambda: 0.0),
    "clock skipped back": lambda: _clock().skip(-1),
    "clock losing negative time": lambda: _clock().lose(-1),
    "pacer at baud 0": lambda: Pacer(0, now=0.0),
    "pacer set to a negative baud": lambda: Pacer(None, now=0.0).set_baud(-9600, now=0.0),
    "impairment rate above 1": lambda: LineFaults(drop_rate=2.0),
    "impairment burst length 0": lambda: LineFaults(burst_length=0),
    "impairment negative cut": lambda: LineFaults(disconnect_after=-1),
    "impairment unknown key": lambda: LineFaults.parse("colour=1"),
    "impairment bad number": lambda: LineFaults.parse("ber=x"),
    "simulator sent back in time": _simulator_sent_back,
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_a_configuration_mistake_raises_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match=r"\S") as raised:
        MISTAKES[name]()
    assert isinstance(raised.value, SimulatorError) and isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    "options",
    [{"link": "carrier-pigeon"}, {"link": "port"}, {"link": "tcp", "port": "/dev/ttyS0"}],
    ids=["unknown link", "port without device", "device for tcp"],
)
def test_the_plugin_refuses_impossible_links_with_config_error(
    tmp_path: Path, options: dict[str, str]
) -> None:
    with Turbosim(tmp_path) as launcher, pytest.raises(ConfigError, match="link"):
        launcher.start(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"impair": "ber=2"}, "bit_error_rate must be between 0 and 1"),
        ({"impair": "colour=1"}, "bad impairment 'colour=1'"),
        ({"model": "C99"}, "invalid choice: 'C99'"),
        ({"extra_args": ["--colour", "red"]}, "unrecognized arguments: --colour red"),
    ],
    ids=["impossible rate", "unknown impairment", "unknown model", "unknown option"],
)
def test_an_in_process_unit_with_bad_options_raises_config_error_in_the_test(
    tmp_path: Path, options: dict[str, object], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: argparse printed usage and raised SystemExit(2), ending the test's process run."""
    with Turbosim(tmp_path) as launcher, pytest.raises(ConfigError, match=message):
        launcher.start(link="inproc", no_pace=True, **options)
    assert capsys.readouterr().err == ""  # no usage text printed over the test's output


def test_an_in_process_unit_has_no_pid(tmp_path: Path) -> None:
    with Turbosim(tmp_path) as launcher:
        unit = launcher.start(link="inproc", no_pace=True)
        with pytest.raises(ConfigError, match="no process of its own"):
            unit.pid  # noqa: B018


def test_no_module_raises_a_bare_value_error() -> None:
    """A guard: a new check written as ``raise ValueError(...)`` fails here, naming its place."""
    package = Path(firmware_sim.__file__).parent
    bare: list[str] = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and node.exc is not None:
                raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(raised, ast.Name) and raised.id == "ValueError":
                    bare.append(f"{path.name}:{node.lineno}")
    assert bare == []
