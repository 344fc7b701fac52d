"""What a pull tells the person watching it: where a re-run takes up the log, that the link is being
reconnected (no frozen ETA), and a progress line that fits the terminal at any width and count."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.archive import Archive
from host.errors import LinkError
from host.pull import PullProgress, PullResult, Resume, pull
from host.terminal import ProgressBar
from tests.host.loopback import Line, ListUnit, make_records

N = 3000
RAWS = make_records(N)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        yield opened


def run(line: Line, archive: Archive, **options: object) -> PullResult:
    return pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance, **options)  # type: ignore[arg-type]


def test_a_rerun_after_a_cut_says_how_much_is_archived_and_where_it_fetches_from(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    line = Line(unit, cuts=[60_000])
    with pytest.raises(LinkError):
        run(line, archive, max_reconnects=0)
    kept = archive.unit(unit.serial).record_count
    assert 0 < kept < N
    told: list[Resume] = []
    result = run(line, archive, on_resume=told.append)
    assert told == [Resume(unit.serial, held=kept, records=N, from_seq=unit.first_seq + kept)]
    assert result.added == N - kept


def test_a_first_pull_and_a_pull_with_nothing_new_do_not_say_resuming(archive: Archive) -> None:
    told: list[Resume] = []
    line = Line(ListUnit(list(RAWS)))
    run(line, archive, on_resume=told.append)
    run(line, archive, on_resume=told.append)
    assert told == []


def test_while_the_link_is_reconnected_progress_says_so_without_an_eta(archive: Archive) -> None:
    seen: list[PullProgress] = []
    line = Line(ListUnit(list(RAWS)), cuts=[60_000, 20_000])
    result = run(line, archive, progress=seen.append)
    assert result.reconnects == 2
    down = [p for p in seen if p.reconnecting]
    assert [p.reconnecting for p in down] == [1, 2]  # the pull's reconnects, counted across losses
    assert all(p.eta_s is None and p.reconnects_max > 0 and 0 < p.done < N for p in down)
    assert seen[-1].reconnecting == 0 and seen[-1].done == N


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("columns", [12, 30, 40, 60, 80, 120, 200])
@pytest.mark.parametrize(
    ("done", "total"), [(0, 0), (1_234, 8_036), (123_456, 234_567), (9_876_543, 9_876_543)]
)
def test_the_progress_line_never_reaches_the_last_column(columns: int, done: int, total: int) -> None:
    """A line that reaches the last column wraps, and every redraw leaves a line behind."""
    screen = Tty()
    bar = ProgressBar(screen, min_interval=0, columns=lambda: columns)
    for detail in ("1.2 MB/s  ETA 00:42", "link lost, reconnecting (3/5)"):
        bar.show(done, total, detail)
    drawn = [part.removesuffix("\x1b[K") for part in screen.getvalue().split("\r") if part]
    assert len(drawn) == 2
    assert all(0 < len(line) <= columns - 1 for line in drawn), drawn
    if columns >= 80:
        assert f"{done:,}/{total:,} records" in drawn[0] and "ETA 00:42" in drawn[0]
    if columns >= 40:
        assert drawn[1].endswith("link lost, reconnecting (3/5)")
