"""Time windows (``--since``/``--until``) of `turbolog faults`, `export` and `plot`, the plot's format by
extension, and what ``--json`` says export and plot wrote: through host.cli.main, as a user types them.

Figures held: the archive's log ends in November 2023, years before this computer's clock, as an emulated
unit's or a unit's read long after does: an age like ``30d`` counts back from the unit's last archived
record (``--relative-to now``: from this computer's clock, and then finds nothing); ``--until`` before
``--since`` is exit 2 and one line; ``--out x.svg`` / ``x.pdf`` writes SVG / PDF, an unknown extension is
exit 2 and one line with nothing written.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.archive import Archive
from host.cli import build_parser, main
from protocol.enums import Severity, Subsystem
from protocol.records import SNAPSHOT_FIELDS, FaultRecord, SampleRecord, Snapshot, encode_record, scan_records

SERIAL = "C60-000042"
T0 = 1_700_000_000
"""2023-11-14T22:13:20Z: the first record."""
STEP = 900
"""A sample every 15 minutes, as an emulated unit logs them."""
COUNT = 96 * 60
"""60 days of samples."""
LAST = T0 + STEP * (COUNT - 1)
FAULT_SEQS = (100, 2000, COUNT - 500, COUNT - 10)
"""Two faults more than 30 days before the last record, two within its last 30 days."""
DAY = 86_400


def _snapshot(seq: int) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(state=4, speed_rpm=60_000 + seq % 1000, power_w=20 * (seq % 3000), tet1_c_x10=2800)
    return Snapshot(**fields)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "archive.sqlite"
    with Archive.open(path) as archive:
        archive.upsert_unit(
            SERIAL,
            "C60",
            "fw",
            1,
            first_seq=0,
            next_seq=COUNT,
            capacity_records=100_000,
            device_time=LAST,
            operating_s=0,
            starts=0,
            trips=0,
            energy_wh=0,
        )
        records = [SampleRecord(seq, T0 + STEP * seq, _snapshot(seq)) for seq in range(COUNT)]
        for seq in FAULT_SEQS:
            records[seq] = FaultRecord(
                seq, T0 + STEP * seq, 5005, Severity.NORMAL_SHUTDOWN, Subsystem.ENGINE, 0, _snapshot(seq)
            )
        scanned, errors = scan_records(b"".join(encode_record(record) for record in records))
        assert not errors
        archive.store_records(SERIAL, scanned)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def one_line_error(err: str) -> str:
    assert err.startswith("turbolog: ") and err.count("\n") == 1, repr(err)
    return err


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


# --- faults: the README's `faults --since 30d` --------------------------------------------------------


def test_faults_since_an_age_counts_back_from_the_units_last_record(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(["faults", SERIAL, "--since", "30d", "--db", str(db), "--json"], capsys)
    assert status == 0
    assert [fault["seq"] for fault in json.loads(out)] == list(FAULT_SEQS[2:])

    status, out, _ = run(
        ["faults", SERIAL, "--since", "30d", "--relative-to", "now", "--db", str(db), "--json"], capsys
    )
    assert status == 0 and json.loads(out) == []


def test_faults_until_closes_the_window(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["faults", SERIAL, "--until", "30d", "--db", str(db), "--json"], capsys)
    assert status == 0
    assert [fault["seq"] for fault in json.loads(out)] == list(FAULT_SEQS[:2])


# --- export -----------------------------------------------------------------------------------------------


def test_export_since_an_age_keeps_the_last_records(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_file = tmp_path / "last-day.csv"
    status, _, err = run(
        ["export", SERIAL, "--format", "csv", "--since", "1d", "--out", str(out_file), "--db", str(db)],
        capsys,
    )
    assert status == 0
    rows = list(csv.DictReader(out_file.open()))
    assert [int(row["seq"]) for row in rows] == list(range(COUNT - 97, COUNT))
    assert rows[0]["time"] == iso(LAST - DAY)
    assert f"97 records written to {out_file} (since {iso(LAST - DAY)})" in err


def test_export_absolute_since_and_until(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    since, until = T0 + STEP * 10, T0 + STEP * 20
    status, out, _ = run(
        [
            "export",
            SERIAL,
            "--format",
            "jsonl",
            "--since",
            iso(since),
            "--until",
            iso(until)[:19],
            "--db",
            str(db),
        ],
        capsys,
    )
    assert status == 0
    assert [json.loads(line)["seq"] for line in out.splitlines()] == list(range(10, 21))


def test_export_relative_to_now_finds_nothing_in_an_old_log(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(
        ["export", SERIAL, "--format", "jsonl", "--since", "30d", "--relative-to", "now", "--db", str(db)],
        capsys,
    )
    assert status == 0 and out == ""


@pytest.mark.parametrize(
    "command", [["export", SERIAL, "--format", "csv"], ["plot", SERIAL, "--out", "x.png"]]
)
def test_until_before_since_is_one_line_and_exit_2(
    command: list[str],
    db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    for window in (["--since", "2023-12-01", "--until", "2023-11-20"], ["--since", "1d", "--until", "2d"]):
        status, out, err = run([*command, *window, "--db", str(db)], capsys)
        assert status == 2 and out == ""
        assert "--until (" in one_line_error(err) and "is before --since" in err
    assert not (tmp_path / "x.png").exists()


def test_a_moment_that_is_neither_date_nor_age_is_refused(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["export", SERIAL, "--format", "csv", "--since", "last week", "--db", str(db)])
    assert exited.value.code == 2
    assert "neither an ISO date" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["faults", "export", "plot"])
def test_help_says_which_clock_an_age_counts_from(command: str) -> None:
    subparsers = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    text = " ".join(subparsers[command].format_help().split())
    assert "counted back from the unit's last archived record" in text
    assert "not this computer's" in text and "--relative-to" in text


def test_export_json_says_what_it_wrote(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "c60.jsonl"
    status, out, err = run(
        [
            "export",
            SERIAL,
            "--format",
            "jsonl",
            "--since",
            "1d",
            "--out",
            str(target),
            "--db",
            str(db),
            "--json",
        ],
        capsys,
    )
    assert status == 0 and err == ""
    assert json.loads(out) == {
        "path": str(target),
        "format": "jsonl",
        "serial": SERIAL,
        "records": 97,
        "since": iso(LAST - DAY),
        "until": None,
    }
    assert len(target.read_text().splitlines()) == 97


def test_json_with_the_data_on_standard_output_is_refused(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(["export", SERIAL, "--format", "csv", "--json", "--db", str(db)], capsys)
    assert status == 2 and out == ""
    assert "--out FILE" in one_line_error(err)


# --- plot ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<svg"), (".pdf", b"%PDF-"), (".png", b"\x89PNG")])
def test_plot_writes_the_format_its_extension_names(
    suffix: str, magic: bytes, db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / f"c60{suffix}"
    status, out, _ = run(
        ["plot", SERIAL, "--since", "7d", "--out", str(target), "--db", str(db), "--json"], capsys
    )
    assert status == 0
    assert magic in target.read_bytes()[:400]
    report = json.loads(out)
    assert report == {
        "path": str(target),
        "format": suffix[1:],
        "serial": SERIAL,
        "samples": 7 * 96 + 1 - 2,
        "faults": 2,
        "since": iso(LAST - 7 * DAY),
        "until": None,
    }


def test_plot_to_an_unknown_extension_is_refused(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "c60.xyz"
    status, out, err = run(["plot", SERIAL, "--out", str(target), "--db", str(db)], capsys)
    assert status == 2 and out == ""
    assert "cannot draw a plot as .xyz" in one_line_error(err) and ".svg" in err
    assert list(tmp_path.iterdir()) == [db]


def test_plot_of_a_window_with_no_records_writes_nothing(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "c60.png"
    status, _, err = run(
        ["plot", SERIAL, "--since", "30d", "--relative-to", "now", "--out", str(target), "--db", str(db)],
        capsys,
    )
    assert status == 2 and "no samples or faults archived since" in one_line_error(err)
    assert not target.exists()


def test_a_parquet_export_is_not_windowed_and_says_so(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "fleet.parquet"
    status, out, err = run(
        ["export", "--format", "parquet", "--out", str(target), "--since", "1d", "--db", str(db)], capsys
    )
    assert status == 2 and out == "" and not target.exists()
    assert "time column" in one_line_error(err)


def test_ages_take_fractions_and_every_unit(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    counts = {}
    for age in ("1.5h", "90m", "5400s", "0.0625d"):
        status, out, _ = run(["export", SERIAL, "--format", "jsonl", "--since", age, "--db", str(db)], capsys)
        assert status == 0
        counts[age] = len(out.splitlines())
    assert counts == {"1.5h": 7, "90m": 7, "5400s": 7, "0.0625d": 7}


def test_the_readmes_faults_since_30d_finds_an_emulated_units_fault(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's example as a user meets it: an emulated unit's log ends long before today."""
    unit = turbosim_unit(link="inproc", history="300h", no_pace=True, faults=["5005@250h"])
    db = tmp_path / "archive.sqlite"
    assert run(["pull", unit.url, "--db", str(db)], capsys)[0] == 0
    argv = ["faults", unit.serial, "--since", "30d", "--severity", "NORMAL_SHUTDOWN", "--db", str(db)]
    status, out, _ = run([*argv, "--json"], capsys)
    assert status == 0 and 5005 in [fault["code"] for fault in json.loads(out)]
    status, out, _ = run([*argv, "--relative-to", "now", "--json"], capsys)
    assert status == 0 and json.loads(out) == []
