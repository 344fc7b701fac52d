"""turbosim's own RFC 2217 server: a client's baud change reaches the emulator's pacing, and
nothing a client sends (or leaves behind) harms the unit or the next client.

``turbosim serve --rfc2217 127.0.0.1:0`` binds an ephemeral port and names it in its ready line.  A
real UART sends ``baud / 10`` bytes per second (8N1), so a client that asks for another baud over
RFC 2217 must see the device's throughput change by the same ratio.  Malformed Telnet input is
dropped, a client that floods a subnegotiation is dropped, and each connection starts at the unit's
configured rate.
"""

from __future__ import annotations

import contextlib
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serial

from firmware_sim.pytest_plugin import RunningUnit
from firmware_sim.rfc2217 import COM_PORT_OPTION, IAC, SB, ComPortServer
from host.archive import Archive
from host.pull import pull
from host.session import Request
from host.transport import open_port
from protocol.framing import Frame, FrameDecoder
from protocol.messages import (
    Abort,
    AbortResponse,
    Identify,
    IdentifyResponse,
    RangeEnd,
    ReadRange,
    decode_message,
    encode_message,
)
from tests.e2e.chain import flash_log, pulled_equals_device
from tests.firmware_sim.test_rfc2217 import HOSTILE, baud_request
from tests.firmware_sim.test_serving import ANSWER_WITHIN_S, address, answer

pytestmark = pytest.mark.e2e

MEASURE_S = 1.2
"""Line time of each throughput measurement."""
RECORD_ON_WIRE = 74
"""A sample record (70 bytes) plus its share of frame overhead, for sizing a measurement."""


def exchange(port: serial.Serial, request: Request, seq: int, until: type) -> tuple[int, float]:
    """Send *request*, read until an *until* answers it: (bytes received after the first read that
    brought any, seconds from that read to the last)."""
    port.write(encode_message(request, seq))
    decoder = FrameDecoder()
    received, first = 0, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        chunk = port.read(max(1, port.in_waiting))
        if not chunk:
            continue
        now = time.monotonic()
        if first is None:
            first = now
        else:
            received += len(chunk)
        for frame in decoder.feed(chunk):
            if isinstance(frame, Frame):
                answer = decode_message(frame)
                if isinstance(answer, until) and getattr(answer, "request_seq", None) == seq:
                    return received, now - first
    raise AssertionError(f"no {until.__name__} for request {seq} within 30 s")


def read_until(port: serial.Serial, answer: type[IdentifyResponse]) -> IdentifyResponse:
    decoder = FrameDecoder()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for frame in decoder.feed(port.read(max(1, port.in_waiting))):
            if isinstance(frame, Frame) and isinstance(message := decode_message(frame), answer):
                return message
    raise AssertionError(f"no {answer.__name__} within 10 s")


def throughput(port: serial.Serial, seq: int, baud: int) -> float:
    """Bytes per second of a stream sized to take MEASURE_S at *baud*."""
    count = int(MEASURE_S * baud / 10 / RECORD_ON_WIRE)
    received, seconds = exchange(port, ReadRange(0, count), seq, RangeEnd)
    return received / seconds


def test_a_baud_change_asked_over_rfc2217_changes_the_emulators_pacing(
    turbosim_unit: Callable[..., RunningUnit],
) -> None:
    """Figure held: 115,200 then 19,200 baud asked by the client: throughput within 10 % of baud / 10
    each, ratio 6.0 within 10 %."""
    unit = turbosim_unit(link="rfc2217", history="200h")
    assert unit.url.startswith("rfc2217://127.0.0.1:") and not unit.url.endswith(":0")
    with serial.serial_for_url(unit.url, baudrate=115_200, timeout=0.05) as port:
        exchange(port, Abort(), 1, AbortResponse)
        fast = throughput(port, 2, 115_200)
        port.baudrate = 19_200  # RFC 2217 SET-BAUDRATE, acknowledged before this returns
        slow = throughput(port, 3, 19_200)
        port.write(encode_message(Identify(), 4))
        identified = read_until(port, IdentifyResponse)
    assert identified.baud == 19_200, "IDENTIFY reports the baud the client set"
    print(f"\nrfc2217 pacing: {fast:,.0f} B/s at 115200, {slow:,.0f} B/s at 19200, ratio {fast / slow:.2f}")
    assert fast == pytest.approx(11_520, rel=0.10), (fast, slow)
    assert slow == pytest.approx(1_920, rel=0.10), (fast, slow)
    assert fast / slow == pytest.approx(6.0, rel=0.10), (fast, slow)


def test_a_host_pull_at_the_baud_it_asks_for_over_turbosims_rfc2217(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path
) -> None:
    """Figure held: host.pull opening at 921,600 baud gets archive == flash log at more than twice the
    115,200-baud line rate (the device paces at what the client asked)."""
    image, db = tmp_path / "unit.img", tmp_path / "archive.sqlite"
    unit = turbosim_unit(link="rfc2217", flash=image, history="200h")

    with Archive.open(db) as archive:
        result = pull(lambda: open_port(unit.url, 921_600), archive)
    rate = result.bytes / result.elapsed_s
    print(f"\nhost pull over turbosim rfc2217 at 921600: {result.added} records, {rate:,.0f} B/s")
    assert result.added > 700
    assert rate > 2 * 11_520, rate
    assert unit.stop() == 0
    pulled_equals_device(db, result.to_json(), flash_log(image))


