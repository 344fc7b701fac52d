"""Output targets: a regular file is replaced whole, everything else is written where it is.

Each case is a target a user names with ``--out``: a file, a symlink, a device, a FIFO, a process's
own descriptor (``/dev/stdout``, ``/dev/fd/N`` from a shell's ``>(...)``), ``-``.  Devices are made in
the test's own directory (``mknod``, as root) so that a regression cannot damage the real ``/dev``.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path

import pytest

from host.errors import OutputError
from host.output_file import output_file

DEVICES = {"null": 3, "full": 7}
"""Minor numbers of the memory devices (major 1)."""


def device(folder: Path, name: str) -> Path:
    """A character device like /dev/NAME: made in *folder* as root, else the real one (which an
    unprivileged process cannot replace, whatever the code under test does)."""
    if os.geteuid() != 0:
        return Path("/dev") / name
    path = folder / name
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, DEVICES[name]))
    except PermissionError:
        pytest.skip("root without CAP_MKNOD: no private device node to write to")
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.endswith(".part"))


def test_a_regular_file_is_replaced_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "unit.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    with output_file(target, binary=False) as stream:
        stream.write("new\n")
        assert target.read_text() == "old\n"
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert leftovers(tmp_path) == []


def test_a_failure_leaves_the_old_file_and_no_part(tmp_path: Path) -> None:
    target = tmp_path / "unit.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), output_file(target, binary=False) as stream:
        stream.write("half")
        raise RuntimeError("the export broke off")
    assert target.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_a_symlink_is_followed_and_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "unit.csv"
    target.write_text("old\n")
    target.chmod(0o600)
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    with output_file(link, binary=False) as stream:
        stream.write("new\n")
    assert link.is_symlink() and link.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "real") == []


def test_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "latest.csv"
    link.symlink_to("made.csv")
    with output_file(link, binary=True) as stream:
        stream.write(b"new\n")
    assert link.is_symlink() and (tmp_path / "made.csv").read_bytes() == b"new\n"


def test_a_device_is_written_in_place(tmp_path: Path) -> None:
    null = device(tmp_path, "null")
    with output_file(null, binary=False) as stream:
        stream.write("gone\n")
    assert stat.S_ISCHR(null.stat().st_mode)


def test_a_full_device_is_an_output_error_and_stays_a_device(tmp_path: Path) -> None:
    full = device(tmp_path, "full")
    refused = pytest.raises(OutputError, match=f"^cannot write {full}: No space left on device$")
    with refused, output_file(full, binary=False) as stream:
        stream.write("x" * 100_000)
    assert stat.S_ISCHR(full.stat().st_mode)


def test_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with output_file(fifo, binary=True) as stream:
        stream.write(b"through the pipe\n")
    reader.join(10)
    assert received == [b"through the pipe\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize("form", ["/dev/fd/{fd}", "/proc/self/fd/{fd}", "link"])
def test_a_descriptor_of_this_process_is_written_through(tmp_path: Path, form: str) -> None:
    """What ``--out >(gzip > x.gz)`` or a link to /proc/self/fd/N names: the pipe gets the bytes,
    the link stays."""
    read_end, write_end = os.pipe()
    try:
        target = tmp_path / "to-the-pipe"
        if form == "link":
            target.symlink_to(f"/proc/self/fd/{write_end}")
        else:
            target = Path(form.format(fd=write_end))
        with output_file(target, binary=False) as stream:
            stream.write("through the descriptor\n")
        os.close(write_end)
        write_end = -1
        assert os.read(read_end, 100) == b"through the descriptor\n"
        assert form != "link" or target.is_symlink()
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def test_an_append_redirection_keeps_appending(tmp_path: Path) -> None:
    """``turbolog export ... --out /dev/stdout >> log``: what the log held stays."""
    log = tmp_path / "log"
    log.write_text("first\n")
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        with output_file(f"/dev/fd/{fd}", binary=False) as stream:
            stream.write("second\n")
    finally:
        os.close(fd)
    assert log.read_text() == "first\nsecond\n"


def test_dash_is_standard_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with output_file("-", binary=True, stdout=stdout) as stream:
        stream.write(b"\x89PNG")
    assert stdout.buffer.getvalue() == b"\x89PNG"  # type: ignore[attr-defined]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["missing/x.csv", "file/x.csv", "."])
def test_what_cannot_be_written_is_one_line_naming_it(tmp_path: Path, where: str) -> None:
    (tmp_path / "file").write_text("")
    target = tmp_path / where
    with pytest.raises(OutputError, match=f"^cannot write {target}: "), output_file(target, binary=False):
        pass
