"""Links with a long round trip (a cellular or satellite modem), on the in-process line and a virtual clock.

The line (tests/host/loopback.py) holds what the host writes for ``latency_s`` before the device sees
it: the whole round trip.  Figures held: a pull completes with every record and none fetched twice
at round trips from 0.5 s to 3 s (before the round trip was measured, 1.4 s gave "unit stopped
sending records"); a one-try exchange (the authentication challenge) gets its answer on a 3 s link;
beyond three times ``--timeout`` the session start cannot reach the device, and a longer
``--timeout`` (the first guess) reaches it; a clean local link keeps the timeouts it had; an answer
that comes after the next try went times its own try on a clean line, and counts from the latest
try on a damaged one (there a lost frame delimiter held its request back).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from host.archive import Archive
from host.driver import DEFAULT_TIMEOUT, Client
from host.errors import LinkTimeout
from host.line_health import QUIET_S
from host.pull import idle_timeout, pull
from protocol.enums import AccessLevel
from tests.host.loopback import Line, ListUnit, VirtualClock, make_records
from tests.host.test_client_session import Scripted, well_behaved

N = 3000
RAWS = make_records(N)
BAUD = 115_200


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        yield opened


@pytest.mark.parametrize("round_trip_s", [0.5, 1.4, 2.0, 3.0])
def test_a_pull_over_a_slow_link_gets_every_record_once(archive: Archive, round_trip_s: float) -> None:
    unit = ListUnit(list(RAWS))
    line = Line(unit, baud=BAUD, latency_s=round_trip_s)
    result = pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance)
    assert result.added == result.received == N
    assert list(archive.iter_raw(unit.serial)) == list(enumerate(RAWS))


def test_a_one_try_exchange_waits_for_the_measured_round_trip() -> None:
    """The authentication challenge is sent once (a repeat would void the nonce): on a 3 s link it
    must wait more than the 2 s it used to."""
    line = Line(ListUnit(list(RAWS)), baud=BAUD, latency_s=3.0)
    client = Client(line.connect(), timeout=DEFAULT_TIMEOUT, clock=line.clock)
    client.start()
    assert client.rtt.srtt is not None and client.rtt.srtt >= 3.0
    assert client.answer_timeout > 3.0
    assert len(client.auth_challenge(AccessLevel.MAINTENANCE)) > 0


def test_a_round_trip_beyond_three_timeouts_needs_a_longer_first_guess(archive: Archive) -> None:
    line = Line(ListUnit(list(RAWS)), baud=BAUD, latency_s=10.0)
    with pytest.raises(LinkTimeout, match="no answer to IDENTIFY in 3 x 2 s"):
        pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance, max_reconnects=0)
    result = pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance, timeout=4.0)
    assert result.added == result.received == N


def test_a_clean_local_link_keeps_its_timeouts() -> None:
    line = Line(ListUnit(list(RAWS)), baud=BAUD)
    client = Client(line.connect(), timeout=DEFAULT_TIMEOUT, clock=line.clock)
    client.start()
    assert client.rtt.samples >= 2
    assert client.answer_timeout == DEFAULT_TIMEOUT
    assert client.quiet == QUIET_S
    assert idle_timeout(BAUD, client.rtt.rto) == idle_timeout(BAUD)


class LostDelimiter(Scripted):
    """The first CLOCK_GET's frame loses its last delimiter: the device sees it only when the next
    request's leading delimiter completes it.  With *damage*, a damaged frame arrives meanwhile."""

    def __init__(self, clock: VirtualClock, *, damage: bool) -> None:
        super().__init__(well_behaved, clock)
        self._damage = damage
        self._held: bytes | None = None
        self._holding = True

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif self._holding and len(self.requests) == 1:  # the first request after the ABORT
            self._holding = False
            self._held = data
            if self._damage:
                self._out += b"\x00\x11\x22\x33\x44\x55\x66\x77\x00"  # fails verification
            return
        super().write(data)


def test_on_a_clean_line_a_late_answer_times_its_own_try() -> None:
    """No damage: an answer after the next try went is a link slower than the timeout."""
    clock = VirtualClock()
    client = Client(LostDelimiter(clock, damage=False), timeout=1.0, clock=clock)
    client.abort()
    client.clock_get()
    assert client.session.damaged_frames == 0
    assert client.rtt.srtt is not None and client.rtt.srtt > 0.1


def test_on_a_damaged_line_a_late_answer_counts_from_the_latest_try() -> None:
    """On a line that damages frames, the late answer is a request its lost delimiter held back:
    it must not make every timeout of the pull long."""
    clock = VirtualClock()
    client = Client(LostDelimiter(clock, damage=True), timeout=1.0, clock=clock)
    client.abort()
    client.clock_get()
    assert client.session.damaged_frames == 1
    assert isinstance(client.transport, Scripted) and len(client.transport.requests) == 3
    assert client.rtt.srtt is not None and client.rtt.srtt < 0.01
    assert client.rtt.rto < 0.1
