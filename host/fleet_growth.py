"""Trend, growth and demonstration of a fleet table: what `turbolog fleet --growth` and
`--demonstrate` add, per model and for the fleet.

From the units of a :class:`host.analytics.FleetSummary` (their archived
stretch of life in operating hours, and their age at each failure under the
policy) it builds one :class:`host.growth.SystemHistory` per archived log
(epoch) and applies :mod:`host.growth`: the Crow-AMSAA fit with its interval
on beta, the Laplace and MIL-HDBK-189 trend tests and their verdict (all
against unit age, and again for the fleet as one system on its cumulative
operating hours, :func:`calendar_history`), the failure rate by band of unit
age, and the Weibull of the time to first failure of the units whose archive
starts at their commissioning (within their first operating hour), those
without a failure being suspensions.
:func:`demonstration` says whether a target MTBF is demonstrated at the
confidence asked for.  Pure: reads no archive, writes nothing.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .analytics import ModelSummary, UnitSummary
from .fleet_report import HoursTimeline, text_table
from .growth import (
    AgeBand,
    PowerLawFit,
    SystemHistory,
    TrendTest,
    WeibullFit,
    age_bands,
    crow_amsaa,
    hours_to_demonstrate,
    trend_test,
    weibull,
)

AGE_BAND_HOURS = 10_000.0
"""Width of the bands of unit age (operating hours)."""
EARLIEST_FAILURE_HOURS = 1 / 60
"""A failure before a unit's first minute of operation (its very first start failing) is taken at
one minute: the power law and the Weibull have no failure at age 0."""
FROM_COMMISSIONING_HOURS = 1.0
"""A unit's archive starts at its commissioning when its first record carrying counters shows
less than this many operating hours: its time to first failure is then known."""


def histories(units: Iterable[UnitSummary]) -> list[SystemHistory]:
    """One stretch per archived log of each unit that documents operating hours."""
    found = []
    for unit in units:
        for part in unit.parts or (unit,):
            if part.age_from is None or part.age_to is None or part.age_to <= part.age_from:
                continue
            ages = tuple(sorted(
                min(max(age, part.age_from, EARLIEST_FAILURE_HOURS), part.age_to) for age in part.failure_ages
            ))
            found.append(SystemHistory(part.age_from, part.age_to, ages))
    return found


def first_failures(units: Iterable[UnitSummary]) -> tuple[list[float], list[float], int]:
    """(ages at first failure, ages of suspension, units left out) over the units whose archive
    starts at their commissioning (their first log's first counters under
    :data:`FROM_COMMISSIONING_HOURS`)."""
    failed: list[float] = []
    suspended: list[float] = []
    left_out = 0
    for unit in units:
        first = (unit.parts or (unit,))[0]
        if first.age_from is None or first.age_to is None or first.age_to <= 0:
            continue
        if first.age_from >= FROM_COMMISSIONING_HOURS:
            left_out += 1
        elif first.failure_ages:
            failed.append(max(min(first.failure_ages), EARLIEST_FAILURE_HOURS))
        else:
            suspended.append(first.age_to)
    return failed, suspended, left_out


def calendar_history(
    times: Sequence[int], hours: Sequence[float], failure_times: Iterable[int]
) -> SystemHistory | None:
    """The fleet as one system on its cumulative operating hours: each failure at the hours the
    fleet had run by its time, the stretch ending at the hours by the last of *times*; *hours*
    are the fleet's cumulative hours at *times* (ascending)."""
    if not times or hours[-1] <= 0:
        return None
    ages = []
    for moment in sorted(failure_times):
        index = min(bisect_left(times, moment), len(times) - 1)
        ages.append(min(max(hours[index], EARLIEST_FAILURE_HOURS), hours[-1]))
    return SystemHistory(0.0, hours[-1], tuple(ages))


