"""`pull --json` figures add up, also on a log that moves while it is pulled (README, "pull").

Every seq from ``planned_from`` to ``last_seq`` is exactly one of added, evicted or already
held, counted independently of the pull from the archive before and after it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from host.archive import Archive
from host.pull import PullResult, pull
from tests.host.loopback import Line, ListUnit, make_records


def accounted(archive: Archive, serial: str, start: int, stop: int) -> set[int]:
    """Seqs of ``[start, stop)`` the archive holds or has recorded as evicted."""
    try:
        ranges = archive.stored_ranges(serial, start, stop) + archive.evicted_ranges(serial, start, stop)
    except Exception:  # noqa: BLE001 - a unit not archived yet accounts for nothing
        return set()
    return {seq for a, b in ranges for seq in range(a, b)}


def writer(unit: ListUnit, count: int, capacity: int) -> Callable[[], None]:
    """The unit logs *count* records at once and overwrites what falls out of its *capacity*."""
    def write() -> None:
        unit.raws += make_records(count, start=len(unit.raws))
        unit.evict_to(len(unit.raws) - capacity)
    return write


def check(result: PullResult, before: set[int], archive: Archive) -> None:
    last = result.planned_from - 1 if result.last_seq is None else result.last_seq
    span = range(result.planned_from, last + 1)
    assert result.added + result.evicted + result.already_held == len(span)
    assert result.already_held == len(before & set(span))
    stored = archive.stored_ranges(result.serial, span.start, span.stop)
    stored_now = {seq for a, b in stored for seq in range(a, b)}
    assert result.added == len(stored_now - before)
    assert accounted(archive, result.serial, span.start, span.stop) == set(span), "no seq is left unaccounted"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    initial=st.integers(0, 3000),
    capacity=st.integers(200, 2500),
    bursts=st.lists(st.tuples(st.integers(500, 60_000), st.integers(1, 900)), max_size=6),
    cut=st.one_of(st.none(), st.integers(2_000, 80_000)),
    pulls=st.integers(1, 3),
)
def test_added_evicted_and_already_held_cover_the_pulled_span_on_a_moving_log(
    tmp_path_factory: object, initial: int, capacity: int, bursts: list[tuple[int, int]], cut: int | None,
    pulls: int,
) -> None:
    path = tmp_path_factory.mktemp("figures") / "archive.sqlite"  # type: ignore[attr-defined]
    unit = ListUnit(make_records(initial))
    unit.evict_to(initial - capacity)
    moves = [(at, writer(unit, count, capacity)) for at, count in bursts]
    line = Line(unit, at_bytes=moves, cuts=[cut] if cut is not None else None)
    with Archive.open(path) as archive:
        for _ in range(pulls):
            before = accounted(archive, unit.serial, 0, unit.next_seq)
            result = pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance, window=256)
            check(result, before, archive)
            writer(unit, 150, capacity)()


def test_the_reported_case_reconciles(tmp_path: Path) -> None:
    """The issue's numbers: 84 added, log 6022 .. 6229, 6146 evicted: planned from 0, none held."""
    unit = ListUnit(make_records(6022 + 84))
    unit.evict_to(6022)
    line = Line(unit, at_bytes=[(1_000, writer(unit, 124, 84 + 124))])
    with Archive.open(tmp_path / "archive.sqlite") as archive:
        result = pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance)
    assert (result.planned_from, result.already_held) == (0, 0)
    assert result.added + result.evicted == result.last_seq + 1  # type: ignore[operator]
