"""The recuperator: the exhaust temperature after it, the stack, from the engine's operating point.

A microturbine's recuperator heats the compressed air with the turbine's exhaust before the
combustor, so the gas leaves the unit much cooler than it left the turbine (TET).  On the gas
side, with effectiveness ``eps``::

    exhaust = T2 + (1 - eps) * (TET - T2)

where ``T2`` is the compressor discharge temperature, from the compressor inlet temperature
and the pressure ratio (which grows with the square of the shaft speed, :data:`FULL_PRESSURE_RATIO`
at full speed) through an isentropic efficiency (:data:`COMPRESSOR_EFFICIENCY`).  ``eps`` is
calibrated per model so that a clean unit at full load in ISO conditions gives the data sheet's
exhaust temperature (``ModelProfile.exhaust_c``: 275 / 305 / 309 °C, REFERENCE.md); fouling
lowers it (:data:`FOULING_EFFECTIVENESS_LOSS`), so the stack creeps up between services.  At rest
the pressure ratio is 1 and the exhaust follows TET's cooling toward ambient.

Figures and sources: docs/simulation.md section 1.  Pure arithmetic: no state, clock or randomness.
"""

from __future__ import annotations

import math

from .models import ModelProfile

FULL_PRESSURE_RATIO = 3.5
"""Compressor pressure ratio at full speed (assumption: 3-4 for single-shaft recuperated
microturbines of this size)."""
COMPRESSOR_EFFICIENCY = 0.78
"""Isentropic efficiency of the radial compressor (assumption)."""
FOULING_EFFECTIVENESS_LOSS = 2.0
"""Relative effectiveness lost per unit of fouling wear: the 2 % wear of a service interval
costs 4 % of the effectiveness, about +13 °C at the stack of a C60 at full load (assumption)."""
ISO_INLET_C = 18.0
"""Compressor inlet at ISO conditions while running: 15 °C ambient + 3 °C (the engine's rise)."""

_KELVIN = 273.15
_ISENTROPIC_EXPONENT = 0.4 / 1.4
"""(gamma - 1) / gamma for air."""


def _heating(speed_fraction: float) -> float:
    """T2 - T1 over T1 (kelvin) at *speed_fraction* of full speed: the compressor's heating."""
    ratio = 1.0 + (FULL_PRESSURE_RATIO - 1.0) * speed_fraction * speed_fraction
    rise: float = math.pow(ratio, _ISENTROPIC_EXPONENT) - 1.0
    return rise / COMPRESSOR_EFFICIENCY


def compressor_discharge_c(inlet_c: float, speed_fraction: float) -> float:
    """T2 (°C) at *speed_fraction* of full speed, with the compressor inlet at *inlet_c*."""
    return inlet_c + (inlet_c + _KELVIN) * _heating(speed_fraction)


class Recuperator:
    """One model's recuperator: :meth:`exhaust_c_x10` gives the stack temperature."""

    def __init__(self, profile: ModelProfile) -> None:
        self._full_rpm = float(profile.full_rpm)
        discharge = compressor_discharge_c(ISO_INLET_C, 1.0)
        self.effectiveness = (profile.tet_full_c - profile.exhaust_c) / (profile.tet_full_c - discharge)
        """Gas-side effectiveness of a clean recuperator."""
        self._speed = self._full_rpm
        self._heat = _heating(1.0)
        """The compressor's heating at the last speed asked for (samples at load share one)."""

    def exhaust_c_x10(self, speed_rpm: float, tet_c: float, inlet_c: float, wear: float) -> int:
        """The exhaust after the recuperator, tenths of °C, at the operating point given: shaft
        speed, TET (the average of the two thermocouples), compressor inlet; *wear* is the
        fouling (0 clean, 0.02 at the end of a service interval)."""
        if speed_rpm != self._speed:
            self._speed, self._heat = speed_rpm, _heating(min(1.0, speed_rpm / self._full_rpm))
        discharge = inlet_c + (inlet_c + _KELVIN) * self._heat
        eps = self.effectiveness * (1.0 - FOULING_EFFECTIVENESS_LOSS * wear)
        return round((discharge + (1.0 - eps) * (tet_c - discharge)) * 10)
