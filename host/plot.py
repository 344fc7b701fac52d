"""A picture of one unit's archived log: power, speed and exhaust temperature over time.

Three stacked panels share the time axis; every fault is a vertical line
across them, coloured by severity.  Long logs are reduced inside SQLite to at
most :data:`MAX_POINTS` buckets of consecutive samples, each drawn as its mean
with a band from its minimum to its maximum, so a brief trip stays visible and
memory stays bounded.  A unit with no sample and no fault is refused (an
empty picture would pass for a plot); a single sample is a dot.  matplotlib
is imported only when a plot is made, and drawn with the Agg backend (no
display, no pyplot global state).  This module never changes the archive.
"""

from __future__ import annotations

import io
import os
from collections import defaultdict
from datetime import UTC, datetime
from typing import IO

from protocol.enums import Severity, name_of

from .archive import Archive
from .errors import UsageError
from .output_file import output_file

MAX_POINTS = 2000
"""Most buckets drawn per series."""
_MARKED_BELOW = 50
"""Series of fewer points are drawn with a marker on each (a single sample is a dot, not nothing)."""

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


def plot_unit(archive: Archive, serial: str, out: str | os.PathLike[str] | IO[bytes]) -> None:
    """Draw the unit's samples and faults into a PNG at *out*: a binary stream, or a target
    for :func:`host.output_file.output_file` (a path, a device, ``-``).

    Raises :class:`~host.errors.UnknownUnit`, UsageError when matplotlib is
    not installed or the unit has no sample and no fault archived (nothing to
    draw; nothing is written then), and OutputError when *out* cannot be
    written.
    """
    png = unit_png(archive, serial)
    if isinstance(out, (str, os.PathLike)):
        with output_file(out, binary=True) as stream:
            stream.write(png)
    else:
        out.write(png)


def unit_png(archive: Archive, serial: str) -> bytes:
    """The PNG of :func:`plot_unit`."""
    archive.unit(serial)
    unit = {"serial": serial}
    where = "unit = (SELECT id FROM units WHERE serial = :serial)"
    ((samples,),) = archive.query(f"SELECT COUNT(*) FROM samples WHERE {where}", unit)
    faults = list(archive.query(f"SELECT timestamp, severity FROM faults WHERE {where} ORDER BY seq", unit))
    if not samples and not faults:
        raise UsageError(f"unit {serial} has no samples or faults archived yet: nothing to plot")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("plotting needs matplotlib: install turbolog[plot]") from exc

    bucket = max(1, -(-samples // MAX_POINTS))
    columns = ", ".join(f"AVG({expr}), MIN({expr}), MAX({expr})" for expr, _, _ in _SERIES)
    rows = list(
        archive.query(
            f"SELECT MIN(timestamp), {columns} FROM samples WHERE {where} GROUP BY seq / {bucket} ORDER BY 1",
            unit,
        )
    )

    figure = Figure(figsize=(11, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(_SERIES), 1, sharex=True)
    times = [datetime.fromtimestamp(row[0], UTC) for row in rows]
    marker = "o" if len(rows) < _MARKED_BELOW else None
    for index, (ax, (_, label, colour)) in enumerate(zip(axes, _SERIES, strict=True)):
        mean, low, high = ([row[1 + 3 * index + part] for row in rows] for part in range(3))
        if bucket > 1:
            ax.fill_between(times, low, high, color=colour, alpha=0.25, linewidth=0)
        ax.plot(times, mean, color=colour, linewidth=0.9, marker=marker, markersize=3)
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
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    return png.getvalue()
