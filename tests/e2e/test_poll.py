"""`turbolog poll` over several emulated units: every unit's log in one archive, failures kept to
their unit, --due, a second poll of the same archive refused, bad inventories refused before any
dialling, and a stop signal that keeps every unit's committed records.

Units are small (200 h, about 800 records), unpaced and held still (``--speed 1e-6``) with a flash
image, the independent witness of the device's log, as in test_every_link.py.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_sim.pytest_plugin import RunningUnit
from host.cli import main as turbolog_main
from host.poll import claim_archive
from protocol.inventory import InventoryEntry, format_inventory
from tests.conftest import require_tool
from tests.e2e.chain import NullModem, TerminalServer, archived, flash_log

pytestmark = pytest.mark.e2e

STILL = {"history": "200h", "no_pace": True, "extra_args": ["--speed", "0.000001"]}


def turbolog(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = turbolog_main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def write_inventory(path: Path, entries: list[InventoryEntry]) -> Path:
    path.write_text(format_inventory(entries, kind=path.suffix.lstrip(".")), encoding="utf-8")
    return path


def complete(db: Path, unit: RunningUnit, image: Path) -> None:
    """The unit (stopped) left in its flash image exactly what the archive holds of it, up to the
    records of its power-down, which came after the poll."""
    device = flash_log(image)
    got = archived(db, unit.serial)
    assert got and got == device[: len(got)]
    assert len(device) - len(got) < 10


@pytest.fixture
def units(turbosim_unit: Callable[..., RunningUnit], tmp_path: Path) -> list[tuple[RunningUnit, Path]]:
    """Four units, two in this process and two over TCP, each with its flash image."""
    served = []
    for number, link in enumerate(["inproc", "inproc", "tcp", "tcp"]):
        image = tmp_path / f"unit-{number}.img"
        served.append((turbosim_unit(link=link, seed=number + 1, flash=image, **STILL), image))
    return served


def test_a_poll_archives_every_units_log_and_a_second_adds_nothing(
    units: list[tuple[RunningUnit, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = write_inventory(
        tmp_path / "fleet.toml", [InventoryEntry(unit.url, serial=unit.serial) for unit, _ in units]
    )
    db = tmp_path / "fleet.sqlite"
    status, out, err = turbolog(["poll", str(inventory), "--db", str(db), "--jobs", "3", "--json"], capsys)
    assert status == 0, err
    report = json.loads(out)
    assert [row["url"] for row in report["units"]] == [unit.url for unit, _ in units]
    assert [row["serial"] for row in report["units"]] == [unit.serial for unit, _ in units]
    assert all(row["error"] is None and row["added"] > 700 for row in report["units"])
    assert report["total"]["added"] == sum(row["added"] for row in report["units"])

    status, out, err = turbolog(["poll", str(inventory), "--db", str(db), "--jobs", "4", "--json"], capsys)
    assert status == 0, err
    assert json.loads(out)["total"]["added"] == 0

    status, out, _ = turbolog(["units", "--db", str(db), "--json"], capsys)
    listed = {row["serial"]: row for row in json.loads(out)}
    assert set(listed) == {unit.serial for unit, _ in units}
    assert all(row["last_poll"]["outcome"] == "reached" for row in listed.values())
    for unit, image in units:
        assert unit.stop() == 0
        complete(db, unit, image)


@pytest.fixture
def mute_listener() -> Iterator[str]:
    """A TCP port that accepts and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"socket://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def garbage_talker() -> Iterator[str]:
    """A TCP port that answers every connection with noise."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        import threading

        stop = threading.Event()

        def serve() -> None:
            peers = []
            while not stop.is_set():
                if select.select([listener], [], [], 0.05)[0]:
                    peer, _ = listener.accept()
                    peers.append(peer)
                for peer in peers:
                    try:
                        peer.send(bytes(range(1, 200)) * 4)
                    except OSError:
                        peers.remove(peer)
                time.sleep(0.05)
            for peer in peers:
                peer.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield f"socket://127.0.0.1:{listener.getsockname()[1]}"
        stop.set()
        thread.join()


def test_units_that_fail_fail_alone_with_their_reason(
    units: list[tuple[RunningUnit, Path]], mute_listener: str, garbage_talker: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"socket://127.0.0.1:{closed.getsockname()[1]}"
    (good, good_image), (impostor, _), *_ = units
    entries = [
        InventoryEntry(good.url, serial=good.serial),
        InventoryEntry(impostor.url, serial="C60-999999"),
        InventoryEntry(refused),
        InventoryEntry(mute_listener),
        InventoryEntry(garbage_talker),
    ]
    inventory = write_inventory(tmp_path / "fleet.csv", entries)
    db = tmp_path / "fleet.sqlite"
    argv = ["poll", str(inventory), "--db", str(db), "--jobs", "5", "--timeout", "0.5", "--redials", "1"]
    status, out, err = turbolog([*argv, "--json"], capsys)
    assert status == 10, err
    rows = {row["url"]: row for row in json.loads(out)["units"]}
    assert rows[good.url]["error"] is None and rows[good.url]["added"] > 700
    wrong = rows[impostor.url]
    assert wrong["outcome"] == "WrongUnit" and wrong["added"] == 0
    assert wrong["serial"] == impostor.serial
    assert f"unit {impostor.serial} answers there, not C60-999999" in wrong["error"]
    assert "nothing answers there" in rows[refused]["error"]
    assert [rows[url]["calls"] for url in (good.url, impostor.url, refused, mute_listener)] == [1, 1, 2, 2]
    assert rows[mute_listener]["outcome"] == "LinkTimeout"
    assert rows[garbage_talker]["error"] is not None
    status, out, err = turbolog(["units", "--db", str(db), "--json"], capsys)
    assert [row["serial"] for row in json.loads(out)] == [good.serial]  # nothing of the impostor

    status, out, err = turbolog(argv, capsys)
    assert status == 10
    assert re.search(rf"{re.escape(impostor.url)} \({impostor.serial}\): .*not C60-999999", out)
    assert "polled 5 of 5 units: 1 reached, 4 failed, 0 records added" in out
    assert good.stop() == 0
    complete(db, good, good_image)


def test_due_dials_only_units_not_reached_and_retries_failed_ones_after_a_back_off(
    units: list[tuple[RunningUnit, Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"socket://127.0.0.1:{closed.getsockname()[1]}"
    first = [InventoryEntry(unit.url) for unit, _ in units[:2]]
    db = tmp_path / "fleet.sqlite"
    inventory = write_inventory(tmp_path / "fleet.toml", [*first, InventoryEntry(refused)])
    status, out, err = turbolog(["poll", str(inventory), "--db", str(db), "--redials", "0", "--json"], capsys)
    assert status == 10, err

    grown = write_inventory(
        tmp_path / "fleet.toml", [*first, InventoryEntry(refused), InventoryEntry(units[2][0].url)]
    )
    due_again = ["poll", str(grown), "--db", str(db), "--due", "24h", "--redials", "0", "--json"]
    status, out, err = turbolog(due_again, capsys)
    assert status == 0, err
    report = json.loads(out)
    assert [row["url"] for row in report["units"]] == [units[2][0].url]  # the failed one waits its back-off
    assert (report["total"]["not_due"], report["total"]["units"]) == (3, 4)

    with sqlite3.connect(db) as archive:  # an hour passes
        archive.execute("UPDATE dials SET last_attempt = last_attempt - 3600")
    status, out, err = turbolog(due_again, capsys)
    assert [row["url"] for row in json.loads(out)["units"]] == [refused]
    with sqlite3.connect(db) as archive:
        (failures,) = archive.execute("SELECT failures FROM dials WHERE url = ?", (refused,)).fetchone()
    assert failures == 2

    with sqlite3.connect(db) as archive:  # two days pass
        archive.execute("UPDATE dials SET last_success = last_success - 2 * 86400")
    status, out, err = turbolog(due_again, capsys)
    assert {row["url"] for row in json.loads(out)["units"]} == {unit.url for unit, _ in units[:3]}


def test_a_second_poll_of_the_same_archive_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "fleet.sqlite"
    inventory = write_inventory(tmp_path / "fleet.toml", [InventoryEntry("socket://127.0.0.1:9")])
    with claim_archive(db):
        status, out, err = turbolog(["poll", str(inventory), "--db", str(db)], capsys)
    assert status == 4
    assert f"archive {db} is being polled by another turbolog poll (pid {os.getpid()})" in err
    assert err.count("\n") == 1 and not db.exists()


@pytest.mark.parametrize(
    ("text", "suffix", "extra", "says"),
    [
        ('[[unit]]\nurl = "socket://127.0.0.1:9"\nbaud = "fast"\n', ".toml", [], "line 3: bad baud 'fast'"),
        ("url\nsocket://127.0.0.1:9\nsocket://127.0.0.1:9\n", ".csv", [], "line 3: duplicate URL"),
        ("url\nhttp://127.0.0.1:9\n", ".csv", [], "line 2: unknown scheme http://"),
        ("url\nsocket://127.0.0.1:9\n", ".csv", ["--jobs", "0"], "--jobs must be 1 or more, not 0"),
        ("url\nsocket://127.0.0.1:9\n", ".csv", ["--shard", "3/2"], "--shard 3/2: K must be 1..N"),
        ("url\nsocket://127.0.0.1:9\n", ".yaml", [], "an inventory is FILE.toml or FILE.csv"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_dialled(
    text: str, suffix: str, extra: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / f"fleet{suffix}"
    inventory.write_text(text, encoding="utf-8")
    db = tmp_path / "fleet.sqlite"
    status, out, err = turbolog(["poll", str(inventory), "--db", str(db), *extra], capsys)
    assert status == 2
    assert says in err and err.count("\n") == 1 and err.startswith("turbolog: ")
    assert out == "" and not db.exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_keeps_every_units_committed_records(
    signum: int, turbosim_unit: Callable[..., RunningUnit], tmp_path: Path
) -> None:
    """Units paced at 115,200 baud with about 2,000 records (some 12 s each): the signal goes
    once records are flowing; the poll ends with one line, the documented code, and the archive
    holds what the line says; a second poll completes every unit, fetching none twice."""
    served = [
        (turbosim_unit(link="tcp", seed=seed, history="500h", flash=tmp_path / f"u{seed}.img",
                       extra_args=["--speed", "0.000001"]), tmp_path / f"u{seed}.img")
        for seed in (1, 2, 3)
    ]
    inventory = write_inventory(tmp_path / "fleet.toml", [InventoryEntry(unit.url) for unit, _ in served])
    db = tmp_path / "fleet.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "host.cli", "poll", str(inventory), "--db", str(db), "--jobs", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60  # a guard against a hang, not a measurement
        while time.monotonic() < deadline and _stored(db) < 300:
            time.sleep(0.2)
        process.send_signal(signum)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    name = "interrupted" if signum == signal.SIGINT else "stopped by SIGTERM"
    assert process.returncode == 128 + signum, err
    found = re.fullmatch(
        rf"turbolog: {name}; every unit's committed records are kept \(([\d,]+) records added, (\d+) units "
        r"complete\), run again to resume\n",
        err.decode(),
    )
    assert found, err
    kept = int(found.group(1).replace(",", ""))
    assert kept == _stored(db) > 0
    status = subprocess.run(
        [sys.executable, "-m", "host.cli", "poll", str(inventory), "--db", str(db), "--jobs", "3", "--json"],
        capture_output=True, check=False,
    )
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    for (unit, image), row in zip(served, report["units"], strict=True):
        assert unit.stop() == 0
        complete(db, unit, image)
        assert row["serial"] == unit.serial
    assert kept + report["total"]["added"] == _stored(db)


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as archive:
            (count,) = archive.execute("SELECT COALESCE(SUM(record_count), 0) FROM units").fetchone()
    except sqlite3.Error:
        return 0
    return int(count)


@pytest.mark.slow
def test_a_poll_through_a_terminal_server_of_eight_rfc2217_ports(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real chain: 8 units, each on a socat pty pair, behind one ser2net with 8 RFC 2217
    accepters; `turbolog poll` over the 8 rfc2217:// URLs archives every unit's whole log, equal
    to its flash image."""
    socat, ser2net = require_tool("socat"), require_tool("ser2net")
    modems: list[NullModem] = []
    server: TerminalServer | None = None
    try:
        served = {}
        for number in range(8):
            directory = tmp_path / f"line-{number}"
            directory.mkdir()
            modems.append(NullModem(socat, directory))
            image = tmp_path / f"unit-{number}.img"
            unit = turbosim_unit(link="port", port=str(modems[-1].a), seed=number + 1, flash=image, **STILL)
            served[unit.serial] = (unit, image)
        server = TerminalServer(ser2net, tmp_path, [modem.b for modem in modems])
        entries = [InventoryEntry(url, 115_200) for url in server.urls]
        inventory = write_inventory(tmp_path / "fleet.csv", entries)
        db = tmp_path / "fleet.sqlite"
        argv = ["poll", str(inventory), "--db", str(db), "--jobs", "8", "--json"]
        status, out, err = turbolog(argv, capsys)
        assert status == 0, err
        report = json.loads(out)
        assert sorted(row["serial"] for row in report["units"]) == sorted(served)
        assert all(row["error"] is None and row["added"] > 700 for row in report["units"])
        for unit, image in served.values():
            assert unit.stop() == 0
            complete(db, unit, image)
    finally:
        if server is not None:
            server.stop()
        for modem in modems:
            modem.stop()


