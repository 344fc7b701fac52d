"""What the archive says about each unit, each model and the fleet.

Reads the archive through key lookups (a fleet of 4,000 units answers in
about a second whatever the size of the logs) and applies
:mod:`host.reliability`.  Every figure comes from rows checked against their
own CRC-32C, and the archive's count check (:meth:`~host.archive.Archive.check`)
vouches that no row is missing: a row altered or deleted outside turbolog is
an :class:`~host.errors.ArchiveError`, never a figure.  It never writes the
archive and never talks to a device.  Definitions, per unit:

- **counters** (operating hours, starts, kWh exported, trips): those of the
  unit's latest record that carries them (a sample, or a fault's
  freeze-frame); the unit's last IDENTIFY when no such record is archived.
  The IDENTIFY counters are reported beside, and ``counters_consistent`` says
  whether they are at or above the records' (counters never go backwards, so
  anything else means a reset or another controller under the same serial).
- **failures**: archived faults that the failure policy counts
  (:mod:`host.failures`; by default ``trips``, every fault of severity
  NORMAL_SHUTDOWN or above, :attr:`protocol.enums.Severity.is_failure`).
- **exposure**: operating hours between the earliest and the latest archived
  records that carry counters: the hours in which the archived failures could
  have happened.  It is the unit's whole life when the archive holds its log
  from the start; records missing inside that span bias MTBF upward.
- **coverage**: exposure / the lifetime operating hours of the counters: the
  share of the unit's life the archive covers.
- **MTBF**: exposure / failures (hours basis ``archive``, the default), with the
  90 % two-sided interval and the 90 % one-sided lower bound of
  :func:`host.reliability.mtbf`.  With hours basis ``lifetime`` (only with the
  ``trips`` policy: the device counts nothing else) it is the counters'
  operating hours / their trips instead, and says so (``mtbf_from``).
- **breakdowns**: failures per fault code and per subsystem (Pareto order: most
  first), each with its MTBF over the same exposure; failures per 1,000 starts,
  over the starts the archive covers (between the same records as exposure).
- **planned down time**: the durations of the EVENT SERVICE records (logged
  when a planned service or overhaul ends, its downtime in ``value_b``), clipped
  to the archived span.  ``availability`` counts forced down time only (below);
  ``availability_with_planned`` counts both.
- **availability**: the fraction of the archived calendar span (first to last
  record timestamp) the unit was *not down for a fault*.  Down time starts at
  a trip (whatever the failure policy: every trip stops the unit) and ends
  when the unit can run again: at the next START event (a unit cannot start
  while locked out), or once every trip raised since has been cleared (EVENT
  FAULT_CLEARED naming its code: a warning's clear does not count) and the unit
  is at rest in STAND_BY (its state at the fault, then each EVENT
  STATE_CHANGE's), whichever comes first; at the end of the span if
  neither came.  None when the span is empty.

A serial number with several archived logs (epochs, :mod:`host.archive`) is
summarised per epoch as above, then the epochs are added up like this: records,
faults, failures, exposure, down time and spans are summed; the counters are
summed too, less, for an epoch that continues the one before (a cleared log on
the same controller, whose counters carry on), the counters that epoch started
from, so that no hour is counted twice.  ``counters_consistent`` holds when it
holds for every epoch.

**Ages** (for trend and growth, :mod:`host.fleet_growth`): the unit's lifetime operating
hours at the first and the last record carrying counters (the stretch of its life exposure
covers), and at each failure under the policy (its fault's freeze-frame).

A :class:`~host.selection.Selection` keeps units by model, site, duty and commissioning year,
and of each only the records timestamped in its window (found by bisection on the keys, since
timestamps never go backwards along seqs): every figure above is then that of the window's
records, and a log with no record in the window counts for nothing (not its IDENTIFY counters).
The bounds are at the confidence asked for (:data:`CONFIDENCE` by default).

Models and the fleet add these up: hours, starts, energy, failures, exposure
and down time are summed, and MTBF and availability are computed from the
sums (pooled, not averaged over units).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

from protocol.counters import LifetimeCounters, counters_of_row
from protocol.enums import (
    EngineState,
    EventFlag,
    EventKind,
    RecordType,
    RunupChannel,
    Severity,
    Subsystem,
    name_of,
)
from protocol.errors import RecordError
from protocol.fault_codes import lookup
from protocol.records import (
    LAYOUTS,
    RUNUP_CHANNELS,
    DecodedRow,
    FaultRecord,
    RunupRecord,
    decode_record,
    record_from_row,
)

from .archive import Archive
from .errors import ArchiveError, UsageError
from .failures import TRIPS, FailurePolicy
from .fields import snapshot_fields
from .reliability import MtbfEstimate, availability, mtbf
from .selection import ALL, Selection, unit_profiles

CONFIDENCE = 0.90
"""Confidence of the MTBF bounds unless another is asked for."""

_FAILURE = int(Severity.NORMAL_SHUTDOWN)
_START, _STATE_CHANGE = int(EventKind.START), int(EventKind.STATE_CHANGE)
_CLEARED, _SERVICE = int(EventKind.FAULT_CLEARED), int(EventKind.SERVICE)
_AT_REST = int(EngineState.STAND_BY)


def _iso(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


def _hours(value: float) -> float:
    return round(value, 3)


def _counters_json(counters: LifetimeCounters) -> dict[str, Any]:
    return {
        "operating_hours": _hours(counters.operating_hours),
        "starts": counters.starts,
        "energy_kwh": counters.kwh,
        "trips": counters.trips,
    }


BASES = ("archive", "lifetime")
"""Hours (and failures) MTBF is computed over: the archive's exposure and the policy's failures,
or the device's lifetime counters (operating hours, trips)."""


