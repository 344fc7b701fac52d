"""A record's fields read through protocol.records (the only place that knows where they sit),
the RECORDS prefix and the RANGE_END digest as both sides compute them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from protocol import formats
from protocol.crc import crc32c
from protocol.messages import (
    RECORDS_PREFIX,
    RECORDS_ROOM,
    RangeDigest,
    Records,
    encode_payload,
    records_prefix,
)
from protocol.records import (
    Record,
    decode_rows,
    encode_record,
    parse_record,
    record_crc,
    record_header,
    record_seq,
    record_timestamp,
)
from tests.protocol.test_records import records


@given(records(), st.binary(max_size=20))
def test_the_header_fields_are_the_records(record: Record, before: bytes) -> None:
    raw = encode_record(record)
    parsed = parse_record(raw)
    assert record_header(before + raw, len(before)) == (parsed.seq, parsed.timestamp, raw[8], len(raw) - 14)
    assert (record_seq(raw), record_timestamp(raw)) == (record.seq, record.timestamp)
    assert record_crc(raw) == crc32c(raw[:-4])


def test_a_records_payload_holds_1012_record_bytes_after_its_request_seq() -> None:
    assert RECORDS_PREFIX == formats.RECORDS.subcons[0].sizeof() == 2
    assert RECORDS_ROOM == formats.MAX_PAYLOAD - 2 == 1012


@given(st.integers(0, 0xFFFF), st.lists(records(), max_size=8))
def test_the_devices_prefix_is_what_a_records_message_builds(request_seq: int, run: list[Record]) -> None:
    raws = b"".join(map(encode_record, run))[:RECORDS_ROOM]
    assert records_prefix(request_seq) + raws == encode_payload(Records(request_seq, raws))


@given(st.lists(records(), max_size=30), st.integers(0, 30))
def test_both_sides_compute_the_same_digest(run: list[Record], split: int) -> None:
    """The device adds record bytes, the reader decoded rows: the same RANGE_END digest."""
    raws = [encode_record(record) for record in run]
    device, reader = RangeDigest(), RangeDigest()
    device.update_many(raws)
    rows, errors = decode_rows(b"".join(raws))
    assert not errors
    reader.update_rows(rows[:split])
    reader.update_rows(rows[split:])
    assert (reader.value, reader.count) == (device.value, device.count) == (
        crc32c(b"".join(raw[-4:] for raw in raws)) if raws else 0, len(raws))
