"""What a benchmark reports: figures beside their limits, printed and saved.

A :class:`Figure` is one measured value (a median over repeats) with the
target it must meet and, where there is one, the limit it is measured
against in the same run: the same quantity at its physical or practical
limit (the line rate, ``struct.iter_unpack``, a bare pty echo), printed as
the ratio ``value / limit`` (the machine is shared and noisy: ratios travel,
absolute numbers do not), and described in ``reference``.  This module
formats and stores; it measures nothing.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: float | None
    higher_is_better: bool = True
    reference: str = ""
    """What it is measured beside, e.g. 'struct.iter_unpack: 1.2 M rec/s'."""
    limit: float | None = None
    """The same quantity at its limit, measured in the same run, in the same unit."""

    @property
    def of_limit(self) -> float | None:
        """``value / limit``: how close to its limit (for a time, how many times the floor)."""
        return None if not self.limit else self.value / self.limit

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    @property
    def verdict(self) -> str:
        return {None: "info", True: "met", False: "MISSED"}[self.met]


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    """Median of *repeats* calls of *measure*."""
    return statistics.median(measure() for _ in range(repeats))


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fmt(value: float) -> str:
    if value >= 100_000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:,.1f}"
    return f"{value:.3g}"


def table(figures: Sequence[Figure]) -> str:
    rows = [("figure", "value", "target", "verdict", "÷ limit", "measured beside")]
    for f in figures:
        target = "" if f.target is None else ("≥ " if f.higher_is_better else "≤ ") + fmt(f.target)
        ratio = "" if f.of_limit is None else f"{f.of_limit:.3g}"
        rows.append((f.name, f"{fmt(f.value)} {f.unit}", target, f.verdict, ratio, f.reference))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, str]:
    import os

    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": str(os.cpu_count()),
        "system": f"{platform.system()} {platform.release()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def save(figures: Sequence[Figure], path: Path) -> None:
    payload = {
        "machine": machine(),
        "figures": [asdict(f) | {"verdict": f.verdict, "of_limit": f.of_limit} for f in figures],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
