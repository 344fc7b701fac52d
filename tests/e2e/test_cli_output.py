"""`turbolog`'s output as a shell sees it: real processes, real pipes, real devices, a real full disk.

Figures held: a reader that goes away (``| head -3``, a pipe closed before anything is written)
ends every command quietly with exit 141 and nothing on stderr; standard output on a full device
is exit 5 and the one line "cannot write standard output: No space left on device" (no traceback,
no "None"); ``--out`` naming a device, a FIFO or /dev/stdout writes there and leaves it what it was;
a file on a full file system is exit 5 naming the file, and no part of it is left; a closed
standard output (``>&-``) is exit 5 and one line.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from host.archive import Archive
from protocol.records import scan_records
from tests.host.loopback import make_records
from tests.host.test_output_file import device

pytestmark = pytest.mark.e2e

ENOSPC = "No space left on device"
BIG = "BIG-0001"
BIG_RECORDS = 20_000
"""About 4 MB of CSV: far more than a pipe holds, so the writer is still writing when the reader goes."""

COMMANDS = [
    ["summary", BIG],
    ["summary", BIG, "--json"],
    ["units"],
    ["faults", BIG],
    ["faults", BIG, "--json"],
    ["export", BIG, "--format", "csv"],
    ["export", BIG, "--format", "jsonl", "--out", "-"],
    ["plot", BIG, "--out", "-"],
    ["fleet"],
    ["fleet", "--json"],
    ["ports", "--json"],
]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "archive.sqlite"
    with Archive.open(path) as archive:
        archive.upsert_unit(
            BIG, "C65", "fw", 0, first_seq=0, next_seq=BIG_RECORDS, capacity_records=BIG_RECORDS,
            device_time=0, operating_s=0, starts=0, trips=0, energy_wh=0,
        )
        archive.store_records(BIG, scan_records(b"".join(make_records(BIG_RECORDS)))[0])
    return path


def turbolog(argv: list[str], db: Path | None, **popen: object) -> subprocess.Popen[bytes]:
    extra = ["--db", str(db)] if db is not None else []
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "host.cli", *argv, *extra], stderr=subprocess.PIPE, **popen
    )


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_reader_gone_before_the_first_byte_ends_it_quietly(argv: list[str], db: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    process = turbolog(argv, db, stdout=write_end)
    os.close(write_end)
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err.decode()) == (141, "")


def test_head_3_ends_an_export_quietly(db: Path) -> None:
    """``turbolog export ... | head -3``: three lines, exit 141, not a word on stderr."""
    process = turbolog(["export", BIG, "--format", "csv"], db, stdout=subprocess.PIPE)
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert lines[0].startswith(b"seq,time,") and lines[2].startswith(b"1,")
    assert (process.returncode, err.decode()) == (141, "")


def test_head_3_in_a_shell(db: Path) -> None:
    bash = shutil.which("bash") or pytest.skip("no bash")
    script = (
        f'set -o pipefail; "{sys.executable}" -m host.cli export {BIG} --format jsonl --db "{db}" | head -3'
    )
    result = subprocess.run([bash, "-c", script], capture_output=True, timeout=120)
    assert result.stdout.count(b"\n") == 3
    assert (result.returncode, result.stderr.decode()) == (141, "")


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_standard_output_on_a_full_device_is_one_line(argv: list[str], db: Path) -> None:
    """``turbolog ... > /dev/full`` (redirecting to the real device cannot replace it)."""
    with open("/dev/full", "wb") as full:
        process = turbolog(argv, db, stdout=full)
        _, err = process.communicate(timeout=120)
    assert process.returncode == 5
    assert err.decode() == "turbolog: cannot write standard output: No space left on device\n"


def test_info_json_to_a_closed_pipe_and_to_a_full_device(turbosim_unit: object) -> None:
    unit = turbosim_unit(no_pace=True)  # type: ignore[operator]
    read_end, write_end = os.pipe()
    os.close(read_end)
    process = turbolog(["info", unit.url, "--json"], None, stdout=write_end)
    os.close(write_end)
    assert (process.wait(60), process.communicate()[1]) == (141, b"")
    with open("/dev/full", "wb") as full:
        process = turbolog(["info", unit.url, "--json"], None, stdout=full)
        _, err = process.communicate(timeout=60)
    assert (process.returncode, err.decode()) == (5, f"turbolog: cannot write standard output: {ENOSPC}\n")


@pytest.mark.parametrize("kind", ["export", "plot"])
def test_out_naming_a_full_device_fails_and_leaves_the_device(kind: str, db: Path, tmp_path: Path) -> None:
    full = device(tmp_path, "full")
    argv = ["export", BIG, "--format", "csv"] if kind == "export" else ["plot", BIG]
    process = turbolog([*argv, "--out", str(full)], db)
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err.decode()) == (5, f"turbolog: cannot write {full}: {ENOSPC}\n")
    assert stat.S_ISCHR(full.stat().st_mode)


@pytest.mark.parametrize("out", ["/dev/stdout", "-", "link"])
def test_out_naming_standard_output_writes_to_it(out: str, db: Path, tmp_path: Path) -> None:
    if out == "link":
        out = str(tmp_path / "stdout-link")
        os.symlink("/proc/self/fd/1", out)
    process = turbolog(["export", BIG, "--format", "jsonl", "--out", out], db, stdout=subprocess.PIPE,
                       cwd=tmp_path)
    data, _ = process.communicate(timeout=120)
    assert process.returncode == 0 and data.count(b"\n") == BIG_RECORDS
    assert not (tmp_path / "-").exists()
    assert not out.startswith(str(tmp_path)) or Path(out).is_symlink()


def test_out_naming_a_fifo_writes_into_it(db: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()  # a daemon: if the FIFO were replaced, it would wait on it forever, and not hold us
    process = turbolog(["export", BIG, "--format", "csv", "--out", str(fifo)], db)
    assert process.wait(120) == 0
    reader.join(30)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [data.count(b"\n") for data in received] == [BIG_RECORDS + 1]


def test_a_full_file_system_leaves_no_part_of_the_file(db: Path, tmp_path: Path) -> None:
    """On a 64 KiB tmpfs (mounted in a private mount namespace: nothing outside sees it)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare to mount a small file system")
    mount = tmp_path / "small"
    mount.mkdir()
    target = mount / "big.csv"
    script = (
        f'mount -t tmpfs -o size=64k tmpfs "{mount}" || exit 99; '
        f'"{sys.executable}" -m host.cli export {BIG} --format csv --db "{db}" --out "{target}"; '
        f'status=$?; ls -A "{mount}" >&2; exit $status'
    )
    result = subprocess.run([unshare, "--mount", "sh", "-c", script], capture_output=True, timeout=120)
    if result.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    assert (result.returncode, result.stderr.decode()) == (
        5, f"turbolog: cannot write {target}: No space left on device\n"
    )


@pytest.mark.parametrize("out", [None, "/dev/stdout"])
def test_a_closed_standard_output_is_one_line(out: str | None, db: Path) -> None:
    """``turbolog ... >&-``: exit 5 and one line, and /dev/stdout never lands in a file opened later."""
    bash = shutil.which("bash") or pytest.skip("no bash")
    extra = f"--out {out}" if out else ""
    script = f'exec "{sys.executable}" -m host.cli export {BIG} --format csv {extra} --db "{db}" >&-'
    result = subprocess.run([bash, "-c", script], capture_output=True, timeout=120)
    named = out or "standard output"
    assert result.returncode == 5
    assert result.stderr.decode() == f"turbolog: cannot write {named}: Bad file descriptor\n"
