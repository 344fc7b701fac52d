"""The fault catalogue, scripted faults and their parser, and fault arrivals on operating hours."""

from __future__ import annotations

import statistics
from itertools import pairwise

import pytest

from firmware_sim.faults import (
    CATALOGUE,
    FaultArrivals,
    FaultCode,
    RestartPolicy,
    ScriptedFault,
    get_fault,
    hourly_failure_rate,
    parse_scripted_fault,
)
from protocol.enums import EventFlag, GridMode, Severity, Subsystem
from protocol.errors import ProtocolError
from protocol.fault_codes import FaultDefinition

SHUTDOWN_SEVERITIES = (Severity.NORMAL_SHUTDOWN, Severity.FAST_SHUTDOWN)


def arrivals(**kw: object) -> FaultArrivals:
    settings: dict[str, object] = {
        "mtbf_h": 1000.0,
        "warning_rate_per_h": 0.0,
        "mode": GridMode.GRID_CONNECT,
        "seed": 1,
        "operating_s": 0,
    }
    settings.update(kw)
    return FaultArrivals(**settings)  # type: ignore[arg-type]


def draw(source: FaultArrivals, n: int) -> list[tuple[float, FaultCode]]:
    out = []
    for _ in range(n):
        at = source.next_operating_s
        out.append((at, source.pop()))
    return out


# --- the catalogue ---------------------------------------------------------------


def test_the_catalogue_has_at_least_20_four_digit_codes_keyed_by_code() -> None:
    assert len(CATALOGUE) >= 20
    assert all(code == fault.code and 1000 <= code <= 9999 for code, fault in CATALOGUE.items())


def test_the_catalogue_covers_every_subsystem_and_the_three_severities() -> None:
    assert {f.subsystem for f in CATALOGUE.values()} == set(Subsystem)
    assert {f.severity for f in CATALOGUE.values()} == {Severity.WARNING, *SHUTDOWN_SEVERITIES}


def test_the_thousands_digit_names_the_subsystem() -> None:
    by_digit: dict[int, set[Subsystem]] = {}
    for fault in CATALOGUE.values():
        by_digit.setdefault(fault.code // 1000, set()).add(fault.subsystem)
    assert all(len(subsystems) == 1 for subsystems in by_digit.values())


def test_flags_are_set_where_they_apply() -> None:
    for fault in CATALOGUE.values():
        assert isinstance(fault.flags, EventFlag)
        if fault.grid_connect_only and fault.severity.is_failure:
            assert fault.flags & EventFlag.GRID_DISCONNECT
        if "temperature" in fault.title.lower() and "low" not in fault.title.lower():
            assert fault.flags & EventFlag.OVER_TEMPERATURE
    assert get_fault(8030).flags == EventFlag.GROUND_FAULT
    assert get_fault(9001).flags == EventFlag.DC_OVER_VOLTAGE


def test_every_fault_has_a_restart_policy_and_lockouts_take_hours() -> None:
    policies = {f.restart.lockout for f in CATALOGUE.values() if f.severity.is_failure}
    assert policies == {True, False}
    for fault in CATALOGUE.values():
        if fault.restart.lockout:
            assert fault.severity.is_failure
            assert fault.restart.mean_repair_h >= 1
        else:
            assert fault.restart.delay_s > 0


def test_policies_and_codes_are_validated() -> None:
    with pytest.raises(ValueError, match="repair"):
        RestartPolicy(lockout=True)
    with pytest.raises(ValueError, match="delay"):
        RestartPolicy()
    with pytest.raises(ProtocolError, match="four digits"):
        FaultDefinition(123, "x", Subsystem.ENGINE, Severity.WARNING, "d", "a")
    warning = FaultDefinition(5999, "x", Subsystem.ENGINE, Severity.WARNING, "d", "a")
    with pytest.raises(ValueError, match="lock the unit out"):
        FaultCode(warning, RestartPolicy(lockout=True, mean_repair_h=1))


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault code 1234"):
        get_fault(1234)


# --- scripted faults ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5005@1200h", ScriptedFault(5005, 1200.0)),
        ("5005@1200", ScriptedFault(5005, 1200.0)),
        (" 8001 @ 12.5h ", ScriptedFault(8001, 12.5)),
        ("2012@0h", ScriptedFault(2012, 0.0)),
    ],
)
def test_parse_scripted_fault(text: str, expected: ScriptedFault) -> None:
    assert parse_scripted_fault(text) == expected


@pytest.mark.parametrize(
    "text", ["", "5005", "5005@", "@1200h", "abcd@1h", "5005@-1h", "5005@1200m", "50050@1h"]
)
def test_malformed_scripted_faults_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="CODE@HOURS"):
        parse_scripted_fault(text)


