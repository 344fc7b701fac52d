"""`turbolog clear-log` and `set-clock` against a real `turbosim` on a pty.

Figures held: clear-log is refused (exit 2) while records are not archived, and succeeds after a
pull; a wrong key is refused by the unit (exit 9) and the clock is unchanged; the right key from
TURBOLOG_KEY sets it.  The key never appears on a command line.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.cli import main

pytestmark = pytest.mark.e2e


@pytest.fixture
def unit(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    link, image = tmp_path / "turbine", tmp_path / "unit.img"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "firmware_sim.cli",
            "serve",
            "--pty",
            str(link),
            "--flash",
            str(image),
            "--history",
            "50h",
            "--no-pace",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    if not process.stdout.readline().startswith("ready "):
        process.kill()
        pytest.fail(f"turbosim did not start: {process.communicate()[1]}")
    yield str(link), image
    process.send_signal(signal.SIGTERM)
    process.wait(10)


def maintenance_key(image: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "firmware_sim.cli", "keys", "--flash", str(image), "--level", "maintenance"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()


def test_clear_log_only_when_archived_and_only_with_the_key(
    unit: tuple[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port, image = unit
    db = str(tmp_path / "a.sqlite")
    key_file = tmp_path / "maint.key"
    key_file.write_text(maintenance_key(image) + "\n")

    assert main(["clear-log", port, "--db", db, "--key-file", str(key_file)]) == 2
    assert "pull them first" in capsys.readouterr().err

    assert main(["pull", port, "--db", db, "--json"]) == 0
    pulled = json.loads(capsys.readouterr().out)
    assert main(["clear-log", port, "--db", db, "--key-file", str(key_file), "--json"]) == 0
    cleared = json.loads(capsys.readouterr().out)
    assert cleared["new_first_seq"] >= pulled["last_seq"] + 1

    wrong = tmp_path / "wrong.key"
    wrong.write_text("ab" * 32)
    assert main(["set-clock", port, "--key-file", str(wrong), "--time", "2031-01-01", "--yes"]) == 9
    assert "UNAUTHORIZED" in capsys.readouterr().err
    monkeypatch.setenv("TURBOLOG_KEY", key_file.read_text())
    assert main(["set-clock", port, "--time", "2031-01-01T00:00:00", "--json", "--yes"]) == 0
    assert json.loads(capsys.readouterr().out)["after"].startswith("2031-01-01")


def test_a_wrong_keys_audit_record_does_not_make_clear_log_refuse(
    unit: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The unit logs each refused attempt (section 7.6) after the pull: clear-log archives that short
    tail itself instead of refusing with 'not in the archive'; nothing cleared is lost."""
    port, image = unit
    db = str(tmp_path / "a.sqlite")
    key_file, wrong = tmp_path / "maint.key", tmp_path / "wrong.key"
    key_file.write_text(maintenance_key(image) + "\n")
    wrong.write_text("ab" * 32)
    assert main(["pull", port, "--db", db, "--json"]) == 0
    pulled = json.loads(capsys.readouterr().out)

    assert main(["clear-log", port, "--db", db, "--key-file", str(wrong)]) == 9
    assert "attempts left" in capsys.readouterr().err
    status = main(["clear-log", port, "--db", db, "--key-file", str(key_file), "--json"])
    assert status == 0, capsys.readouterr()
    cleared = json.loads(capsys.readouterr().out)
    assert cleared["new_first_seq"] > pulled["last_seq"] + 1, "the audit record came after the pull"
    assert cleared["cleared_after_check"] == 0
    assert main(["units", "--db", db, "--json"]) == 0
    first_epoch = json.loads(capsys.readouterr().out)[0]
    assert first_epoch["last_archived_seq"] == cleared["new_first_seq"] - 1, "every cleared record archived"