@pytest.mark.slow
def test_on_a_terminal_the_poll_draws_a_live_status_table(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path
) -> None:
    """Two paced units (some 5 s of line each), one link at a time: the table on the terminal
    shows units done, in progress and failed, records/s and an ETA once a unit is done; standard
    output, not a terminal, gets only the summary."""
    served = [turbosim_unit(link="tcp", seed=seed, history="200h") for seed in (1, 2)]
    inventory = write_inventory(tmp_path / "fleet.toml", [InventoryEntry(unit.url) for unit in served])
    master, slave = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "host.cli", "poll", str(inventory), "--db", str(tmp_path / "f.sqlite"),
         "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=slave,
    )
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096) if select.select([master], [], [], 60)[0] else b""
        except OSError:  # the poll ended and closed the terminal's last writer
            break
        if not chunk:
            break
        drawn += chunk
    out, _ = process.communicate(timeout=60)
    os.close(master)
    assert process.returncode == 0
    text = drawn.decode(errors="replace")
    assert re.search(r"units 2 +done 0 +in progress 1 +failed 0 +waiting 1", text)
    assert re.search(r"units 2 +done 1 +in progress 1 +failed 0 +waiting 0", text)
    assert re.search(r"records [\d,]+ \([\d,]+/s\) +elapsed [\d:]+ +ETA \d\d:\d\d", text)
    assert out.decode().startswith("polled 2 of 2 units: 2 reached, 0 failed")
