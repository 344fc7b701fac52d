"""The client side of the protocol: ClientSession (bytes in any chunking) and the Client driver.

Device answers are built with protocol.messages.encode_message, as a device
would send them; the driver runs against a scripted transport whose handler
answers each request (in the style of httpx's MockTransport).
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest
from cobs import cobs

from host.driver import Client
from host.errors import DeviceError, LinkTimeout
from host.session import ClientSession
from protocol.crc import crc32c
from protocol.enums import ErrorCode, MsgType
from protocol.formats import PROTOCOL_VERSION
from protocol.framing import MAX_STUFFED, Frame, FrameDecoder, encode_frame
from protocol.messages import (
    SCHEMA_FINGERPRINT,
    Abort,
    AbortResponse,
    ClockGet,
    ClockResponse,
    ClockSet,
    ErrorResponse,
    Identify,
    IdentifyResponse,
    LogClear,
    LogClearResponse,
    Message,
    RangeEnd,
    ReadRange,
    Records,
    decode_message,
    encode_message,
)
from tests.host.loopback import VirtualClock


def identify_rsp(request_seq: int, **changes: object) -> IdentifyResponse:
    values: dict[str, object] = dict(
        request_seq=request_seq, protocol_version=PROTOCOL_VERSION, schema_fingerprint=SCHEMA_FINGERPRINT,
        model="C65",
        serial="TL-0001", firmware="fw-test", capacity_records=1000, first_seq=0, next_seq=10,
        device_time=1_700_000_000, operating_s=3600, starts=2, trips=0, energy_wh=65000, baud=115200,
        max_window=4096, log_id=b"log-id-1",
    )
    values.update(changes)
    return IdentifyResponse(**values)  # type: ignore[arg-type]


def wire(*messages: Message, seq: int = 0) -> bytes:
    return b"".join(encode_message(message, seq + i) for i, message in enumerate(messages))


# --- ClientSession --------------------------------------------------------------------------------------


def test_send_numbers_requests_and_makes_them_pending() -> None:
    session = ClientSession()
    first, data = session.send(Identify())
    second, _ = session.send(ClockGet())
    assert (first, second) == (0, 1)
    assert session.pending == 2
    (frame,) = FrameDecoder().feed(data)
    assert isinstance(frame, Frame) and frame.msg_type == MsgType.IDENTIFY and frame.seq == 0


def test_frame_seq_wraps_at_65536() -> None:
    session = ClientSession()
    seqs = [session.send(Abort())[0] for _ in range(65538)]
    assert seqs[-3:] == [65535, 0, 1]
    assert session.pending == 65536


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, None])
def test_answers_are_found_in_any_chunking(chunk: int | None) -> None:
    session = ClientSession()
    identify, _ = session.send(Identify())
    clock, _ = session.send(ClockGet())
    data = wire(identify_rsp(identify), ClockResponse(clock, 1_700_000_123))
    step = chunk or len(data)
    events = [event for i in range(0, len(data), step) for event in session.receive_data(data[i : i + step])]
    assert events == [identify_rsp(identify), ClockResponse(clock, 1_700_000_123)]
    assert session.pending == 0
    assert session.frame_errors == 0


def test_garbage_between_frames_is_counted_and_skipped() -> None:
    session = ClientSession()
    seq, _ = session.send(ClockGet())
    noise = bytes(random.Random(1).randrange(1, 256) for _ in range(300))
    events = session.receive_data(b"\x00" + noise + b"\x00" + wire(ClockResponse(seq, 5)) + noise)
    assert events == [ClockResponse(seq, 5)]
    assert session.frame_errors == 1
    assert session.last_error is not None


def test_a_flipped_bit_drops_only_that_frame() -> None:
    session = ClientSession()
    a, _ = session.send(ClockGet())
    b, _ = session.send(ClockGet())
    damaged = bytearray(wire(ClockResponse(a, 1)))
    damaged[3] ^= 0x10
    events = session.receive_data(bytes(damaged) + wire(ClockResponse(b, 2)))
    assert events == [ClockResponse(b, 2)]
    assert session.frame_errors == 1
    assert session.is_pending(a)


def test_only_frames_damaged_after_a_good_one_count_as_the_lines_damage() -> None:
    session = ClientSession()
    a, _ = session.send(ClockGet())
    b, _ = session.send(ClockGet())
    cut_in_half = wire(ClockResponse(a, 1))[5:]  # what was on the line when this side came
    damaged = bytearray(wire(ClockResponse(a, 1)))
    damaged[3] ^= 0x10
    session.receive_data(cut_in_half + wire(ClockResponse(b, 2)) + bytes(damaged))
    assert (session.frame_errors, session.stale_errors, session.damaged_frames) == (2, 1, 1)


def test_unknown_message_types_are_skipped_and_counted() -> None:
    session = ClientSession()
    seq, _ = session.send(ClockGet())
    events = session.receive_data(encode_frame(0x9A, 0, b"\x00\x00newer") + wire(ClockResponse(seq, 7)))
    assert events == [ClockResponse(seq, 7)]
    assert session.unknown_messages == 1


def test_malformed_payload_is_counted_not_raised() -> None:
    session = ClientSession()
    seq, _ = session.send(ReadRange(0, 10))
    events = session.receive_data(encode_frame(MsgType.RANGE_END, 0, seq.to_bytes(2, "little") + b"\x01"))
    assert events == []
    assert session.malformed == 1
    assert session.is_pending(seq)


def test_answers_to_nothing_pending_or_of_the_wrong_type_are_unexpected() -> None:
    session = ClientSession()
    seq, _ = session.send(Identify())
    stale = Records(seq + 40, b"")  # a stream a previous host left running
    wrong = ClockResponse(seq, 1)  # CLOCK_RSP does not answer IDENTIFY
    request = Identify()  # a request type coming from the device
    assert session.receive_data(wire(stale, wrong, request)) == []
    assert session.unexpected == 3
    assert session.is_pending(seq)


def test_records_keep_a_stream_pending_until_range_end() -> None:
    session = ClientSession()
    seq, _ = session.send(ReadRange(0, 3))
    end = RangeEnd(seq, 0, 3, 0, 0)
    assert session.receive_data(wire(Records(seq, b""))) == [Records(seq, b"")]
    assert session.is_pending(seq)
    assert session.receive_data(wire(end)) == [end]
    assert not session.is_pending(seq)
    assert session.receive_data(wire(Records(seq, b""))) == []


def test_error_answers_any_request() -> None:
    session = ClientSession()
    seq, _ = session.send(ReadRange(0, 3))
    error = ErrorResponse(seq, ErrorCode.BUSY, "4 streams already queued")
    assert session.receive_data(wire(error)) == [error]
    assert session.pending == 0


def test_abort_response_ends_every_request_sent_before_it() -> None:
    session = ClientSession()
    streams = [session.send(ReadRange(0, 3))[0] for _ in range(2)]
    abort, _ = session.send(Abort())
    after, _ = session.send(Identify())
    assert session.receive_data(wire(AbortResponse(abort))) == [AbortResponse(abort)]
    assert not any(session.is_pending(seq) for seq in streams)
    assert session.is_pending(after)


def test_forgotten_requests_are_no_longer_answered() -> None:
    session = ClientSession()
    seq, _ = session.send(ClockGet())
    session.forget(seq)
    assert session.receive_data(wire(ClockResponse(seq, 1))) == []


def test_endless_bytes_without_a_delimiter_stay_bounded() -> None:
    session = ClientSession()
    session.send(Identify())
    block = bytes(range(1, 256)) * 40
    for _ in range(400):  # 4 MB
        assert session.receive_data(block) == []
        assert session._decoder.buffered <= MAX_STUFFED
    assert session.frame_errors == 1  # reported once, then discarded until the next delimiter


# --- Client over a scripted transport -------------------------------------------------------------------


Handler = Callable[[Message, int], list[Message]]


class Scripted:
    """A Transport whose device is a function: request -> answers (seq is the request's)."""

    def __init__(self, handler: Handler, clock: VirtualClock, *, baud: int = 115200) -> None:
        self._handler = handler
        self._clock = clock
        self._baud = baud
        self._decoder = FrameDecoder()
        self._out = b""
        self._seq = 0
        self.requests: list[Message] = []

    def write(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            assert isinstance(frame, Frame)
            request = decode_message(frame)
            self.requests.append(request)  # type: ignore[arg-type]
            for answer in self._handler(request, frame.seq):  # type: ignore[arg-type]
                self._out += encode_message(answer, self._seq)
                self._seq += 1

    def read(self, max_bytes: int, timeout: float) -> bytes:
        data, self._out = self._out[:max_bytes], self._out[max_bytes:]
        self._clock.advance(len(data) * 10 / self._baud if data else timeout)
        return data

    def close(self) -> None:
        pass


def well_behaved(request: Message, seq: int) -> list[Message]:
    if isinstance(request, Abort):
        return [AbortResponse(seq)]
    if isinstance(request, Identify):
        return [identify_rsp(seq)]
    if isinstance(request, ClockGet):
        return [ClockResponse(seq, 1_700_000_000)]
    if isinstance(request, ClockSet):
        return [ClockResponse(seq, request.new_time)]
    if isinstance(request, LogClear):
        return [LogClearResponse(seq, 10)]
    return [ErrorResponse(seq, ErrorCode.UNKNOWN_MESSAGE)]


def client_for(handler: Handler) -> tuple[Client, Scripted, VirtualClock]:
    clock = VirtualClock()
    transport = Scripted(handler, clock)
    return Client(transport, timeout=1.0, tries=3, clock=clock), transport, clock


def test_client_exchanges() -> None:
    client, transport, _ = client_for(well_behaved)
    client.abort()
    assert client.identify() == identify_rsp(1)
    assert client.clock_get() == 1_700_000_000
    assert client.clock_set(1_800_000_000) == 1_800_000_000
    assert client.log_clear() == 10
    assert [type(r).__name__ for r in transport.requests] == [
        "Abort", "Identify", "ClockGet", "ClockSet", "LogClear",
    ]
    assert client.session.pending == 0


def test_abort_discards_everything_until_its_answer() -> None:
    def leftover_stream(request: Message, seq: int) -> list[Message]:
        if isinstance(request, Abort):
            return [Records(77, b"\x01" * 40), RangeEnd(77, 0, 9, 9, 1234), AbortResponse(seq)]
        return well_behaved(request, seq)

    client, _, _ = client_for(leftover_stream)
    client.abort()
    assert client.session.unexpected == 2
    assert client.identify().serial == "TL-0001"


def test_a_lost_answer_is_asked_again() -> None:
    calls = []

    def deaf_once(request: Message, seq: int) -> list[Message]:
        calls.append(seq)
        return [] if len(calls) == 1 else well_behaved(request, seq)

    client, _, clock = client_for(deaf_once)
    assert client.clock_get() == 1_700_000_000
    assert calls == [0, 1]
    assert 1.0 <= clock() < 1.1


class Damaging(Scripted):
    """Scripted, but the answers to the first *count* requests come with one byte flipped."""

    def __init__(self, handler: Handler, clock: VirtualClock, count: int) -> None:
        super().__init__(handler, clock)
        self._left = count

    def write(self, data: bytes) -> None:
        before = len(self._out)
        super().write(data)
        if self._left > 0 and len(self._out) > before:
            self._left -= 1
            out = bytearray(self._out)
            out[before + 4] ^= 0x01
            self._out = bytes(out)


def test_an_answer_that_came_damaged_is_asked_again_at_once() -> None:
    clock = VirtualClock()
    transport = Damaging(well_behaved, clock, count=1)
    client = Client(transport, timeout=1.0, tries=3, clock=clock)
    assert client.clock_get() == 1_700_000_000
    assert len(transport.requests) == 2
    assert clock() < 0.5  # not a whole timeout: the line went quiet after the damaged frame


def test_damaged_answers_get_noisy_tries_only_after_a_good_frame() -> None:
    clock = VirtualClock()
    transport = Damaging(well_behaved, clock, count=1000)
    client = Client(transport, timeout=1.0, tries=3, noisy_tries=40, clock=clock)
    with pytest.raises(DeviceError, match="not one valid turbolog frame in 3 s"):
        client.clock_get()  # never one good frame: not known to be a turbolog device at all
    assert clock() == pytest.approx(3.0, abs=0.2)

    clock = VirtualClock()
    transport = Damaging(well_behaved, clock, count=0)
    client = Client(transport, timeout=1.0, tries=3, noisy_tries=40, clock=clock)
    client.abort()  # a good frame, then damaged ones: the line is alive, only noisy
    transport._left = 1000
    with pytest.raises(LinkTimeout, match=r"CLOCK_GET in 40 s \(\d+ tries, \d+ answers damaged\)"):
        client.clock_get()
    assert clock() == pytest.approx(40.0, abs=0.2)


def test_session_start_sends_abort_and_identify_together() -> None:
    client, transport, _ = client_for(well_behaved)
    assert client.start() == identify_rsp(1)
    assert [type(r).__name__ for r in transport.requests] == ["Abort", "Identify"]


def test_session_start_asks_abort_again_when_its_answer_was_lost() -> None:
    answered: list[int] = []

    def loses_the_first_abort_rsp(request: Message, seq: int) -> list[Message]:
        if isinstance(request, Abort) and not answered:
            answered.append(seq)
            return []
        return well_behaved(request, seq)

    client, transport, _ = client_for(loses_the_first_abort_rsp)
    assert client.start().serial == "TL-0001"
    assert [type(r).__name__ for r in transport.requests] == ["Abort", "Identify", "Abort"]


def test_device_error_names_the_code() -> None:
    def refuses(request: Message, seq: int) -> list[Message]:
        return [ErrorResponse(seq, ErrorCode.UNAUTHORIZED, "level 1 needed")]

    client, _, _ = client_for(refuses)
    with pytest.raises(DeviceError, match="CLOCK_SET with UNAUTHORIZED: level 1 needed"):
        client.clock_set(5)


def test_schema_fingerprint_mismatch_says_what_differs() -> None:
    client, _, _ = client_for(lambda r, s: [identify_rsp(s, schema_fingerprint=SCHEMA_FINGERPRINT ^ 1)])
    with pytest.raises(DeviceError, match=f"fingerprint 0x{SCHEMA_FINGERPRINT ^ 1:08X}.*formats differ"):
        client.identify()


def test_protocol_version_mismatch_says_what_differs() -> None:
    client, _, _ = client_for(lambda r, s: [identify_rsp(s, protocol_version=3)])
    with pytest.raises(DeviceError, match="protocol version 3; this reader speaks version 2"):
        client.identify()


def version3_frame(msg_type: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack("<BBHH", 3, msg_type, seq, len(payload)) + payload
    return cobs.encode(body + crc32c(body).to_bytes(4, "little")) + b"\x00"


def test_frames_of_another_protocol_version_are_named() -> None:
    def speaks_v3(request: Message, seq: int) -> list[Message]:
        return []

    clock = VirtualClock()
    transport = Scripted(speaks_v3, clock)
    client = Client(transport, timeout=1.0, clock=clock)
    transport._out = version3_frame(MsgType.ABORT_RSP, 0, b"\x00\x00") * 3
    with pytest.raises(DeviceError, match="another protocol version .*version 3"):
        client.abort()


def test_a_device_sending_only_garbage_fails_within_its_deadline() -> None:
    rng = random.Random(7)

    class Garbage(Scripted):
        def read(self, max_bytes: int, timeout: float) -> bytes:
            data = rng.randbytes(min(max_bytes, 200))
            self._clock.advance(len(data) * 10 / self._baud)
            return data

    clock = VirtualClock()
    client = Client(Garbage(well_behaved, clock), timeout=1.0, tries=3, clock=clock)
    with pytest.raises(DeviceError, match="not one valid turbolog frame"):
        client.abort()
    assert clock() <= 3 * 1.0 + 0.05


def test_a_silent_device_is_a_link_timeout() -> None:
    client, _, clock = client_for(lambda r, s: [])
    with pytest.raises(LinkTimeout, match="no answer to IDENTIFY in 3 x 1 s"):
        client.identify()
    assert clock() == pytest.approx(3.0)
