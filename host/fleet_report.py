"""The fleet table of `turbolog fleet`, and its picture: the press release, from the units' own logs.

:func:`fleet_table` gives a :class:`FleetReport`: units, documented operating
hours, starts, faults by severity, and MTBF per model with its 90 %
two-sided chi-square interval and one-sided lower bound, for the whole fleet
and per model.  Every figure is :func:`host.analytics.fleet_summary`'s
(definitions in :mod:`host.analytics`; the arithmetic in
:mod:`host.reliability`): this module adds the fleet's calendar bounds and
the presentation, nothing else.

:func:`hours_timeline` traces the fleet's cumulative documented operating
hours over calendar time, per model, from a few samples of each unit found
through the archive's key (never a scan of every sample) and checked against
its CRC-32C, joined by straight lines (each archived log of a serial is traced
on its own; one that continues the log before it counts only the hours it
added).  :func:`plot_fleet` draws MTBF per model with its interval bars above
that timeline (matplotlib, imported only when a plot is made, Agg backend);
units with no records archived yet are left out of the picture and named.

It never writes the archive and never talks to a device.
"""

from __future__ import annotations

import io
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from protocol.enums import RecordType, Severity, name_of
from protocol.records import LAYOUTS

from .analytics import CONFIDENCE, ModelSummary, UnitSummary, fleet_summary
from .archive import Archive
from .errors import UsageError
from .failures import TRIPS, FailurePolicy
from .output_file import output_file
from .selection import ALL, Selection, unit_profiles

HOURS_PER_YEAR = 8766
"""365.25 days."""

TIMELINE_POINTS = 200
"""Calendar instants at which the timeline is evaluated."""
_NAMED_EMPTY = 5
"""Units without records named in the plot's note."""
PROBES_PER_UNIT = 16
"""Samples read per unit to trace its hours over time (plus its last one)."""


def _iso(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:,.0f}"


@dataclass(frozen=True, slots=True)
class FleetReport:
    """The fleet as its archived logs document it."""

    total: ModelSummary
    """Every unit pooled (``model`` is "all")."""
    models: tuple[ModelSummary, ...]
    """One per model, by model name."""
    first_record: int | None
    """Unix time of the oldest archived record of any unit."""
    last_record: int | None
    """Unix time of the newest: the date the table stands for."""
    policy: FailurePolicy = TRIPS
    basis: str = "archive"
    confidence: float = CONFIDENCE
    selection: Selection = ALL
    units: tuple[UnitSummary, ...] = ()
    """The units pooled, each with its own figures."""

    @property
    def unit_years(self) -> float:
        return self.total.operating_hours / HOURS_PER_YEAR

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": _iso(self.last_record),
            "first_record": _iso(self.first_record),
            "confidence": self.confidence,
            "selection": self.selection.to_json(),
            "exposure_hours": round(self.total.exposure_hours, 3),
            "failures_policy": self.policy.to_json(),
            "hours_basis": self.basis,
            "unit_years": round(self.unit_years, 1),
            "total": self.total.to_json(),
            "models": [model.to_json() for model in self.models],
        }

    def to_text(self) -> str:
        """The table as a technician reads it, one line per model and one for the fleet."""
        total = self.total
        as_of = _iso(self.last_record)
        lines = [
            f"selected: {self.selection.describe()}",
            f"fleet{' on ' + as_of[:10] if as_of else ''}: {total.units:,} units, "
            f"{total.operating_hours:,.0f} documented operating hours ({self.unit_years:,.0f} unit-years), "
            f"{total.starts:,} starts",
            f"failures ({self.policy.name}): {self.policy.definition}",
            "MTBF over: " + (
                "the devices' lifetime counters (operating hours, trips), not the archive"
                if self.basis == "lifetime" else
                "the operating hours the archive covers (exposure) and the failures in them"
            ),
            f"bounds at {self.confidence:.0%} confidence (chi-square, time-terminated)",
            "",
        ]
        if not self.units:
            lines.append("no unit matches the selection: the table is empty")
        levels = sorted(total.faults_by_severity)
        percent = f"{self.confidence:.0%}"
        header = ["model", "units", "operating h", "starts",
                  *(name_of(Severity, level).lower() for level in levels),
                  "failures", "exposure h", "coverage", "MTBF h", f"{percent} interval h",
                  f"MTBF > ({percent})"]
        rows = [header]
        for summary in (*self.models, total):
            estimate = summary.mtbf
            rows.append([
                summary.model, f"{summary.units:,}", f"{summary.operating_hours:,.0f}", f"{summary.starts:,}",
                *(f"{summary.faults_by_severity.get(level, 0):,}" for level in levels),
                f"{summary.failures:,}", f"{summary.exposure_hours:,.0f}", _percent(summary.coverage),
                _number(estimate.point),
                f"[{_number(estimate.ci_low)}, {_number(estimate.ci_high)}]",
                _number(estimate.lower_one_sided),
            ])
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:],
                                                                                              strict=True)]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)