def check_basis(basis: str, policy: FailurePolicy) -> None:
    """UsageError unless MTBF can be computed over *basis* under *policy*."""
    if basis not in BASES:
        raise UsageError(f"--hours: {basis!r} is neither archive nor lifetime")
    if basis == "lifetime" and policy.name != "trips":
        raise UsageError(
            f"--hours lifetime counts the device's trips counter: it cannot apply the {policy.label} "
            "policy (use --hours archive)"
        )


def _estimate(
    basis: str, exposure: float, failures: int, counters: LifetimeCounters, confidence: float = CONFIDENCE
) -> MtbfEstimate:
    if basis == "lifetime":
        return mtbf(counters.operating_hours, counters.trips, confidence)
    return mtbf(exposure, failures, confidence)


def _coverage(exposure: float, lifetime: float) -> float | None:
    return round(min(exposure / lifetime, 1.0), 4) if lifetime > 0 else None


def _mtbf_json(estimate: MtbfEstimate, basis: str = "archive") -> dict[str, Any]:
    def finite(value: float | None) -> float | None:
        return None if value is None or value == float("inf") else _hours(value)

    return {
        "mtbf_from": {
            "basis": basis,
            "hours": _hours(estimate.hours),
            "failures": estimate.failures,
            "source": "lifetime counters (operating hours, trips)" if basis == "lifetime"
            else "archived records (exposure, failures under the policy)",
        },
        "mtbf_hours": finite(estimate.point),
        "confidence": estimate.confidence,
        "mtbf_lower": finite(estimate.lower_one_sided),
        "mtbf_ci": [finite(estimate.ci_low), finite(estimate.ci_high)],
        **_at_ninety(estimate, finite),
    }


def _at_ninety(estimate: MtbfEstimate, finite: Callable[[float | None], float | None]) -> dict[str, Any]:
    """``mtbf_lower90`` and ``mtbf_ci90``: the bounds at 90 % whatever the confidence asked for."""
    if estimate.confidence != CONFIDENCE:
        estimate = mtbf(estimate.hours, estimate.failures, CONFIDENCE)
    return {
        "mtbf_lower90": finite(estimate.lower_one_sided),
        "mtbf_ci90": [finite(estimate.ci_low), finite(estimate.ci_high)],
    }


def _severity_json(counts: dict[int, int]) -> dict[str, int]:
    return {name_of(Severity, level): counts[level] for level in sorted(counts)}


class _Availability:
    """Availability of a span, forced down time alone and with planned (service) down time:
    what a unit and a model summary both show."""

    __slots__ = ()
    span_s: int
    downtime_s: int
    planned_s: int

    @property
    def availability(self) -> float | None:
        return availability(self.span_s, self.downtime_s) if self.span_s > 0 else None

    @property
    def availability_with_planned(self) -> float | None:
        return _with_planned(self.span_s, self.downtime_s, self.planned_s)


