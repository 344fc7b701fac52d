"""DeviceSession against a small fake unit, through bytes only.

Requests are built with protocol.messages.encode_message; everything the
session sends is decoded with protocol.framing.FrameDecoder and
protocol.messages.decode_message, as a host would.
"""

from __future__ import annotations

import json
import random
import struct
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.auth import AccessControl
from firmware_sim.keystore import UnitKeys
from firmware_sim.session import MAX_STREAMS, MAX_WAITING_ANSWERS, DeviceSession
from protocol.counters import LifetimeCounters
from protocol.crc import crc32c
from protocol.enums import EngineState, ErrorCode, EventKind, MsgType
from protocol.formats import MAX_PAYLOAD, PROTOCOL_VERSION
from protocol.framing import FrameDecoder, encode_frame
from protocol.messages import (
    SCHEMA_FINGERPRINT,
    Abort,
    AbortResponse,
    AuthChallenge,
    AuthChallengeResponse,
    ClockGet,
    ClockResponse,
    ClockSet,
    ErrorResponse,
    Identify,
    IdentifyResponse,
    Live,
    LiveResponse,
    LogClear,
    Message,
    RangeEnd,
    ReadRange,
    ReadSet,
    Records,
    decode_message,
    encode_message,
)
from protocol.records import EventRecord, FaultRecord, SampleRecord, Snapshot, encode_record, scan_records

SNAPSHOT = Snapshot(
    state=EngineState.LOAD, mode=0, active_fault=0, speed_rpm=96000, power_w=65000, tet1_c_x10=6200,
    tet2_c_x10=6180, compressor_inlet_c_x10=150, ambient_c_x10=150, ambient_pressure_kpa_x100=10132,
    fuel_valve_pct_x10=640, fuel_power_w=222000, dc_bus_v_x10=7600, grid_voltage_v_x10=4800,
    grid_freq_hz_x1000=60000, operating_s=3600, starts=2, trips=0, energy_wh=65000,
)


def raw_record(seq: int) -> bytes:
    """Deterministic records of three sizes (sample 68, fault 74, event 26 bytes)."""
    timestamp = 1_700_000_000 + seq
    kind = seq % 3
    if kind == 0:
        return encode_record(SampleRecord(seq, timestamp, SNAPSHOT))
    if kind == 1:
        return encode_record(FaultRecord(seq, timestamp, 5005, 3, 0, 0, SNAPSHOT))
    return encode_record(EventRecord(seq, timestamp, EventKind.STATE_CHANGE, 3, 4, 0, seq, 0))


class FakeUnit:
    """A contiguous log [first_seq, next_seq) whose records are made on demand."""

    model = "C65"
    serial = "SN-0001"
    firmware = "fw-1.0"
    baud = 115200
    capacity_records = 1000
    log_id = b"log-id-1"

    def __init__(self, next_seq: int = 0, first_seq: int = 0, max_window: int = 500) -> None:
        self.first_seq = first_seq
        self.next_seq = next_seq
        self.max_window = max_window
        self.counters = LifetimeCounters(operating_s=3600, starts=2, trips=1, energy_wh=65000)
        self.time = 1_700_000_000
        self.clock_sets: list[tuple[int, int]] = []
        self.missing: set[int] = set()
        """Seqs lost to a power cut: inside [first_seq, next_seq) but not held."""
        self.access = AccessControl(
            UnitKeys(bytes(32), bytes(32), bytes(32)), clock=lambda: 0.0, audit=lambda level, outcome: None,
            boot_salt=b"",
        )

    def iter_raw(self, start_seq: int, stop_seq: int) -> Iterator[bytes]:
        for seq in range(max(start_seq, self.first_seq), min(stop_seq, self.next_seq)):
            if seq not in self.missing:
                yield raw_record(seq)

    def clear_log(self, *, level: int = 0) -> int:
        self.first_seq = self.next_seq
        self.next_seq += 1  # the unit logs LOG_CLEARED as the first record after a clear
        return self.first_seq

    def device_time(self) -> int:
        return self.time

    def set_device_time(self, new_time: int, *, level: int = 0) -> None:
        self.clock_sets.append((self.time, new_time))
        self.time = new_time

    def live_snapshot(self) -> Snapshot:
        return SNAPSHOT


