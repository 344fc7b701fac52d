"""Start-up: how long ``turbolog --help`` and ``turbolog --version`` take, beside a bare interpreter.

Each figure is the median wall-clock time of several runs of the installed
command as its own process (``.venv/bin/turbolog --help``), output discarded,
with its bytecode cached as an installed package has it (``pip install``
compiles it): one run first writes the caches, even where the environment says
``PYTHONDONTWRITEBYTECODE``, since compiling the sources at every start is not
what a user waits for.
The limit beside it is ``python -c pass`` with the same interpreter, measured in
the same run: the floor no command can beat.  The command imports its heavy
modules (the protocol's formats, the archive, matplotlib, pyarrow) only when a
command needs them; this suite is where a module-level import that slows every
invocation shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from .device import command
from .figures import Figure

RUNS = 15
TARGET_S = 0.2


def wall_s(args: list[str]) -> float:
    """The median wall-clock seconds of :data:`RUNS` runs of *args*, each checked to succeed, after
    one that writes the bytecode caches."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for _ in range(RUNS + 1):
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
        times.append(time.perf_counter() - start)
    return sorted(times[1:])[RUNS // 2]


def run() -> list[Figure]:
    floor = wall_s([sys.executable, "-c", "pass"])
    turbolog = command("turbolog")
    reference = f"python -c pass: {floor:.3f} s; median of {RUNS} runs each"
    return [
        Figure(f"turbolog {option}", wall_s([turbolog, option]), "s", TARGET_S,
               higher_is_better=False, reference=reference, limit=floor)
        for option in ("--help", "--version")
    ]
