"""Messages: round trips for every type, field bounds, strings, hostile payloads, the fingerprint.

Strategies and base values are derived from protocol.formats.MESSAGE_PAYLOADS, so a field added
to a payload is covered here without editing this file.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from construct import (
    Bytes,
    FixedSized,
    FormatField,
    GreedyBytes,
    Int8ul,
    Prefixed,
    PrefixedArray,
    StringEncoded,
    Struct,
)
from hypothesis import given
from hypothesis import strategies as st

from protocol import formats
from protocol.crc import crc32c
from protocol.enums import MsgType
from protocol.errors import LocalProtocolError, MalformedMessage
from protocol.framing import Frame, FrameDecoder
from protocol.messages import (
    MESSAGE_CLASSES,
    SCHEMA_FINGERPRINT,
    RangeDigest,
    ReadSet,
    Records,
    UnknownMessage,
    decode_message,
    encode_message,
    encode_payload,
)
from protocol.records import SNAPSHOT_FIELDS, Snapshot
from tests.protocol.test_records import field_values, int_bounds, snapshots

ROOT = Path(__file__).resolve().parents[2]
ASCII_NO_NUL = st.characters(min_codepoint=1, max_codepoint=0x7F)
MAX_RANGES_IN_A_FRAME = (formats.MAX_PAYLOAD - 3) // formats.SEQ_RANGE.sizeof()


def string_length(con: StringEncoded) -> int | None:
    """The fixed size of a padded string, None for a length-prefixed one."""
    return con.subcon.length if isinstance(con.subcon, FixedSized) else None


def payload_field(name: str, con: Any) -> st.SearchStrategy[Any]:
    if name == "snapshot":
        return snapshots()
    if name == "ranges":
        start, count = (field_values(s.subcon) for s in formats.SEQ_RANGE.subcons)
        return st.lists(st.tuples(start, count), max_size=formats.MAX_SET_RANGES).map(tuple)
    if name == "records":
        return st.binary(max_size=formats.MAX_PAYLOAD - 2)
    if isinstance(con, StringEncoded):
        size = string_length(con)
        if size is not None:
            return st.text(ASCII_NO_NUL, max_size=size)
        return st.text(max_size=255).filter(lambda s: len(s.encode("utf-8")) <= 255)
    return field_values(con)


def messages_of(msg_type: int) -> st.SearchStrategy[Any]:
    cls = MESSAGE_CLASSES[msg_type]
    fmt = formats.MESSAGE_PAYLOADS[msg_type]
    return st.builds(cls, **{sub.name: payload_field(sub.name, sub.subcon) for sub in fmt.subcons})


def messages() -> st.SearchStrategy[Any]:
    return st.one_of(*(messages_of(t) for t in sorted(MESSAGE_CLASSES)))


def base_value(name: str, con: Any) -> Any:
    if name == "snapshot":
        return Snapshot(**dict.fromkeys(SNAPSHOT_FIELDS, 0))
    if name == "ranges":
        return ((0, 0),)
    if name == "records" or isinstance(con, Bytes):
        return bytes(con.length) if isinstance(con, Bytes) else b""
    if isinstance(con, StringEncoded):
        return ""
    return 0


def base_message(msg_type: int) -> Any:
    """The message of this type with every field at zero or empty."""
    fmt = formats.MESSAGE_PAYLOADS[msg_type]
    return MESSAGE_CLASSES[msg_type](**{s.name: base_value(s.name, s.subcon) for s in fmt.subcons})


TYPES = sorted(MESSAGE_CLASSES)
TYPE_IDS = [MsgType(t).name for t in TYPES]


def test_every_message_type_has_a_class_and_a_format() -> None:
    assert set(MESSAGE_CLASSES) == set(formats.MESSAGE_PAYLOADS) == set(MsgType)


@pytest.mark.parametrize("msg_type", TYPES, ids=TYPE_IDS)
def test_message_fields_are_the_fields_of_its_format(msg_type: int) -> None:
    cls = MESSAGE_CLASSES[msg_type]
    assert msg_type == cls.MSG_TYPE
    fmt = formats.MESSAGE_PAYLOADS[msg_type]
    assert [f.name for f in dataclasses.fields(cls)] == [s.name for s in fmt.subcons]


@pytest.mark.parametrize("msg_type", TYPES, ids=TYPE_IDS)
@given(data=st.data())
def test_every_message_type_round_trips(msg_type: int, data: st.DataObject) -> None:
    msg = data.draw(messages_of(msg_type))
    seq = data.draw(st.integers(0, 0xFFFF))
    payload = encode_payload(msg)
    assert len(payload) <= formats.MAX_PAYLOAD
    assert decode_message(Frame(msg_type, seq, payload)) == msg
    (frame,) = FrameDecoder().feed(encode_message(msg, seq))
    assert isinstance(frame, Frame)
    assert (frame.msg_type, frame.seq, frame.payload) == (msg_type, seq, payload)
    assert decode_message(frame) == msg


@given(messages_of(MsgType.RECORDS))
def test_records_payload_is_what_its_format_builds(msg: Records) -> None:
    built = formats.RECORDS.build({"request_seq": msg.request_seq, "records": msg.records})
    assert encode_payload(msg) == built


@pytest.mark.parametrize("msg_type", [t for t in TYPES if t != MsgType.RECORDS], ids=[
    MsgType(t).name for t in TYPES if t != MsgType.RECORDS])
@given(data=st.data())
def test_bytes_appended_by_a_newer_peer_are_ignored(msg_type: int, data: st.DataObject) -> None:
    msg = data.draw(messages_of(msg_type))
    payload = encode_payload(msg)
    extra = data.draw(st.binary(min_size=1, max_size=formats.MAX_PAYLOAD - len(payload)))
    assert decode_message(Frame(msg_type, 0, payload + extra)) == msg


@pytest.mark.parametrize("msg_type", [t for t in TYPES if formats.MESSAGE_PAYLOADS[t].subcons],
                         ids=[MsgType(t).name for t in TYPES if formats.MESSAGE_PAYLOADS[t].subcons])
@given(data=st.data())
def test_a_cut_payload_is_malformed(msg_type: int, data: st.DataObject) -> None:
    """Every strict prefix fails, except for RECORDS, whose records run to the end of the payload."""
    msg = data.draw(messages_of(msg_type))
    payload = encode_payload(msg)
    cut = data.draw(st.integers(0, len(payload) - 1)) if payload else 0
    if msg_type == MsgType.RECORDS and cut >= 2:
        shorter = Records(msg.request_seq, msg.records[: cut - 2])
        assert decode_message(Frame(msg_type, 0, payload[:cut])) == shorter
        return
    with pytest.raises(MalformedMessage):
        decode_message(Frame(msg_type, 0, payload[:cut]))


@given(st.integers(0, 255).filter(lambda t: t not in MESSAGE_CLASSES),
       st.binary(max_size=formats.MAX_PAYLOAD))
def test_an_unknown_message_type_is_kept_raw(msg_type: int, payload: bytes) -> None:
    assert decode_message(Frame(msg_type, 1, payload)) == UnknownMessage(msg_type, payload)


@pytest.mark.parametrize("msg_type", TYPES, ids=TYPE_IDS)
@given(payload=st.binary(max_size=64))
def test_any_payload_decodes_or_is_malformed(msg_type: int, payload: bytes) -> None:
    try:
        msg = decode_message(Frame(msg_type, 0, payload))
    except MalformedMessage:
        return
    assert isinstance(msg, MESSAGE_CLASSES[msg_type])


def test_frame_seq_wraps_at_65536() -> None:
    (frame,) = FrameDecoder().feed(encode_message(MESSAGE_CLASSES[MsgType.IDENTIFY](), 65_536 + 7))
    assert isinstance(frame, Frame)
    assert frame.seq == 7


# --- every integer field at its bounds ------------------------------------------------------------


def message_int_fields() -> list[tuple[str, FormatField, Callable[[int], Any]]]:
    """(id, construct field, value -> message with that field set) for every integer in every payload."""
    out: list[tuple[str, FormatField, Callable[[int], Any]]] = []
    for msg_type in TYPES:
        base = base_message(msg_type)
        name = MsgType(msg_type).name
        for sub in formats.MESSAGE_PAYLOADS[msg_type].subcons:
            if isinstance(sub.subcon, FormatField):
                out.append((f"{name}.{sub.name}", sub.subcon,
                            lambda v, base=base, field=sub.name: dataclasses.replace(base, **{field: v})))
            elif sub.name == "snapshot":
                for inner in formats.SNAPSHOT.subcons:
                    out.append((f"{name}.snapshot.{inner.name}", inner.subcon,
                                lambda v, base=base, field=inner.name: dataclasses.replace(
                                    base, snapshot=dataclasses.replace(base.snapshot, **{field: v}))))
            elif sub.name == "ranges":
                start, count = (s.subcon for s in formats.SEQ_RANGE.subcons)
                out.append((f"{name}.ranges.start_seq", start, lambda v: ReadSet(((v, 0),))))
                out.append((f"{name}.ranges.count", count, lambda v: ReadSet(((0, v),))))
    return out


INT_FIELDS = message_int_fields()
CHECKED_INT_FIELDS = [case for case in INT_FIELDS if not case[0].startswith("RECORDS.")]
"""RECORDS.request_seq is built outside construct: see test_records_request_seq_outside_u16_is_refused."""


@pytest.mark.parametrize(("field", "build"), [(f, b) for _, f, b in INT_FIELDS],
                         ids=[i for i, _, _ in INT_FIELDS])
def test_every_integer_round_trips_at_its_bounds(field: FormatField, build: Callable[[int], Any]) -> None:
    for value in int_bounds(field):
        msg = build(value)
        assert decode_message(Frame(msg.MSG_TYPE, 0, encode_payload(msg))) == msg


@pytest.mark.parametrize(("field", "build"), [(f, b) for i, f, b in CHECKED_INT_FIELDS],
                         ids=[i for i, _, _ in CHECKED_INT_FIELDS])
def test_an_integer_outside_its_field_is_refused(field: FormatField, build: Callable[[int], Any]) -> None:
    low, high = int_bounds(field)
    for value in (low - 1, high + 1):
        with pytest.raises(LocalProtocolError):
            encode_payload(build(value))


@pytest.mark.parametrize("request_seq", [-1, 0x10000])
def test_records_request_seq_outside_u16_is_refused(request_seq: int) -> None:
    with pytest.raises(LocalProtocolError):
        encode_payload(Records(request_seq, b""))


def test_records_beyond_the_frame_are_refused() -> None:
    encode_message(Records(0, bytes(formats.MAX_PAYLOAD - 2)), 0)
    with pytest.raises(LocalProtocolError):
        encode_message(Records(0, bytes(formats.MAX_PAYLOAD - 1)), 0)


def test_wrong_sized_bytes_are_refused() -> None:
    clock_set = base_message(MsgType.CLOCK_SET)
    for size in (formats.AUTH_TAG_LEN - 1, formats.AUTH_TAG_LEN + 1):
        with pytest.raises(LocalProtocolError):
            encode_payload(dataclasses.replace(clock_set, tag=bytes(size)))


# --- strings --------------------------------------------------------------------------------------

PADDED = [(t, s.name, string_length(s.subcon)) for t in TYPES for s in formats.MESSAGE_PAYLOADS[t].subcons
          if isinstance(s.subcon, StringEncoded) and string_length(s.subcon) is not None]


@pytest.mark.parametrize(("msg_type", "name", "size"), PADDED,
                         ids=[f"{MsgType(t).name}.{n}" for t, n, _ in PADDED])
def test_padded_strings_hold_their_full_length_and_no_more(msg_type: int, name: str, size: int) -> None:
    base = base_message(msg_type)
    full = dataclasses.replace(base, **{name: "Z" * size})
    assert decode_message(Frame(msg_type, 0, encode_payload(full))) == full
    for bad in ("Z" * (size + 1), "é"):
        with pytest.raises(LocalProtocolError):
            encode_payload(dataclasses.replace(base, **{name: bad}))


def test_a_padded_string_that_cannot_come_back_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        encode_payload(dataclasses.replace(base_message(MsgType.IDENTIFY_RSP), model="C65\x00"))


def test_error_detail_holds_255_bytes_of_utf8_and_no_more() -> None:
    base = base_message(MsgType.ERROR)
    for detail in ("x" * 255, "é" * 127 + "x", "€" * 85):
        msg = dataclasses.replace(base, detail=detail)
        assert decode_message(Frame(MsgType.ERROR, 0, encode_payload(msg))) == msg
    for detail in ("x" * 256, "é" * 128, "\udc80"):
        with pytest.raises(LocalProtocolError):
            encode_payload(dataclasses.replace(base, detail=detail))


def test_non_ascii_or_non_utf8_strings_on_the_wire_are_malformed() -> None:
    payload = bytearray(encode_payload(base_message(MsgType.IDENTIFY_RSP)))
    payload[7] = 0xE9  # first byte of `model`
    with pytest.raises(MalformedMessage):
        decode_message(Frame(MsgType.IDENTIFY_RSP, 0, bytes(payload)))
    with pytest.raises(MalformedMessage):
        decode_message(Frame(MsgType.ERROR, 0, b"\x00\x00\x01\x00\x01\xff"))


# --- READ_SET counts --------------------------------------------------------------------------------


def test_read_set_takes_up_to_160_ranges() -> None:
    most = ReadSet(tuple((i, 1) for i in range(formats.MAX_SET_RANGES)))
    assert decode_message(Frame(MsgType.READ_SET, 0, encode_payload(most))) == most
    with pytest.raises(LocalProtocolError):
        encode_payload(ReadSet(tuple((i, 1) for i in range(formats.MAX_SET_RANGES + 1))))


@pytest.mark.parametrize("count", [1, 160, 255])
def test_a_read_set_count_beyond_its_bytes_is_malformed(count: int) -> None:
    with pytest.raises(MalformedMessage):
        decode_message(Frame(MsgType.READ_SET, 0, bytes([count]) + bytes(6 * (count - 1))))


def test_a_read_set_over_160_ranges_is_malformed() -> None:
    count = formats.MAX_SET_RANGES + 1
    assert count <= MAX_RANGES_IN_A_FRAME
    with pytest.raises(MalformedMessage):
        decode_message(Frame(MsgType.READ_SET, 0, bytes([count]) + bytes(6 * count) + bytes(2)))


# --- limits checked when a message is built ------------------------------------------------------


def outside(field: FormatField) -> st.SearchStrategy[int]:
    low, high = int_bounds(field)
    return st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1))


ALL_INTS = [(f, b) for _, f, b in INT_FIELDS]
ALL_INT_IDS = [i for i, _, _ in INT_FIELDS]
PADDED_IDS = [f"{MsgType(t).name}.{n}" for t, n, _ in PADDED]


@pytest.mark.parametrize(("field", "build"), ALL_INTS, ids=ALL_INT_IDS)
@given(data=st.data())
def test_a_message_holding_an_integer_outside_its_field_cannot_be_built(
    field: FormatField, build: Callable[[int], Any], data: st.DataObject
) -> None:
    """The caller's mistake is refused where it is made, not when the message is sent."""
    with pytest.raises(LocalProtocolError):
        build(data.draw(outside(field)))


