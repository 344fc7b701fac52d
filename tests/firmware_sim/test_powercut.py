"""Power cuts at every flash operation of a long workload, then recovery.

The workload (sample, fault and event records with growing counters, and a
few clears) wraps a small flash many times.  Before every program and every
erase it issues, the flash is copied, the operation is applied half done to
the copy (``NorFlash.tear``), and a fresh LogStore recovers the copy; the
workload itself goes on uncut, so the whole suite is one pass, not one replay
per cut.  After every cut the recovered log must hold every acknowledged
record at or above its first_seq byte for byte, lose at most the record in
flight, never show a partial record, keep seqs and first_seq moving forward,
keep the counters of the last durable record, and take new records.  Some cut
points are cut a second time, at each operation of the first append after
recovery.  A hypothesis test then runs random workloads through sequences of
real cuts (the hook raises PowerCut) on one flash.
"""

from __future__ import annotations

import random
from collections import Counter as Tally
from dataclasses import dataclass, field, replace

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from firmware_sim.flash import FlashOperation, NorFlash, OpKind, PowerCut
from firmware_sim.logstore import SECTOR_HEADER_SIZE, LogStore
from protocol.counters import LifetimeCounters
from protocol.enums import EventKind
from protocol.image_formats import SECTOR_MAGIC
from protocol.records import EventRecord, FaultRecord, Record, SampleRecord, encode_record

from .test_logstore import Machine, snapshot

SECTOR_SIZE = 1024
SECTOR_COUNT = 8
RECORDS = 2400
CLEAR_EVERY = 700
TEARS_PER_OPERATION = 3
SECOND_CUT_EVERY = 5


@dataclass
class InFlight:
    """What the workload is doing when the power fails: an append, or a clear (record None)."""

    seq: int
    raw: bytes | None = None
    counters: LifetimeCounters | None = None
    """The record's counters, if it carries a snapshot."""

    @classmethod
    def append(cls, seq: int, record: Record) -> InFlight:
        raw = encode_record(replace(record, seq=seq))
        if isinstance(record, SampleRecord):
            return cls(seq, raw, LifetimeCounters.from_snapshot(record.snapshot))
        if isinstance(record, FaultRecord):
            return cls(seq, raw, LifetimeCounters.from_snapshot(record.freeze))
        return cls(seq, raw)


@dataclass
class Oracle:
    """What the log is known to hold: every acknowledged record, and bounds on its state."""

    acked: dict[int, bytes] = field(default_factory=dict)
    counters: LifetimeCounters = field(default_factory=LifetimeCounters)
    first_floor: int = 0
    next_seq: int = 0

    def ack(self, done: InFlight) -> None:
        assert done.raw is not None and done.seq not in self.acked
        self.acked[done.seq] = done.raw
        if done.counters is not None:
            self.counters = done.counters
        self.next_seq = done.seq + 1

    def after_cut(self, store: LogStore, pending: InFlight) -> Oracle:
        """The oracle for the recovered store: the record in flight is acknowledged if it survived."""
        oracle = Oracle(dict(self.acked), self.counters, store.first_seq, store.next_seq)
        if pending.raw is not None and store.next_seq > pending.seq:
            oracle.acked[pending.seq] = pending.raw
            if pending.counters is not None:
                oracle.counters = pending.counters
        return oracle


def check_recovered(store: LogStore, oracle: Oracle, pending: InFlight) -> None:
    """Every guarantee a log gives after a power cut during *pending*."""
    first, next_seq = store.first_seq, store.next_seq
    assert oracle.first_floor <= first <= next_seq, "first_seq moved backwards"
    survived = False
    if pending.raw is None:
        assert next_seq == oracle.next_seq
    else:
        assert pending.seq == oracle.next_seq
        assert next_seq in (oracle.next_seq, oracle.next_seq + 1), "seqs lost or invented"
        survived = next_seq > pending.seq
    held = oracle.acked | ({pending.seq: pending.raw} if survived and pending.raw else {})
    expected = [held[seq] for seq in range(first, next_seq)]
    assert list(store.iter_raw(0, next_seq + 5)) == expected
    assert [store.read(seq) for seq in range(first, next_seq)] == expected
    assert store.read(next_seq) is None and (first == 0 or store.read(first - 1) is None)
    counters = pending.counters if survived and pending.counters is not None else oracle.counters
    assert store.counters == counters


def recover(flash: NorFlash) -> LogStore:
    """Power-up: recovery must read the flash and never change it."""
    image = flash.read(0, flash.size)
    store = LogStore(flash)
    assert flash.read(0, flash.size) == image
    return store


def classify(op: FlashOperation, sector_size: int) -> str:
    if op.kind is OpKind.ERASE:
        return "erase"
    if op.address % sector_size == 0 and op.length == SECTOR_HEADER_SIZE:
        return "header" if op.data.startswith(SECTOR_MAGIC) else "invalidate"
    return "record"


def probe(seq: int) -> SampleRecord:
    return SampleRecord(0, 2_000_000_000 + seq, snapshot(10**8 + seq, 10**5, 10**4, 10**12))