class Host:
    """Encodes requests with increasing frame seqs and decodes what comes back."""

    def __init__(self, session: DeviceSession) -> None:
        self.session = session
        self.decoder = FrameDecoder()
        self.seq = 100
        self.frame_seqs: list[int] = []
        self.frame_types: list[int] = []

    def wire(self, msg: Message) -> bytes:
        self.seq += 1
        return encode_message(msg, self.seq)

    def send(self, *msgs: Message) -> list[int]:
        """Send requests in one write; return their frame seqs."""
        data = b"".join(self.wire(msg) for msg in msgs)
        self.session.receive_data(data)
        return list(range(self.seq - len(msgs) + 1, self.seq + 1))

    def decode(self, data: bytes) -> list[Message]:
        out: list[Message] = []
        for frame in self.decoder.feed(data):
            assert not isinstance(frame, Exception), frame
            assert len(frame.payload) <= MAX_PAYLOAD
            self.frame_seqs.append(frame.seq)
            self.frame_types.append(frame.msg_type)
            msg = decode_message(frame)
            out.append(msg)  # type: ignore[arg-type]
        return out

    def pull(self, chunk: int = 65536) -> list[Message]:
        out: list[Message] = []
        while self.session.has_output:
            out += self.decode(self.session.data_to_send(chunk))
        return out

    def ask(self, *msgs: Message) -> list[Message]:
        self.send(*msgs)
        return self.pull()


def make(next_seq: int = 0, **kwargs: int) -> tuple[FakeUnit, DeviceSession, Host]:
    unit = FakeUnit(next_seq, **kwargs)
    session = DeviceSession(unit, entropy=random.Random(7).randbytes)
    return unit, session, Host(session)


def records_of(msgs: list[Message], request_seq: int | None = None) -> list[bytes]:
    raws: list[bytes] = []
    for msg in msgs:
        if isinstance(msg, Records) and (request_seq is None or msg.request_seq == request_seq):
            good, errors = scan_records(msg.records)
            assert not errors
            raws += [raw for *_, raw in good]
    return raws


def seqs_of(raws: list[bytes]) -> list[int]:
    return [int.from_bytes(raw[:4], "little") for raw in raws]


def digest_of(raws: list[bytes]) -> int:
    return crc32c(b"".join(raw[-4:] for raw in raws)) if raws else 0


# --- immediate requests ---------------------------------------------------


def test_identify_reports_the_unit() -> None:
    unit, _, host = make(next_seq=40, first_seq=10)
    (rseq,) = host.send(Identify())
    (rsp,) = host.pull()
    assert rsp == IdentifyResponse(
        rseq, PROTOCOL_VERSION, SCHEMA_FINGERPRINT, "C65", "SN-0001", "fw-1.0", 1000, 10, 40,
        unit.time, 3600, 2, 1, 65000, 115200, 500, b"log-id-1",
    )


def test_live_returns_device_time_and_snapshot() -> None:
    unit, _, host = make()
    (rsp,) = host.ask(Live())
    assert rsp == LiveResponse(host.seq, unit.time, SNAPSHOT)


def test_clock_get() -> None:
    _, _, host = make()
    assert host.ask(ClockGet()) == [ClockResponse(host.seq, 1_700_000_000)]


def test_clock_set_and_log_clear_need_authentication() -> None:
    """The authenticated exchange is tested in test_auth.py."""
    unit, _, host = make(next_seq=50)
    for request in (ClockSet(1_600_000_000), LogClear()):
        (rsp,) = host.ask(request)
        assert isinstance(rsp, ErrorResponse) and rsp.code == ErrorCode.UNAUTHORIZED
    assert (unit.clock_sets, unit.first_seq) == ([], 0)


def test_auth_challenge_gives_seeded_nonces() -> None:
    _, _, host_a = make()
    _, _, host_b = make()
    (a1,) = host_a.ask(AuthChallenge(1))
    (b1,) = host_b.ask(AuthChallenge(1))
    (a2,) = host_a.ask(AuthChallenge(1))
    assert isinstance(a1, AuthChallengeResponse) and isinstance(a2, AuthChallengeResponse)
    assert a1 == b1 and a1.nonce != a2.nonce and len(a1.nonce) == 16


