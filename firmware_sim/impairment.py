"""A seeded model of a bad line: bit errors, dropped and inserted bytes, bursts.

:class:`Impairment` transforms the bytes that cross a link in one direction.
It is pure (no clocks, no I/O) and deterministic for a given seed and input
chunking, so a failing test can be replayed.  Latency and disconnects are
time- or count-based decisions it reports; carrying them out (delaying a
write, closing a socket) is the link driver's job.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class LineFaults:
    """What is wrong with the line.  Rates are per byte (bit_error_rate per bit)."""

    bit_error_rate: float = 0.0
    drop_rate: float = 0.0
    insert_rate: float = 0.0
    burst_rate: float = 0.0
    """Chance per byte that a burst of garbage replaces the following bytes."""
    burst_length: int = 16
    latency_s: float = 0.0
    disconnect_after: int | None = None
    """Bytes after which the link is cut (None: never)."""

    def __post_init__(self) -> None:
        for name in ("bit_error_rate", "drop_rate", "insert_rate", "burst_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, not {value}")
        if self.burst_length < 1 or self.latency_s < 0:
            raise ConfigError("burst_length must be >= 1 and latency_s >= 0")
        if self.disconnect_after is not None and self.disconnect_after < 0:
            raise ConfigError("disconnect_after must be >= 0")

    @property
    def is_clean(self) -> bool:
        return self == LineFaults(latency_s=self.latency_s, disconnect_after=self.disconnect_after)

    @classmethod
    def parse(cls, text: str) -> LineFaults:
        """From ``"ber=1e-4,drop=0.01,insert=0.01,burst=1e-5,burst_len=32,latency=0.02,cut=5000"``."""
        keys = {
            "ber": "bit_error_rate", "drop": "drop_rate", "insert": "insert_rate",
            "burst": "burst_rate", "burst_len": "burst_length", "latency": "latency_s",
            "cut": "disconnect_after",
        }
        values: dict[str, float | int] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, raw = item.partition("=")
            if not sep or key not in keys:
                raise ConfigError(f"bad impairment {item!r}; use {', '.join(k + '=N' for k in keys)}")
            try:
                field = keys[key]
                values[field] = int(raw) if field in ("burst_length", "disconnect_after") else float(raw)
            except ValueError as exc:
                raise ConfigError(f"bad number in impairment {item!r}") from exc
        return cls(**values)  # type: ignore[arg-type]


class Impairment:
    """Applies :class:`LineFaults` to a byte stream, one direction of a link."""

    def __init__(self, faults: LineFaults, seed: int) -> None:
        self.faults = faults
        self._rng = random.Random(seed)
        self.passed = 0
        self.flipped_bits = 0
        self.dropped = 0
        self.inserted = 0

    @property
    def disconnected(self) -> bool:
        limit = self.faults.disconnect_after
        return limit is not None and self.passed >= limit

    def apply(self, data: bytes) -> bytes:
        """The bytes that come out of the line for *data* going in.

        After the disconnect point everything is swallowed; the caller checks
        :attr:`disconnected` and cuts the link.
        """
        limit = self.faults.disconnect_after
        if limit is not None:
            data = data[: max(0, limit - self.passed)]
        self.passed += len(data)
        if self.faults.is_clean or not data:
            return data
        return self._corrupt(data)

    def _corrupt(self, data: bytes) -> bytes:
        f, rng = self.faults, self._rng
        out = bytearray(data)
        if f.bit_error_rate:
            # Draw the gaps between errors instead of testing every bit.
            bits = len(out) * 8
            pos = self._next_gap(f.bit_error_rate)
            while pos < bits:
                out[pos >> 3] ^= 1 << (pos & 7)
                self.flipped_bits += 1
                pos += 1 + self._next_gap(f.bit_error_rate)
        if f.burst_rate:
            pos = self._next_gap(f.burst_rate)
            while pos < len(out):
                end = min(len(out), pos + f.burst_length)
                out[pos:end] = rng.randbytes(end - pos)
                pos = end + self._next_gap(f.burst_rate)
        if f.drop_rate or f.insert_rate:
            result = bytearray()
            for byte in out:
                if f.insert_rate and rng.random() < f.insert_rate:
                    result.append(rng.randrange(256))
                    self.inserted += 1
                if f.drop_rate and rng.random() < f.drop_rate:
                    self.dropped += 1
                    continue
                result.append(byte)
            out = result
        return bytes(out)

    def _next_gap(self, rate: float) -> int:
        return int(self._rng.expovariate(rate)) if rate < 1.0 else 0