@dataclass(frozen=True, slots=True)
class Growth:
    """Trend and growth of one model (or the fleet, ``model`` "all")."""

    model: str
    confidence: float
    fit: PowerLawFit | None
    trend: TrendTest | None
    bands: tuple[AgeBand, ...]
    first_failure: WeibullFit | None
    first_failure_units: tuple[int, int, int]
    """(failed, suspended, left out because their archive starts after commissioning)."""
    fleet_fit: PowerLawFit | None = None
    """Crow-AMSAA of the fleet's cumulative failures against its cumulative operating hours
    (calendar order): reliability growth of the fleet as a whole."""
    fleet_trend: TrendTest | None = None
    fleet_history: SystemHistory | None = None
    """The fleet as one system: its cumulative hours at each failure, and in all."""

    def to_json(self) -> dict[str, Any]:
        fit, trend, life = self.fit, self.trend, self.first_failure
        return {
            "model": self.model,
            "confidence": self.confidence,
            "crow_amsaa_fleet_hours": _fit_json(self.fleet_fit),
            "trend_fleet_hours": _trend_json(self.fleet_trend),
            "crow_amsaa": None if fit is None else {
                "beta": round(fit.beta, 5),
                "beta_interval": [round(fit.beta_low, 5), _finite(fit.beta_high)],
                "beta_unbiased": round(fit.beta_unbiased, 5),
                "lambda": fit.lam,
                "interval_method": fit.interval,
                "truncation": fit.truncation,
                "failures": fit.failures,
                "units": fit.systems,
                "exposure_hours": round(fit.exposure_hours, 3),
            },
            "trend": None if trend is None else {
                "verdict": trend.verdict,
                "laplace_u": round(trend.laplace_u, 4),
                "laplace_p": round(trend.laplace_p, 6),
                "mil_hdbk_189_chi2": round(trend.chi2, 4),
                "mil_hdbk_189_dof": 2 * trend.events,
                "mil_hdbk_189_p": round(trend.chi2_p, 6),
                "failures": trend.events,
            },
            "age_bands": [
                {
                    "from_hours": band.low, "to_hours": band.high, "failures": band.failures,
                    "exposure_hours": round(band.exposure_hours, 3),
                    "failures_per_1000h": _rounded(band.rate_per_1000h, 5),
                    "mtbf_hours": None if band.mtbf.point is None else round(band.mtbf.point, 3),
                    "mtbf_ci": [round(band.mtbf.ci_low, 3), _finite(band.mtbf.ci_high)],
                }
                for band in self.bands
            ],
            "first_failure_weibull": None if life is None else {
                "shape": round(life.shape, 5),
                "shape_interval": [round(life.shape_low, 5), round(life.shape_high, 5)],
                "scale_hours": round(life.scale, 3),
                "scale_interval": [round(life.scale_low, 3), round(life.scale_high, 3)],
                "bounds": "Fisher matrix",
            },
            "first_failure_units": dict(zip(("failed", "suspended", "left_out"), self.first_failure_units,
                                            strict=True)),
        }


def _fit_json(fit: PowerLawFit | None) -> dict[str, Any] | None:
    if fit is None:
        return None
    return {
        "beta": round(fit.beta, 5),
        "beta_interval": [round(fit.beta_low, 5), _finite(fit.beta_high)],
        "lambda": fit.lam,
        "interval_method": fit.interval,
        "truncation": fit.truncation,
        "failures": fit.failures,
        "exposure_hours": round(fit.exposure_hours, 3),
    }


def _trend_json(trend: TrendTest | None) -> dict[str, Any] | None:
    if trend is None:
        return None
    return {"verdict": trend.verdict, "laplace_u": round(trend.laplace_u, 4),
            "laplace_p": round(trend.laplace_p, 6), "mil_hdbk_189_chi2": round(trend.chi2, 4),
            "mil_hdbk_189_p": round(trend.chi2_p, 6)}


def _finite(value: float) -> float | None:
    return None if math.isinf(value) else round(value, 5)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _hours_text(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:,.0f}"