def test_frame_seq_counts_every_frame_sent() -> None:
    _, _, host = make(next_seq=300)
    host.ask(Identify(), ReadRange(0, 300), ClockGet(), Live())
    assert host.frame_seqs == list(range(len(host.frame_seqs)))


def test_responses_come_in_arrival_order() -> None:
    _, _, host = make()
    seqs = host.send(ClockGet(), Identify(), Live(), Abort())
    rsps = host.pull()
    assert [type(r) for r in rsps] == [ClockResponse, IdentifyResponse, LiveResponse, AbortResponse]
    assert [r.request_seq for r in rsps] == seqs  # type: ignore[union-attr]


def test_a_host_that_never_reads_cannot_make_the_device_queue_more_answers() -> None:
    """Figure held: 1,000 requests sent without reading leave MAX_WAITING_ANSWERS answers queued;
    the rest are dropped unanswered and counted, and the device answers again once read."""
    _, session, host = make()
    sent = host.send(*([Identify()] * 1000))
    assert session.requests_dropped == 1000 - MAX_WAITING_ANSWERS
    answers = host.pull()
    assert [a.request_seq for a in answers] == sent[:MAX_WAITING_ANSWERS]  # type: ignore[union-attr]
    (again,) = host.ask(ClockGet())
    assert isinstance(again, ClockResponse)


# --- errors -----------------------------------------------------------------


def error_for(host: Host, data: bytes) -> ErrorResponse:
    host.session.receive_data(data)
    (rsp,) = host.pull()
    assert isinstance(rsp, ErrorResponse)
    return rsp


@pytest.mark.parametrize("msg_type", [0x42, 0x7F, MsgType.IDENTIFY_RSP, MsgType.RECORDS, MsgType.ERROR])
def test_unknown_or_response_type_is_unknown_message(msg_type: int) -> None:
    _, _, host = make()
    rsp = error_for(host, encode_frame(msg_type, 9, b"\x01\x02"))
    assert (rsp.request_seq, rsp.code) == (9, ErrorCode.UNKNOWN_MESSAGE)


@pytest.mark.parametrize(
    ("msg_type", "payload"),
    [
        (MsgType.READ_RANGE, b"\x01\x00\x00"),
        (MsgType.CLOCK_SET, b"\x00\x00\x00\x00\x00"),
        (MsgType.LOG_CLEAR, b""),
        (MsgType.AUTH_CHALLENGE, b""),
        (MsgType.READ_SET, b"\x02" + struct.pack("<IH", 0, 1)),
    ],
)
def test_unparsable_payload_is_malformed_request(msg_type: int, payload: bytes) -> None:
    _, _, host = make()
    rsp = error_for(host, encode_frame(msg_type, 11, payload))
    assert (rsp.request_seq, rsp.code) == (11, ErrorCode.MALFORMED_REQUEST)
    assert rsp.detail


def test_trailing_payload_bytes_are_ignored() -> None:
    _, _, host = make()
    host.session.receive_data(encode_frame(MsgType.CLOCK_GET, 5, b"future fields"))
    assert host.pull() == [ClockResponse(5, 1_700_000_000)]


@pytest.mark.parametrize(
    "msg",
    [
        ReadRange(0, 0),
        ReadRange(0, 501),
        ReadSet(((0, 300), (400, 201))),
        ReadSet(((0, 300), (0, 201))),
    ],
)
def test_bad_counts_are_out_of_range(msg: Message) -> None:
    _, session, host = make(next_seq=1000)
    (rsp,) = host.ask(msg)
    assert isinstance(rsp, ErrorResponse)
    assert (rsp.request_seq, rsp.code) == (host.seq, ErrorCode.OUT_OF_RANGE)
    assert session.streams == 0


@pytest.mark.parametrize("ranges", [(), ((20, 0),), ((500, 0), (1000, 0))])
def test_a_read_set_asking_for_nothing_ends_at_once(ranges: tuple[tuple[int, int], ...]) -> None:
    """docs/protocol.md 5: an empty READ_SET (vector read_set_empty) or one of counts 0 is valid
    and answered with RANGE_END, sent 0, digest 0."""
    _, _, host = make(next_seq=1000)
    assert host.ask(ReadSet(ranges)) == [RangeEnd(host.seq, 0, 1000, 0, 0)]