@dataclass(frozen=True, slots=True)
class UnitSummary(_Availability):
    """One unit, as its archived records describe it (definitions in the module docstring)."""

    serial: str
    model: str
    firmware: str
    records: int
    evicted: int
    first_record: int | None
    last_record: int | None
    counters: LifetimeCounters
    counters_from: str
    """"records" or "identify"."""
    identify: LifetimeCounters
    faults_by_severity: dict[int, int]
    faults_by_code: dict[int, int]
    failures: int
    exposure_hours: float
    mtbf: MtbfEstimate
    downtime_s: int
    span_s: int
    epoch: int | None = None
    """The archived log (epoch) summarised; None when every epoch of the serial is."""
    log_id: bytes | None = None
    continues: bool = False
    """Whether this epoch's counters carry on from the epoch before."""
    parts: tuple[UnitSummary, ...] = ()
    """The epochs added up here (empty for one epoch)."""
    policy: FailurePolicy = TRIPS
    basis: str = "archive"
    failures_by_code: dict[int, int] = field(default_factory=dict)
    """Failures (under the policy) per fault code."""
    failures_by_subsystem: dict[int, int] = field(default_factory=dict)
    exposure_starts: int = 0
    """Starts between the records exposure is measured between."""
    planned_s: int = 0
    """Planned (service) down time within the span."""
    age_from: float | None = None
    age_to: float | None = None
    """The unit's age (lifetime operating hours) at the first and the last archived record
    carrying counters: the stretch exposure covers (one epoch; None for several)."""
    failure_ages: tuple[float, ...] = ()
    """The unit's age at each failure under the policy, from the fault's freeze-frame."""
    failure_times: tuple[int, ...] = ()
    """When each of those failures happened (device time, Unix s)."""

    @property
    def coverage(self) -> float | None:
        """The share of the unit's lifetime operating hours the archive covers."""
        return _coverage(self.exposure_hours, self.counters.operating_hours)

    @property
    def counters_consistent(self) -> bool:
        if self.parts:
            return all(part.counters_consistent for part in self.parts)
        return self.identify.dominates(self.counters)

    def epoch_json(self) -> dict[str, Any]:
        """This epoch in a few keys, for the list of epochs of a serial."""
        return {
            "epoch": self.epoch,
            "log_id": None if self.log_id is None else self.log_id.hex(),
            "continues": self.continues,
            "records": self.records,
            "first_record": _iso(self.first_record),
            "last_record": _iso(self.last_record),
            **_counters_json(self.counters),
            "counters_consistent": self.counters_consistent,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "epochs": [part.epoch_json() for part in self.parts or (self,)],
            "model": self.model,
            "firmware": self.firmware,
            "records": self.records,
            "evicted": self.evicted,
            "first_record": _iso(self.first_record),
            "last_record": _iso(self.last_record),
            **_counters_json(self.counters),
            "counters_from": self.counters_from,
            "identify": _counters_json(self.identify),
            "counters_consistent": self.counters_consistent,
            "faults_by_severity": _severity_json(self.faults_by_severity),
            "faults_by_code": {str(code): self.faults_by_code[code] for code in sorted(self.faults_by_code)},
            "failures_policy": self.policy.to_json(),
            "failures": self.failures,
            "failures_by_code": _by_code_json(self.failures_by_code),
            "exposure_hours": _hours(self.exposure_hours),
            "coverage": self.coverage,
            **_mtbf_json(self.mtbf, self.basis),
            "downtime_hours": _hours(self.downtime_s / 3600),
            "planned_downtime_hours": _hours(self.planned_s / 3600),
            "availability": self.availability,
            "availability_with_planned": self.availability_with_planned,
            "breakdown": breakdown_json(
                self.failures_by_code, self.failures_by_subsystem, self.exposure_hours, self.exposure_starts,
                self.mtbf.confidence,
            ),
        }


def _with_planned(span_s: int, forced_s: int, planned_s: int) -> float | None:
    return availability(span_s, min(forced_s + planned_s, span_s)) if span_s > 0 else None


def _pareto(counts: dict[int, int]) -> list[tuple[int, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def breakdown_json(
    failures_by_code: dict[int, int], failures_by_subsystem: dict[int, int], exposure: float, starts: int,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    """Failures per code and per subsystem (Pareto order) with their MTBF over *exposure*, and
    failures per 1,000 of the *starts* in it."""
    total = sum(failures_by_code.values())

    def row(count: int) -> dict[str, Any]:
        return {
            "failures": count,
            "share": round(count / total, 4) if total else None,
            **_mtbf_json(mtbf(exposure, count, confidence)),
        }

    return {
        "exposure_hours": _hours(exposure),
        "exposure_starts": starts,
        "failures_per_1000_starts": round(1000 * total / starts, 3) if starts else None,
        "by_code": [
            {"code": code, "name": definition.name if (definition := lookup(code)) else None, **row(count)}
            for code, count in _pareto(failures_by_code)
        ],
        "by_subsystem": [
            {"subsystem": name_of(Subsystem, subsystem), **row(count)}
            for subsystem, count in _pareto(failures_by_subsystem)
        ],
    }


def _by_code_json(counts: dict[int, int]) -> dict[str, int]:
    """Counts per code, most first (Pareto order), then by code."""
    return {str(code): count for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))}


@dataclass(frozen=True, slots=True)
class ModelSummary(_Availability):
    """Units of one model added up (``model`` is "all" for the whole fleet)."""

    model: str
    units: int
    operating_hours: float
    starts: int
    kwh: float
    trips: int
    records: int
    faults_by_severity: dict[int, int]
    failures: int
    exposure_hours: float
    mtbf: MtbfEstimate
    downtime_s: int
    span_s: int
    policy: FailurePolicy = TRIPS
    basis: str = "archive"
    failures_by_code: dict[int, int] = field(default_factory=dict)
    failures_by_subsystem: dict[int, int] = field(default_factory=dict)
    exposure_starts: int = 0
    planned_s: int = 0

    @classmethod
    def pool(
        cls, model: str, units: Iterable[UnitSummary], policy: FailurePolicy = TRIPS, basis: str = "archive",
        confidence: float = CONFIDENCE,
    ) -> ModelSummary:
        members = list(units)
        severity: dict[int, int] = defaultdict(int)
        by_code: dict[int, int] = defaultdict(int)
        by_subsystem: dict[int, int] = defaultdict(int)
        for unit in members:
            for level, count in unit.faults_by_severity.items():
                severity[level] += count
            for code, count in unit.failures_by_code.items():
                by_code[code] += count
            for subsystem, count in unit.failures_by_subsystem.items():
                by_subsystem[subsystem] += count
        exposure = sum(unit.exposure_hours for unit in members)
        failures = sum(unit.failures for unit in members)
        lifetime = LifetimeCounters(
            sum(unit.counters.operating_s for unit in members),
            sum(unit.counters.starts for unit in members),
            sum(unit.counters.trips for unit in members),
            sum(unit.counters.energy_wh for unit in members),
        )
        return cls(
            model=model,
            units=len(members),
            operating_hours=lifetime.operating_hours,
            starts=lifetime.starts,
            kwh=lifetime.kwh,
            trips=lifetime.trips,
            records=sum(unit.records for unit in members),
            faults_by_severity=dict(severity),
            failures=failures,
            exposure_hours=exposure,
            mtbf=_estimate(basis, exposure, failures, lifetime, confidence),
            downtime_s=sum(unit.downtime_s for unit in members),
            span_s=sum(unit.span_s for unit in members),
            policy=policy,
            basis=basis,
            failures_by_code=dict(by_code),
            failures_by_subsystem=dict(by_subsystem),
            exposure_starts=sum(unit.exposure_starts for unit in members),
            planned_s=sum(unit.planned_s for unit in members),
        )

    @property
    def coverage(self) -> float | None:
        """The share of the units' lifetime operating hours the archive covers."""
        return _coverage(self.exposure_hours, self.operating_hours)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "units": self.units,
            "operating_hours": _hours(self.operating_hours),
            "starts": self.starts,
            "energy_kwh": self.kwh,
            "trips": self.trips,
            "records": self.records,
            "faults_by_severity": _severity_json(self.faults_by_severity),
            "failures_policy": self.policy.to_json(),
            "failures": self.failures,
            "failures_by_code": _by_code_json(self.failures_by_code),
            "exposure_hours": _hours(self.exposure_hours),
            "coverage": self.coverage,
            **_mtbf_json(self.mtbf, self.basis),
            "downtime_hours": _hours(self.downtime_s / 3600),
            "planned_downtime_hours": _hours(self.planned_s / 3600),
            "availability": self.availability,
            "availability_with_planned": self.availability_with_planned,
            "breakdown": breakdown_json(
                self.failures_by_code, self.failures_by_subsystem, self.exposure_hours, self.exposure_starts,
                self.mtbf.confidence,
            ),
        }


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """Every unit, every model, and the fleet as a whole."""

    total: ModelSummary
    models: tuple[ModelSummary, ...]
    units: tuple[UnitSummary, ...] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total.to_json(),
            "models": [model.to_json() for model in self.models],
            "units": [unit.to_json() for unit in self.units],
        }


