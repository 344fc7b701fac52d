"""A record deleted from the archive with sqlite3, as a user meets it, against a real `turbosim` on a pty.

Figures held: after a pull, a sample and a fault deleted from their tables make `summary` and
`fleet` exit 4 with one line naming the seqs; the next `turbolog pull` fetches exactly those two
records again (added 2), after which the archive holds every record byte for byte as before and
`summary` answers again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.archive import Archive
from host.cli import main

pytestmark = pytest.mark.e2e


def test_deleted_records_are_reported_and_pulled_again(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unit = turbosim_unit(model="C30", history="400h", no_pace=True, faults=["5005@200h"])
    db = tmp_path / "archive.sqlite"
    assert main(["pull", unit.url, "--db", str(db), "--json"]) == 0
    with Archive.open(db, readonly=True) as archive:
        held = list(archive.iter_raw(unit.serial))
        (fault,) = next(archive.query("SELECT MIN(seq) FROM faults"), (None,))
        middle = "SELECT seq FROM samples ORDER BY seq LIMIT 1 OFFSET ?"
        (sample,) = next(archive.query(middle, (len(held) // 2,)))
    assert fault is not None, "the emulated history logged no fault"
    with sqlite3.connect(db) as edit:
        for table, seq in (("samples", sample), ("faults", fault)):
            assert edit.execute(f"DELETE FROM {table} WHERE seq = ?", (seq,)).rowcount == 1
    edit.close()

    capsys.readouterr()
    for command in (["summary", unit.serial], ["fleet"]):
        assert main([*command, "--db", str(db)]) == 4
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1
        seqs = ", ".join(f"{seq}..{seq}" for seq in sorted((sample, fault)))
        assert f"2 records of unit {unit.serial} (seqs {seqs}) were deleted outside turbolog" in err

    assert main(["pull", unit.url, "--db", str(db), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2
    with Archive.open(db, readonly=True) as archive:
        assert list(archive.iter_raw(unit.serial)) == held
    assert main(["summary", unit.serial, "--db", str(db)]) == 0
