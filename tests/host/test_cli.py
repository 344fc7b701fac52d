"""`turbolog` error paths, through host.cli.main: each ends with its documented exit code and one line
on stderr naming the problem, never a traceback.

    2 bad usage or arguments        5 an output file cannot be written
    3 unknown serial number         6 the port is missing, busy or vanished
    4 archive corrupt or foreign    7 the device did not answer in time
                                    9 the device speaks something else
"""

from __future__ import annotations

import os
import select
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from host.archive import Archive
from host.cli import main
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