def identify_raw(url: str, seq: int = 1, before: bytes = b"") -> IdentifyResponse | None:
    """IDENTIFY over a plain socket to an RFC 2217 port (after *before*), Telnet stripped; one try."""
    telnet = ComPortServer(0)  # parses the server's Telnet commands off the data; its replies are unused
    with socket.create_connection(address(url), timeout=ANSWER_WITHIN_S) as sock:
        sock.sendall(before)
        message = answer(sock, ComPortServer.escape(encode_message(Identify(), seq)), seq, telnet.receive)
    return message if isinstance(message, IdentifyResponse) else None


def random_telnet(rng: random.Random) -> bytes:
    """A few random Telnet commands and subnegotiations, as the adversarial run sent them."""
    pieces = []
    for _ in range(rng.randrange(1, 6)):
        kind = rng.randrange(3)
        if kind == 0:
            pieces.append(bytes((IAC, rng.randrange(240, 256), rng.randrange(256))))
        elif kind == 1:
            body = bytes((COM_PORT_OPTION, rng.randrange(14))) + rng.randbytes(rng.randrange(6))
            pieces.append(bytes((IAC, SB)) + body + bytes((IAC, rng.choice((0xF0, 0xFA, 0xFF)))))
        else:
            pieces.append(rng.randbytes(rng.randrange(1, 12)))
    return b"".join(pieces)


def test_malformed_telnet_never_ends_the_unit_and_the_next_client_is_answered(
    turbosim_unit: Callable[..., RunningUnit],
) -> None:
    """Every hostile input of the adversarial run, then 200 connections of random Telnet commands:
    the unit still runs and answers a pyserial rfc2217:// client."""
    unit = turbosim_unit(link="rfc2217", no_pace=True)
    rng = random.Random(2217)
    inputs = HOSTILE + [random_telnet(rng) for _ in range(200)]
    for data in inputs:
        with socket.create_connection(address(unit.url), timeout=ANSWER_WITHIN_S) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # as socat -t1 does: send, then wait for the unit to close
            with contextlib.suppress(ConnectionResetError):
                while sock.recv(65536):
                    pass
        assert unit.process.poll() is None, f"turbosim ended after {data.hex()}:\n{unit.stderr()}"
    assert identify_raw(unit.url) is not None
    with serial.serial_for_url(unit.url, baudrate=115_200, timeout=0.05) as port:
        port.write(encode_message(Identify(), 1))
        assert read_until(port, IdentifyResponse).serial == unit.serial
    assert unit.stop() == 0
    assert "Traceback" not in unit.stderr()
    assert "rfc2217: dropped " in unit.stderr(), "the dropped inputs are counted"


def test_a_client_flooding_an_unterminated_subnegotiation_is_dropped(
    turbosim_unit: Callable[..., RunningUnit],
) -> None:
    """IAC SB and then 8 MiB: the unit closes that connection instead of buffering, and answers the next."""
    unit = turbosim_unit(link="rfc2217", no_pace=True)
    dropped = False
    with socket.create_connection(address(unit.url), timeout=ANSWER_WITHIN_S) as sock:
        try:
            sock.sendall(bytes((IAC, SB, COM_PORT_OPTION)))
            for _ in range(128):
                sock.sendall(b"\x01" * 65536)
            while sock.recv(65536):  # the Telnet negotiation, then the unit's close
                pass
            dropped = True
        except (ConnectionResetError, BrokenPipeError):
            dropped = True
        except TimeoutError:
            dropped = False
    assert dropped, "the unit kept a client whose subnegotiation never ended"
    assert identify_raw(unit.url) is not None
    assert unit.stop() == 0


def test_one_clients_baud_does_not_outlive_it(turbosim_unit: Callable[..., RunningUnit]) -> None:
    """A client sets 300 baud and leaves: the next connection is at the unit's 115,200; 1 baud and
    5 Mbaud are refused (the server answers its current rate; pyserial raises) and the unit keeps
    answering."""
    unit = turbosim_unit(link="rfc2217", no_pace=True)
    with serial.serial_for_url(unit.url, baudrate=300, timeout=0.05) as port:
        port.write(encode_message(Identify(), 1))
        assert read_until(port, IdentifyResponse).baud == 300
    after = identify_raw(unit.url)
    assert after is not None and after.baud == 115_200, after
    with serial.serial_for_url(unit.url, baudrate=115_200, timeout=0.05) as port:
        for refused in (1, 5_000_000):
            with pytest.raises(ValueError, match="rejected"):
                port.baudrate = refused
        port.write(encode_message(Identify(), 2))
        assert read_until(port, IdentifyResponse).baud == 115_200
    asked_for_one = identify_raw(unit.url, before=baud_request(1))
    assert asked_for_one is not None and asked_for_one.baud == 115_200
    assert unit.stop() == 0
