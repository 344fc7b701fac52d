"""host.ingest: flash images into the archive, as a pull would put them there.

What a user would notice: after `turbolog ingest DIR` the archive holds every
unit's log byte for byte with its identity; ingesting again adds nothing; an
image read out of a unit gives the archive a pull of that unit would give;
a bad image is reported and skipped while the others are loaded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.clock import SimClock
from firmware_sim.flash import NorFlash
from firmware_sim.fleet import plan_fleet, simulate_fleet
from firmware_sim.logstore import LogStore
from firmware_sim.unit import build_unit
from host.archive import Archive
from host.errors import UsageError
from host.ingest import ImageResult, ingest_dir
from host.pull import pull
from protocol.messages import EARLIER_FINGERPRINTS, SCHEMA_FINGERPRINT
from tests.host.loopback import Line

MIX = {"C30": 0.5, "C60": 0.5}


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fleet")
    simulate_fleet(plan_fleet(4, MIX, 300, seed=11), out, workers=1)
    return out


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        yield opened


def log_of(image: Path) -> tuple[LogStore, NorFlash]:
    flash = NorFlash.open(image)
    return LogStore(flash), flash


def test_every_unit_is_archived_byte_for_byte_with_its_identity(fleet_dir: Path, archive: Archive) -> None:
    result = ingest_dir(archive, fleet_dir)
    assert len(result.images) == 4 and result.failed == ()
    for image in sorted(fleet_dir.glob("*.img")):
        identity = json.loads(image.with_suffix(".json").read_text())
        store, flash = log_of(image)
        with flash:
            expected = list(store.iter_raw(0, store.next_seq))
            row = archive.unit(identity["serial"])
            assert (row.model, row.firmware, row.schema_fingerprint) == (
                identity["model"], identity["firmware"], SCHEMA_FINGERPRINT
            )
            assert (row.first_seq, row.next_seq, row.record_count) == (0, store.next_seq, len(expected))
            assert (row.operating_s, row.starts, row.trips) == (
                store.counters.operating_s, store.counters.starts, store.counters.trips
            )
            assert row.capacity_records == store.capacity_records
            assert [raw for _, raw in archive.iter_raw(identity["serial"])] == expected
    assert result.added == result.records == sum(row.record_count for row in archive.units())


def test_ingesting_again_adds_nothing(fleet_dir: Path, archive: Archive) -> None:
    first = ingest_dir(archive, fleet_dir)
    again = ingest_dir(archive, fleet_dir)
    assert again.added == 0
    assert again.records == first.records
    assert again.failed == ()


def test_progress_is_reported_per_image(fleet_dir: Path, archive: Archive) -> None:
    seen: list[tuple[int, int, str | None]] = []
    ingest_dir(archive, fleet_dir, progress=lambda done, total, one: seen.append((done, total, one.serial)))
    assert [(done, total) for done, total, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(serial for _, _, serial in seen)


def test_a_bad_image_is_reported_and_the_others_are_loaded(
    fleet_dir: Path, archive: Archive, tmp_path: Path
) -> None:
    folder = tmp_path / "images"
    shutil.copytree(fleet_dir, folder)
    images = sorted(folder.glob("*.img"))
    images[0].with_suffix(".json").unlink()
    images[1].write_bytes(b"\x00" * 4096)
    sidecar = images[2].with_suffix(".json")
    sidecar.write_text(sidecar.read_text().replace(str(SCHEMA_FINGERPRINT), str(SCHEMA_FINGERPRINT ^ 1)))
    result = ingest_dir(archive, folder)
    errors = {image.image: image.error for image in result.failed}
    assert set(errors) == {path.name for path in images[:3]}
    assert "no identity sidecar" in (errors[images[0].name] or "")
    assert "not a turbolog flash image" in (errors[images[1].name] or "")
    assert "formats differ" in (errors[images[2].name] or "")
    assert [image.serial for image in result.images if image.error is None] == [images[3].stem]
    assert [row.serial for row in archive.units()] == [images[3].stem]
    assert result.to_json()["failed"] == 3


def test_a_missing_directory_is_a_usage_error(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        ingest_dir(archive, tmp_path / "nowhere")


def write_sidecar(image: Path, serial: str, model: str) -> None:
    image.with_suffix(".json").write_text(json.dumps({
        "format": "turbolog-unit-identity", "version": 1, "serial": serial, "model": model,
        "firmware": "turbosim-1.0", "schema_fingerprint": SCHEMA_FINGERPRINT, "image": image.name,
    }))


def test_an_image_gives_the_archive_a_pull_gives(tmp_path: Path) -> None:
    """The same unit, pulled over the line into one archive and ingested from its image into
    another: the same records, evictions and log bounds."""
    image = tmp_path / "C60-77.img"
    clock = SimClock(1_170_000_000, wall=lambda: 0.0)
    unit = build_unit("C60", "C60-77", seed=77, clock=clock, flash_path=image, sector_count=8,
                      sample_interval_s=3600, duty="peak-shaving")
    with unit:
        unit.fast_forward(1000 * 3600)
        assert unit.first_seq > 0, "the log should have wrapped"
        with Archive.open(tmp_path / "pulled.sqlite") as pulled:
            line = Line(unit)  # type: ignore[arg-type]
            pull(line.connect, pulled, clock=line.clock, sleep=line.clock.advance)
            pulled_rows = dump(pulled)
    write_sidecar(image, "C60-77", "C60")
    with Archive.open(tmp_path / "ingested.sqlite") as ingested:
        (result,) = ingest_dir(ingested, tmp_path).images
        assert result == ImageResult(image.name, "C60-77", "C60", result.records, result.records,
                                     unit.first_seq, 0)
        assert dump(ingested) == pulled_rows


def dump(archive: Archive) -> dict[str, list[tuple[object, ...]]]:
    """What a pull and an ingest must agree on: every record table, evictions, spans and log bounds."""
    tables = {
        table: list(archive.query(f"SELECT * FROM {table} ORDER BY unit, seq"))
        for table in ("samples", "faults", "events", "other_records")
    }
    for table in ("spans", "evictions"):
        tables[table] = list(archive.query(f"SELECT * FROM {table} ORDER BY unit, first_seq"))
    tables["units"] = list(archive.query(
        "SELECT serial, model, firmware, schema_fingerprint, capacity_records, first_seq, next_seq, "
        "record_count FROM units"
    ))
    return tables


def test_a_file_that_is_not_an_image_is_refused_by_name(tmp_path: Path, archive: Archive) -> None:
    sidecar = tmp_path / "unit.json"
    sidecar.write_text("{}")
    with pytest.raises(UsageError, match=r"not a flash image: give NAME\.img"):
        ingest_dir(archive, sidecar)


def test_an_image_written_before_run_up_records_is_ingested(fleet_dir: Path, tmp_path: Path) -> None:
    """A unit whose firmware predates RUNUP records (an earlier schema fingerprint) logged
    nothing this reader does not decode: its image is ingested as it is."""
    older = tmp_path / "older"
    older.mkdir()
    images = {}
    for image in sorted(fleet_dir.glob("*.img")):
        store, flash = log_of(image)
        with flash:
            images[image] = all(raw[8] != 4 for raw in store.iter_raw(0, store.next_seq)), store.next_seq
    image, (_, records) = next((image, seen) for image, seen in images.items() if seen[0])  # never tripped
    shutil.copy(image, older / image.name)
    sidecar = json.loads(image.with_suffix(".json").read_text())
    sidecar["schema_fingerprint"] = next(iter(EARLIER_FINGERPRINTS))
    (older / image.name).with_suffix(".json").write_text(json.dumps(sidecar))
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        result = ingest_dir(opened, older)
        assert result.failed == () and result.added == records
        assert opened.unit(image.stem).schema_fingerprint == sidecar["schema_fingerprint"]
