"""The in-process line as pyserial opens it (``turbosim://NAME``): timeouts on the line's clock,
pacing, and the OS errors of a cut or closed line; the host is not involved."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import serial

from firmware_sim import inproc
from firmware_sim.errors import ConfigError
from protocol.framing import Frame, FrameDecoder
from protocol.messages import Identify, IdentifyResponse, decode_message, encode_message
from tests.host.loopback import ListUnit, make_records


@pytest.fixture
def published() -> Iterator[inproc.Line]:
    line = inproc.Line(ListUnit(make_records(50)), baud=115_200)
    inproc.publish(line, "test-inproc")
    yield line
    inproc.withdraw("test-inproc")


def test_a_read_waits_its_timeout_on_the_lines_clock_and_a_paced_answer_costs_its_line_time(
    published: inproc.Line,
) -> None:
    """Figure held: nothing to read costs exactly the 0.5 s timeout of virtual time; an IDENTIFY
    answer of N bytes read at 115,200 baud costs N x 10 / 115,200 s."""
    clock = published.clock
    with serial.serial_for_url("turbosim://test-inproc", timeout=0.5) as port:
        assert port.read(10) == b"" and clock.now == pytest.approx(0.5)
        port.write(encode_message(Identify(), 7))
        before = clock.now
        port.timeout = 0
        data = port.read(4096)
        assert clock.now - before == pytest.approx(len(data) * 10 / 115_200)
    (frame,) = FrameDecoder().feed(data)
    assert isinstance(frame, Frame)
    answer = decode_message(frame)
    assert isinstance(answer, IdentifyResponse) and answer.serial == "TL-0001"


def test_a_closed_or_cut_line_raises_what_an_os_would() -> None:
    line = inproc.Line(ListUnit(make_records(50)), cuts=[10])
    port = line.connect()
    port.write(encode_message(Identify(), 1))
    assert len(port.read(4096, 1.0)) == 10
    with pytest.raises(ConnectionResetError, match="in-process line cut"):
        port.read(4096, 1.0)
    port.close()
    with pytest.raises(BrokenPipeError, match="in-process line closed"):
        port.write(b"\0")


def test_names_are_unique_and_an_unpublished_one_does_not_exist(published: inproc.Line) -> None:
    with pytest.raises(ConfigError, match="is taken"):
        inproc.publish(published, "test-inproc")
    with pytest.raises(FileNotFoundError, match="no in-process unit published as turbosim://nobody"):
        serial.serial_for_url("turbosim://nobody")
