"""host.fleet_report: the press-release table and its picture, from simulated fleets' images.

What a user would notice: the table adds up what the units' logs say (units,
hours, starts, faults by severity), MTBF per model comes with its 90 %
chi-square interval, and that interval catches the MTBF the simulator was
configured with about nine times in ten; the plot is written.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from firmware_sim.flash import NorFlash
from firmware_sim.fleet import UnitResult, plan_fleet, simulate_fleet
from firmware_sim.logstore import LogStore
from firmware_sim.models import PROFILES
from host.archive import Archive
from host.errors import UsageError
from host.fleet_report import FleetReport, fleet_table, hours_timeline, plot_fleet
from host.ingest import ingest_dir
from host.reliability import mtbf
from protocol.enums import RecordType
from protocol.records import LAYOUTS, FaultRecord, decode_record

MIX = {"C30": 0.5, "C60": 0.5}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[UnitResult], Archive]]:
    out = tmp_path_factory.mktemp("fleet")
    results = simulate_fleet(plan_fleet(6, MIX, 600, seed=21), out / "images", workers=1)
    with Archive.open(out / "archive.sqlite") as archive:
        ingest_dir(archive, out / "images")
        yield out / "images", results, archive


def faults_in(images: Path) -> Counter[int]:
    severities: Counter[int] = Counter()
    for path in images.glob("*.img"):
        with NorFlash.open(path) as flash:
            store = LogStore(flash)
            for raw in store.iter_raw(0, store.next_seq):
                record = decode_record(raw)
                if isinstance(record, FaultRecord):
                    severities[record.severity] += 1
    return severities


def test_the_table_adds_up_what_the_logs_say(fleet: tuple[Path, list[UnitResult], Archive]) -> None:
    images, results, archive = fleet
    report = fleet_table(archive)
    assert report.total.units == 6
    assert [(model.model, model.units) for model in report.models] == [("C30", 3), ("C60", 3)]
    assert report.total.operating_hours == pytest.approx(sum(r.operating_s for r in results) / 3600)
    assert report.total.starts == sum(r.starts for r in results)
    for model in report.models:
        members = [r for r in results if r.model == model.model]
        assert model.operating_hours == pytest.approx(sum(r.operating_s for r in members) / 3600)
        assert model.failures == sum(r.trips for r in members)
        assert model.mtbf == mtbf(model.exposure_hours, model.failures, 0.90)
    assert report.total.faults_by_severity == dict(faults_in(images))
    assert report.last_record is not None and report.first_record is not None
    assert report.first_record < report.last_record


def test_the_table_as_json_and_as_text(fleet: tuple[Path, list[UnitResult], Archive]) -> None:
    report = fleet_table(fleet[2])
    doc = report.to_json()
    # the newest record of the fleet: its units' documented windows end by the 2007-05-01 read-out
    assert report.last_record is not None
    assert doc["as_of"] == datetime.fromtimestamp(report.last_record, UTC).isoformat() < "2007-05-01T01"
    assert doc["confidence"] == 0.9
    assert [model["model"] for model in doc["models"]] == ["C30", "C60"]
    assert {"units", "operating_hours", "starts", "faults_by_severity", "mtbf_hours", "mtbf_ci90"} <= set(
        doc["total"]
    )
    text = report.to_text()
    assert f"{report.total.operating_hours:,.0f} documented operating hours" in text
    assert "failures (trips):" in text and "MTBF over: the operating hours the archive covers" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    assert [line.split()[0] for line in lines[header + 1:]] == ["C30", "C60", "all"]
    assert "selected: all units; all records" in text and "bounds at 90% confidence" in text


def test_an_empty_archive_gives_an_empty_table(tmp_path: Path) -> None:
    with Archive.open(tmp_path / "empty.sqlite") as archive:
        report = fleet_table(archive)
        assert (report.total.units, report.models, report.last_record) == (0, (), None)
        assert "0 units" in report.to_text()
        with pytest.raises(UsageError):
            plot_fleet(archive, tmp_path / "fleet.png")


def test_the_timeline_climbs_to_the_fleet_hours(fleet: tuple[Path, list[UnitResult], Archive]) -> None:
    _, results, archive = fleet
    timeline = hours_timeline(archive, points=50)
    assert list(timeline.times) == sorted(timeline.times) and len(timeline.times) == 50
    for model, hours in timeline.hours.items():
        assert list(hours) == sorted(hours)
        assert hours[0] < hours[-1]
        documented = sum(r.operating_s for r in results if r.model == model) / 3600
        assert hours[-1] == pytest.approx(documented, rel=1e-3)


def test_the_plot_is_written(fleet: tuple[Path, list[UnitResult], Archive], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "fleet.png"
    plot_fleet(fleet[2], out)
    assert out.read_bytes().startswith(b"\x89PNG")


def seed_report(seed: int, folder: Path) -> FleetReport:
    simulate_fleet(plan_fleet(16, MIX, 2000, seed=seed), folder / "images")
    with Archive.open(folder / "archive.sqlite") as archive:
        ingest_dir(archive, folder / "images")
        return fleet_table(archive)


@pytest.mark.slow
def test_the_90_percent_interval_catches_the_configured_mtbf(tmp_path: Path) -> None:
    """20 small fleets: each model's 90 % interval must contain its configured MTBF in at least
    16 of them (false alarm 4 % per model), and the 99.9 % interval of all 20 pooled must
    contain it too (false alarm 0.1 % per model; a pooled 90 % interval misses one time in ten)."""
    reports = [seed_report(seed, tmp_path / str(seed)) for seed in range(20)]
    for name in MIX:
        configured = PROFILES[name].mtbf_h
        models = [next(m for m in report.models if m.model == name) for report in reports]
        caught = sum(m.mtbf.ci_low <= configured <= m.mtbf.ci_high for m in models)
        assert caught >= 16, f"{name}: the interval caught {configured} h in {caught} of 20 fleets"
        pooled = mtbf(sum(m.exposure_hours for m in models), sum(m.failures for m in models), 0.999)
        assert pooled.ci_low <= configured <= pooled.ci_high, f"{name}: pooled {pooled}"


@dataclass
class ModelFigures:
    units: int = 0
    hours: float = 0.0
    exposure: float = 0.0
    starts: int = 0
    severity: Counter[int] = field(default_factory=Counter)


def parquet_figures(folder: Path) -> dict[str, ModelFigures]:
    """Per model, from the Parquet dataset alone: units, hours, exposure, starts, faults by severity."""
    pa = pytest.importorskip("pyarrow")
    dataset = pytest.importorskip("pyarrow.dataset")
    parquet = pytest.importorskip("pyarrow.parquet")
    units = parquet.read_table(folder / "units.parquet").to_pylist()
    model_of = {row["serial"]: row["model"] for row in units}
    columns = ["serial", "operating_s", "starts"]
    samples = dataset.dataset(folder / "samples", partitioning="hive").to_table(columns=columns)
    faults = dataset.dataset(folder / "faults", partitioning="hive").to_table(columns=[*columns, "severity"])
    counters = pa.concat_tables([samples, faults.select(columns)]).group_by("serial").aggregate(
        [("operating_s", "max"), ("operating_s", "min"), ("starts", "max")]
    )
    figures = {model: ModelFigures() for model in model_of.values()}
    for row in counters.to_pylist():
        model = figures[model_of[row["serial"]]]
        model.units += 1
        model.hours += row["operating_s_max"] / 3600
        model.exposure += (row["operating_s_max"] - row["operating_s_min"]) / 3600
        model.starts += row["starts_max"]
    for row in faults.select(["serial", "severity"]).to_pylist():
        figures[model_of[row["serial"]]].severity[row["severity"]] += 1
    return figures


def test_the_parquet_export_gives_the_same_fleet_figures(
    fleet: tuple[Path, list[UnitResult], Archive], tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    from host.export_parquet import export_parquet

    archive = fleet[2]
    written = export_parquet(archive, tmp_path / "dataset")
    assert written == sum(row.record_count for row in archive.units())
    figures = parquet_figures(tmp_path / "dataset")
    for model in fleet_table(archive).models:
        mine = figures[model.model]
        assert (mine.units, mine.starts) == (model.units, model.starts)
        assert mine.hours == pytest.approx(model.operating_hours)
        assert mine.exposure == pytest.approx(model.exposure_hours)
        assert dict(mine.severity) == model.faults_by_severity
        failures = sum(count for level, count in mine.severity.items() if level >= 3)
        estimate = mtbf(mine.exposure, failures, 0.90)
        assert (estimate.point, estimate.ci_low, estimate.ci_high) == pytest.approx(
            (model.mtbf.point, model.mtbf.ci_low, model.mtbf.ci_high)
        )


def test_a_parquet_row_packs_back_into_its_record(
    fleet: tuple[Path, list[UnitResult], Archive], tmp_path: Path
) -> None:
    dataset = pytest.importorskip("pyarrow.dataset")
    from host.export_parquet import export_parquet

    archive = fleet[2]
    serial = archive.units()[0].serial
    assert export_parquet(archive, tmp_path / "one", serial) == archive.unit(serial).record_count
    table = dataset.dataset(tmp_path / "one" / "faults", partitioning="hive").to_table()
    assert set(table.column("serial").to_pylist()) == {serial}
    stored = dict(archive.iter_raw(serial))
    layout = LAYOUTS[RecordType.FAULT]
    for row in table.to_pylist():
        fields = [row[name.removeprefix("freeze.")] for name in layout.names[4:]]
        raw = layout.struct.pack(row["seq"], int(row["time"].timestamp()), RecordType.FAULT,
                                 layout.size - 14, *fields)
        assert raw == stored[row["seq"]]


def test_the_parquet_export_refuses_a_directory_in_use(
    fleet: tuple[Path, list[UnitResult], Archive], tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    from host.export_parquet import export_parquet

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an empty directory"):
        export_parquet(fleet[2], tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "mine"
