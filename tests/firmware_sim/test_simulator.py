"""The simulated unit over simulated time: records, physics bounds, duty, faults, determinism, statistics."""

from __future__ import annotations

import dataclasses
import math
import random
import statistics
from collections.abc import Callable, Iterator

import pytest

from firmware_sim.climate import SITES, Site
from firmware_sim.engine import TRANSITIONS
from firmware_sim.faults import (
    CATALOGUE,
    START_FAULTS,
    ScriptedFault,
    hourly_failure_rate,
    start_failure_probability,
)
from firmware_sim.models import C30, C60, C65, PROFILES, ModelProfile, trip_limits
from firmware_sim.simulator import Simulator
from protocol.counters import LifetimeCounters
from protocol.enums import EngineState, EventKind, GridMode, Severity
from protocol.records import (
    EventRecord,
    FaultRecord,
    Record,
    RunupRecord,
    SampleRecord,
    Snapshot,
    encode_record,
)

S = EngineState
DAY = 86_400
HOUR = 3600
JAN_1_2024 = 1_704_067_200
JUL_1_2024 = 1_719_792_000
ISO_SITE = SITES["iso"]
LEGAL_PAIRS = {(int(s), int(target)) for s, row in TRANSITIONS.items() for target in row.values()}


class ListSink:
    """A LogSink that keeps the records in a list."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> int:
        self.records.append(record)
        return len(self.records) - 1

    def samples(self) -> list[SampleRecord]:
        return [r for r in self.records if isinstance(r, SampleRecord)]

    def faults(self) -> list[FaultRecord]:
        return [r for r in self.records if isinstance(r, FaultRecord)]

    def events(self, kind: EventKind | None = None) -> list[EventRecord]:
        return [r for r in self.records if isinstance(r, EventRecord) and (kind is None or r.kind == kind)]

    def transitions(self) -> list[tuple[int, int, int]]:
        """(timestamp, from, to) of every state change."""
        return [(r.timestamp, r.state_from, r.state_to) for r in self.events(EventKind.STATE_CHANGE)]

    def data(self) -> bytes:
        return b"".join(encode_record(r) for r in self.records)


def simulate(
    profile: ModelProfile = C60, *, days: float = 1, start: int = JAN_1_2024, **kw: object
) -> tuple[Simulator, ListSink]:
    settings: dict[str, object] = {"seed": 1, "sample_interval_s": 900, "site": ISO_SITE}
    settings.update(kw)
    sink = ListSink()
    sim = Simulator(profile, start_time=start, log=sink, **settings)  # type: ignore[arg-type]
    sim.advance_to(start + days * DAY)
    return sim, sink


def advance_until(sim: Simulator, done: Callable[[Simulator], bool], limit_s: float = 3 * DAY) -> None:
    """Step one simulated second at a time until *done* (a state lasts at least 10 s)."""
    end = sim.now + limit_s
    while not done(sim):
        assert sim.now < end, f"still {sim.state.name} after {limit_s} s"
        sim.advance_to(sim.now + 1)


def in_state(state: EngineState) -> Callable[[Simulator], bool]:
    return lambda sim: sim.state == state


def snapshots(sink: ListSink, *, causes: bool = True) -> Iterator[tuple[int, Snapshot]]:
    """Samples and freeze-frames; without *causes*, not the freeze-frames whose fault's cause
    holds a channel beyond its limit (tests/firmware_sim/test_freeze_frames.py)."""
    for r in sink.records:
        if isinstance(r, SampleRecord):
            yield r.timestamp, r.snapshot
        elif isinstance(r, FaultRecord) and (causes or r.code not in trip_limits(C60)):
            yield r.timestamp, r.freeze


def local_hour(timestamp: int, site: Site) -> float:
    return (timestamp + site.utc_offset_s) % DAY / HOUR


# --- the record stream ------------------------------------------------------------


def test_power_up_comes_first_then_samples_every_interval() -> None:
    sim, sink = simulate(days=2, start=JAN_1_2024 + 7, sample_interval_s=600)
    first = sink.records[0]
    assert isinstance(first, EventRecord) and first.kind == EventKind.POWER_UP
    assert first.timestamp == JAN_1_2024 + 7
    times = [r.timestamp for r in sink.samples()]
    assert times[0] == JAN_1_2024 + 600
    assert {b - a for a, b in zip(times, times[1:], strict=False)} == {600}
    assert times[-1] == JAN_1_2024 + 2 * DAY
    stamps = [r.timestamp for r in sink.records]
    assert stamps == sorted(stamps)
    assert all(r.seq == 0 for r in sink.records)


def test_a_start_is_logged_as_start_and_state_changes() -> None:
    sim, sink = simulate(days=0.01)
    assert [r.kind for r in sink.records[:3]] == [EventKind.POWER_UP, EventKind.START, EventKind.STATE_CHANGE]
    assert sink.events(EventKind.START)[0].value_a == 1
    states = [(f, t) for _, f, t in sink.transitions()]
    assert states == [
        (S.STAND_BY, S.LIFT_OFF), (S.LIFT_OFF, S.LIGHT_OFF), (S.LIGHT_OFF, S.ACCEL), (S.ACCEL, S.LOAD),
    ]
    assert sim.state == S.LOAD


# --- physics over a month, for every model --------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("duty", ["baseload", "peak-shaving", "load-following"])
@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES)
def test_physics_stays_within_bounds_over_a_month(profile: ModelProfile, duty: str) -> None:
    scripted = [
        ScriptedFault(5012, 50), ScriptedFault(5005, 120), ScriptedFault(8010, 200), ScriptedFault(7015, 60),
    ]
    start = JUL_1_2024 - 15 * DAY
    _, sink = simulate(
        profile, days=30, start=start, duty=duty, site=SITES["desert"], sample_interval_s=120,
        scripted_faults=scripted,
    )
    assert {f.code for f in sink.faults()} >= {5012, 5005, 8010, 7015}
    previous = LifetimeCounters()
    loaded = 0
    for timestamp, snap in snapshots(sink, causes=False):
        assert 0 <= snap.speed_rpm <= min(profile.full_rpm, 96_000)
        assert -0.1 * profile.rated_power_w <= snap.power_w <= profile.rated_power_w
        for tet in (snap.tet1_c_x10, snap.tet2_c_x10):
            assert -400 <= tet <= profile.tet_limit_c * 10
        assert abs(snap.tet1_c_x10 - snap.tet2_c_x10) <= 80
        assert 0 < snap.compressor_inlet_c_x10 - snap.ambient_c_x10 <= 50
        assert 9000 <= snap.ambient_pressure_kpa_x100 <= 10500
        assert 0 <= snap.fuel_valve_pct_x10 <= 1000
        assert snap.fuel_power_w >= snap.power_w
        assert 6000 <= snap.dc_bus_v_x10 <= 7700
        assert snap.grid_voltage_v_x10 == pytest.approx(4800, rel=0.03)
        assert snap.grid_freq_hz_x1000 == pytest.approx(60_000, abs=100)
        if snap.state == S.LOAD:
            loaded += 1
            efficiency = snap.power_w / snap.fuel_power_w
            assert efficiency <= profile.efficiency + 0.005
            assert efficiency >= 0.15 or snap.power_w < 0.3 * profile.rated_power_w  # ramping up
            assert snap.speed_rpm >= profile.idle_rpm
        counters = LifetimeCounters.from_snapshot(snap)
        assert counters.dominates(previous)
        assert snap.operating_s <= timestamp - start
        previous = counters
    assert loaded > 1000
    assert previous.starts >= 4 and previous.trips >= 3 and previous.energy_wh > 0
    assert all((f, t) in LEGAL_PAIRS for _, f, t in sink.transitions())


def test_every_transition_of_the_table_happens_in_simulation() -> None:
    """Drive two units through faults injected in every state of a start."""
    seen: set[tuple[int, int]] = set()

    def inject_in(sim: Simulator, state: EngineState, code: int) -> None:
        advance_until(sim, in_state(state))
        sim.inject_fault(code)

    sink = ListSink()
    quick = dataclasses.replace(C60, ignition_retry_probability=0.0, max_auto_restarts=1000)
    sim = Simulator(quick, seed=2, start_time=JAN_1_2024, log=sink, sample_interval_s=HOUR, site=ISO_SITE)
    normal, fast, lockout = 4001, 2001, 5005
    for state, code in [
        (S.LIFT_OFF, normal), (S.LIGHT_OFF, normal), (S.LIGHT_OFF, fast), (S.ACCEL, normal), (S.ACCEL, fast),
        (S.LOAD, normal), (S.COOLDOWN, fast), (S.LOAD, fast), (S.STAND_BY, lockout), (S.LOAD, lockout),
    ]:
        inject_in(sim, state, code)
    advance_until(sim, in_state(S.LOAD))
    seen |= {(f, t) for _, f, t in sink.transitions()}

    sink = ListSink()
    retrying = dataclasses.replace(C60, ignition_retry_probability=1.0, max_auto_restarts=1000)
    sim = Simulator(retrying, seed=3, start_time=JAN_1_2024, log=sink, sample_interval_s=HOUR, site=ISO_SITE)
    for state, code in [(S.LOAD, normal), (S.RELIGHT, normal), (S.RELIGHT, fast)]:
        inject_in(sim, state, code)
    advance_until(sim, in_state(S.LOAD))
    seen |= {(f, t) for _, f, t in sink.transitions()}

    assert seen == LEGAL_PAIRS


# --- derating, energy and duty ------------------------------------------------------


def test_heat_derates_output() -> None:
    hot_site = Site("oven", 45.0, 0.0, 0.0, weather_c=0.0, weather_kpa=0.0)
    sim, iso = simulate(C65, days=2)
    _, hot = simulate(C65, days=2, site=hot_site)
    iso_power = {s.snapshot.power_w for s in iso.samples() if s.snapshot.state == S.LOAD}
    hot_power = {s.snapshot.power_w for s in hot.samples() if s.snapshot.state == S.LOAD}
    assert iso_power == {round(sim.rated_power_w)}
    assert C65.rated_power_w - C65.output_tolerance_w <= sim.rated_power_w <= C65.rated_power_w
    assert len(hot_power) == 1 and 0.6 * C65.rated_power_w < hot_power.pop() < 0.8 * C65.rated_power_w


def test_a_desert_summer_gives_less_than_a_desert_winter() -> None:
    def mean_power(start: int) -> float:
        sim, sink = simulate(C30, days=10, start=start, site=SITES["desert"])
        loaded = (s.snapshot.power_w for s in sink.samples() if s.snapshot.state == S.LOAD)
        return statistics.mean(loaded) / sim.rated_power_w

    winter, summer = mean_power(JAN_1_2024), mean_power(JUL_1_2024)
    assert winter > 0.93
    assert summer < 0.85
    assert winter - summer > 0.1


def test_energy_integrates_exported_power() -> None:
    sim, _ = simulate(C30, days=10)
    counters = sim.counters
    loaded_s = counters.operating_s - 85
    assert counters.energy_wh == pytest.approx(sim.rated_power_w * loaded_s / HOUR, rel=1e-3)


def test_baseload_runs_around_the_clock() -> None:
    sim, sink = simulate(C30, days=7, seed=4, site=SITES["temperate"])
    assert len(sink.events(EventKind.START)) == 1 and not sink.events(EventKind.STOP)
    assert all(s.snapshot.state == S.LOAD for s in sink.samples()[1:])
    assert sim.counters.operating_s == 7 * DAY
    assert sim.counters.trips == 0


def test_peak_shaving_starts_at_seven_and_stops_at_nine_every_weekday() -> None:
    site = SITES["temperate"]
    sim, sink = simulate(C60, days=7, seed=5, duty="peak-shaving", site=site)  # Monday 1 January 2024 on
    starts, stops = sink.events(EventKind.START), sink.events(EventKind.STOP)
    assert [local_hour(r.timestamp, site) for r in starts] == [7.0] * 5
    assert [local_hour(r.timestamp, site) for r in stops] == [21.0] * 5
    assert [(r.timestamp - JAN_1_2024) // DAY for r in starts] == [0, 1, 2, 3, 4]
    assert all(r.value_a == 0 for r in stops)
    for sample in sink.samples():
        hour = local_hour(sample.timestamp, site)
        weekday = (sample.timestamp + site.utc_offset_s - JAN_1_2024) // DAY < 5
        if 8 <= hour < 21 and weekday:
            assert sample.snapshot.state == S.LOAD
        elif hour >= 22 or hour < 7:
            assert sample.snapshot.state == S.STAND_BY and sample.snapshot.speed_rpm == 0
    weekend = [s for s in sink.samples() if s.timestamp >= JAN_1_2024 + 5 * DAY + 3 * HOUR]
    assert weekend and all(s.snapshot.state == S.STAND_BY for s in weekend)
    assert sim.counters.operating_s == 5 * (14 * HOUR + 420 + 30)
    assert sim.counters.starts == 5


def test_load_following_tracks_a_daily_curve_between_30_and_100_percent() -> None:
    sim, sink = simulate(C65, days=14, seed=6, duty="load-following", sample_interval_s=300)
    started = [r.timestamp for r in sink.events(EventKind.START)]
    ramped = [s for s in sink.samples() if all(not 0 <= s.timestamp - t < 500 for t in started)]
    loaded = [s for s in ramped if s.snapshot.state == S.LOAD]
    fractions = [s.snapshot.power_w / sim.rated_power_w for s in loaded]
    assert 0.3 * (1 - 0.001) <= min(fractions) < 0.45 and 0.95 < max(fractions) <= 1.0 + 1e-4  # fouling
    night = [f for s, f in zip(loaded, fractions, strict=True) if local_hour(s.timestamp, ISO_SITE) < 5]
    day = [f for s, f in zip(loaded, fractions, strict=True) if 10 <= local_hour(s.timestamp, ISO_SITE) < 16]
    assert statistics.mean(day) > statistics.mean(night) + 0.3
    assert len(sink.events(EventKind.START)) == 1 + len(
        [f for f in sink.faults() if f.severity >= Severity.NORMAL_SHUTDOWN]
    )


def test_stand_alone_forms_its_own_grid() -> None:
    _, sink = simulate(C60, days=3, duty="peak-shaving", mode=GridMode.STAND_ALONE)
    for sample in sink.samples():
        snap = sample.snapshot
        assert snap.mode == GridMode.STAND_ALONE
        if snap.state == S.LOAD:
            assert snap.grid_freq_hz_x1000 == 60_000
            assert snap.grid_voltage_v_x10 == pytest.approx(4800, rel=0.005)
        else:
            assert snap.grid_voltage_v_x10 == snap.grid_freq_hz_x1000 == 0


def test_a_400_v_50_hz_unit_reports_its_grid() -> None:
    _, sink = simulate(C65.with_grid(400, 50), days=1)
    for sample in sink.samples():
        assert sample.snapshot.grid_voltage_v_x10 == pytest.approx(4000, rel=0.02)
        assert sample.snapshot.grid_freq_hz_x1000 == pytest.approx(50_000, abs=20)


# --- faults -------------------------------------------------------------------


def test_a_scripted_fault_fires_at_its_operating_hour() -> None:
    sim, sink = simulate(C60, days=6, scripted_faults=[ScriptedFault(5005, 100)], seed=7)
    fault = next(f for f in sink.faults() if f.code == 5005)
    assert fault.freeze.operating_s == 100 * HOUR
    assert fault.freeze.state == S.LOAD and fault.freeze.active_fault == 5005
    spec = CATALOGUE[5005]
    assert (fault.severity, fault.subsystem, fault.flags) == (spec.severity, spec.subsystem, spec.flags)
    after = [r for r in sink.records
             if r.timestamp >= fault.timestamp and not isinstance(r, SampleRecord | RunupRecord)]
    assert isinstance(after[1], EventRecord) and after[1].kind == EventKind.STOP and after[1].value_a == 5005
    assert [(f, t) for ts, f, t in sink.transitions() if ts >= fault.timestamp][:5] == [
        (S.LOAD, S.WARMDOWN), (S.WARMDOWN, S.SETDOWN), (S.SETDOWN, S.SHUTDOWN),
        (S.SHUTDOWN, S.FAULT_LOCKOUT), (S.FAULT_LOCKOUT, S.STAND_BY),
    ]
    cleared = next(r for r in sink.events(EventKind.FAULT_CLEARED) if r.value_a == 5005)
    assert cleared.value_b == fault.timestamp and cleared.level == Severity.FAST_SHUTDOWN
    assert cleared.timestamp - fault.timestamp >= 600
    assert sim.state == S.LOAD and sim.counters.trips >= 1


def test_a_scripted_fault_below_the_restored_hours_never_fires() -> None:
    restored = LifetimeCounters(operating_s=200 * HOUR)
    _, sink = simulate(C60, days=2, counters=restored, scripted_faults=[ScriptedFault(5005, 100)])
    assert 5005 not in {f.code for f in sink.faults()}


def test_a_normal_shutdown_cools_down_then_restarts_after_its_delay() -> None:
    sim, sink = simulate(C60, days=0.1)
    trips = sim.counters.trips
    sim.inject_fault(4001)
    t = int(sim.now)
    assert sim.snapshot().active_fault == 4001
    sim.advance_to(t + HOUR)
    assert [(ts - t, f, to) for ts, f, to in sink.transitions() if ts >= t] == [
        (0, S.LOAD, S.COOLDOWN), (420, S.COOLDOWN, S.SETDOWN), (450, S.SETDOWN, S.SHUTDOWN),
        (460, S.SHUTDOWN, S.STAND_BY), (1360, S.STAND_BY, S.LIFT_OFF), (1370, S.LIFT_OFF, S.LIGHT_OFF),
        (1385, S.LIGHT_OFF, S.ACCEL), (1445, S.ACCEL, S.LOAD),
    ]
    cleared = sink.events(EventKind.FAULT_CLEARED)
    assert [(r.timestamp - t, r.value_a) for r in cleared] == [(1360, 4001)]
    assert sim.counters.trips == trips + 1
    assert sim.snapshot().active_fault == 0


def test_a_warning_keeps_the_unit_running_and_clears_itself() -> None:
    sim, sink = simulate(C60, days=0.1)
    before = len(sink.transitions())
    trips = sim.counters.trips
    sim.inject_fault(7015)
    t = int(sim.now)
    (fault,) = [f for f in sink.faults() if f.timestamp == t]
    assert fault.severity == Severity.WARNING and fault.freeze.active_fault == 7015
    sim.advance_to(t + 2 * HOUR)
    assert len(sink.transitions()) == before and sim.state == S.LOAD
    assert [(r.timestamp - t, r.value_a) for r in sink.events(EventKind.FAULT_CLEARED)] == [(HOUR, 7015)]
    assert sim.counters.trips == trips


def test_the_active_fault_is_the_most_severe_one() -> None:
    sim, _ = simulate(C60, days=0.1)
    sim.inject_fault(7015)
    sim.inject_fault(4001)
    assert sim.snapshot().active_fault == 4001
    assert sim.active_faults == (7015, 4001)
    sim.advance_to(sim.now + 1500)
    assert sim.snapshot().active_fault == 7015
    sim.advance_to(sim.now + HOUR)
    assert sim.snapshot().active_fault == 0 and sim.active_faults == ()


def test_a_failed_pressure_sensor_shows_the_iso_default_until_it_clears() -> None:
    sim, _ = simulate(C60, days=0.1, site=SITES["desert"])
    assert sim.snapshot().ambient_pressure_kpa_x100 < 10000
    sim.inject_fault(2012)
    assert sim.snapshot().ambient_pressure_kpa_x100 == 10132
    sim.advance_to(sim.now + 5 * HOUR)
    assert sim.snapshot().ambient_pressure_kpa_x100 < 10000


def test_faults_at_rest_hold_or_lock_out_the_unit() -> None:
    sim, sink = simulate(C60, days=0.2, duty="peak-shaving", start=JAN_1_2024 + 22 * HOUR)
    assert sim.state == S.STAND_BY
    sim.inject_fault(4001)
    assert sim.state == S.STAND_BY and sim.active_faults == (4001,)
    sim.advance_to(sim.now + 901)
    assert sim.active_faults == ()
    sim.inject_fault(5005)
    assert sim.state == S.FAULT_LOCKOUT
    assert sink.transitions()[-1][1:] == (S.STAND_BY, S.FAULT_LOCKOUT)


def test_too_many_trips_in_a_day_lock_the_unit_out() -> None:
    sim, _ = simulate(C60, days=0.1)
    for _ in range(C60.max_auto_restarts):
        sim.inject_fault(4001)
        advance_until(sim, in_state(S.LOAD))
    sim.inject_fault(4001)
    advance_until(sim, lambda s: s.state in (S.FAULT_LOCKOUT, S.LOAD))
    assert sim.state == S.FAULT_LOCKOUT


def test_restored_counters_only_grow() -> None:
    restored = LifetimeCounters(operating_s=30_000 * HOUR, starts=812, trips=17, energy_wh=1_500_000_000)
    sim, sink = simulate(C65, days=5, duty="peak-shaving", counters=restored)
    for _, snap in snapshots(sink):
        assert LifetimeCounters.from_snapshot(snap).dominates(restored)
    now = sim.counters
    assert now.dominates(restored)
    assert now.starts == restored.starts + 5
    assert now.operating_s - restored.operating_s <= 5 * DAY


def test_counters_and_snapshot_agree_between_samples() -> None:
    sim, _ = simulate(C60, days=1.37)
    assert LifetimeCounters.from_snapshot(sim.snapshot()) == sim.counters
    assert sim.counters.operating_s == int(1.37 * DAY)


# --- determinism ---------------------------------------------------------------


SETTINGS: dict[str, object] = {
    "duty": "peak-shaving",
    "site": SITES["temperate"],
    "sample_interval_s": 600,
    "scripted_faults": [ScriptedFault(5012, 20), ScriptedFault(2012, 30), ScriptedFault(5005, 60)],
}


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    a = simulate(C60, days=20, seed=11, **SETTINGS)[1].data()
    b = simulate(C60, days=20, seed=11, **SETTINGS)[1].data()
    c = simulate(C60, days=20, seed=12, **SETTINGS)[1].data()
    assert a == b
    assert a != c


def test_splitting_the_interval_does_not_change_the_records() -> None:
    start = JAN_1_2024 + 5
    end = start + 20 * DAY
    _, whole = simulate(C60, days=20, start=start, seed=13, **SETTINGS)

    sink = ListSink()
    sim = Simulator(C60, seed=13, start_time=start, log=sink, **SETTINGS)  # type: ignore[arg-type]
    steps = random.Random(99)
    t = float(start)
    while t < end:
        t = min(end, t + (steps.uniform(0, 3) if steps.random() < 0.3 else steps.uniform(0, 9000)))
        sim.advance_to(t)
        sim.snapshot()
        assert sim.counters.dominates(LifetimeCounters())
    assert sink.data() == whole.data()


def test_invalid_settings_and_calls_are_refused() -> None:
    sink = ListSink()
    with pytest.raises(ValueError, match="sample interval"):
        Simulator(C60, seed=1, start_time=JAN_1_2024, log=sink, sample_interval_s=0)
    with pytest.raises(ValueError, match="start time"):
        Simulator(C60, seed=1, start_time=-1, log=sink)
    with pytest.raises(ValueError, match="unknown duty profile"):
        Simulator(C60, seed=1, start_time=JAN_1_2024, log=sink, duty="sometimes")
    sim = Simulator(C60, seed=1, start_time=JAN_1_2024, log=sink)
    sim.advance_to(JAN_1_2024 + 100)
    with pytest.raises(ValueError, match="back in time"):
        sim.advance_to(JAN_1_2024 + 99)
    with pytest.raises(ValueError, match="unknown fault code"):
        sim.inject_fault(1)


# --- fault statistics ------------------------------------------------------------


def chi2_cdf_even(x: float, dof: int) -> float:
    """P(X <= x) for chi-square with an even number of degrees of freedom (through the Poisson sum)."""
    half = x / 2
    term = total = math.exp(-half)
    for i in range(1, dof // 2):
        term *= half / i
        total += term
    return 1 - total


def chi2_quantile_even(p: float, dof: int) -> float:
    """The p-quantile of chi-square with an even number of degrees of freedom, by bisection."""
    assert dof > 0 and dof % 2 == 0
    lo, hi = 0.0, float(dof)
    while chi2_cdf_even(hi, dof) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if chi2_cdf_even(mid, dof) < p else (lo, mid)
    return (lo + hi) / 2


def mtbf_interval(total_h: float, failures: int, confidence: float) -> tuple[float, float]:
    """Two-sided confidence interval of the MTBF for time-terminated data."""
    a = 1 - confidence
    return (
        2 * total_h / chi2_quantile_even(1 - a / 2, 2 * failures + 2),
        2 * total_h / chi2_quantile_even(a / 2, 2 * failures),
    )


def test_the_chi_square_helper_reproduces_the_worked_values() -> None:
    lower, upper = mtbf_interval(50_000, 4, 0.90)
    assert (round(lower), round(upper)) == (5462, 36595)
    assert round(2 * 50_000 / chi2_quantile_even(0.90, 10)) == 6255


def test_measured_mtbf_falls_inside_its_90_percent_interval() -> None:
    total_s = failures = starts = 0
    for seed in range(10):
        sim, sink = simulate(C60, days=20_000 / 24 + 1, seed=seed, sample_interval_s=DAY)
        total_s += sim.counters.operating_s
        unit_failures = [f for f in sink.faults() if Severity(f.severity).is_failure]
        assert sim.counters.trips == len(unit_failures)
        failures += len(unit_failures)
        starts += sim.counters.starts
    total_h = total_s / HOUR
    assert 199_000 < total_h < 201_000
    # a baseload unit starts rarely: it fails less per hour than the model's MTBF (set for the
    # reference duty's starts), by the failures of the starts it does not make
    expected = total_h * hourly_failure_rate(C60.mtbf_h) + starts * start_failure_probability(C60.mtbf_h)
    lower, upper = mtbf_interval(total_h, failures, 0.90)
    assert lower < total_h / expected < upper, f"{failures} failures in {total_h:.0f} h"
    assert total_h / expected > C60.mtbf_h


@pytest.mark.slow
def test_starts_wear_units_that_start_daily_fail_more_per_hour() -> None:
    """Sixteen C60 units peak-shaving against sixteen baseload ones, 2,500 days each.  Fixed seeds; the
    comparison of the two Poisson rates (conditional binomial, one-sided) has a false-alarm
    rate of 0.001."""
    def run(duty: str) -> tuple[float, int, list[FaultRecord]]:
        hours = 0.0
        faults: list[FaultRecord] = []
        for seed in range(16):
            sim, sink = simulate(C60, days=2500, seed=seed, duty=duty, sample_interval_s=DAY)
            hours += sim.counters.operating_s / HOUR
            faults += [f for f in sink.faults() if Severity(f.severity).is_failure]
        return hours, len(faults), faults

    base_h, base_n, _ = run("baseload")
    peak_h, peak_n, peak_faults = run("peak-shaving")
    share = peak_h / (peak_h + base_h)
    n = peak_n + base_n
    tail = sum(math.comb(n, k) * share**k * (1 - share) ** (n - k) for k in range(peak_n, n + 1))
    assert tail < 0.001, (peak_n, peak_h, base_n, base_h)
    # a failed start shows its phase: ignition (only ever at a start) while lighting, a timeout accelerating
    ignition, _, timeout = START_FAULTS
    assert {f.freeze.state for f in peak_faults if f.code == ignition} <= {S.LIGHT_OFF, S.RELIGHT}
    assert any(f.code == ignition for f in peak_faults)
    assert any(f.code == timeout and f.freeze.state == S.ACCEL for f in peak_faults)