def text_table(rows: list[list[str]]) -> list[str]:
    """Rows of cells, the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join([row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:],
                                                                                      strict=True))]).rstrip()
        for row in rows
    ]


def breakdown_text(report: FleetReport) -> str:
    """Failures per 1,000 starts and availability per model, then the fleet's failures by subsystem
    and by code in Pareto order, each with its MTBF over the fleet's exposure."""
    percent = f"{report.confidence:.0%}"
    lines = [f"failures ({report.policy.name}) per 1,000 starts, and availability "
             "(forced outages; with planned service too)"]
    rows = [["model", "archived starts", "failures", "per 1,000 starts", "forced down h", "planned down h",
             "availability", "with planned"]]
    for summary in (*report.models, report.total):
        perk = 1000 * summary.failures / summary.exposure_starts if summary.exposure_starts else None
        rows.append([
            summary.model, f"{summary.exposure_starts:,}", f"{summary.failures:,}",
            "-" if perk is None else f"{perk:,.2f}", f"{summary.downtime_s / 3600:,.0f}",
            f"{summary.planned_s / 3600:,.0f}", _percent(summary.availability, 2),
            _percent(summary.availability_with_planned, 2),
        ])
    lines += text_table(rows)
    breakdown = report.total.to_json()["breakdown"]
    for key, title in (("by_subsystem", "subsystem"), ("by_code", "code")):
        lines += ["", f"failures by {title}, all models (most first), MTBF over "
                  f"{report.total.exposure_hours:,.0f} h"]
        rows = [[title, "failures", "share", "cumulative", "MTBF h", f"{percent} interval h"]]
        cumulative = 0.0
        for entry in breakdown[key]:
            cumulative += entry["share"]
            label = entry["subsystem"].lower() if key == "by_subsystem" else (
                f"{entry['code']} {entry['name'] or '(unknown code)'}"
            )
            low, high = entry["mtbf_ci"]
            rows.append([label, f"{entry['failures']:,}", _percent(entry["share"]), _percent(cumulative),
                         _number(entry["mtbf_hours"]), f"[{_number(low)}, {_number(high)}]"])
        lines += text_table(rows) if len(rows) > 1 else ["  no failures"]
    return "\n".join(lines)


def _percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def fleet_table(
    archive: Archive, *, policy: FailurePolicy = TRIPS, basis: str = "archive",
    confidence: float = CONFIDENCE, selection: Selection = ALL,
) -> FleetReport:
    """The fleet table of the units of *archive* that *selection* keeps, failures counted by
    *policy*, MTBF over *basis*, bounds at *confidence*."""
    summary = fleet_summary(archive, policy=policy, basis=basis, confidence=confidence, selection=selection)
    firsts = [unit.first_record for unit in summary.units if unit.first_record is not None]
    lasts = [unit.last_record for unit in summary.units if unit.last_record is not None]
    return FleetReport(
        total=summary.total,
        models=summary.models,
        first_record=min(firsts, default=None),
        last_record=max(lasts, default=None),
        policy=policy,
        basis=basis,
        confidence=confidence,
        selection=selection,
        units=summary.units,
    )


@dataclass(frozen=True, slots=True)
class HoursTimeline:
    """Cumulative documented operating hours of the fleet at calendar instants, per model."""

    times: tuple[int, ...]
    """Unix seconds, ascending."""
    hours: dict[str, tuple[float, ...]]
    """Per model, the hours its units had documented at each of :attr:`times`."""


_PROBE_WHERE = "seq = (SELECT MIN(seq) FROM samples WHERE unit = :unit AND seq >= :probe)"
_LAST_WHERE = "seq = (SELECT MAX(seq) FROM samples WHERE unit = :unit)"
_OPERATING_S = LAYOUTS[RecordType.SAMPLE].names.index("operating_s")


def _within(selection: Selection, stamp: int) -> bool:
    end = selection.end
    return (selection.since is None or stamp >= selection.since) and (end is None or stamp <= end)


