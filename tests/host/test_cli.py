"""`turbolog` error paths, through host.cli.main: each ends with its documented exit code and one line
on stderr naming the problem, never a traceback.

    2 bad usage or arguments        5 an output file cannot be written
    3 unknown serial number         6 the port is missing, busy or vanished
    4 archive corrupt or foreign    7 the device did not answer in time
                                    9 the device speaks something else
"""

from __future__ import annotations

import argparse
import os
import select
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from host.archive import Archive
from host.cli import build_parser, main
from protocol.records import scan_records
from tests.host.loopback import make_records

SERIAL = "TL-0001"


def turbolog(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Exit status and stderr of ``turbolog ARGV`` (stderr checked to be one clean line)."""
    capsys.readouterr()
    status = main(argv)
    err = capsys.readouterr().err
    assert err.startswith("turbolog: ") and err.count("\n") == 1, repr(err)
    assert "Traceback" not in err
    return status, err


@pytest.fixture
def pty_port() -> Iterator[tuple[int, str]]:
    """A pty nobody answers on: (master fd, slave path).  The fixture keeps a handle on the slave, so
    the master never reads EIO when the host closes its own."""
    master, slave = os.openpty()
    yield master, os.ttyname(slave)
    os.close(slave)
    os.close(master)


@pytest.fixture
def archive_with_a_unit(tmp_path: Path) -> Path:
    db = tmp_path / "archive.sqlite"
    with Archive.open(db) as archive:
        archive.upsert_unit(
            SERIAL, "C65", "fw-test", 0, first_seq=0, next_seq=10, capacity_records=10, device_time=0,
            operating_s=0, starts=0, trips=0, energy_wh=0,
        )
        archive.store_records(SERIAL, scan_records(b"".join(make_records(10)))[0])
    return db


# --- 6: the port ------------------------------------------------------------------------------------------


def test_a_port_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 6, 'does not exist'."""
    status, err = turbolog(["info", str(tmp_path / "ttyUSB9")], capsys)
    assert status == 6 and "does not exist" in err


def test_a_busy_port(pty_port: tuple[int, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 6, 'busy', while another program holds the port exclusively."""
    with serial.Serial(pty_port[1], exclusive=True):
        status, err = turbolog(["info", pty_port[1]], capsys)
    assert status == 6 and "busy" in err


# --- 7 and 9: the device -------------------------------------------------------------------------------


def test_a_device_that_does_not_answer(pty_port: tuple[int, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 7 after 3 tries of 0.2 s, naming the request that went unanswered."""
    status, err = turbolog(["info", pty_port[1], "--timeout", "0.2"], capsys)
    assert status == 7 and "no answer to ABORT in 3 x 0.2 s" in err


class Modem:
    """A thread answering every byte on the pty's master with a Hayes modem's 'ERROR'."""

    def __init__(self, master: int) -> None:
        self._master = master
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modem")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if select.select([self._master], [], [], 0.02)[0]:
                os.read(self._master, 4096)
                os.write(self._master, b"\r\nERROR\r\n")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def test_a_device_that_speaks_something_else(
    pty_port: tuple[int, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: exit 9, 'not one valid turbolog frame'."""
    modem = Modem(pty_port[0])
    try:
        status, err = turbolog(["info", pty_port[1], "--timeout", "0.2"], capsys)
    finally:
        modem.close()
    assert status == 9 and "not one valid turbolog frame" in err


# --- 4: the archive -----------------------------------------------------------------------------------------


def test_a_corrupt_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 4 for a file of random bytes."""
    db = tmp_path / "archive.sqlite"
    db.write_bytes(os.urandom(8192))
    status, err = turbolog(["units", "--db", str(db)], capsys)
    assert status == 4 and "not a turbolog archive" in err


def test_a_foreign_sqlite_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 4 for another program's SQLite database, left untouched."""
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as other:
        other.execute("CREATE TABLE contacts (name TEXT)")
    other.close()
    before = db.read_bytes()
    status, err = turbolog(["summary", SERIAL, "--db", str(db)], capsys)
    assert status == 4 and "SQLite file but not a turbolog archive" in err
    assert db.read_bytes() == before


# --- 5, 3 and 2: outputs, serials, arguments -------------------------------------------------------------


def test_an_export_path_that_cannot_be_written(
    archive_with_a_unit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: exit 5, naming the path; nothing left behind."""
    out = tmp_path / "no-such-dir" / "unit.csv"
    status, err = turbolog(
        ["export", SERIAL, "--format", "csv", "--out", str(out), "--db", str(archive_with_a_unit)], capsys
    )
    assert status == 5 and str(out) in err
    assert not out.parent.exists()


def test_an_unknown_serial(archive_with_a_unit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 3, naming the serial."""
    status, err = turbolog(["summary", "C60-NOPE", "--db", str(archive_with_a_unit)], capsys)
    assert status == 3 and "'C60-NOPE' is not in the archive" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pull", "/dev/null", "--baud", "0"], "--baud must be positive"),
        (["info", "/dev/null", "--timeout", "-1"], "--timeout must be positive"),
        (["info", "nosuch://127.0.0.1:1"], "cannot open nosuch://"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 2 with the argument named."""
    status, err = turbolog(argv, capsys)
    assert status == 2 and message in err


@pytest.mark.parametrize("argv", [["pull"], ["pull", "/dev/null", "--baud", "fast"], ["explode"]])
def test_arguments_argparse_refuses(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 2; argparse's usage, then one 'error:' line, and no traceback."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.startswith("usage: turbolog") and "Traceback" not in err
    assert err.rstrip("\n").splitlines()[-1].startswith("turbolog") and ": error: " in err


# --- keys: never abbreviated, never echoed, warned about when others can read them ------------------------

KEY_HEX = bytes(range(100, 132)).hex()


@pytest.mark.parametrize(
    "argv",
    [
        ["set-clock", "/dev/null", "--key", "maint.key"],
        ["clear-log", "/dev/null", "--key", "maint.key"],
        ["units", "--js"],
        ["ports", "--js"],
        ["summary", SERIAL, "--js"],
        ["faults", SERIAL, "--sev", "3"],
        ["export", SERIAL, "--form", "csv"],
        ["plot", SERIAL, "--o", "x.png"],
        ["fleet", "--pl", "x.png"],
        ["pull", "/dev/null", "--win", "5"],
        ["info", "/dev/null", "--ba", "9600"],
        ["live", "/dev/null", "--int", "1"],
        ["ingest", "images", "--d", "x.sqlite"],
    ],
    ids=" ".join,
)
def test_an_option_is_never_abbreviated(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Figure held: exit 2, the short form unrecognised (``--key`` is not ``--key-file``), or the
    option it would have abbreviated still missing."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    short = next(arg for arg in argv if arg.startswith("--"))
    assert f"unrecognized arguments: {short}" in err or f"arguments are required: {short}" in err


def test_no_parser_takes_abbreviations() -> None:
    parser = build_parser()
    (commands,) = (action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert not parser.allow_abbrev
    abbreviating = [name for name, command in commands.choices.items() if command.allow_abbrev]
    assert abbreviating == []


def test_a_key_on_the_command_line_is_refused_and_not_echoed(capsys: pytest.CaptureFixture[str]) -> None:
    """`turbolog set-clock PORT --key <hex>`: exit 2, and the key appears nowhere in what is printed."""
    with pytest.raises(SystemExit) as exited:
        main(["set-clock", "/dev/null", "--key", KEY_HEX])
    captured = capsys.readouterr()
    assert exited.value.code == 2
    assert "unrecognized arguments: --key <64 hex digits withheld>" in captured.err
    assert KEY_HEX[:32] not in captured.err + captured.out


@pytest.mark.parametrize("where", ["key file", "port", "level"])
def test_a_key_where_a_name_belongs_is_not_echoed(
    where: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A key pasted as the key file's name, the port or the level: one line, exit 2 or 6, no key."""
    key_file = tmp_path / "maint.key"
    key_file.write_text(KEY_HEX + "\n")
    key_file.chmod(0o600)
    port, name, level = str(tmp_path / "ttyUSB9"), str(key_file), "maintenance"
    if where == "key file":
        name = KEY_HEX
    elif where == "port":
        port = KEY_HEX
    else:
        level = KEY_HEX
    status, err = turbolog(["set-clock", port, "--key-file", name, "--level", level], capsys)
    assert status in (2, 6) and "<64 hex digits withheld>" in err
    assert KEY_HEX[:32] not in err


@pytest.mark.parametrize(
    ("mode", "readers"), [(0o644, "its group and others"), (0o640, "its group"), (0o604, "others")]
)
def test_a_key_file_others_can_read_is_warned_about(
    mode: int, readers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: one warning line naming the file, its mode and the fix; the command goes on."""
    key_file = tmp_path / "maint.key"
    key_file.write_text(KEY_HEX + "\n")
    key_file.chmod(mode)
    main(["set-clock", str(tmp_path / "ttyUSB9"), "--key-file", str(key_file)])
    warning, error = capsys.readouterr().err.splitlines()
    assert warning == (
        f"turbolog: warning: key file {key_file} is readable by {readers} (mode {mode:04o}): "
        f"chmod 600 {key_file}"
    )
    assert "does not exist" in error
    key_file.chmod(0o600)
    main(["set-clock", str(tmp_path / "ttyUSB9"), "--key-file", str(key_file)])
    assert "warning" not in capsys.readouterr().err


# --- 3: where --out writes ----------------------------------------------------------------------------


def test_out_dash_is_standard_output_not_a_file(
    archive_with_a_unit: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["export", SERIAL, "--format", "jsonl", "--out", "-", "--db", str(archive_with_a_unit)]) == 0
    assert capsys.readouterr().out.count("\n") == 10
    assert not (tmp_path / "-").exists()


def test_out_replacing_a_file_keeps_its_mode_and_a_link_stays_a_link(
    archive_with_a_unit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "unit.csv"
    target.write_text("yesterday\n")
    target.chmod(0o600)
    link = tmp_path / "latest.csv"
    link.symlink_to(target)
    db = str(archive_with_a_unit)
    assert main(["export", SERIAL, "--format", "csv", "--out", str(link), "--db", db]) == 0
    assert link.is_symlink() and target.read_text().count("\n") == 11
    assert oct(target.stat().st_mode & 0o777) == oct(0o600)
    assert capsys.readouterr().err == f"10 records written to {link}\n"


def test_parquet_out_dash_is_refused_and_a_link_is_followed(
    archive_with_a_unit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pyarrow")
    db = str(archive_with_a_unit)
    status, err = turbolog(["export", "--format", "parquet", "--out", "-", "--db", db], capsys)
    assert status == 2 and "a Parquet dataset is a directory: it cannot go to standard output" in err
    (tmp_path / "datasets").mkdir(mode=0o750)
    link = tmp_path / "latest"
    link.symlink_to(tmp_path / "datasets")
    assert main(["export", "--format", "parquet", "--out", str(link), "--db", str(archive_with_a_unit)]) == 0
    assert link.is_symlink() and (link / "units.parquet").is_file()
    assert oct((tmp_path / "datasets").stat().st_mode & 0o777) == oct(0o750)


def test_a_parquet_export_builds_in_a_directory_of_its_own(
    archive_with_a_unit: Path, tmp_path: Path
) -> None:
    """Another export building beside the same OUT (or one a crash left) is neither used nor
    removed; the new dataset has a new directory's permissions, and nothing is left beside it."""
    pytest.importorskip("pyarrow")
    other = tmp_path / ".ds.part"
    other.mkdir()
    (other / "part-0.parquet").write_bytes(b"another export's file")
    db = str(archive_with_a_unit)
    assert main(["export", "--format", "parquet", "--out", str(tmp_path / "ds"), "--db", db]) == 0
    assert (other / "part-0.parquet").read_bytes() == b"another export's file"
    assert (tmp_path / "ds" / "units.parquet").is_file()
    umask = os.umask(0)
    os.umask(umask)
    assert oct((tmp_path / "ds").stat().st_mode & 0o777) == oct(0o777 & ~umask)
    assert sorted(path.name for path in tmp_path.iterdir() if path.name.startswith((".ds", "ds"))) == [
        ".ds.part", "ds"
    ]