def cut_each_operation_of_an_append(flash: NorFlash, oracle: Oracle, rng: random.Random) -> int:
    """Cut at the 1st, 2nd, ... operation of one append on a recovered flash,
    recovering and checking each time; return the cuts made."""
    cuts = 0
    while True:
        trial = flash.copy()
        store = LogStore(trial)
        pending = InFlight.append(store.next_seq, probe(store.next_seq))
        countdown = [cuts]

        def cut(op: FlashOperation, trial: NorFlash = trial, countdown: list[int] = countdown) -> None:
            if countdown[0] == 0:
                trial.tear(op, rng)
                raise PowerCut(op.kind.value)
            countdown[0] -= 1

        trial.on_operation = cut
        try:
            store.append(probe(store.next_seq))
        except PowerCut:
            trial.on_operation = None
            check_recovered(recover(trial), oracle, pending)
            cuts += 1
        else:
            return cuts


@pytest.mark.slow
def test_power_cut_at_every_operation_of_a_wrapping_workload() -> None:
    flash = NorFlash(SECTOR_SIZE, SECTOR_COUNT)
    store = LogStore(flash)
    machine = Machine(2024)
    rng = random.Random(42)
    oracle = Oracle()
    kinds: Tally[str] = Tally()
    second_cuts = 0
    pending = InFlight(0)
    recovered_firsts: list[int] = []

    def cut_here(op: FlashOperation) -> None:
        nonlocal second_cuts
        kinds[classify(op, SECTOR_SIZE)] += 1
        for tear in range(TEARS_PER_OPERATION):
            cut = flash.copy()
            cut.tear(op, rng)
            recovered = recover(cut)
            check_recovered(recovered, oracle, pending)
            recovered_firsts.append(recovered.first_seq)
            after = oracle.after_cut(recovered, pending)
            if tear == 0 and kinds.total() % SECOND_CUT_EVERY == 0:
                second_cuts += cut_each_operation_of_an_append(cut, after, rng)
            seq = recovered.append(probe(recovered.next_seq))
            assert seq == after.next_seq >= oracle.next_seq, "an acknowledged seq was reused"
            after.ack(InFlight.append(seq, probe(seq)))
            check_recovered(recover(cut), after, InFlight(after.next_seq))

    flash.on_operation = cut_here
    for n in range(1, RECORDS + 1):
        recovered_firsts.clear()
        if n % CLEAR_EVERY == 0:
            pending = InFlight(store.next_seq)
            assert store.clear() == store.next_seq == store.first_seq
        else:
            record = machine.record()
            pending = InFlight.append(store.next_seq, record)
            assert store.append(record) == pending.seq
            oracle.ack(pending)
        assert all(first <= store.first_seq for first in recovered_firsts), "a cut evicted more than the op"
        oracle.first_floor = store.first_seq
        assert oracle.next_seq == store.next_seq
    wraps = sum(flash.erase_counts()) / SECTOR_COUNT
    print(f"\ncut points: {dict(kinds)}; {kinds.total() * TEARS_PER_OPERATION} cuts "
          f"+ {second_cuts} second cuts; {wraps:.1f} wraps")
    assert wraps >= 10
    assert kinds["record"] >= RECORDS - RECORDS // CLEAR_EVERY
    assert min(kinds["header"], kinds["invalidate"], kinds["erase"]) >= 10 * SECTOR_COUNT
    assert second_cuts >= kinds.total() // SECOND_CUT_EVERY


@pytest.mark.slow
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    sector_count=st.integers(2, 5),
    records=st.integers(1, 300),
    clear_every=st.integers(20, 400),
    data=st.data(),
)
def test_repeated_power_cuts_never_lose_an_acknowledged_record(
    seed: int, sector_count: int, records: int, clear_every: int, data: st.DataObject
) -> None:
    """Cuts at random operations (the same index twice: a cut at the first
    operation after power-up), each followed by recovery on the same flash."""
    flash = NorFlash(512, sector_count)
    rng = random.Random(seed)
    machine = Machine(seed)
    countdown = sorted(data.draw(st.lists(st.integers(0, records), min_size=1, max_size=8), label="cuts"))
    operations = [0]
    power_ups = 0

    def maybe_cut(op: FlashOperation) -> None:
        if countdown and countdown[0] == operations[0]:
            countdown.pop(0)
            flash.tear(op, rng)
            raise PowerCut(op.kind.value)
        operations[0] += 1

    store = LogStore(flash)
    oracle = Oracle()
    flash.on_operation = maybe_cut
    for n in range(1, records + 1):
        if n % clear_every == 0:
            pending = InFlight(store.next_seq)
        else:
            record = machine.record() if n % 7 else EventRecord(0, n, EventKind.POWER_UP)
            pending = InFlight.append(store.next_seq, record)
        try:
            if pending.raw is None:
                store.clear()
            else:
                store.append(record)
                oracle.ack(pending)
        except PowerCut:
            power_ups += 1
            store = recover(flash)
            check_recovered(store, oracle, pending)
            oracle = oracle.after_cut(store, pending)
        else:
            oracle.first_floor = store.first_seq
    flash.on_operation = None
    check_recovered(recover(flash), oracle, InFlight(oracle.next_seq))
    event(f"power cuts: {power_ups}")
