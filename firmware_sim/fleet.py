"""A simulated fleet: many units living their whole lives in parallel, each into its own flash image.

:func:`plan_fleet` decides, from one seed, who the units are: serial number,
model (by the mix asked for), duty profile, climate site, grid mode, the
unit's own simulation seed, when it was shipped and which part of its life
is documented.  The fleet follows the press release's timeline (``SHIPMENTS``:
commercial shipments from December 1998, about 4,000 units by May 2007,
scaled to the units asked for and stretched to the dates asked for): each
unit's shipment date is a stratified draw from that curve.  Every shipped
unit documents the same share of its calendar life (``DOCUMENTED_SHARE``, as
the manufacturer counts hours only from units it has contact with), so the
fleet's documented hours grow with its installed base and reach the
milestones of ``MILESTONES``.  A unit's image holds its documented window:
a stretch of its life between shipment and the read-out date, placed along
its life by a low-discrepancy sequence so that every instant of every life
is documented with the same probability (``DOCUMENTED_SHARE`` over the
duty's utilisation).

:func:`simulate_unit` lives one unit's documented window, from its power-up
(``commissioned``) to its last read-out (``as_of``): a runtime sample every hour, and every fault and
event.  The records are kept in memory until the end, so that the flash can
be sized to hold all of them (plus one spare sector): nothing is evicted.
It then writes them through the controller's own :class:`LogStore` into
``DIR/<serial>.img`` and writes the unit's identity beside it,
``DIR/<serial>.json`` (both formats: ``docs/flash-image.md``).  Both files
are written under a temporary name and renamed into place, the identity last,
so a complete pair means a complete unit.

:func:`simulate_fleet` runs :func:`simulate_unit` for every unit over a pool
of processes (one per core by default), longest lives first so that the
cores finish together.

This module reads no clock, draws randomness only from the seeds it is given,
and knows nothing about the host.
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from protocol.enums import GridMode
from protocol.formats import RECORD_OVERHEAD
from protocol.image_formats import SECTOR_HEADER_SIZE
from protocol.records import LAYOUTS, Record, UnknownRecord

from .climate import SITES
from .duty import PeakShaving
from .errors import ConfigError, SimulatorError
from .flash import NorFlash
from .logstore import LogStore, seeded_log_ids
from .models import PROFILES, ModelProfile, get_profile, site_profile
from .sidecar import write_identity
from .simulator import Simulator
from .unit import DEFAULT_SECTOR_SIZE, FIRMWARE_VERSION

SAMPLE_INTERVAL_S = 3600
"""Fleet units log one runtime sample per hour."""

def _day(year: int, month: int, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp())


DEFAULT_START = _day(1998, 12, 1)
"""Commercial shipments began in December 1998 (REF)."""

DEFAULT_AS_OF = _day(2007, 5, 1)
"""The read-out date: the month of the manufacturer's fleet press release."""

PRESS_RELEASE_UNITS = 4000
"""Units shipped by May 2007 (REF: more than 4,000)."""

SHIPMENTS: tuple[tuple[int, float], ...] = (
    (DEFAULT_START, 0.0),
    (_day(2000, 12, 1), 500.0),
    (_day(2002, 12, 1), 2400.0),
    (DEFAULT_AS_OF, 4000.0),
)
"""Cumulative units shipped (of 4,000), linear between the dates: Dec 2002 and May 2007 are REF's
(> 2,400, > 4,000); Dec 2000 is fitted so that the documented hours meet ``MILESTONES``."""

MILESTONES: tuple[tuple[int, float], ...] = (
    (_day(2002, 12, 1), 3e6), (_day(2005, 11, 1), 10e6), (DEFAULT_AS_OF, 15e6),
)
"""Cumulative documented operating hours of the 4,000-unit fleet (REF)."""


def shipped_share(t: float, start: float = DEFAULT_START, end: float = DEFAULT_AS_OF) -> float:
    """Share of the fleet shipped by *t*, on ``SHIPMENTS`` stretched from [Dec 1998, May 2007]
    onto [*start*, *end*]."""
    x = DEFAULT_START + (t - start) * (DEFAULT_AS_OF - DEFAULT_START) / (end - start)
    total = SHIPMENTS[-1][1]
    if x <= SHIPMENTS[0][0]:
        return 0.0
    for (t0, s0), (t1, s1) in zip(SHIPMENTS, SHIPMENTS[1:], strict=False):
        if x <= t1:
            return (s0 + (s1 - s0) * (x - t0) / (t1 - t0)) / total
    return 1.0


