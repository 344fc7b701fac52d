"""Freeze-frames show the cause: a fault with a physical cause is its channel beyond its limit.

What a technician reading the log would notice: an over-temperature trip's
freeze-frame holds a TET above the model's trip limit, an overspeed a speed
above its limit, a utility fault a voltage or frequency out of the
grid-connect band, a DC bus fault a bus voltage out of its band; a failed
start (ignition failure, flameout, acceleration timeout) happens while the
engine is starting, with no flame (TET under light-off) or the shaft short of
idle speed.  The limits are the catalogue's: ``firmware_sim.models.trip_limits``.
"""

from __future__ import annotations

import dataclasses

import pytest

from firmware_sim.climate import SITES
from firmware_sim.faults import START_FAULTS, ScriptedFault
from firmware_sim.models import C30, C60, ModelProfile, site_profile, trip_limits
from firmware_sim.simulator import Simulator
from protocol.enums import EngineState
from protocol.fault_codes import FAULT_CODES
from protocol.records import FaultRecord, Record, SampleRecord, Snapshot

HOUR = 3600
JAN_1_2024 = 1_704_067_200


class Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> int:
        self.records.append(record)
        return len(self.records) - 1

    def faults(self) -> list[FaultRecord]:
        return [r for r in self.records if isinstance(r, FaultRecord)]


def value(snapshot: Snapshot, channel: str) -> float:
    return snapshot.tet_avg_c if channel == "tet_avg_c" else float(snapshot.engineering()[channel])


def test_every_limit_names_a_catalogue_code_and_a_freeze_frame_channel() -> None:
    limits = trip_limits(C60)
    assert set(limits) <= set(FAULT_CODES)
    assert {5005, 5008, 8001, 8002, 8005, 8006, *START_FAULTS} <= set(limits)
    frame = Snapshot(*range(19))
    for limit in limits.values():
        value(frame, limit.channel)


@pytest.mark.parametrize(
    "profile", [C30, site_profile("C60", SITES["temperate"])], ids=["C30-480V", "C60-400V"]
)
@pytest.mark.parametrize("code", sorted(trip_limits(C60)))
def test_a_fault_raised_at_full_load_freezes_its_cause_beyond_the_limit(
    profile: ModelProfile, code: int
) -> None:
    sink = Sink()
    sim = Simulator(profile, seed=4, start_time=JAN_1_2024, log=sink, sample_interval_s=HOUR,
                    scripted_faults=[ScriptedFault(code, 2.0)])
    sim.advance_to(JAN_1_2024 + 3 * HOUR)
    fault = next(f for f in sink.faults() if f.code == code)
    limit = trip_limits(profile)[code]
    assert limit.crossed(value(fault.freeze, limit.channel)), (code, fault.freeze)


def test_a_life_of_faults_shows_every_cause_and_fails_starts_while_starting() -> None:
    # an MTBF of 50 h: a failure every 62 operating hours, and 28 % of starts failing
    fragile = dataclasses.replace(C60, mtbf_h=50.0)
    sink = Sink()
    sim = Simulator(
        fragile, seed=8, start_time=JAN_1_2024, log=sink, duty="peak-shaving", sample_interval_s=HOUR
    )
    sim.advance_to(JAN_1_2024 + 365 * 24 * HOUR)
    limits = trip_limits(fragile)
    caused = [f for f in sink.faults() if f.code in limits]
    assert {f.code for f in caused} >= {5005, 5008, *START_FAULTS}
    for fault in caused:
        limit = limits[fault.code]
        assert limit.crossed(value(fault.freeze, limit.channel)), (fault.code, fault.freeze)
        if fault.code in START_FAULTS:
            assert fault.freeze.state in (EngineState.LIGHT_OFF, EngineState.RELIGHT, EngineState.ACCEL)


def test_tet_drifts_up_to_its_limit_over_the_minutes_before_an_over_temperature_trip() -> None:
    sink = Sink()
    sim = Simulator(C60, seed=5, start_time=JAN_1_2024, log=sink, sample_interval_s=60,
                    scripted_faults=[ScriptedFault(5005, 3.0)])
    sim.advance_to(JAN_1_2024 + 4 * HOUR)
    trip = next(f for f in sink.faults() if f.code == 5005)
    before = [r.snapshot.tet_avg_c for r in sink.records
              if isinstance(r, SampleRecord) and trip.timestamp - 1200 <= r.timestamp < trip.timestamp]
    quiet, drift = before[:10], before[10:]
    assert max(quiet) - min(quiet) < 2 and max(quiet) < C60.tet_limit_c - 20
    assert len(drift) == 10 and drift == sorted(drift)
    assert drift[-1] > C60.tet_limit_c - 10 and drift[0] < drift[-1] - 20
    assert trip.freeze.tet_avg_c > C60.tet_limit_c