def test_a_count_of_0_in_a_read_set_asks_for_nothing() -> None:
    _, _, host = make(next_seq=1000)
    msgs = host.ask(ReadSet(((0, 3), (20, 0), (7, 1))))
    assert seqs_of(records_of(msgs)) == [0, 1, 2, 7]
    assert msgs[-1] == RangeEnd(host.seq, 0, 1000, 4, digest_of(records_of(msgs)))


_NEEDS_AUTH_OR_UNKNOWN = ("ClockSet", "LogClear", "UnknownMessage")
_VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "frames.json").read_text("utf-8"))


@pytest.mark.parametrize(
    "vector",
    [v for v in _VECTORS if v["msg_type"] < 0x80 and v["class"] not in _NEEDS_AUTH_OR_UNKNOWN],
    ids=lambda v: v["name"],
)
def test_every_published_read_level_request_is_accepted(vector: dict[str, object]) -> None:
    """A request the vectors publish as valid gets its answer, never an ERROR (read_set_empty too)."""
    _, _, host = make(next_seq=10, max_window=1 << 20)
    host.session.receive_data(bytes.fromhex(str(vector["hex"])))
    answers = host.pull()
    assert answers and not any(isinstance(a, ErrorResponse) for a in answers), answers
    assert answers[-1].request_seq == vector["seq"]  # type: ignore[union-attr]


def test_the_published_wrong_version_frame_gets_the_published_answer() -> None:
    """corrupt.json's wrong_version (a version 1 IDENTIFY) is answered as frames.json's
    error_unsupported_version says (the good frames around it, responses, get UNKNOWN_MESSAGE)."""
    vectors = Path(__file__).resolve().parents[1] / "vectors"
    corrupt = json.loads((vectors / "corrupt.json").read_text("utf-8"))
    (stream,) = [v for v in corrupt["frames"] if v["name"] == "wrong_version"]
    (answer,) = [v for v in _VECTORS if v["name"] == "error_unsupported_version"]
    _, _, host = make(next_seq=10)
    host.session.receive_data(bytes.fromhex(stream["hex"]))
    errors = [to_json_fields(a) for a in host.pull() if isinstance(a, ErrorResponse)]
    assert [e for e in errors if e["code"] != ErrorCode.UNKNOWN_MESSAGE] == [answer["decoded"]]


def to_json_fields(msg: ErrorResponse) -> dict[str, object]:
    return {"request_seq": msg.request_seq, "code": int(msg.code), "detail": msg.detail}


def test_read_set_with_more_than_160_ranges_is_malformed() -> None:
    _, _, host = make(next_seq=1000)
    payload = bytes([161]) + b"".join(struct.pack("<IH", seq, 1) for seq in range(161))
    rsp = error_for(host, encode_frame(MsgType.READ_SET, 3, payload))
    assert rsp.code == ErrorCode.MALFORMED_REQUEST


def test_unknown_access_level_is_out_of_range() -> None:
    _, _, host = make()
    (rsp,) = host.ask(AuthChallenge(9))
    assert isinstance(rsp, ErrorResponse) and rsp.code == ErrorCode.OUT_OF_RANGE


def test_fifth_stream_is_busy_and_answered_first() -> None:
    _, session, host = make(next_seq=100)
    seqs = host.send(*(ReadRange(i * 10, 10) for i in range(MAX_STREAMS + 1)))
    assert session.streams == MAX_STREAMS
    rsps = host.pull()
    assert isinstance(rsps[0], ErrorResponse)
    assert (rsps[0].request_seq, rsps[0].code) == (seqs[-1], ErrorCode.BUSY)
    ends = [r for r in rsps if isinstance(r, RangeEnd)]
    assert [e.request_seq for e in ends] == seqs[:MAX_STREAMS]
    assert host.ask(ReadRange(0, 1))[-1] == RangeEnd(host.seq, 0, 100, 1, digest_of([raw_record(0)]))


