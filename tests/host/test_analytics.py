"""Unit, model and fleet summaries and the fault list, on a small archive whose answers are known."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from host.analytics import fault_list, fleet_summary, unit_summary
from host.archive import Archive
from host.errors import UnknownUnit, UsageError
from host.reliability import chi2_quantile
from protocol.enums import EventFlag, EventKind, Severity, Subsystem
from protocol.records import (
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    SampleRecord,
    Snapshot,
    encode_record,
    scan_records,
)

T0 = 1_700_000_000
H = 3600


def counters(hours: float, starts: int, trips: int, kwh: int) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(operating_s=int(hours * H), starts=starts, trips=trips, energy_wh=kwh * 1000)
    return Snapshot(**fields)


def store(archive: Archive, serial: str, *records: SampleRecord | FaultRecord | EventRecord) -> None:
    scanned, errors = scan_records(b"".join(encode_record(record) for record in records))
    assert not errors
    archive.store_records(serial, scanned)


def identify(
    archive: Archive, serial: str, model: str, hours: float, starts: int, trips: int, kwh: int
) -> None:
    archive.upsert_unit(
        serial, model, "fw-2.1", 0xD8247CB9, first_seq=0, next_seq=9, capacity_records=50_000,
        device_time=T0 + 20_000, operating_s=int(hours * H), starts=starts, trips=trips, energy_wh=kwh * 1000,
    )


@pytest.fixture
def archive(tmp_path: Path) -> Archive:
    """A1: two failures and a warning in 200 h; B2: no failure; C3: nothing archived yet."""
    with Archive.open(tmp_path / "fleet.sqlite") as opened:
        identify(opened, "A1", "C65", 301, 13, 2, 9010)
        store(
            opened, "A1",
            EventRecord(0, T0, EventKind.POWER_UP),
            EventRecord(1, T0 + 10, EventKind.START),
            SampleRecord(2, T0 + 100, counters(100, 10, 0, 5000)),
            FaultRecord(3, T0 + 1000, 0x101, Severity.FAST_SHUTDOWN, Subsystem.ENGINE,
                        EventFlag.OVER_TEMPERATURE, counters(150, 11, 1, 6000)),
            FaultRecord(4, T0 + 1100, 0x202, Severity.WARNING, Subsystem.GRID, 0, counters(150, 11, 1, 6000)),
            EventRecord(5, T0 + 4600, EventKind.FAULT_CLEARED, level=Severity.FAST_SHUTDOWN, value_a=0x101),
            EventRecord(6, T0 + 4700, EventKind.START),
            FaultRecord(7, T0 + 8000, 0x101, Severity.NORMAL_SHUTDOWN, Subsystem.ENGINE, 0,
                        counters(290, 13, 2, 8800)),
            SampleRecord(8, T0 + 10_000, counters(300, 13, 2, 9000)),
        )
        identify(opened, "B2", "C65", 999, 1, 0, 1)
        b2 = (SampleRecord(seq, T0 + seq * H, counters(1000 + seq, 20, 0, 100)) for seq in range(5))
        store(opened, "B2", *b2)
        opened.record_evicted("B2", 100, 3)
        identify(opened, "C3", "C30", 42, 7, 0, 1200)
        yield opened


def test_a_unit_with_failures(archive: Archive) -> None:
    summary = unit_summary(archive, "A1").to_json()
    assert summary | {
        "serial": "A1", "model": "C65", "firmware": "fw-2.1", "records": 9, "evicted": 0,
        "first_record": datetime.fromtimestamp(T0, UTC).isoformat(),
        "last_record": datetime.fromtimestamp(T0 + 10_000, UTC).isoformat(),
        "operating_hours": 300.0, "starts": 13, "energy_kwh": 9000.0, "trips": 2, "counters_from": "records",
        "identify": {"operating_hours": 301.0, "starts": 13, "energy_kwh": 9010.0, "trips": 2},
        "counters_consistent": True,
        "faults_by_severity": {"WARNING": 1, "NORMAL_SHUTDOWN": 1, "FAST_SHUTDOWN": 1},
        "faults_by_code": {"257": 2, "514": 1},
        "failures": 2, "exposure_hours": 200.0, "mtbf_hours": 100.0,
        "downtime_hours": round(5600 / 3600, 3), "availability": pytest.approx(0.44),
    } == summary
    low, high = summary["mtbf_ci90"]
    assert low == pytest.approx(400 / chi2_quantile(0.95, 6), abs=1e-3)
    assert high == pytest.approx(400 / chi2_quantile(0.05, 4), abs=1e-3)
    assert low < summary["mtbf_lower90"] < 100 < high


def test_a_unit_without_failures_has_only_a_lower_bound(archive: Archive) -> None:
    summary = unit_summary(archive, "B2")
    assert summary.failures == 0 and summary.exposure_hours == 4
    as_json = summary.to_json()
    assert as_json["mtbf_hours"] is None
    assert as_json["mtbf_ci90"][1] is None
    assert as_json["mtbf_lower90"] == pytest.approx(4 / 2.302585, abs=1e-3)
    assert as_json["availability"] == 1.0
    assert as_json["evicted"] == 3
    assert as_json["counters_consistent"] is False


def test_a_unit_without_records_falls_back_to_identify(archive: Archive) -> None:
    summary = unit_summary(archive, "C3").to_json()
    assert summary["counters_from"] == "identify"
    assert (summary["operating_hours"], summary["starts"], summary["energy_kwh"]) == (42.0, 7, 1200.0)
    assert summary["records"] == 0 and summary["first_record"] is None
    assert summary["availability"] is None and summary["mtbf_hours"] is None


def test_fleet_pools_units_per_model(archive: Archive) -> None:
    fleet = fleet_summary(archive)
    assert [unit.serial for unit in fleet.units] == ["A1", "B2", "C3"]
    assert [model.model for model in fleet.models] == ["C30", "C65"]
    c65 = fleet.models[1]
    assert (c65.units, c65.failures, c65.exposure_hours, c65.records) == (2, 2, 204.0, 14)
    assert c65.mtbf.point == pytest.approx(102.0)
    assert c65.availability == pytest.approx(1 - 5600 / (10_000 + 4 * H))
    assert fleet.total.units == 3
    assert fleet.total.operating_hours == pytest.approx(300 + 1004 + 42)
    assert fleet.total.faults_by_severity == {2: 1, 3: 1, 4: 1}
    as_json = json.loads(json.dumps(fleet.to_json(), allow_nan=False))
    assert as_json["total"]["model"] == "all"
    assert as_json["models"][0]["mtbf_ci90"] == [0.0, None]


def test_the_fault_list_filters(archive: Archive) -> None:
    assert [entry.fault.seq for entry in fault_list(archive, "A1")] == [3, 4, 7]
    assert [entry.fault.seq for entry in fault_list(archive, "A1", severity="normal_shutdown")] == [3, 7]
    assert [entry.fault.seq for entry in fault_list(archive, "A1", severity=4)] == [3]
    assert [entry.fault.seq for entry in fault_list(archive, "A1", code=0x202)] == [4]
    since = datetime.fromtimestamp(T0 + 1100, UTC)
    assert [entry.fault.seq for entry in fault_list(archive, "A1", since=since)] == [4, 7]
    naive = since.replace(tzinfo=None)
    assert [entry.fault.seq for entry in fault_list(archive, "A1", since=naive)] == [4, 7]
    assert list(fault_list(archive, "B2")) == []


def test_a_fault_entry_names_its_values(archive: Archive) -> None:
    first = next(fault_list(archive, "A1")).to_json()
    assert first | {
        "serial": "A1", "seq": 3, "code": 0x101, "severity": "FAST_SHUTDOWN", "level": 4,
        "subsystem": "ENGINE", "flags": ["OVER_TEMPERATURE"],
        "time": datetime.fromtimestamp(T0 + 1000, UTC).isoformat(),
    } == first
    assert (first["freeze"]["operating_hours"], first["freeze"]["state"]) == (150, "STAND_BY")


@pytest.mark.parametrize("bad", [{"severity": "bogus"}, {"severity": 300}, {"code": -1}, {"code": 70_000}])
def test_bad_filters_are_usage_errors(archive: Archive, bad: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        fault_list(archive, "A1", **bad)  # type: ignore[arg-type]


def test_unknown_units_are_refused(archive: Archive) -> None:
    with pytest.raises(UnknownUnit):
        unit_summary(archive, "Z9")
    with pytest.raises(UnknownUnit):
        fault_list(archive, "Z9")


def test_a_fleet_of_many_units_adds_up(tmp_path: Path) -> None:
    with Archive.open(tmp_path / "many.sqlite") as opened:
        for number in range(300):
            serial = f"U{number:04d}"
            identify(opened, serial, ("C30", "C65")[number % 2], 0, 0, 0, 0)
            store(
                opened, serial,
                SampleRecord(0, T0, counters(0, 0, 0, 0)),
                FaultRecord(1, T0 + 50, 7, Severity.FAST_SHUTDOWN, Subsystem.FUEL, 0, counters(5, 1, 1, 50)),
                EventRecord(2, T0 + 80, EventKind.FAULT_CLEARED, level=Severity.FAST_SHUTDOWN, value_a=7),
                SampleRecord(3, T0 + 100, counters(10, 2, 1, 100)),
            )
        fleet = fleet_summary(opened)
    assert fleet.total.units == 300 and fleet.total.failures == 300
    assert fleet.total.mtbf.point == pytest.approx(10.0)
    assert fleet.total.availability == pytest.approx(0.7)
    assert [model.units for model in fleet.models] == [150, 150]


def new_epoch(archive: Archive, serial: str, *, continues: bool, hours: float, starts: int) -> None:
    archive.start_epoch(
        serial, "C65", "fw-2.1", 0xD8247CB9, log_id=bytes([len(archive.epochs(serial))]) * 8,
        origin_seq=9 if continues else 0, continues=continues, first_seq=9 if continues else 0, next_seq=20,
        capacity_records=50_000, device_time=T0 + 90_000, operating_s=int(hours * H), starts=starts, trips=3,
        energy_wh=9_500_000,
    )


@pytest.mark.parametrize("continues", [True, False], ids=["cleared-log", "other-controller"])
def test_epochs_of_a_serial_add_up_without_counting_hours_twice(archive: Archive, continues: bool) -> None:
    """A1's first log ends at 300 h.  A cleared log carries on its counters (to 340 h: 40 h more); a
    replaced controller starts its own from 0 (to 40 h)."""
    start = 300 if continues else 0
    new_epoch(archive, "A1", continues=continues, hours=start + 41, starts=15)
    store(archive, "A1", SampleRecord(9 if continues else 0, T0 + 50_000, counters(start + 20, 14, 2, 9200)),
          FaultRecord(10, T0 + 60_000, 0x101, Severity.FAST_SHUTDOWN, Subsystem.ENGINE, 0,
                      counters(start + 30, 15, 3, 9300)),
          SampleRecord(11, T0 + 80_000, counters(start + 40, 15, 3, 9400)))
    whole, first, second = (unit_summary(archive, "A1", epoch) for epoch in (None, 1, 2))
    assert (first.counters.operating_hours, second.counters.operating_hours) == (300, start + 40)
    assert whole.counters.operating_hours == 340 and whole.counters.starts == (15 if continues else 28)
    assert (whole.records, whole.failures) == (first.records + second.records, 3)
    assert whole.exposure_hours == first.exposure_hours + second.exposure_hours
    assert [e["epoch"] for e in whole.to_json()["epochs"]] == [1, 2] and whole.counters_consistent
    fleet = fleet_summary(archive)
    assert fleet.total.units == 3 and fleet.total.operating_hours == pytest.approx(340 + 1004 + 42)
    assert [(entry.epoch, entry.fault.code) for entry in fault_list(archive, "A1")] == [
        (1, 0x101), (1, 0x202), (1, 0x101), (2, 0x101)
    ]
    assert [entry.epoch for entry in fault_list(archive, "A1", epoch=2)] == [2]
    with pytest.raises(UnknownUnit, match="no epoch 3"):
        unit_summary(archive, "A1", 3)


def test_the_fleet_timeline_counts_a_cleared_logs_hours_once(tmp_path: Path) -> None:
    from host.fleet_report import hours_timeline

    with Archive.open(tmp_path / "a.sqlite") as opened:
        identify(opened, "A1", "C65", 10, 1, 0, 0)
        hourly = [SampleRecord(seq, T0 + seq * H, counters(seq, 1, 0, 0)) for seq in range(21)]
        store(opened, "A1", *hourly[:11])
        new_epoch(opened, "A1", continues=True, hours=20, starts=1)
        store(opened, "A1", *hourly[11:])
        timeline = hours_timeline(opened, points=5)
    assert timeline.hours["C65"][-1] == pytest.approx(20)


def test_windows_count_back_from_the_last_record_of_every_epoch(archive: Archive) -> None:
    """``--since 30d`` counts back from the serial's last archived record, in whichever epoch it is:
    after a clear-log, the new log's."""
    from host.window import last_record_time

    before = last_record_time(archive, "A1")
    assert before is not None and before < T0 + 80_000
    new_epoch(archive, "A1", continues=False, hours=41, starts=15)
    assert last_record_time(archive, "A1") == before  # an empty new epoch changes nothing
    store(archive, "A1", SampleRecord(0, T0 + 80_000, counters(40, 15, 3, 9400)))
    assert last_record_time(archive, "A1") == T0 + 80_000
