"""The simulated microturbine over simulated time, writing its log.

:class:`Simulator` ties together a model profile, its engine, the site's
climate, a duty profile and the fault arrivals, and runs them forward
event by event: from one state deadline, fault arrival, fault clear, repair
or duty change to the next, emitting a sample every ``sample_interval_s``
in between.  It never integrates second by second.  Records go to a
:class:`~firmware_sim.nvstate.LogSink`:

- EVENT POWER_UP when the simulator is created; when the log it powers up
  on (``last_seen``) ends with the shaft turning, the controller lost its
  power: then EVENT POWER_LOSS (``state_from`` the state then, ``value_a``
  the last record's time, ``value_b`` the seconds since, ``level``
  EMERGENCY_STOP) and the unplanned EVENT STOP it was (``value_a`` 0, same
  level) follow, and the engine starts as hot as the downtime left it;
- SAMPLE every ``sample_interval_s`` seconds of simulated time (aligned to
  multiples of the interval), in every state, with the exhaust after the
  recuperator (:mod:`firmware_sim.recuperator`);
- EVENT START (``value_a`` = starts) and STOP (``value_a`` = the fault code,
  0 for a commanded stop; ``level`` = its severity);
- EVENT STATE_CHANGE (``state_from``, ``state_to``) on every transition;
- FAULT with its freeze-frame for every fault raised, and after a shutdown-class
  one its pre-trigger buffer: a RUNUP record per key channel, the last minute up
  to the freeze-frame (:mod:`firmware_sim.runup`);
- EVENT FAULT_CLEARED (``value_a`` = code, ``level`` = severity,
  ``value_b`` = when it was raised) when a fault clears.

Several records may share a timestamp; at one instant the order is: state
deadline, fault clears, technician repair, fault arrival, a failed start,
duty change (or a bend of the load ramp), and then the sample.

Failures arrive two ways: per operating hour (:class:`FaultArrivals`) and
per start: each start fails with
:func:`~firmware_sim.faults.start_failure_probability`, at an instant drawn
between light off and load, raising ignition failure (5002) or flameout
(5012) if the engine is then lighting, acceleration timeout (5015) if it is
accelerating.  The two together give the model's MTBF at the reference
duty; units that start more often fail more per hour.

Faults: a warning leaves the engine running and clears after its delay.  A
shutdown fault stops it (NORMAL through COOLDOWN, FAST through WARMDOWN);
once at rest, auto-clearing faults clear after their delay and the duty may
start the unit again, while a lockout fault (or more trips within the
model's restart window than it allows) holds it in FAULT_LOCKOUT until a
technician clears everything after a seeded repair time.

Lifetime counters: ``operating_s`` counts time with the shaft above 0 rpm, ``starts``
every start from STAND_BY, ``trips`` every shutdown-class fault, and
``energy_wh`` the exported (positive) power, integrated between samples and
events.

Determinism: every random draw comes from a ``random.Random`` seeded from
``seed`` and the lifetime counters (operating seconds for the fault arrivals,
starts for ignition, trips for repair times), never from how many power-ups
came before, and happens at an event, and counters are integrated only at
events and samples, so the same seed, settings and calls give the same
records byte for byte, and ``advance_to(T)`` gives the same records however
the interval up to T is split into calls.  This module must not read the
wall clock or global randomness, must not import ``host``, and must not
touch I/O: the log sink does that.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.counters import LifetimeCounters
from protocol.enums import EngineState, EventKind, GridMode, Severity
from protocol.formats import RUNUP_POINTS
from protocol.records import EventRecord, FaultRecord, SampleRecord, Snapshot

from .climate import DEFAULT_SITE, Climate, Site
from .duty import make_duty
from .engine import (
    REST_TET_TAU_S,
    RUNNING_STATES,
    STATE_DURATION_S,
    TURNING_STATES,
    Engine,
    Point,
    Trigger,
)
from .errors import ConfigError
from .faults import (
    AMBIENT_PRESSURE_SENSOR_FAULT,
    START_FAULTS,
    FaultArrivals,
    FaultCode,
    ScriptedFault,
    get_fault,
    start_failure_probability,
)
from .models import ModelProfile, trip_limits
from .nvstate import LogSink
from .recuperator import Recuperator
from .runup import RUNUP_INTERVAL_S, Lookback, runup_records
from .service import SERVICE_INTERVAL_H, WEAR_STEP_H, ServiceKind, next_service_s, service_at, wear_at

_LIGHT_OFF_AFTER_S = STATE_DURATION_S[EngineState.LIFT_OFF]
_LOAD_AFTER_S = _LIGHT_OFF_AFTER_S + STATE_DURATION_S[EngineState.LIGHT_OFF] + STATE_DURATION_S[
    EngineState.ACCEL
]
"""A failed start fails between light off and load, at a uniformly drawn instant."""
_WEAR_STEP_S = WEAR_STEP_H * 3600
MIN_REPAIR_S = 600
"""A technician never clears a lockout in less than this."""

_SHUTDOWN_TRIGGER = {
    Severity.NORMAL_SHUTDOWN: Trigger.NORMAL_SHUTDOWN,
    Severity.FAST_SHUTDOWN: Trigger.FAST_SHUTDOWN,
}


@dataclass(frozen=True, slots=True)
class LastSeen:
    """What the log shows of the moment the controller last lost power: its newest record's
    timestamp, the engine state that record shows, and the newest TET average logged (degC)."""

    timestamp: int
    state: EngineState
    tet_c: float | None = None


_CHANNEL_SCALE = {"speed_rpm": 1, "grid_voltage_v": 10, "grid_freq_hz": 1000, "dc_bus_v": 10}


def _channel(snapshot: Snapshot, channel: str) -> float:
    """A freeze-frame channel in engineering units (``tet_avg_c`` or a scaled field)."""
    if channel == "tet_avg_c":
        return snapshot.tet_avg_c
    scale = _CHANNEL_SCALE[channel]
    field = channel if scale == 1 else f"{channel}_x{scale}"
    return float(getattr(snapshot, field)) / scale


def _with_channel(snapshot: Snapshot, channel: str, value: float) -> Snapshot:
    """*snapshot* with *channel* (engineering units) set to *value*; both thermocouples for TET."""
    if channel == "tet_avg_c":
        spread = (snapshot.tet1_c_x10 - snapshot.tet2_c_x10) // 2
        mid = round(value * 10)
        return dataclasses.replace(snapshot, tet1_c_x10=mid + spread, tet2_c_x10=mid - spread)
    scale = _CHANNEL_SCALE[channel]
    field = channel if scale == 1 else f"{channel}_x{scale}"
    return dataclasses.replace(snapshot, **{field: round(value * scale)})


OVER_TEMPERATURE = 5005
OVER_TEMPERATURE_DRIFT_S = 600.0
"""TET drifts from where the load puts it up to the trip limit over the 10 minutes before an
over-temperature trip (a fouled recuperator, a hot day, a failing thermocouple; assumption)."""


class _ActiveFault:
    """A raised fault that has not cleared yet."""

    __slots__ = ("fault", "raised_at", "clear_at")

    def __init__(self, fault: FaultCode, raised_at: float) -> None:
        self.fault = fault
        self.raised_at = raised_at
        self.clear_at = math.inf

    @property
    def is_failure(self) -> bool:
        return self.fault.severity.is_failure


class Simulator:
    """One emulated unit, run forward with :meth:`advance_to`; ``now`` is its simulated Unix time.

    *counters* are the lifetime counters restored from flash at power-up;
    the simulator only ever adds to them.  *scripted_faults* fire when the
    operating-hours counter reaches their hour.  *site* gives the climate
    and the local time zone the duty profile runs on.
    """

    def __init__(
        self,
        profile: ModelProfile,
        *,
        seed: int,
        start_time: int,
        log: LogSink,
        duty: str = "baseload",
        mode: GridMode = GridMode.GRID_CONNECT,
        sample_interval_s: int = 900,
        counters: LifetimeCounters | None = None,
        scripted_faults: Sequence[ScriptedFault] = (),
        site: Site = DEFAULT_SITE,
        last_seen: LastSeen | None = None,
    ) -> None:
        if not isinstance(sample_interval_s, int) or sample_interval_s < 1:
            raise ConfigError(f"sample interval must be whole seconds >= 1, not {sample_interval_s!r}")
        if not isinstance(start_time, int) or not 0 <= start_time < 2**32:
            raise ConfigError(f"start time must be whole Unix seconds within 32 bits, not {start_time!r}")
        self.profile = profile
        self.mode = GridMode(mode)
        self.site = site
        self.sample_interval_s = sample_interval_s
        self.now = float(start_time)
        restored = counters if counters is not None else LifetimeCounters()

        self._log = log
        self._climate = Climate(site, seed=seed)
        self._duty = make_duty(duty, seed=seed, utc_offset_s=site.utc_offset_s)
        self._arrivals = FaultArrivals(
            mtbf_h=profile.mtbf_h,
            warning_rate_per_h=profile.warning_rate_per_h,
            mode=self.mode,
            seed=seed,
            operating_s=restored.operating_s,
            scripted=scripted_faults,
        )
        self._seed = seed
        self._trip_limits = trip_limits(profile)
        self._recuperator = Recuperator(profile)
        ambient_c, _ = self._climate.conditions(start_time)
        downtime = max(0, start_time - last_seen.timestamp) if last_seen is not None else 0
        tet_c = None
        if last_seen is not None and last_seen.tet_c is not None:
            tet_c = ambient_c + (last_seen.tet_c - ambient_c) * math.exp(-downtime / REST_TET_TAU_S)
        self._engine = Engine(
            profile, mode=self.mode, seed=seed, t=start_time, ambient_c=ambient_c, tet_c=tet_c
        )

        # Integrators: the counters as they were at _t_i, and the exported power since.
        self._t_i: float = start_time
        self._op_s: float = restored.operating_s
        self._energy_wh = float(restored.energy_wh)
        self._p_i = 0
        self._starts = restored.starts
        self._trips = restored.trips

        self._active: list[_ActiveFault] = []
        self._active_code = 0
        self._recent_trips: list[float] = []
        self._repair_at = math.inf
        self._duty_next = self._duty.next_change(start_time)
        self._next_sample = -(-start_time // sample_interval_s) * sample_interval_s
        self._restart_window_s = profile.restart_window_h * 3600
        self._switched_off = False
        self._start_failure_p = start_failure_probability(profile.mtbf_h)
        self._start_fault_at = math.inf
        self._drift_from = math.inf
        self._start_fault_coin = 0.0
        self._service_due_s = next_service_s(self._op_s)
        self._wear_due_s = (int(self._op_s) // _WEAR_STEP_S + 1) * _WEAR_STEP_S
        self._service: tuple[ServiceKind, int] | None = None
        """The service due (kind, planned downtime) from when its hour comes until it is done."""
        self._service_end_at = math.inf
        self._engine.set_wear(wear_at(self._op_s))
        self._lookback = Lookback()

        self._event(start_time, EventKind.POWER_UP, state_to=int(EngineState.STAND_BY))
        if last_seen is not None and last_seen.state in TURNING_STATES:
            lost = {"state_from": int(last_seen.state), "state_to": int(EngineState.STAND_BY),
                    "level": int(Severity.EMERGENCY_STOP)}
            lost_at = last_seen.timestamp
            self._event(start_time, EventKind.POWER_LOSS, **lost, value_a=lost_at, value_b=downtime)
            self._event(start_time, EventKind.STOP, **lost)
        self._reconcile(start_time)
        self._refresh(start_time)

    # --- public --------------------------------------------------------------

    @property
    def state(self) -> EngineState:
        return self._engine.state

    @property
    def rated_power_w(self) -> float:
        """This unit's own rating when clean: the model's, less its manufacturing spread."""
        return self._engine.rated_w

    @property
    def counters(self) -> LifetimeCounters:
        """The lifetime counters now."""
        dt = self.now - self._t_i
        operating = self._op_s + dt if self._engine.turning else self._op_s
        energy = self._energy_wh + self._p_i * dt / 3600
        return LifetimeCounters(int(operating), self._starts, self._trips, int(energy))

    @property
    def scripted_unraised(self) -> tuple[ScriptedFault, ...]:
        """The scripted faults not raised (yet): see :attr:`FaultArrivals.scripted_unraised`."""
        return self._arrivals.scripted_unraised

    @property
    def active_faults(self) -> tuple[int, ...]:
        """Codes of the faults raised and not yet cleared, oldest first."""
        return tuple(f.fault.code for f in self._active)

    def advance_to(self, t: float) -> None:
        """Run forward to simulated time *t*, appending every record due up to and including *t*."""
        if t < self.now:
            raise ConfigError(f"cannot go back in time from {self.now} to {t}")
        while self._next_at <= t:
            event_at = self._next_at
            self._emit_samples(event_at)
            self._handle(event_at)
        self._emit_samples(math.floor(t) + 1)
        self.now = float(t)

    def snapshot(self) -> Snapshot:
        """The live values now, counters included (changes nothing)."""
        return self._snapshot_at(self.now)

    def switch_off(self) -> None:
        """The operator stops the engine and switches the controller off once it is at rest:
        runs simulated time on (through COOLDOWN, SETDOWN, SHUTDOWN) until then."""
        t = self.now
        self._switched_off = True
        self._settle(t)
        self._reconcile(t)
        self._refresh(t)
        while self._engine.turning or self._engine.state == EngineState.SHUTDOWN:
            self.advance_to(self._next_at)

    def inject_fault(self, code: int) -> None:
        """Raise catalogue fault *code* now, as if it had just happened; ConfigError for unknown codes."""
        fault = get_fault(code)
        t = self.now
        self._settle(t)
        self._raise(fault, t)
        self._reconcile(t)
        self._refresh(t)

    # --- time ------------------------------------------------------------------

    def _settle(self, t: float) -> None:
        """Bring the counters up to *t* (the state has not changed since _t_i)."""
        dt = t - self._t_i
        if self._engine.turning:
            self._op_s += dt
        self._energy_wh += self._p_i * dt / 3600
        self._t_i = t

    def _refresh(self, t: float) -> None:
        """After an event at *t*: the exported power from now on, and when the next event is."""
        engine = self._engine
        ambient_c, pressure_kpa = self._climate.conditions(t)
        power = engine.point(t, ambient_c, pressure_kpa, self._duty.setpoint(t))[1]
        self._p_i = power if power > 0 else 0
        if engine.turning:
            self._arrival_at = t + (self._arrivals.next_operating_s - self._op_s)
            self._hours_at = t + (min(self._service_due_s, self._wear_due_s) - self._op_s)
        else:
            self._arrival_at = self._hours_at = math.inf
        heating = self._arrival_at < math.inf and self._arrivals.next_code == OVER_TEMPERATURE
        self._drift_from = self._arrival_at - OVER_TEMPERATURE_DRIFT_S if heating else math.inf
        self._clear_at = min((f.clear_at for f in self._active), default=math.inf)
        self._next_at = min(
            engine.deadline, self._clear_at, self._repair_at, self._arrival_at, self._start_fault_at,
            self._hours_at, self._service_end_at, self._duty_next, engine.bend_at(t),
        )
        self._lookback.note(t, engine, self._drift_from)

    def _handle(self, t: float) -> None:
        """Handle the one event due at *t* that comes first."""
        self._settle(t)
        if self._engine.deadline <= t:
            self._on_deadline(t)
        elif self._clear_at <= t:
            self._on_clear(t)
        elif self._repair_at <= t:
            self._on_repair(t)
        elif self._arrival_at <= t:
            self._op_s = max(self._op_s, self._arrivals.next_operating_s)  # exact: a power-up resumes here
            self._raise(self._arrivals.pop(), t)
        elif self._start_fault_at <= t:
            self._on_start_fault(t)
        elif self._hours_at <= t:
            self._on_operating_hours(t)
        elif self._service_end_at <= t:
            self._on_service_done(t)
        else:
            self._duty_next = self._duty.next_change(t)
        self._reconcile(t)
        self._refresh(t)

    def _emit_samples(self, limit: float) -> None:
        """Append the samples due before *limit* (nothing else happens in between)."""
        t = self._next_sample
        if t >= limit:
            return
        interval = self.sample_interval_s
        append = self._log.append
        conditions = self._climate.conditions
        setpoint = self._duty.setpoint
        engine = self._engine
        point = engine.point
        turning = engine.turning
        state, mode, code = int(engine.state), int(self.mode), self._active_code
        starts, trips = self._starts, self._trips
        t_i, operating, energy, p_i = self._t_i, self._op_s, self._energy_wh, self._p_i
        drift_from = self._drift_from
        exhaust_at, wear = self._recuperator.exhaust_c_x10, engine.wear
        while t < limit:
            ambient_c, pressure_kpa = conditions(t)
            values = point(t, ambient_c, pressure_kpa, setpoint(t))
            if t >= drift_from:
                values = self._drifted(values, t, drift_from)
            dt = t - t_i
            if turning:
                operating += dt
            energy += p_i * dt / 3600
            t_i = t
            power = values[1]
            p_i = power if power > 0 else 0
            snapshot = Snapshot(state, mode, code, *values, int(operating), starts, trips, int(energy))
            exhaust = exhaust_at(values[0], (values[2] + values[3]) / 20, values[4] / 10, wear)
            append(SampleRecord(0, t, snapshot, exhaust))
            t += interval
        self._next_sample = t
        self._t_i, self._op_s, self._energy_wh, self._p_i = t_i, operating, energy, p_i

    def _snapshot_at(self, t: float) -> Snapshot:
        engine = self._engine
        ambient_c, pressure_kpa = self._climate.conditions(t)
        values = engine.point(t, ambient_c, pressure_kpa, self._duty.setpoint(t))
        if t >= self._drift_from:
            values = self._drifted(values, t, self._drift_from)
        dt = t - self._t_i
        operating = self._op_s + dt if engine.turning else self._op_s
        energy = self._energy_wh + self._p_i * dt / 3600
        return Snapshot(
            int(engine.state), int(self.mode), self._active_code, *values,
            int(operating), self._starts, self._trips, int(energy),
        )

    def _drifted(self, values: Point, t: float, drift_from: float) -> Point:
        """*values* (the Snapshot's measured ones) with both TETs moved toward the trip limit, the
        share of the way that *t* has gone into the drift (from *drift_from*) before an
        over-temperature trip."""
        share = min(1.0, (t - drift_from) / OVER_TEMPERATURE_DRIFT_S)
        limit_x10 = self.profile.tet_limit_c * 10
        speed, power, tet1, tet2, *rest = values
        a, b, c, d, e, f, g, h = rest
        return (
            speed, power, round(tet1 + share * (limit_x10 - tet1)), round(tet2 + share * (limit_x10 - tet2)),
            a, b, c, d, e, f, g, h,
        )

    # --- what happens at an event ------------------------------------------------

    def _event(self, t: float, kind: EventKind, **fields: int) -> None:
        self._log.append(EventRecord(0, int(t), int(kind), **fields))

    def _fire(self, trigger: Trigger, t: float) -> EngineState:
        engine = self._engine
        before = engine.state
        ambient_c, pressure_kpa = self._climate.conditions(t)
        after = engine.fire(
            trigger, t, ambient_c=ambient_c, pressure_kpa=pressure_kpa, setpoint=self._duty.setpoint(t)
        )
        self._event(t, EventKind.STATE_CHANGE, state_from=int(before), state_to=int(after))
        return after

    def _reconcile(self, t: float) -> None:
        """Start or stop the engine as the duty wants, when nothing forbids it."""
        state = self._engine.state
        wanted = not self._switched_off and self._service is None and self._duty.demand(t)
        if state == EngineState.STAND_BY:
            if self._service is not None and self._service_end_at == math.inf:
                self._service_end_at = t + self._service[1]
            if wanted and not any(f.is_failure for f in self._active):
                self._starts += 1
                self._event(t, EventKind.START, value_a=self._starts)
                self._fire(Trigger.START, t)
                draw = self._draw("start", self._starts)
                if draw.random() < self._start_failure_p:
                    self._start_fault_at = t + draw.uniform(_LIGHT_OFF_AFTER_S, _LOAD_AFTER_S)
                    self._start_fault_coin = draw.random()
        elif state in RUNNING_STATES and not wanted:
            self._event(t, EventKind.STOP)
            self._fire(Trigger.STOP, t)

    def _on_deadline(self, t: float) -> None:
        state = self._engine.state
        retry = self.profile.ignition_retry_probability
        if state == EngineState.LIGHT_OFF and self._draw("ignition", self._starts).random() < retry:
            self._fire(Trigger.NO_LIGHT, t)
        elif state == EngineState.SHUTDOWN:
            self._come_to_rest(t)
        else:
            self._fire(Trigger.TIMER, t)

    def _draw(self, what: str, count: int) -> random.Random:
        """The generator of the *count*-th start's (or trip's) draw: a function of seed and
        counters alone, so a power-up never replays the draws of the one before."""
        return random.Random(f"{self._seed}:{what}:{count}")

    def _on_operating_hours(self, t: float) -> None:
        """A service falls due (the unit stops for it), or the wear is brought up to date."""
        if self._op_s >= self._service_due_s - 0.5:
            self._service = service_at(self._service_due_s)
            self._service_due_s += SERVICE_INTERVAL_H * 3600
        else:
            self._wear_due_s += _WEAR_STEP_S
        self._engine.set_wear(wear_at(self._op_s))

    def _on_service_done(self, t: float) -> None:
        assert self._service is not None
        kind, downtime_s = self._service
        self._service, self._service_end_at = None, math.inf
        state = int(self._engine.state)
        self._event(t, EventKind.SERVICE, state_from=state, state_to=state, value_a=kind, value_b=downtime_s)
        self._engine.set_wear(wear_at(self._op_s))

    def _on_start_fault(self, t: float) -> None:
        """A failed start: the fault its phase gives, if the engine is still starting."""
        self._start_fault_at = math.inf
        state = self._engine.state
        if state == EngineState.ACCEL:
            self._raise(get_fault(START_FAULTS[2]), t)
        elif state in (EngineState.LIGHT_OFF, EngineState.RELIGHT):
            self._raise(get_fault(START_FAULTS[0] if self._start_fault_coin < 0.5 else START_FAULTS[1]), t)

    def _come_to_rest(self, t: float) -> None:
        """At rest (or raised at rest): lock out if a fault needs a technician, else let faults time out."""
        repair_h = self._repair_hours(t)
        if repair_h is not None:
            self._fire(Trigger.LOCKOUT, t)
            draw = self._draw("repair", self._trips).gammavariate(2.0, repair_h / 2.0)
            self._repair_at = t + max(MIN_REPAIR_S, round(draw * 3600))
            return
        if self._engine.state == EngineState.SHUTDOWN:
            self._fire(Trigger.TIMER, t)
        for active in self._active:
            if active.is_failure and active.clear_at == math.inf:
                active.clear_at = t + active.fault.restart.delay_s

    def _repair_hours(self, t: float) -> float | None:
        """Mean technician time if the active faults (or too many recent trips) need one, else None."""
        failures = [f.fault for f in self._active if f.is_failure]
        if not failures:
            return None
        lockouts = [f.restart.mean_repair_h for f in failures if f.restart.lockout]
        if lockouts:
            return max(lockouts)
        cutoff = t - self._restart_window_s
        if sum(1 for x in self._recent_trips if x > cutoff) > self.profile.max_auto_restarts:
            return self.profile.restart_limit_repair_h
        return None

    def _raise(self, fault: FaultCode, t: float) -> None:
        active = _ActiveFault(fault, t)
        self._active.append(active)
        if active.is_failure:
            self._trips += 1
            cutoff = t - self._restart_window_s
            self._recent_trips = [x for x in self._recent_trips if x > cutoff] + [t]
        self._faults_changed()
        freeze = self._caused(fault.code, self._snapshot_at(t), t)
        fault_seq = self._log.append(
            FaultRecord(
                0, int(t), fault.code, int(fault.severity), int(fault.subsystem), int(fault.flags), freeze
            )
        )
        if not active.is_failure:
            active.clear_at = t + fault.restart.delay_s
            return
        for record in runup_records(int(t), fault_seq, freeze, self._earlier(int(t))):
            self._log.append(record)
        trigger = _SHUTDOWN_TRIGGER[fault.severity]
        if self._engine.accepts(trigger):
            self._event(t, EventKind.STOP, level=int(fault.severity), value_a=fault.code)
            self._fire(trigger, t)
        elif self._engine.state == EngineState.STAND_BY:
            self._come_to_rest(t)

    def _earlier(self, end: int) -> list[Snapshot | None]:
        """The measured values of the seconds of the pre-trigger buffer before *end*, oldest
        first; None for a second before the controller was up."""
        earlier: list[Snapshot | None] = []
        for back in range(RUNUP_POINTS - 1, 0, -1):
            t = end - back * RUNUP_INTERVAL_S
            stretch = self._lookback.at(t)
            if stretch is None:
                earlier.append(None)
                continue
            twin, drift_from = stretch
            ambient_c, pressure_kpa = self._climate.conditions(t)
            values = twin.point(t, ambient_c, pressure_kpa, self._duty.setpoint(t))
            if t >= drift_from:
                values = self._drifted(values, t, drift_from)
            earlier.append(Snapshot(0, 0, 0, *values, 0, 0, 0, 0))
        return earlier

    def _caused(self, code: int, snapshot: Snapshot, t: float) -> Snapshot:
        """*snapshot* with the channel whose crossing of its limit raised *code* beyond it: the
        freeze-frame shows the cause (1-5 % past the limit, drawn from the seed and the time)."""
        limit = self._trip_limits.get(code)
        if limit is None:
            return snapshot
        if limit.crossed(_channel(snapshot, limit.channel)):
            return snapshot
        past = 1 + random.Random(f"{self._seed}:cause:{code}:{int(t)}").uniform(0.01, 0.05)
        value = limit.limit * past if limit.above else limit.limit / past
        return _with_channel(snapshot, limit.channel, value)

    def _on_clear(self, t: float) -> None:
        due = min(self._active, key=lambda f: f.clear_at)
        self._clear(due, t)

    def _on_repair(self, t: float) -> None:
        self._repair_at = math.inf
        for active in [f for f in self._active if f.is_failure]:
            self._clear(active, t)
        self._recent_trips = []
        self._fire(Trigger.CLEAR, t)

    def _clear(self, active: _ActiveFault, t: float) -> None:
        self._active.remove(active)
        self._faults_changed()
        self._event(
            t, EventKind.FAULT_CLEARED,
            level=int(active.fault.severity), value_a=active.fault.code, value_b=int(active.raised_at),
        )

    def _faults_changed(self) -> None:
        worst: FaultCode | None = None
        for active in self._active:
            if worst is None or active.fault.severity > worst.severity:
                worst = active.fault
        self._active_code = worst.code if worst is not None else 0
        codes = {f.fault.code for f in self._active}
        self._engine.pressure_sensor_ok = AMBIENT_PRESSURE_SENSOR_FAULT not in codes
