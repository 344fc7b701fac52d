"""A link's round-trip time, smoothed as TCP smooths it (RFC 6298), and the timeout it calls for.

A request's answer names the request's frame seq, so every answer times its own request exactly,
even one sent again (no retransmission ambiguity, as TCP's timestamps give).  Each sample updates::

    first sample R:  SRTT = R                 RTTVAR = R / 2
    then:            RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|
                     SRTT   = 7/8 SRTT   + 1/8 R
    RTO = SRTT + 4 RTTVAR, at most MAX_RTO_S; 0 before any sample

The RTO here has no floor, and no backoff (a pull that times out asks again with an exchange, and
that exchange measures the link anew): each caller adds it to, or bounds it below by, the
wait it would need on a link with no delay (so a clean local link, whose round trip is a fraction
of a millisecond, behaves as it would without this).

Pure: samples in, seconds out; it never reads a clock and knows nothing of frames or ports.
"""

from __future__ import annotations

ALPHA = 1 / 8
BETA = 1 / 4
K = 4
MAX_RTO_S = 60.0
"""RFC 6298 allows a cap of at least 60 s: a satellite hop is well under it."""


class RoundTrip:
    """Smoothed round-trip time and variation of one link, from timed request/answer pairs."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        """Smoothed round trip, seconds; None before the first sample."""
        self.rttvar = 0.0
        """Smoothed mean deviation of the round trip, seconds."""
        self.samples = 0

    def sample(self, seconds: float) -> None:
        """Take in one measured round trip (a request sent to its answer received)."""
        seconds = max(seconds, 0.0)
        if self.srtt is None:
            self.srtt, self.rttvar = seconds, seconds / 2
        else:
            self.rttvar = (1 - BETA) * self.rttvar + BETA * abs(self.srtt - seconds)
            self.srtt = (1 - ALPHA) * self.srtt + ALPHA * seconds
        self.samples += 1

    @property
    def rto(self) -> float:
        """How long an answer may take on this link beyond its transfer time; 0 before any sample."""
        if self.srtt is None:
            return 0.0
        return min(MAX_RTO_S, self.srtt + K * self.rttvar)
