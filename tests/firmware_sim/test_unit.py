"""Unit: the emulated controller over its flash log, clock and device time."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from firmware_sim.clock import SimClock
from firmware_sim.errors import ConfigError
from firmware_sim.faults import parse_scripted_fault
from firmware_sim.flash import FlashImageError
from firmware_sim.session import DeviceSession, UnitPort
from firmware_sim.unit import FIRMWARE_VERSION, Unit, build_unit
from protocol.counters import LifetimeCounters
from protocol.enums import EventKind, RecordType
from protocol.framing import FrameDecoder
from protocol.messages import Identify as IdentifyRequest
from protocol.messages import IdentifyResponse, RangeEnd, ReadRange, Records, decode_message, encode_message
from protocol.records import EventRecord, FaultRecord, Record, SampleRecord, decode_record, scan_records

START = 1_700_000_100
"""A multiple of the 900 s sample interval, so that samples fall on whole hours from START."""
HOUR = 3600


class FakeWall:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def new_unit(seed: int = 1, **kwargs: object) -> tuple[Unit, FakeWall]:
    wall = FakeWall()
    unit = build_unit("C65", "SN-0042", seed=seed, clock=SimClock(START, wall=wall), **kwargs)  # type: ignore[arg-type]
    return unit, wall


def records(unit: Unit) -> list[Record]:
    return [decode_record(raw) for raw in unit.iter_raw(0, unit.next_seq)]


def log_bytes(unit: Unit) -> bytes:
    return b"".join(unit.iter_raw(unit.first_seq, unit.next_seq))


def timestamps_never_decrease(recs: list[Record]) -> bool:
    return all(a.timestamp <= b.timestamp for a, b in zip(recs, recs[1:], strict=False))


def test_power_up_is_logged_at_construction() -> None:
    unit, _ = new_unit()
    first = records(unit)[0]
    assert isinstance(first, EventRecord) and first.kind == EventKind.POWER_UP and first.timestamp == START


def test_history_fast_forward_produces_records() -> None:
    unit, _ = new_unit()
    unit.fast_forward(2000 * HOUR)
    recs = records(unit)
    samples = [r for r in recs if isinstance(r, SampleRecord)]
    assert len(samples) == 2000 * HOUR // 900 + 1
    assert [r.seq for r in recs] == list(range(unit.next_seq))
    assert timestamps_never_decrease(recs)
    assert recs[-1].timestamp == START + 2000 * HOUR == unit.device_time()
    assert unit.counters.operating_s > 1900 * HOUR
    assert samples[-1].snapshot.operating_s <= unit.counters.operating_s


def test_tick_follows_the_clock() -> None:
    unit, wall = new_unit()
    unit.tick()
    before = unit.next_seq
    wall.t += 900 * 4
    unit.tick()
    assert sum(isinstance(r, SampleRecord) for r in records(unit)[before:]) == 4


def test_same_seed_gives_byte_identical_logs() -> None:
    logs = []
    for seed in (5, 5, 6):
        unit, _ = new_unit(seed, scripted_faults=[parse_scripted_fault("5005@100h")])
        unit.fast_forward(300 * HOUR)
        logs.append(log_bytes(unit))
    assert logs[0] == logs[1] != logs[2]
    good, errors = scan_records(logs[0])
    assert not errors
    assert any(isinstance(r, FaultRecord) and r.code == 5005 for r in (decode_record(g[3]) for g in good))


def test_device_time_stays_monotonic_across_a_backwards_clock_set() -> None:
    unit, wall = new_unit()
    unit.fast_forward(10 * HOUR)
    before = unit.next_seq
    last_before = records(unit)[-1].timestamp
    unit.set_device_time(START + 8 * HOUR)
    assert unit.device_time() == START + 8 * HOUR
    wall.t += 3 * HOUR
    unit.tick()
    assert unit.device_time() == START + 11 * HOUR
    recs = records(unit)
    assert timestamps_never_decrease(recs)
    clock_set = recs[before]
    assert isinstance(clock_set, EventRecord) and clock_set.kind == EventKind.CLOCK_SET
    assert (clock_set.value_a, clock_set.value_b) == (START + 10 * HOUR, START + 8 * HOUR)
    later = recs[before + 1 :]
    held = [r for r in later if r.timestamp == last_before]  # until device time passes it again
    assert len(held) == 2 * HOUR // 900
    assert later[: len(held)] == held and all(r.timestamp > last_before for r in later[len(held) :])
    assert later[-1].timestamp == START + 11 * HOUR


def test_forward_clock_set_moves_timestamps_forward() -> None:
    unit, wall = new_unit()
    unit.set_device_time(START + 86_400)
    wall.t += 900
    unit.tick()
    assert records(unit)[-1].timestamp == START + 86_400 + 900


def test_counters_and_seqs_are_restored_after_reopening_the_flash(tmp_path: Path) -> None:
    image = tmp_path / "unit.img"
    with new_unit(flash_path=image, sector_size=4096, sector_count=64)[0] as unit:
        unit.fast_forward(500 * HOUR)
        next_seq = unit.next_seq
        last_sample = [r for r in records(unit) if isinstance(r, SampleRecord)][-1]
        last_timestamp = records(unit)[-1].timestamp
    with new_unit(flash_path=image)[0] as unit:  # the clock starts at START again, the engine restarts
        saved = LifetimeCounters.from_snapshot(last_sample.snapshot)
        assert saved.operating_s > 400 * HOUR
        assert unit.counters == LifetimeCounters(
            saved.operating_s, saved.starts + 1, saved.trips, saved.energy_wh
        )
        power_up, *starting = records(unit)[next_seq:]
        assert isinstance(power_up, EventRecord) and power_up.kind == EventKind.POWER_UP
        assert power_up.seq == next_seq and power_up.timestamp == last_timestamp
        assert all(r.timestamp == last_timestamp for r in starting)
        unit.fast_forward(10 * HOUR)
        assert unit.counters.dominates(saved) and unit.counters.operating_s > saved.operating_s


def test_reopening_with_another_geometry_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "unit.img"
    new_unit(flash_path=image, sector_size=4096, sector_count=16)[0].close()
    with pytest.raises(FlashImageError):
        new_unit(flash_path=image, sector_count=32)


def test_clear_log_logs_the_clear_as_the_new_first_record() -> None:
    unit, _ = new_unit()
    unit.fast_forward(5 * HOUR)
    old_next = unit.next_seq
    first = unit.clear_log()
    assert first == unit.first_seq == old_next and unit.next_seq == old_next + 1
    (event,) = records(unit)
    assert isinstance(event, EventRecord) and event.kind == EventKind.LOG_CLEARED
    assert (event.seq, event.value_a, event.value_b) == (old_next, 0, old_next)


def test_injected_fault_is_logged_now() -> None:
    unit, wall = new_unit()
    wall.t += HOUR
    unit.inject_fault(5005)
    faults = [r for r in records(unit) if isinstance(r, FaultRecord)]
    assert [(f.code, f.timestamp) for f in faults] == [(5005, START + HOUR)]


def test_live_snapshot_is_current() -> None:
    unit, wall = new_unit()
    wall.t += 2 * HOUR
    assert unit.live_snapshot().operating_s == unit.counters.operating_s > HOUR


def test_a_plain_function_clock_can_fast_forward() -> None:
    now = [float(START)]
    unit = build_unit("C30", "SN-7", seed=3, clock=lambda: now[0])
    unit.fast_forward(HOUR)
    now[0] += 60
    assert unit.device_time() == START + HOUR + 60
    unit.tick()


def test_identity_must_fit_its_fields() -> None:
    with pytest.raises(ConfigError):
        build_unit("C65", "X" * 17, seed=1, clock=lambda: START)
    with pytest.raises(ConfigError):
        build_unit("C65", "SN-1", seed=1, clock=lambda: START, max_window=0)


def test_a_session_reads_the_unit_log() -> None:
    unit, _ = new_unit(max_window=10_000)
    unit.fast_forward(1000 * HOUR)
    port: UnitPort = unit
    session = DeviceSession(port, entropy=random.Random(1).randbytes)
    session.receive_data(encode_message(IdentifyRequest(), 1) + encode_message(ReadRange(0, 10_000), 2))
    decoder = FrameDecoder()
    msgs = []
    while session.has_output:
        msgs += [decode_message(f) for f in decoder.feed(session.data_to_send(4096))]  # type: ignore[arg-type]
    ident = msgs[0]
    assert isinstance(ident, IdentifyResponse)
    assert (ident.model, ident.serial, ident.firmware) == ("C65", "SN-0042", FIRMWARE_VERSION)
    assert (ident.first_seq, ident.next_seq, ident.max_window) == (0, unit.next_seq, 10_000)
    raws = [raw for m in msgs if isinstance(m, Records) for *_, raw in scan_records(m.records)[0]]
    assert b"".join(raws) == log_bytes(unit)
    assert isinstance(msgs[-1], RangeEnd) and msgs[-1].sent == unit.next_seq
    assert sum(r[8] == RecordType.SAMPLE for r in raws) == 1000 * HOUR // 900 + 1
