"""The engine's transition table, its timed states, and the physics of each state."""

from __future__ import annotations

from collections import deque
from itertools import pairwise

import pytest

from firmware_sim.climate import ISO_PRESSURE_KPA
from firmware_sim.engine import (
    RUNNING_STATES,
    STATE_DURATION_S,
    TRANSITIONS,
    TURNING_STATES,
    WARM_UP_CAP,
    WARM_UP_S,
    Engine,
    IllegalTransition,
    Point,
    Trigger,
)
from firmware_sim.models import C30, C60, C65, PROFILES, ModelProfile
from protocol.enums import EngineState, GridMode

S = EngineState
RAMPED_S = 400
"""Seconds into LOAD by which every model has ramped up to its rating."""
T0 = 1_700_000_000.0
ISO = {"ambient_c": 15.0, "pressure_kpa": ISO_PRESSURE_KPA, "setpoint": 1.0}
POINT_NAMES = (
    "speed", "power", "tet1", "tet2", "inlet", "ambient", "pressure", "valve", "fuel", "dc", "volts", "hertz",
)


def paths_from_stand_by() -> dict[EngineState, list[Trigger]]:
    """Shortest trigger sequence from STAND_BY to every state the table reaches."""
    paths: dict[EngineState, list[Trigger]] = {S.STAND_BY: []}
    queue = deque([S.STAND_BY])
    while queue:
        state = queue.popleft()
        for trigger, target in TRANSITIONS[state].items():
            if target not in paths:
                paths[target] = [*paths[state], trigger]
                queue.append(target)
    return paths


def engine_in(state: EngineState, profile: ModelProfile = C65, **kw: object) -> tuple[Engine, float]:
    """An engine driven along the table into *state*, and the time it got there."""
    engine = Engine(profile, seed=1, t=T0, ambient_c=15.0, **kw)  # type: ignore[arg-type]
    t = T0
    for trigger in paths_from_stand_by()[state]:
        t = min(engine.deadline, t + 1000) if trigger is Trigger.TIMER else t + 1
        engine.fire(trigger, t, **ISO)
    assert engine.state == state
    return engine, t


def at(engine: Engine, t: float, ambient_c: float = 15.0, setpoint: float = 1.0,
       pressure_kpa: float = ISO_PRESSURE_KPA) -> dict[str, float]:
    values: Point = engine.point(t, ambient_c, pressure_kpa, setpoint)
    return dict(zip(POINT_NAMES, values, strict=True))


# --- the table ----------------------------------------------------------------


def test_the_table_has_a_row_for_every_state_and_leads_only_to_states() -> None:
    assert set(TRANSITIONS) == set(EngineState)
    assert all(isinstance(target, EngineState) for row in TRANSITIONS.values() for target in row.values())


def test_every_state_is_reachable_from_stand_by_and_can_get_back() -> None:
    assert set(paths_from_stand_by()) == set(EngineState)
    for state in EngineState:
        engine, t = engine_in(state)
        for _ in range(10):
            if engine.state == S.STAND_BY:
                break
            row = TRANSITIONS[engine.state]
            trigger = next(tr for tr in (Trigger.CLEAR, Trigger.TIMER, Trigger.STOP) if tr in row)
            t = engine.deadline if trigger is Trigger.TIMER else t + 1
            engine.fire(trigger, t, **ISO)
        assert engine.state == S.STAND_BY


@pytest.mark.parametrize(
    ("state", "trigger"), [(s, tr) for s, row in TRANSITIONS.items() for tr in row], ids=str
)
def test_every_transition_in_the_table_can_be_taken(state: EngineState, trigger: Trigger) -> None:
    engine, t = engine_in(state)
    assert engine.accepts(trigger)
    assert engine.fire(trigger, t + 1, **ISO) == TRANSITIONS[state][trigger]
    assert engine.state == TRANSITIONS[state][trigger]
    assert engine.entered_at == t + 1


@pytest.mark.parametrize(
    ("state", "trigger"),
    [(s, tr) for s in EngineState for tr in Trigger if tr not in TRANSITIONS[s]],
    ids=str,
)
def test_a_transition_outside_the_table_is_refused(state: EngineState, trigger: Trigger) -> None:
    engine, t = engine_in(state)
    assert not engine.accepts(trigger)
    with pytest.raises(IllegalTransition, match=f"{trigger.name} is not allowed in {state.name}"):
        engine.fire(trigger, t + 1, **ISO)
    assert engine.state == state


def test_shutdowns_go_through_cooldown_or_warmdown_once_lit() -> None:
    for state in (S.LIGHT_OFF, S.RELIGHT, S.ACCEL, S.LOAD):
        assert TRANSITIONS[state][Trigger.NORMAL_SHUTDOWN] == S.COOLDOWN
        assert TRANSITIONS[state][Trigger.FAST_SHUTDOWN] == S.WARMDOWN
        assert TRANSITIONS[state][Trigger.STOP] == S.COOLDOWN


