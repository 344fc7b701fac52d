"""Units with no records, and with one: what a pull killed in its first window leaves behind.

Such a unit has its IDENTIFY (serial, model, counters) in the archive and nothing else, or a single
record.  Figures held, for every report and plot: no traceback, no "None" in text, exit 0 with a
plain statement ("none archived yet"), except a plot of a unit with nothing to draw, which is
refused with exit 2 and one line, and writes no file; `fleet --plot` draws the others and names
the empty one on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from host.archive import Archive
from host.cli import main
from protocol.records import scan_records
from tests.host.loopback import make_records

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IDENTIFY_COUNTERS = {"operating_s": 700 * 3600, "starts": 40, "trips": 3, "energy_wh": 10**7}


def add_unit(archive: Archive, serial: str, records: int) -> None:
    archive.upsert_unit(
        serial, "C65", "fw", 0, first_seq=0, next_seq=5000, capacity_records=10_000, device_time=10**6,
        **IDENTIFY_COUNTERS,
    )
    if records:
        archive.store_records(serial, scan_records(b"".join(make_records(records)))[0])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Units EMPTY (0 records), ONE (1 record) and FULL (200 records)."""
    path = tmp_path / "archive.sqlite"
    with Archive.open(path) as archive:
        for serial, records in (("EMPTY", 0), ("ONE", 1), ("FULL", 200)):
            add_unit(archive, serial, records)
    return path


def run(argv: list[str], db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([*argv, "--db", str(db)])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


@pytest.mark.parametrize("serial", ["EMPTY", "ONE"])
def test_summary(serial: str, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["summary", serial], db, capsys)
    assert (status, err) == (0, "")
    assert "None" not in out
    assert "MTBF             unknown: no operating hours between archived records yet" in out
    if serial == "EMPTY":
        assert "records          none archived yet (turbolog pull PORT)" in out
    status, out, _ = run(["summary", serial, "--json"], db, capsys)
    report = json.loads(out)
    assert report["records"] == (serial == "ONE")
    assert (report["first_record"] is None) == (serial == "EMPTY")


@pytest.mark.parametrize("serial", ["EMPTY", "ONE"])
def test_faults(serial: str, db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["faults", serial], db, capsys) == (0, "no faults match\n", "")
    assert run(["faults", serial, "--json"], db, capsys) == (0, "[]\n", "")


@pytest.mark.parametrize(("serial", "rows"), [("EMPTY", 0), ("ONE", 1)])
def test_export(serial: str, rows: int, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["export", serial, "--format", "csv"], db, capsys)
    assert (status, err) == (0, "") and out.count("\n") == 1 + rows
    out_file = tmp_path / f"{serial}.jsonl"
    status, out, err = run(["export", serial, "--format", "jsonl", "--out", str(out_file)], db, capsys)
    assert (status, out) == (0, "") and out_file.read_text().count("\n") == rows
    assert err.startswith(f"{rows:,} records written to ")


def test_plot_of_a_unit_without_records_is_refused(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "empty.png"
    status, out, err = run(["plot", "EMPTY", "--out", str(out_file)], db, capsys)
    assert (status, out) == (2, "")
    assert err == "turbolog: unit EMPTY has no samples or faults archived yet: nothing to plot\n"
    assert not out_file.exists()


def test_plot_of_a_unit_with_one_record(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "one.png"
    status, out, err = run(["plot", "ONE", "--out", str(out_file)], db, capsys)
    assert (status, out, err) == (0, "", f"plot written to {out_file}\n")
    assert out_file.read_bytes().startswith(PNG_SIGNATURE)


def test_units(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["units"], db, capsys)
    assert (status, err) == (0, "")
    assert [line.split()[0] for line in out.splitlines()[2:5]] == ["EMPTY", "FULL", "ONE"]
    assert "None" not in out


def test_fleet(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["fleet"], db, capsys)
    assert (status, err) == (0, "") and "3 units" in out and "None" not in out
    status, out, err = run(["fleet", "--json"], db, capsys)
    assert (status, err) == (0, "") and json.loads(out)["total"]["units"] == 3


def test_fleet_plot_leaves_out_and_names_a_unit_without_records(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "fleet.png"
    status, out, err = run(["fleet", "--plot", str(out_file)], db, capsys)
    assert status == 0 and "3 units" in out
    assert err.splitlines() == [
        f"plot written to {out_file}",
        "turbolog: the plot leaves out 1 units with no records archived yet: EMPTY",
    ]
    assert out_file.read_bytes().startswith(PNG_SIGNATURE)


def test_fleet_plot_draws_the_format_of_its_extension(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svg = tmp_path / "fleet.svg"
    status, _, _ = run(["fleet", "--plot", str(svg)], db, capsys)
    assert status == 0 and b"<svg" in svg.read_bytes()[:500]
    odd = tmp_path / "fleet.xyz"
    status, out, err = run(["fleet", "--plot", str(odd)], db, capsys)
    assert (status, out) == (2, "") and "cannot draw a plot as .xyz" in err and not odd.exists()


@pytest.mark.parametrize("records", [0, 1])
def test_fleet_plot_of_a_lone_unit(records: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The archive after the very first pull was killed (0), or got one record (1)."""
    db = tmp_path / "archive.sqlite"
    with Archive.open(db) as archive:
        add_unit(archive, "C65-000001", records)
    out_file = tmp_path / "fleet.png"
    status, _, err = run(["fleet", "--plot", str(out_file)], db, capsys)
    if records:
        assert (status, err) == (0, f"plot written to {out_file}\n")
        assert out_file.read_bytes().startswith(PNG_SIGNATURE)
    else:
        assert status == 2
        assert err == f"turbolog: no unit in the archive {db} has records yet: nothing to plot\n"
        assert not out_file.exists()
