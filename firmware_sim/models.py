"""Model profiles of the emulated microturbines, as data.

One frozen :class:`ModelProfile` per model (C30, C60, C65) with the figures
from the manufacturers' technical references: rated output, efficiency, heat
rate, fuel in at full load, exhaust, fleet MTBF, shaft speeds, turbine-exit
temperatures, DC bus and grid voltages, the warning rate and the restart
policy.  The C65 has no published fleet MTBF; its default of 10,000 operating
hours (between the C60's 8,000 and the C30's 15,000) is our choice.

This module holds no behaviour beyond validating the figures and looking a
profile up by name: the engine, the faults and the simulator read it.  It must
not hold state or draw random numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .climate import Site
from .errors import ConfigError

GRID_STANDARDS: frozenset[tuple[float, float]] = frozenset({(480.0, 60.0), (400.0, 50.0)})
"""Line-to-line voltage and frequency pairs the power electronics support."""

KJ_PER_H_PER_W = 3.6
"""1 W of fuel power is 3.6 kJ/h."""


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What one model of microturbine is, in engineering units (ISO conditions)."""

    name: str
    rated_power_w: int
    """Electrical output at ISO conditions (15 degC, 60 % RH, 101.325 kPa)."""
    efficiency: float
    """Electrical efficiency at rated output, LHV."""
    heat_rate_kj_per_kwh: float
    fuel_input_kj_per_h: float
    """Fuel energy in (LHV) at rated output."""
    exhaust_c: float
    exhaust_flow_kg_s: float
    mtbf_h: float
    """Mean operating hours between shutdown-class faults."""
    tet_full_c: float
    """Turbine-exit temperature (average of the two thermocouples) at full load."""
    idle_rpm: int = 45_000
    full_rpm: int = 96_000
    liftoff_rpm: int = 25_000
    """Speed the generator motors the shaft to before light off."""
    tet_light_off_c: float = 350.0
    tet_idle_c: float = 500.0
    """TET in LOAD at zero setpoint: the bottom of the load line."""
    tet_limit_c: float = 680.0
    """TET at which the controller trips the engine."""
    overspeed_rpm: int = 100_800
    """Shaft speed at which the controller trips the engine (105 % of full speed, our assumption)."""
    dc_bus_v: float = 760.0
    grid_voltage_v: float = 480.0
    grid_freq_hz: float = 60.0
    output_tolerance_w: float = 2000.0
    """A unit gives its rating +0 / - this much at ISO conditions (the data sheet's tolerance)."""
    ramp_w_per_s: float = 1000.0
    """Fastest rise of the output in LOAD (our assumption: rated output in about a minute)."""
    warning_rate_per_h: float = 1 / 250
    """Warnings per operating hour (a Poisson process like the failures)."""
    ignition_retry_probability: float = 0.04
    """Chance that light off is not detected and the engine goes to RELIGHT."""
    max_auto_restarts: int = 3
    """Shutdown faults tolerated within the restart window before lockout."""
    restart_window_h: float = 24.0
    restart_limit_repair_h: float = 4.0
    """Mean technician time when the restart limit locks the unit out."""

    def __post_init__(self) -> None:
        if self.rated_power_w <= 0 or self.fuel_input_kj_per_h <= 0 or self.mtbf_h <= 0:
            raise ConfigError(f"{self.name}: rated power, fuel input and MTBF must be positive")
        implied = self.rated_power_w * KJ_PER_H_PER_W / self.fuel_input_kj_per_h
        if not math.isclose(implied, self.efficiency, rel_tol=0.03):
            raise ConfigError(
                f"{self.name}: efficiency {self.efficiency} disagrees with power / fuel = {implied:.4f}"
            )
        if not 0 <= self.output_tolerance_w < self.rated_power_w:
            raise ConfigError(f"{self.name}: output tolerance {self.output_tolerance_w} W is out of range")
        if not self.ramp_w_per_s > 0:
            raise ConfigError(f"{self.name}: the load ramp must be positive, not {self.ramp_w_per_s}")
        if not 0 < self.liftoff_rpm < self.idle_rpm < self.full_rpm:
            raise ConfigError(f"{self.name}: speeds must rise from lift off to idle to full")
        if not self.full_rpm < self.overspeed_rpm:
            raise ConfigError(f"{self.name}: the overspeed limit must be above full speed")
        if not self.tet_light_off_c < self.tet_idle_c < self.tet_full_c < self.tet_limit_c:
            raise ConfigError(f"{self.name}: TETs must rise from light off to idle to full to the limit")
        if (self.grid_voltage_v, self.grid_freq_hz) not in GRID_STANDARDS:
            raise ConfigError(
                f"{self.name}: grid {self.grid_voltage_v:g} V / {self.grid_freq_hz:g} Hz is not one of "
                + ", ".join(f"{v:g} V / {f:g} Hz" for v, f in sorted(GRID_STANDARDS))
            )

    @property
    def fuel_input_w(self) -> float:
        """Fuel power in at rated output, W."""
        return self.fuel_input_kj_per_h / KJ_PER_H_PER_W

    def with_grid(self, voltage_v: float, freq_hz: float) -> ModelProfile:
        """The same model wired for another grid (480 V / 60 Hz or 400 V / 50 Hz)."""
        return dataclasses.replace(self, grid_voltage_v=float(voltage_v), grid_freq_hz=float(freq_hz))


