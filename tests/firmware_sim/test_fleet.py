"""firmware_sim.fleet and `turbosim fleet`: who the units are, and what their images hold.

What a user would notice: the mix and the mean hours asked for are what the
fleet gets, commissioning dates spread the way a growing fleet's do, every
unit's image holds its whole history (hourly samples, faults, events, nothing
evicted) beside an identity sidecar, and the same seed gives the same bytes
however many processes run it.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from firmware_sim.cli import main
from firmware_sim.clock import SimClock
from firmware_sim.errors import ConfigError
from firmware_sim.flash import NorFlash
from firmware_sim.fleet import (
    DEFAULT_AS_OF,
    DEFAULT_START,
    SAMPLE_INTERVAL_S,
    UTILISATION,
    UnitPlan,
    UnitResult,
    parse_mix,
    plan_fleet,
    sectors_needed,
    simulate_fleet,
    simulate_unit,
)
from firmware_sim.logstore import LogStore
from firmware_sim.unit import build_unit
from protocol.enums import EventKind
from protocol.messages import SCHEMA_FINGERPRINT
from protocol.records import EventRecord, Record, SampleRecord, UnknownRecord, decode_record

MIX = {"C30": 0.6, "C60": 0.4}


def test_a_mix_is_parsed_and_normalised() -> None:
    assert parse_mix("C30:3, c60:1") == {"C30": 0.75, "C60": 0.25}


@pytest.mark.parametrize("text", ["C30", "C30:0", "C30:-1", "C30:x", "C99:1", "C30:1,C30:1", "C30:inf"])
def test_a_bad_mix_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_mix(text)


def test_the_plan_follows_the_mix_and_the_mean_hours() -> None:
    plans = plan_fleet(500, MIX, 3750, seed=3)
    assert Counter(plan.model for plan in plans) == {"C30": 300, "C60": 200}
    assert len({plan.serial for plan in plans}) == 500
    planned = [plan.calendar_s * UTILISATION[plan.duty] / 3600 for plan in plans]
    # windows clipped at either end of a life make the mean a random one: 500 units hold it to 3 %
    assert sum(planned) / len(planned) == pytest.approx(3750, rel=0.03)
    assert {plan.duty for plan in plans} == set(UTILISATION)
    assert {plan.site for plan in plans} == {"temperate", "desert", "cold"}
    assert all(plan.read_out == DEFAULT_AS_OF >= plan.as_of for plan in plans)
    assert all(plan.shipped <= plan.commissioned < plan.as_of for plan in plans)


def test_units_are_numbered_in_shipment_order_from_december_1998() -> None:
    plans = plan_fleet(1000, MIX, None, seed=4)
    shipped = [plan.shipped for plan in plans]
    assert shipped == sorted(shipped)
    assert DEFAULT_START <= shipped[0] < DEFAULT_START + 120 * 86400
    assert DEFAULT_AS_OF - 30 * 86400 < shipped[-1] <= DEFAULT_AS_OF


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    assert plan_fleet(50, MIX, 1000, seed=5) == plan_fleet(50, MIX, 1000, seed=5)
    assert plan_fleet(50, MIX, 1000, seed=5) != plan_fleet(50, MIX, 1000, seed=6)


@pytest.mark.parametrize(("units", "mix", "hours"), [
    (0, MIX, 100), (10, MIX, 0), (10, MIX, float("nan")), (10, {}, 100), (10, {"C99": 1.0}, 100),
    (10, {"C30": 1.0, "C60": 0.0}, 100), (10, MIX, 1e9),
])
def test_an_impossible_plan_is_a_config_error(units: int, mix: dict[str, float], hours: float) -> None:
    with pytest.raises(ConfigError):
        plan_fleet(units, mix, hours, seed=1)


@pytest.mark.parametrize("sizes", [[26] * 300, [68, 74, 26, 68, 255 + 14] * 40, [68] * 59, [68] * 60, [26]])
def test_sectors_needed_is_what_the_log_store_fills(sizes: list[int]) -> None:
    sector_size = 4096
    needed = sectors_needed(sizes, sector_size)
    flash = NorFlash(sector_size, needed + 1)
    store = LogStore(flash)
    for i, size in enumerate(sizes):
        store.append(record_of(size, i))
    assert store.first_seq == 0
    used = sum(1 for sector in range(flash.sector_count) if not flash.is_erased(sector))
    assert used == needed


def record_of(size: int, timestamp: int) -> Record:
    """A record of *size* bytes: an event (26 bytes) or one of an unknown type."""
    if size == 26:
        return EventRecord(0, timestamp, EventKind.CONFIG_CHANGE)
    return UnknownRecord(0, timestamp, 0x42, bytes(size - 14))


@pytest.fixture(scope="module")
def unit_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, UnitPlan, UnitResult]:
    out = tmp_path_factory.mktemp("fleet")
    plan = max(plan_fleet(8, MIX, 400, seed=7), key=lambda plan: plan.calendar_s)
    return out, plan, simulate_unit(plan, out)


def test_an_image_holds_the_whole_history_with_hourly_samples(
    unit_image: tuple[Path, UnitPlan, UnitResult],
) -> None:
    out, plan, result = unit_image
    with NorFlash.open(out / f"{plan.serial}.img") as flash:
        store = LogStore(flash)
        assert (store.first_seq, store.next_seq) == (0, result.records)
        assert flash.sector_count == result.sectors
        records = [decode_record(raw) for raw in store.iter_raw(0, store.next_seq)]
    samples = [r.timestamp for r in records if isinstance(r, SampleRecord)]
    assert samples[0] - plan.commissioned < SAMPLE_INTERVAL_S
    assert plan.as_of - samples[-1] <= SAMPLE_INTERVAL_S
    assert {b - a for a, b in zip(samples, samples[1:], strict=False)} == {SAMPLE_INTERVAL_S}
    assert isinstance(records[0], EventRecord) and records[0].kind == EventKind.POWER_UP
    assert store.counters.operating_s == result.operating_s > 0


def test_an_image_has_an_identity_sidecar(unit_image: tuple[Path, UnitPlan, UnitResult]) -> None:
    out, plan, _ = unit_image
    doc = json.loads((out / f"{plan.serial}.json").read_text())
    assert doc["format"] == "turbolog-unit-identity"
    assert (doc["version"], doc["serial"], doc["model"], doc["image"]) == (
        1, plan.serial, plan.model, f"{plan.serial}.img"
    )
    assert doc["schema_fingerprint"] == SCHEMA_FINGERPRINT
    assert doc["simulated"]["duty"] == plan.duty
    assert not list(out.glob(".*.part"))


def test_serving_an_image_again_keeps_how_it_was_simulated(
    unit_image: tuple[Path, UnitPlan, UnitResult], tmp_path: Path
) -> None:
    """`turbosim serve --flash fleet/X.img` builds the unit without a `simulated` section: the
    sidecar keeps the one turbosim fleet wrote (its site, duty and commissioning)."""
    out, plan, _ = unit_image
    image = tmp_path / f"{plan.serial}.img"
    shutil.copyfile(out / f"{plan.serial}.img", image)
    shutil.copyfile(out / f"{plan.serial}.json", tmp_path / f"{plan.serial}.json")
    before = json.loads((tmp_path / f"{plan.serial}.json").read_text())
    clock = SimClock(plan.as_of, wall=lambda: 0.0)
    build_unit(plan.model, plan.serial, seed=1, clock=clock, flash_path=image).close()
    after = json.loads((tmp_path / f"{plan.serial}.json").read_text())
    assert after["simulated"] == before["simulated"] and after["simulated"]["duty"] == plan.duty


def test_processes_give_the_same_bytes_as_one(tmp_path: Path) -> None:
    plans = plan_fleet(4, MIX, 150, seed=8)
    one = simulate_fleet(plans, tmp_path / "one", workers=1)
    two = simulate_fleet(plans, tmp_path / "two", workers=2)
    assert one == two
    for plan in plans:
        for suffix in (".img", ".json"):
            name = plan.serial + suffix
            assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_a_rerun_replaces_the_images(tmp_path: Path) -> None:
    plans = plan_fleet(2, MIX, 100, seed=9)
    first = simulate_fleet(plans, tmp_path, workers=1)
    assert simulate_fleet(plans, tmp_path, workers=1) == first


def test_turbosim_fleet_writes_every_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fleet"
    code = main(["fleet", "--units", "3", "--mix", "C30:0.5,C60:0.5", "--hours", "60", "--seed", "2",
                 "--out", str(out), "--workers", "1", "--as-of", "2007-05-01"])
    assert code == 0
    assert len(list(out.glob("*.img"))) == len(list(out.glob("*.json"))) == 3
    assert "fleet: 3 units" in capsys.readouterr().out


def test_turbosim_fleet_refuses_zero_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "--units", "1", "--hours", "10", "--out", str(tmp_path), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