def shipment_time(share: float, start: float = DEFAULT_START, end: float = DEFAULT_AS_OF) -> float:
    """When the fleet's *share* (0..1) had been shipped: the inverse of :func:`shipped_share`."""
    target = share * SHIPMENTS[-1][1]
    x = float(SHIPMENTS[-1][0])
    for (t0, s0), (t1, s1) in zip(SHIPMENTS, SHIPMENTS[1:], strict=False):
        if target <= s1:
            x = t0 + (t1 - t0) * (target - s0) / (s1 - s0)
            break
    return start + (x - DEFAULT_START) * (end - start) / (DEFAULT_AS_OF - DEFAULT_START)


def _mean_age_s() -> float:
    """Mean age at May 2007 of a unit shipped on ``SHIPMENTS`` (exact for a piecewise-linear curve)."""
    total = SHIPMENTS[-1][1]
    return sum(
        (s1 - s0) / total * (DEFAULT_AS_OF - (t0 + t1) / 2)
        for (t0, s0), (t1, s1) in zip(SHIPMENTS, SHIPMENTS[1:], strict=False)
    )


DOCUMENTED_SHARE = MILESTONES[-1][1] / PRESS_RELEASE_UNITS * 3600 / _mean_age_s()
"""Operating hours documented per calendar hour since shipment, the same for every unit:
15 M h over 4,000 units of the curve's mean age (about 0.10)."""

_GOLDEN = (math.sqrt(5) - 1) / 2

DUTY_MIX: tuple[tuple[str, float], ...] = (("baseload", 0.5), ("load-following", 0.3), ("peak-shaving", 0.2))
UTILISATION: dict[str, float] = {
    "baseload": 1.0,
    "load-following": 1.0,
    "peak-shaving": (PeakShaving.stop_hour - PeakShaving.start_hour) / 24 * PeakShaving.days_per_week / 7,
}
"""Share of calendar time each duty profile runs a unit."""

SITE_MIX: tuple[tuple[str, float], ...] = (("temperate", 0.45), ("desert", 0.25), ("cold", 0.30))
STAND_ALONE_SHARE = 0.1
"""Units that form their own grid rather than follow a utility."""

SPARE_SECTORS = 1


@dataclass(frozen=True, slots=True)
class UnitPlan:
    """One unit of the fleet, before it has lived."""

    serial: str
    model: str
    seed: int
    duty: str
    site: str
    mode: GridMode
    commissioned: int
    """Unix seconds: the first power-up of its documented window (its image's first record)."""
    as_of: int
    """Unix seconds: the end of its documented window, when the flash was last read out."""
    shipped: int
    """Unix seconds: when the unit was shipped (at or before ``commissioned``)."""
    read_out: int
    """Unix seconds: the fleet's read-out date, at or after ``as_of``."""

    @property
    def age_s(self) -> int:
        """The unit's age at the fleet's read-out date."""
        return self.read_out - self.shipped

    @property
    def calendar_s(self) -> int:
        return self.as_of - self.commissioned


@dataclass(frozen=True, slots=True)
class UnitResult:
    """What one unit's life left in its flash image."""

    serial: str
    model: str
    records: int
    sectors: int
    image_bytes: int
    operating_s: int
    starts: int
    trips: int


def parse_mix(text: str) -> dict[str, float]:
    """``"C30:0.6,C60:0.4"`` -> ``{"C30": 0.6, "C60": 0.4}``, normalised to sum to 1.

    Raises ConfigError (a ValueError) for another shape, an unknown model, a
    share that is not positive, or a model named twice.
    """
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, share = part.partition(":")
        try:
            value = float(share)
        except ValueError:
            value = math.nan
        if not sep or not value > 0 or math.isinf(value):
            raise ConfigError(f"model mix {text!r} is not MODEL:SHARE,..., e.g. C30:0.6,C60:0.4")
        model = get_profile(name.strip()).name
        if model in mix:
            raise ConfigError(f"model mix {text!r} names {model} twice")
        mix[model] = value
    total = sum(mix.values())
    return {model: share / total for model, share in mix.items()}


def _counts(mix: dict[str, float], units: int) -> dict[str, int]:
    """Units per model, in proportion to *mix* (largest remainders get the units left over)."""
    exact = {model: share * units for model, share in mix.items()}
    counts = {model: int(value) for model, value in exact.items()}
    by_remainder = sorted(mix, key=lambda model: counts[model] - exact[model])
    for model in by_remainder[: units - sum(counts.values())]:
        counts[model] += 1
    return counts


