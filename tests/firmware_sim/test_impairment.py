"""The line impairment: seeded, at the rates asked for, cutting where told."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_sim.impairment import Impairment, LineFaults


def test_clean_line_passes_bytes_unchanged() -> None:
    data = bytes(range(256)) * 10
    assert Impairment(LineFaults(), seed=1).apply(data) == data


def test_rates_are_close_to_what_was_asked() -> None:
    impairment = Impairment(LineFaults(bit_error_rate=1e-3, drop_rate=0.01, insert_rate=0.02), seed=7)
    out = impairment.apply(bytes(200_000))
    assert impairment.flipped_bits == pytest.approx(1_600, rel=0.15)
    assert impairment.dropped == pytest.approx(2_000, rel=0.15)
    assert impairment.inserted == pytest.approx(4_000, rel=0.15)
    assert len(out) == 200_000 - impairment.dropped + impairment.inserted


def test_same_seed_same_damage() -> None:
    faults = LineFaults.parse("ber=1e-3,drop=0.01,insert=0.01,burst=1e-4")
    data = bytes(range(256)) * 100
    assert Impairment(faults, 3).apply(data) == Impairment(faults, 3).apply(data)
    assert Impairment(faults, 3).apply(data) != Impairment(faults, 4).apply(data)


@given(st.lists(st.binary(max_size=50), max_size=20), st.integers(0, 500))
def test_disconnect_passes_exactly_the_first_n_bytes(chunks: list[bytes], limit: int) -> None:
    impairment = Impairment(LineFaults(disconnect_after=limit), seed=0)
    out = b"".join(impairment.apply(chunk) for chunk in chunks)
    assert out == b"".join(chunks)[:limit]
    assert impairment.disconnected == (sum(map(len, chunks)) >= limit)


@pytest.mark.parametrize(
    "text", ["ber", "ber=x", "drop=2", "colour=1", "burst_len=0", "cut=-1", "latency=-1"]
)
def test_bad_specs_are_refused_with_a_message(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        LineFaults.parse(text)


def test_parse_reads_every_key() -> None:
    faults = LineFaults.parse("ber=1e-5, drop=0.01,insert=0.02,burst=1e-6,burst_len=8,latency=0.1,cut=99")
    assert faults == LineFaults(1e-5, 0.01, 0.02, 1e-6, 8, 0.1, 99)