@pytest.mark.parametrize("build", [b for _, b in ALL_INTS], ids=ALL_INT_IDS)
@pytest.mark.parametrize("value", [True, 1.0, "1", None])
def test_an_integer_field_holds_integers_only(build: Callable[[Any], Any], value: Any) -> None:
    with pytest.raises(LocalProtocolError):
        build(value)


@pytest.mark.parametrize(("msg_type", "name", "size"), PADDED, ids=PADDED_IDS)
@given(data=st.data())
def test_a_padded_string_that_would_not_come_back_cannot_be_built(
    msg_type: int, name: str, size: int, data: st.DataObject
) -> None:
    bad = data.draw(st.one_of(
        st.text(ASCII_NO_NUL, min_size=size + 1, max_size=size + 8),
        st.text(min_size=1, max_size=size).filter(lambda text: not text.isascii() or "\x00" in text),
    ))
    with pytest.raises(LocalProtocolError):
        dataclasses.replace(base_message(msg_type), **{name: bad})


BYTES_FIELDS = [(t, s.name, s.subcon.length) for t in TYPES for s in formats.MESSAGE_PAYLOADS[t].subcons
                if isinstance(s.subcon, Bytes)]


@pytest.mark.parametrize(("msg_type", "name", "size"), BYTES_FIELDS,
                         ids=[f"{MsgType(t).name}.{n}" for t, n, _ in BYTES_FIELDS])
