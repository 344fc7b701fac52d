"""No traps for a newcomer: `--version` on both commands, each subcommand's own examples in its `--help`
(and each example parses), a zero or negative `--window`/`--count` refused in the user's words, and the
pull's `next:` hint naming the archive the pull used.

Figures held: `turbolog --version` and `turbosim --version` print the installed package's version and exit
0; every subcommand's help ends with examples of that subcommand only, each accepted by the parser;
`--window 0` is exit 2 with "argument --window: must be 1 or more, not 0" and no internal names
(depth, max_attempts, commit_every); `pull --db FILE` suggests `turbolog summary SERIAL --db FILE`.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.cli import build_parser, main


@pytest.mark.parametrize("command", ["host.cli", "firmware_sim.cli"])
def test_version(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", command, "--version"], capture_output=True, text=True, timeout=60
    )
    name = "turbolog" if command == "host.cli" else "turbosim"
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"{name} {version('turbolog')}\n"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_each_subcommands_help_has_its_own_examples(name: str) -> None:
    parser = build_parser()
    text = _subcommands()[name].format_help()
    examples = text.split("\nexamples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert examples
    for line in examples:
        words = shlex.split(line.split(" | ")[0], comments=True)  # what a pipe gets is another command's
        while words and "=" in words[0]:
            words.pop(0)  # an environment variable set for the command
        assert words[:2] == ["turbolog", name], line
        parser.parse_args(words[1:])  # exits 2 on an example that does not parse


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pull", "/dev/null", "--window", "0"], "argument --window: must be 1 or more, not 0"),
        (["pull", "/dev/null", "--window", "-5"], "argument --window: must be 1 or more, not -5"),
        (["pull", "/dev/null", "--window", "many"], "argument --window: 'many' is not a whole number"),
        (["live", "/dev/null", "--count", "0"], "argument --count: must be 1 or more, not 0"),
    ],
)
def test_a_count_of_nothing_is_refused_in_the_users_words(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.splitlines()[-1].endswith(message)
    for internal in ("depth", "max_attempts", "commit_every"):
        assert internal not in err


def test_the_pull_hint_names_the_archive_it_used(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unit = turbosim_unit(link="inproc", history="20h", no_pace=True)
    db = tmp_path / "my archive.sqlite"
    assert main(["pull", unit.url, "--db", str(db)]) == 0
    hint = capsys.readouterr().out.splitlines()[-1].strip()
    assert hint == f"next: turbolog summary {unit.serial} --db '{db}'"
    assert main(shlex.split(hint.removeprefix("next: "))[1:]) == 0
