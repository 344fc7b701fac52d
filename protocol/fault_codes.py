"""What each fault code means: the one table both the emulator and the reader use.

:data:`FAULT_CODES` holds, per code, a frozen :class:`FaultDefinition`: its
name, subsystem, severity, the SunSpec-style event flags it sets, whether the
controller latches it (a lockout: no automatic restart), a one-line
description of what the controller saw, and the action a technician should
take.  Codes are four digits, the thousands digit naming the subsystem
(2 controls, 3 comms, 4 fuel, 5 engine, 6 generator, 7 inverter, 8 grid,
9 DC bus / battery).  The emulator (``firmware_sim.faults``) raises exactly
these codes with these meanings, adding only its own simulation parameters;
the reader (``host``) shows them by :func:`fault_label`; ``docs/protocol.md``
lists them (generated from this table).  A code not in the table (a newer
firmware's) is still a valid code on the wire: :func:`lookup` returns None
for it and :func:`fault_label` names it as unknown.

This module is data and lookups only: no I/O, no simulation behaviour (rates,
restart delays, repair times belong to the emulator).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .enums import EventFlag, Severity, Subsystem
from .errors import LocalProtocolError

_F = EventFlag
_S = Subsystem
_WARN, _NORMAL, _FAST = Severity.WARNING, Severity.NORMAL_SHUTDOWN, Severity.FAST_SHUTDOWN

SUBSYSTEM_DIGIT: Mapping[Subsystem, int] = MappingProxyType({
    _S.CONTROLS: 2, _S.COMMS: 3, _S.FUEL: 4, _S.ENGINE: 5, _S.GENERATOR: 6, _S.INVERTER: 7,
    _S.GRID: 8, _S.DC_BUS: 9,
})
"""The thousands digit of the codes of each subsystem."""


@dataclass(frozen=True, slots=True)
class FaultDefinition:
    """One fault code and what it means."""

    code: int
    name: str
    subsystem: Subsystem
    severity: Severity
    description: str
    """What the controller saw, one line."""
    action: str
    """What a technician should do, one line."""
    flags: EventFlag = EventFlag.NONE
    lockout: bool = False
    """The controller latches it: the unit stays in FAULT_LOCKOUT until a technician clears it
    (no automatic restart)."""

    def __post_init__(self) -> None:
        if not 1000 <= self.code <= 9999:
            raise LocalProtocolError(f"fault code {self.code} is not four digits")
        if self.code // 1000 != SUBSYSTEM_DIGIT[self.subsystem]:
            raise LocalProtocolError(
                f"fault code {self.code}: its thousands digit does not name {self.subsystem.name}"
            )
        if self.lockout and self.severity < Severity.NORMAL_SHUTDOWN:
            raise LocalProtocolError(f"fault code {self.code}: a warning cannot lock the unit out")
        for text in (self.name, self.description, self.action):
            if not text or "\n" in text:
                raise LocalProtocolError(
                    f"fault code {self.code}: name, description and action are one line each"
                )

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "name": self.name,
            "subsystem": self.subsystem.name,
            "severity": self.severity.name,
            "level": int(self.severity),
            "flags": [flag.name for flag in EventFlag if flag and self.flags & flag],
            "lockout": self.lockout,
            "description": self.description,
            "action": self.action,
        }


_D = FaultDefinition

_DEFINITIONS = (
        _D(2001, "Controller watchdog reset", _S.CONTROLS, _FAST,
           "The controller's watchdog expired and reset the processor.",
           "Restarts by itself; if it repeats, check the controller's supply and replace the board."),
        _D(2010, "Enclosure door open", _S.CONTROLS, _NORMAL,
           "A door interlock opened while the unit was enabled.",
           "Close and latch the doors, check the interlock switch, then clear the fault.", _F.CABINET_OPEN,
           lockout=True),
        _D(2012, "Ambient pressure sensor failed", _S.CONTROLS, _WARN,
           "The barometric sensor reads out of range; the ISO default 101.325 kPa is used instead.",
           "Check the sensor's wiring and replace the sensor; ratings are estimated until then."),
        _D(2022, "Emergency stop input open", _S.CONTROLS, _FAST,
           "The emergency-stop loop opened: a button was pressed or the loop is broken.",
           "Find out why it was pressed, reset the button, check the loop wiring, then clear.",
           _F.MANUAL_SHUTDOWN, lockout=True),
        _D(2040, "Non-volatile memory checksum error", _S.CONTROLS, _WARN,
           "The settings memory failed its checksum at power-up; defaults were loaded.",
           "Check and re-enter the site settings; replace the controller if it recurs.", _F.MEMORY_LOSS),
        _D(3001, "Modem not responding", _S.COMMS, _WARN,
           "The remote-monitoring modem did not answer the controller.",
           "Check the modem's power and antenna; power-cycle it."),
        _D(3005, "Power electronics link timeout", _S.COMMS, _FAST,
           "The internal link between controller and power electronics stopped answering.",
           "Check the internal link cable and its connectors; restarts by itself."),
        _D(3010, "Service port framing errors", _S.COMMS, _WARN,
           "The service port received many malformed characters (wrong baud rate or noise).",
           "Check the service cable and the reader's baud rate."),
        _D(4001, "Fuel inlet pressure low", _S.FUEL, _NORMAL,
           "Fuel gas pressure at the inlet fell below the minimum for running.",
           "Check the gas supply, the inlet valve and the filter; restarts when pressure is back."),
        _D(4005, "Fuel valve position error", _S.FUEL, _FAST,
           "The fuel metering valve did not reach the commanded position.",
           "Inspect the fuel valve and its actuator wiring; replace the valve if it sticks.", lockout=True),
        _D(4011, "Fuel pressure fluctuating", _S.FUEL, _WARN,
           "Fuel inlet pressure swings more than the controller can compensate.",
           "Check the site regulator and the supply line sizing."),
        _D(4020, "Fuel gas compressor fault", _S.FUEL, _NORMAL,
           "The fuel gas booster compressor reported a failure.",
           "Service the fuel gas compressor (oil, belts, motor), then clear.", lockout=True),
        _D(5002, "Ignition failure (no light off after relight)", _S.ENGINE, _NORMAL,
           "The combustor did not light, nor on the relight attempt.",
           "Check the igniter and the fuel supply at start; restarts by itself."),
        _D(5005, "TET over-temperature", _S.ENGINE, _FAST,
           "Turbine exit temperature went above its limit.",
           "Inspect the thermocouples, the air inlet and the recuperator before clearing.",
           _F.OVER_TEMPERATURE, lockout=True),
        _D(5008, "Engine overspeed", _S.ENGINE, _FAST,
           "Shaft speed went above its limit.",
           "Check the speed sensor and the fuel valve; inspect the engine before clearing.", lockout=True),
        _D(5012, "Flameout", _S.ENGINE, _NORMAL,
           "The combustor flame went out while running.",
           "Check fuel quality and pressure; restarts by itself."),
        _D(5015, "Acceleration timeout", _S.ENGINE, _NORMAL,
           "The engine did not reach running speed in time after light off.",
           "Check the fuel supply and the air inlet filter; restarts by itself."),
        _D(5020, "TET thermocouple spread high", _S.ENGINE, _WARN,
           "The turbine exit thermocouples disagree by more than allowed.",
           "Check both thermocouples and their connectors at the next visit."),
        _D(5031, "Air bearing vibration high", _S.ENGINE, _NORMAL,
           "Shaft vibration on the air bearings went above its limit.",
           "Do not restart: inspect the engine core and bearings, then clear.", lockout=True),
        _D(6003, "Generator over-current", _S.GENERATOR, _FAST,
           "Generator phase current went above its limit.",
           "Check the load and the generator wiring; restarts by itself."),
        _D(6011, "Generator stator over-temperature", _S.GENERATOR, _NORMAL,
           "The generator stator got too hot.",
           "Check the generator's cooling air path and filters.", _F.OVER_TEMPERATURE),
        _D(6020, "Generator position sensor fault", _S.GENERATOR, _FAST,
           "The rotor position sensor signal is missing or implausible.",
           "Check the position sensor and its cable; replace the sensor, then clear.",
           _F.HARDWARE_TEST_FAILURE, lockout=True),
        _D(7002, "Inverter IGBT desaturation", _S.INVERTER, _FAST,
           "An inverter power switch left saturation (a short or a failed IGBT).",
           "Do not restart: test the inverter power module and replace it if failed.",
           _F.HARDWARE_TEST_FAILURE, lockout=True),
        _D(7011, "Inverter heatsink over-temperature", _S.INVERTER, _NORMAL,
           "The inverter heatsink went above its shutdown temperature.",
           "Check the inverter's fans and air filters; restarts when cool.", _F.OVER_TEMPERATURE),
        _D(7015, "Inverter heatsink temperature high", _S.INVERTER, _WARN,
           "The inverter heatsink is close to its limit; output may be derated.",
           "Clean the inverter's air filters and check its fans.", _F.OVER_TEMPERATURE),
        _D(7020, "Output over-current", _S.INVERTER, _FAST,
           "Output current went above the inverter's limit.",
           "Check the site load for a short or an inrush; restarts by itself.", _F.AC_DISCONNECT),
        _D(8001, "Utility under-voltage", _S.GRID, _NORMAL,
           "Utility voltage fell below the grid-connect limit.",
           "Nothing on the unit: it reconnects when the utility is back within limits.",
           _F.AC_UNDER_VOLTAGE | _F.GRID_DISCONNECT),
        _D(8002, "Utility over-voltage", _S.GRID, _NORMAL,
           "Utility voltage rose above the grid-connect limit.",
           "Nothing on the unit: it reconnects when the utility is back within limits.",
           _F.AC_OVER_VOLTAGE | _F.GRID_DISCONNECT),
        _D(8005, "Utility under-frequency", _S.GRID, _NORMAL,
           "Utility frequency fell below the grid-connect limit.",
           "Nothing on the unit: it reconnects when the utility is back within limits.",
           _F.UNDER_FREQUENCY | _F.GRID_DISCONNECT),
        _D(8006, "Utility over-frequency", _S.GRID, _NORMAL,
           "Utility frequency rose above the grid-connect limit.",
           "Nothing on the unit: it reconnects when the utility is back within limits.",
           _F.OVER_FREQUENCY | _F.GRID_DISCONNECT),
        _D(8010, "Loss of utility (island detected)", _S.GRID, _FAST,
           "The utility went away and the unit detected an island.",
           "Nothing on the unit: it reconnects when the utility returns; check the site breaker.",
           _F.GRID_DISCONNECT | _F.AC_DISCONNECT),
        _D(8020, "Utility voltage unbalance", _S.GRID, _WARN,
           "The utility's phase voltages differ more than allowed.",
           "Ask the utility or the site electrician to check the phases."),
        _D(8030, "Output ground fault", _S.GRID, _FAST,
           "Current leaks to ground on the output side.",
           "Do not restart: isolate the output and test its insulation, then clear.", _F.GROUND_FAULT,
           lockout=True),
        _D(9001, "DC bus over-voltage", _S.DC_BUS, _FAST,
           "The internal DC bus voltage went above its limit (often a sudden load drop).",
           "Check for load rejections; restarts by itself; if repeated, test the brake resistor.",
           _F.DC_OVER_VOLTAGE),
        _D(9005, "DC bus under-voltage", _S.DC_BUS, _NORMAL,
           "The internal DC bus voltage fell below its limit.",
           "Check the battery and its breaker; restarts by itself."),
        _D(9012, "Battery state of charge low", _S.DC_BUS, _WARN,
           "The start battery is low: the next stand-alone start may fail.",
           "Let the unit run to recharge, or charge the battery; test it if this repeats."),
        _D(9020, "Battery temperature low", _S.DC_BUS, _WARN,
           "The battery is too cold to deliver full power.",
           "Check the enclosure heater.", _F.UNDER_TEMPERATURE),
)
FAULT_CODES: Mapping[int, FaultDefinition] = MappingProxyType({d.code: d for d in _DEFINITIONS})
"""Every fault code a controller raises, by code."""
if len(FAULT_CODES) != len(_DEFINITIONS):
    raise RuntimeError("protocol.fault_codes: a fault code is defined twice")


def lookup(code: int) -> FaultDefinition | None:
    """The definition of *code*, or None for a code this table does not hold."""
    return FAULT_CODES.get(code)


def fault_label(code: int) -> str:
    """``"5005 TET over-temperature"``; ``"9999 (unknown code)"`` for a code not in the table."""
    definition = FAULT_CODES.get(code)
    return f"{code} {definition.name}" if definition else f"{code} (unknown code)"
