"""The fast path (struct layouts derived from the formats) against the construct oracle.

decode_record / scan_records / encode_record must agree with parse_record and with what the
formats build, on every record hypothesis generates and on arbitrary bytes (same verdict: the same
record, or the same kind of error).
"""

from __future__ import annotations

from typing import Any

import pytest
from construct import Array, BitsInteger, Bytes, FormatField, GreedyBytes, Int8ul, Int16ub, Struct
from hypothesis import given
from hypothesis import strategies as st

from protocol import formats
from protocol.crc import RAW_KERNEL, crc32c
from protocol.enums import RecordType
from protocol.errors import LocalProtocolError, ProtocolError
from protocol.fastpath import flatten
from protocol.records import (
    LAYOUTS,
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    Record,
    RunupRecord,
    SampleRecord,
    UnknownRecord,
    decode_batch,
    decode_record,
    decode_rows,
    encode_record,
    parse_record,
    row_bytes,
    run_register,
    scan_records,
)
from tests.protocol.test_records import field_values, records


def oracle_build(record: Record) -> bytes:
    """A record's bytes built by construct from the formats alone."""
    if isinstance(record, UnknownRecord):
        rtype, body = record.type, record.body
    elif isinstance(record, SampleRecord) and record.exhaust_c_x10 is None:  # earlier firmware's
        (earlier,) = formats.EARLIER_RECORD_BODIES[RecordType.SAMPLE]
        rtype, body = RecordType.SAMPLE, earlier.build(_snapshot(record.snapshot))
    elif isinstance(record, SampleRecord):
        rtype, body = RecordType.SAMPLE, formats.SAMPLE_BODY.build(
            {**_snapshot(record.snapshot), "exhaust_c_x10": record.exhaust_c_x10})
    elif isinstance(record, FaultRecord):
        rtype, body = RecordType.FAULT, formats.FAULT_BODY.build(
            {"code": record.code, "severity": record.severity, "subsystem": record.subsystem,
             "flags": record.flags, "freeze": _snapshot(record.freeze)})
    elif isinstance(record, RunupRecord):
        rtype = RecordType.RUNUP
        body = formats.RUNUP_BODY.build({s.name: getattr(record, s.name) for s in formats.RUNUP_BODY.subcons})
    else:
        assert isinstance(record, EventRecord)
        rtype = RecordType.EVENT
        body = formats.EVENT_BODY.build({s.name: getattr(record, s.name) for s in formats.EVENT_BODY.subcons})
    head = formats.RECORD_HEADER.build(
        {"seq": record.seq, "timestamp": record.timestamp, "type": rtype, "length": len(body)})
    return head + body + formats.RECORD_TRAILER.build({"crc": crc32c(head + body)})


def _snapshot(snapshot: Any) -> dict[str, int]:
    return {name: getattr(snapshot, name) for name in SNAPSHOT_FIELDS}


def verdict(decode: Any, raw: bytes) -> Any:
    """The record a decoder returns, or the class of the error it raises."""
    try:
        return decode(raw)
    except ProtocolError as exc:
        return type(exc)


@given(records())
def test_encode_record_builds_what_construct_builds(record: Record) -> None:
    assert encode_record(record) == oracle_build(record)


@given(records())
def test_fast_and_construct_decoders_agree_on_every_record(record: Record) -> None:
    raw = oracle_build(record)
    assert decode_record(raw) == parse_record(raw) == record


@given(st.binary(max_size=300))
def test_fast_and_construct_decoders_agree_on_random_bytes(raw: bytes) -> None:
    assert verdict(decode_record, raw) == verdict(parse_record, raw)


@st.composite
def plausible_records(draw: st.DrawFn) -> bytes:
    """Random bytes shaped like a record: a length byte that fits, usually a good CRC."""
    rtype = draw(st.sampled_from([*formats.RECORD_BODIES, 0, 0x7F, 0xFF]))
    sizes = [formats.RECORD_BODIES[rtype].sizeof()] if rtype in formats.RECORD_BODIES else []
    length = draw(st.one_of(st.sampled_from(sizes), st.integers(0, 255)) if sizes else st.integers(0, 255))
    head = draw(st.binary(min_size=8, max_size=8)) + bytes([rtype, length])
    data = head + draw(st.binary(min_size=length, max_size=length))
    crc = crc32c(data) if draw(st.booleans()) or draw(st.booleans()) else draw(st.integers(0, 2**32 - 1))
    return data + crc.to_bytes(4, "little")


@given(plausible_records())
def test_fast_and_construct_decoders_agree_on_plausible_bytes(raw: bytes) -> None:
    fast = verdict(decode_record, raw)
    assert fast == verdict(parse_record, raw)
    if not isinstance(fast, type):
        assert encode_record(fast) == raw


@given(st.lists(plausible_records(), max_size=8))
def test_scan_agrees_with_decoding_record_by_record(raws: list[bytes]) -> None:
    good, errors = scan_records(b"".join(raws))
    verdicts = [verdict(decode_record, raw) for raw in raws]
    accepted = [raw for raw, v in zip(raws, verdicts, strict=True) if not isinstance(v, type)]
    assert [g[3] for g in good] == accepted
    assert [type(e) for e in errors] == [v for v in verdicts if isinstance(v, type)]