def unit_summary(
    archive: Archive, serial: str, epoch: int | None = None, *,
    policy: FailurePolicy = TRIPS, basis: str = "archive", confidence: float = CONFIDENCE,
) -> UnitSummary:
    """Summary of one unit, every epoch of it or only *epoch*, failures counted by *policy* and
    MTBF over *basis* (:data:`BASES`) with bounds at *confidence*; raises
    :class:`~host.errors.UnknownUnit` if it (or that epoch) is not archived, UsageError for a
    basis the policy cannot use."""
    check_basis(basis, policy)
    archive.unit(serial, epoch)
    (summary,) = _summaries(archive, serial, epoch, policy, basis, confidence, ALL)
    return summary


def fleet_summary(
    archive: Archive, *, policy: FailurePolicy = TRIPS, basis: str = "archive",
    confidence: float = CONFIDENCE, selection: Selection = ALL,
) -> FleetSummary:
    """Summaries of the units *selection* keeps (all their epochs, the records in its window),
    pooled per model and over the fleet; a unit with no record in the window is left out."""
    check_basis(basis, policy)
    units = [
        unit for unit in _summaries(archive, None, None, policy, basis, confidence, selection)
        if not selection.windowed or unit.first_record is not None
    ]
    by_model: dict[str, list[UnitSummary]] = defaultdict(list)
    for unit in units:
        by_model[unit.model].append(unit)
    return FleetSummary(
        total=ModelSummary.pool("all", units, policy, basis, confidence),
        models=tuple(
            ModelSummary.pool(model, by_model[model], policy, basis, confidence) for model in sorted(by_model)
        ),
        units=tuple(units),
    )


# --- the records behind the summaries ------------------------------------------
#
# Every figure comes from rows checked against their CRC-32C (Archive.iter_rows), and the
# archive's own count check (Archive.check) says no row was deleted: a row altered or removed
# outside turbolog is an ArchiveError (exit 4), never a figure.  Only the rows a figure depends
# on are read: every fault, the first and last record of each table, and the events from each
# failure to the next time the unit was up again.

_IN_WINDOW = "seq >= :low AND seq < :high"
"""SQL condition: the seqs of the window (:func:`_seq_window`)."""
_ENDS_WHERE = (
    "seq IN ((SELECT MIN(seq) FROM {table} WHERE unit = :unit AND " + _IN_WINDOW + "), "
    "(SELECT MAX(seq) FROM {table} WHERE unit = :unit AND " + _IN_WINDOW + "))"
)
"""iter_rows condition: the first and the last record of *table* in the window."""
_WHOLE = (-1, 1 << 62)
"""The seq window of a unit's every record."""


