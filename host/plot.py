"""A picture of one unit's archived log: power, speed and exhaust temperature over time.

Three stacked panels share the time axis; every fault is a vertical line
across them, coloured by severity.  Long logs are reduced inside SQLite to at
most :data:`MAX_POINTS` buckets of consecutive samples, each drawn as its mean
with a band from its minimum to its maximum, so a brief trip stays visible and
memory stays bounded.  matplotlib is imported only when a plot is made, and
drawn with the Agg backend (no display, no pyplot global state).  This module
never changes the archive.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from protocol.enums import Severity, name_of

from .archive import Archive
from .errors import OutputError, UsageError

MAX_POINTS = 2000
"""Most buckets drawn per series."""

_SEVERITY_COLOURS: dict[int, str] = {
    Severity.INFO: "tab:gray",
    Severity.WARNING: "tab:olive",
    Severity.NORMAL_SHUTDOWN: "tab:orange",
    Severity.FAST_SHUTDOWN: "tab:red",
    Severity.EMERGENCY_STOP: "darkred",
}

_SERIES = (
    ("power_w / 1000.0", "power (kW)", "tab:blue"),
    ("speed_rpm / 1000.0", "speed (krpm)", "tab:green"),
    ("(tet1_c_x10 + tet2_c_x10) / 20.0", "TET avg (°C)", "tab:purple"),
)
"""(SQL expression over samples, axis label, colour) per panel."""


def plot_unit(
    archive: Archive, serial: str, out_path: str | os.PathLike[str], epoch: int | None = None
) -> None:
    """Draw the unit's samples and faults (every epoch, or only *epoch*) into a PNG at *out_path*.

    Raises :class:`~host.errors.UnknownUnit`, UsageError when matplotlib is
    not installed, and OutputError when the file cannot be written.
    """
    archive.unit(serial, epoch)
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("plotting needs matplotlib: install turbolog[plot]") from exc

    unit = {"serial": serial, "epoch": epoch}
    where = "unit IN (SELECT id FROM units WHERE serial = :serial AND (:epoch IS NULL OR epoch = :epoch))"
    ((samples,),) = archive.query(f"SELECT COUNT(*) FROM samples WHERE {where}", unit)
    bucket = max(1, -(-samples // MAX_POINTS))
    columns = ", ".join(f"AVG({expr}), MIN({expr}), MAX({expr})" for expr, _, _ in _SERIES)
    rows = list(
        archive.query(
            f"SELECT MIN(timestamp), {columns} FROM samples WHERE {where} "
            f"GROUP BY unit, seq / {bucket} ORDER BY 1",
            unit,
        )
    )
    faults = list(archive.query(f"SELECT timestamp, severity FROM faults WHERE {where} ORDER BY seq", unit))

    figure = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(_SERIES), 1, sharex=True)
    times = [datetime.fromtimestamp(row[0], UTC) for row in rows]
    for index, (ax, (_, label, colour)) in enumerate(zip(axes, _SERIES, strict=True)):
        mean, low, high = ([row[1 + 3 * index + part] for row in rows] for part in range(3))
        if bucket > 1:
            ax.fill_between(times, low, high, color=colour, alpha=0.25, linewidth=0)
        ax.plot(times, mean, color=colour, linewidth=0.9)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    fault_times: dict[int, list[datetime]] = defaultdict(list)
    for timestamp, severity in faults:
        fault_times[severity].append(datetime.fromtimestamp(timestamp, UTC))
    for level in sorted(fault_times):
        for ax in axes:
            ax.vlines(
                fault_times[level], 0, 1, transform=ax.get_xaxis_transform(),
                colors=_SEVERITY_COLOURS.get(level, "black"), linewidth=0.8,
                label=f"{name_of(Severity, level)} ({len(fault_times[level])})",
            )
    if fault_times:
        axes[0].legend(loc="upper right", fontsize="small", title="faults")
    axes[-1].set_xlabel("time (UTC)")
    figure.suptitle(f"{serial}: {samples} samples, {len(faults)} faults")
    try:
        figure.savefig(out_path, format="png", dpi=100)
    except OSError as exc:
        raise OutputError(f"cannot write {Path(out_path)}: {exc.strerror or exc}") from exc
