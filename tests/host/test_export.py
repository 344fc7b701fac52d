"""Exports: every record comes back from CSV and JSON lines with the values it went in with."""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from host.archive import Archive
from host.errors import OutputError, UnknownUnit, UsageError
from host.export import COLUMNS, EXPORTERS, Exporter, export, record_row
from protocol.enums import EventKind, RunupChannel, Severity, Subsystem
from protocol.records import (
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    RunupRecord,
    SampleRecord,
    Snapshot,
    UnknownRecord,
    decode_record,
    encode_record,
    scan_records,
)

T0 = 1_700_000_000


def snapshot(seq: int, **values: int) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(
        state=4, speed_rpm=95_500 + seq, power_w=64_250, tet1_c_x10=3093, tet2_c_x10=-15,
        ambient_pressure_kpa_x100=10_133, fuel_valve_pct_x10=555, grid_freq_hz_x1000=59_987,
        operating_s=3600 * seq, energy_wh=2**40 + seq,
    )
    fields.update(values)
    return Snapshot(**fields)


RECORDS = [
    SampleRecord(0, T0, snapshot(0)),
    EventRecord(1, T0 + 5, EventKind.STATE_CHANGE, 3, 4, 0, 7, 2**32 - 1),
    FaultRecord(2, T0 + 9, 0x0311, Severity.NORMAL_SHUTDOWN, Subsystem.INVERTER, 0x0206, snapshot(2)),
    UnknownRecord(3, T0 + 9, 42, b"\x00\x01new"),
    SampleRecord(4, T0 + 60, snapshot(4, state=12, mode=1)),
]


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        opened.upsert_unit(
            "S1", "C65", "fw", 1, first_seq=0, next_seq=5, capacity_records=100, device_time=T0,
            operating_s=0, starts=0, trips=0, energy_wh=0,
        )
        records, errors = scan_records(b"".join(encode_record(record) for record in RECORDS))
        assert not errors
        opened.store_records("S1", records)
        yield opened


def expected_rows() -> list[dict[str, object]]:
    return [record_row(decode_record(encode_record(record))) for record in RECORDS]


def test_columns_carry_their_units() -> None:
    for name in ("time", "speed_rpm", "power_w", "tet1_c", "ambient_pressure_kpa", "fuel_valve_pct",
                 "grid_freq_hz", "operating_hours", "energy_kwh"):
        assert name in COLUMNS
    assert not [name for name in COLUMNS if name.endswith(("_x10", "_x100", "_x1000"))]


def test_csv_round_trip(archive: Archive) -> None:
    out = io.StringIO()
    assert export(archive, "S1", "csv", out) == len(RECORDS)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == len(RECORDS)
    for parsed, expected in zip(rows, expected_rows(), strict=True):
        assert parsed == {name: "" if expected.get(name) is None else str(expected[name]) for name in COLUMNS}
    sample, event, fault, unknown, odd = rows
    assert datetime.fromisoformat(sample["time"]).timestamp() == T0
    temperatures = float(sample["tet1_c"]), float(sample["tet2_c"])
    assert (*temperatures, float(sample["grid_freq_hz"])) == (309.3, -1.5, 59.987)
    assert (sample["state"], sample["mode"]) == ("LOAD", "GRID_CONNECT")
    assert (float(sample["energy_kwh"]), float(sample["operating_hours"])) == (2**40 / 1000, 0.0)
    assert (float(fault["energy_kwh"]), float(fault["operating_hours"])) == ((2**40 + 2) / 1000, 2.0)
    transition = event["kind"], event["state_from"], event["state_to"]
    assert transition == ("STATE_CHANGE", "ACCEL", "LOAD")
    assert (fault["severity"], fault["subsystem"], int(fault["flags"])) == (
        "NORMAL_SHUTDOWN", "INVERTER", 0x0206,
    )
    assert float(fault["ambient_pressure_kpa"]) == 101.33
    assert (unknown["type"], bytes.fromhex(unknown["body_hex"])) == ("UNKNOWN(42)", b"\x00\x01new")
    assert (odd["state"], odd["mode"]) == ("UNKNOWN(12)", "STAND_ALONE")


def test_jsonl_round_trip(archive: Archive) -> None:
    out = io.StringIO()
    assert export(archive, "S1", "jsonl", out) == len(RECORDS)
    parsed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert parsed == expected_rows()
    assert "code" not in parsed[0] and parsed[2]["code"] == 0x0311
    assert parsed[1]["value_b"] == 2**32 - 1


def test_export_to_a_path_replaces_the_file_when_complete(archive: Archive, tmp_path: Path) -> None:
    target = tmp_path / "out" / "s1.csv"
    target.parent.mkdir()
    target.write_text("old contents")
    stream = io.StringIO()
    export(archive, "S1", "csv", stream)
    assert export(archive, "S1", "csv", target) == len(RECORDS)
    assert target.read_text(encoding="utf-8") == stream.getvalue()
    assert sorted(path.name for path in target.parent.iterdir()) == ["s1.csv"]


def test_unknown_format_lists_the_choices(archive: Archive) -> None:
    with pytest.raises(UsageError, match="'xlsx'.*csv, jsonl"):
        export(archive, "S1", "xlsx", io.StringIO())


def test_unknown_unit(archive: Archive) -> None:
    with pytest.raises(UnknownUnit):
        export(archive, "S2", "csv", io.StringIO())


def test_a_text_format_refuses_a_binary_stream(archive: Archive) -> None:
    with pytest.raises(UsageError, match="text"):
        export(archive, "S1", "csv", io.BytesIO())