def _choose(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([name for name, _ in weighted], [weight for _, weight in weighted])[0]


def plan_fleet(
    units: int,
    mix: dict[str, float],
    hours: float | None,
    seed: int,
    as_of: int = DEFAULT_AS_OF,
    start: int = DEFAULT_START,
) -> tuple[UnitPlan, ...]:
    """*units* units of the models in *mix* (model -> share, as :func:`parse_mix` gives
    it), shipped along ``SHIPMENTS`` stretched onto [*start*, *as_of*] (Unix seconds),
    each documenting its window of the operating hours.

    *hours* is the mean documented operating hours per unit at *as_of*; None
    takes ``DOCUMENTED_SHARE`` of each unit's age (3,750 h on the default
    timeline: 15 M h over 4,000 units).  The same arguments always give the
    same plan.  Serial numbers are ``<model>-<nnnnnn>``, numbered from 1 in
    shipment order.
    """
    if units < 1:
        raise ConfigError(f"a fleet needs at least one unit, not {units}")
    if hours is not None and (not hours > 0 or math.isinf(hours)):
        raise ConfigError(f"mean operating hours must be a positive number, not {hours}")
    if not mix or set(mix) - set(PROFILES) or not all(share > 0 for share in mix.values()):
        raise ConfigError(f"model mix {mix!r} must give models among {', '.join(PROFILES)} positive shares")
    for name, moment in (("read-out", as_of), ("first shipment", start)):
        if not 0 <= moment < 2**32:
            raise ConfigError(f"{name} time {moment} is outside 32-bit Unix time")
    if start >= as_of:
        raise ConfigError(
            f"the first shipment ({_date(start)}) must come before the read-out ({_date(as_of)})"
        )
    rng = random.Random(f"fleet:{seed}")
    total = sum(mix.values())
    shares = {model: share / total for model, share in mix.items()}
    models = [model for model, count in _counts(shares, units).items() for _ in range(count)]
    rng.shuffle(models)
    shipped = [round(shipment_time((k + rng.random()) / units, start, as_of)) for k in range(units)]
    ages = [as_of - moment for moment in shipped]
    share = DOCUMENTED_SHARE if hours is None else hours * 3600 * units / sum(ages)
    offset = rng.random()
    plans = []
    for number, (model, moment, age) in enumerate(zip(models, shipped, ages, strict=True), start=1):
        duty = _choose(rng, DUTY_MIX)
        site = _choose(rng, SITE_MIX)
        mode = GridMode.STAND_ALONE if rng.random() < STAND_ALONE_SHARE else GridMode.GRID_CONNECT
        cover = share / UTILISATION[duty]
        if cover >= 1:
            raise ConfigError(
                f"{share * sum(ages) / units / 3600:g} h on average is more than units shipped "
                f"from {_date(start)} can run by {_date(as_of)}"
            )
        # A window of cover * age / (1 - cover) slid along the life, overhanging
        # either end by up to its length and clipped to the life, covers every
        # instant of the life with the same probability, cover: the fleet's
        # documented hours then grow exactly with its installed base.
        window = cover * age / (1 - cover)
        slide = moment - window + ((offset + number * _GOLDEN) % 1.0) * (age + window)
        begin = max(moment, min(round(slide), as_of - SAMPLE_INTERVAL_S))
        end = min(as_of, max(round(slide + window), begin + SAMPLE_INTERVAL_S))
        plans.append(UnitPlan(
            f"{model}-{number:06d}", model, rng.getrandbits(48), duty, site, mode,
            begin, end, moment, as_of,
        ))
    return tuple(plans)


def plan_served_fleet(
    units: int, mix: dict[str, float], seed: int, start: int, history_s: int
) -> tuple[UnitPlan, ...]:
    """*units* units of the models in *mix* for ``turbosim serve-fleet``: each commissioned at
    *start* (Unix seconds) and documenting its first *history_s* seconds, with its own seed,
    duty profile, climate site and grid mode drawn from *seed* as :func:`plan_fleet` draws
    them.  Serial numbers are ``<model>-<nnnnnn>``, numbered from 1; the same arguments always
    give the same plan."""
    if units < 1:
        raise ConfigError(f"a fleet needs at least one unit, not {units}")
    if not 0 <= start < 2**32 or not 0 <= start + history_s < 2**32:
        raise ConfigError("the fleet's start and history must stay within 32-bit Unix time")
    rng = random.Random(f"served-fleet:{seed}")
    models = [model for model, count in _counts(mix, units).items() for _ in range(count)]
    rng.shuffle(models)
    plans = []
    for number, model in enumerate(models, start=1):
        duty, site = _choose(rng, DUTY_MIX), _choose(rng, SITE_MIX)
        mode = GridMode.STAND_ALONE if rng.random() < STAND_ALONE_SHARE else GridMode.GRID_CONNECT
        plans.append(UnitPlan(
            f"{model}-{number:06d}", model, rng.getrandbits(48), duty, site, mode,
            start, start + history_s, start, start + history_s,
        ))
    return tuple(plans)


def _date(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).date().isoformat()


def documented_hours(plans: Sequence[UnitPlan], at: float) -> float:
    """The operating hours *plans* mean to document by *at*: each unit's window up to *at*
    at its duty's utilisation (what the simulated logs then hold, less faults and service)."""
    return sum(
        max(0, min(at, plan.as_of) - plan.commissioned) * UTILISATION[plan.duty] for plan in plans
    ) / 3600


def age_summary(plans: Sequence[UnitPlan]) -> str:
    """One line: the fleet's ages at its read-out date, by whole years, and their median."""
    years = sorted(plan.age_s / (365.25 * 86400) for plan in plans)
    counts = Counter(int(age) for age in years)
    spread = ", ".join(f"{age}-{age + 1} y: {counts[age]:,}" for age in range(int(years[-1]) + 1))
    return (
        f"fleet ages at {_date(plans[0].read_out)}: median {years[len(years) // 2]:.1f} y, "
        f"oldest {years[-1]:.1f} y; {spread}"
    )


class _Collector:
    """A log sink that keeps the records in memory, numbering them as the log would."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> int:
        self.records.append(record)
        return len(self.records) - 1


def sectors_needed(sizes: Iterable[int], sector_size: int) -> int:
    """Sectors a :class:`LogStore` fills with records of these byte sizes, in order
    (a record that does not fit in the rest of a sector opens the next one)."""
    room = sector_size - SECTOR_HEADER_SIZE
    sectors, used = 0, room
    for size in sizes:
        if used + size > room:
            sectors, used = sectors + 1, 0
        used += size
    return max(sectors, 1)


def _encoded_size(record: Record) -> int:
    if isinstance(record, UnknownRecord):
        return RECORD_OVERHEAD + len(record.body)
    return LAYOUTS[record.TYPE].size


def _profile(plan: UnitPlan) -> ModelProfile:
    return site_profile(plan.model, SITES[plan.site])


def _simulated(plan: UnitPlan) -> dict[str, object]:
    """How *plan*'s unit was simulated, for its identity sidecar (readers ignore it)."""
    return {
        "seed": plan.seed,
        "duty": plan.duty,
        "site": plan.site,
        "mode": "standalone" if plan.mode == GridMode.STAND_ALONE else "grid",
        "shipped": datetime.fromtimestamp(plan.shipped, UTC).isoformat(),
        "commissioned": datetime.fromtimestamp(plan.commissioned, UTC).isoformat(),
        "sample_interval_s": SAMPLE_INTERVAL_S,
    }


def simulate_unit(plan: UnitPlan, out_dir: str | os.PathLike[str]) -> UnitResult:
    """Live *plan*'s history and write ``<serial>.img`` and ``<serial>.json`` into *out_dir*
    (replacing any there)."""
    collector = _Collector()
    simulator = Simulator(
        _profile(plan), seed=plan.seed, start_time=plan.commissioned, log=collector, duty=plan.duty,
        mode=plan.mode, sample_interval_s=SAMPLE_INTERVAL_S, site=SITES[plan.site],
    )
    simulator.advance_to(plan.as_of)
    records = collector.records
    sectors = sectors_needed(map(_encoded_size, records), DEFAULT_SECTOR_SIZE)
    sectors += SPARE_SECTORS
    out = Path(out_dir)
    image = out / f"{plan.serial}.img"
    part = out / f".{image.name}.part"
    part.unlink(missing_ok=True)
    with NorFlash.open(part, DEFAULT_SECTOR_SIZE, sectors) as flash:
        store = LogStore(flash, new_log_id=seeded_log_ids(plan.model, plan.serial, plan.seed))
        append = store.append
        for record in records:
            append(record)
        if store.first_seq != 0 or store.next_seq != len(records):
            raise SimulatorError(f"{plan.serial}: the flash sized for its history evicted records")
        counters = store.counters
    os.replace(part, image)
    write_identity(image, plan.serial, plan.model, FIRMWARE_VERSION, _simulated(plan))
    return UnitResult(
        plan.serial, plan.model, len(records), sectors, image.stat().st_size,
        counters.operating_s, counters.starts, counters.trips,
    )


def simulate_fleet(
    plans: Sequence[UnitPlan],
    out_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    progress: Callable[[UnitResult], None] | None = None,
) -> list[UnitResult]:
    """Simulate every unit of *plans* into *out_dir* (created if missing) on *workers*
    processes (default: one per core; 1 runs in this process).  *progress* is
    called with each unit's result as it completes.  Returns the results by serial."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    longest_first = sorted(plans, key=lambda plan: plan.calendar_s, reverse=True)
    workers = workers or os.cpu_count() or 1
    results = []
    if workers == 1:
        for plan in longest_first:
            results.append(simulate_unit(plan, out))
            if progress is not None:
                progress(results[-1])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(simulate_unit, plan, out) for plan in longest_first]
            for future in as_completed(futures):
                results.append(future.result())
                if progress is not None:
                    progress(results[-1])
    return sorted(results, key=lambda result: result.serial)
