"""The fault catalogue, the restart policies, and when faults arrive.

:data:`CATALOGUE` lists every fault code the emulated controller can raise.
What a code means (its name, subsystem, severity - WARNING keeps running,
NORMAL_SHUTDOWN goes through COOLDOWN, FAST_SHUTDOWN through WARMDOWN - the
SunSpec-style event flags it sets, description and action) is defined once,
in :mod:`protocol.fault_codes`, which the reader uses too; this module adds
only how the emulator simulates it: its :class:`RestartPolicy` (clear itself
after a delay, or lock the unit out until a technician clears it) and how
often it arrives among its class.

:class:`FaultArrivals` decides when the next fault arrives, on the
*operating-hours* clock: shutdown-class faults as a Poisson process at the
model's MTBF, warnings as another at the model's warning rate (exponential
gaps), and scripted faults ("code 5005 at operating hour 1200",
:func:`parse_scripted_fault`).  The random arrivals are a pure function of
the unit's seed and its operating seconds (drawn block by block of
operating hours), so they carry on across power-ups exactly as if the unit
had never stopped: nothing but the operating-hours counter needs keeping.

This module must not know about engine states, wall-clock time or records:
what a fault does to the machine is the simulator's business.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.enums import EventFlag, GridMode, Severity, Subsystem
from protocol.fault_codes import FAULT_CODES, FaultDefinition

from .errors import ConfigError


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How a fault clears.

    Auto-clearing faults clear ``delay_s`` seconds after they were raised
    (warnings) or after the unit has come to rest in STAND BY (shutdowns),
    and the unit may start again.  Lockout faults hold the unit in
    FAULT_LOCKOUT until a technician clears them, after a seeded repair time
    averaging ``mean_repair_h`` hours.
    """

    delay_s: int = 0
    lockout: bool = False
    mean_repair_h: float = 0.0

    def __post_init__(self) -> None:
        if self.lockout and self.mean_repair_h <= 0:
            raise ConfigError("a lockout needs a positive mean repair time")
        if not self.lockout and self.delay_s <= 0:
            raise ConfigError("an auto-clearing fault needs a positive delay")


def auto_clear(delay_s: int) -> RestartPolicy:
    """Clears itself *delay_s* seconds after it was raised (warnings) or after the unit came to rest."""
    return RestartPolicy(delay_s=delay_s)


def lockout(mean_repair_h: float) -> RestartPolicy:
    """Holds the unit in FAULT_LOCKOUT until a technician clears it, *mean_repair_h* hours on average."""
    return RestartPolicy(lockout=True, mean_repair_h=mean_repair_h)


@dataclass(frozen=True, slots=True)
class FaultCode:
    """One entry of the catalogue: a code's meaning (from :mod:`protocol.fault_codes`) and how
    the emulator simulates it."""

    meaning: FaultDefinition
    restart: RestartPolicy
    weight: float = 1.0
    """Relative frequency among the random arrivals of its class (0: only scripted or injected)."""
    grid_connect_only: bool = False
    """Only arises with a utility to follow (never in stand-alone mode)."""

    def __post_init__(self) -> None:
        if self.severity not in (Severity.WARNING, Severity.NORMAL_SHUTDOWN, Severity.FAST_SHUTDOWN):
            raise ConfigError(f"fault {self.code}: the catalogue does not raise severity {self.severity!r}")
        if self.severity == Severity.WARNING and self.restart.lockout:
            raise ConfigError(f"fault {self.code}: a warning cannot lock the unit out")

    @property
    def code(self) -> int:
        return self.meaning.code

    @property
    def title(self) -> str:
        return self.meaning.name

    @property
    def subsystem(self) -> Subsystem:
        return self.meaning.subsystem

    @property
    def severity(self) -> Severity:
        return self.meaning.severity

    @property
    def flags(self) -> EventFlag:
        return self.meaning.flags


