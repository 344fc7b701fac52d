"""`turbosim` as a user runs it: serve on a pty, talk to it with plain pyserial, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from firmware_sim.cli import main, parse_duration
from protocol.framing import FrameDecoder
from protocol.messages import Identify, IdentifyResponse, RangeEnd, ReadRange, decode_message, encode_message

TURBOSIM = [sys.executable, "-m", "firmware_sim.cli"]


class Served:
    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [*TURBOSIM, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("ready "):
            self.process.kill()
            raise AssertionError(f"no ready line: {line!r} {self.process.stderr.read()}")  # type: ignore[union-attr]
        self.url = line.split(" ", 1)[1].strip()

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(10)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for unit in started:
        if unit.process.poll() is None:
            unit.process.kill()
            unit.process.wait(5)


def ask(port: serial.Serial, request: object, seq: int, until: type) -> list[object]:
    port.write(encode_message(request, seq))  # type: ignore[arg-type]
    decoder, answers = FrameDecoder(), []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for frame in decoder.feed(port.read(4096)):
            answers.append(decode_message(frame))  # type: ignore[arg-type]
            if isinstance(answers[-1], until):
                return answers
    raise AssertionError(f"no {until.__name__} in {answers}")


def test_a_plain_pyserial_program_can_talk_to_a_served_pty(tmp_path: Path, served: list[Served]) -> None:
    link = tmp_path / "turbine"
    unit = Served(["--pty", str(link), "--model", "C60", "--history", "2000h"])
    served.append(unit)
    assert unit.url == str(link) and link.is_symlink()
    with serial.Serial(str(link), 115200, timeout=0.2) as port:
        (info,) = ask(port, Identify(), 1, IdentifyResponse)
        assert isinstance(info, IdentifyResponse)
        assert (info.model, info.serial) == ("C60", "C60-000001")
        assert 1990 <= info.operating_s / 3600 <= 2001
        answers = ask(port, ReadRange(0, 50), 2, RangeEnd)
        assert answers[-1].sent == 50  # type: ignore[attr-defined]
    assert unit.stop() == 0
    assert not link.exists() and not link.is_symlink(), "SIGTERM must remove the symlink"


def test_the_flash_image_keeps_the_history_across_restarts(tmp_path: Path, served: list[Served]) -> None:
    image = tmp_path / "unit.img"
    first = Served(["--pty", str(tmp_path / "a"), "--flash", str(image), "--history", "300h"])
    served.append(first)
    assert first.stop() == 0
    before = json.loads(run_main(["info", "--flash", str(image), "--json"]))
    second = Served(["--pty", str(tmp_path / "b"), "--flash", str(image), "--history", "400h"])  # its age
    served.append(second)
    assert second.stop() == 0
    after = json.loads(run_main(["info", "--flash", str(image), "--json"]))
    assert after["first_seq"] == before["first_seq"] == 0
    assert after["next_seq"] > before["next_seq"]
    assert after["operating_hours"] >= before["operating_hours"] + 99
    assert after["starts"] >= before["starts"]


def run_main(argv: list[str]) -> str:
    result = subprocess.run([*TURBOSIM, *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["serve", "--pty", "/nonexistent-dir/x"], "cannot create symlink"),
        (["serve", "--tcp", "not-a-port"], "bad address"),
        (["serve", "--tcp", "127.0.0.1:1", "--speed", "0"], "--speed must be positive"),
        (["info", "--flash", "/dev/null/x"], "turbosim:"),
    ],
)
def test_bad_input_is_one_line_and_a_nonzero_exit(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_a_foreign_flash_image_is_refused_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "foreign.img"
    image.write_bytes(os.urandom(8192))
    assert main(["info", "--flash", str(image)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("turbosim: ") and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("2000h", 7_200_000), ("1y", 31_536_000)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "argv",
    [
        ["info", "--flash", "unit.img", "--js"],
        ["keys", "--flash", "unit.img", "--lev", "maintenance"],
        ["run", "--his", "1h"],
        ["serve", "--tcp", "127.0.0.1:0", "--spe", "0"],
        ["fleet", "--units", "1", "--hours", "1", "--out", "fleet", "--work", "1"],
    ],
)
def test_an_abbreviated_option_is_refused_not_guessed(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A prefix of a long option is not taken for it (``--key`` must never become ``--key-file``)."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


@pytest.mark.parametrize("interval", ["0", "0.5s", "nan", "inf"])
@pytest.mark.parametrize("command", ["run", "serve-fleet"])
def test_a_sample_interval_under_a_second_is_refused(
    command: str, interval: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not silently taken for one second: the log's timestamps are whole seconds."""
    where = ["--flash", str(tmp_path / "u.img")] if command == "run" else ["--units", "1", "--tcp", "0"]
    with pytest.raises(SystemExit) as exit_:
        main([command, *where, "--sample-interval", interval])
    assert exit_.value.code == 2
    assert "--sample-interval" in capsys.readouterr().err
    assert not (tmp_path / "u.img").exists()


def test_a_scripted_fault_the_run_never_reaches_is_reported(tmp_path: Path) -> None:
    image = tmp_path / "unit.img"
    argv = [*TURBOSIM, "run", "--flash", str(image), "--history", "200h", "--seed", "3"]
    first = subprocess.run([*argv, "--fault", "5005@90000h"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    lines = [line for line in first.stderr.splitlines() if "scripted" in line]
    assert len(lines) == 1
    assert lines[0].startswith("turbosim: scripted fault never raised: 5005@90000h not reached")
    assert "operating hour" in lines[0]


def test_a_scripted_fault_reached_is_not_reported(tmp_path: Path) -> None:
    result = subprocess.run(
        [*TURBOSIM, "run", "--flash", str(tmp_path / "u.img"), "--history", "200h", "--fault", "5012@0.01h"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "scripted" not in result.stderr


def test_serve_reports_a_scripted_fault_it_never_reached(tmp_path: Path, served: list[Served]) -> None:
    unit = Served(["--pty", str(tmp_path / "t"), "--history", "10h", "--fault", "4001@80000h"])
    served.append(unit)
    assert unit.stop() == 0
    assert unit.process.stderr is not None
    lines = [line for line in unit.process.stderr.read().splitlines() if "scripted" in line]
    assert lines == [lines[0]] and "4001@80000h not reached" in lines[0]
