"""A picture of one unit's archived log: power, speed, exhaust and ambient temperatures over time.

Five stacked panels share the time axis: power, speed, TET (turbine exit, before the
recuperator), the exhaust after it (the stack) and ambient temperature (a hot day explains
derating); every fault is a vertical line across them,
coloured by severity, solid for a failure (shutdown-class fault), dotted for
a warning; failures are labelled with their code, and a key names each code
(protocol's table).  Long logs are reduced, as they stream past, to at most
:data:`MAX_POINTS` buckets of consecutive samples, each drawn as its mean with
a band from its minimum to its maximum, so a brief trip stays visible and
memory stays bounded.  Every sample and fault drawn is read
through :meth:`~host.archive.Archive.iter_rows`, checked against its CRC-32C,
after the archive's count check: an altered or deleted record is an
ArchiveError, never a point.  A unit with no sample and no fault is refused (an
empty picture would pass for a plot); a single sample is a dot.  matplotlib
is imported only when a plot is made, and drawn with the Agg backend (no
display, no pyplot global state).  A :class:`~host.window.Window` limits the
plot to the records whose timestamps it holds.  The picture is PNG, or any
format matplotlib writes, chosen by the output's extension
(:func:`format_for`): ``.svg``, ``.pdf`` ...  This module never changes the archive.
"""

from __future__ import annotations

import io
import math
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from protocol.enums import RecordType, Severity, name_of
from protocol.fault_codes import fault_label
from protocol.records import LAYOUTS, DecodedRow

from .archive import Archive
from .errors import UsageError
from .output_file import STDOUT, output_file
from .window import Window

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

_SAMPLE = LAYOUTS[RecordType.SAMPLE].names
_POWER, _SPEED, _TET1, _TET2, _EXHAUST, _AMBIENT = (
    _SAMPLE.index(name)
    for name in ("power_w", "speed_rpm", "tet1_c_x10", "tet2_c_x10", "exhaust_c_x10", "ambient_c_x10")
)
_SEVERITY = LAYOUTS[RecordType.FAULT].names.index("severity")
_CODE = LAYOUTS[RecordType.FAULT].names.index("code")
MAX_CODE_LABELS = 30
"""Most failures labelled with their code on the plot (the first ones; every code is in the key)."""

_SERIES: tuple[tuple[Callable[[DecodedRow], float | None], str, str], ...] = (
    (lambda row: row[_POWER] / 1000.0, "power (kW)", "tab:blue"),
    (lambda row: row[_SPEED] / 1000.0, "speed (krpm)", "tab:green"),
    (lambda row: (row[_TET1] + row[_TET2]) / 20.0, "TET avg (°C)", "tab:purple"),
    (lambda row: None if row[_EXHAUST] is None else row[_EXHAUST] / 10.0, "exhaust (°C)", "tab:brown"),
    (lambda row: row[_AMBIENT] / 10.0, "ambient (°C)", "tab:cyan"),
)
"""(value of a sample row, axis label, colour) per panel; None where a sample has no such value
(the exhaust after the recuperator in a sample of earlier firmware): a gap in the line."""


DEFAULT_FORMAT = "png"


