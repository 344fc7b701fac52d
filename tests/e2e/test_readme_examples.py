"""Every command line in the README's code blocks, run as a user would, against an emulated unit.

The examples are read from README.md when the tests are collected: every line of a ``sh`` block
that starts with ``turbolog`` or ``turbosim`` is one test, so a new example is tested the day it
is written.  Each runs as its own process (the installed command, in a site directory of its
own) after a small, explicit substitution of what only the README's reader has
(:data:`SUBSTITUTIONS`: the unit's port, listening ports, a fleet's size), and with the default
archive (``$XDG_DATA_HOME``) in the site, so ``--db`` is never needed.  Before the first
example the site holds what the README takes as given (:func:`site`): a C60 served on a pty at
``/dev/ttyUSB0``'s place, its log already pulled, its maintenance key in ``maint.key``, a flash
image ``unit.img`` and a directory of images ``fleet/``.

Each example must print something (on stdout or stderr), and none may print an empty result
(:data:`EMPTY_RESULTS`: a window that missed the unit's log, an empty table), and it must exit
as the README documents: 0, unless :data:`DOCUMENTED_EXITS` names another code and why.
Commands that run until stopped (:data:`RUN_UNTIL_STOPPED`) must print their first line, then
end with the code the README gives for the signal that stops them.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import Turbosim
from host.poll import Shard
from protocol.inventory import format_inventory, parse_inventory

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent
COMMANDS = ("turbolog", "turbosim")
TIMEOUT_S = 120.0


def readme_examples(text: str) -> list[str]:
    """Every ``turbolog``/``turbosim`` line of the ``sh`` code blocks of *text*, in order."""
    examples = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        examples += [line.strip() for line in block.splitlines() if line.strip().startswith(COMMANDS)]
    return examples


EXAMPLES = readme_examples(README.read_text(encoding="utf-8"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Site:
    """Where the examples run, and what the README's placeholders stand for in it."""

    path: Path
    env: dict[str, str]
    substitutions: dict[str, str]
    used: set[str]


def substitutions(site: Path, unit_port: str, spare_pty: str, shard: int) -> dict[str, str]:
    """What each placeholder of the README stands for here (a whole word of a command line)."""
    return {
        "/dev/ttyUSB0": unit_port,  # the unit's service port: the served C60's pty
        "/dev/ttyUSB1": spare_pty,  # a real cable's end for `turbosim serve --port`: a pty's far end
        "/tmp/turbine": str(site / "turbine"),  # ptys turbosim makes: in the site, not in /tmp
        "/tmp/t": str(site / "t"),
        "127.0.0.1:7000": f"127.0.0.1:{free_port()}",  # listening ports: ones free now
        "7001": str(free_port()),
        "4000": "4",  # `turbosim fleet --units 4000`: the press release's fleet takes minutes; 4 units
        "1000": "4",  # `turbosim serve-fleet --units 1000`: a minute of histories to live; 4 units
        "127.0.0.1:7000-7999": "127.0.0.1:0",  # a range of listening ports: ephemeral ones
        "fleet.toml": str(site / "fleet.toml"),  # the inventory of the fleet served for the site
        "fleet.csv": str(site / "fleet.csv"),  # the same, as CSV
        "2/4": f"{shard}/4",  # a quarter of that fleet that holds some of its units
        "shard-2-of-4": f"shard-{shard}-of-4",
        "/shared/fleet/": str(site / "shared-fleet") + "/",
    }


DOCUMENTED_EXITS = {
    # the unit's clock is years from now, and without a terminal to ask on, set-clock refuses a
    # change over a day unless --yes (README: "without a terminal it refuses, exit 2")
    "turbolog set-clock": (2, "confirm with --yes"),
}
"""Examples that exit with other than 0 as the README documents, by their first two words: the
code, and what their message says."""

RUN_UNTIL_STOPPED = {
    "turbosim serve": (signal.SIGTERM, 0),  # "0 stopped by SIGINT or SIGTERM once ready"
    "turbosim serve-fleet": (signal.SIGTERM, 0),  # "exit codes as serve's"
    "turbolog live": (signal.SIGINT, 130),  # "130 interrupted by Ctrl-C (SIGINT)"
}
"""Examples that run until stopped, by their first two words: the signal that stops them, and the
exit code the README gives for it."""

EMPTY_RESULTS = ("no faults match", "none archived yet", " 0 records written", "no units yet")
"""What a command prints for an empty result: an example that prints it shows nothing."""