def _field_indexes(rtype: int, *names: str) -> tuple[int, ...]:
    """Where each of *names* (a fault's freeze-frame fields included) sits in a row of *rtype*."""
    fields = LAYOUTS[rtype].names
    return tuple(fields.index(name if name in fields else f"freeze.{name}") for name in names)


_CODE, _SEVERITY, _SUBSYSTEM, _FLAGS, _FAULT_STATE, _FAULT_OPERATING_S = _field_indexes(
    RecordType.FAULT, "code", "severity", "subsystem", "flags", "state", "operating_s"
)
_KIND, _STATE_TO, _CLEARED_CODE, _DURATION = _field_indexes(
    RecordType.EVENT, "kind", "state_to", "value_a", "value_b"
)


def _summaries(
    archive: Archive, serial: str | None, epoch: int | None, policy: FailurePolicy, basis: str,
    confidence: float, selection: Selection,
) -> list[UnitSummary]:
    """Summaries of the unit *serial* (all its epochs, or *epoch*), or of every unit *selection*
    keeps when it is None."""
    by_serial: dict[str, list[UnitSummary]] = defaultdict(list)
    for summary in _epoch_summaries(archive, serial, epoch, policy, selection):
        by_serial[summary.serial].append(replace(summary, basis=basis, mtbf=_estimate(
            basis, summary.exposure_hours, summary.failures, summary.counters, confidence
        )))
    return [_combine(parts) for parts in by_serial.values()]


def _combine(parts: list[UnitSummary]) -> UnitSummary:
    """The epochs of one serial (oldest first) added up (module docstring); one epoch as it is."""
    if len(parts) == 1:
        return parts[0]
    counters = LifetimeCounters()
    for before, part in zip([None, *parts], parts, strict=False):
        counters = counters.plus(part.counters, before.counters if before and part.continues else None)
    by_severity: dict[int, int] = defaultdict(int)
    by_code: dict[int, int] = defaultdict(int)
    failed_by_code: dict[int, int] = defaultdict(int)
    failed_by_subsystem: dict[int, int] = defaultdict(int)
    for part in parts:
        for subsystem, count in part.failures_by_subsystem.items():
            failed_by_subsystem[subsystem] += count
        for level, count in part.faults_by_severity.items():
            by_severity[level] += count
        for code, count in part.faults_by_code.items():
            by_code[code] += count
        for code, count in part.failures_by_code.items():
            failed_by_code[code] += count
    firsts = [part.first_record for part in parts if part.first_record is not None]
    lasts = [part.last_record for part in parts if part.last_record is not None]
    exposure = sum(part.exposure_hours for part in parts)
    failures = sum(part.failures for part in parts)
    latest = parts[-1]
    return UnitSummary(
        serial=latest.serial,
        model=latest.model,
        firmware=latest.firmware,
        records=sum(part.records for part in parts),
        evicted=sum(part.evicted for part in parts),
        first_record=min(firsts, default=None),
        last_record=max(lasts, default=None),
        counters=counters,
        counters_from=latest.counters_from,
        identify=latest.identify,
        faults_by_severity=dict(by_severity),
        faults_by_code=dict(by_code),
        failures=failures,
        exposure_hours=exposure,
        mtbf=_estimate(latest.basis, exposure, failures, counters, latest.mtbf.confidence),
        downtime_s=sum(part.downtime_s for part in parts),
        span_s=sum(part.span_s for part in parts),
        parts=tuple(parts),
        policy=latest.policy,
        basis=latest.basis,
        failures_by_code=dict(failed_by_code),
        failures_by_subsystem=dict(failed_by_subsystem),
        exposure_starts=sum(part.exposure_starts for part in parts),
        planned_s=sum(part.planned_s for part in parts),
    )


