"""The fleet's plots for a reliability engineer, as inline SVG, each with the numbers behind it.

One function per plot, each taking figures already computed (a
:class:`host.fleet_report.FleetReport`, the :class:`host.fleet_growth.Growth`
of each model) and returning a :class:`Plot`: its title, the SVG, and a
small table of the numbers it draws (so that a reader of the report can
check the picture):

- **Crow-AMSAA**: per model, the mean cumulative failures per unit against
  unit age (Nelson's MCF) on log-log axes, and the fitted ``lambda * t**beta``;
- **Pareto**: failures by fault code and by subsystem, most first, with the
  cumulative share;
- **MTBF per model**: point, two-sided interval and one-sided lower bound on a
  log axis, and the target line when one is given;
- **failure rate by age band**: failures per 1,000 operating hours in each band
  of unit age, with its interval;
- **availability**: per model, forced outages only and with planned service.

matplotlib is imported only here, on first use, with no display (the SVG
backend); text is drawn as paths, so the SVG needs no font.  Reads no
archive, writes no file.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from .errors import UsageError
from .fleet_growth import Growth, fit_cells, histories
from .fleet_report import FleetReport
from .growth import mean_cumulative

PARETO_BARS = 12
"""Codes drawn in the Pareto by code (the rest are one bar, "others")."""


@dataclass(frozen=True, slots=True)
class Plot:
    """One figure of the report."""

    name: str
    """A short identifier (an HTML id)."""
    title: str
    svg: str
    """The ``<svg>`` element, without XML prolog."""
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    """The numbers the figure draws."""


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_svg import FigureCanvasSVG
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise UsageError("plots need matplotlib: install turbolog[plot]") from exc
    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasSVG(figure)
    return figure


def _svg(figure: Any, name: str) -> str:
    """The figure as an ``<svg>`` element whose ids cannot clash with another figure's."""
    from matplotlib import rc_context

    out = io.StringIO()
    with rc_context({"svg.hashsalt": name, "svg.fonttype": "path"}):
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]
    start, end = text.find("<metadata>"), text.find("</metadata>")
    return text if start < 0 else text[:start] + text[end + len("</metadata>"):]


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:,.0f}"


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def crow_amsaa_plot(report: FleetReport, growth: list[Growth]) -> Plot:
    """Per model: cumulative failures against the fleet's cumulative operating hours with the
    fit (left), and mean cumulative failures per unit against unit age with the fit (right)."""
    figure = _figure(11, 5.5)
    fleet_ax, ax = figure.subplots(1, 2)
    rows = _fleet_growth_rows(fleet_ax, report, growth)
    drawn = False
    for result in growth:
        if result.model == "all":
            continue
        units = [unit for unit in report.units if unit.model == result.model]
        points = [(age, mcf) for age, mcf in mean_cumulative(histories(units)) if age > 0]
        fit = result.fit
        if not points:
            continue
        drawn = True
        (line,) = ax.plot([a for a, _ in points], [m for _, m in points], marker=".", linestyle="none",
                          markersize=3, label=f"{result.model}: observed (MCF)")
        if fit is not None:
            ages = [points[0][0] * (points[-1][0] / points[0][0]) ** (i / 50) for i in range(51)]
            ax.plot(ages, [fit.expected_failures(age) for age in ages], color=line.get_color(),
                    label=f"{result.model}: fit, beta {fit.beta:.2f} "
                    f"[{fit.beta_low:.2f}, {fit.beta_high:.2f}]")
        rows.append((
            result.model, "unit age", f"{len(points):,}", f"{points[-1][0]:,.0f}", f"{points[-1][1]:.3f}",
            *fit_cells(fit),
            "-" if result.trend is None else result.trend.verdict,
        ))
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("unit age (operating hours)")
        ax.set_ylabel("cumulative failures per unit")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    else:
        _empty(ax, "no failures to plot")
    percent = f"{report.confidence:.0%}"
    ax.set_title("against unit age: mean cumulative failures per unit", fontsize="medium")
    figure.suptitle(f"Crow-AMSAA (failures: {report.policy.label}); beta with its {percent} interval",
                    fontsize="medium")
    return Plot("crow-amsaa", "Crow-AMSAA (power-law NHPP): the fleet's hours, and unit age",
                _svg(figure, "crow-amsaa"),
                ("model", "against", "failures", "last failure at h", "cumulative there", "beta",
                 f"{percent} interval", "lambda", "trend"), tuple(rows))


