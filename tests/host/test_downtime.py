"""Availability's down time: a failure's down time ends when the unit can run again, never at a
warning's FAULT_CLEARED (issue 16, defect 1).

Figures held: an emulated C60 with a warning scripted at 100 h and an over-temperature lockout
(5005) at 100.5 h is down from the lockout to its repair (the 5005 clear and the return to
STAND_BY the emulator logs), not to the warning's clear; hand-built sequences: an auto-clearing
failure clears after the unit came to rest, a lockout ends at the return to STAND_BY after its
clear, two failures down together end when both are cleared, a START ends it, and a failure
never cleared lasts to the end of the span.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from firmware_sim.faults import ScriptedFault
from firmware_sim.models import C60
from firmware_sim.simulator import Simulator
from host.analytics import unit_summary
from host.archive import Archive
from protocol.enums import EngineState, EventKind, Severity, Subsystem
from protocol.records import (
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    Record,
    SampleRecord,
    Snapshot,
    encode_record,
    scan_records,
)

T0 = 1_700_000_000
H = 3600
SERIAL = "C60-000016"
WARNING, LOCKOUT = 7015, 5005
REST, LOAD, LOCKED = EngineState.STAND_BY, EngineState.LOAD, EngineState.FAULT_LOCKOUT


class ListSink:
    """A log that keeps the emulator's records in memory, numbering them as a unit's flash does."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def append(self, record: Record) -> int:
        seq = len(self.records)
        self.records.append(replace(record, seq=seq))
        return seq


def archive_of(path: Path, records: list[Record]) -> Archive:
    archive = Archive.open(path)
    archive.upsert_unit(
        SERIAL, "C60", "fw", 1, first_seq=0, next_seq=len(records), capacity_records=1_000_000,
        device_time=records[-1].timestamp, operating_s=0, starts=0, trips=0, energy_wh=0,
    )
    scanned, errors = scan_records(b"".join(encode_record(record) for record in records))
    assert not errors
    archive.store_records(SERIAL, scanned)
    return archive


def test_a_warning_before_a_lockout_does_not_end_its_down_time(tmp_path: Path) -> None:
    sink = ListSink()
    sim = Simulator(
        C60, seed=16, start_time=T0, log=sink,
        scripted_faults=[ScriptedFault(WARNING, 100), ScriptedFault(LOCKOUT, 100.5)],
    )
    sim.advance_to(T0 + 130 * H)
    records = sink.records
    failures = [r for r in records if isinstance(r, FaultRecord) and r.severity >= Severity.NORMAL_SHUTDOWN]
    assert [f.code for f in failures] == [LOCKOUT]  # this seed raises nothing else in 130 h
    (fault,) = failures
    cleared = {
        r.value_a: r for r in records if isinstance(r, EventRecord) and r.kind == EventKind.FAULT_CLEARED
    }
    warning_clear, repair = cleared[WARNING], cleared[LOCKOUT]
    assert fault.timestamp < warning_clear.timestamp < repair.timestamp  # the old code stopped at the first
    back = next(r for r in records if isinstance(r, EventRecord) and r.seq > repair.seq
                and r.kind == EventKind.STATE_CHANGE and r.state_to == REST)
    with archive_of(tmp_path / "a.sqlite", records) as archive:
        summary = unit_summary(archive, SERIAL)
    assert summary.downtime_s == back.timestamp - fault.timestamp
    assert summary.downtime_s > 2 * (warning_clear.timestamp - fault.timestamp)


def snap(state: EngineState, hours: float = 0.0) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(state=int(state), operating_s=int(hours * H))
    return Snapshot(**fields)


def fault(seq: int, t: int, code: int, severity: Severity = Severity.FAST_SHUTDOWN,
          state: EngineState = LOAD) -> FaultRecord:
    return FaultRecord(seq, T0 + t, code, severity, Subsystem.ENGINE, 0, snap(state))


def event(seq: int, t: int, kind: EventKind, *, to: EngineState = REST, code: int = 0,
          level: Severity | int = 0) -> EventRecord:
    return EventRecord(seq, T0 + t, kind, state_from=0, state_to=int(to), level=int(level), value_a=code)


def change(seq: int, t: int, to: EngineState) -> EventRecord:
    return event(seq, t, EventKind.STATE_CHANGE, to=to)


def clear(seq: int, t: int, code: int, level: Severity = Severity.FAST_SHUTDOWN) -> EventRecord:
    return event(seq, t, EventKind.FAULT_CLEARED, code=code, level=level)


def end(seq: int, t: int) -> SampleRecord:
    return SampleRecord(seq, T0 + t, snap(REST))


CASES: dict[str, tuple[list[Record], int]] = {
    "a warning's clear while locked out": (
        [fault(1, 100, 7015, Severity.WARNING), fault(2, 200, 5005), change(3, 300, EngineState.COOLDOWN),
         change(4, 400, LOCKED), clear(5, 500, 7015, Severity.WARNING), clear(6, 5000, 5005),
         change(7, 5000, REST), end(8, 10_000)],
        4800,
    ),
    "auto-clearing after coming to rest": (
        [fault(1, 100, 9001), change(2, 100, EngineState.WARMDOWN), change(3, 700, REST),
         clear(4, 1300, 9001), end(5, 10_000)],
        1200,
    ),
    "cleared before rest: up at rest": (
        [fault(1, 100, 9001), change(2, 100, EngineState.WARMDOWN), clear(3, 400, 9001),
         change(4, 900, REST), end(5, 10_000)],
        800,
    ),
    "failed at rest, cleared": ([fault(1, 100, 4001, state=REST), clear(2, 700, 4001), end(3, 10_000)], 600),
    "two failures down together": (
        [fault(1, 100, 9001), change(2, 100, EngineState.WARMDOWN),
         fault(3, 200, 5031, Severity.NORMAL_SHUTDOWN),
         change(4, 800, LOCKED), clear(5, 900, 9001), clear(6, 3100, 5031), change(7, 3100, REST),
         end(8, 10_000)],
        3000,
    ),
    "a start ends it": ([fault(1, 100, 4001), event(2, 2100, EventKind.START), end(3, 10_000)], 2000),
    "never cleared": ([fault(1, 100, 5005), change(2, 400, LOCKED), end(3, 10_000)], 9900),
    "a warning alone is no down time": (
        [fault(1, 100, 7015, Severity.WARNING), clear(2, 3700, 7015, Severity.WARNING), end(3, 10_000)], 0,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_down_time_ends_when_the_unit_can_run_again(tmp_path: Path, case: str) -> None:
    body, expected = CASES[case]
    records: list[Record] = [SampleRecord(0, T0, snap(REST)), *body]
    with archive_of(tmp_path / "d.sqlite", records) as archive:
        summary = unit_summary(archive, SERIAL)
    assert summary.span_s == 10_000
    assert summary.downtime_s == expected
