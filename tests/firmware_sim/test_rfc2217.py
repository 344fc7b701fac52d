"""The RFC 2217 front end (firmware_sim.rfc2217) under hostile input: dropped and counted, never fatal.

Fuzzed as the frame decoder is (tests/protocol/test_fuzz.py): whatever a client sends, in whatever
chunks, ``receive`` returns, nothing it keeps grows past its bounds, and serial data sent escaped
comes through unchanged between the Telnet commands.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_sim.rfc2217 import (
    COM_PORT_OPTION,
    DO,
    IAC,
    MAX_BAUD,
    MAX_REPLIES,
    MAX_SUBNEGOTIATION,
    MIN_BAUD,
    SB,
    SE,
    SET_BAUDRATE,
    WILL,
    ComPortServer,
)

CONFIGURED = 115_200


def sub(*body: int | bytes) -> bytes:
    """IAC SB <body> IAC SE, ints as single bytes, IAC in the body doubled."""
    parts = b"".join(bytes((part,)) if isinstance(part, int) else part for part in body)
    return bytes((IAC, SB)) + ComPortServer.escape(parts) + bytes((IAC, SE))


def baud_request(baud: int) -> bytes:
    return sub(COM_PORT_OPTION, SET_BAUDRATE, struct.pack("!I", baud))


def answered_baud(replies: bytes) -> int:
    marker = bytes((IAC, SB, COM_PORT_OPTION, SET_BAUDRATE + 100))
    start = replies.rindex(marker) + len(marker)
    value: int = struct.unpack("!I", replies[start:start + 4])[0]
    return value


HOSTILE = [
    b"\xff\xf0",  # IAC SE with no subnegotiation open
    sub(),  # an empty subnegotiation
    sub(COM_PORT_OPTION),  # no command
    sub(COM_PORT_OPTION, SET_BAUDRATE),  # a baud rate without its 4 bytes
    sub(COM_PORT_OPTION, SET_BAUDRATE, b"\x00\x01"),  # a short baud rate
    sub(COM_PORT_OPTION, 2),  # SET_DATASIZE without a value
    sub(COM_PORT_OPTION, 3, 200),  # SET_PARITY out of range
    sub(COM_PORT_OPTION, 4, 99),  # SET_STOPSIZE out of range
    sub(COM_PORT_OPTION, 10),  # SET_LINESTATE_MASK without a value
    sub(COM_PORT_OPTION, 11),  # SET_MODEMSTATE_MASK without a value
    sub(COM_PORT_OPTION, 12, 7),  # PURGE_DATA out of range
    sub(COM_PORT_OPTION, 5, 250),  # SET_CONTROL out of range
    sub(COM_PORT_OPTION, 99, 1),  # an undefined COM-PORT-OPTION command
    bytes((IAC, SB, COM_PORT_OPTION, IAC, WILL, 1)),  # a subnegotiation cut by a command
    bytes((IAC, 0x41)),  # an undefined Telnet command
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=lambda data: data.hex())
def test_malformed_input_is_dropped_counted_and_the_data_after_it_passes(hostile: bytes) -> None:
    server = ComPortServer(CONFIGURED)
    assert server.receive(b"before" + hostile + b"after") in (b"beforeafter",)
    assert server.malformed >= 1 and not server.overflowed
    assert server.baud == CONFIGURED


@pytest.mark.parametrize(
    ("asked", "kept"),
    [(300, 300), (MIN_BAUD, MIN_BAUD), (MAX_BAUD, MAX_BAUD), (1, CONFIGURED), (49, CONFIGURED),
     (MAX_BAUD + 1, CONFIGURED), (0xFFFFFFFF, CONFIGURED), (0, CONFIGURED)],
)
def test_a_baud_rate_a_uart_cannot_do_is_refused_with_the_current_rate(asked: int, kept: int) -> None:
    server = ComPortServer(CONFIGURED)
    server.take_replies()
    server.receive(baud_request(asked))
    assert server.baud == kept
    assert answered_baud(server.take_replies()) == kept


def test_an_unterminated_subnegotiation_overflows_at_the_cap_and_holds_no_more() -> None:
    server = ComPortServer(CONFIGURED)
    server.receive(bytes((IAC, SB, COM_PORT_OPTION)) + b"\x01" * (MAX_SUBNEGOTIATION - 1))
    assert not server.overflowed
    server.receive(b"\x01" * 65536)
    assert server.overflowed
    assert len(server._sub) <= MAX_SUBNEGOTIATION


def test_a_client_that_never_reads_its_replies_overflows() -> None:
    server = ComPortServer(CONFIGURED)
    for _ in range(MAX_REPLIES // 3 // 1000 + 2):
        server.receive(bytes((IAC, DO, 99)) * 1000)  # each refused with 3 bytes
    assert server.overflowed


def test_escaped_data_comes_back_unchanged() -> None:
    server = ComPortServer(CONFIGURED)
    data = bytes(range(256)) * 4
    assert server.receive(server.escape(data)) == data


# --- fuzz -------------------------------------------------------------------------------------------

TELNET_PIECES = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(HOSTILE),
    st.builds(lambda verb, option: bytes((IAC, verb, option)), st.integers(240, 255), st.integers(0, 255)),
    st.builds(lambda body: bytes((IAC, SB)) + body + bytes((IAC, SE)), st.binary(max_size=12)),
    st.builds(
        lambda command, value: sub(COM_PORT_OPTION, command, value),
        st.integers(0, 255), st.binary(max_size=6),
    ),
    st.builds(baud_request, st.integers(0, 0xFFFFFFFF)),
)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(TELNET_PIECES, max_size=30), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_fuzz_nothing_a_client_sends_is_fatal_or_grows_without_bound(
    pieces: list[bytes], cuts: list[int]
) -> None:
    server = ComPortServer(CONFIGURED)
    stream = b"".join(pieces)
    bounds = sorted({0, len(stream), *(min(cut, len(stream)) for cut in cuts)})
    for start, stop in zip(bounds, bounds[1:], strict=False):
        server.receive(stream[start:stop])
        assert len(server._sub) <= MAX_SUBNEGOTIATION
        if server.overflowed:
            break
        server.take_replies()
    assert server.baud == CONFIGURED or MIN_BAUD <= server.baud <= MAX_BAUD


@settings(max_examples=500, deadline=None)
@given(
    data=st.lists(st.binary(max_size=60), min_size=1, max_size=6),
    commands=st.lists(st.sampled_from(HOSTILE + [baud_request(9600), bytes((IAC, DO, 1))]), max_size=6),
)
def test_fuzz_serial_data_between_any_commands_arrives_unchanged(
    data: list[bytes], commands: list[bytes]
) -> None:
    server = ComPortServer(CONFIGURED)
    commands += [b""] * len(data)
    pairs = zip(data, commands, strict=False)
    stream = b"".join(ComPortServer.escape(chunk) + command for chunk, command in pairs)
    received = b"".join(server.receive(stream[i:i + 7]) for i in range(0, len(stream), 7))
    assert received == b"".join(data)