def _epoch_summaries(
    archive: Archive, serial: str | None, epoch: int | None, policy: FailurePolicy, selection: Selection
) -> list[UnitSummary]:
    """One summary per archived epoch *selection* keeps, by serial then epoch, of the records in
    its window."""
    archive.check(serial)
    which = (
        "TRUE" if serial is None else
        "unit IN (SELECT id FROM units WHERE serial = :serial AND (:epoch IS NULL OR epoch = :epoch))"
    )
    params = {"serial": serial, "epoch": epoch}
    evicted = dict(
        archive.query(f"SELECT unit, SUM(count) FROM evictions WHERE {which} GROUP BY unit", params)
    )
    units = list(archive.query(
        """SELECT id, serial, model, firmware, record_count, operating_s, starts, trips, energy_wh,
                  epoch, log_id, continues
           FROM units WHERE (serial = :serial OR :serial IS NULL) AND (:epoch IS NULL OR epoch = :epoch)
           ORDER BY serial, epoch""",
        params,
    ))
    profiles = unit_profiles(archive) if selection.sites or selection.duties or selection.cohorts else {}
    summaries = []
    for row in units:
        unit, serial_, number = row[0], row[1], row[9]
        if not selection.keeps(row[2], profiles.get(serial_)):
            continue
        window = _seq_window(archive, unit, selection.since, selection.end) if selection.windowed else _WHOLE
        bounds = {"low": window[0], "high": window[1]}
        faults = list(archive.iter_rows(serial_, RecordType.FAULT, _IN_WINDOW, bounds, epoch=number))
        ends = _ends(archive, unit, serial_, faults, number, bounds)
        if selection.windowed and not ends:
            continue  # no record of this log in the window: not its IDENTIFY counters either
        by_kind = [(fault[_SEVERITY], fault[_CODE], 1) for fault in faults]
        failed: dict[int, int] = defaultdict(int)
        failed_subsystem: dict[int, int] = defaultdict(int)
        ages: list[float] = []
        times: list[int] = []
        for fault in faults:
            if policy.counts(fault[_CODE], fault[_SEVERITY], fault[_SUBSYSTEM], fault[_FLAGS]):
                failed[fault[_CODE]] += 1
                failed_subsystem[fault[_SUBSYSTEM]] += 1
                ages.append(fault[_FAULT_OPERATING_S] / 3600)
                times.append(fault[1])
        marks = _downtime_marks(archive, serial_, faults, number, bounds)
        counts = row[:9] if window == _WHOLE else (*row[:4], _records_in(archive, unit, bounds), *row[5:9])
        summary = _summarise(counts, ends, by_kind, evicted.get(unit, 0), marks, sum(failed.values()))
        log_id = None if row[10] is None else bytes(row[10])
        summaries.append(replace(
            summary, epoch=number, log_id=log_id, continues=bool(row[11]), policy=policy,
            failures_by_code=dict(failed), failures_by_subsystem=dict(failed_subsystem),
            planned_s=_planned(archive, serial_, number, summary.first_record, summary.last_record, bounds),
            failure_ages=tuple(ages),
            failure_times=tuple(times),
        ))
    return summaries


def _records_in(archive: Archive, unit: int, bounds: dict[str, int]) -> int:
    """Records of *unit* in the seq window *bounds*."""
    ((count,),) = archive.query(
        f"SELECT COUNT(*) FROM records WHERE unit = :unit AND {_IN_WINDOW}", {"unit": unit, **bounds}
    )
    return int(count)


_NEXT_ROW = "SELECT seq, timestamp FROM {table} WHERE unit = :unit AND seq >= :seq ORDER BY seq LIMIT 1"
_SEQ_RANGE = "SELECT MIN(seq), MAX(seq) FROM {table} WHERE unit = :unit"
_FIRST_AFTER = "SELECT MIN(seq) FROM {table} WHERE unit = :unit AND timestamp {op} :moment"


def _seq_window(archive: Archive, unit: int, since: int | None, until: int | None) -> tuple[int, int]:
    """The seqs [low, high) of *unit*'s records timestamped within [since, until].

    Timestamps never go backwards along seqs (docs/protocol.md 6.5), so the
    first seq at or after a moment is found by bisection over the keys of the
    large tables (samples, events) and by a scan of the small ones (faults,
    unknown records): a few lookups a unit, whatever the size of its log."""
    low = _WHOLE[0] if since is None else _first_seq(archive, unit, ">=", since)
    high = _WHOLE[1] if until is None else _first_seq(archive, unit, ">", until)
    return low, high


def _next_row(archive: Archive, table: str, unit: int, seq: int) -> tuple[int, int] | None:
    """(seq, timestamp) of *unit*'s first row of *table* at or after *seq*."""
    rows = archive.query(_NEXT_ROW.format(table=table), {"unit": unit, "seq": seq})
    row = next(rows, None)
    rows.close()
    return None if row is None else (int(row[0]), int(row[1]))


def _first_seq(archive: Archive, unit: int, op: str, moment: int) -> int:
    """The smallest seq of *unit* whose timestamp is *op* (``>=`` or ``>``) *moment*; past the
    last seq when none is."""
    def passes(timestamp: int) -> bool:
        return timestamp >= moment if op == ">=" else timestamp > moment

    found = _WHOLE[1]
    for table in ("faults", "other_records"):
        ((seq,),) = archive.query(_FIRST_AFTER.format(table=table, op=op), {"unit": unit, "moment": moment})
        if seq is not None:
            found = min(found, seq)
    for table in ("samples", "events"):
        ((first, last),) = archive.query(_SEQ_RANGE.format(table=table), {"unit": unit})
        if first is None:
            continue
        low, high = first, last + 1  # the first row at or after seq `high` passes (there is none)
        while low < high:
            middle = (low + high) // 2
            row = _next_row(archive, table, unit, middle)
            if row is None or passes(row[1]):
                high = middle
            else:
                low = row[0] + 1  # every row up to this one fails
        row = _next_row(archive, table, unit, low)
        if row is not None and passes(row[1]):
            found = min(found, row[0])
    return found


