"""`turbosim serve` as hosts meet it on a socket: every connection answered, whatever came before.

Real ``turbosim serve`` processes (the package's pytest plugin), talked to over raw sockets with the
protocol's own encoders: no host retries hide a lost request.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serial

from firmware_sim.clock import SimClock
from firmware_sim.flash import NorFlash
from firmware_sim.keystore import KeyStore, key_chip_path
from firmware_sim.links import BaudChanged, Link
from firmware_sim.pacing import Pacer
from firmware_sim.pytest_plugin import TURBOSIM, RunningUnit
from firmware_sim.serve import Server
from firmware_sim.unit import build_unit
from protocol.auth import sign
from protocol.enums import AccessLevel, ErrorCode
from protocol.framing import Frame, FrameDecoder
from protocol.messages import (
    AuthChallenge,
    AuthChallengeResponse,
    ErrorResponse,
    Identify,
    IdentifyResponse,
    LogClear,
    LogClearResponse,
    Message,
    decode_message,
    encode_message,
)

ANSWER_WITHIN_S = 5.0
"""How long one try waits for its answer: generous, so that only a lost request fails."""


def address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def answer(
    sock: socket.socket, wire: bytes, seq: int, strip: Callable[[bytes], bytes] = bytes
) -> Message | None:
    """Send one request's bytes and wait for the answer to *seq* (one try, no retry); None if none came.

    *strip* takes what the line adds to the device's bytes (RFC 2217's Telnet commands) off each chunk.
    """
    sock.sendall(wire)
    decoder = FrameDecoder()
    deadline = time.monotonic() + ANSWER_WITHIN_S
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        if not chunk:
            return None
        for item in decoder.feed(strip(chunk)):
            if isinstance(item, Frame):
                message = decode_message(item)
                if getattr(message, "request_seq", None) == seq:
                    return message
    return None


def identify_once(sock: socket.socket, seq: int) -> IdentifyResponse | None:
    message = answer(sock, encode_message(Identify(), seq), seq)
    return message if isinstance(message, IdentifyResponse) else None


def test_the_first_request_on_each_new_connection_is_answered(
    turbosim_unit: Callable[..., RunningUnit],
) -> None:
    """30 connect-send-close cycles in a row: each first request answered at the first try."""
    unit = turbosim_unit(link="tcp", no_pace=True)
    answered = 0
    for cycle in range(30):
        with socket.create_connection(address(unit.url), timeout=ANSWER_WITHIN_S) as sock:
            if identify_once(sock, cycle + 1) is not None:
                answered += 1
    assert answered == 30, f"{answered} of 30 first requests answered"


def test_a_recorded_log_clear_replayed_after_restoring_an_old_image_is_refused(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path
) -> None:
    """Nonces come from the OS, not from --seed: the same image and seed do not give the same nonce."""
    image, backup = tmp_path / "unit.img", tmp_path / "backup.img"
    turbosim_unit(link="tcp", flash=image, history="10h", no_pace=True).stop()
    shutil.copyfile(image, backup)
    with NorFlash.open(key_chip_path(image)) as chip:
        keys = KeyStore(chip).keys
    assert keys is not None

    first = turbosim_unit(link="tcp", flash=image, no_pace=True)
    with socket.create_connection(address(first.url), timeout=ANSWER_WITHIN_S) as sock:
        challenge = answer(sock, encode_message(AuthChallenge(AccessLevel.MAINTENANCE), 1), 1)
        assert isinstance(challenge, AuthChallengeResponse)
        clear = sign(LogClear(AccessLevel.MAINTENANCE), keys.maintenance, challenge.nonce)
        recorded = encode_message(clear, 2)
        assert isinstance(answer(sock, recorded, 2), LogClearResponse)
    assert first.stop() == 0

    shutil.copyfile(backup, image)  # the old image restored, seed and settings unchanged
    second = turbosim_unit(link="tcp", flash=image, no_pace=True)
    with socket.create_connection(address(second.url), timeout=ANSWER_WITHIN_S) as sock:
        again = answer(sock, encode_message(AuthChallenge(AccessLevel.MAINTENANCE), 1), 1)
        assert isinstance(again, AuthChallengeResponse)
        assert again.nonce != challenge.nonce
        replayed = answer(sock, recorded, 2)
        assert isinstance(replayed, ErrorResponse) and replayed.code == ErrorCode.UNAUTHORIZED, replayed
        identified = identify_once(sock, 3)
    assert identified is not None and identified.first_seq == 0, "the log was not cleared"


# --- a pty path another unit serves --------------------------------------------------------------


def serve_at(path: Path) -> subprocess.CompletedProcess[str]:
    """``turbosim serve --pty PATH``, expected to refuse at once (killed after 60 s if it serves)."""
    argv = [*TURBOSIM, "serve", "--pty", str(path), "--no-pace"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def pty_identify(path: str) -> IdentifyResponse | None:
    with serial.Serial(path, 115_200, timeout=0.1) as port:
        port.write(encode_message(Identify(), 7))
        decoder = FrameDecoder()
        deadline = time.monotonic() + ANSWER_WITHIN_S
        while time.monotonic() < deadline:
            for item in decoder.feed(port.read(4096)):
                if isinstance(item, Frame) and isinstance(message := decode_message(item), IdentifyResponse):
                    return message
    return None


def test_a_pty_path_another_running_unit_serves_is_refused(
    turbosim_unit: Callable[..., RunningUnit],
) -> None:
    """A second unit at the first one's path exits 2, naming the first's pid; the first keeps its path."""
    first = turbosim_unit(link="pty", serial="C60-FIRST")
    target = os.readlink(first.url)
    second = serve_at(Path(first.url))
    assert second.returncode == 2, second
    assert str(first.pid) in second.stderr and "Traceback" not in second.stderr
    assert second.stderr.count("\n") == 1 and second.stdout == ""
    assert os.readlink(first.url) == target
    answer_ = pty_identify(first.url)
    assert answer_ is not None and answer_.serial == "C60-FIRST"
    assert first.process.poll() is None


def test_a_dead_units_pty_link_is_taken_over(turbosim_unit: Callable[..., RunningUnit]) -> None:
    """The link a killed unit left behind (its pty gone with it) is replaced by the next unit."""
    dead = turbosim_unit(link="pty")
    path = Path(dead.url)
    os.killpg(dead.pid, signal.SIGKILL)
    dead.process.wait()
    dead.stopped = True  # killed on purpose: not a crash
    assert path.is_symlink()
    process = subprocess.Popen(
        [*TURBOSIM, "serve", "--pty", str(path), "--no-pace", "--serial", "C60-NEXT"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == f"ready {path}\n"
        answer_ = pty_identify(str(path))
        assert answer_ is not None and answer_.serial == "C60-NEXT"
    finally:
        process.terminate()
        process.wait(10)
    assert not path.is_symlink(), "the new unit removed its link on SIGTERM"


# --- serving keeps priority over simulated time --------------------------------------------------


def test_a_unit_at_a_very_high_speed_keeps_answering(turbosim_unit: Callable[..., RunningUnit]) -> None:
    """--speed 1e9 (far beyond what the simulator can live): 5 IDENTIFYs, each answered within 3 tries."""
    unit = turbosim_unit(link="tcp", no_pace=True, extra_args=["--speed", "1e9"])
    answered, seq = 0, 0
    with socket.create_connection(address(unit.url), timeout=ANSWER_WITHIN_S) as sock:
        for _ in range(5):
            for _try in range(3):
                seq += 1
                if identify_once(sock, seq) is not None:
                    answered += 1
                    break
    assert answered == 5, f"{answered} of 5 requests answered within 3 tries each"


def test_the_first_request_after_ready_is_answered_after_a_long_history(
    turbosim_unit: Callable[..., RunningUnit],
) -> None:
    """ready means answering: after 4000 h of history at --speed 1e8 (years of simulated time to
    catch up with the seconds the history took), the first request right after ready is answered."""
    unit = turbosim_unit(link="tcp", no_pace=True, history="4000h", extra_args=["--speed", "1e8"])
    with socket.create_connection(address(unit.url), timeout=ANSWER_WITHIN_S) as sock:
        first = identify_once(sock, 1)
    assert first is not None and first.serial == unit.serial


def test_a_bounded_tick_lives_one_step_and_the_clock_loses_the_rest() -> None:
    wall = [0.0]
    clock = SimClock(1_700_000_100, wall=lambda: wall[0])
    unit = build_unit("C30", "SN-1", seed=1, clock=clock)
    unit.max_tick_s = 3600
    start = clock.now()
    wall[0] += 10 * 3600
    assert unit.tick() is False
    assert clock.now() == start + 3600, "the nine hours not lived are lost, not owed"
    wall[0] += 600
    assert unit.tick() is True
    assert clock.now() == start + 3600 + 600
    unit.max_tick_s = None
    wall[0] += 10 * 3600
    assert unit.tick() is True and clock.now() == start + 11 * 3600 + 600


class QuietSession:
    has_output = False

    def receive_data(self, data: bytes) -> None:
        """Nothing arrives in these tests."""

    def data_to_send(self, max_bytes: int) -> bytes:
        return b""


class BaudAskingLink(Link):
    """A link whose client asks for *baud* (as an RFC 2217 client does)."""

    def __init__(self, baud: int) -> None:
        super().__init__()
        self._events.append(BaudChanged(baud))


@pytest.mark.parametrize(("line_baud", "paced_at"), [(None, None), (115_200, 300)])
def test_a_client_baud_paces_only_a_paced_unit(line_baud: int | None, paced_at: int | None) -> None:
    """A --no-pace unit stays unpaced at whatever baud a client asks; IDENTIFY still reports it."""
    reported: list[int] = []
    server = Server(
        BaudAskingLink(300), QuietSession, lambda: True, Pacer(line_baud, now=0.0), clock=lambda: 0.0,
        tick_interval=0.0, baud_changed=reported.append,
    )
    server.turn()
    assert server.pacer.baud == paced_at
    assert reported == [300]
