"""Fixtures of the end-to-end chains: a socat null modem and ser2net accepters, torn down whatever happens.

Both tools come through :func:`tests.conftest.require_tool`: a machine without them skips these tests,
CI (``CI=true``) fails them.  Emulated units come from the package's own pytest plugin
(``turbosim_unit``, :mod:`firmware_sim.pytest_plugin`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from tests.conftest import require_tool
from tests.e2e.chain import NullModem, Ser2net


@pytest.fixture
def null_modem(tmp_path: Path) -> Iterator[NullModem]:
    """A socat pty pair; ``.a`` for the emulator, ``.b`` for the host (or ser2net)."""
    modem = NullModem(require_tool("socat"), tmp_path)
    yield modem
    modem.stop()


@pytest.fixture
def ser2net(tmp_path: Path) -> Iterator[Callable[[Literal["rfc2217", "tcp"], Path], Ser2net]]:
    """Factory: ``ser2net(kind, device)`` starts one accepter onto *device*; each is stopped at the end."""
    program = require_tool("ser2net")
    started: list[Ser2net] = []

    def start(kind: Literal["rfc2217", "tcp"], device: Path) -> Ser2net:
        started.append(Ser2net(program, tmp_path, kind, device, f"ser2net-{len(started)}"))
        return started[-1]

    yield start
    for instance in started:
        instance.stop()
