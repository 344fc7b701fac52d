"""How ``--impair`` spreads over a line's two directions, in serve and on the in-process line alike.

Bytes are damaged both ways; latency (the round trip) and the cut (once, after N bytes towards
the host) belong to one direction only (firmware_sim.cli._per_byte says why).  One function
builds the other direction's faults for both, from the dataclass itself, so a new kind of byte
damage reaches both directions without anyone listing it again.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from firmware_sim.cli import _per_byte, inproc_line
from firmware_sim.impairment import LineFaults
from firmware_sim.links import Link, PtyLink

EVERY_FIELD = LineFaults(
    bit_error_rate=1e-5, drop_rate=0.01, insert_rate=0.02, burst_rate=1e-6, burst_length=8,
    latency_s=0.25, disconnect_after=500,
)


def test_every_field_is_set_to_something_other_than_its_default() -> None:
    for field in dataclasses.fields(LineFaults):
        assert getattr(EVERY_FIELD, field.name) != field.default, field.name


def test_the_other_direction_keeps_every_byte_fault_and_drops_only_latency_and_cut() -> None:
    inbound = _per_byte(EVERY_FIELD)
    assert (inbound.latency_s, inbound.disconnect_after) == (0.0, None)
    for field in dataclasses.fields(LineFaults):
        if field.name not in ("latency_s", "disconnect_after"):
            assert getattr(inbound, field.name) == getattr(EVERY_FIELD, field.name), field.name


def test_the_in_process_line_takes_latency_once_and_cuts_the_first_connection_once() -> None:
    unit, line = inproc_line(["--no-pace", "--impair", "ber=1e-5,drop=0.01,latency=0.25,cut=500"])
    try:
        assert line.latency_s == 0.25
        first, second = line.connect(), line.connect()
        assert first._to_host is not None and first._to_host.faults.disconnect_after == 500
        assert second._to_host is not None and second._to_host.faults.disconnect_after is None
        for port in (first, second):
            assert port._to_device is not None
            assert port._to_device.faults == LineFaults(bit_error_rate=1e-5, drop_rate=0.01)
    finally:
        unit.close()


def test_every_link_says_whether_other_machines_reach_it(tmp_path: Path) -> None:
    assert Link().exposed is False
    pty = PtyLink(str(tmp_path / "turbine"))
    try:
        assert pty.exposed is False
    finally:
        pty.close()