def _fleet_growth_rows(ax: Any, report: FleetReport, growth: list[Growth]) -> list[tuple[str, ...]]:
    """Draw cumulative failures against the fleet's cumulative hours per model; their rows."""
    rows: list[tuple[str, ...]] = []
    for result in growth:
        history, fit = result.fleet_history, result.fleet_fit
        if result.model == "all" or history is None or not history.failures:
            continue
        ages = history.failures
        (line,) = ax.plot(ages, range(1, len(ages) + 1), marker=".", linestyle="none", markersize=4,
                          label=f"{result.model}: observed")
        if fit is not None:
            span = [ages[0] * (history.end / ages[0]) ** (i / 50) for i in range(51)]
            ax.plot(span, [fit.lam * hours**fit.beta for hours in span], color=line.get_color(),
                    label=f"{result.model}: beta {fit.beta:.2f} [{fit.beta_low:.2f}, {fit.beta_high:.2f}]")
        rows.append((
            result.model, "fleet hours", f"{len(ages):,}", f"{ages[-1]:,.0f}", f"{len(ages):,}",
            *fit_cells(fit),
            "-" if result.fleet_trend is None else result.fleet_trend.verdict,
        ))
    if rows:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("cumulative operating hours of the fleet")
        ax.set_ylabel("cumulative failures")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    else:
        _empty(ax, "no failures to plot")
    ax.set_title("the fleet: cumulative failures against cumulative hours", fontsize="medium")
    return rows


def pareto_plot(report: FleetReport) -> Plot:
    """Failures by code and by subsystem, most first, with the cumulative share."""
    breakdown = report.total.to_json()["breakdown"]
    by_code = [(f"{entry['code']}", entry["failures"]) for entry in breakdown["by_code"]]
    if len(by_code) > PARETO_BARS:
        rest = sum(count for _, count in by_code[PARETO_BARS - 1:])
        by_code = [*by_code[: PARETO_BARS - 1], ("others", rest)]
    by_subsystem = [(entry["subsystem"].lower(), entry["failures"]) for entry in breakdown["by_subsystem"]]
    figure = _figure(11, 4.8)
    rows = []
    panels = (("fault code", by_code), ("subsystem", by_subsystem))
    for ax, (title, bars) in zip(figure.subplots(1, 2), panels, strict=True):
        total = sum(count for _, count in bars)
        if not total:
            _empty(ax, "no failures")
            continue
        labels = [label for label, _ in bars]
        ax.bar(labels, [count for _, count in bars], color="tab:red", alpha=0.7)
        ax.set_ylabel("failures")
        ax.set_title(f"by {title}", fontsize="medium")
        ax.tick_params(axis="x", labelrotation=60, labelsize="small")
        share = ax.twinx()
        running, cumulative = 0, []
        for _, count in bars:
            running += count
            cumulative.append(100 * running / total)
        share.plot(labels, cumulative, color="black", marker="o", markersize=3)
        share.set_ylim(0, 105)
        share.set_ylabel("cumulative %")
        for (label, count), percent in zip(bars, cumulative, strict=True):
            rows.append((title, label, f"{count:,}", f"{percent:.1f} %"))
    figure.suptitle(f"Pareto of failures ({report.policy.label})", fontsize="medium")
    return Plot("pareto", "Pareto of failures by fault code and by subsystem", _svg(figure, "pareto"),
                ("by", "code or subsystem", "failures", "cumulative share"), tuple(rows))