def test_frames_failing_verification_are_dropped_silently() -> None:
    _, session, host = make()
    corrupt = bytearray(host.wire(Identify()))
    good = host.wire(ClockGet())
    corrupt[3] ^= 0x40
    session.receive_data(bytes(corrupt) + b"\x00\x00" + b"\x07" * 2000 + b"\x00" + good)
    assert host.pull() == [ClockResponse(host.seq, 1_700_000_000)]
    assert session.frames_dropped == 2 and session.frames_in == 1


@pytest.mark.parametrize("version", [1, 3, 0xFF])
def test_a_request_of_another_version_is_answered_unsupported_version(version: int) -> None:
    """docs/protocol.md 2 and 5: a verified request frame of another version gets ERROR
    UNSUPPORTED_VERSION naming its seq (in the device's version); a response-type one is dropped."""
    _, session, host = make()
    for msg_type, seq in ((MsgType.IDENTIFY, 0x1234), (MsgType.IDENTIFY_RSP, 9)):
        body = bytearray(bytes([version, msg_type]) + seq.to_bytes(2, "little") + b"\x00\x00")
        body += crc32c(bytes(body)).to_bytes(4, "little")
        session.receive_data(cobs.encode(bytes(body)) + b"\x00")
    rsp = error_for(host, b"")
    assert (rsp.request_seq, rsp.code) == (0x1234, ErrorCode.UNSUPPORTED_VERSION)
    assert str(version) in rsp.detail
    assert not session.has_output and session.frames_dropped == 1


# --- streams ------------------------------------------------------------------


def test_read_range_returns_exactly_the_records_asked_for() -> None:
    _, _, host = make(next_seq=1000)
    (rseq,) = host.send(ReadRange(123, 400))
    msgs = host.pull()
    raws = records_of(msgs)
    assert raws == [raw_record(seq) for seq in range(123, 523)]
    assert msgs[-1] == RangeEnd(rseq, 0, 1000, 400, digest_of(raws))
    assert sum(isinstance(m, RangeEnd) for m in msgs) == 1


def test_records_are_packed_whole_and_as_many_as_fit() -> None:
    _, _, host = make(next_seq=1000)
    msgs = host.ask(ReadRange(0, 500))
    frames = [m for m in msgs if isinstance(m, Records)]
    seq = 0
    for frame in frames:
        good, errors = scan_records(frame.records)
        assert not errors
        seq += len(good)
        assert len(frame.records) <= MAX_PAYLOAD - 2
        if frame is not frames[-1]:
            assert len(frame.records) + len(raw_record(seq)) > MAX_PAYLOAD - 2
    assert seq == 500


def test_evicted_and_unwritten_records_are_skipped() -> None:
    _, _, host = make(next_seq=300, first_seq=100)
    msgs = host.ask(ReadRange(50, 100), ReadRange(250, 100), ReadRange(400, 5), ReadRange(0, 10))
    assert seqs_of(records_of(msgs)) == list(range(100, 150)) + list(range(250, 300))
    ends = [m for m in msgs if isinstance(m, RangeEnd)]
    assert [(e.sent, e.first_available, e.next_seq) for e in ends] == [
        (50, 100, 300), (50, 100, 300), (0, 100, 300), (0, 100, 300),
    ]
    assert ends[2].digest == 0


def test_records_the_log_lost_are_skipped() -> None:
    unit, _, host = make(next_seq=100)
    unit.missing = {0, 17, 18, 99}
    (rseq,) = host.send(ReadRange(0, 100))
    msgs = host.pull()
    raws = records_of(msgs)
    assert seqs_of(raws) == [s for s in range(100) if s not in unit.missing]
    assert msgs[-1] == RangeEnd(rseq, 0, 100, 96, digest_of(raws))


def test_eviction_during_a_stream_skips_what_is_gone() -> None:
    unit, session, host = make(next_seq=500)
    (rseq,) = host.send(ReadRange(0, 500))
    msgs = host.decode(session.data_to_send(1500))  # two frames built, one and a half sent
    unit.first_seq = 200
    msgs += host.pull()
    seqs = seqs_of(records_of(msgs))
    built = seqs.index(200)
    assert 20 < built < 50
    assert seqs == list(range(built)) + list(range(200, 500))
    end = msgs[-1]
    assert end == RangeEnd(rseq, 200, 500, len(seqs), digest_of(records_of(msgs)))


