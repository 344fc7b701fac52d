"""host.fleet_growth: units' archived stretches become the data of host.growth.

What a user would notice: a unit whose very first start failed (a failure at
age 0) does not break the fit, it is taken at one minute; epochs of a serial
are stretches of their own; the Weibull of first failures takes only units
archived from commissioning and counts the others as left out; the
demonstration agrees with the bound it prints.
"""

from __future__ import annotations

import pytest
from scipy import stats

from host.analytics import ModelSummary, UnitSummary
from host.fleet_growth import EARLIEST_FAILURE_HOURS, demonstration, first_failures, growth, histories
from host.reliability import mtbf
from protocol.counters import LifetimeCounters


def unit(serial: str, start: float, end: float, ages: tuple[float, ...], parts: tuple[UnitSummary, ...] = ()
         ) -> UnitSummary:
    counters = LifetimeCounters(operating_s=round(end * 3600), starts=10, trips=len(ages))
    return UnitSummary(
        serial=serial, model="C60", firmware="x", records=1, evicted=0, first_record=0, last_record=1,
        counters=counters, counters_from="records", identify=counters, faults_by_severity={},
        faults_by_code={}, failures=len(ages), exposure_hours=end - start, mtbf=mtbf(end - start, len(ages)),
        downtime_s=0, span_s=1, age_from=start, age_to=end, failure_ages=ages, parts=parts,
    )


def test_a_failure_at_age_zero_is_taken_at_one_minute() -> None:
    units = [unit("A", 0.0, 5_000.0, (0.0, 1_200.0, 4_000.0)), unit("B", 0.0, 3_000.0, (700.0,))]
    (first, second) = histories(units)
    assert first.failures == (EARLIEST_FAILURE_HOURS, 1_200.0, 4_000.0)
    result = growth("C60", units, 0.9)
    assert result.fit is not None and result.fit.failures == 4
    assert result.first_failure_units == (2, 0, 0)


def test_each_epoch_is_a_stretch_and_late_archives_are_left_out_of_first_failures() -> None:
    epochs = (unit("A", 0.0, 2_000.0, (500.0,)), unit("A", 2_000.0, 6_000.0, (2_500.0, 5_000.0)))
    whole = unit("A", 0.0, 6_000.0, (), parts=epochs)
    late = unit("B", 3_000.0, 9_000.0, (4_000.0,))
    assert [(h.start, h.end, len(h.failures)) for h in histories([whole, late])] == [
        (0.0, 2_000.0, 1), (2_000.0, 6_000.0, 2), (3_000.0, 9_000.0, 1)
    ]
    assert first_failures([whole, late, unit("C", 0.5, 800.0, ())]) == ([500.0], [800.0], 1)


@pytest.mark.parametrize(("hours", "failures", "target"), [(30_000.0, 2, 8_000.0), (90_000.0, 3, 8_000.0),
                                                           (5_000.0, 0, 1_000.0)])
def test_demonstration_agrees_with_its_bound(hours: float, failures: int, target: float) -> None:
    members = [unit("A", 0.0, hours, tuple(float(i + 1) for i in range(failures)))]
    proof = demonstration(ModelSummary.pool("C60", members, confidence=0.8), target)
    lower = 2 * hours / stats.chi2.ppf(0.8, 2 * failures + 2)
    assert proof.lower_bound == pytest.approx(lower)
    assert proof.demonstrated is bool(lower >= target)
    assert (proof.hours_needed == 0) is proof.demonstrated