def _ends(
    archive: Archive, unit: int, serial: str, faults: list[DecodedRow], epoch: int, bounds: dict[str, int]
) -> list[tuple[Any, ...]]:
    """First and last record of each table of *epoch* in the seq window *bounds*:
    (carries counters, seq, timestamp, counters)."""
    rows = faults[:1] + faults[1:][-1:]
    for rtype, table in ((RecordType.SAMPLE, "samples"), (RecordType.EVENT, "events")):
        rows += archive.iter_rows(serial, rtype, _ENDS_WHERE.format(table=table), bounds, epoch=epoch)
    ends: list[tuple[Any, ...]] = []
    for row in rows:
        counters = counters_of_row(row)
        if counters is None:
            ends.append((0, row[0], row[1], None, None, None, None))
        else:
            ends.append((1, row[0], row[1], counters.operating_s, counters.starts, counters.trips,
                         counters.energy_wh))
    others = f"SELECT seq, raw FROM other_records WHERE unit = :unit AND {_ENDS_WHERE}"
    for seq, raw in archive.query(others.format(table="other_records"), {"unit": unit, **bounds}):
        damaged = f"archive {archive.path}: record {seq} of unit {serial}"
        try:
            record = decode_record(raw)
        except RecordError as exc:
            raise ArchiveError(f"{damaged} is damaged: {exc}") from exc
        if record.seq != seq:
            raise ArchiveError(f"{damaged} carries seq {record.seq}: the file was altered outside turbolog")
        ends.append((0, record.seq, record.timestamp, None, None, None, None))
    return ends


def _downtime_marks(
    archive: Archive, serial: str, faults: list[DecodedRow], epoch: int, bounds: dict[str, int]
) -> list[tuple[int, bool]]:
    """In seq order: (timestamp, True) when the unit failed while up, (timestamp, False) when it
    could run again (module docstring), found by reading (and verifying) the events after it."""
    failures = [
        (row[0], row[1], row[_CODE], row[_FAULT_STATE]) for row in faults if row[_SEVERITY] >= _FAILURE
    ]
    marks: list[tuple[int, bool]] = []
    i = 0
    while i < len(failures):
        seq, timestamp, code, state = failures[i]
        marks.append((timestamp, True))
        outstanding, at_rest = {code}, state == _AT_REST
        i += 1
        events = archive.iter_rows(
            serial, RecordType.EVENT, "seq > :after AND seq < :high", {"after": seq, **bounds}, epoch=epoch
        )
        up = None
        for event in events:
            while i < len(failures) and failures[i][0] < event[0]:  # failed again while down
                outstanding.add(failures[i][2])
                i += 1
            kind = event[_KIND]
            if kind == _START:
                up = event
                break
            if kind == _STATE_CHANGE:
                at_rest = event[_STATE_TO] == _AT_REST
            elif kind == _CLEARED:
                outstanding.discard(event[_CLEARED_CODE])
            else:
                continue
            if at_rest and not outstanding:
                up = event
                break
        events.close()
        if up is None:
            break
        marks.append((up[1], False))
        while i < len(failures) and failures[i][0] < up[0]:
            i += 1
    return marks


def _planned(
    archive: Archive, serial: str, epoch: int, first: int | None, last: int | None, bounds: dict[str, int]
) -> int:
    """Seconds of planned down time (EVENT SERVICE, its duration in value_b) within [first, last]."""
    if first is None or last is None:
        return 0
    services = archive.iter_rows(
        serial, RecordType.EVENT, f"kind = :kind AND {_IN_WINDOW}", {"kind": _SERVICE, **bounds}, epoch=epoch
    )
    return sum(
        max(min(row[1], last) - max(row[1] - row[_DURATION], first), 0) for row in services
    )


def _downtime(marks: list[tuple[int, bool]], span_end: int) -> int:
    """Seconds down: from each failure to the next time the unit was up again (or *span_end*)."""
    down = 0
    since: int | None = None
    for timestamp, failed in marks:
        if failed and since is None:
            since = timestamp
        elif not failed and since is not None:
            down += timestamp - since
            since = None
    if since is not None:
        down += span_end - since
    return down


def _summarise(
    unit: tuple[Any, ...],
    ends: list[tuple[Any, ...]],
    faults: list[tuple[int, int, int]],
    evicted: int,
    marks: list[tuple[int, bool]],
    failures: int,
) -> UnitSummary:
    _, serial, model, firmware, record_count, operating_s, starts, trips, energy_wh = unit
    identify = LifetimeCounters(operating_s, starts, trips, energy_wh)
    with_counters = sorted(end[1:] for end in ends if end[0])
    if with_counters:
        first, last = with_counters[0], with_counters[-1]
        counters, counters_from = LifetimeCounters(*last[2:]), "records"
        exposure = (last[2] - first[2]) / 3600
        exposure_starts = last[3] - first[3]
        ages: tuple[float | None, float | None] = (first[2] / 3600, last[2] / 3600)
    else:
        counters, counters_from, exposure, exposure_starts = identify, "identify", 0.0, 0
        ages = (None, None)
    stamps = sorted(end[1:3] for end in ends)
    first_record = stamps[0][1] if stamps else None
    last_record = stamps[-1][1] if stamps else None
    span = last_record - first_record if first_record is not None and last_record is not None else 0
    by_severity: dict[int, int] = defaultdict(int)
    by_code: dict[int, int] = defaultdict(int)
    for level, code, count in faults:
        by_severity[level] += count
        by_code[code] += count
    return UnitSummary(
        serial=serial,
        model=model,
        firmware=firmware,
        records=record_count,
        evicted=evicted,
        first_record=first_record,
        last_record=last_record,
        counters=counters,
        counters_from=counters_from,
        identify=identify,
        faults_by_severity=dict(by_severity),
        faults_by_code=dict(by_code),
        failures=failures,
        exposure_hours=exposure,
        mtbf=mtbf(exposure, failures, CONFIDENCE),
        downtime_s=min(max(_downtime(marks, last_record), 0), span) if last_record is not None else 0,
        span_s=span,
        exposure_starts=max(exposure_starts, 0),
        age_from=ages[0],
        age_to=ages[1],
    )