@given(data=st.data())
def test_a_byte_string_of_another_size_cannot_be_built(
    msg_type: int, name: str, size: int, data: st.DataObject
) -> None:
    bad = data.draw(st.binary(max_size=size + 4).filter(lambda raw: len(raw) != size))
    with pytest.raises(LocalProtocolError):
        dataclasses.replace(base_message(msg_type), **{name: bad})
    with pytest.raises(LocalProtocolError):
        dataclasses.replace(base_message(msg_type), **{name: bytearray(size)})


@given(st.binary(min_size=formats.MAX_PAYLOAD - 1, max_size=formats.MAX_PAYLOAD + 64))
def test_records_that_do_not_fit_a_frame_cannot_be_built(records: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        Records(0, records)


@given(st.integers(formats.MAX_SET_RANGES + 1, 255))
def test_a_read_set_of_more_ranges_than_it_takes_cannot_be_built(count: int) -> None:
    with pytest.raises(LocalProtocolError):
        ReadSet(tuple((i, 1) for i in range(count)))


@pytest.mark.parametrize("ranges", [[(0, 1)], ((0, 1, 2),), ((0,),), (None,)])
def test_read_set_ranges_are_a_tuple_of_pairs(ranges: Any) -> None:
    with pytest.raises(LocalProtocolError):
        ReadSet(ranges)


def test_the_refusal_names_the_message_and_the_field() -> None:
    with pytest.raises(LocalProtocolError, match=r"ReadRange\.count: 4294967296 is outside 0\.\.4294967295"):
        MESSAGE_CLASSES[MsgType.READ_RANGE](0, 1 << 32)


@pytest.mark.parametrize(("msg_type", "name", "size"), PADDED, ids=PADDED_IDS)
def test_a_peer_string_with_a_nul_inside_is_the_peers_fault(msg_type: int, name: str, size: int) -> None:
    """A value the wire can carry but no message can hold is MalformedMessage on decode (the
    peer's fault), never LocalProtocolError (ours)."""
    fmt = formats.MESSAGE_PAYLOADS[msg_type]
    full = dataclasses.replace(base_message(msg_type), **{name: "Z" * size})
    payload = bytearray(encode_payload(full))
    offset = sum(sub.sizeof() for sub in fmt.subcons[: [sub.name for sub in fmt.subcons].index(name)])
    payload[offset + 1] = 0
    with pytest.raises(MalformedMessage, match="NUL"):
        decode_message(Frame(msg_type, 0, bytes(payload)))


# --- RANGE_END digest --------------------------------------------------------------------------------


@given(st.lists(st.binary(min_size=14, max_size=80), max_size=20), st.integers(0, 20))
def test_range_digest_is_crc32c_of_the_crc_fields_in_order(raws: list[bytes], split: int) -> None:
    one_by_one, batched = RangeDigest(), RangeDigest()
    for raw in raws:
        one_by_one.update(raw)
    batched.update_many(raws[:split])
    batched.update_many(raws[split:])
    expected = crc32c(b"".join(raw[-4:] for raw in raws)) if raws else 0
    assert one_by_one.value == batched.value == expected
    assert one_by_one.count == batched.count == len(raws)


# --- schema fingerprint ----------------------------------------------------------------------------


def fingerprint() -> int:
    return crc32c(formats.schema_text().encode("ascii"))


OTHER_SIGN = {"B": "b", "b": "B", "H": "h", "h": "H", "L": "l", "l": "L", "Q": "q", "q": "Q"}
WIDER = {"B": "H", "b": "h", "H": "L", "h": "l", "L": "Q", "l": "q", "Q": "B", "q": "b"}


def mutations(fmt: Struct) -> list[tuple[str, Struct]]:
    """Modified copies of a format: renamed, retyped, resized, reordered, shortened, lengthened."""
    subs = list(fmt.subcons)
    out = [("append", Struct(*subs, "appended" / Int8ul))]
    if not subs:
        return out
    first = subs[0]
    out += [("rename", Struct((first.name + "_x") / first.subcon, *subs[1:])), ("drop", Struct(*subs[:-1]))]
    if len(subs) > 1:
        out.append(("reorder", Struct(subs[1], subs[0], *subs[2:])))
    if isinstance(first.subcon, FormatField):
        code = first.subcon.fmtstr[1]
        out += [("sign", Struct(first.name / FormatField("<", OTHER_SIGN[code]), *subs[1:])),
                ("size", Struct(first.name / FormatField("<", WIDER[code]), *subs[1:]))]
    if isinstance(subs[-1].subcon, Bytes):
        out.append(("bytes", Struct(*subs[:-1], subs[-1].name / Bytes(subs[-1].subcon.length + 1))))
    return out


def fingerprint_cases() -> list[Any]:
    """(id, patch) pairs; each patch applies one modified format through monkeypatch."""
    cases = []
    for mtype, fmt in sorted(formats.MESSAGE_PAYLOADS.items()):
        for what, changed in mutations(fmt):
            cases.append((f"{MsgType(mtype).name}-{what}",
                          lambda mp, k=mtype, f=changed: mp.setitem(formats.MESSAGE_PAYLOADS, k, f)))
    for rtype, fmt in sorted(formats.RECORD_BODIES.items()):
        for what, changed in mutations(fmt):
            cases.append((f"record{rtype}-{what}",
                          lambda mp, k=rtype, f=changed: mp.setitem(formats.RECORD_BODIES, k, f)))
    fault_subs = list(formats.FAULT_BODY.subcons)
    for what, changed in mutations(formats.SNAPSHOT):
        cases.append((f"FAULT.freeze-{what}", lambda mp, f=changed: mp.setitem(
            formats.RECORD_BODIES, 2, Struct(*fault_subs[:-1], "freeze" / f))))
    for what, changed in mutations(formats.SEQ_RANGE):
        cases.append((f"READ_SET.ranges-{what}", lambda mp, f=changed: mp.setitem(
            formats.MESSAGE_PAYLOADS, MsgType.READ_SET, Struct("ranges" / PrefixedArray(Int8ul, f)))))
    for name in ("FRAME_HEADER", "RECORD_HEADER"):
        for what, changed in mutations(getattr(formats, name)):
            cases.append((f"{name}-{what}", lambda mp, n=name, f=changed: mp.setattr(formats, n, f)))
    wide_detail = "detail" / StringEncoded(Prefixed(FormatField("<", "H"), GreedyBytes), "utf8")
    cases.append(("ERROR.detail-prefix", lambda mp: mp.setitem(
        formats.MESSAGE_PAYLOADS, MsgType.ERROR, Struct(*formats.ERROR_RSP.subcons[:-1], wide_detail))))
    cases.append(("PROTOCOL_VERSION", lambda mp: mp.setattr(formats, "PROTOCOL_VERSION", 3)))
    cases.append(("MAX_FRAME", lambda mp: mp.setattr(formats, "MAX_FRAME", 2048)))
    return cases


FINGERPRINT_CASES = fingerprint_cases()


def test_fingerprint_is_crc32c_of_the_schema_text() -> None:
    assert fingerprint() == SCHEMA_FINGERPRINT


@pytest.mark.parametrize("patch", [p for _, p in FINGERPRINT_CASES], ids=[i for i, _ in FINGERPRINT_CASES])
def test_fingerprint_changes_with_any_format(patch: Callable[[pytest.MonkeyPatch], None],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    patch(monkeypatch)
    assert fingerprint() != SCHEMA_FINGERPRINT


def test_every_changed_format_gives_its_own_fingerprint() -> None:
    seen = {}
    with pytest.MonkeyPatch.context() as mp:
        for case, patch in FINGERPRINT_CASES:
            patch(mp)
            seen[case] = fingerprint()
            mp.undo()
    assert len(set(seen.values())) == len(seen)


@pytest.mark.parametrize("name", ["RECORD_TRAILER", "FRAME_CRC"])
def test_fingerprint_changes_with_the_crc_fields(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    changed = Struct("crc" / FormatField("<", "H")) if name == "RECORD_TRAILER" else FormatField("<", "H")
    monkeypatch.setattr(formats, name, changed)
    assert fingerprint() != SCHEMA_FINGERPRINT


def test_fingerprint_is_the_same_in_every_process() -> None:
    code = "from protocol.messages import SCHEMA_FINGERPRINT; print(SCHEMA_FINGERPRINT)"
    values = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("1", "2")
    }
    assert values == {str(SCHEMA_FINGERPRINT)}

