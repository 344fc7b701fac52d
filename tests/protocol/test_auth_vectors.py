"""The access-control tag against the published vectors in tests/vectors/auth.json.

Each vector is checked three ways: the shared computation (protocol.auth), the
host's side (the key parsed from hex by host.auth, the request signed and
encoded as it goes on the wire), and the device's side (firmware_sim.auth
accepts the signed request against the vector's nonce and refuses it with any
bit of its tag or arguments changed).  The vector file is checked against
Python's hmac alone, and docs/protocol.md section 7 must show the same tags.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from firmware_sim.auth import AccessControl, Challenge, Refusal
from firmware_sim.keystore import UnitKeys
from host.auth import parse_key
from protocol.auth import AuthenticatedRequest, AuthResult, compute_tag, sign, signed_bytes
from protocol.enums import AccessLevel
from protocol.messages import ClockSet, LogClear, encode_payload

ROOT = Path(__file__).resolve().parents[2]
VECTORS: list[dict[str, Any]] = json.loads((ROOT / "tests" / "vectors" / "auth.json").read_text())["vectors"]
CLASSES: dict[str, type[ClockSet] | type[LogClear]] = {"ClockSet": ClockSet, "LogClear": LogClear}
IDS = [vector["name"] for vector in VECTORS]


def request_of(vector: dict[str, Any]) -> AuthenticatedRequest:
    return CLASSES[vector["class"]](**vector["request"])


def test_the_vectors_cover_both_requests_at_both_levels() -> None:
    assert {(v["class"], v["request"]["level"]) for v in VECTORS} == {
        (cls, level) for cls in CLASSES for level in (AccessLevel.MAINTENANCE, AccessLevel.FACTORY)
    }


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_the_vector_file_is_plain_hmac_sha256(vector: dict[str, Any]) -> None:
    key, signed = bytes.fromhex(vector["key_hex"]), bytes.fromhex(vector["signed_hex"])
    assert signed == bytes.fromhex(vector["nonce_hex"]) + bytes([vector["msg_type"]]) + bytes.fromhex(
        vector["arguments_hex"]
    )
    digest = hmac.new(key, signed, hashlib.sha256).hexdigest()
    assert digest == vector["hmac_sha256_hex"] and digest[:32] == vector["tag_hex"]
    assert vector["payload_hex"] == vector["arguments_hex"] + vector["tag_hex"]


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_protocol_and_host_compute_the_vector(vector: dict[str, Any]) -> None:
    key = parse_key(vector["key_hex"], source="vector")
    nonce = bytes.fromhex(vector["nonce_hex"])
    request = request_of(vector)
    assert vector["msg_type"] == request.MSG_TYPE
    assert signed_bytes(nonce, request).hex() == vector["signed_hex"]
    assert compute_tag(key, nonce, request).hex() == vector["tag_hex"]
    assert encode_payload(sign(request, key, nonce)).hex() == vector["payload_hex"]


def device_for(vector: dict[str, Any]) -> tuple[AccessControl, Challenge, list[AuthResult]]:
    key = bytes.fromhex(vector["key_hex"])
    level = AccessLevel(vector["request"]["level"])
    other = bytes(32)
    keys = UnitKeys(key, other, other) if level == AccessLevel.MAINTENANCE else UnitKeys(other, key, other)
    results: list[AuthResult] = []
    access = AccessControl(keys, clock=lambda: 0.0, audit=lambda _, outcome: results.append(
        AuthResult(outcome.result)), boot_salt=b"")
    return access, Challenge(level, bytes.fromhex(vector["nonce_hex"]), 0.0), results


@pytest.mark.parametrize("vector", VECTORS, ids=IDS)
def test_the_device_accepts_the_vector_and_nothing_else(vector: dict[str, Any]) -> None:
    access, challenge, results = device_for(vector)
    signed = replace(request_of(vector), tag=bytes.fromhex(vector["tag_hex"]))
    assert access.perform(challenge, signed, lambda: "done") == "done"
    forgeries = [replace(signed, tag=bytes([signed.tag[0] ^ 1]) + signed.tag[1:])]
    if isinstance(signed, ClockSet):
        forgeries.append(replace(signed, new_time=signed.new_time ^ 1))
    for forged in forgeries:
        access, challenge, results = device_for(vector)
        refusal = access.perform(challenge, forged, lambda: "done")
        assert isinstance(refusal, Refusal) and refusal.result is AuthResult.BAD_TAG
        assert results == [AuthResult.BAD_TAG]


def test_the_spec_shows_the_vector_tags() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = doc[doc.index("## 7. Access control"): doc.index("## 8.")]
    for vector in VECTORS:
        for field in ("key_hex", "nonce_hex", "signed_hex", "tag_hex"):
            assert vector[field] in section.replace(" ", ""), (vector["name"], field)
