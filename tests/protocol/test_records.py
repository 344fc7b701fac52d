"""Log records: round trips through both decoders, field bounds, unknown records, scanning a run.

The hypothesis strategies here are derived from protocol.formats (a field added there is generated
without touching this file; a field of a kind they do not know fails loudly); test_fastpath.py,
test_messages.py and test_fuzz.py reuse them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from construct import Array, Bytes, Construct, FormatField, Struct
from hypothesis import given
from hypothesis import strategies as st

from protocol import formats
from protocol.enums import RecordType
from protocol.errors import LocalProtocolError, RecordCrcMismatch, RecordError, RecordTruncated
from protocol.records import (
    SNAPSHOT_FIELDS,
    EventRecord,
    FaultRecord,
    Record,
    RunupRecord,
    SampleRecord,
    Snapshot,
    UnknownRecord,
    decode_record,
    decode_rows,
    encode_record,
    parse_record,
    record_from_row,
    row_bytes,
    scan_records,
)

HEADER_SIZE = formats.RECORD_HEADER.sizeof()
EXHAUST_FIELD = formats.SAMPLE_BODY.exhaust_c_x10.subcon
OVERHEAD = formats.RECORD_OVERHEAD


def int_bounds(field: FormatField) -> tuple[int, int]:
    """Lowest and highest value of a construct integer field."""
    bits = 8 * field.sizeof()
    if field.fmtstr[1].islower():
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def field_values(con: Construct) -> st.SearchStrategy[Any]:
    """Every value a fixed-size construct field can hold."""
    if isinstance(con, FormatField):
        return st.integers(*int_bounds(con))
    if isinstance(con, Bytes) and isinstance(con.length, int):
        return st.binary(min_size=con.length, max_size=con.length)
    if isinstance(con, Array) and isinstance(con.count, int):
        return st.tuples(*[field_values(con.subcon)] * con.count)
    raise TypeError(f"no strategy for {con!r}: teach field_values about it")


def snapshots() -> st.SearchStrategy[Snapshot]:
    return st.builds(Snapshot, **{sub.name: field_values(sub.subcon) for sub in formats.SNAPSHOT.subcons})


def _header(name: str) -> st.SearchStrategy[int]:
    return field_values(next(s.subcon for s in formats.RECORD_HEADER.subcons if s.name == name))


def _body(body: Struct) -> dict[str, st.SearchStrategy[Any]]:
    return {sub.name: snapshots() if sub.subcon is formats.SNAPSHOT else field_values(sub.subcon)
            for sub in body.subcons}


RECORD_STRATEGIES: dict[int, st.SearchStrategy[Record]] = {
    RecordType.SAMPLE: st.builds(SampleRecord, seq=_header("seq"), timestamp=_header("timestamp"),
                                 snapshot=snapshots(),
                                 exhaust_c_x10=st.none() | field_values(EXHAUST_FIELD)),
    RecordType.FAULT: st.builds(FaultRecord, seq=_header("seq"), timestamp=_header("timestamp"),
                                **_body(formats.FAULT_BODY)),
    RecordType.EVENT: st.builds(EventRecord, seq=_header("seq"), timestamp=_header("timestamp"),
                                **_body(formats.EVENT_BODY)),
    RecordType.RUNUP: st.builds(RunupRecord, seq=_header("seq"), timestamp=_header("timestamp"),
                                **_body(formats.RUNUP_BODY)),
}
"""A strategy per known record type; a SampleRecord without exhaust is earlier firmware's."""

unknown_records = st.builds(
    UnknownRecord, seq=_header("seq"), timestamp=_header("timestamp"),
    type=st.integers(0, 255).filter(lambda t: t not in formats.RECORD_BODIES),
    body=st.binary(max_size=formats.MAX_RECORD_BODY),
)
odd_length_records = st.builds(
    UnknownRecord, seq=_header("seq"), timestamp=_header("timestamp"),
    type=st.sampled_from(sorted(formats.RECORD_BODIES)),
    body=st.binary(max_size=formats.MAX_RECORD_BODY),
).filter(lambda r: len(r.body) != formats.RECORD_BODIES[r.type].sizeof())
"""A known type with a body of another length: a newer firmware's record, kept raw."""


def records() -> st.SearchStrategy[Record]:
    """Every kind of record: the known types, unknown types and known types of unknown length."""
    return st.one_of(*RECORD_STRATEGIES.values(), unknown_records, odd_length_records)


def test_every_record_type_has_a_strategy() -> None:
    assert set(RECORD_STRATEGIES) == set(formats.RECORD_BODIES) == set(RecordType)


def test_dataclasses_list_the_fields_of_their_formats_in_wire_order() -> None:
    """The fast path packs dataclass fields positionally: the orders must match."""
    assert tuple(sub.name for sub in formats.SNAPSHOT.subcons) == SNAPSHOT_FIELDS
    for cls, body in ((FaultRecord, formats.FAULT_BODY), (EventRecord, formats.EVENT_BODY)):
        assert [f.name for f in dataclasses.fields(cls)][2:] == [s.name for s in body.subcons]