def growth(
    model: str, units: Sequence[UnitSummary], confidence: float, fleet: SystemHistory | None = None
) -> Growth:
    """Trend and growth of *units* (module docstring); *fleet*: the same units as one system on
    their cumulative operating hours (:func:`calendar_history`)."""
    stretches = histories(units)
    failed, suspended, left_out = first_failures(units)
    return Growth(
        model=model,
        confidence=confidence,
        fit=crow_amsaa(stretches, confidence),
        trend=trend_test(stretches, confidence),
        bands=tuple(age_bands(stretches, AGE_BAND_HOURS, confidence)) if stretches else (),
        first_failure=weibull(failed, suspended, confidence) if failed else None,
        first_failure_units=(len(failed), len(suspended), left_out),
        fleet_fit=None if fleet is None else crow_amsaa([fleet], confidence),
        fleet_trend=None if fleet is None else trend_test([fleet], confidence),
        fleet_history=fleet,
    )


def fleet_growth(
    units: Sequence[UnitSummary], confidence: float, timeline: HoursTimeline | None = None
) -> list[Growth]:
    """Per model (by name), then the fleet; *timeline*: each model's cumulative operating hours
    at the failures' times and at the end (:func:`host.fleet_report.exposure_at`), for the
    Crow-AMSAA of the fleet on its cumulative hours."""
    by_model: dict[str, list[UnitSummary]] = defaultdict(list)
    for unit in units:
        by_model[unit.model].append(unit)

    def as_one(model: str, members: Sequence[UnitSummary]) -> SystemHistory | None:
        if timeline is None or not timeline.times:
            return None
        series = timeline.hours.get(model) if model != "all" else tuple(
            sum(values) for values in zip(*timeline.hours.values(), strict=True)
        )
        if not series:
            return None
        return calendar_history(timeline.times, series, (t for unit in members for t in _times(unit)))

    return [*(growth(model, by_model[model], confidence, as_one(model, by_model[model]))
              for model in sorted(by_model)),
            growth("all", units, confidence, as_one("all", units))]


def _times(unit: UnitSummary) -> tuple[int, ...]:
    return tuple(t for part in unit.parts or (unit,) for t in part.failure_times)


def failure_instants(units: Iterable[UnitSummary]) -> list[int]:
    """Every failure's time, and the last record's, ascending: where :func:`fleet_growth` needs
    the fleet's cumulative hours."""
    instants = {t for unit in units for t in _times(unit)}
    instants.update(unit.last_record for unit in units if unit.last_record is not None)
    return sorted(instants)


def fit_cells(fit: PowerLawFit | None) -> tuple[str, str, str]:
    """A Crow-AMSAA fit's beta, its interval and lambda as table cells ("-" with no fit): one
    spelling for the text tables, the report and the plots' number tables."""
    if fit is None:
        return ("-", "-", "-")
    return (f"{fit.beta:.3f}", f"[{fit.beta_low:.3f}, {fit.beta_high:.3f}]", f"{fit.lam:.4g}")


def trend_cells(trend: TrendTest | None) -> tuple[str, str]:
    """A trend test's Laplace U and its p as table cells ("-" with too few failures)."""
    return ("-", "-") if trend is None else (f"{trend.laplace_u:+.2f}", f"{trend.laplace_p:.3f}")


def verdict_cell(trend: TrendTest | None) -> str:
    """A trend test's verdict as a table cell."""
    return "too few failures" if trend is None else trend.verdict


