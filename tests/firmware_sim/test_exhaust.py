"""The exhaust after the recuperator: its own channel in every sample, beside TET.

What a technician would notice: at full load in ISO conditions a clean unit's stack is at the
data sheet's exhaust temperature (270-310 °C for this class), far below TET; it rises as the
recuperator fouls over a service interval and falls back at the service; at rest it cools to
ambient with the engine.
"""

from __future__ import annotations

import pytest

from firmware_sim.climate import SITES
from firmware_sim.models import C30, C60, C65, ModelProfile
from firmware_sim.recuperator import Recuperator, compressor_discharge_c
from firmware_sim.service import SERVICE_INTERVAL_H
from firmware_sim.simulator import Simulator
from protocol.enums import EngineState
from protocol.records import Record, SampleRecord

HOUR = 3600
JAN_1_2024 = 1_704_067_200


class Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> int:
        self.records.append(record)
        return len(self.records) - 1

    def samples(self) -> list[SampleRecord]:
        return [r for r in self.records if isinstance(r, SampleRecord)]


@pytest.mark.parametrize("profile", [C30, C60, C65], ids=lambda p: p.name)
def test_a_clean_unit_at_full_load_in_iso_conditions_shows_the_data_sheet_exhaust(
    profile: ModelProfile,
) -> None:
    sink = Sink()
    sim = Simulator(profile, seed=3, start_time=JAN_1_2024, log=sink, sample_interval_s=600,
                    site=SITES["iso"])
    sim.advance_to(JAN_1_2024 + 6 * HOUR)
    warm = JAN_1_2024 + HOUR
    at_load = [s for s in sink.samples() if s.snapshot.state == EngineState.LOAD and s.timestamp > warm]
    assert len(at_load) >= 20
    for sample in at_load:
        assert sample.exhaust_c is not None
        assert sample.exhaust_c == pytest.approx(profile.exhaust_c, abs=3.0)
        assert 270 <= sample.exhaust_c <= 310
        assert sample.exhaust_c < sample.snapshot.tet_avg_c - 250


def test_the_stack_cools_to_ambient_at_rest_and_tracks_load_when_running() -> None:
    sink = Sink()
    sim = Simulator(C60, seed=4, start_time=JAN_1_2024, log=sink, duty="peak-shaving", sample_interval_s=900)
    sim.advance_to(JAN_1_2024 + 7 * 24 * HOUR)
    samples = [(s.snapshot, s.exhaust_c) for s in sink.samples() if s.exhaust_c is not None]
    assert len(samples) == len(sink.samples())
    cold = [(f, ex) for f, ex in samples if f.speed_rpm == 0 and abs(f.tet_avg_c - f.ambient_c_x10 / 10) < 4]
    assert cold and all(abs(ex - f.ambient_c_x10 / 10) < 4 for f, ex in cold)
    hot = [(f, ex) for f, ex in samples if f.speed_rpm > 0 and f.tet_avg_c > 200]
    assert hot and all(f.compressor_inlet_c_x10 / 10 < ex < f.tet_avg_c for f, ex in hot)


def test_fouling_raises_the_stack_over_a_service_interval() -> None:
    recuperator = Recuperator(C60)
    clean = recuperator.exhaust_c_x10(C60.full_rpm, C60.tet_full_c, 18.0, 0.0)
    fouled = recuperator.exhaust_c_x10(C60.full_rpm, C60.tet_full_c, 18.0, 0.02)
    assert clean == round(C60.exhaust_c * 10)
    assert 80 <= fouled - clean <= 200  # +8 to +20 °C by the end of an interval
    assert SERVICE_INTERVAL_H == 8000


def test_the_compressor_heats_the_air_more_the_faster_it_turns() -> None:
    temperatures = [compressor_discharge_c(15.0, fraction) for fraction in (0.0, 0.47, 1.0)]
    assert temperatures[0] == 15.0 and temperatures == sorted(temperatures)
    assert 150 <= temperatures[-1] <= 200  # pressure ratio 3.5, 78 % efficiency