@given(records())
def test_round_trip_through_the_fast_path(record: Record) -> None:
    assert decode_record(encode_record(record)) == record


@given(records())
def test_round_trip_through_construct(record: Record) -> None:
    assert parse_record(encode_record(record)) == record


@pytest.mark.parametrize("rtype", sorted(formats.RECORD_BODIES))
def test_encoded_size_and_length_byte_follow_the_format(rtype: int) -> None:
    raw = encode_record(BASE[rtype])
    body_size = formats.RECORD_BODIES[rtype].sizeof()
    assert len(raw) == OVERHEAD + body_size
    assert raw[8] == rtype and raw[9] == body_size


def test_record_sizes_are_those_of_the_spec() -> None:
    assert [len(encode_record(BASE[t])) for t in RecordType] == [70, 74, 26, 141]


def test_a_sample_of_earlier_firmware_is_a_sample_without_exhaust() -> None:
    """Firmware before the exhaust channel wrote the snapshot alone (54 bytes): still a sample."""
    earlier = SampleRecord(7, 9, ZERO_SNAPSHOT)
    raw = encode_record(earlier)
    assert (len(raw), raw[9]) == (68, 54)
    assert decode_record(raw) == parse_record(raw) == earlier
    assert decode_record(raw).exhaust_c is None  # type: ignore[union-attr]
    rows, errors = decode_rows(raw * 3)  # a page of them, checked in one pass
    assert errors == [] and [row_bytes(row) for row in rows] == [raw] * 3
    assert [record_from_row(row) for row in rows] == [earlier] * 3


# --- every field at its bounds --------------------------------------------------------------------

ZERO_SNAPSHOT = Snapshot(**dict.fromkeys(SNAPSHOT_FIELDS, 0))
BASE: dict[int, Record] = {
    RecordType.SAMPLE: SampleRecord(0, 0, ZERO_SNAPSHOT, 0),
    RecordType.FAULT: FaultRecord(0, 0, 0, 0, 0, 0, ZERO_SNAPSHOT),
    RecordType.EVENT: EventRecord(0, 0, 0),
    RecordType.RUNUP: RunupRecord(0, 0, 0, 0, 0, 0, (0,) * formats.RUNUP_POINTS),
}


def _paths(fmt: Struct, prefix: str) -> list[tuple[str, FormatField]]:
    out: list[tuple[str, FormatField]] = []
    for sub in fmt.subcons:
        if isinstance(sub.subcon, Struct):
            out += _paths(sub.subcon, f"{prefix}{sub.name}.")
        elif isinstance(sub.subcon, Array):
            out.append((f"{prefix}{sub.name}[]", sub.subcon.subcon))  # every element at once
        else:
            out.append((prefix + sub.name, sub.subcon))
    return out


def record_fields() -> list[tuple[int, str, FormatField]]:
    """(record type, dotted field path, construct field) for every settable field of every record."""
    header = [(s.name, s.subcon) for s in formats.RECORD_HEADER.subcons if s.name in ("seq", "timestamp")]
    out = []
    for rtype, body in sorted(formats.RECORD_BODIES.items()):
        if rtype == RecordType.SAMPLE:
            body_paths = _paths(formats.SNAPSHOT, "snapshot.") + [("exhaust_c_x10", EXHAUST_FIELD)]
        else:
            body_paths = _paths(body, "")
        out += [(rtype, path, field) for path, field in header + body_paths]
    return out


def with_field(obj: Any, path: str, value: Any) -> Any:
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        name = head.removesuffix("[]")
        return dataclasses.replace(obj, **{name: (value,) * len(getattr(obj, name))})
    return dataclasses.replace(obj, **{head: with_field(getattr(obj, head), rest, value) if rest else value})


FIELDS = record_fields()
FIELD_IDS = [f"{RecordType(t).name}.{p}" for t, p, _ in FIELDS]


@pytest.mark.parametrize(("rtype", "path", "field"), FIELDS, ids=FIELD_IDS)
def test_every_field_round_trips_at_its_bounds(rtype: int, path: str, field: FormatField) -> None:
    for value in int_bounds(field):
        record = with_field(BASE[rtype], path, value)
        raw = encode_record(record)
        assert decode_record(raw) == parse_record(raw) == record


@pytest.mark.parametrize(("rtype", "path", "field"), FIELDS, ids=FIELD_IDS)
def test_a_value_outside_its_field_is_refused(rtype: int, path: str, field: FormatField) -> None:
    low, high = int_bounds(field)
    for value in (low - 1, high + 1, "7"):
        with pytest.raises(LocalProtocolError):
            encode_record(with_field(BASE[rtype], path, value))


# --- unknown records ----------------------------------------------------------------------------