AMBIENT_PRESSURE_SENSOR_FAULT = 2012
"""While active, the controller shows the ISO default of 101.325 kPa for ambient pressure."""

_SIMULATION: dict[int, tuple[RestartPolicy, float, bool]] = {
    # code: (restart policy, weight among random arrivals of its class, grid connect only)
    2001: (auto_clear(120), 1, False),
    2010: (lockout(2), 0.5, False),
    2012: (auto_clear(4 * 3600), 1, False),
    2022: (lockout(2), 0.3, False),
    2040: (auto_clear(600), 0.5, False),
    3001: (auto_clear(3600), 2, False),
    3005: (auto_clear(300), 1, False),
    3010: (auto_clear(900), 1, False),
    4001: (auto_clear(900), 3, False),
    4005: (lockout(8), 1, False),
    4011: (auto_clear(1800), 3, False),
    4020: (lockout(10), 1, False),
    5002: (auto_clear(300), 0, False),
    5005: (lockout(6), 1, False),
    5008: (lockout(12), 0.5, False),
    5012: (auto_clear(300), 0, False),
    5015: (auto_clear(600), 0, False),
    5020: (auto_clear(2 * 3600), 2, False),
    5031: (lockout(24), 0.5, False),
    6003: (auto_clear(900), 1, False),
    6011: (auto_clear(1800), 1, False),
    6020: (lockout(10), 0.5, False),
    7002: (lockout(16), 1, False),
    7011: (auto_clear(1200), 1, False),
    7015: (auto_clear(3600), 3, False),
    7020: (auto_clear(600), 1, False),
    8001: (auto_clear(300), 4, True),
    8002: (auto_clear(300), 2, True),
    8005: (auto_clear(300), 2, True),
    8006: (auto_clear(300), 1, True),
    8010: (auto_clear(300), 3, True),
    8020: (auto_clear(1800), 2, True),
    8030: (lockout(8), 1, False),
    9001: (auto_clear(600), 1, False),
    9005: (auto_clear(600), 1, False),
    9012: (auto_clear(3600), 2, False),
    9020: (auto_clear(2 * 3600), 1, False),
}
"""How the emulator simulates each code of :data:`protocol.fault_codes.FAULT_CODES` (every one)."""
if _SIMULATION.keys() != FAULT_CODES.keys():  # pragma: no cover - a table out of step fails at import
    raise ConfigError(f"the emulator simulates {sorted(_SIMULATION.keys() ^ FAULT_CODES.keys())} "
                      "differently from protocol.fault_codes")

CATALOGUE: dict[int, FaultCode] = {
    code: FaultCode(FAULT_CODES[code], restart, weight, grid_connect_only=grid)
    for code, (restart, weight, grid) in _SIMULATION.items()
}
"""Every fault code the emulated controller can raise: protocol's meaning, with the emulator's
restart policy and frequency."""


START_FAILURE_SHARE = 0.2
"""Share of a model's failures that arrive at starts (ignition, light off, acceleration) in the
reference duty; the rest arrive per operating hour (our assumption)."""
REFERENCE_HOURS_PER_START = 70.0
"""Operating hours per start of the reference duty: the default fleet's mix (a fifth of its
units peak-shaving at a start per 14 h, the rest starting only after a stop), for which the
model's MTBF holds as a whole (our assumption)."""
START_FAULTS = (5002, 5012, 5015)
"""Faults a failed start raises: 5002 or 5012 in LIGHT OFF / RELIGHT, 5015 in ACCEL."""


def hourly_failure_rate(mtbf_h: float) -> float:
    """Shutdown-class faults per operating hour, besides those at starts."""
    return (1 - START_FAILURE_SHARE) / mtbf_h


def start_failure_probability(mtbf_h: float) -> float:
    """Chance that one start fails, so that the reference duty fails once per *mtbf_h* hours."""
    return START_FAILURE_SHARE * REFERENCE_HOURS_PER_START / mtbf_h