def test_an_unwritable_path_is_an_output_error(archive: Archive, tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("x")
    for path in (tmp_path / "missing" / "s1.csv", tmp_path / "plain-file" / "s1.csv", tmp_path):
        with pytest.raises(OutputError, match="cannot write"):
            export(archive, "S1", "jsonl", path)


def test_a_format_is_one_registry_entry_and_a_failure_leaves_no_file(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def write_seqs(rows, out) -> int:
        seqs = [str(row["seq"]) for row in rows]
        out.write(" ".join(seqs).encode())
        return len(seqs)

    def write_then_fail(rows, out) -> int:
        out.write("partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(EXPORTERS, "seqs", Exporter("seqs", ".txt", "seqs only", write_seqs, binary=True))
    monkeypatch.setitem(EXPORTERS, "broken", Exporter("broken", ".txt", "fails", write_then_fail))
    assert export(archive, "S1", "seqs", tmp_path / "seqs.txt") == len(RECORDS)
    assert (tmp_path / "seqs.txt").read_bytes() == b"0 1 2 3 4"
    with pytest.raises(OutputError, match="No space left"):
        export(archive, "S1", "broken", tmp_path / "broken.txt")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["archive.sqlite", "archive.sqlite-shm",
                                                                "archive.sqlite-wal", "seqs.txt"]


def test_parquet_is_a_registry_entry_that_writes_a_directory(archive: Archive, tmp_path: Path) -> None:
    """Before: export() refused "parquet" as an unknown format; only the CLI knew the Parquet module."""
    parquet = pytest.importorskip("pyarrow.parquet")
    assert export(archive, None, "parquet", tmp_path / "every") == len(RECORDS)
    assert export(archive, "S1", "parquet", tmp_path / "one") == len(RECORDS)
    assert parquet.read_table(tmp_path / "one" / "units.parquet").column("serial").to_pylist() == ["S1"]
    with pytest.raises(UsageError, match="writes a directory: give its path"):
        export(archive, "S1", "parquet", io.BytesIO())
    with pytest.raises(UsageError, match="exports one unit"):
        export(archive, None, "csv", io.StringIO())


def test_the_cli_exports_a_directory_format_through_the_registry(
    archive: Archive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory format registered in EXPORTERS is offered and run by `turbolog export` unchanged."""
    from host.cli import main

    def write_serials(opened: Archive, out: str | os.PathLike[str], serial: str | None) -> int:
        Path(out).mkdir()
        (Path(out) / "serials.txt").write_text(serial or "every unit")
        return 7

    monkeypatch.setitem(
        EXPORTERS, "serials", Exporter("serials", "", "serial names", None, write_directory=write_serials)
    )
    db = str(archive.path)
    assert main(["export", "--format", "serials", "--out", str(tmp_path / "all"), "--db", db]) == 0
    assert (tmp_path / "all" / "serials.txt").read_text() == "every unit"
    assert "7 records written to the Serials dataset" in capsys.readouterr().err
    assert main(["export", "S1", "--format", "serials", "--out", str(tmp_path / "s1"), "--db", db]) == 0
    assert (tmp_path / "s1" / "serials.txt").read_text() == "S1"
    assert main(["export", "--format", "serials", "--db", db]) == 2
    assert "--format serials writes a directory: give it with --out DIR" in capsys.readouterr().err


TET_RISING = tuple([0] * 10 + [6_700 + i for i in range(49)] + [7_102])
"""A run-up of TET in 0.1 degC steps: 50 measured values climbing to 710.2 degC."""


@pytest.fixture
def tripped(tmp_path: Path) -> Archive:
    """A unit whose fault (seq 0) is followed by the run-up of TET (seq 1)."""
    records = [
        FaultRecord(0, T0, 5005, Severity.FAST_SHUTDOWN, Subsystem.ENGINE, 0x40, snapshot(0)),
        RunupRecord(1, T0, 0, RunupChannel.TET_AVG, 1, 50, TET_RISING),
    ]
    with Archive.open(tmp_path / "tripped.sqlite") as opened:
        opened.upsert_unit(
            "S1", "C65", "fw", 1, first_seq=0, next_seq=2, capacity_records=100, device_time=T0,
            operating_s=0, starts=0, trips=1, energy_wh=0,
        )
        opened.store_records("S1", scan_records(b"".join(encode_record(r) for r in records))[0])
        yield opened


def test_a_run_up_exports_its_values_in_their_unit(tripped: Archive) -> None:
    out = io.StringIO()
    assert export(tripped, "S1", "jsonl", out) == 2
    runup = [json.loads(line) for line in out.getvalue().splitlines()][1]
    assert (runup["type"], runup["fault_seq"], runup["channel"]) == ("RUNUP", 0, "TET_AVG")
    assert (runup["runup_unit"], runup["interval_s"]) == ("°C", 1)
    assert runup["runup_values"] == [round(v / 10, 1) for v in TET_RISING[10:]]
    out = io.StringIO()
    export(tripped, "S1", "csv", out)
    row = list(csv.DictReader(io.StringIO(out.getvalue())))[1]
    assert [float(v) for v in row["runup_values"].split()] == runup["runup_values"]
    assert row["speed_rpm"] == "" and row["body_hex"] == ""


def test_a_run_up_goes_to_the_parquet_runups_dataset_in_wire_units(tripped: Archive, tmp_path: Path) -> None:
    parquet = pytest.importorskip("pyarrow.parquet")
    assert export(tripped, "S1", "parquet", tmp_path / "out") == 2
    table = parquet.read_table(tmp_path / "out" / "runups")
    assert table.num_rows == 1
    (row,) = table.to_pylist()
    assert (row["fault_seq"], row["channel"], row["points"]) == (0, RunupChannel.TET_AVG, 50)
    assert tuple(row["runup_steps"]) == TET_RISING
