"""What counts as a failure: the named policies of ``--failures`` and custom selections.

Every policy is derived from the fields of :data:`protocol.fault_codes.FAULT_CODES`
(severity, subsystem, flags, lockout), never from a list of codes:

- ``trips`` (the default): every fault of severity NORMAL_SHUTDOWN or above,
  what the device's trips counter counts;
- ``equipment``: trips less those with an external cause, the codes whose flags
  name one: GRID_DISCONNECT (the utility's disturbances), MANUAL_SHUTDOWN
  (emergency stops), CABINET_OPEN (enclosure doors);
- ``service-calls``: trips that need a technician, the codes the controller
  latches (``lockout``: no automatic restart);
- a custom selection, ``CODE,SUBSYSTEM,...``: trips whose code or subsystem is
  listed (a listed code must be a shutdown-class code of the table).

A fault's severity and subsystem are those of its record; its flags and lockout
those of its code's definition (a code missing from the table, a newer
firmware's: its record's flags, and no lockout).  This module is pure: no
archive, no I/O; bad input is a :class:`~host.errors.UsageError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.enums import EventFlag, Severity, Subsystem
from protocol.fault_codes import FAULT_CODES

from .errors import UsageError

_TRIP = int(Severity.NORMAL_SHUTDOWN)
EXTERNAL = EventFlag.GRID_DISCONNECT | EventFlag.MANUAL_SHUTDOWN | EventFlag.CABINET_OPEN
"""Flags that name a cause outside the unit."""

POLICIES = {
    "trips": "every shutdown-class fault (severity NORMAL_SHUTDOWN or above), as the trips counter counts",
    "equipment": "trips less external causes (flags GRID_DISCONNECT, MANUAL_SHUTDOWN, CABINET_OPEN: "
    "grid disturbances, emergency stops, enclosure doors)",
    "service-calls": "trips that need a technician: codes the controller latches "
    "(lockout, no automatic restart)",
}
"""The named policies and their one-line definitions."""


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """Which archived faults count as failures."""

    name: str
    """"trips", "equipment", "service-calls" or "custom"."""
    codes: frozenset[int] = frozenset()
    subsystems: frozenset[Subsystem] = frozenset()

    @property
    def definition(self) -> str:
        if self.name != "custom":
            return POLICIES[self.name]
        listed = [str(code) for code in sorted(self.codes)]
        listed += [subsystem.name.lower() for subsystem in sorted(self.subsystems)]
        return f"trips of {', '.join(listed)}"

    @property
    def label(self) -> str:
        """The policy in a few words, for a table's heading."""
        return self.name if self.name != "custom" else f"custom ({self.definition})"

    def counts(self, code: int, severity: int, subsystem: int, flags: int) -> bool:
        """Whether a fault with these fields (of its record) is a failure under this policy."""
        if severity < _TRIP:
            return False
        if self.name == "trips":
            return True
        definition = FAULT_CODES.get(code)
        if self.name == "equipment":
            return not (definition.flags if definition else flags) & EXTERNAL
        if self.name == "service-calls":
            return definition is not None and definition.lockout
        return code in self.codes or subsystem in self.subsystems

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "definition": self.definition,
            "codes": sorted(self.codes),
            "subsystems": [subsystem.name for subsystem in sorted(self.subsystems)],
        }


TRIPS = FailurePolicy("trips")


def parse_policy(text: str) -> FailurePolicy:
    """``trips``, ``equipment``, ``service-calls``, or ``CODE,SUBSYSTEM,...``; UsageError otherwise."""
    name = text.strip().lower()
    if name in POLICIES:
        return FailurePolicy(name)
    codes: set[int] = set()
    subsystems: set[Subsystem] = set()
    subsystem_names = ", ".join(subsystem.name.lower() for subsystem in Subsystem)
    for item in (part.strip() for part in name.split(",")):
        if item.isdigit():
            definition = FAULT_CODES.get(int(item))
            if definition is None:
                raise UsageError(f"--failures: unknown fault code {item} (turbolog codes lists them)")
            if definition.severity < _TRIP:
                raise UsageError(
                    f"--failures: {item} is a warning ({definition.name}): it never stops the unit"
                )
            codes.add(int(item))
        elif item.upper().replace("-", "_") in Subsystem.__members__:
            subsystems.add(Subsystem[item.upper().replace("-", "_")])
        else:
            raise UsageError(
                f"--failures: {item or text!r} is neither a policy ({', '.join(POLICIES)}), "
                f"a fault code, nor a subsystem ({subsystem_names})"
            )
    return FailurePolicy("custom", frozenset(codes), frozenset(subsystems))