def test_timed_states_last_realistic_durations() -> None:
    d = STATE_DURATION_S
    assert 5 <= d[S.LIFT_OFF] <= 15 and 10 <= d[S.LIGHT_OFF] <= 20 and 45 <= d[S.ACCEL] <= 90
    assert 300 <= d[S.COOLDOWN] <= 600
    assert 60 <= d[S.WARMDOWN] <= 120
    assert set(d) == {s for s, row in TRANSITIONS.items() if Trigger.TIMER in row}


def test_turning_and_running_states() -> None:
    assert set(EngineState) - TURNING_STATES == {S.STAND_BY, S.SHUTDOWN, S.FAULT_LOCKOUT}
    assert {S.LIFT_OFF, S.LIGHT_OFF, S.RELIGHT, S.ACCEL, S.LOAD} == RUNNING_STATES
    assert all(Trigger.STOP in TRANSITIONS[s] for s in RUNNING_STATES)


# --- physics --------------------------------------------------------------------


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES)
def test_full_load_at_iso_conditions_matches_the_data_sheet(profile: ModelProfile) -> None:
    engine, t = engine_in(S.LOAD, profile)
    v = at(engine, t + RAMPED_S)
    assert v["speed"] == profile.full_rpm
    assert profile.rated_power_w - profile.output_tolerance_w <= v["power"] <= profile.rated_power_w
    assert v["power"] == round(engine.rated_w)
    assert v["fuel"] == pytest.approx(profile.fuel_input_w, rel=0.04)  # units differ a little
    assert v["power"] / v["fuel"] == pytest.approx(profile.efficiency, rel=0.021)
    assert (v["tet1"] + v["tet2"]) / 20 == pytest.approx(profile.tet_full_c, abs=0.1)
    assert 0 < abs(v["tet1"] - v["tet2"]) <= 80
    assert v["valve"] == pytest.approx(800, abs=1)
    assert v["dc"] == pytest.approx(profile.dc_bus_v * 10, rel=0.01)


def test_part_load_slows_the_shaft_cools_the_exhaust_and_costs_efficiency() -> None:
    engine, t = engine_in(S.LOAD, C60)
    full, half, low = (at(engine, t + RAMPED_S, setpoint=s) for s in (1.0, 0.5, 0.3))
    assert full["speed"] > half["speed"] > low["speed"] >= C60.idle_rpm
    assert full["tet1"] > half["tet1"] > low["tet1"]
    eff = [v["power"] / v["fuel"] for v in (full, half, low)]
    assert eff[0] > eff[1] > eff[2] > 0.15
    assert half["power"] == round(engine.rated_w / 2)


def test_heat_derates_power_but_not_speed_or_tet() -> None:
    engine, t = engine_in(S.LOAD, C30)
    cool, hot = at(engine, t + RAMPED_S, ambient_c=10), at(engine, t + RAMPED_S, ambient_c=45)
    assert cool["power"] == round(engine.rated_w)
    assert hot["power"] < 0.8 * engine.rated_w
    assert hot["speed"] == cool["speed"] and hot["tet1"] == cool["tet1"]
    assert hot["power"] / hot["fuel"] < cool["power"] / cool["fuel"]
    assert hot["inlet"] == pytest.approx(hot["ambient"] + 30)


