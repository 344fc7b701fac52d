"""The machine's values as every text output names them: one vocabulary (docs/fields.md).

:func:`snapshot_fields` turns a :class:`~protocol.records.Snapshot` (a sample,
a fault's freeze-frame, a live reading) into the names and units that
``export`` (CSV, JSON lines), ``faults --json`` and ``live --json`` share with
the reports (``info``, ``summary``, ``units``, ``fleet``): values in
engineering units with the unit in the name (``tet1_c``, ``speed_rpm``,
``power_w``), the lifetime counters as the reports give them
(``operating_hours``, ``energy_kwh``), named values (engine state, grid mode)
by name.  :func:`iso_time` is every text output's moment: ISO 8601, UTC.
It converts values; it reads no archive and no device.
"""

from __future__ import annotations

from datetime import UTC, datetime

from protocol.enums import EngineState, GridMode, name_of
from protocol.records import Snapshot

Values = dict[str, str | float | int]

_RENAMED = {"operating_s": ("operating_hours", 3600), "energy_wh": ("energy_kwh", 1000)}
"""Engineering names of :meth:`Snapshot.engineering` that the vocabulary gives in the reports' unit."""


def snapshot_fields(snapshot: Snapshot) -> Values:
    """The snapshot's values under the vocabulary's names, in wire order."""
    values: Values = {}
    for name, value in snapshot.engineering().items():
        renamed, scale = _RENAMED.get(name, (name, 1))
        values[renamed] = value / scale if scale != 1 else value
    values["state"] = name_of(EngineState, snapshot.state)
    values["mode"] = name_of(GridMode, snapshot.mode)
    return values


def iso_time(timestamp: int) -> str:
    """A device timestamp (Unix seconds) as ISO 8601 in UTC, as every text output gives a moment."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat()
