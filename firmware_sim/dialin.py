"""What happens when a host dials a unit: busy, no answer, a slow handshake, a dropped call.

A fleet read over modems and terminal servers does not answer every call.
:class:`DialFaults` says how often each mishap happens (``--dial`` on
``turbosim serve-fleet``); :class:`Exchange` draws the fate of each call to
one unit (:class:`CallFate`), seeded by the unit and the call's number, so the
n-th call to a unit meets the same fate in every run with the same seed,
however the calls were timed.  A call is one of:

- busy: the line is taken at once and closed (``busy`` share of calls);
- no answer: the line is taken and nothing ever answers (``silent`` share): the
  caller's own timeout ends the call;
- answered, after the modem handshake (``delay`` seconds, during which what the
  host sends is lost, as a modem still training loses it), and, for a ``drop``
  share of the answered calls, dropped after a number of bytes towards the host
  drawn uniformly from 1 to ``drop_within``.

This module is pure: it draws fates and nothing else.  Carrying them out on a
line is :class:`~firmware_sim.links.DialInLink`'s job.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

from .errors import ConfigError


class Answer(enum.Enum):
    ANSWERED = "answered"
    BUSY = "busy"
    SILENT = "silent"


@dataclass(frozen=True)
class DialFaults:
    """Shares of calls (0..1) that meet each mishap, and the handshake's length."""

    delay_s: float = 0.0
    busy: float = 0.0
    silent: float = 0.0
    drop: float = 0.0
    """Share of the answered calls that are dropped mid-transfer."""
    drop_within: int = 16384
    """A dropped call is cut after 1 to this many bytes towards the host."""

    def __post_init__(self) -> None:
        for name in ("busy", "silent", "drop"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"dial {name} must be a share between 0 and 1, not {value}")
        if self.busy + self.silent > 1.0:
            raise ConfigError(f"dial busy ({self.busy}) and silent ({self.silent}) add up to more than 1")
        if not 0.0 <= self.delay_s < 3600:
            raise ConfigError(f"dial delay must be 0 to 3600 s, not {self.delay_s}")
        if self.drop_within < 1:
            raise ConfigError(f"dial drop_within must be at least 1 byte, not {self.drop_within}")

    @classmethod
    def parse(cls, text: str) -> DialFaults:
        """From ``"delay=2,busy=0.05,silent=0.02,drop=0.05,drop_within=20000"`` (any subset)."""
        keys = {"delay": "delay_s", "busy": "busy", "silent": "silent", "drop": "drop",
                "drop_within": "drop_within"}
        values: dict[str, float | int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = item.partition("=")
            if not sep or key not in keys:
                raise ConfigError(f"bad dial fault {item!r}; use {', '.join(k + '=N' for k in keys)}")
            try:
                values[keys[key]] = int(raw) if key == "drop_within" else float(raw)
            except ValueError:
                raise ConfigError(f"bad number in dial fault {item!r}") from None
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class CallFate:
    answer: Answer
    delay_s: float = 0.0
    """Seconds of handshake before the unit hears the host (answered calls)."""
    drop_after: int | None = None
    """Bytes towards the host after which the call is dropped (None: never)."""


class Exchange:
    """The fates of the calls to one unit, in the order they come."""

    def __init__(self, faults: DialFaults, seed: str) -> None:
        self.faults = faults
        self._seed = seed
        self.calls = 0

    def next_call(self) -> CallFate:
        """The fate of the next call (the first is call 1)."""
        self.calls += 1
        faults = self.faults
        rng = random.Random(f"{self._seed}:call:{self.calls}")
        roll = rng.random()
        if roll < faults.busy:
            return CallFate(Answer.BUSY)
        if roll < faults.busy + faults.silent:
            return CallFate(Answer.SILENT)
        drop_after = rng.randint(1, faults.drop_within) if rng.random() < faults.drop else None
        return CallFate(Answer.ANSWERED, faults.delay_s, drop_after)
