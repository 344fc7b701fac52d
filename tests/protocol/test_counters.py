"""protocol.counters: the lifetime counters both sides keep, and how logs of one unit add up."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from protocol.counters import LifetimeCounters, counters_of_row
from protocol.records import (
    EventRecord,
    FaultRecord,
    Record,
    RunupRecord,
    SampleRecord,
    UnknownRecord,
    decode_rows,
    encode_record,
)
from tests.protocol.test_records import records

U32 = st.integers(0, 0xFFFFFFFF)
counters = st.builds(LifetimeCounters, U32, U32, U32, st.integers(0, 1 << 63))


@given(counters, counters)
def test_plus_adds_each_counter(a: LifetimeCounters, b: LifetimeCounters) -> None:
    total = a.plus(b)
    assert total == LifetimeCounters(
        a.operating_s + b.operating_s, a.starts + b.starts, a.trips + b.trips, a.energy_wh + b.energy_wh
    )
    assert total.dominates(a) and total.dominates(b)


@given(counters, counters, counters)
def test_a_log_that_carries_on_adds_only_what_it_counted_itself(
    before: LifetimeCounters, gained: LifetimeCounters, other: LifetimeCounters
) -> None:
    """A cleared log's counters carry on from the log before: adding it less those counts each
    hour once; a log whose counter went backwards adds nothing for that counter."""
    after = before.plus(gained)
    assert LifetimeCounters().plus(before).plus(after, less=before) == after
    assert other.plus(before, less=after) == other


@given(counters, counters)
def test_dominates_is_every_counter_at_least(a: LifetimeCounters, b: LifetimeCounters) -> None:
    assert a.dominates(a)
    assert a.dominates(b) == all(x >= y for x, y in zip(
        (a.operating_s, a.starts, a.trips, a.energy_wh), (b.operating_s, b.starts, b.trips, b.energy_wh),
        strict=True,
    ))
    assert not a.dominates(replace(a, trips=a.trips + 1))


def test_engineering_units() -> None:
    counters = LifetimeCounters(operating_s=5400, starts=3, trips=1, energy_wh=2500)
    assert (counters.operating_hours, counters.kwh) == (1.5, 2.5)


@given(records())
def test_a_decoded_sample_or_fault_carries_its_snapshots_counters(record: Record) -> None:
    (row,), errors = decode_rows(encode_record(record))
    assert not errors
    if isinstance(record, SampleRecord):
        assert counters_of_row(row) == LifetimeCounters.from_snapshot(record.snapshot)
    elif isinstance(record, FaultRecord):
        assert counters_of_row(row) == LifetimeCounters.from_snapshot(record.freeze)
    else:
        assert isinstance(record, EventRecord | RunupRecord | UnknownRecord)
        assert counters_of_row(row) is None