# --- the fault list -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultEntry:
    """One archived fault of one unit."""

    serial: str
    fault: FaultRecord
    epoch: int = 1
    """The archived log (epoch) of the serial the fault is in."""
    runups: tuple[RunupRecord, ...] = ()
    """Its pre-trigger buffer, one record per channel (none for a warning, or a log from
    firmware that wrote none)."""

    def to_json(self) -> dict[str, Any]:
        fault = self.fault
        return {
            "serial": self.serial,
            "epoch": self.epoch,
            "seq": fault.seq,
            "time": _iso(fault.timestamp),
            "code": fault.code,
            "name": definition.name if (definition := lookup(fault.code)) else None,
            "severity": name_of(Severity, fault.severity),
            "level": fault.severity,
            "subsystem": name_of(Subsystem, fault.subsystem),
            "flags": [flag.name for flag in EventFlag if flag and fault.flags & flag],
            "freeze": snapshot_fields(fault.freeze),
            "runup": [_runup_json(runup) for runup in self.runups],
        }


def _runup_json(runup: RunupRecord) -> dict[str, Any]:
    """One channel of a fault's run-up: its measured values, oldest first, the last at the fault."""
    spec = RUNUP_CHANNELS.get(runup.channel)
    series = runup.series()
    return {
        "channel": name_of(RunupChannel, runup.channel),
        "runup_unit": spec.unit if spec is not None else None,
        "interval_s": runup.interval_s,
        "runup_start": _iso(series[0][0]) if series else None,
        "runup_values": [value for _, value in series],
    }


def fault_list(
    archive: Archive,
    serial: str,
    since: datetime | None = None,
    severity: int | str | None = None,
    code: int | None = None,
    epoch: int | None = None,
) -> Iterator[FaultEntry]:
    """The archived faults of *serial* (every epoch, oldest first, or only *epoch*) in seq
    order, streamed.

    *since*: only faults at or after this time (a naive datetime is taken as
    UTC, like device time); *severity*: only faults at or above this level,
    given as a number or a :class:`~protocol.enums.Severity` name; *code*: only
    this fault code.  A filter that cannot match anything raises UsageError.
    """
    epochs = [row.epoch for row in archive.epochs(serial) if epoch is None or row.epoch == epoch]
    if not epochs:
        archive.unit(serial, epoch)  # raises UnknownUnit: no such epoch
    wanted: list[Callable[[DecodedRow], bool]] = []
    if since is not None:
        aware = since if since.tzinfo is not None else since.replace(tzinfo=UTC)
        after = int(aware.timestamp())
        wanted.append(lambda row: row[1] >= after)
    if severity is not None:
        level = _severity_level(severity)
        wanted.append(lambda row: row[_SEVERITY] >= level)
    if code is not None:
        if not 0 <= code <= 0xFFFF:
            raise UsageError(f"fault code {code} is outside 0..65535")
        wanted.append(lambda row: row[_CODE] == code)
    archive.check(serial)
    return (  # filtered after their CRC is checked
        FaultEntry(serial, fault, number, runups.get(fault.seq, ()))
        for number in epochs
        for runups in (_runups_by_fault(archive, serial, number),)
        for row in archive.iter_rows(serial, RecordType.FAULT, epoch=number)
        if all(test(row) for test in wanted)
        for fault in (cast(FaultRecord, record_from_row(row)),)
    )


def _runups_by_fault(archive: Archive, serial: str, epoch: int) -> dict[int, tuple[RunupRecord, ...]]:
    """The run-up records of one epoch of *serial*, by the seq of their fault, channels in seq order."""
    found: defaultdict[int, list[RunupRecord]] = defaultdict(list)
    for row in archive.iter_rows(serial, RecordType.RUNUP, epoch=epoch):
        runup = cast(RunupRecord, record_from_row(row))
        found[runup.fault_seq].append(runup)
    return {seq: tuple(runups) for seq, runups in found.items()}


def _severity_level(severity: int | str) -> int:
    if isinstance(severity, int):
        level = severity
    elif severity.isdigit():
        level = int(severity)
    elif severity.upper() in Severity.__members__:
        level = Severity[severity.upper()]
    else:
        names = ", ".join(level.name.lower() for level in Severity)
        raise UsageError(f"unknown severity {severity!r}: use a level 0-255 or one of {names}")
    if not 0 <= level <= 255:
        raise UsageError(f"severity {level} is outside 0..255")
    return level
