"""`turbosim serve` as hosts meet it on a socket: every connection answered, whatever came before.

Real ``turbosim serve`` processes (the package's pytest plugin), talked to over raw sockets with the
protocol's own encoders: no host retries hide a lost request.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path

from firmware_sim.flash import NorFlash
from firmware_sim.keystore import KeyStore, key_chip_path
from firmware_sim.pytest_plugin import RunningUnit
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