def test_scripted_faults_with_unknown_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault code 1234"):
        parse_scripted_fault("1234@10h")
    with pytest.raises(ValueError, match="not a number >= 0"):
        ScriptedFault(5005, float("nan"))


def test_a_scripted_fault_knows_its_operating_second() -> None:
    assert ScriptedFault(5005, 1200).at_operating_s == 4_320_000
    assert ScriptedFault(5005, 0.5).at_operating_s == 1800


# --- arrivals -----------------------------------------------------------------


def test_failures_arrive_as_a_poisson_process_at_the_mtbf() -> None:
    times = [at for at, _ in draw(arrivals(mtbf_h=8000.0), 4000)]
    gaps = [b - a for a, b in pairwise([0.0, *times])]
    mean = statistics.mean(gaps)
    assert mean / 3600 == pytest.approx(1 / hourly_failure_rate(8000), rel=0.05)  # the rest come at starts
    assert statistics.stdev(gaps) / mean == pytest.approx(1.0, abs=0.06)


@pytest.mark.slow
def test_failures_are_shutdown_class_and_warnings_are_warnings() -> None:
    failures = [f for _, f in draw(arrivals(), 500)]
    assert all(f.severity in SHUTDOWN_SEVERITIES for f in failures)
    assert len({f.subsystem for f in failures}) == len(Subsystem)
    warnings = [f for _, f in draw(arrivals(mtbf_h=1e12, warning_rate_per_h=0.01), 500)]
    assert all(f.severity == Severity.WARNING for f in warnings)


def test_codes_with_no_weight_only_arrive_when_scripted() -> None:
    never = {code for code, f in CATALOGUE.items() if f.weight == 0}
    drawn = {f.code for _, f in draw(arrivals(mtbf_h=1.0, warning_rate_per_h=1.0), 3000)}
    assert not drawn & never


def test_stand_alone_units_get_no_utility_faults() -> None:
    utility = {code for code, f in CATALOGUE.items() if f.grid_connect_only}
    connected = {f.code for _, f in draw(arrivals(mtbf_h=1.0, warning_rate_per_h=1.0), 2000)}
    alone = {
        f.code for _, f in draw(arrivals(mtbf_h=1.0, warning_rate_per_h=1.0, mode=GridMode.STAND_ALONE), 2000)
    }
    assert utility <= connected
    assert not utility & alone


def test_warnings_arrive_at_their_own_rate() -> None:
    times = [at for at, _ in draw(arrivals(mtbf_h=1e12, warning_rate_per_h=1 / 250), 2000)]
    assert times[-1] / 3600 / len(times) == pytest.approx(250, rel=0.06)


def test_arrivals_are_whole_seconds_counted_from_the_restored_hours() -> None:
    times = [at for at, _ in draw(arrivals(operating_s=7_200_000), 50)]
    assert times[0] > 7_200_000
    assert all(float(at).is_integer() for at in times)
    assert times == sorted(times)


def test_scripted_faults_come_at_their_hour_in_order_and_past_ones_are_skipped() -> None:
    source = arrivals(
        mtbf_h=float("inf"),
        operating_s=3600 * 10,
        scripted=[
            ScriptedFault(8001, 30), ScriptedFault(5005, 12), ScriptedFault(4001, 9), ScriptedFault(2012, 10),
        ],
    )
    assert [(at / 3600, f.code) for at, f in draw(source, 3)] == [(10, 2012), (12, 5005), (30, 8001)]
    assert source.next_operating_s == float("inf")
    with pytest.raises(LookupError):
        source.pop()


def test_arrivals_after_a_power_up_are_those_the_unit_would_have_met_anyway() -> None:
    whole = draw(arrivals(mtbf_h=300.0, warning_rate_per_h=1 / 100, seed=5), 300)
    for at, _ in whole[:-20:37]:
        resumed = draw(arrivals(mtbf_h=300.0, warning_rate_per_h=1 / 100, seed=5, operating_s=at), 20)
        later = [(t, f) for t, f in whole if t > at][:20]
        assert [(t, f.code) for t, f in resumed] == [(t, f.code) for t, f in later]


def test_the_same_seed_gives_the_same_arrivals() -> None:
    def codes(seed: int) -> list[tuple[float, int]]:
        return [(at, f.code) for at, f in draw(arrivals(seed=seed, warning_rate_per_h=0.01), 200)]

    assert codes(3) == codes(3)
    assert codes(3) != codes(4)


def test_scripted_faults_not_raised_are_known() -> None:
    early, late, later = ScriptedFault(4001, 1), ScriptedFault(5005, 50), ScriptedFault(5012, 60)
    due = arrivals(operating_s=10 * 3600, scripted=[later, early, late])
    assert due.scripted_unraised == (early, late, later)
    assert due.pop().code == 5005
    assert due.scripted_unraised == (early, later)
    assert str(later) == "5012@60h"
