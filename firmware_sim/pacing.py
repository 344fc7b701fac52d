"""Line-rate pacing: how many bytes a real UART would have sent by now.

Pseudo-terminals and sockets ignore baud entirely, so the emulator meters its
own output to ``baud / 10`` bytes per second (8N1: a start bit, 8 data bits,
a stop bit).  :class:`Pacer` is a token bucket driven by a time value the
caller passes in; it never reads a clock itself.
"""

from __future__ import annotations

from .errors import ConfigError

BITS_PER_BYTE_8N1 = 10


class Pacer:
    """Token bucket at ``baud / 10`` bytes per second; ``baud=None`` is unpaced.

    A small burst allowance (``burst_s`` of line time) absorbs scheduler
    jitter without letting an idle line save up credit for a flood.
    """

    def __init__(self, baud: int | None, now: float, burst_s: float = 0.02) -> None:
        if baud is not None and baud <= 0:
            raise ConfigError(f"baud must be positive, not {baud}")
        self._burst_s = burst_s
        self._credit = 0.0
        self._last = now
        self.baud = baud

    @property
    def bytes_per_second(self) -> float | None:
        return None if self.baud is None else self.baud / BITS_PER_BYTE_8N1

    def set_baud(self, baud: int | None, now: float) -> None:
        """Change the rate (an RFC 2217 client asked for another baud)."""
        self.allowance(now)
        if baud is not None and baud <= 0:
            raise ConfigError(f"baud must be positive, not {baud}")
        self.baud = baud

    def allowance(self, now: float) -> int:
        """Whole bytes that may be sent now (unbounded when unpaced: -1)."""
        rate = self.bytes_per_second
        if rate is None:
            return -1
        elapsed = max(0.0, now - self._last)
        self._last = now
        cap = max(1.0, rate * self._burst_s)
        self._credit = min(cap, self._credit + elapsed * rate)
        return int(self._credit)

    def consume(self, sent: int) -> None:
        if self.baud is not None:
            self._credit -= sent

    def wait_for(self, wanted: int) -> float:
        """Seconds until *wanted* bytes will be allowed (0 when unpaced or now)."""
        rate = self.bytes_per_second
        if rate is None:
            return 0.0
        return max(0.0, (min(wanted, max(1.0, rate * self._burst_s)) - self._credit) / rate)
