"""`turbolog report`: one self-contained HTML file an engineer can mail, for the fleet or one unit.

The fleet report holds the fleet table (every model and the fleet, with the
policy, the confidence and the hours basis it was computed with), the
definitions used, the demonstration test when a target is given, the trend and
growth tables, and every plot of :mod:`host.fleet_plots` inline as SVG, each
followed by the numbers it draws.  The unit report holds the unit's summary
(:func:`host.analytics.unit_summary`), its failures by code and the unit plot
(:mod:`host.plot`) inline as SVG.

Self-contained: no script, no stylesheet, image or font fetched from anywhere
(styles are inline, text in the SVG is drawn as paths); every value from the
archive is HTML-escaped.  Builds text; the caller writes it
(:func:`host.output_file.output_file`).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from .analytics import UnitSummary
from .fleet_growth import Demonstration, Growth, fit_cells, trend_cells, verdict_cell
from .fleet_plots import Plot
from .fleet_report import FleetReport

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f2f2f2; }
.meta td, .meta th { text-align: left; }
figure { margin: 1em 0; } figure svg { width: 100%; height: auto; }
figcaption { font-weight: bold; margin: 0.4em 0; }
dt { font-weight: bold; margin-top: 0.6em; } dd { margin-left: 1.5em; }
.verdict { font-weight: bold; }
"""


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(columns: Sequence[str], rows: Sequence[Sequence[object]], css: str = "") -> str:
    head = "".join(f"<th>{_escape(column)}</th>" for column in columns) if any(columns) else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{_escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    opening = f'<table class="{css}">' if css else "<table>"
    header = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"{opening}{header}<tbody>{body}</tbody></table>"


def _page(title: str, sections: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{_escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h1>{_escape(title)}</h1>\n" + "\n".join(sections)
        + "\n</body></html>\n"
    )


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    return "unbounded" if math.isinf(value) else f"{value:,.0f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def definitions(policy_label: str, policy_definition: str, confidence: float, basis: str) -> str:
    """The definitions a reader needs to check every number, as an HTML definition list."""
    c = f"{confidence:.0%}"
    entries = [
        ("failure", f"policy {policy_label}: {policy_definition}"),
        ("exposure", "operating hours between the earliest and the latest archived records carrying the "
         "lifetime counters: the hours in which the archived failures could have happened"),
        ("coverage", "exposure / lifetime operating hours: below 100 % when a unit overwrote older "
         "records before they were read"),
        ("MTBF", ("over the devices' lifetime counters (operating hours / trips)" if basis == "lifetime"
                  else "exposure / failures") + "; failures taken as a Poisson process on operating hours"),
        (f"{c} bounds", "two-sided interval [2T / chi2(1 - a/2; 2r+2), 2T / chi2(a/2; 2r)] and one-sided "
         f"lower bound 2T / chi2(1 - a; 2r+2), a = 1 - {confidence:g}, T hours, r failures "
         "(time-terminated)"),
        ("availability", "share of the archived calendar span not down for a trip (forced); with planned "
         "service down time too"),
        ("fleet growth", "Crow-AMSAA of the fleet's cumulative failures against its cumulative operating "
         "hours, in calendar order (each failure at the hours every selected unit had run by then, "
         "interpolated between samples); one system, time-truncated: exact chi-square interval on beta"),
        ("Crow-AMSAA", "power-law NHPP in unit age t: expected failures of a unit by age t are "
         "lambda t^beta; maximum likelihood over every unit's archived stretch of age "
         "(MIL-HDBK-189C, IEC 61710); beta < 1 the failure rate falls with age, > 1 it rises; "
         "interval on beta exact (chi-square) when every stretch starts at age 0, else profile likelihood"),
        ("trend verdict", f"Laplace's test of a constant rate in unit age, two-sided at {c}: improving "
         "(rate falls), steady, or wearing out (rate rises); MIL-HDBK-189's chi-square beside it"),
        ("time to first failure", "Weibull by maximum likelihood over the units archived from commissioning, "
         "units without a failure being suspensions; Fisher-matrix bounds"),
    ]
    items = "".join(f"<dt>{_escape(term)}</dt><dd>{_escape(text)}</dd>" for term, text in entries)
    return f"<h2>Definitions</h2><dl>{items}</dl>"


def _figure(plot: Plot) -> str:
    return (
        f'<section id="{_escape(plot.name)}"><h2>{_escape(plot.title)}</h2>'
        f'<figure class="plot">{plot.svg}<figcaption>{_escape(plot.title)}</figcaption></figure>'
        f"<p>The numbers behind the plot:</p>{_table(plot.columns, plot.rows)}</section>"
    )


def fleet_html(
    report: FleetReport, growth: list[Growth], plots: list[Plot], proof: Demonstration | None,
    archive_name: str,
) -> str:
    """The fleet report (module docstring)."""
    percent = f"{report.confidence:.0%}"
    meta = _table(("", ""), [
        ("archive", archive_name),
        ("records", f"{report.to_json()['first_record'] or '-'} to {report.to_json()['as_of'] or '-'}"),
        ("selection", report.selection.describe()),
        ("failures", f"{report.policy.label}: {report.policy.definition}"),
        ("MTBF over", "the devices' lifetime counters" if report.basis == "lifetime"
         else "the operating hours the archive covers (exposure)"),
        ("confidence", f"{percent} for every bound"),
        ("exposure", f"{report.total.exposure_hours:,.0f} operating hours, "
         f"{report.total.failures:,} failures"),
    ], "meta")
    rows = []
    for model in (*report.models, report.total):
        estimate = model.mtbf
        rows.append((
            model.model, f"{model.units:,}", f"{model.operating_hours:,.0f}", f"{model.exposure_hours:,.0f}",
            _percent(model.coverage), f"{model.failures:,}", _hours(estimate.point),
            f"[{_hours(estimate.ci_low)}, {_hours(estimate.ci_high)}]", _hours(estimate.lower_one_sided),
            f"{1000 * model.failures / model.exposure_starts:.2f}" if model.exposure_starts else "-",
            _percent(model.availability), _percent(model.availability_with_planned),
        ))
    table = _table(
        ("model", "units", "operating h", "exposure h", "coverage", "failures", "MTBF h",
         f"{percent} interval h", f"MTBF > ({percent}) h", "per 1,000 starts", "availability",
         "with planned"), rows,
    ) if report.units else "<p>No unit matches the selection: the table is empty.</p>"
    sections = [meta, "<h2>Fleet table</h2>" + table,
                definitions(report.policy.label, report.policy.definition, report.confidence, report.basis)]
    if proof is not None:
        sections.append(
            "<h2>Demonstration</h2>"
            f'<p class="verdict">{_escape(proof.to_text(report.selection.describe()))}</p>'
        )
    sections.append("<h2>Trend and growth</h2><p>Against unit age:</p>" + _table(
        ("model", "failures", "beta", f"{percent} interval", "lambda", "Laplace U", "p", "verdict",
         "first failure: Weibull shape", "scale h"),
        [_growth_row(result) for result in growth],
    ) + "<p>The fleet on its cumulative operating hours (calendar order):</p>" + _table(
        ("model", "failures", "hours", "beta", f"{percent} interval", "verdict"),
        [_fleet_row(result) for result in growth],
    ))
    sections += [_figure(plot) for plot in plots]
    return _page("Fleet reliability report", sections)


def _fleet_row(result: Growth) -> tuple[str, ...]:
    fit, trend = result.fleet_fit, result.fleet_trend
    if fit is None:
        return (result.model, "-", "-", "-", "-", "too few failures")
    beta, interval, _ = fit_cells(fit)
    return (result.model, f"{fit.failures:,}", f"{fit.exposure_hours:,.0f}", beta, interval,
            "-" if trend is None else trend.verdict)


def _growth_row(result: Growth) -> tuple[str, ...]:
    fit, trend, life = result.fit, result.trend, result.first_failure
    return (
        result.model,
        "-" if fit is None else f"{fit.failures:,}",
        *fit_cells(fit),
        *trend_cells(trend),
        verdict_cell(trend),
        "-" if life is None else f"{life.shape:.3f} [{life.shape_low:.3f}, {life.shape_high:.3f}]",
        "-" if life is None else f"{life.scale:,.0f}",
    )


def unit_html(summary: UnitSummary, plot_svg: str | None, archive_name: str) -> str:
    """The report of one unit: its summary, failures by code, and its plot (module docstring)."""
    doc: dict[str, Any] = summary.to_json()
    percent = f"{summary.mtbf.confidence:.0%}"
    low, high = doc["mtbf_ci"]
    facts = [
        ("archive", archive_name),
        ("model, firmware", f"{summary.model}, {summary.firmware}"),
        ("records", f"{summary.records:,} ({doc['first_record'] or '-'} to {doc['last_record'] or '-'})"),
        ("operating hours",
         f"{summary.counters.operating_hours:,.1f} (lifetime, from the {summary.counters_from})"),
        ("exposure", f"{summary.exposure_hours:,.1f} h ({_percent(summary.coverage)} of the lifetime hours)"),
        ("starts", f"{summary.counters.starts:,}"),
        ("failures", f"{summary.failures:,} ({summary.policy.label})"),
        ("MTBF", f"{_hours(doc['mtbf_hours'])} h, {percent} interval {_hours(low)} .. "
         f"{_hours(math.inf if high is None else high)} h, one-sided {percent} lower bound "
         f"{_hours(doc['mtbf_lower'])} h"),
        ("availability", f"{_percent(summary.availability)} (forced); "
         f"{_percent(summary.availability_with_planned)} with planned service"),
        ("confidence", f"{percent} for every bound"),
    ]
    by_code = doc["breakdown"]["by_code"]
    sections = [
        _table(("", ""), facts, "meta"),
        definitions(summary.policy.label, summary.policy.definition, summary.mtbf.confidence, summary.basis),
        "<h2>Failures by code</h2>" + (_table(
            ("code", "name", "failures", "share"),
            [(entry["code"], entry["name"] or "(unknown code)", entry["failures"], _percent(entry["share"]))
             for entry in by_code],
        ) if by_code else "<p>No failure under this policy.</p>"),
    ]
    if plot_svg is not None:
        sections.append(
            '<section id="unit-plot"><h2>Power, speed, exhaust and ambient temperature over time</h2>'
            f'<figure class="plot">{plot_svg}<figcaption>{_escape(summary.serial)}: samples (mean, with '
            "the min/max envelope of each bucket), failures as solid lines labelled with their code, "
            "warnings dotted</figcaption></figure></section>"
        )
    return _page(f"Unit report: {summary.serial}", sections)