def get_fault(code: int) -> FaultCode:
    """The catalogue entry for *code*; ConfigError (a ValueError) for a code not in the catalogue."""
    try:
        return CATALOGUE[code]
    except KeyError:
        raise ConfigError(f"unknown fault code {code}; the catalogue has {len(CATALOGUE)} codes "
                         f"({min(CATALOGUE)}..{max(CATALOGUE)})") from None


@dataclass(frozen=True, slots=True)
class ScriptedFault:
    """Raise ``code`` when the lifetime operating-hours counter reaches ``at_operating_hours``."""

    code: int
    at_operating_hours: float

    def __post_init__(self) -> None:
        get_fault(self.code)
        if not (self.at_operating_hours >= 0 and math.isfinite(self.at_operating_hours)):
            raise ConfigError(
                f"scripted fault {self.code}: operating hour {self.at_operating_hours} is not a number >= 0"
            )

    @property
    def at_operating_s(self) -> int:
        return round(self.at_operating_hours * 3600)

    def __str__(self) -> str:
        """As written on the command line: ``5005@1200h``."""
        return f"{self.code}@{self.at_operating_hours:g}h"


_SCRIPTED = re.compile(r"\s*(\d{4})\s*@\s*(\d+(?:\.\d+)?)\s*h?\s*")


def parse_scripted_fault(text: str) -> ScriptedFault:
    """``"5005@1200h"`` (code 5005 at operating hour 1200) -> ScriptedFault.

    Raises ConfigError (a ValueError) for text of another shape or an unknown code.
    """
    match = _SCRIPTED.fullmatch(text)
    if match is None:
        raise ConfigError(f"scripted fault {text!r} is not CODE@HOURSh, e.g. 5005@1200h")
    return ScriptedFault(int(match[1]), float(match[2]))


class _Draw:
    """Weighted choice among catalogue entries of one class (warnings, or shutdowns) for one mode."""

    def __init__(self, shutdowns: bool, mode: GridMode) -> None:
        entries = [
            f for f in CATALOGUE.values()
            if f.severity.is_failure == shutdowns and f.weight > 0
            and not (f.grid_connect_only and mode == GridMode.STAND_ALONE)
        ]
        self.entries = entries
        self.cum_weights = list(itertools.accumulate(f.weight for f in entries))

    def choose(self, rng: random.Random) -> FaultCode:
        return rng.choices(self.entries, cum_weights=self.cum_weights)[0]


BLOCK_S = 1000 * 3600
"""The operating-hours clock is cut into blocks this long; each block's arrivals come from a
generator seeded with the unit's seed, the source and the block's number alone."""
_LAST_BLOCK = 100_000
"""No arrival is drawn past 10^8 operating hours (far beyond any unit's life): a rate so low
that nothing arrives before then is no rate at all."""


class _PoissonOnHours:
    """One Poisson process on the operating-hours clock, a pure function of seed and hours.

    Block ``k`` covers operating seconds ``(k * BLOCK_S, (k + 1) * BLOCK_S]``;
    its arrivals are exponential gaps from the block's start, rounded up to
    whole seconds, each with the catalogue entry it raises, all drawn from
    ``random.Random(f"{seed}:{source}:{k}")``.  A Poisson process cut into
    disjoint blocks and drawn independently in each is the same Poisson
    process, so a unit powered up at any operating second meets exactly the
    arrivals it would have met had it never stopped.
    """

    def __init__(self, rate_per_h: float, draw: _Draw, seed: int, source: str, after_s: float) -> None:
        self._rate_per_s = rate_per_h / 3600 if rate_per_h > 0 and draw.entries else 0.0
        self._draw = draw
        self._label = f"{seed}:{source}"
        self._block = max(0, math.ceil(after_s / BLOCK_S) - 1)
        self._due: list[tuple[int, FaultCode]] = []
        """This block's arrivals still to come, the next one last."""
        self._fill(after_s)

    def _fill(self, after_s: float) -> None:
        while not self._due and self._rate_per_s and self._block <= _LAST_BLOCK:
            k = self._block
            rng = random.Random(f"{self._label}:{k}")
            start, end = k * BLOCK_S, (k + 1) * BLOCK_S
            t = float(start)
            block: list[tuple[int, FaultCode]] = []
            while True:
                t += rng.expovariate(self._rate_per_s)
                if t >= end:
                    break
                block.append((max(start + 1, math.ceil(t)), self._draw.choose(rng)))
            self._due = [a for a in reversed(block) if a[0] > after_s]
            self._block += 1

    @property
    def next_s(self) -> float:
        return self._due[-1][0] if self._due else math.inf

    @property
    def next_code(self) -> int:
        return self._due[-1][1].code

    def pop(self) -> FaultCode:
        at, fault = self._due.pop()
        self._fill(at)
        return fault


