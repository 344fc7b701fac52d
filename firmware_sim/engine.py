"""The engine: its state machine, and the physics that move with each state.

:data:`TRANSITIONS` is the one place where the legal state changes are
written: ``TRANSITIONS[state][trigger] -> next state``.  Read it to know the
machine; draw it to document it.  :class:`Engine` fires triggers through it
(anything else raises :class:`IllegalTransition`), times the timed states
(:data:`STATE_DURATION_S`) and gives the operating point at any instant::

    STAND_BY -START-> LIFT_OFF -> LIGHT_OFF -> ACCEL -> LOAD          (start, ~85 s)
                                 LIGHT_OFF -NO_LIGHT-> RELIGHT -> ACCEL
    LOAD/ACCEL/LIGHT_OFF/RELIGHT -STOP, NORMAL_SHUTDOWN-> COOLDOWN -> SETDOWN
    LOAD/ACCEL/LIGHT_OFF/RELIGHT -FAST_SHUTDOWN-> WARMDOWN -> SETDOWN
    LIFT_OFF -STOP, any shutdown-> SETDOWN          (nothing lit: just spin down)
    SETDOWN -> SHUTDOWN -> STAND_BY, or -LOCKOUT-> FAULT_LOCKOUT -CLEAR-> STAND_BY

Physics: speed, power, the two turbine-exit thermocouples, compressor inlet
temperature, fuel valve and fuel power, DC bus, and the grid's voltage and
frequency (the utility's in grid-connect mode; the unit's own in stand-alone
mode, only while it carries load).  In LOAD the setpoint and the ambient
derating fix the power; speed and TET follow the setpoint along the load
line of the load it actually carries (at full available power the engine
is at full speed and TET, whatever the derating; a cold day gives no more
than the rating); fuel follows a Willans line, so part load costs
efficiency.  Load is taken on gradually: ACCEL brings the engine to idle,
then LOAD ramps the output at the model's ``ramp_w_per_s``, held at
WARM_UP_CAP of the rating for the first WARM_UP_S seconds (warm-up);
:meth:`Engine.bend_at` tells when that ramp changes slope, so that the
owner can integrate energy piecewise.
Transient states move from the values they were entered with towards their
targets.

The engine does not decide when to start or stop (the duty profile, the
faults and the simulator do), keeps no lifetime counters and writes no
records.  Its only randomness is the unit's spread (thermocouple offset,
utility phases, its output within the data sheet's tolerance and its
efficiency within EFFICIENCY_SPREAD), drawn once from a seeded generator at
construction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from enum import Enum

from protocol.enums import EngineState, GridMode

from .climate import ISO_AMBIENT_C, ISO_PRESSURE_KPA, derate
from .errors import SimulatorError
from .models import ModelProfile


class IllegalTransition(SimulatorError):
    """A trigger was fired in a state whose row of the table does not have it."""


class Trigger(Enum):
    START = "start"
    """Start command from stand by."""
    STOP = "stop"
    """Stop command (the duty no longer wants the unit running)."""
    TIMER = "timer"
    """The timed state has run its course."""
    NO_LIGHT = "no_light"
    """Light off was not detected: purge and try again."""
    NORMAL_SHUTDOWN = "normal_shutdown"
    FAST_SHUTDOWN = "fast_shutdown"
    LOCKOUT = "lockout"
    """A fault needs a technician before the unit may run again."""
    CLEAR = "clear"
    """The technician cleared the lockout."""


_S, _T = EngineState, Trigger

TRANSITIONS: dict[EngineState, dict[Trigger, EngineState]] = {
    _S.STAND_BY: {_T.START: _S.LIFT_OFF, _T.LOCKOUT: _S.FAULT_LOCKOUT},
    _S.LIFT_OFF: {
        _T.TIMER: _S.LIGHT_OFF, _T.STOP: _S.SETDOWN,
        _T.NORMAL_SHUTDOWN: _S.SETDOWN, _T.FAST_SHUTDOWN: _S.SETDOWN,
    },
    _S.LIGHT_OFF: {
        _T.TIMER: _S.ACCEL, _T.NO_LIGHT: _S.RELIGHT, _T.STOP: _S.COOLDOWN,
        _T.NORMAL_SHUTDOWN: _S.COOLDOWN, _T.FAST_SHUTDOWN: _S.WARMDOWN,
    },
    _S.RELIGHT: {
        _T.TIMER: _S.ACCEL, _T.STOP: _S.COOLDOWN,
        _T.NORMAL_SHUTDOWN: _S.COOLDOWN, _T.FAST_SHUTDOWN: _S.WARMDOWN,
    },
    _S.ACCEL: {
        _T.TIMER: _S.LOAD, _T.STOP: _S.COOLDOWN,
        _T.NORMAL_SHUTDOWN: _S.COOLDOWN, _T.FAST_SHUTDOWN: _S.WARMDOWN,
    },
    _S.LOAD: {_T.STOP: _S.COOLDOWN, _T.NORMAL_SHUTDOWN: _S.COOLDOWN, _T.FAST_SHUTDOWN: _S.WARMDOWN},
    _S.COOLDOWN: {_T.TIMER: _S.SETDOWN, _T.FAST_SHUTDOWN: _S.SETDOWN},
    _S.WARMDOWN: {_T.TIMER: _S.SETDOWN},
    _S.SETDOWN: {_T.TIMER: _S.SHUTDOWN},
    _S.SHUTDOWN: {_T.TIMER: _S.STAND_BY, _T.LOCKOUT: _S.FAULT_LOCKOUT},
    _S.FAULT_LOCKOUT: {_T.CLEAR: _S.STAND_BY},
}
"""``TRANSITIONS[state][trigger]`` is the state that *trigger* leads to from *state*."""

STATE_DURATION_S: dict[EngineState, int] = {
    _S.LIFT_OFF: 10,
    _S.LIGHT_OFF: 15,
    _S.RELIGHT: 20,
    _S.ACCEL: 60,
    _S.COOLDOWN: 420,
    _S.WARMDOWN: 90,
    _S.SETDOWN: 30,
    _S.SHUTDOWN: 10,
}
"""How long each timed state lasts; the others (STAND_BY, LOAD, FAULT_LOCKOUT) last until a trigger."""

TURNING_STATES: frozenset[EngineState] = frozenset(
    {_S.LIFT_OFF, _S.LIGHT_OFF, _S.RELIGHT, _S.ACCEL, _S.LOAD, _S.COOLDOWN, _S.WARMDOWN, _S.SETDOWN}
)
"""States with the shaft above 0 rpm (they count as operating time)."""

RUNNING_STATES: frozenset[EngineState] = frozenset({_S.LIFT_OFF, _S.LIGHT_OFF, _S.RELIGHT, _S.ACCEL, _S.LOAD})
"""States in which the engine is starting or carrying load (a stop command applies)."""

FUEL_AT_ZERO_LOAD = 0.14
"""Willans-line intercept: fuel at zero output, as a fraction of fuel at rated output."""
FUEL_PER_C_ABOVE_ISO = 0.003
"""Extra fuel per degree above ISO at the same output (hot air, lower efficiency)."""
LIGHT_OFF_FUEL = 0.12
"""Fuel during light off, as a fraction of fuel at rated output."""
EFFICIENCY_SPREAD = 0.02
"""Units differ: each unit's efficiency is the model's within +/- this share (assumption)."""
WARM_UP_S = 300
"""After a start the engine carries at most WARM_UP_CAP of its rating for this long (assumption)."""
WARM_UP_CAP = 0.5
VALVE_AT_FULL_FUEL_PCT = 80.0
"""Fuel valve position at rated fuel flow."""
LIFT_OFF_MOTORING = 0.06
COOLDOWN_MOTORING = 0.03
"""Power the generator draws to motor the shaft, as a fraction of rated output."""
COOLDOWN_TET_C = 150.0
SPEED_TAU_S = 20.0
COOLDOWN_TET_TAU_S = 150.0
WARMDOWN_TET_TAU_S = 40.0
REST_TET_TAU_S = 1800.0
"""Time constant of a stopped engine's TET settling to ambient."""
INLET_RISE_C = 3.0
"""Compressor inlet air is warmed by the enclosure this much above ambient while running."""
DC_BUS_DROOP_V = 4.0
"""DC bus sag at rated output."""
STAND_ALONE_VOLTAGE_DROOP = 0.004
"""Output voltage sag at rated output when the unit forms its own grid."""
PRESSURE_DEFAULT_X100 = round(ISO_PRESSURE_KPA * 100)
"""What the controller shows for ambient pressure when its sensor has failed (101.32 kPa)."""

