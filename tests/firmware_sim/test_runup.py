"""The pre-trigger buffer: the key channels' last minute before every shutdown-class fault.

What a technician reading the log would notice: every trip is followed by its run-up, one
RUNUP record per key channel, linked to the fault by its seq, ending at the fault's time on
the very values of its freeze-frame; the cause shows in it (TET climbing to its limit before
an over-temperature trip); a warning has none; a fault moments after power-up has only the
seconds the controller was up; and the same seed writes the same bytes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from firmware_sim.faults import ScriptedFault
from firmware_sim.models import C60, ModelProfile, trip_limits
from firmware_sim.runup import RUNUP_SPAN_S, runup_records
from firmware_sim.simulator import Simulator
from protocol.enums import RunupChannel, Severity
from protocol.formats import RUNUP_POINTS
from protocol.records import (
    RUNUP_CHANNELS,
    FaultRecord,
    Record,
    RunupRecord,
    Snapshot,
    channel_value,
    encode_record,
)

HOUR = 3600
JAN_1_2024 = 1_704_067_200


class Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> int:
        self.records.append(record)
        return len(self.records) - 1


def run(profile: ModelProfile = C60, hours: int = 4, **settings: Any) -> list[Record]:
    sink = Sink()
    sim = Simulator(profile, start_time=JAN_1_2024, log=sink, **settings)
    sim.advance_to(JAN_1_2024 + hours * HOUR)
    return sink.records


def runups_of(records: list[Record], fault_seq: int) -> list[RunupRecord]:
    return [r for r in records if isinstance(r, RunupRecord) and r.fault_seq == fault_seq]


def test_every_trip_of_a_life_has_its_run_up_ending_on_its_freeze_frame() -> None:
    fragile = dataclasses.replace(C60, mtbf_h=50.0)  # a failure every ~62 operating hours
    records = run(profile=fragile, seed=8, duty="peak-shaving", sample_interval_s=HOUR, hours=120 * 24)
    faults = [(seq, r) for seq, r in enumerate(records) if isinstance(r, FaultRecord)]
    trips = [(seq, f) for seq, f in faults if Severity(f.severity).is_failure]
    assert len(trips) >= 20 and len(trips) < len(faults)  # warnings too
    for seq, fault in faults:
        runups = runups_of(records, seq)
        if not Severity(fault.severity).is_failure:
            assert runups == []
            continue
        assert records[seq + 1 : seq + 1 + len(RUNUP_CHANNELS)] == runups  # right after the fault
        assert [r.channel for r in runups] == list(RUNUP_CHANNELS)
        for runup in runups:
            assert runup.timestamp == fault.timestamp and runup.interval_s == 1
            assert runup.points == RUNUP_POINTS
            end, last = runup.series()[-1]
            assert end == fault.timestamp
            step = RUNUP_CHANNELS[runup.channel].step
            assert abs(last - channel_value(fault.freeze, runup.channel)) <= step / 2 + 1e-9


def test_an_over_temperature_run_up_shows_tet_climbing_over_the_limit() -> None:
    records = run(seed=5, sample_interval_s=60, scripted_faults=[ScriptedFault(5005, 3.0)])
    seq, trip = next(
        (s, r) for s, r in enumerate(records) if isinstance(r, FaultRecord) and r.code == 5005
    )
    tet = next(r for r in runups_of(records, seq) if r.channel == RunupChannel.TET_AVG)
    values = [v for _, v in tet.series()]
    assert values == sorted(values)  # rising all along the minute
    assert values[0] < C60.tet_limit_c < values[-1]
    assert values[-2] > values[0] + 2  # the drift, not only the last second
    assert values[-1] == pytest.approx(trip.freeze.tet_avg_c, abs=0.05)


@pytest.mark.parametrize("code", [5008, 8002, 8005])
def test_a_trip_with_a_cause_ends_its_run_up_beyond_the_limit_from_a_normal_minute(code: int) -> None:
    records = run(seed=3, sample_interval_s=HOUR, scripted_faults=[ScriptedFault(code, 2.0)])
    seq = next(s for s, r in enumerate(records) if isinstance(r, FaultRecord) and r.code == code)
    limit = trip_limits(C60)[code]
    channel = next(c for c, spec in RUNUP_CHANNELS.items() if spec.key == limit.channel)
    values = [v for _, v in next(r for r in runups_of(records, seq) if r.channel == channel).series()]
    assert limit.crossed(values[-1])
    assert not any(limit.crossed(v) for v in values[:-1])


def test_a_trip_moments_after_power_up_holds_only_the_seconds_the_controller_was_up() -> None:
    sink = Sink()
    sim = Simulator(C60, seed=2, start_time=JAN_1_2024, log=sink, sample_interval_s=1)
    sim.advance_to(JAN_1_2024 + 20)
    sim.inject_fault(5008)
    fault_seq = next(s for s, r in enumerate(sink.records) if isinstance(r, FaultRecord))
    for runup in runups_of(sink.records, fault_seq):
        assert runup.points == 21
        assert runup.values[: RUNUP_POINTS - 21] == (0,) * (RUNUP_POINTS - 21)
        assert [t for t, _ in runup.series()] == list(range(JAN_1_2024, JAN_1_2024 + 21))


def test_an_injected_trip_at_load_records_the_minute_before_it() -> None:
    sink = Sink()
    sim = Simulator(C60, seed=2, start_time=JAN_1_2024, log=sink, sample_interval_s=1)
    sim.advance_to(JAN_1_2024 + HOUR)
    sim.inject_fault(5005)
    fault_seq = next(s for s, r in enumerate(sink.records) if isinstance(r, FaultRecord))
    speed = next(r for r in runups_of(sink.records, fault_seq) if r.channel == RunupChannel.SPEED)
    samples = {r.timestamp: r.snapshot for r in sink.records if hasattr(r, "snapshot")}
    for t, value in speed.series()[:-1]:  # every second a sample was also taken agrees with it
        assert value == pytest.approx(samples[t].speed_rpm, abs=5)


def test_the_same_seed_writes_the_same_run_ups_however_time_is_cut() -> None:
    settings: dict[str, Any] = {
        "seed": 11, "sample_interval_s": 300, "scripted_faults": [ScriptedFault(5005, 1.5)],
    }
    whole = run(**settings)
    sink = Sink()
    sim = Simulator(C60, start_time=JAN_1_2024, log=sink, **settings)
    for minutes in range(7, 4 * 60 + 1, 7):
        sim.advance_to(JAN_1_2024 + minutes * 60)
    sim.advance_to(JAN_1_2024 + 4 * HOUR)
    assert any(isinstance(r, RunupRecord) for r in whole)
    assert [encode_record(r) for r in sink.records] == [encode_record(r) for r in whole]


def test_run_up_values_saturate_at_the_field_bounds_instead_of_failing() -> None:
    hot = Snapshot(0, 0, 0, 0, 0, 40_000, 40_000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    records = runup_records(100, 7, hot, [None] * (RUNUP_SPAN_S - 1))
    tet = next(r for r in records if r.channel == RunupChannel.TET_AVG)
    assert tet.points == 1 and tet.values[-1] == 32_767