class FaultArrivals:
    """The faults due on the operating-hours clock, in order.

    Three independent sources: shutdown-class faults as a Poisson process
    at the model's per-hour failure rate (:func:`hourly_failure_rate`; the
    rest of its failures arrive at starts, the simulator's business),
    warnings as another at the warning rate (each a
    :class:`_PoissonOnHours`, so what arrives after operating second *s*
    depends only on the seed and *s*: the process carries on across
    power-ups as if the unit had never stopped), and the scripted list.
    Random arrivals at or before the restored operating second (they
    happened before the power-up) never fire again; scripted faults whose
    operating hour has already passed never fire.  At equal times scripted
    faults come first, then shutdowns, then warnings.
    """

    def __init__(
        self,
        *,
        mtbf_h: float,
        warning_rate_per_h: float,
        mode: GridMode,
        seed: int,
        operating_s: float,
        scripted: Sequence[ScriptedFault] = (),
    ) -> None:
        after = operating_s
        self._failures = _PoissonOnHours(
            hourly_failure_rate(mtbf_h), _Draw(True, mode), seed, "failures", after
        )
        self._warnings = _PoissonOnHours(warning_rate_per_h, _Draw(False, mode), seed, "warnings", after)
        pending = [s for s in scripted if s.at_operating_s >= operating_s]
        self._scripted = sorted(pending, key=lambda s: s.at_operating_s, reverse=True)  # next one last
        self._passed = tuple(s for s in scripted if s.at_operating_s < operating_s)

    @property
    def scripted_unraised(self) -> tuple[ScriptedFault, ...]:
        """The scripted faults not raised so far, in operating-hour order: those still to come, and
        those whose hour had passed before the power-up (they never fire)."""
        return tuple(sorted((*self._passed, *self._scripted), key=lambda s: s.at_operating_s))

    @property
    def next_operating_s(self) -> float:
        """Lifetime operating seconds at which the next fault arrives (``inf`` if none will)."""
        scripted = self._scripted[-1].at_operating_s if self._scripted else math.inf
        return min(scripted, self._failures.next_s, self._warnings.next_s)

    @property
    def next_code(self) -> int | None:
        """The code :meth:`pop` will return next (None if no fault will arrive)."""
        due = self.next_operating_s
        if math.isinf(due):
            return None
        if self._scripted and self._scripted[-1].at_operating_s == due:
            return self._scripted[-1].code
        source = self._failures if self._failures.next_s == due else self._warnings
        return source.next_code

    def pop(self) -> FaultCode:
        """The fault due at :attr:`next_operating_s`; the next one from its source follows it."""
        due = self.next_operating_s
        if math.isinf(due):
            raise LookupError("no fault will arrive")
        if self._scripted and self._scripted[-1].at_operating_s == due:
            return CATALOGUE[self._scripted.pop().code]
        if self._failures.next_s == due:
            return self._failures.pop()
        return self._warnings.pop()
