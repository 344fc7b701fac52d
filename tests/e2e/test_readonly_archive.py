"""Reading an archive one may read but not write: the real `turbolog` command as a real unprivileged user.

The archive belongs to root (0644); `turbolog` runs as uid/gid 65534 (nobody) through `setpriv`.
Figures held: in a directory nobody may write (a read-only share, a stick) and in one anyone may
write, units, summary, faults, fleet and export exit 0 with the archive's figures, create no file
(no -wal or -shm that would later stand in its owner's way) and change no byte; changes a killed
writer left un-checkpointed in the -wal are read; where they cannot be read (no -shm, and the
directory is read-only) it is exit 4 and one line.  And as root, in a directory made immutable with
`chattr +i` (where the old code said "unable to open database file").

Needs root to change user (skipped otherwise; CI runs as root) and setpriv (util-linux).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from host.archive import Archive
from protocol.enums import Severity, Subsystem
from protocol.records import SNAPSHOT_FIELDS, FaultRecord, SampleRecord, Snapshot, encode_record, scan_records
from tests.conftest import require_tool

pytestmark = pytest.mark.e2e

NOBODY = 65534
SERIAL = "C65-RO-1"
T0 = 1_700_000_000

Turbolog = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def as_nobody() -> Turbolog:
    """``as_nobody(*args)`` runs the installed ``turbolog ARGS`` as uid and gid 65534, no groups."""
    if os.geteuid() != 0:
        pytest.skip("changing to an unprivileged user needs root")
    setpriv = require_tool("setpriv")
    command = Path(sys.executable).parent / "turbolog"
    assert command.exists(), f"{command} is not installed: make venv"
    drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    if subprocess.run([*drop, sys.executable, "-c", "pass"], capture_output=True, timeout=60).returncode:
        # The interpreter lives where only root may look (a pyenv under /root): let the user read and
        # search every directory, as a user given read access would.  Writing stays refused:
        # CAP_DAC_READ_SEARCH grants no write.
        drop += ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*drop, str(command), *args], capture_output=True, text=True, timeout=120)

    return run


def snapshot(hours: int) -> Snapshot:
    fields = dict.fromkeys(SNAPSHOT_FIELDS, 0)
    fields.update(operating_s=hours * 3600, starts=hours // 10)
    return Snapshot(**fields)


def identify(archive: Archive, firmware: str, next_seq: int) -> None:
    archive.upsert_unit(
        SERIAL, "C65", firmware, 0xD8247CB9, first_seq=0, next_seq=next_seq, capacity_records=50_000,
        device_time=T0 + next_seq * 3600, operating_s=next_seq * 3600, starts=next_seq // 10, trips=1,
        energy_wh=0,
    )


@pytest.fixture
def shelf() -> Iterator[Path]:
    """A directory outside root's 0700 pytest tree, holding a root-owned 0644 archive of one unit."""
    where = Path(tempfile.mkdtemp(prefix="turbolog-ro-", dir="/tmp"))
    where.chmod(0o755)
    path = where / "archive.sqlite"
    records = [SampleRecord(seq, T0 + seq * 3600, snapshot(seq)) for seq in range(40)]
    records[20] = FaultRecord(
        20, T0 + 20 * 3600, 0x101, Severity.FAST_SHUTDOWN, Subsystem.ENGINE, 0, snapshot(20)
    )
    scanned, _ = scan_records(b"".join(encode_record(record) for record in records))
    with Archive.open(path) as archive:
        identify(archive, "fw-2.1", 40)
        archive.store_records(SERIAL, scanned)
    path.chmod(0o644)
    yield where
    shutil.rmtree(where)


def reads_everything(as_nobody: Turbolog, path: Path) -> None:
    """Every reading command succeeds on *path* and leaves its directory and bytes as they were."""
    before = {entry.name: entry.read_bytes() for entry in path.parent.iterdir()}
    db = ["--db", str(path)]
    results = {
        "units": as_nobody("units", "--json", *db),
        "summary": as_nobody("summary", SERIAL, "--json", *db),
        "faults": as_nobody("faults", SERIAL, "--json", *db),
        "fleet": as_nobody("fleet", "--json", *db),
        "export": as_nobody("export", SERIAL, "--format", "csv", *db),
    }
    for name, result in results.items():
        assert (result.returncode, result.stderr) == (0, ""), name
    assert [unit["serial"] for unit in json.loads(results["units"].stdout)] == [SERIAL]
    summary = json.loads(results["summary"].stdout)
    assert (summary["records"], summary["operating_hours"], summary["failures"]) == (40, 39.0, 1)
    assert [fault["seq"] for fault in json.loads(results["faults"].stdout)] == [20]
    assert json.loads(results["fleet"].stdout)["total"]["units"] == 1
    assert len(results["export"].stdout.splitlines()) == 41
    assert {entry.name: entry.read_bytes() for entry in path.parent.iterdir()} == before