def growth_text(results: Sequence[Growth]) -> str:
    """The Crow-AMSAA fits, trend verdicts, age bands and first-failure Weibulls as tables."""
    if not results:
        return "trend and growth: no unit selected"
    percent = f"{results[0].confidence:.0%}"
    lines = [
        "trend and growth against unit age (operating hours): Crow-AMSAA beta < 1 the failure rate falls "
        "with age, = 1 steady, > 1 it rises",
    ]
    rows = [["model", "failures", "units", "beta", f"{percent} interval", "lambda", "Laplace U", "p",
             "MIL-HDBK-189 chi2", "p", "verdict"]]
    for result in results:
        fit, trend = result.fit, result.trend
        rows.append([
            result.model,
            "-" if fit is None else f"{fit.failures:,}",
            "-" if fit is None else f"{fit.systems:,}",
            *fit_cells(fit),
            *trend_cells(trend),
            "-" if trend is None else f"{trend.chi2:,.1f} ({2 * trend.events} dof)",
            "-" if trend is None else f"{trend.chi2_p:.3f}",
            verdict_cell(trend),
        ])
    lines += text_table(rows)
    lines += ["", "growth of the fleet: Crow-AMSAA of cumulative failures against cumulative operating hours "
              "(calendar order; beta < 1 the fleet's failure rate falls as it accumulates hours)"]
    rows = [["model", "failures", "hours", "beta", f"{percent} interval", "lambda", "Laplace U", "p",
             "verdict"]]
    for result in results:
        fit, trend = result.fleet_fit, result.fleet_trend
        rows.append([
            result.model,
            "-" if fit is None else f"{fit.failures:,}",
            "-" if fit is None else f"{fit.exposure_hours:,.0f}",
            *fit_cells(fit),
            *trend_cells(trend),
            verdict_cell(trend),
        ])
    lines += text_table(rows)
    total = results[-1]
    lines += ["", f"failure rate by unit age, {total.model} (bands of {AGE_BAND_HOURS:,.0f} operating hours)"]
    rows = [["age h", "failures", "exposure h", "per 1,000 h", "MTBF h", f"{percent} interval h"]]
    for band in total.bands:
        rows.append([
            f"{band.low:,.0f}-{band.high:,.0f}", f"{band.failures:,}", f"{band.exposure_hours:,.0f}",
            "-" if band.rate_per_1000h is None else f"{band.rate_per_1000h:.3f}",
            "-" if band.mtbf.point is None else f"{band.mtbf.point:,.0f}",
            f"[{band.mtbf.ci_low:,.0f}, {_hours_text(band.mtbf.ci_high)}]",
        ])
    lines += text_table(rows) if len(rows) > 1 else ["  no operating hours"]
    lines += ["", "time to first failure, Weibull with suspensions (units archived from commissioning)"]
    rows = [["model", "failed", "suspended", "left out", "shape", f"{percent} interval", "scale h",
             f"{percent} interval h"]]
    for result in results:
        life = result.first_failure
        failed, suspended, left_out = result.first_failure_units
        rows.append([
            result.model, f"{failed:,}", f"{suspended:,}", f"{left_out:,}",
            "-" if life is None else f"{life.shape:.3f}",
            "-" if life is None else f"[{life.shape_low:.3f}, {life.shape_high:.3f}]",
            "-" if life is None else f"{life.scale:,.0f}",
            "-" if life is None else f"[{life.scale_low:,.0f}, {life.scale_high:,.0f}]",
        ])
    lines += text_table(rows)
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Demonstration:
    """Whether the pooled units demonstrate MTBF >= *target* at *confidence*."""

    target: float
    confidence: float
    hours: float
    failures: int
    lower_bound: float
    demonstrated: bool
    hours_needed: float
    """Further operating hours, with no further failure, that would demonstrate it (0 if it is)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "target_hours": self.target,
            "confidence": self.confidence,
            "exposure_hours": round(self.hours, 3),
            "failures": self.failures,
            "mtbf_lower": round(self.lower_bound, 3),
            "demonstrated": self.demonstrated,
            "hours_needed_at_zero_failures": round(self.hours_needed, 3),
        }

    def to_text(self, label: str) -> str:
        verdict = (
            f"demonstrated: the one-sided {self.confidence:.0%} lower bound is {self.lower_bound:,.0f} h"
            if self.demonstrated else
            f"NOT demonstrated: the one-sided {self.confidence:.0%} lower bound is "
            f"{self.lower_bound:,.0f} h; "
            f"{self.hours_needed:,.0f} more operating hours without a failure would demonstrate it"
        )
        return (f"MTBF >= {self.target:,.0f} h for {label} ({self.failures:,} failures in "
                f"{self.hours:,.0f} h): {verdict}")


def demonstration(summary: ModelSummary, target: float) -> Demonstration:
    """The demonstration test of *summary*'s MTBF (its hours, failures and confidence) against *target*."""
    estimate = summary.mtbf
    return Demonstration(
        target=target,
        confidence=estimate.confidence,
        hours=estimate.hours,
        failures=estimate.failures,
        lower_bound=estimate.lower_one_sided,
        demonstrated=estimate.lower_one_sided >= target,
        hours_needed=hours_to_demonstrate(target, estimate.hours, estimate.failures, estimate.confidence),
    )
