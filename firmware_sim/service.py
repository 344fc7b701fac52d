"""Planned maintenance and wear, as functions of a unit's operating hours.

A unit is serviced every :data:`SERVICE_INTERVAL_H` operating hours (air and
other filters, igniter, injectors, inspection); every :data:`OVERHAUL_EVERY`-th
service is the major overhaul of the turbine/compressor assembly.  Between
services the recuperator fouls: output and efficiency fall by
:data:`FOULING_PER_INTERVAL` over an interval; a service recovers
:data:`RECOVERED_AT_SERVICE` of that interval's loss, an overhaul all of it.

Everything here is a pure function of the lifetime operating seconds, so a
unit powered up again knows its wear and its next service from its counters
alone.  This module holds no state and knows nothing of engines or records:
the simulator stops the unit for its service and logs it.
"""

from __future__ import annotations

from enum import IntEnum

SERVICE_INTERVAL_H = 8000
"""Operating hours between services: the interval commonly cited for this class (REFERENCE)."""
OVERHAUL_EVERY = 4
"""Every 4th service is the major overhaul: every 32,000 h, within the 20,000-40,000 h cited."""
SERVICE_HOURS = 48.0
"""Planned downtime of a service, waiting for the technician included (assumption)."""
OVERHAUL_HOURS = 240.0
"""Planned downtime of an overhaul, the exchange assembly's shipping included (assumption)."""
FOULING_PER_INTERVAL = 0.02
"""Output and efficiency lost over one service interval (recuperator fouling, ~1-3 % cited)."""
RECOVERED_AT_SERVICE = 0.7
"""Share of an interval's fouling that a service removes; an overhaul removes all (assumption)."""
WEAR_STEP_H = 100
"""The simulator brings a running unit's wear up to date every this many operating hours."""

_INTERVAL_S = SERVICE_INTERVAL_H * 3600


class ServiceKind(IntEnum):
    """``value_a`` of EVENT SERVICE."""

    SERVICE = 1
    OVERHAUL = 2


def next_service_s(operating_s: float) -> int:
    """The operating second of the first service after *operating_s*."""
    return (int(operating_s) // _INTERVAL_S + 1) * _INTERVAL_S


def service_at(due_s: int) -> tuple[ServiceKind, int]:
    """The kind and planned downtime (seconds) of the service due at operating second *due_s*."""
    if (due_s // _INTERVAL_S) % OVERHAUL_EVERY == 0:
        return ServiceKind.OVERHAUL, round(OVERHAUL_HOURS * 3600)
    return ServiceKind.SERVICE, round(SERVICE_HOURS * 3600)


def wear_at(operating_s: float) -> float:
    """Share of output and efficiency lost to fouling at *operating_s*, services done on time."""
    services, since_s = divmod(operating_s, _INTERVAL_S)
    since_overhaul = int(services) % OVERHAUL_EVERY
    residual = since_overhaul * (1 - RECOVERED_AT_SERVICE) * FOULING_PER_INTERVAL
    return residual + FOULING_PER_INTERVAL * since_s / _INTERVAL_S
