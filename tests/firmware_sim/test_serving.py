"""`turbosim serve` as hosts meet it on a socket: every connection answered, whatever came before.

Real ``turbosim serve`` processes (the package's pytest plugin), talked to over raw sockets with the
protocol's own encoders: no host retries hide a lost request.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from firmware_sim.pytest_plugin import RunningUnit
from protocol.framing import Frame, FrameDecoder
from protocol.messages import Identify, IdentifyResponse, decode_message, encode_message

ANSWER_WITHIN_S = 5.0
"""How long one try waits for its answer: generous, so that only a lost request fails."""


def address(url: str) -> tuple[str, int]:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def identify_once(sock: socket.socket, seq: int) -> IdentifyResponse | None:
    """Send one IDENTIFY and wait for its answer (one try, no retry); None if none came."""
    sock.sendall(encode_message(Identify(), seq))
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
        for item in decoder.feed(chunk):
            if isinstance(item, Frame):
                message = decode_message(item)
                if isinstance(message, IdentifyResponse) and message.request_seq == seq:
                    return message
    return None


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