def _formats() -> dict[str, str]:
    """The formats matplotlib writes: extension (no dot) -> description."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise UsageError("plotting needs matplotlib: install turbolog[plot]") from exc
    return dict(FigureCanvasBase.get_supported_filetypes())


def format_for(target: str | os.PathLike[str]) -> str:
    """The picture format for *target*, by its extension: ``x.svg`` is SVG, ``x.pdf`` PDF; standard
    output (``-``) and a name with no extension (``/dev/stdout``, a FIFO) get PNG.  UsageError for
    an extension matplotlib does not write."""
    name = os.fspath(target)
    base = os.path.basename(name)
    if name == STDOUT or "." not in base.lstrip("."):
        return DEFAULT_FORMAT
    extension = base.rsplit(".", 1)[1].lower()
    formats = _formats()
    if extension not in formats:
        raise UsageError(
            f"cannot draw a plot as .{extension} ({base}): use one of "
            f"{', '.join('.' + ext for ext in sorted(formats))}"
        )
    return extension


def plot_unit(
    archive: Archive,
    serial: str,
    out: str | os.PathLike[str] | IO[bytes],
    window: Window | None = None,
    fmt: str | None = None,
    epoch: int | None = None,
) -> None:
    """Draw the unit's samples and faults (every epoch, or only *epoch*; those *window* holds) at
    *out*: a binary stream, or a target for :func:`host.output_file.output_file` (a path, a
    device, ``-``); in format *fmt*, by default the one :func:`format_for` gives *out* (PNG for a
    stream).

    Raises :class:`~host.errors.UnknownUnit`, UsageError when matplotlib is
    not installed, the format is unknown, or the unit has no sample and no
    fault archived in the window (nothing to draw; nothing is written then),
    and OutputError when *out* cannot be written.
    """
    if fmt is None:
        fmt = format_for(out) if isinstance(out, (str, os.PathLike)) else DEFAULT_FORMAT
    png = unit_png(archive, serial, window, fmt, epoch)
    if isinstance(out, (str, os.PathLike)):
        with output_file(out, binary=True) as stream:
            stream.write(png)
    else:
        out.write(png)


@dataclass(frozen=True, slots=True)
class Picture:
    """A drawn plot: its bytes in format *fmt*, and how many samples and faults it shows."""

    data: bytes
    fmt: str
    samples: int
    faults: int


def unit_png(
    archive: Archive, serial: str, window: Window | None = None, fmt: str = DEFAULT_FORMAT,
    epoch: int | None = None,
) -> bytes:
    """The picture of :func:`plot_unit`, as bytes in format *fmt* (PNG by default)."""
    return unit_picture(archive, serial, window, fmt, epoch).data


def unit_picture(
    archive: Archive, serial: str, window: Window | None = None, fmt: str = DEFAULT_FORMAT,
    epoch: int | None = None,
) -> Picture:
    """The :class:`Picture` of :func:`plot_unit`, in format *fmt* (PNG by default), of every epoch
    of *serial* or only *epoch*."""
    window = window or Window()
    archive.unit(serial, epoch)
    archive.check(serial)
    epochs = [row.epoch for row in archive.epochs(serial) if epoch is None or row.epoch == epoch]
    span = "(:since IS NULL OR timestamp >= :since) AND (:until IS NULL OR timestamp <= :until)"
    bounds = {"since": window.since, "until": window.until}
    unit = {"serial": serial, "epoch": epoch, **bounds}
    where = (
        "unit IN (SELECT id FROM units WHERE serial = :serial AND (:epoch IS NULL OR epoch = :epoch)) "
        f"AND {span}"
    )
    ((samples,),) = archive.query(f"SELECT COUNT(*) FROM samples WHERE {where}", unit)
    faults = [
        (row[1], row[_SEVERITY], row[_CODE]) for number in epochs
        for row in archive.iter_rows(serial, RecordType.FAULT, span, bounds, epoch=number)
    ]
    if not samples and not faults:
        if window.bounded:
            raise UsageError(
                f"unit {serial} has no samples or faults archived {window.describe()}: nothing to plot"
            )
        raise UsageError(f"unit {serial} has no samples or faults archived yet: nothing to plot")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("plotting needs matplotlib: install turbolog[plot]") from exc

    bucket = max(1, -(-samples // MAX_POINTS))
    rows = sorted(
        (row for number in epochs for row in _buckets(
            archive.iter_rows(serial, RecordType.SAMPLE, span, bounds, epoch=number), bucket)),
        key=lambda row: row[0],
    )

    figure = Figure(figsize=(11, 10.5), layout="constrained")
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
    for timestamp, severity, _ in faults:
        fault_times[severity].append(datetime.fromtimestamp(timestamp, UTC))
    for level in sorted(fault_times):
        for ax in axes:
            ax.vlines(
                fault_times[level], 0, 1, transform=ax.get_xaxis_transform(),
                colors=_SEVERITY_COLOURS.get(level, "black"), linewidth=0.8,
                linestyles="solid" if level >= Severity.NORMAL_SHUTDOWN else "dotted",
                label=f"{name_of(Severity, level)} ({len(fault_times[level])})",
            )
    if fault_times:
        axes[0].legend(loc="upper right", fontsize="small", title="faults")
    failures = [(t, code) for t, level, code in faults if level >= Severity.NORMAL_SHUTDOWN]
    for timestamp, code in failures[:MAX_CODE_LABELS]:
        axes[0].annotate(
            str(code), (datetime.fromtimestamp(timestamp, UTC), 1.0), xycoords=("data", "axes fraction"),
            rotation=90, fontsize="x-small", ha="right", va="top",
        )
    key = failure_key(code for _, code in failures)
    if key:
        figure.text(0.01, 0.005, "failures: " + "; ".join(key), fontsize="x-small", wrap=True)
    if window.since is not None:
        axes[-1].set_xlim(left=datetime.fromtimestamp(window.since, UTC))
    if window.until is not None:
        axes[-1].set_xlim(right=datetime.fromtimestamp(window.until, UTC))
    axes[-1].set_xlabel("time (UTC)")
    shown = f", {window.describe()}" if window.bounded else ""
    figure.suptitle(f"{serial}: {samples} samples, {len(faults)} faults{shown}")
    picture = io.BytesIO()
    figure.savefig(picture, format=fmt, dpi=100)
    return Picture(picture.getvalue(), fmt, samples, len(faults))


def failure_key(codes: Iterable[int]) -> list[str]:
    """The failures' codes named (protocol's table), most frequent first:
    ``"5005 TET over-temperature (2)"``."""
    ordered = sorted(Counter(codes).items(), key=lambda item: (-item[1], item[0]))
    return [f"{fault_label(code)} ({count})" for code, count in ordered]


def _buckets(samples: Iterator[DecodedRow], bucket: int) -> list[tuple[float, ...]]:
    """Per run of *bucket* seqs: its first timestamp, then each series' mean, minimum and maximum
    (NaN for a series with no value in it), in time order; the samples stream past once."""
    out: list[tuple[float, ...]] = []
    key: int | None = None
    first = 0
    width = len(_SERIES)
    counts: list[int] = []
    sums: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    for row in samples:
        if row[0] // bucket != key:
            if key is not None:
                out.append(_bucket_row(first, counts, sums, lows, highs))
            key, first = row[0] // bucket, row[1]
            counts, sums = [0] * width, [0.0] * width
            lows, highs = [math.inf] * width, [-math.inf] * width
        first = min(first, row[1])
        for i, (series, _, _) in enumerate(_SERIES):
            value = series(row)
            if value is None:
                continue
            counts[i] += 1
            sums[i] += value
            lows[i] = min(lows[i], value)
            highs[i] = max(highs[i], value)
    if key is not None:
        out.append(_bucket_row(first, counts, sums, lows, highs))
    return sorted(out, key=lambda row: row[0])


def _bucket_row(
    first: int, counts: list[int], sums: list[float], lows: list[float], highs: list[float]
) -> tuple[float, ...]:
    """(first timestamp, then mean, minimum and maximum of each series) of one bucket."""
    return (first, *(
        part for i, count in enumerate(counts)
        for part in ((sums[i] / count, lows[i], highs[i]) if count else (math.nan,) * 3)
    ))