def test_records_written_during_a_stream_are_sent() -> None:
    unit, session, host = make(next_seq=100)
    host.send(ReadRange(0, 300))
    msgs = host.decode(session.data_to_send(2000))
    unit.next_seq = 250
    msgs += host.pull()
    assert seqs_of(records_of(msgs)) == list(range(250))
    assert msgs[-1].next_seq == 250  # type: ignore[union-attr]


def test_read_set_sends_in_increasing_seq_order_each_once() -> None:
    """docs/protocol.md 5: ranges given reversed or overlapping are sorted and merged."""
    _, _, host = make(next_seq=400, first_seq=20)
    (rseq,) = host.send(ReadSet(((300, 5), (10, 15), (390, 20), (100, 1))))
    msgs = host.pull()
    raws = records_of(msgs)
    assert seqs_of(raws) == [20, 21, 22, 23, 24, 100, 300, 301, 302, 303, 304] + list(range(390, 400))
    assert msgs[-1] == RangeEnd(rseq, 20, 400, 21, digest_of(raws))
    _, _, host = make(next_seq=400)
    (rseq,) = host.send(ReadSet(((5, 2), (5, 2), (0, 2), (1, 5))))
    msgs = host.pull()
    raws = records_of(msgs)
    assert seqs_of(raws) == [0, 1, 2, 3, 4, 5, 6]
    assert msgs[-1] == RangeEnd(rseq, 0, 400, 7, digest_of(raws))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), max_size=30))
def test_any_read_set_streams_the_union_of_its_ranges_once_in_order(ranges: list[tuple[int, int]]) -> None:
    _, _, host = make(next_seq=250, first_seq=30, max_window=2000)
    (rseq,) = host.send(ReadSet(tuple(ranges)))
    msgs = host.pull()
    raws = records_of(msgs)
    asked = {seq for start, count in ranges for seq in range(start, start + count)}
    wanted = sorted(seq for seq in asked if 30 <= seq < 250)
    assert seqs_of(raws) == wanted
    assert msgs[-1] == RangeEnd(rseq, 30, 250, len(wanted), digest_of(raws))


def test_streams_run_first_in_first_out() -> None:
    _, _, host = make(next_seq=1000)
    seqs = host.send(ReadRange(500, 100), ReadRange(0, 100))
    msgs = host.pull()
    assert seqs_of(records_of(msgs)) == list(range(500, 600)) + list(range(100))
    assert seqs_of(records_of(msgs, seqs[0])) == list(range(500, 600))
    assert [m.request_seq for m in msgs if isinstance(m, RangeEnd)] == seqs


def test_immediate_requests_overtake_a_running_stream() -> None:
    _, session, host = make(next_seq=1000)
    (rseq,) = host.send(ReadRange(0, 500))
    msgs = host.decode(session.data_to_send(1200))  # first frame and part of the second
    assert isinstance(msgs[0], Records)
    host.send(Identify(), ClockGet())
    msgs = host.decode(session.data_to_send(2000))
    assert [type(m) for m in msgs[:3]] == [Records, IdentifyResponse, ClockResponse]
    rest = host.pull()
    assert isinstance(rest[-1], RangeEnd) and rest[-1].sent == 500


def test_abort_drops_every_stream_within_one_frame() -> None:
    _, session, host = make(next_seq=1000)
    host.send(ReadRange(0, 500), ReadRange(500, 500), ReadSet(((0, 10),)))
    msgs = host.decode(session.data_to_send(1500))
    (abort_seq,) = host.send(Abort())
    assert session.streams == 0
    msgs += host.pull()
    assert msgs[-1] == AbortResponse(abort_seq)
    assert [type(m) for m in msgs] == [Records, Records, AbortResponse]
    assert not any(isinstance(m, RangeEnd) for m in msgs)
    (rseq,) = host.send(ReadRange(0, 3))
    assert host.pull()[-1] == RangeEnd(rseq, 0, 1000, 3, digest_of([raw_record(s) for s in range(3)]))


