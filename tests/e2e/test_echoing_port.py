"""A port that echoes what it is sent (socat ``exec:cat`` behind a pty, as a loopback plug or a modem
in command mode does) is named as such by `turbolog`, in one line with the device exit code, not
taken for a noisy line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.session import ClientSession
from protocol.messages import Identify, ReadRange
from tests.conftest import require_tool
from tests.e2e.chain import _stop_group

pytestmark = pytest.mark.e2e

TURBOLOG = [sys.executable, "-m", "host.cli"]
ECHO = "the port echoes what it is sent: a loopback, or a modem in command mode?"


@pytest.fixture
def echoing_port(tmp_path: Path) -> Iterator[Path]:
    """A pty whose other end is `cat`: every byte written comes back."""
    link = tmp_path / "echo"
    process = subprocess.Popen(
        [require_tool("socat"), f"pty,raw,echo=0,link={link}", "exec:cat"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30  # a guard against a hang, not a measurement
        while not link.is_symlink() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert link.is_symlink(), f"socat did not make its pty (status {process.poll()})"
        yield link
    finally:
        _stop_group(process)


@pytest.mark.parametrize(
    "command", [["info"], ["pull", "--db", "{tmp}/archive.sqlite"], ["live", "--count", "1"]]
)
def test_an_echoing_port_is_named_as_such(echoing_port: Path, tmp_path: Path, command: list[str]) -> None:
    argv = [*TURBOLOG, command[0], os.fspath(echoing_port), *(a.format(tmp=tmp_path) for a in command[1:])]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 9, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"turbolog: {ECHO} ("), result.stderr
    assert "noisy" not in result.stderr


def test_our_own_requests_coming_back_are_counted_as_echoes_not_answers() -> None:
    session = ClientSession()
    _, identify = session.send(Identify())
    _, read = session.send(ReadRange(start_seq=0, count=10, max_payload=0))
    assert session.receive_data(identify + read) == []
    assert (session.echoes, session.unexpected, session.frames_received) == (2, 2, 2)
