"""LineHealth: the noisy-line judgements, from the frames a session has received.

Fed through a real :class:`~host.session.ClientSession` with RECORDS frames (whole, or with a byte
flipped): a line that damaged nothing keeps full frames; a burst of damage asks for short frames;
once the burst is over and good frames come again the frames grow back; a timeout raises the level
one step until a window comes through; the idle timeout's floor on a noisy line follows whether its
timeouts proved right.
"""

from __future__ import annotations

from host.line_health import IDLE_FLOOR_S, QUIET_S, LineHealth
from host.rtt import RoundTrip
from host.session import ClientSession
from protocol.messages import ReadRange, Records, encode_message
from tests.host.loopback import make_records

RECORDS = b"".join(make_records(14))


def frames(session: ClientSession, health: LineHealth, count: int, *, damaged: bool) -> None:
    """*count* answers to one READ_RANGE, each a RECORDS frame of 14 records, one byte flipped if
    *damaged*; the health observes after each."""
    seq, _ = session.send(ReadRange(0, 14 * count))
    for _ in range(count):
        wire = bytearray(encode_message(Records(seq, RECORDS), 7))
        if damaged:
            wire[len(wire) // 2] ^= 0x40
        session.receive_data(bytes(wire))
        health.observe(session)


def test_a_clean_line_keeps_full_frames_and_the_long_idle_floor() -> None:
    session, health = ClientSession(), LineHealth()
    frames(session, health, 50, damaged=False)
    assert (health.level, health.noisy) == (0, False)
    assert health.idle_timeout(115_200) >= IDLE_FLOOR_S


def test_frames_shrink_in_a_burst_of_noise_and_grow_back_after_it() -> None:
    session, health = ClientSession(), LineHealth()
    frames(session, health, 20, damaged=False)
    frames(session, health, 30, damaged=True)
    in_burst = health.level
    assert in_burst >= 3 and health.noisy
    frames(session, health, 3000, damaged=False)
    assert health.level == 0 < in_burst
    assert health.noisy  # the line has shown it can damage frames: its limits stay a noisy line's


def test_a_timeout_raises_the_level_until_a_window_comes_through() -> None:
    health = LineHealth()
    health.timed_out()
    health.timed_out()
    assert health.level == 2
    health.came_through()
    assert health.level == 1


def test_the_noisy_idle_floor_halves_on_right_timeouts_and_doubles_back_on_false_ones() -> None:
    session, health = ClientSession(), LineHealth(RoundTrip())
    frames(session, health, 5, damaged=False)
    frames(session, health, 1, damaged=True)
    for _ in range(10):
        health.timeout_proved(false=False)
    assert health.idle_floor == QUIET_S
    health.timeout_proved(false=True)
    assert health.idle_floor == 2 * QUIET_S
    for _ in range(10):
        health.timeout_proved(false=True)
    assert health.idle_floor == IDLE_FLOOR_S
