"""A unit's life across power-ups: the failure process carries on, history is the unit's age,
a power loss is logged at the next power-up.

The statistical tests run on fixed seeds, so they pass or fail the same way every
time; each states the chance that a correct simulator would fail it on seeds drawn at
random (its false-alarm rate).
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim.cli import main
from firmware_sim.climate import SITES
from firmware_sim.clock import SimClock
from firmware_sim.faults import hourly_failure_rate, start_failure_probability
from firmware_sim.flash import FlashOperation, NorFlash, OpKind, PowerCut
from firmware_sim.fleet import plan_fleet, simulate_unit
from firmware_sim.keystore import UnitKeys
from firmware_sim.logstore import LogStore
from firmware_sim.models import C60
from firmware_sim.service import FOULING_PER_INTERVAL, OVERHAUL_HOURS, SERVICE_HOURS, ServiceKind
from firmware_sim.simulator import Simulator
from firmware_sim.unit import Unit, build_unit
from protocol.counters import LifetimeCounters
from protocol.enums import EngineState, EventKind, GridMode, Severity
from protocol.records import EventRecord, FaultRecord, Record, SampleRecord, decode_record
from tests.firmware_sim.test_simulator import chi2_quantile_even

HOUR = 3600
DAY = 86_400
START = 1_704_067_200
"""2024-01-01 00:00 UTC."""
KEYS = UnitKeys.generate(random.Random(0).randbytes)


def power_up(flash: NorFlash, seed: int, **kw: object) -> Unit:
    """Power a C60 up on *flash*, its clock resuming at the newest record (as `turbosim` does)."""
    store = LogStore(flash)
    last = store.read(store.next_seq - 1) if store.next_seq > store.first_seq else None
    start = decode_record(last).timestamp if last is not None else START
    settings: dict[str, object] = {"sample_interval_s": DAY}
    settings.update(kw)
    return Unit(
        C60, "C60-LIFE", seed=seed, store=store, keys=KEYS,
        clock=SimClock(start, wall=lambda: 0.0), **settings,  # type: ignore[arg-type]
    )


def records(flash: NorFlash) -> list[Record]:
    store = LogStore(flash)
    return [decode_record(raw) for raw in store.iter_raw(store.first_seq, store.next_seq)]


def failures(recs: list[Record]) -> list[tuple[int, int]]:
    """(operating second, code) of every shutdown-class fault the failure process raised."""
    return [
        (r.freeze.operating_s, r.code)
        for r in recs
        if isinstance(r, FaultRecord) and Severity(r.severity).is_failure
    ]


def live(seed: int, pieces: int, hours_each: float) -> tuple[list[Record], int]:
    """*pieces* power-ups of one image, each living *hours_each* hours; (records, operating seconds)."""
    flash = NorFlash(4096, 256)
    for _ in range(pieces):
        unit = power_up(flash, seed)
        unit.fast_forward(hours_each * HOUR)
        operating_s = unit.counters.operating_s
    return records(flash), operating_s


# --- defect 1: the failure process carries on across power-ups ------------------------------


def test_an_image_run_in_pieces_meets_the_same_failures_as_one_run() -> None:
    once, _ = live(seed=11, pieces=1, hours_each=20_000)
    pieces, _ = live(seed=11, pieces=20, hours_each=1_000)
    assert len(failures(once)) >= 2
    # each power-up restarts the engine, so operating hours drift by the starts' seconds:
    # compare what the failure process raised over the operating hours both runs lived
    lived = min(failures(once)[-1][0], failures(pieces)[-1][0])
    assert [f for f in failures(pieces) if f[0] <= lived] == [f for f in failures(once) if f[0] <= lived]


def binomial_two_sided_p(k: int, n: int, p: float) -> float:
    """P(a Binomial(n, p) count is as unlikely as *k* or more so)."""
    probs = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return sum(q for q in probs if q <= probs[k] * (1 + 1e-9))


@pytest.mark.slow
def test_twenty_power_ups_of_1000_h_fail_like_one_run_of_20000_h() -> None:
    """Failure counts per unit: 61 images each run as 20 x 1,000 h against 61 others run at once.

    Three checks, each with a false-alarm rate of 0.001 (0.003 together, by the union bound):
    the two arms' totals agree (exact binomial test conditional on their sum, weighted by
    operating hours), the pieces' total matches the MTBF (Poisson, two-sided), and the
    pieces' counts are no more (or less) dispersed than Poisson counts (index of dispersion
    against chi-square with 60 degrees of freedom).  The old generator restarted at every
    power-up, so a unit saw either no failure or one per power-up: it fails all three.
    """
    units = 61
    pieces = [live(seed, 20, 1_000) for seed in range(1, units + 1)]
    once = [live(seed, 1, 20_000) for seed in range(1001, 1001 + units)]
    counts_p = [len(failures(recs)) for recs, _ in pieces]
    counts_o = [len(failures(recs)) for recs, _ in once]
    hours_p = sum(op for _, op in pieces) / HOUR
    hours_o = sum(op for _, op in once) / HOUR
    total_p, total_o = sum(counts_p), sum(counts_o)

    share = hours_p / (hours_p + hours_o)
    assert binomial_two_sided_p(total_p, total_p + total_o, share) > 0.001, (total_p, total_o)

    starts_p = sum(max(r.snapshot.starts for r in recs if isinstance(r, SampleRecord)) for recs, _ in pieces)
    expected = hours_p * hourly_failure_rate(C60.mtbf_h) + starts_p * start_failure_probability(C60.mtbf_h)
    log_e = math.log(expected)
    poisson = [math.exp(-expected + k * log_e - math.lgamma(k + 1)) for k in range(4 * units * 20)]
    tail = sum(q for q in poisson if q <= poisson[total_p] * (1 + 1e-9))
    assert tail > 0.001, f"{total_p} failures where {expected:.0f} are expected"

    mean = total_p / units
    dispersion = sum((c - mean) ** 2 for c in counts_p) / mean
    low, high = chi2_quantile_even(0.0005, units - 1), chi2_quantile_even(0.9995, units - 1)
    assert low < dispersion < high, counts_p


# --- defect 3: --history is the unit's age ------------------------------------------------


def turbosim_info(image: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, float]:
    capsys.readouterr()
    assert main(["info", "--flash", str(image), "--json"]) == 0
    info: dict[str, float] = json.loads(capsys.readouterr().out)
    return info


def test_history_is_the_units_age_and_is_never_lived_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "unit.img"
    run = ["run", "--flash", str(image), "--start", "2020-03-01", "--sample-interval", "1h"]
    assert main([*run, "--history", "300h"]) == 0
    first = turbosim_info(image, capsys)
    assert 290 < first["operating_hours"] <= 301  # and the cooldown when it was switched off

    assert main([*run, "--history", "300h"]) == 0  # re-served as it was: already 300 h old
    again = turbosim_info(image, capsys)
    assert again["operating_hours"] == first["operating_hours"]

    # its age counts from its commissioning (its first record), not from today's --start
    assert main(["run", "--flash", str(image), "--sample-interval", "1h", "--history", "500h"]) == 0
    older = turbosim_info(image, capsys)
    assert 190 < older["operating_hours"] - first["operating_hours"] <= 200


# --- defect 2: a power loss is logged at the next power-up --------------------------------


def image_records(image: Path) -> list[Record]:
    with NorFlash.open(image) as flash:
        return records(flash)


def events(recs: list[Record], kind: EventKind) -> list[EventRecord]:
    return [r for r in recs if isinstance(r, EventRecord) and r.kind == kind]


def serve(image: Path, tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim.cli", "serve", "--pty", str(tmp_path / "pty"),
         "--flash", str(image), "--sample-interval", "1m", "--no-pace", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("ready "), (line, process.stderr.read() if process.stderr else "")
    return process


def test_a_killed_unit_logs_the_loss_of_power_at_its_next_power_up(tmp_path: Path) -> None:
    image = tmp_path / "unit.img"
    process = serve(image, tmp_path, "--history", "50h")
    process.kill()  # SIGKILL: the controller loses its power at full load
    process.wait(10)
    before = image_records(image)
    last, last_sample = before[-1], [r for r in before if isinstance(r, SampleRecord)][-1]
    assert last_sample.snapshot.state == EngineState.LOAD

    assert main(["run", "--flash", str(image), "--sample-interval", "1m", "--history", "60h"]) == 0
    after = image_records(image)[len(before):]
    power_up, loss, stop = after[:3]
    assert isinstance(power_up, EventRecord) and power_up.kind == EventKind.POWER_UP
    assert isinstance(loss, EventRecord) and loss.kind == EventKind.POWER_LOSS
    assert loss.state_from == EngineState.LOAD and loss.state_to == EngineState.STAND_BY
    assert loss.value_a == last.timestamp and loss.value_b == loss.timestamp - last.timestamp
    assert isinstance(stop, EventRecord) and stop.kind == EventKind.STOP
    assert stop.level == loss.level == Severity.EMERGENCY_STOP and stop.value_a == 0

    # the engine comes back hot, not at ambient, and every counter carries on from where it was
    first_sample = next(r for r in after if isinstance(r, SampleRecord))
    assert first_sample.snapshot.tet_avg_c > last_sample.snapshot.tet_avg_c / 2
    saved = last_sample.snapshot
    assert first_sample.snapshot.trips == saved.trips  # a loss of power is no fault
    for r in after:
        if isinstance(r, SampleRecord):
            assert LifetimeCounters.from_snapshot(r.snapshot).dominates(LifetimeCounters.from_snapshot(saved))


def test_a_unit_switched_off_in_order_logs_no_loss(tmp_path: Path) -> None:
    image = tmp_path / "unit.img"
    process = serve(image, tmp_path, "--history", "20h")
    process.terminate()  # SIGTERM: the operator stops the unit and switches it off
    assert process.wait(10) == 0
    before = image_records(image)
    stops = events(before, EventKind.STOP)
    assert stops and stops[-1].level == 0 and stops[-1].value_a == 0
    assert events(before, EventKind.STATE_CHANGE)[-1].state_to == EngineState.STAND_BY

    assert main(["run", "--flash", str(image), "--history", "21h"]) == 0
    after = image_records(image)[len(before):]
    assert not events(after, EventKind.POWER_LOSS)
    assert isinstance(after[0], EventRecord) and after[0].kind == EventKind.POWER_UP


def test_a_power_cut_under_load_is_logged_with_the_state_it_was_in() -> None:
    flash = NorFlash(4096, 64)
    unit = power_up(flash, seed=3, sample_interval_s=900)
    unit.fast_forward(30 * HOUR + 1234)
    cut_at = records(flash)[-1].timestamp
    state = unit.state
    assert state == EngineState.LOAD
    # power cut: nothing more is written; power returns when the clock has run 2 h on
    store = LogStore(flash)
    clock = SimClock(cut_at + 2 * HOUR, wall=lambda: 0.0)
    unit = Unit(C60, "C60-LIFE", seed=3, store=store, keys=KEYS, clock=clock)
    loss = events(records(flash), EventKind.POWER_LOSS)
    assert [(e.state_from, e.value_a, e.value_b) for e in loss] == [(state, cut_at, 2 * HOUR)]
    unit.power_down()
    unit = power_up(flash, seed=3)
    assert len(events(records(flash), EventKind.POWER_LOSS)) == 1


def test_a_flash_torn_by_a_power_cut_under_load_logs_the_loss_at_the_next_power_up() -> None:
    flash = NorFlash(1024, 64)
    unit = power_up(flash, seed=4, sample_interval_s=600)
    unit.fast_forward(20 * HOUR)
    programs = [0]
    tear_rng = random.Random(1)

    def cut_at_the_40th_program(op: FlashOperation) -> None:
        programs[0] += op.kind == OpKind.PROGRAM
        if programs[0] == 40:
            flash.tear(op, tear_rng)
            raise PowerCut(op.kind.value)

    flash.on_operation = cut_at_the_40th_program
    with pytest.raises(PowerCut):
        unit.fast_forward(20 * HOUR)
    flash.on_operation = None
    durable = records(flash)
    last_sample = [r for r in durable if isinstance(r, SampleRecord)][-1]
    assert last_sample.snapshot.state == EngineState.LOAD

    power_up(flash, seed=4, sample_interval_s=600)
    (loss,) = events(records(flash), EventKind.POWER_LOSS)
    assert (loss.state_from, loss.value_a) == (EngineState.LOAD, durable[-1].timestamp)
    assert LogStore(flash).counters == LifetimeCounters.from_snapshot(last_sample.snapshot)


# --- realism 9: units differ, but a site's grid is the site's ---------------------------------


def test_a_sites_grid_is_the_same_for_a_unit_alone_and_in_a_fleet(tmp_path: Path) -> None:
    plans = plan_fleet(60, {"C30": 0.5, "C60": 0.5}, 200.0, seed=3)
    for site in ("temperate", "desert"):
        plan = next(p for p in plans if p.site == site and p.mode == GridMode.GRID_CONNECT)
        simulate_unit(plan, tmp_path)
        with NorFlash.open(tmp_path / f"{plan.serial}.img") as flash:
            in_fleet = [r.snapshot for r in records(flash) if isinstance(r, SampleRecord)][-1]
        alone = build_unit(plan.model, "ALONE", seed=plan.seed, clock=SimClock(START, wall=lambda: 0.0),
                           site=SITES[site])
        snap = alone.live_snapshot()
        volts, hertz = SITES[site].grid
        for s in (in_fleet, snap):
            assert s.grid_voltage_v_x10 == pytest.approx(volts * 10, rel=0.03)
            assert s.grid_freq_hz_x1000 == pytest.approx(hertz * 1000, abs=100)


# --- realism 8: planned maintenance and wear --------------------------------------------------


def baseload_years(seed: int, years: int) -> tuple[Simulator, list[Record]]:
    """A C60 at ISO conditions on baseload for *years*; its records, their seqs numbered."""
    sink: list[Record] = []

    class Sink:
        def append(self, record: Record) -> int:
            sink.append(dataclasses.replace(record, seq=len(sink)))
            return len(sink) - 1

    sim = Simulator(C60, seed=seed, start_time=START, log=Sink(), sample_interval_s=DAY, site=SITES["iso"])
    sim.advance_to(START + years * 365 * DAY)
    return sim, sink


def test_a_unit_is_serviced_on_its_hours_and_fouling_recovers_partly_at_service() -> None:
    sim, recs = baseload_years(seed=2, years=4)
    services = events(recs, EventKind.SERVICE)
    assert [(e.value_a, e.value_b) for e in services] == [
        (ServiceKind.SERVICE, SERVICE_HOURS * HOUR)] * 3 + [(ServiceKind.OVERHAUL, OVERHAUL_HOURS * HOUR)]
    samples = [r for r in recs if isinstance(r, SampleRecord)]
    for service in services:
        # a commanded stop at the service's hour, the planned downtime, then the unit runs again
        before = recs[: service.seq]
        stop = events(before, EventKind.STOP)[-1]
        assert stop.level == 0 and stop.value_a == 0
        rest = events(before, EventKind.STATE_CHANGE)[-1]
        assert rest.state_to == EngineState.STAND_BY and service.timestamp == rest.timestamp + service.value_b
        start = next(e for e in events(recs, EventKind.START) if e.seq > service.seq)
        assert start.timestamp == service.timestamp
    # the services come at 8,000 h intervals of operating hours
    operating = [max(r.snapshot.operating_s for r in samples if r.seq < s.seq) for s in services]
    assert [round(op / HOUR / 100) for op in operating] == [80, 160, 240, 320]

    def full_load(before_h: float) -> int:
        loaded = [r.snapshot for r in samples
                  if r.snapshot.state == EngineState.LOAD and r.snapshot.operating_s < before_h * HOUR]
        return loaded[-1].power_w

    clean = sim.rated_power_w
    assert full_load(100) == pytest.approx(clean, rel=0.001)
    assert full_load(7990) == pytest.approx(clean * (1 - FOULING_PER_INTERVAL), rel=0.002)
    assert full_load(8200) == pytest.approx(clean * (1 - 0.3 * FOULING_PER_INTERVAL), rel=0.002)
    assert full_load(31990) < full_load(23990) < full_load(15990) < full_load(7990)
    assert full_load(32200) == pytest.approx(clean, rel=0.002)  # the overhaul makes it new


def test_a_baseload_unit_is_available_95_to_99_percent_of_the_time() -> None:
    for seed in (1, 2, 3):
        sim, _ = baseload_years(seed=seed, years=4)
        availability = sim.counters.operating_s / (4 * 365 * DAY)
        assert 0.95 <= availability <= 0.99, (seed, availability)