def test_a_start_moves_speed_tet_and_fuel_continuously_up_to_load() -> None:
    engine = Engine(C65, seed=2, t=T0, ambient_c=15.0)
    engine.fire(Trigger.START, T0, **ISO)
    trace = []
    t = T0
    while engine.state != S.LOAD:
        if t >= engine.deadline:
            engine.fire(Trigger.TIMER, engine.deadline, **ISO)
        trace.append(at(engine, t))
        t += 1
    speeds = [v["speed"] for v in trace]
    assert speeds == sorted(speeds)
    assert max(b - a for a, b in pairwise(speeds)) <= 2500
    assert trace[0]["fuel"] == 0 and trace[-1]["fuel"] > 0
    assert all(v["power"] <= 0 for v in trace)
    assert trace[-1]["speed"] == C65.idle_rpm  # ACCEL brings the shaft to idle; LOAD then ramps
    assert t - T0 == sum(STATE_DURATION_S[s] for s in (S.LIFT_OFF, S.LIGHT_OFF, S.ACCEL)) + 1


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES)
def test_load_is_taken_on_at_the_model_ramp_after_a_warm_up(profile: ModelProfile) -> None:
    engine, t = engine_in(S.LOAD, profile)
    trace = [at(engine, t + dt) for dt in range(RAMPED_S + 1)]
    powers = [v["power"] for v in trace]
    assert powers[0] == 0 and powers[-1] == round(engine.rated_w)
    assert max(b - a for a, b in pairwise(powers)) <= profile.ramp_w_per_s + 1
    assert max(powers[:WARM_UP_S]) <= WARM_UP_CAP * engine.rated_w + 1
    # speed and TET follow the load carried, not the load asked for
    speeds = [v["speed"] for v in trace]
    assert speeds == sorted(speeds) and speeds[0] == profile.idle_rpm and speeds[-1] == profile.full_rpm
    assert trace[WARM_UP_S // 2]["tet1"] < trace[-1]["tet1"] - 500
    bends = []
    x = t
    while (x := engine.bend_at(x)) < float("inf"):
        bends.append(x - t)
    assert bends[-1] <= RAMPED_S and at(engine, t + bends[-1])["power"] == round(engine.rated_w)


def test_units_differ_within_the_data_sheet_tolerance() -> None:
    ratings = [Engine(C60, seed=seed, t=T0, ambient_c=15.0).rated_w for seed in range(200)]
    efficiencies = [Engine(C60, seed=seed, t=T0, ambient_c=15.0).efficiency_factor for seed in range(200)]
    assert min(ratings) >= C60.rated_power_w - C60.output_tolerance_w and max(ratings) <= C60.rated_power_w
    assert max(ratings) - min(ratings) > 0.8 * C60.output_tolerance_w
    assert 0.98 <= min(efficiencies) < 0.985 and 1.015 < max(efficiencies) <= 1.02


def test_cooldown_motors_the_shaft_without_fuel_and_cools_the_turbine() -> None:
    engine, t = engine_in(S.LOAD, C65)
    engine.fire(Trigger.STOP, t + 100, **ISO)
    start, end = at(engine, t + 101), at(engine, engine.deadline)
    assert start["fuel"] == end["fuel"] == 0
    assert end["power"] < 0
    assert end["tet1"] < start["tet1"] - 3000
    assert end["speed"] == pytest.approx(C65.idle_rpm, rel=0.01)


def test_warmdown_keeps_fuel_on_and_setdown_stops_the_shaft() -> None:
    engine, t = engine_in(S.LOAD, C65)
    engine.fire(Trigger.FAST_SHUTDOWN, t + 100, **ISO)
    assert at(engine, t + 150)["fuel"] > 0
    engine.fire(Trigger.TIMER, engine.deadline, **ISO)
    assert engine.state == S.SETDOWN
    assert at(engine, engine.deadline)["speed"] == 0


def test_grid_connect_follows_the_utility_in_every_state() -> None:
    for state in EngineState:
        engine, t = engine_in(state)
        for dt in range(0, 86_400, 3_333):
            v = at(engine, t + dt)
            assert v["volts"] == pytest.approx(4800, rel=0.02)
            assert v["hertz"] == pytest.approx(60_000, abs=20)


def test_stand_alone_forms_its_own_grid_only_while_carrying_load() -> None:
    for state in EngineState:
        engine, t = engine_in(state, mode=GridMode.STAND_ALONE)
        v = at(engine, t + 5)
        if state == S.LOAD:
            assert v["hertz"] == 60_000
            assert v["volts"] == pytest.approx(4800, rel=0.005)
        else:
            assert v["volts"] == v["hertz"] == 0


def test_a_unit_wired_for_400_v_50_hz_shows_it() -> None:
    engine, t = engine_in(S.LOAD, C60.with_grid(400, 50))
    v = at(engine, t + 10)
    assert v["volts"] == pytest.approx(4000, rel=0.02)
    assert v["hertz"] == pytest.approx(50_000, abs=20)


def test_a_failed_pressure_sensor_reads_the_iso_default() -> None:
    engine, t = engine_in(S.LOAD)
    assert at(engine, t, pressure_kpa=97.5)["pressure"] == 9750
    engine.pressure_sensor_ok = False
    assert at(engine, t, pressure_kpa=97.5)["pressure"] == 10132


def test_a_stopped_engine_cools_to_ambient() -> None:
    engine, t = engine_in(S.SHUTDOWN)
    engine.fire(Trigger.TIMER, engine.deadline, **ISO)
    later = at(engine, engine.entered_at + 6 * 3600, ambient_c=20)
    assert (later["tet1"] + later["tet2"]) / 20 == pytest.approx(20, abs=1)
    assert later["speed"] == later["fuel"] == later["power"] == 0


def test_the_unit_spread_is_seeded() -> None:
    a = Engine(C30, seed=5, t=T0, ambient_c=15.0)
    b = Engine(C30, seed=5, t=T0, ambient_c=15.0)
    c = Engine(C30, seed=6, t=T0, ambient_c=15.0)
    assert at(a, T0 + 77) == at(b, T0 + 77)
    assert at(a, T0 + 77) != at(c, T0 + 77)
