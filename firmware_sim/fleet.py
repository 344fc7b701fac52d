"""A simulated fleet: many units living their whole lives in parallel, each into its own flash image.

:func:`plan_fleet` decides, from one seed, who the units are: serial number,
model (by the mix asked for), duty profile, climate site, grid mode, the
unit's own simulation seed, and when it was commissioned.  The fleet grew
the way a young product's does: shipments rise by ``e ** FLEET_GROWTH``
(about 7x) from the oldest unit to the newest, so most units are young and a
few are old.  Each unit's share of the mean operating hours follows from its
age; its calendar life is that share divided by how much of the day its duty
runs it, so the planned mean is exactly the hours asked for and the units'
own logs come out close to it (faults and repairs cost a little).

:func:`simulate_unit` lives one unit's history from commissioning to the
read-out date (``as_of``): a runtime sample every hour, and every fault and
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

DEFAULT_AS_OF = int(datetime(2007, 5, 1, tzinfo=UTC).timestamp())
"""The read-out date: the month of the manufacturer's fleet press release."""

FLEET_GROWTH = 2.0
"""Shipments grow by e ** FLEET_GROWTH from the oldest unit's commissioning to the newest's."""

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
    """Unix seconds: power-up at the site."""
    as_of: int
    """Unix seconds: the end of the simulated history, when the flash is read out."""

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


def _age_shares(rng: random.Random, units: int) -> list[float]:
    """Each unit's age as a multiple of the fleet's mean age (the list averages exactly 1).

    Commissioning times of a fleet whose shipments grow exponentially: the
    age on [0, 1] has density proportional to exp(-FLEET_GROWTH * age).
    """
    k = FLEET_GROWTH
    ages = [-math.log(1 - rng.random() * (1 - math.exp(-k))) / k for _ in range(units)]
    mean = sum(ages) / units
    return [age / mean for age in ages]


def _choose(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([name for name, _ in weighted], [weight for _, weight in weighted])[0]


def plan_fleet(
    units: int, mix: dict[str, float], hours: float, seed: int, as_of: int = DEFAULT_AS_OF
) -> tuple[UnitPlan, ...]:
    """*units* units of the models in *mix* (model -> share, as :func:`parse_mix` gives
    it), averaging *hours* operating hours each at *as_of* (Unix seconds).

    The same arguments always give the same plan.  Serial numbers are
    ``<model>-<nnnnnn>``, numbered from 1 in commissioning order.
    """
    if units < 1:
        raise ConfigError(f"a fleet needs at least one unit, not {units}")
    if not hours > 0 or math.isinf(hours):
        raise ConfigError(f"mean operating hours must be a positive number, not {hours}")
    if not mix or set(mix) - set(PROFILES) or not all(share > 0 for share in mix.values()):
        raise ConfigError(f"model mix {mix!r} must give models among {', '.join(PROFILES)} positive shares")
    if not 0 < as_of < 2**32:
        raise ConfigError(f"read-out time {as_of} is outside 32-bit Unix time")
    rng = random.Random(f"fleet:{seed}")
    total = sum(mix.values())
    shares = {model: share / total for model, share in mix.items()}
    models = [model for model, count in _counts(shares, units).items() for _ in range(count)]
    rng.shuffle(models)
    lives = []
    for model, share in zip(models, _age_shares(rng, units), strict=True):
        duty = _choose(rng, DUTY_MIX)
        site = _choose(rng, SITE_MIX)
        mode = GridMode.STAND_ALONE if rng.random() < STAND_ALONE_SHARE else GridMode.GRID_CONNECT
        commissioned = as_of - round(hours * share * 3600 / UTILISATION[duty])
        if commissioned < 0:
            raise ConfigError(f"{hours:g} h on average reaches back before 1970 from the read-out time")
        lives.append((commissioned, model, rng.getrandbits(48), duty, site, mode))
    lives.sort(key=lambda life: life[0])
    return tuple(
        UnitPlan(f"{model}-{number:06d}", model, unit_seed, duty, site, mode, commissioned, as_of)
        for number, (commissioned, model, unit_seed, duty, site, mode) in enumerate(lives, start=1)
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