def test_abort_then_read_in_one_write_starts_afresh() -> None:
    _, session, host = make(next_seq=100)
    host.send(ReadRange(0, 100))
    host.decode(session.data_to_send(10))
    abort_seq, read_seq = host.send(Abort(), ReadRange(90, 10))
    msgs = host.pull()
    assert isinstance(msgs[0], Records) and msgs[1] == AbortResponse(abort_seq)
    assert seqs_of(records_of(msgs[2:])) == list(range(90, 100))
    assert msgs[-1].request_seq == read_seq  # type: ignore[union-attr]


# --- chunking -------------------------------------------------------------------


def script(host: Host) -> bytes:
    return b"".join(
        host.wire(m) for m in (Identify(), ReadRange(0, 200), Live(), ReadSet(((5, 3), (50, 7))), ClockGet())
    )


def output_for(feeds: list[bytes], pull: int) -> bytes:
    _, session, _ = make(next_seq=300)
    out = bytearray()
    for data in feeds:
        session.receive_data(data)
    while session.has_output:
        chunk = session.data_to_send(pull)
        assert 0 < len(chunk) <= pull
        out += chunk
    return bytes(out)


def test_input_in_any_chunking_gives_the_same_output() -> None:
    data = script(Host(make()[1]))
    whole = output_for([data], 65536)
    assert output_for([data[i : i + 1] for i in range(len(data))], 65536) == whole
    rng = random.Random(3)
    cuts = sorted(rng.sample(range(1, len(data)), 12))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    assert output_for(pieces, 65536) == whole
    host = Host(make()[1])
    msgs = host.decode(whole)
    assert len(records_of(msgs)) == 210 and sum(isinstance(m, RangeEnd) for m in msgs) == 2


def test_output_pulled_one_byte_at_a_time_equals_big_chunks() -> None:
    data = script(Host(make()[1]))
    whole = output_for([data], 1 << 20)
    assert output_for([data], 1) == whole
    assert output_for([data], 37) == whole


def test_garbage_between_requests_is_ignored() -> None:
    _, session, host = make(next_seq=50)
    rng = random.Random(11)
    clean = b"".join(host.wire(m) for m in (ClockGet(), ReadRange(0, 50), Identify()))
    noisy = b""
    for frame in clean.split(b"\x00")[:-1]:
        noisy += rng.randbytes(rng.randrange(1, 300)) + b"\x00" + frame + b"\x00"
    session.receive_data(noisy)
    msgs = host.pull()
    others = [type(m) for m in msgs if not isinstance(m, Records)]
    assert others == [ClockResponse, IdentifyResponse, RangeEnd]
    assert len(records_of(msgs)) == 50
    assert session.frames_in == 3


def test_idle_session_sends_nothing() -> None:
    _, session, host = make()
    assert not session.has_output and session.data_to_send(100) == b""
    host.send(ClockGet())
    assert session.data_to_send(0) == b"" and session.has_output


@pytest.mark.slow
def test_a_100k_record_stream_uses_bounded_memory() -> None:
    count = 100_000
    _, session, host = make(next_seq=count, max_window=count)
    decoder = FrameDecoder()
    # Warm up first: what any stream leaves behind once (format caches, and CPython's free lists
    # of small tuples, up to 2,000 of each size, which tracemalloc counts as held) is not this one's.
    host.send(ReadRange(0, 20_000))
    while session.has_output:
        decoder.feed(session.data_to_send(4096))
    records_before, frames_before = session.records_out, session.frames_out
    host.send(ReadRange(0, count))
    frames = 0
    tracemalloc.start()
    try:
        while session.has_output:
            frames += len(decoder.feed(session.data_to_send(4096)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert session.records_out - records_before == count
    assert frames == session.frames_out - frames_before
    assert peak < 200_000  # a 100k-record stream is about 5 MB on the wire


@pytest.mark.parametrize("max_payload", [1, 68, 100, 136, 500, 1012, 5000])
def test_max_payload_bounds_the_record_bytes_of_each_frame(max_payload: int) -> None:
    _, _, host = make(next_seq=100)
    full = records_of(host.ask(ReadRange(0, 60)))
    answers = host.ask(ReadRange(0, 60, max_payload))
    assert records_of(answers) == full, "the same records, in the same order"
    room = min(max_payload, 1012)
    for batch in (a for a in answers if isinstance(a, Records)):
        count = len(records_of([batch]))
        assert count == 1 or len(batch.records) <= room
        if max_payload == 1:
            assert count == 1