def _unit_trace(
    archive: Archive, serial: str, first_seq: int, next_seq: int, epoch: int
) -> list[tuple[int, int]]:
    """(timestamp, operating_s) of samples spread evenly over the seqs of the unit's *epoch*, and
    of its last one, each checked against its CRC-32C."""
    step = max(1, (next_seq - first_seq) // PROBES_PER_UNIT)
    probes = [(_PROBE_WHERE, {"probe": seq}) for seq in range(first_seq, next_seq, step)]
    trace: list[tuple[int, int]] = []
    for where, params in [*probes, (_LAST_WHERE, {})]:
        rows = archive.iter_rows(serial, RecordType.SAMPLE, where, params, epoch=epoch)
        trace += ((row[1], row[_OPERATING_S]) for row in rows)
    return sorted(set(trace))


def _at(trace: list[tuple[int, int]], times: list[int]) -> list[float]:
    """The unit's operating hours at each of *times*: 0 before its first sample,
    linear between samples, its last value after the last one."""
    out = []
    i = 0
    for t in times:
        while i < len(trace) and trace[i][0] <= t:
            i += 1
        if i == 0:
            out.append(0.0)
        elif i == len(trace):
            out.append(trace[-1][1] / 3600)
        else:
            (t0, s0), (t1, s1) = trace[i - 1], trace[i]
            out.append((s0 + (s1 - s0) * (t - t0) / (t1 - t0)) / 3600)
    return out


def _traces(archive: Archive, selection: Selection) -> list[tuple[str, list[tuple[int, int]]]]:
    """(model, its (timestamp, operating_s) trace) per archived log of each unit *selection* keeps."""
    units = list(archive.query(
        "SELECT serial, model, first_seq, next_seq, epoch, continues FROM units ORDER BY serial, epoch"
    ))
    profiles = unit_profiles(archive)
    traces: list[tuple[str, list[tuple[int, int]]]] = []
    last_serial = ""
    for serial, model, first, end, epoch, continues in units:
        if not selection.keeps(model, profiles.get(serial)):
            continue
        trace = _unit_trace(archive, serial, first, end, epoch)
        if continues and traces and trace and traces[-1][1] and serial == last_serial:
            base = traces[-1][1][-1][1]  # hours the epoch before counted already
            trace = [(stamp, max(operating_s - base, 0)) for stamp, operating_s in trace]
        traces.append((model, trace))
        last_serial = serial
    return traces


def _totals(
    traces: list[tuple[str, list[tuple[int, int]]]], times: list[int]
) -> dict[str, tuple[float, ...]]:
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(times))
    for model, trace in traces:
        total = totals[model]
        for i, hours in enumerate(_at(trace, times)):
            total[i] += hours
    return {model: tuple(totals[model]) for model in sorted(totals)}