def test_unknown_record_body_is_capped_at_255_bytes() -> None:
    assert decode_record(encode_record(UnknownRecord(1, 2, 0x7F, bytes(255)))).body == bytes(255)
    with pytest.raises(LocalProtocolError):
        encode_record(UnknownRecord(1, 2, 0x7F, bytes(256)))


@pytest.mark.parametrize("record", [
    UnknownRecord(2**32, 0, 0x7F, b""), UnknownRecord(-1, 0, 0x7F, b""),
    UnknownRecord(0, 2**32, 0x7F, b""), UnknownRecord(0, 0, 256, b""),
], ids=["seq", "negative_seq", "timestamp", "type"])
def test_unknown_record_out_of_range_header_is_refused(record: UnknownRecord) -> None:
    with pytest.raises(LocalProtocolError):
        encode_record(record)


@given(odd_length_records)
def test_a_known_type_of_unexpected_length_is_kept_raw_by_both_decoders(record: UnknownRecord) -> None:
    raw = encode_record(record)
    assert decode_record(raw) == parse_record(raw) == record
    assert encode_record(decode_record(raw)) == raw


# --- damaged records ---------------------------------------------------------------------------


@given(records(), st.data())
def test_up_to_five_flipped_bits_are_always_detected(record: Record, data: st.DataObject) -> None:
    """CRC-32C has Hamming distance 6 up to 655 bytes; a record is at most 269."""
    raw = bytearray(encode_record(record))
    positions = data.draw(st.sets(st.integers(0, 8 * len(raw) - 1), min_size=1, max_size=5))
    for bit in positions:
        raw[bit // 8] ^= 1 << (bit % 8)
    for decode in (decode_record, parse_record):
        with pytest.raises(RecordError):
            decode(bytes(raw))


@pytest.mark.parametrize("decode", [decode_record, parse_record])
def test_damage_is_reported_by_kind(decode: Any) -> None:
    raw = encode_record(BASE[RecordType.EVENT])
    with pytest.raises(RecordTruncated):
        decode(raw[: OVERHEAD - 1])
    with pytest.raises(RecordTruncated):
        decode(raw[:-1])
    with pytest.raises(RecordTruncated):
        decode(raw + b"\x00")
    with pytest.raises(RecordCrcMismatch):
        decode(raw[:-1] + bytes([raw[-1] ^ 0x80]))


# --- scanning a run of records ---------------------------------------------------------------------


@given(st.lists(records(), max_size=12))
def test_scan_returns_every_record_of_a_clean_run_in_order(run: list[Record]) -> None:
    raws = [encode_record(r) for r in run]
    good, errors = scan_records(b"".join(raws))
    assert errors == []
    assert [g[3] for g in good] == raws
    assert [g[:3] for g in good] == [
        (r.seq, r.timestamp, r.type if isinstance(r, UnknownRecord) else r.TYPE) for r in run
    ]
    assert [decode_record(g[3]) for g in good] == run


@given(st.lists(records(), min_size=1, max_size=8), st.data())
def test_scan_reports_a_damaged_body_and_keeps_the_others(run: list[Record], data: st.DataObject) -> None:
    raws = [encode_record(r) for r in run]
    hit = data.draw(st.integers(0, len(raws) - 1))
    damaged = bytearray(raws[hit])
    byte = data.draw(st.sampled_from([i for i in range(len(damaged)) if i != 9]))  # not the length byte
    damaged[byte] ^= 1 << data.draw(st.integers(0, 7))
    good, errors = scan_records(b"".join(raws[:hit] + [bytes(damaged)] + raws[hit + 1:]))
    assert [type(e) for e in errors] == [RecordCrcMismatch]
    assert [g[3] for g in good] == raws[:hit] + raws[hit + 1:]


@given(st.lists(records(), min_size=1, max_size=6), st.data())
def test_scan_stops_at_a_cut_record(run: list[Record], data: st.DataObject) -> None:
    raws = [encode_record(r) for r in run]
    cut = data.draw(st.integers(1, len(raws[-1]) - 1))
    good, errors = scan_records(b"".join(raws)[:-cut])
    assert [g[3] for g in good] == raws[:-1]
    assert [type(e) for e in errors] == [RecordTruncated]


def test_scan_of_nothing_is_nothing() -> None:
    assert scan_records(b"") == ([], [])


# --- the snapshot in engineering units ---------------------------------------------------------------


def test_snapshot_engineering_units_follow_the_field_names() -> None:
    snapshot = dataclasses.replace(
        ZERO_SNAPSHOT, tet1_c_x10=6505, tet2_c_x10=6489, ambient_pressure_kpa_x100=10132,
        grid_freq_hz_x1000=60_000, speed_rpm=96_000, operating_s=7_200,
    )
    values = snapshot.engineering()
    assert values["tet1_c"] == 650.5
    assert values["ambient_pressure_kpa"] == 101.32
    assert values["grid_freq_hz"] == 60.0
    assert values["speed_rpm"] == 96_000
    assert snapshot.tet_avg_c == 649.7
    assert snapshot.operating_hours == 2.0