def mtbf_plot(report: FleetReport, target: float | None = None) -> Plot:
    """MTBF per model on a log axis: point, two-sided interval, one-sided lower bound, target."""
    figure = _figure(9, 5)
    ax = figure.subplots()
    models = [m for m in (*report.models, report.total) if m.exposure_hours > 0]
    percent = f"{report.confidence:.0%}"
    rows = []
    if not models:
        _empty(ax, "no operating hours between archived records")
    for x, model in enumerate(models):
        estimate = model.mtbf
        top = estimate.ci_high if not math.isinf(estimate.ci_high) else 10 * estimate.ci_low
        ax.vlines(x, estimate.ci_low, top, color="tab:blue", linewidth=4, alpha=0.5)
        if math.isinf(estimate.ci_high):
            ax.plot(x, top, marker="^", color="tab:blue")
        ax.plot(x, estimate.lower_one_sided, marker="_", markersize=20, color="tab:red")
        if estimate.point is not None:
            ax.plot(x, estimate.point, marker="o", color="tab:blue")
        interval = f"[{_hours(estimate.ci_low)}, {_hours(estimate.ci_high)}]"
        rows.append((model.model, f"{estimate.failures:,}", _hours(estimate.hours), _hours(estimate.point),
                     interval, _hours(estimate.lower_one_sided)))
    if models:
        ax.set_yscale("log")
        ax.set_xticks(range(len(models)), [m.model for m in models])
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_ylabel("MTBF (operating hours)")
        ax.grid(True, which="both", axis="y", alpha=0.3)
        if target is not None:
            ax.axhline(target, color="tab:green", linestyle="--", label=f"target {target:,.0f} h")
            ax.legend(fontsize="small")
    ax.set_title(f"MTBF per model: point (dot), {percent} two-sided interval (bar), one-sided {percent} "
                 f"lower bound (red)\nfailures: {report.policy.label}", fontsize="medium")
    return Plot("mtbf", "MTBF per model", _svg(figure, "mtbf"),
                ("model", "failures", "exposure h", "MTBF h", f"{percent} interval h",
                 f"{percent} lower bound h"),
                tuple(rows))


def age_band_plot(result: Growth) -> Plot:
    """Failures per 1,000 operating hours by band of unit age, with the interval of each."""
    figure = _figure(9, 4.5)
    ax = figure.subplots()
    bands = [band for band in result.bands if band.exposure_hours > 0]
    percent = f"{result.confidence:.0%}"
    rows = []
    if not bands:
        _empty(ax, "no operating hours")
    for band in bands:
        rate = band.rate_per_1000h or 0.0
        low = 1000 / band.mtbf.ci_high if not math.isinf(band.mtbf.ci_high) else 0.0
        high = 1000 / band.mtbf.ci_low
        middle = (band.low + band.high) / 2
        ax.bar(middle, rate, width=0.9 * (band.high - band.low), color="tab:orange", alpha=0.6)
        ax.errorbar(middle, rate, yerr=[[rate - low], [high - rate]], color="black", capsize=4)
        rows.append((f"{band.low:,.0f}-{band.high:,.0f}", f"{band.failures:,}", _hours(band.exposure_hours),
                     f"{rate:.3f}", f"[{low:.3f}, {high:.3f}]"))
    if bands:
        ax.set_xlabel("unit age (operating hours)")
        ax.set_ylabel("failures per 1,000 h")
        ax.grid(True, axis="y", alpha=0.3)
    verdict = "" if result.trend is None else f"; trend: {result.trend.verdict}"
    ax.set_title(f"failure rate by unit age ({result.model}), {percent} intervals{verdict}",
                 fontsize="medium")
    return Plot("age-bands", "Failure rate by unit age", _svg(figure, "age-bands"),
                ("age h", "failures", "exposure h", "per 1,000 h", f"{percent} interval"), tuple(rows))


def availability_plot(report: FleetReport) -> Plot:
    """Availability per model: forced outages only, and with planned service."""
    figure = _figure(9, 4.5)
    ax = figure.subplots()
    models = [m for m in (*report.models, report.total) if m.availability is not None]
    rows = []
    if not models:
        _empty(ax, "no archived span")
    for x, model in enumerate(models):
        forced = 100 * (model.availability or 0.0)
        planned = 100 * (model.availability_with_planned or 0.0)
        ax.bar(x - 0.2, forced, width=0.4, color="tab:green", label="forced outages" if x == 0 else None)
        ax.bar(x + 0.2, planned, width=0.4, color="tab:olive",
               label="with planned service" if x == 0 else None)
        rows.append((model.model, f"{forced:.2f} %", f"{planned:.2f} %", _hours(model.downtime_s / 3600),
                     _hours(model.planned_s / 3600), _hours(model.span_s / 3600)))
    if models:
        lowest = min(100 * (m.availability_with_planned or 0.0) for m in models)
        ax.set_ylim(max(0.0, lowest - 2), 100)
        ax.set_xticks(range(len(models)), [m.model for m in models])
        ax.set_ylabel("availability (% of calendar time)")
        ax.legend(fontsize="small", loc="lower right")
        ax.grid(True, axis="y", alpha=0.3)
    ax.set_title("availability per model", fontsize="medium")
    return Plot("availability", "Availability", _svg(figure, "availability"),
                ("model", "forced", "with planned", "forced down h", "planned down h", "calendar h"),
                tuple(rows))