Point = tuple[int, int, int, int, int, int, int, int, int, int, int, int]
"""speed_rpm, power_w, tet1_c_x10, tet2_c_x10, compressor_inlet_c_x10, ambient_c_x10,
ambient_pressure_kpa_x100, fuel_valve_pct_x10, fuel_power_w, dc_bus_v_x10,
grid_voltage_v_x10, grid_freq_hz_x1000: the Snapshot's measured values, in its order."""

_Values = tuple[float, float, float, float]
"""speed (rpm), power (W), TET average (degC), fuel power (W)."""
_Core = Callable[[float, float, float, float], _Values]

_CORE_OF: dict[EngineState, str] = {
    _S.STAND_BY: "_at_rest",
    _S.SHUTDOWN: "_at_rest",
    _S.FAULT_LOCKOUT: "_at_rest",
    _S.LIFT_OFF: "_lift_off",
    _S.LIGHT_OFF: "_light_off",
    _S.RELIGHT: "_light_off",
    _S.ACCEL: "_accel",
    _S.LOAD: "_load",
    _S.COOLDOWN: "_cooldown",
    _S.WARMDOWN: "_warmdown",
    _S.SETDOWN: "_setdown",
}
"""The method giving the physics of each state (speed, power, TET, fuel)."""


class Engine:
    """One engine: its state, when it entered it, and its operating point at any instant.

    *seed* draws the unit's spread (thermocouple offset, utility phases);
    *t* and *ambient_c* are when it powers up in STAND_BY and how warm the
    air is; *tet_c* how hot its turbine exit still is (default: at ambient).
    Read-only for callers: ``state``, ``entered_at``, ``deadline`` (when a
    timed state runs its course; ``inf`` otherwise) and ``turning`` (shaft
    above 0 rpm).  ``pressure_sensor_ok`` is set by the owner: while False the
    ambient pressure reads the ISO default, as on a unit whose sensor failed.
    """

    def __init__(
        self,
        profile: ModelProfile,
        *,
        mode: GridMode = GridMode.GRID_CONNECT,
        seed: int,
        t: float,
        ambient_c: float,
        tet_c: float | None = None,
    ) -> None:
        self.profile = profile
        self.mode = mode
        self.pressure_sensor_ok = True
        self._bends: tuple[float, ...] = ()
        spread = random.Random(f"{seed}:engine")
        self._tet_half_split = spread.uniform(-4.0, 4.0)
        self._grid_phases = tuple(spread.uniform(0.0, 2 * math.pi) for _ in range(4))
        p = profile
        self.output_factor = 1 - spread.uniform(0.0, p.output_tolerance_w / p.rated_power_w)
        """This unit's output at full load over the rating: within the data sheet's +0/- tolerance."""
        self.efficiency_factor = 1 + spread.uniform(-EFFICIENCY_SPREAD, EFFICIENCY_SPREAD)
        """This unit's efficiency over the model's."""

        self._clean_rated = p.rated_power_w * self.output_factor
        self._fuel_full = p.fuel_input_w * self.output_factor / self.efficiency_factor
        self._valve_per_w = VALVE_AT_FULL_FUEL_PCT * 10 / self._fuel_full
        self._idle_rpm = float(p.idle_rpm)
        self._tet_idle = p.tet_idle_c
        self._fuel_idle = FUEL_AT_ZERO_LOAD * self._fuel_full
        self.set_wear(0.0)
        self._ramped_at = -math.inf
        self._speed_span = p.full_rpm - p.idle_rpm
        self._tet_span = p.tet_full_c - p.tet_idle_c
        self._warmdown_tet = p.tet_idle_c - 60.0
        self._grid_v = p.grid_voltage_v
        self._grid_hz = p.grid_freq_hz
        rectified_grid_v = p.grid_voltage_v * math.sqrt(2)
        self._standby_dc_x10 = round((rectified_grid_v if mode == GridMode.GRID_CONNECT else p.dc_bus_v) * 10)
        self._enter(_S.STAND_BY, t, 0.0, ambient_c if tet_c is None else tet_c)

    # --- the state machine -------------------------------------------------

    def _enter(self, state: EngineState, t: float, speed: float, tet: float) -> None:
        self.state = state
        self.entered_at = t
        duration = STATE_DURATION_S.get(state)
        self._duration = float(duration or 0)
        self.deadline = t + duration if duration else math.inf
        self.turning = state in TURNING_STATES
        self._entry_speed = speed
        self._entry_tet = tet
        if state == _S.LOAD:
            ramp, cap = self.profile.ramp_w_per_s, WARM_UP_CAP * self._rated
            capped = min(cap / ramp, WARM_UP_S)
            full = WARM_UP_S + (self._rated - min(ramp * WARM_UP_S, cap)) / ramp
            self._bends = tuple(t + x for x in sorted({capped, float(WARM_UP_S), full}))
            self._ramped_at = self._bends[-1]
        self._bind()

    def _bind(self) -> None:
        """Point the physics of the state (and of the grid in this mode) at this engine's methods."""
        self._core: _Core = getattr(self, _CORE_OF[self.state])
        grid = "_utility" if self.mode == GridMode.GRID_CONNECT else (
            "_own_grid" if self.state == _S.LOAD else "_no_grid"
        )
        self._grid: Callable[[float, float], tuple[float, float]] = getattr(self, grid)

    def __copy__(self) -> Engine:
        """A twin of the engine as it is now: its :meth:`point` gives this engine's values until
        this one changes state, wear or sensors (a pre-trigger buffer looks back through twins)."""
        twin = object.__new__(Engine)
        twin.__dict__.update(self.__dict__)
        twin._bind()
        return twin

    def accepts(self, trigger: Trigger) -> bool:
        """True when *trigger* leads somewhere from the current state."""
        return trigger in TRANSITIONS[self.state]

    def fire(
        self, trigger: Trigger, t: float, *, ambient_c: float, pressure_kpa: float, setpoint: float
    ) -> EngineState:
        """Move along the table at time *t*; the new state starts from the values at *t*.

        Raises :class:`IllegalTransition` (and stays put) when the current
        state's row has no *trigger*.
        """
        target = TRANSITIONS[self.state].get(trigger)
        if target is None:
            raise IllegalTransition(f"{trigger.name} is not allowed in {self.state.name}")
        speed, _, tet, _ = self._core(t, ambient_c, setpoint, derate(ambient_c, pressure_kpa))
        self._enter(target, t, speed, tet)
        return target

    def set_wear(self, loss: float) -> None:
        """Fouling: the unit now gives *loss* less output for the same fuel at full load (so its
        efficiency is *loss* lower too).  Takes effect from the next operating point."""
        self.wear = loss
        self._rated = self._clean_rated * (1 - loss)
        self._fuel_per_w = (1 - FUEL_AT_ZERO_LOAD) * self._fuel_full / self._rated

    @property
    def rated_w(self) -> float:
        """This unit's output at full load in ISO conditions when clean (the model's, less its
        manufacturing spread; fouling takes :attr:`wear` off it)."""
        return self._clean_rated

    def bend_at(self, t: float) -> float:
        """The first instant after *t* at which the LOAD ramp changes slope (``inf`` if none)."""
        if self.state != _S.LOAD:
            return math.inf
        for bend in self._bends:
            if bend > t:
                return bend
        return math.inf

    # --- physics -------------------------------------------------------------

    def point(self, t: float, ambient_c: float, pressure_kpa: float, setpoint: float) -> Point:
        """The measured values at time *t* (in or after the current state's start)."""
        speed, power, tet, fuel = self._core(t, ambient_c, setpoint, derate(ambient_c, pressure_kpa))
        half = self._tet_half_split
        rated = self._rated
        if self.turning:
            inlet = ambient_c + INLET_RISE_C
            dc_x10 = round((self.profile.dc_bus_v - DC_BUS_DROOP_V * power / rated) * 10)
        else:
            inlet = ambient_c + INLET_RISE_C / 3
            dc_x10 = self._standby_dc_x10
        volts, hertz = self._grid(t, power)
        return (
            round(speed),
            round(power),
            round((tet + half) * 10),
            round((tet - half) * 10),
            round(inlet * 10),
            round(ambient_c * 10),
            round(pressure_kpa * 100) if self.pressure_sensor_ok else PRESSURE_DEFAULT_X100,
            round(fuel * self._valve_per_w),
            round(fuel),
            dc_x10,
            round(volts * 10),
            round(hertz * 1000),
        )

    def _progress(self, t: float) -> float:
        return min(1.0, (t - self.entered_at) / self._duration)

    def _relax(self, start: float, target: float, t: float, tau: float) -> float:
        return target + (start - target) * math.exp(-(t - self.entered_at) / tau)

    def _at_rest(self, t: float, amb: float, sp: float, avail: float) -> _Values:
        return 0.0, 0.0, self._relax(self._entry_tet, amb, t, REST_TET_TAU_S), 0.0

    def _lift_off(self, t: float, amb: float, sp: float, avail: float) -> _Values:
        speed = self.profile.liftoff_rpm * self._progress(t)
        tet = self._relax(self._entry_tet, amb, t, REST_TET_TAU_S)
        return speed, -LIFT_OFF_MOTORING * self._rated, tet, 0.0

    def _light_off(self, t: float, amb: float, sp: float, avail: float) -> _Values:
        x = self._progress(t)
        speed = self._entry_speed + (self.profile.liftoff_rpm - self._entry_speed) * x
        tet = self._entry_tet + (self.profile.tet_light_off_c - self._entry_tet) * x
        return speed, -LIFT_OFF_MOTORING * self._rated, tet, LIGHT_OFF_FUEL * self._fuel_full

    def _accel(self, t: float, amb: float, sp: float, avail: float) -> _Values:
        x = self._progress(t)
        speed, _, tet, fuel = self._on_load_line(amb, 0.0, avail * self._rated)
        light_fuel = LIGHT_OFF_FUEL * self._fuel_full
        return (
            self._entry_speed + (speed - self._entry_speed) * x,
            -LIFT_OFF_MOTORING * self._rated * (1 - x),
            self._entry_tet + (tet - self._entry_tet) * x,
            light_fuel + (fuel - light_fuel) * x,
        )

    def _load(self, t: float, amb: float, sp: float, avail: float) -> _Values:
        available = avail * self._rated
        power = sp * available
        if t < self._ramped_at:
            power = min(power, self._ramp_limit(t))
        # _on_load_line, inlined: this is the hot path of every sample in LOAD
        share = power / available if available > 0 else 0.0
        fuel = self._fuel_idle + self._fuel_per_w * power
        return (
            self._idle_rpm + self._speed_span * share,
            power,
            self._tet_idle + self._tet_span * share,
            fuel * (1.0 + FUEL_PER_C_ABOVE_ISO * (amb - ISO_AMBIENT_C)) if amb > ISO_AMBIENT_C else fuel,
        )

    def _ramp_limit(self, t: float) -> float:
        """The most the engine may carry *t* seconds into LOAD: warm-up, then the ramp."""
        ramp, cap = self.profile.ramp_w_per_s, WARM_UP_CAP * self._rated
        into = t - self.entered_at
        if into < WARM_UP_S:
            return min(ramp * into, cap)
        return min(ramp * WARM_UP_S, cap) + ramp * (into - WARM_UP_S)

    def _on_load_line(self, amb: float, power: float, available: float) -> _Values:
        """Speed, power, TET and fuel when carrying *power* W of the *available* W."""
        share = power / available if available > 0 else 0.0
        fuel = self._fuel_idle + self._fuel_per_w * power
        return (
            self._idle_rpm + self._speed_span * share,
            power,
            self._tet_idle + self._tet_span * share,
            fuel * (1.0 + FUEL_PER_C_ABOVE_ISO * (amb - ISO_AMBIENT_C)) if amb > ISO_AMBIENT_C else fuel,
        )

    def _cooldown(self, t: float, amb: float, sp: float, avail: float) -> _Values:
        speed = self._relax(self._entry_speed, self.profile.idle_rpm, t, SPEED_TAU_S)
        tet = self._relax(self._entry_tet, COOLDOWN_TET_C, t, COOLDOWN_TET_TAU_S)
        return speed, -COOLDOWN_MOTORING * self._rated, tet, 0.0

    def _warmdown(self, t: float, amb: float, sp: float, avail: float) -> _Values:
        speed = self._relax(self._entry_speed, self.profile.idle_rpm, t, SPEED_TAU_S)
        tet = self._relax(self._entry_tet, self._warmdown_tet, t, WARMDOWN_TET_TAU_S)
        return speed, 0.0, tet, FUEL_AT_ZERO_LOAD * self._fuel_full

    def _setdown(self, t: float, amb: float, sp: float, avail: float) -> _Values:
        speed = self._entry_speed * (1 - self._progress(t))
        return speed, 0.0, self._relax(self._entry_tet, amb, t, REST_TET_TAU_S), 0.0

    # --- the grid side ---------------------------------------------------------

    def _utility(self, t: float, power: float) -> tuple[float, float]:
        a, b, c, d = self._grid_phases
        daily = 0.012 * math.sin(2 * math.pi * t / 86_400 + a)
        volts = self._grid_v * (1 + daily + 0.004 * math.sin(t / 1877 + b))
        hertz = self._grid_hz + 0.010 * math.sin(t / 449 + c) + 0.005 * math.sin(t / 67 + d)
        return volts, hertz

    def _own_grid(self, t: float, power: float) -> tuple[float, float]:
        return self._grid_v * (1 - STAND_ALONE_VOLTAGE_DROOP * power / self._rated), self._grid_hz

    def _no_grid(self, t: float, power: float) -> tuple[float, float]:
        return 0.0, 0.0
