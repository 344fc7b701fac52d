"""A real ``turbosim serve-fleet`` process for tests: started, waited for by its ready line, stopped.

:func:`served_fleets` is the body of a fixture: it yields a starter, ``start(*options)`` ->
:class:`ServedFleet` (the process, its inventory's path and entries), and at the end stops every
fleet it started (SIGTERM, then SIGKILL if one lingers).  Talking to a unit is the test's business:
:func:`identify` sends one IDENTIFY over a raw socket with the protocol's own encoders.
"""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from firmware_sim.pytest_plugin import TURBOSIM
from protocol.inventory import InventoryEntry, parse_inventory
from protocol.messages import Identify, IdentifyResponse, encode_message
from tests.firmware_sim.test_serving import ANSWER_WITHIN_S, address, answer

STOP_WITHIN_S = 60.0


@dataclass
class ServedFleet:
    process: subprocess.Popen[str]
    inventory: Path
    entries: list[InventoryEntry]
    stderr_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(STOP_WITHIN_S)


def run_fleet(workdir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``turbosim serve-fleet OPTIONS`` run to its end (for options it must refuse)."""
    return subprocess.run(
        [*TURBOSIM, "serve-fleet", *options], capture_output=True, text=True, cwd=workdir,
        timeout=STOP_WITHIN_S,
    )


def served_fleets(workdir: Path) -> Iterator[Callable[..., ServedFleet]]:
    started: list[ServedFleet] = []

    def start(*options: str) -> ServedFleet:
        stderr_path = workdir / f"serve-fleet-{len(started)}.stderr"
        with stderr_path.open("w") as stderr:
            process = subprocess.Popen(
                [*TURBOSIM, "serve-fleet", *options], stdout=subprocess.PIPE, stderr=stderr, text=True,
                cwd=workdir,
            )
        assert process.stdout is not None
        line = process.stdout.readline()  # pytest-timeout ends a fleet that never gets ready
        if not line.startswith("ready "):
            process.kill()
            process.wait()
            raise AssertionError(f"no ready line ({line!r}): {stderr_path.read_text()}")
        inventory = Path(line.split(" ", 1)[1].strip())
        entries = parse_inventory(inventory.read_text(), kind="toml")
        fleet = ServedFleet(process, inventory, entries, stderr_path)
        started.append(fleet)
        return fleet

    yield start
    for fleet in started:
        if fleet.process.poll() is None:
            fleet.process.send_signal(signal.SIGTERM)
            try:
                fleet.process.wait(STOP_WITHIN_S)
            except subprocess.TimeoutExpired:
                fleet.process.kill()
                fleet.process.wait()
        assert fleet.process.stdout is not None
        fleet.process.stdout.close()


def identify(url: str, seq: int = 1) -> IdentifyResponse | None:
    """One IDENTIFY on a new connection to *url* (``socket://HOST:PORT``); None if unanswered."""
    with socket.create_connection(address(url), timeout=ANSWER_WITHIN_S) as sock:
        message = answer(sock, encode_message(Identify(), seq), seq)
    return message if isinstance(message, IdentifyResponse) else None