def test_a_root_owned_archive_in_a_read_only_directory_is_read(as_nobody: Turbolog, shelf: Path) -> None:
    reads_everything(as_nobody, shelf / "archive.sqlite")


def test_a_root_owned_archive_in_a_directory_anyone_may_write_is_read(
    as_nobody: Turbolog, shelf: Path
) -> None:
    shelf.chmod(0o1777)
    reads_everything(as_nobody, shelf / "archive.sqlite")


def test_a_mistyped_archive_is_one_line_and_creates_nothing(as_nobody: Turbolog, shelf: Path) -> None:
    shelf.chmod(0o1777)
    result = as_nobody("summary", SERIAL, "--db", str(shelf / "typo" / "archive.sqlite"))
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr == f"turbolog: there is no archive at {shelf / 'typo' / 'archive.sqlite'} " \
                            "(a pull or an ingest creates one; --db names another)\n"
    assert [entry.name for entry in shelf.iterdir()] == ["archive.sqlite"]


def kill_a_writer_mid_pull(path: Path) -> None:
    """A pull that committed a new IDENTIFY and died before closing: the change is only in the -wal."""
    script = textwrap.dedent(
        f"""
        import os
        from host.archive import Archive
        archive = Archive.open({str(path)!r})
        archive.upsert_unit(
            {SERIAL!r}, "C65", "fw-3.0", 0xD8247CB9, first_seq=0, next_seq=40, capacity_records=50_000,
            device_time={T0}, operating_s=0, starts=0, trips=0, energy_wh=0,
        )
        os._exit(0)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert Path(f"{path}-wal").stat().st_size > 0 and Path(f"{path}-shm").exists()


def test_changes_left_in_the_wal_are_read(as_nobody: Turbolog, shelf: Path) -> None:
    path = shelf / "archive.sqlite"
    kill_a_writer_mid_pull(path)
    result = as_nobody("units", "--json", "--db", str(path))
    assert (result.returncode, result.stderr) == (0, "")
    assert [unit["firmware"] for unit in json.loads(result.stdout)] == ["fw-3.0"]


def test_changes_in_a_wal_that_cannot_be_read_are_one_line(as_nobody: Turbolog, shelf: Path) -> None:
    path = shelf / "archive.sqlite"
    kill_a_writer_mid_pull(path)
    Path(f"{path}-shm").unlink()
    result = as_nobody("units", "--db", str(path))
    assert result.returncode == 4 and result.stdout == ""
    assert result.stderr.startswith(f"turbolog: cannot read archive {path}: archive.sqlite-wal holds changes")
    assert result.stderr.count("\n") == 1


def test_an_archive_in_an_immutable_directory_is_read_even_by_root(shelf: Path) -> None:
    """`chattr +i` on the directory: even root may not create the -shm file there."""
    if os.geteuid() != 0:
        pytest.skip("chattr +i needs root")
    chattr = require_tool("chattr")
    if subprocess.run([chattr, "+i", str(shelf)], capture_output=True, timeout=30).returncode:
        pytest.skip(f"the file system under {shelf} does not take chattr +i")
    try:
        command = Path(sys.executable).parent / "turbolog"
        result = subprocess.run(
            [str(command), "summary", SERIAL, "--json", "--db", str(shelf / "archive.sqlite")],
            capture_output=True, text=True, timeout=120,
        )
        assert (result.returncode, result.stderr) == (0, "")
        assert json.loads(result.stdout)["records"] == 40
        assert [entry.name for entry in shelf.iterdir()] == ["archive.sqlite"]
    finally:
        subprocess.run([chattr, "-i", str(shelf)], check=True, timeout=30)