def hours_timeline(
    archive: Archive, points: int = TIMELINE_POINTS, selection: Selection = ALL
) -> HoursTimeline:
    """The fleet's documented operating hours over calendar time (see the module docstring), of
    the units *selection* keeps, within its window."""
    traces = _traces(archive, selection)
    stamps = [stamp for _, trace in traces for stamp, _ in trace if _within(selection, stamp)]
    if not stamps:
        return HoursTimeline((), {})
    start, stop = min(stamps), max(stamps)
    times = sorted({start + (stop - start) * i // max(1, points - 1) for i in range(points)})
    return HoursTimeline(tuple(times), _totals(traces, times))


def exposure_at(archive: Archive, times: list[int], selection: Selection = ALL) -> HoursTimeline:
    """The operating hours the archive covers by each of *times* (ascending), per model: each
    log's hours since its first archived record, of the units *selection* keeps, within its
    window (interpolated between a few samples of each log, as the timeline is)."""
    shifted = []
    for model, trace in _traces(archive, selection):
        kept = [point for point in trace if _within(selection, point[0])]
        if kept:
            shifted.append((model, [(stamp, hours - kept[0][1]) for stamp, hours in kept]))
    return HoursTimeline(tuple(times), _totals(shifted, times))


def plot_fleet(archive: Archive, out: str | os.PathLike[str] | IO[bytes]) -> tuple[str, ...]:
    """Draw MTBF per model with its interval, and cumulative fleet hours over time, into a PNG
    at *out* (a binary stream, or a target for :func:`host.output_file.output_file`); returns
    the serials of the units left out because they have no records archived yet.

    A model whose units document no operating hours between records (none, or a
    single record each) has no MTBF bar.  Raises UsageError when matplotlib is
    not installed or no unit has a record (nothing is written then), and
    OutputError when *out* cannot be written.
    """
    png, empty = fleet_png(archive)
    if isinstance(out, (str, os.PathLike)):
        with output_file(out, binary=True) as stream:
            stream.write(png)
    else:
        out.write(png)
    return empty


def fleet_png(
    archive: Archive, *, policy: FailurePolicy = TRIPS, basis: str = "archive",
    confidence: float = CONFIDENCE, selection: Selection = ALL, fmt: str = "png",
    report: FleetReport | None = None,
) -> tuple[bytes, tuple[str, ...]]:
    """The picture of :func:`plot_fleet` in *fmt* (``png``, ``svg``, ``pdf``...: see
    :func:`host.plot.format_for`), failures counted by *policy*, MTBF over *basis*, bounds at
    *confidence*, the units and window of *selection* (or *report*, the fleet table already made
    of them), and the serials it leaves out."""
    if report is None:
        report = fleet_table(archive, policy=policy, basis=basis, confidence=confidence, selection=selection)
    if not report.models:
        raise UsageError(f"archive {archive.path} holds no unit: nothing to plot")
    empty = tuple(serial for (serial,) in archive.query(
        "SELECT serial FROM units GROUP BY serial HAVING SUM(record_count) = 0 ORDER BY serial"
    ))
    if len(empty) == report.total.units:
        raise UsageError(f"no unit in the archive {archive.path} has records yet: nothing to plot")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("plotting needs matplotlib: install turbolog[plot]") from exc
    timeline = hours_timeline(archive, selection=selection)

    figure = Figure(figsize=(11, 8), layout="constrained")
    FigureCanvasAgg(figure)
    mtbf_axes, hours_axes = figure.subplots(2, 1, height_ratios=(1, 1.3))
    _draw_mtbf(mtbf_axes, report)
    _draw_hours(hours_axes, timeline)
    as_of = _iso(report.last_record)
    figure.suptitle(
        f"{report.total.units - len(empty):,} units, {report.total.operating_hours:,.0f} documented "
        "operating hours" + (f" to {as_of[:10]}" if as_of else "")
    )
    if empty:
        shown = ", ".join(empty[:_NAMED_EMPTY]) + (", ..." if len(empty) > _NAMED_EMPTY else "")
        figure.text(0.01, 0.005, f"not drawn: {len(empty):,} units with no records yet ({shown})",
                    fontsize="small", color="dimgray")
    picture = io.BytesIO()
    figure.savefig(picture, format=fmt, dpi=100)
    return picture.getvalue(), empty


def _draw_mtbf(ax: Any, report: FleetReport) -> None:
    """MTBF per model: the point estimate, the two-sided interval as a bar (an arrow when
    it is unbounded above), and the one-sided lower bound as a tick; only models with
    documented operating hours between records."""
    models = [m for m in report.models if m.exposure_hours > 0]
    percent = f"{report.confidence:.0%}"
    ax.set_title(
        f"MTBF per model: point, {percent} two-sided interval (bar), {percent} lower bound (red)\n"
        f"failures: {report.policy.label}; hours: "
        + ("lifetime counters" if report.basis == "lifetime" else "those the archive covers"),
        fontsize="medium",
    )
    if not models:
        ax.text(0.5, 0.5, "no operating hours between archived records yet", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_axis_off()
        return
    tops = [m.mtbf.ci_high if not math.isinf(m.mtbf.ci_high) else 3 * m.mtbf.ci_low for m in models]
    ceiling = 1.15 * max(tops)
    floor = 0.8 * min(min(m.mtbf.ci_low, m.mtbf.lower_one_sided) for m in models)
    for x, model in enumerate(models):
        estimate = model.mtbf
        top = min(estimate.ci_high, ceiling)
        ax.vlines(x, estimate.ci_low, top, color="tab:blue", linewidth=3, alpha=0.5)
        if math.isinf(estimate.ci_high):
            ax.plot(x, top, marker="^", color="tab:blue")
        ax.plot(x, estimate.lower_one_sided, marker="_", markersize=18, color="tab:red")
        if estimate.point is not None:
            ax.plot(x, estimate.point, marker="o", color="tab:blue")
        ax.annotate(
            f"{_number(estimate.point)} h\n{estimate.failures:,} failures in {estimate.hours:,.0f} h",
            (x, top), textcoords="offset points", xytext=(14, 0), va="top", fontsize="small",
        )
    ax.set_xticks(range(len(models)), [model.model for model in models])
    ax.set_xlim(-0.5, len(models) - 0.2)
    ax.set_ylim(floor, ceiling)
    ax.set_ylabel("MTBF (operating hours)")
    ax.grid(True, axis="y", alpha=0.3)


def _draw_hours(ax: Any, timeline: HoursTimeline) -> None:
    """Cumulative documented hours, stacked by model."""
    times = [datetime.fromtimestamp(t, UTC) for t in timeline.times]
    models = list(timeline.hours)
    millions = [[hours / 1e6 for hours in timeline.hours[model]] for model in models]
    ax.stackplot(times, *millions, labels=models, alpha=0.7)
    if len(times) == 1:  # a single instant has no width: mark each model's stacked top
        tops = [sum(series[0] for series in millions[: i + 1]) for i in range(len(models))]
        ax.plot(times * len(models), tops, "o")
    ax.set_ylabel("documented operating hours (millions)")
    ax.set_xlabel("time (UTC)")
    ax.set_title("cumulative fleet operating hours, from the units' logs", fontsize="medium")
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
