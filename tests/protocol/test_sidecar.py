"""protocol.sidecar: the identity sidecar the emulator writes is the one the reader reads, and
both refuse the same things (docs/flash-image.md section 4)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import IdentityError, ImageError, LocalProtocolError, RemoteProtocolError
from protocol.messages import SCHEMA_FINGERPRINT
from protocol.sidecar import FIELD_SIZES, UnitIdentity, decode_identity, encode_identity

Simulated = dict[str, int] | None
PRINTABLE = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


def names(size: int) -> st.SearchStrategy[str]:
    return st.text(PRINTABLE, min_size=1, max_size=size)


identities = st.builds(UnitIdentity, names(FIELD_SIZES["serial"]), names(FIELD_SIZES["model"]),
                       names(FIELD_SIZES["firmware"]))


def test_the_names_hold_what_identify_carries() -> None:
    assert FIELD_SIZES == {"serial": 16, "model": 8, "firmware": 16}


@given(identities, st.text(PRINTABLE, min_size=1, max_size=40),
       st.none() | st.dictionaries(st.text(max_size=8), st.integers()))
def test_what_is_written_reads_back(identity: UnitIdentity, image: str, simulated: Simulated) -> None:
    text = encode_identity(identity, image, simulated)
    assert decode_identity(text, image) == identity
    assert json.loads(text).get("simulated") == simulated


@pytest.mark.parametrize("field", sorted(FIELD_SIZES))
@pytest.mark.parametrize("bad", ["", "é", "x" * 17])
def test_a_name_the_reader_would_refuse_is_not_written(field: str, bad: str) -> None:
    identity = replace(UnitIdentity("C60-000001", "C60", "turbosim-1.0"), **{field: bad})
    with pytest.raises(LocalProtocolError, match=field):
        encode_identity(identity, "C60-000001.img")
    text = json.dumps({**json.loads(encode_identity(UnitIdentity("C60-000001", "C60", "fw"), "u.img")),
                       field: bad})
    with pytest.raises(IdentityError, match=field):
        decode_identity(text, "u.img")


def test_a_refused_sidecar_is_the_images_fault() -> None:
    assert issubclass(IdentityError, ImageError) and issubclass(IdentityError, RemoteProtocolError)
    other_schema = encode_identity(UnitIdentity("C60-1", "C60", "fw", SCHEMA_FINGERPRINT ^ 1), "u.img")
    with pytest.raises(IdentityError, match="formats differ"):
        decode_identity(other_schema, "u.img")
    with pytest.raises(IdentityError, match="names unit"):
        decode_identity(encode_identity(UnitIdentity("C60-1", "C60", "fw"), "u.img"), "v.img")


def test_keys_a_reader_does_not_know_are_ignored() -> None:
    doc = json.loads(encode_identity(UnitIdentity("C60-1", "C60", "fw"), "u.img"))
    assert decode_identity(json.dumps({**doc, "paint": "red"}), "u.img") == UnitIdentity("C60-1", "C60", "fw")