C30 = ModelProfile(
    name="C30",
    rated_power_w=30_000,
    efficiency=0.26,
    heat_rate_kj_per_kwh=13_800,
    fuel_input_kj_per_h=415_000,
    exhaust_c=275.0,
    exhaust_flow_kg_s=0.31,
    mtbf_h=15_000,
    tet_full_c=620.0,
    output_tolerance_w=1000.0,
    ramp_w_per_s=500.0,
)

C60 = ModelProfile(
    name="C60",
    rated_power_w=60_000,
    efficiency=0.28,
    heat_rate_kj_per_kwh=12_900,
    fuel_input_kj_per_h=771_000,
    exhaust_c=305.0,
    exhaust_flow_kg_s=0.48,
    mtbf_h=8_000,
    tet_full_c=640.0,
)

C65 = ModelProfile(
    name="C65",
    rated_power_w=65_000,
    efficiency=0.29,
    heat_rate_kj_per_kwh=12_400,
    fuel_input_kj_per_h=800_000,
    exhaust_c=309.0,
    exhaust_flow_kg_s=0.49,
    mtbf_h=10_000,
    tet_full_c=645.0,
)

PROFILES: dict[str, ModelProfile] = {p.name: p for p in (C30, C60, C65)}

GRID_VOLTAGE_BAND = (0.88, 1.10)
"""Utility voltage, as a share of nominal, outside which a grid-connected unit trips
(IEEE 1547's under- and over-voltage limits; our choice of standard)."""
GRID_FREQUENCY_BAND_HZ = (-0.7, 0.5)
"""Utility frequency, off nominal, outside which it trips (IEEE 1547: 59.3 and 60.5 Hz at 60 Hz)."""
DC_BUS_BAND = (0.85, 1.10)
"""DC bus voltage, as a share of its set point, outside which the power electronics trip (assumption)."""


@dataclass(frozen=True, slots=True)
class TripLimit:
    """The limit whose crossing raises a fault with a physical cause: ``channel`` (a
    :meth:`Snapshot.engineering` name, ``tet_avg_c`` the average of the two thermocouples) is
    beyond ``limit`` when above it (``above``) or below it."""

    channel: str
    limit: float
    above: bool

    def crossed(self, value: float) -> bool:
        return value > self.limit if self.above else value < self.limit


def trip_limits(profile: ModelProfile) -> dict[int, TripLimit]:
    """Fault code -> the limit of *profile* (wired for its grid) that its cause crosses.

    Over-temperature and overspeed: TET and speed above the trip limits; the
    utility's voltage and frequency out of the grid-connect band; the DC bus out
    of its band; a start that fails: ignition failure and flameout with TET under
    the light-off temperature (no flame), acceleration timeout with the shaft
    short of idle speed.  Other codes have no channel in the freeze-frame.
    """
    v, hz, dc = profile.grid_voltage_v, profile.grid_freq_hz, profile.dc_bus_v
    return {
        5002: TripLimit("tet_avg_c", profile.tet_light_off_c, above=False),
        5005: TripLimit("tet_avg_c", profile.tet_limit_c, above=True),
        5008: TripLimit("speed_rpm", profile.overspeed_rpm, above=True),
        5012: TripLimit("tet_avg_c", profile.tet_light_off_c, above=False),
        5015: TripLimit("speed_rpm", profile.idle_rpm, above=False),
        8001: TripLimit("grid_voltage_v", v * GRID_VOLTAGE_BAND[0], above=False),
        8002: TripLimit("grid_voltage_v", v * GRID_VOLTAGE_BAND[1], above=True),
        8005: TripLimit("grid_freq_hz", hz + GRID_FREQUENCY_BAND_HZ[0], above=False),
        8006: TripLimit("grid_freq_hz", hz + GRID_FREQUENCY_BAND_HZ[1], above=True),
        9001: TripLimit("dc_bus_v", dc * DC_BUS_BAND[1], above=True),
        9005: TripLimit("dc_bus_v", dc * DC_BUS_BAND[0], above=False),
    }


def site_profile(name: str, site: Site) -> ModelProfile:
    """Model *name* wired for *site*'s grid: the same whether the unit runs alone or in a fleet."""
    return get_profile(name).with_grid(*site.grid)


def get_profile(name: str) -> ModelProfile:
    """The profile called *name* (case-insensitive); ConfigError (a ValueError) for an unknown one."""
    try:
        return PROFILES[name.upper()]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(PROFILES)}") from None