@st.composite
def uniform_runs(draw: st.DrawFn) -> tuple[list[bytes], list[bytes]]:
    """A run of records of one known type (the bulk path's case) and the same run with 0-3
    records damaged: a flipped bit, a replaced byte or a CRC of other bytes."""
    rtype = draw(st.sampled_from(sorted(formats.RECORD_BODIES)))
    count = draw(st.integers(1, 40))
    seqs = draw(st.lists(st.integers(0, 2**32 - 1), min_size=count, max_size=count))
    body = formats.RECORD_BODIES[rtype].sizeof()
    raws = []
    for seq in seqs:
        data = seq.to_bytes(4, "little") + draw(st.binary(min_size=4, max_size=4)) + bytes([rtype, body])
        data += draw(st.binary(min_size=body, max_size=body))
        raws.append(data + crc32c(data).to_bytes(4, "little"))
    damaged = list(raws)
    for index in draw(st.lists(st.integers(0, count - 1), max_size=3)):
        raw = bytearray(damaged[index])
        where = draw(st.integers(10, len(raw) - 1))
        how = draw(st.sampled_from(["bit", "byte", "crc"]))
        if how == "bit":
            raw[where] ^= 1 << draw(st.integers(0, 7))
        elif how == "byte":
            raw[where] = draw(st.integers(0, 255))
        else:
            raw[-4:] = crc32c(bytes(raw[:-4]) + b"x").to_bytes(4, "little")
        damaged[index] = bytes(raw)
    return raws, damaged


@given(uniform_runs())
def test_a_run_checked_in_one_pass_agrees_with_checking_each_record(
    runs: tuple[list[bytes], list[bytes]],
) -> None:
    """The bulk path verifies a run of one layout with one CRC pass (run_register); whatever was
    damaged, it must accept and reject exactly the records that checking each would."""
    for raws in runs:
        good, errors = decode_batch(b"".join(raws))
        verdicts = [verdict(decode_record, raw) for raw in raws]
        intact = [raw for raw, v in zip(raws, verdicts, strict=True) if not isinstance(v, type)]
        assert [raw for raw, _ in good] == intact
        assert [type(e) for e in errors] == [v for v in verdicts if isinstance(v, type)]
        rows, row_errors = decode_rows(b"".join(raws))
        assert [row_bytes(row) for row in rows] == [raw for raw, _ in good]
        assert len(row_errors) == len(errors)


@given(st.integers(1, 64), st.integers(9, 300), st.randoms(use_true_random=False))
def test_run_register_is_the_crc_register_after_intact_records(count: int, size: int, rng: Any) -> None:
    assert RAW_KERNEL is not None
    kernel, seed, table, _ = RAW_KERNEL
    raws = []
    for _ in range(count):
        data = rng.randbytes(size - 4)
        raws.append(data + crc32c(data).to_bytes(4, "little"))
    assert kernel(b"".join(raws), seed, table) == run_register(count, size)


# --- the derived layouts ----------------------------------------------------------------------------


def leaf_names(fmt: Struct, prefix: str = "") -> list[str]:
    names = []
    for sub in fmt.subcons:
        if isinstance(sub.subcon, Struct):
            names += leaf_names(sub.subcon, f"{prefix}{sub.name}.")
        elif isinstance(sub.subcon, Array):
            names += [f"{prefix}{sub.name}.{i}" for i in range(sub.subcon.count)]
        else:
            names.append(prefix + sub.name)
    return names


@pytest.mark.parametrize("rtype", sorted(formats.RECORD_BODIES))
def test_record_layouts_are_header_body_crc_in_wire_order(rtype: int) -> None:
    layout = LAYOUTS[rtype]
    body = formats.RECORD_BODIES[rtype]
    assert layout.names == tuple(
        leaf_names(formats.RECORD_HEADER) + leaf_names(body) + leaf_names(formats.RECORD_TRAILER))
    assert layout.size == formats.RECORD_OVERHEAD + body.sizeof()


def is_fixed(fmt: Struct) -> bool:
    """Made only of integers, fixed byte strings and nested Structs of those."""
    return all(
        isinstance(s.subcon, FormatField)
        or (isinstance(s.subcon, Bytes) and isinstance(s.subcon.length, int))
        or (isinstance(s.subcon, Struct) and is_fixed(s.subcon))
        for s in fmt.subcons
    )


FIXED_PAYLOADS = [t for t, fmt in sorted(formats.MESSAGE_PAYLOADS.items()) if is_fixed(fmt)]


@pytest.mark.parametrize("msg_type", FIXED_PAYLOADS)
def test_fixed_payloads_flatten_to_their_construct_size(msg_type: int) -> None:
    fmt = formats.MESSAGE_PAYLOADS[msg_type]
    layout = flatten(fmt)
    assert layout.size == fmt.sizeof()
    assert layout.names == tuple(leaf_names(fmt))


@given(st.data())
def test_a_flattened_layout_packs_what_construct_builds(data: st.DataObject) -> None:
    fmt = formats.FAULT_BODY
    values = {s.name: data.draw(field_values(s.subcon)) for s in fmt.subcons if s.name != "freeze"}
    freeze = {s.name: data.draw(field_values(s.subcon)) for s in formats.SNAPSHOT.subcons}
    packed = flatten(fmt).struct.pack(*values.values(), *freeze.values())
    assert packed == fmt.build({**values, "freeze": freeze})


@pytest.mark.parametrize("fmt", [
    Struct("a" / Int16ub),
    Struct("a" / GreedyBytes),
    Struct("a" / BitsInteger(8)),
    Struct(Int8ul),
], ids=["big-endian", "variable-size", "bit-field", "unnamed"])
def test_formats_without_a_fixed_little_endian_layout_are_refused(fmt: Struct) -> None:
    with pytest.raises(LocalProtocolError):
        flatten(fmt)
