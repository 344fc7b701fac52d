"""`turbolog units` says what the archive holds of each unit (records, first and last archived seq,
last contact) and, where the device's log at its last IDENTIFY differs, by how much: here after a
pull cut short, as a technician's unplugged cable leaves it, and after the re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.archive import Archive
from host.cli import main
from host.errors import LinkError
from host.pull import pull
from tests.host.loopback import Line, ListUnit, make_records

N = 3000


def units(db: Path, capsys: pytest.CaptureFixture[str], *options: str) -> str:
    capsys.readouterr()
    assert main(["units", "--db", str(db), *options]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_units_after_a_cut_pull_and_after_its_rerun(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "archive.sqlite"
    unit = ListUnit(make_records(N))
    line = Line(unit, cuts=[60_000])
    with Archive.open(db) as archive:
        with pytest.raises(LinkError):
            pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance, max_reconnects=0)
        kept = archive.unit(unit.serial).record_count
    assert 0 < kept < N
    first, last = unit.first_seq, unit.next_seq - 1

    (row,) = json.loads(units(db, capsys, "--json"))
    held = (row["records"], row["first_archived_seq"], row["last_archived_seq"])
    assert held == (kept, first, first + kept - 1)
    assert row["not_archived"] == N - kept and row["last_contact"].endswith("+00:00")
    text = units(db, capsys).splitlines()
    assert text[0].split()[:7] == ["serial", "epoch", "model", "firmware", "records", "archived", "device"]
    assert f"{kept:,}" in text[2] and f"{first}..{first + kept - 1}" in text[2]
    assert f"{first}..{last}" in text[2]
    assert text[3:] == [
        f"{unit.serial} (epoch 1): the device's log ran {first}..{last} at its last contact; "
        f"{N - kept:,} of its {N:,} records are not archived (turbolog pull PORT fetches them)"
    ]

    with Archive.open(db) as archive:
        pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance)
    (row,) = json.loads(units(db, capsys, "--json"))
    assert (row["records"], row["last_archived_seq"], row["not_archived"]) == (N, last, 0)
    assert len(units(db, capsys).splitlines()) == 3, "no difference to tell"
