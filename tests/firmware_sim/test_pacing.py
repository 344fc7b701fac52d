"""The pacer meters output to baud/10 bytes per second on a clock we drive."""

from __future__ import annotations

import pytest

from firmware_sim.pacing import Pacer


def drain(pacer: Pacer, start: float, seconds: float, step: float) -> int:
    sent, now = 0, start
    while now < start + seconds:
        allowed = pacer.allowance(now)
        pacer.consume(allowed)
        sent += allowed
        now += step
    return sent


@pytest.mark.parametrize("baud", [9600, 19200, 115200, 921600])
@pytest.mark.parametrize("step", [0.0005, 0.003, 0.015])
def test_long_run_rate_matches_the_line(baud: int, step: float) -> None:
    sent = drain(Pacer(baud, now=0.0), 0.0, 10.0, step)
    assert sent == pytest.approx(baud / 10 * 10.0, rel=0.01)


def test_an_idle_line_does_not_save_up_credit() -> None:
    pacer = Pacer(115200, now=0.0)
    assert pacer.allowance(100.0) <= 115200 / 10 * 0.02 + 1


def test_unpaced_allows_everything() -> None:
    pacer = Pacer(None, now=0.0)
    assert pacer.allowance(0.0) == -1
    assert pacer.wait_for(1000) == 0.0


def test_baud_change_changes_the_rate() -> None:
    pacer = Pacer(9600, now=0.0)
    drain(pacer, 0.0, 1.0, 0.001)
    pacer.set_baud(115200, now=1.0)
    assert drain(pacer, 1.0, 5.0, 0.001) == pytest.approx(11520 * 5, rel=0.01)


def test_bad_baud_is_refused() -> None:
    with pytest.raises(ValueError):
        Pacer(0, now=0.0)
