"""Fault codes, freeze-frames and run-ups as text for people.

What a code means comes from :mod:`protocol.fault_codes` (the table the
emulator raises them from); this module only lays it out: the explanation of
one code (``turbolog codes CODE``), a fault's freeze-frame, each value
with its unit, and its run-up (the pre-trigger buffer), a sparkline per
channel (``turbolog faults --detail``).  It formats; it reads no
archive and no device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from protocol.enums import EventFlag, RunupChannel, Severity
from protocol.fault_codes import FaultDefinition, fault_label
from protocol.records import RUNUP_CHANNELS

SEVERITY_MEANING: Mapping[int, str] = {
    Severity.INFO: "for information",
    Severity.WARNING: "the unit keeps running",
    Severity.NORMAL_SHUTDOWN: "the unit stops through COOLDOWN",
    Severity.FAST_SHUTDOWN: "the unit stops at once through WARMDOWN",
    Severity.EMERGENCY_STOP: "the unit stops at once",
}


def explain(definition: FaultDefinition) -> list[str]:
    """``turbolog codes CODE``: the code's name, then its meaning line by line."""
    flags = ", ".join(str(flag.name) for flag in EventFlag if flag and definition.flags & flag) or "none"
    severity = definition.severity
    return [
        fault_label(definition.code),
        f"  subsystem    {definition.subsystem.name}",
        f"  severity     {severity.name} ({int(severity)}): {SEVERITY_MEANING.get(severity, '')}",
        f"  event flags  {flags}",
        f"  meaning      {definition.description}",
        f"  action       {definition.action}",
    ]


def _number(spec: str, unit: str, scale: float = 1.0) -> Callable[[float], str]:
    return lambda value: f"{format(value / scale if scale != 1.0 else value, spec)} {unit}".rstrip()


FREEZE_FIELDS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("state", "engine state", str),
    ("mode", "mode", str),
    ("active_fault", "active fault", lambda v: fault_label(int(v)) if v else "none"),
    ("speed_rpm", "speed", _number(",", "rpm")),
    ("power_w", "power", _number(",.1f", "kW", 1000)),
    ("tet1_c", "TET 1", _number(".1f", "°C")),
    ("tet2_c", "TET 2", _number(".1f", "°C")),
    ("compressor_inlet_c", "compressor inlet", _number(".1f", "°C")),
    ("ambient_c", "ambient", _number(".1f", "°C")),
    ("ambient_pressure_kpa", "ambient pressure", _number(".2f", "kPa")),
    ("fuel_valve_pct", "fuel valve", _number(".1f", "%")),
    ("fuel_power_w", "fuel power", _number(",.1f", "kW", 1000)),
    ("dc_bus_v", "DC bus", _number(".1f", "V")),
    ("grid_voltage_v", "grid voltage", _number(".1f", "V")),
    ("grid_freq_hz", "grid frequency", _number(".3f", "Hz")),
    ("operating_hours", "operating hours", _number(",.1f", "h")),
    ("starts", "starts", _number(",", "")),
    ("trips", "trips", _number(",", "")),
    ("energy_kwh", "energy", _number(",.1f", "kWh")),
)
"""(freeze-frame key in engineering units, label, value with its unit) in display order."""


def freeze_frame_lines(freeze: Mapping[str, Any], indent: str = "    ") -> list[str]:
    """A fault's freeze-frame (:func:`host.fields.snapshot_fields`), one value with its
    unit per line; a key this module does not know (a newer format) is shown as it is."""
    known = {key for key, _, _ in FREEZE_FIELDS}
    rows = [(label, show(freeze[key])) for key, label, show in FREEZE_FIELDS if key in freeze]
    rows += [(key, str(value)) for key, value in freeze.items() if key not in known]
    width = max((len(label) for label, _ in rows), default=0)
    return [f"{indent}{label:<{width}}  {text}" for label, text in rows]


_SPARKS = "▁▂▃▄▅▆▇█"
_SHOW_BY_KEY: dict[str, tuple[str, Callable[[float], str]]] = {
    **{key: (label, show) for key, label, show in FREEZE_FIELDS},
    "tet_avg_c": ("TET average", _number(".1f", "°C")),
    "speed_rpm": ("speed", _number(",.0f", "rpm")),
}
_RUNUP_SHOW = {RunupChannel(channel).name: _SHOW_BY_KEY[spec.key] for channel, spec in RUNUP_CHANNELS.items()}
"""(label, value with its unit) by run-up channel name."""


def sparkline(values: Sequence[float]) -> str:
    """One block character per value, from the lowest (▁) to the highest (█); a flat line is ▁."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return _SPARKS[0] * len(values)
    top = len(_SPARKS) - 1
    return "".join(_SPARKS[round((value - low) / (high - low) * top)] for value in values)


def runup_lines(runup: Sequence[Mapping[str, Any]], indent: str = "    ") -> list[str]:
    """A fault's run-up (:class:`~host.analytics.FaultEntry`'s JSON ``runup``): per channel, a
    sparkline of its values (oldest first, the last at the fault), then first -> last and the
    range, each with its unit; an unknown channel is shown by name, values as they are."""
    rows = []
    for channel in runup:
        label, show = _RUNUP_SHOW.get(channel["channel"], (str(channel["channel"]), str))
        values = channel["runup_values"]
        if not values:
            continue
        low, high = min(values), max(values)
        if low == high:
            rows.append((label, f"{sparkline(values)}  steady at {show(low)}"))
            continue
        span = f"{show(values[0])} -> {show(values[-1])}  (min {show(low)}, max {show(high)})"
        rows.append((label, f"{sparkline(values)}  {span}"))
    width = max((len(label) for label, _ in rows), default=0)
    return [f"{indent}{label:<{width}}  {text}" for label, text in rows]