def run(site: Site, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, cwd=site.path, env=site.env, capture_output=True, text=True,
                          timeout=TIMEOUT_S, check=False)
    if check and done.returncode:
        raise AssertionError(f"{shlex.join(argv)} exited {done.returncode}: {done.stderr[-500:]}")
    return done


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The README's world: a C60 (C60-000001) with 2,000 h of history and a scripted fault 5005,
    served unpaced on a pty; its log pulled into the default archive; its maintenance key in
    maint.key; a C65 image unit.img; three C30 images in fleet/ (serials that are not the served
    unit's); and eight C30s served by ``turbosim serve-fleet`` on loopback TCP, listed in fleet.toml
    and fleet.csv (the README polls them into archives of their own: their serials are the
    images')."""
    path = tmp_path_factory.mktemp("readme")
    env = {**os.environ, "XDG_DATA_HOME": str(path / "xdg"), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "120"}
    master, slave = os.openpty()
    served = subprocess.Popen(
        [str(BIN / "turbosim"), "serve-fleet", "--units", "8", "--mix", "C30:1", "--history", "12h",
         "--no-pace", "--tcp", "127.0.0.1:0", "--workers", "1", "--inventory", str(path / "fleet.toml")],
        cwd=path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert served.stdout is not None
        ready = served.stdout.readline()
        assert ready.startswith("ready "), f"serve-fleet did not start: {ready!r}"
        entries = parse_inventory((path / "fleet.toml").read_text(), kind="toml")
        (path / "fleet.csv").write_text(format_inventory(entries, kind="csv"))
        shard = next(k for k in range(1, 5) if any(Shard.parse(f"{k}/4").holds(e.url) for e in entries))
        yield from _site(path, env, master, slave, shard)
    finally:
        served.terminate()
        served.communicate(timeout=TIMEOUT_S)


def _site(path: Path, env: dict[str, str], master: int, slave: int, shard: int) -> Iterator[Site]:
    with Turbosim(path / "units") as launcher:
        (path / "units").mkdir(exist_ok=True)
        unit = launcher.start(model="C60", history="2000h", faults=["5005@1200h"], no_pace=True,
                              flash=path / "C60-000001.img")
        here = Site(path, env, substitutions(path, unit.url, os.ttyname(slave), shard), set())
        turbosim, turbolog = str(BIN / "turbosim"), str(BIN / "turbolog")
        keys = run(here, [turbosim, "keys", "--flash", "C60-000001.img", "--level", "maintenance"])
        key_file = path / "maint.key"
        key_file.write_text(keys.stdout)
        key_file.chmod(0o600)
        run(here, [turbosim, "run", "--flash", "unit.img", "--model", "C65", "--history", "500h"])
        run(here, [turbosim, "fleet", "--units", "3", "--mix", "C30:1", "--out", "fleet/"])
        run(here, [turbolog, "pull", unit.url])
        try:
            yield here
        finally:
            os.close(master)
            os.close(slave)


def command_line(site: Site, example: str) -> list[str]:
    words = shlex.split(example, comments=True)
    argv = []
    for word in words:
        if word in site.substitutions:
            site.used.add(word)
        argv.append(site.substitutions.get(word, word))
    argv[0] = str(BIN / argv[0])
    return argv


def test_the_readme_has_examples_of_both_commands() -> None:
    assert {example.split()[0] for example in EXAMPLES} == set(COMMANDS)
    assert len(EXAMPLES) > 20


@pytest.mark.parametrize("example", EXAMPLES, ids=[" ".join(e.split("#")[0].split()[:3]) for e in EXAMPLES])
def test_a_readme_example_prints_and_exits_as_documented(site: Site, example: str) -> None:
    argv = command_line(site, example)
    kind = " ".join(example.split()[:2])
    if kind in RUN_UNTIL_STOPPED:
        stop, expected = RUN_UNTIL_STOPPED[kind]
        status, said = run_until_first_line(site, argv, stop)
    else:
        expected, because = DOCUMENTED_EXITS.get(kind, (0, ""))
        done = run(site, argv, check=False)
        status, said = done.returncode, done.stdout + done.stderr
        assert because in said, f"{example!r} did not say {because!r}:\n{said}"
    assert said.strip(), f"{example!r} printed nothing"
    assert not any(empty in said for empty in EMPTY_RESULTS), f"{example!r} printed an empty result:\n{said}"
    assert status == expected, f"{example!r} exited {status}, not {expected}:\n{said[-1000:]}"


def run_until_first_line(site: Site, argv: list[str], stop: signal.Signals) -> tuple[int, str]:
    """Start *argv*, wait for its first line on stdout, send *stop*; its exit status and output."""
    process = subprocess.Popen(argv, cwd=site.path, env=site.env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        process.send_signal(stop)
        rest, errors = process.communicate(timeout=TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, first + rest + errors


def test_every_substitution_stands_for_a_placeholder_of_some_example(site: Site) -> None:
    for example in EXAMPLES:
        command_line(site, example)
    assert site.used == set(site.substitutions)
