"""`turbosim serve-fleet`: many units from one process, each on its own port, as a poller meets them.

Real processes, talked to over raw sockets with the protocol's own encoders (no host retries hide a
lost request or a call that should have been busy).
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_sim.dialin import Answer, DialFaults, Exchange
from firmware_sim.flash import NorFlash
from firmware_sim.fleet_server import FleetServer
from firmware_sim.links import TcpLink
from firmware_sim.logstore import LogStore
from firmware_sim.pacing import Pacer
from firmware_sim.pytest_plugin import TURBOSIM
from firmware_sim.serve import Server
from firmware_sim.session import DeviceSession
from firmware_sim.unit import build_unit
from protocol.framing import Frame, FrameDecoder
from protocol.messages import Identify, IdentifyResponse, ReadRange, decode_message, encode_message
from tests.firmware_sim.fleet_process import ServedFleet, identify, run_fleet, served_fleets
from tests.firmware_sim.test_serving import ANSWER_WITHIN_S, address, answer

JAN_1_2024 = 1_704_067_200
LIVES_ON_WITHIN_S = 60.0
"""How long a test waits for a unit at --speed 3600 to log its next samples: generous, a liveness bound."""


@pytest.fixture
def serve_fleet(tmp_path: Path) -> Iterator[Callable[..., ServedFleet]]:
    yield from served_fleets(tmp_path)


def test_the_ready_line_names_an_inventory_where_every_unit_answers_with_its_serial(
    serve_fleet: Callable[..., ServedFleet],
) -> None:
    fleet = serve_fleet(
        "--units", "6", "--mix", "C30:0.5,C65:0.5", "--seed", "4", "--history", "1d", "--baud", "9600",
        "--tcp", "127.0.0.1:0",
    )
    entries = fleet.entries
    assert len(entries) == 6
    assert sorted(entry.serial or "" for entry in entries) == sorted(
        {entry.serial or "" for entry in entries}
    ), "serial numbers repeat"
    assert {entry.group for entry in entries} == {"C30", "C65"}
    assert {entry.baud for entry in entries} == {9600}
    assert len({entry.url for entry in entries}) == 6
    for entry in entries:
        response = identify(entry.url)
        assert response is not None, f"{entry.url} did not answer"
        assert (response.serial, response.model) == (entry.serial, entry.group)
        assert response.next_seq >= 96, "a day of 15-minute samples was not lived before serving"
    assert fleet.stop() == 0
    assert not fleet.inventory.exists(), "the temporary inventory outlived the fleet"


def test_the_same_seed_serves_the_same_fleet(serve_fleet: Callable[..., ServedFleet]) -> None:
    options = ("--units", "3", "--seed", "9", "--history", "12h", "--tcp", "127.0.0.1:0", "--no-pace")
    first, second = serve_fleet(*options), serve_fleet(*options)
    for a, b in zip(first.entries, second.entries, strict=True):
        ours, theirs = identify(a.url), identify(b.url)
        assert ours is not None and theirs is not None
        assert (a.serial, a.site, ours.next_seq, ours.operating_s, ours.starts) == (
            b.serial, b.site, theirs.next_seq, theirs.operating_s, theirs.starts,
        )


def _free_ports(count: int) -> int:
    """The first of *count* consecutive loopback ports nothing listens on now."""
    for base in range(42000, 60000, 97):
        probes = []
        try:
            for port in range(base, base + count):
                probe = socket.socket()
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
    raise AssertionError("no free ports")


def test_units_take_consecutive_ports_from_the_first_and_an_inventory_file_when_asked(
    serve_fleet: Callable[..., ServedFleet], tmp_path: Path
) -> None:
    base = _free_ports(3)
    fleet = serve_fleet(
        "--units", "3", "--rfc2217", f"127.0.0.1:{base}-{base + 2}", "--inventory", str(tmp_path / "inv.toml")
    )
    assert fleet.inventory == tmp_path / "inv.toml"
    assert [entry.url for entry in fleet.entries] == [f"rfc2217://127.0.0.1:{base + n}" for n in range(3)]
    assert fleet.stop() == 0
    assert fleet.inventory.exists(), "an inventory asked for by name is kept"


def test_a_port_in_use_is_named_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_fleet(tmp_path, "--units", "2", "--tcp", f"127.0.0.1:{port - 1}")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and f"127.0.0.1:{port}" in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--units", "0"], "--units"),
        (["--units", "2", "--speed", "0"], "--speed"),
        (["--units", "2", "--baud", "0"], "--baud"),
        (["--units", "2", "--dial", "busy=1.5"], "busy"),
        (["--units", "2", "--dial", "busy=0.6,silent=0.6"], "more than 1"),
        (["--units", "2", "--dial", "ring=3"], "ring=3"),
        (["--units", "2", "--dial", "delay=soon"], "delay=soon"),
        (["--units", "3", "--tcp", "127.0.0.1:7000-7001"], "holds 2 ports"),
        (["--units", "2", "--tcp", "127.0.0.1:7001-7000"], "port range"),
        (["--units", "2", "--tcp", "127.0.0.1:65535"], "65535"),
        (["--images", "missing-dir"], "no flash images"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(tmp_path: Path, options: list[str], named: str) -> None:
    if "--tcp" not in options:
        options = [*options, "--tcp", "127.0.0.1:0"]
    result = run_fleet(tmp_path, *options)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1 and named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def _call(url: str, seq: int) -> Answer:
    """One call: ANSWERED if IDENTIFY is answered, BUSY if the line is closed on us, SILENT otherwise."""
    with socket.create_connection(address(url), timeout=ANSWER_WITHIN_S) as sock:
        try:
            message = answer(sock, encode_message(Identify(), seq), seq)
        except (ConnectionResetError, BrokenPipeError):
            return Answer.BUSY
        if isinstance(message, IdentifyResponse):
            return Answer.ANSWERED
        sock.settimeout(0)
        try:
            return Answer.BUSY if sock.recv(1) == b"" else Answer.SILENT
        except BlockingIOError:
            return Answer.SILENT
        except ConnectionResetError:
            return Answer.BUSY


def test_busy_calls_fall_where_the_seed_puts_them(serve_fleet: Callable[..., ServedFleet]) -> None:
    spec = "busy=0.5"
    fleet = serve_fleet("--units", "2", "--seed", "5", "--tcp", "127.0.0.1:0", "--no-pace", "--dial", spec)
    busy = 0
    for entry in fleet.entries:
        plan = Exchange(DialFaults.parse(spec), f"5:{entry.serial}")
        expected = [plan.next_call().answer for _ in range(16)]
        assert set(expected) == {Answer.BUSY, Answer.ANSWERED}
        assert [_call(entry.url, n + 1) for n in range(16)] == expected
        busy += expected.count(Answer.BUSY)
    assert fleet.stop() == 0
    assert f"answered {32 - busy}, busy {busy}, silent 0" in fleet.stderr()


def test_a_dropped_call_is_cut_after_the_bytes_its_seed_drew(serve_fleet: Callable[..., ServedFleet]) -> None:
    spec = "drop=1,drop_within=3000"
    fleet = serve_fleet(
        "--units", "1", "--seed", "2", "--history", "2d", "--tcp", "127.0.0.1:0", "--no-pace", "--dial", spec,
    )
    entry = fleet.entries[0]
    plan = Exchange(DialFaults.parse(spec), f"2:{entry.serial}")
    for call in range(3):
        cut_at = plan.next_call().drop_after
        received = 0
        with socket.create_connection(address(entry.url), timeout=ANSWER_WITHIN_S) as sock:
            sock.sendall(encode_message(ReadRange(0, 150), call + 1))  # about 10 kB of records
            while chunk := sock.recv(65536):
                received += len(chunk)
        assert received == cut_at


def test_a_silent_call_is_held_and_never_answered(serve_fleet: Callable[..., ServedFleet]) -> None:
    fleet = serve_fleet("--units", "1", "--tcp", "127.0.0.1:0", "--no-pace", "--dial", "silent=1")
    assert _call(fleet.entries[0].url, 1) is Answer.SILENT


def test_what_the_host_sends_during_the_handshake_is_lost(serve_fleet: Callable[..., ServedFleet]) -> None:
    fleet = serve_fleet("--units", "1", "--tcp", "127.0.0.1:0", "--no-pace", "--dial", "delay=2")
    with socket.create_connection(address(fleet.entries[0].url), timeout=ANSWER_WITHIN_S) as sock:
        assert answer(sock, encode_message(Identify(), 1), 1) is None, "heard during the handshake"
        assert isinstance(answer(sock, encode_message(Identify(), 2), 2), IdentifyResponse)


def test_a_unit_lives_on_while_served(serve_fleet: Callable[..., ServedFleet]) -> None:
    fleet = serve_fleet("--units", "2", "--history", "1d", "--speed", "3600", "--tcp", "127.0.0.1:0")
    url = fleet.entries[1].url
    first = identify(url)
    assert first is not None
    deadline = time.monotonic() + LIVES_ON_WITHIN_S
    latest = first
    while latest.next_seq < first.next_seq + 8 and time.monotonic() < deadline:
        time.sleep(0.2)
        answered = identify(url)
        assert answered is not None
        latest = answered
    assert latest.next_seq >= first.next_seq + 8, "two simulated hours of samples never came"
    assert latest.device_time > first.device_time + 3600


def test_sigterm_saves_every_image_served(serve_fleet: Callable[..., ServedFleet], tmp_path: Path) -> None:
    images = tmp_path / "fleet"
    subprocess.run(
        [*TURBOSIM, "fleet", "--units", "3", "--hours", "30", "--out", str(images), "--workers", "1"],
        check=True, capture_output=True, timeout=120,
    )
    before = {}
    for image in sorted(images.glob("*.img")):
        with NorFlash.open(image) as flash:
            before[image.stem] = LogStore(flash).next_seq
    fleet = serve_fleet("--images", str(images), "--speed", "3600", "--tcp", "127.0.0.1:0", "--no-pace")
    assert sorted(entry.serial or "" for entry in fleet.entries) == sorted(before)
    served = {}
    for entry in fleet.entries:
        response = identify(entry.url)
        assert response is not None and response.serial == entry.serial
        assert response.next_seq > before[response.serial], "the power-up was not logged"
        served[response.serial] = response.next_seq
    assert fleet.stop() == 0
    for serial, next_seq in served.items():
        with NorFlash.open(images / f"{serial}.img") as flash:
            assert LogStore(flash).next_seq > next_seq, "the power-down is not in the image"
        sidecar = json.loads((images / f"{serial}.json").read_text())
        assert sidecar["serial"] == serial and "seed" in sidecar["simulated"]


def test_one_thread_serves_units_whose_sockets_reuse_each_others_numbers() -> None:
    """A client gone from one unit frees a descriptor number the next unit's client takes: both answer."""
    units = [build_unit("C30", f"C30-00000{n}", seed=n, clock=lambda: float(JAN_1_2024)) for n in (1, 2)]
    links = [TcpLink("127.0.0.1:0") for _ in units]
    servers = [
        Server(link, lambda unit=unit: DeviceSession(unit), unit.tick, Pacer(None, now=0.0))
        for link, unit in zip(links, units, strict=True)
    ]
    stop = threading.Event()
    loop = threading.Thread(target=FleetServer(servers).run, args=(stop.is_set,))
    loop.start()
    try:
        for call in range(20):
            for link, unit in zip(links, units, strict=True):
                response = identify(link.url, call + 1)
                assert response is not None, f"{unit.serial} unanswered at call {call + 1}"
                assert response.serial == unit.serial
    finally:
        stop.set()
        loop.join()
        for link, unit in zip(links, units, strict=True):
            link.close()
            unit.close()


def test_frames_from_a_fleet_unit_are_whole_at_its_line_rate(serve_fleet: Callable[..., ServedFleet]) -> None:
    """A paced fleet unit streams a range as whole, verified frames ending in RANGE_END."""
    fleet = serve_fleet("--units", "2", "--history", "6h", "--baud", "115200", "--tcp", "127.0.0.1:0")
    with socket.create_connection(address(fleet.entries[0].url), timeout=ANSWER_WITHIN_S) as sock:
        sock.sendall(encode_message(ReadRange(0, 20), 1))
        decoder, kinds = FrameDecoder(), []
        while "RangeEnd" not in kinds:
            chunk = sock.recv(65536)
            assert chunk, "the unit hung up mid-range"
            kinds += [type(decode_message(item)).__name__ for item in decoder.feed(chunk)
                      if isinstance(item, Frame)]
    assert kinds[0] == "Records" and kinds[-1] == "RangeEnd"
