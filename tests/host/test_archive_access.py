"""Who may open the archive how: through host.cli.main and real processes.

- Processes creating one new archive at once all succeed.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from pathlib import Path

from host import archive as archive_module
from host.archive import Archive
from host.errors import HostError

# --- creating one archive at once -------------------------------------------------------------


def _create(path: Path, barrier: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue) -> None:
    barrier.wait(30)
    try:
        with Archive.open(path) as archive:
            results.put(("ok", archive.units(), next(archive.query("PRAGMA user_version"))[0]))
    except HostError as exc:
        results.put(("error", str(exc), None))


def test_processes_creating_one_new_archive_at_once_all_succeed(tmp_path: Path) -> None:
    """40 pairs of processes each open one new file at the same moment: every one succeeds, and every
    file has the whole schema (without the fix about one pair in four failed "database is locked")."""
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    outcomes = []
    for pair in range(40):
        path = tmp_path / f"pair-{pair}" / "archive.sqlite"
        barrier = context.Barrier(2)
        processes = [context.Process(target=_create, args=(path, barrier, results)) for _ in range(2)]
        for process in processes:
            process.start()
        outcomes += [results.get(timeout=60) for _ in processes]
        for process in processes:
            process.join(30)
            assert process.exitcode == 0
    assert outcomes == [("ok", [], len(archive_module.MIGRATIONS))] * 80
