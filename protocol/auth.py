"""Access control on the wire: the tag of a privileged request, and how its outcome is logged.

Both ends share this module; ``docs/protocol.md`` section 7 specifies it for
other implementers, with test vectors in ``tests/vectors/auth.json``.

A request that changes or destroys state (CLOCK_SET, LOG_CLEAR) carries an
access ``level`` and a 16-byte ``tag``.  The host first sends AUTH_CHALLENGE
for that level and receives a 16-byte ``nonce``; then::

    tag = HMAC-SHA256(key, nonce || msg_type || arguments)[:16]

    nonce       the 16 bytes of the AUTH_CHALLENGE_RSP
    msg_type    one byte: 0x04 CLOCK_SET, 0x05 LOG_CLEAR
    arguments   the request's payload bytes before its tag, as on the wire:
                CLOCK_SET  new_time (u32 LE) | level (u8)    5 bytes
                LOG_CLEAR  level (u8)                         1 byte
    key         the unit's 32-byte secret for ``level``

Every privileged attempt is logged as an EVENT record of kind AUTH:
``level`` is the level the request named, ``value_a`` the
:class:`AuthResult`, and ``value_b`` packs the rest (:class:`AuthOutcome`).

Pure: no I/O, no clock, no randomness (nonces are the device's business).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TypeVar

from . import formats
from .enums import AccessLevel, MsgType
from .errors import LocalProtocolError
from .messages import ClockSet, LogClear, encode_payload

KEY_LEN = 32
"""Bytes in a unit's secret for one access level."""
TAG_LEN = formats.AUTH_TAG_LEN
NONCE_LEN = formats.NONCE_LEN

AuthenticatedRequest = ClockSet | LogClear
AuthRequestT = TypeVar("AuthRequestT", ClockSet, LogClear)
"""One of the authenticated requests, kept as its own type through :func:`sign`."""
"""The requests that carry a tag."""

REQUIRED_LEVEL: dict[MsgType, AccessLevel] = {
    MsgType.CLOCK_SET: AccessLevel.MAINTENANCE,
    MsgType.LOG_CLEAR: AccessLevel.MAINTENANCE,
}
"""The lowest level at which the device carries out each privileged request;
any higher level, with its own key, is accepted too."""


def _tag_offset(msg_type: MsgType) -> int:
    """Where the ``tag`` field starts in the payload of *msg_type*, from its format."""
    offset = 0
    for field in formats.MESSAGE_PAYLOADS[msg_type].subcons:
        if field.name == "tag":
            return offset
        offset += field.sizeof()
    raise LookupError(f"{msg_type.name} has no tag field")


_TAG_OFFSETS = {msg_type: _tag_offset(msg_type) for msg_type in REQUIRED_LEVEL}


def signed_bytes(nonce: bytes, request: AuthenticatedRequest) -> bytes:
    """``nonce || msg_type || arguments``: the bytes the tag authenticates."""
    if len(nonce) != NONCE_LEN:
        raise LocalProtocolError(f"a nonce is {NONCE_LEN} bytes, not {len(nonce)}")
    msg_type = request.MSG_TYPE
    arguments = encode_payload(request)[: _TAG_OFFSETS[msg_type]]
    return nonce + bytes([msg_type]) + arguments


def compute_tag(key: bytes, nonce: bytes, request: AuthenticatedRequest) -> bytes:
    """The 16-byte tag of *request* answering *nonce*, under *key* (its own tag is ignored)."""
    if len(key) != KEY_LEN:
        raise LocalProtocolError(f"a key is {KEY_LEN} bytes, not {len(key)}")
    return hmac.new(key, signed_bytes(nonce, request), hashlib.sha256).digest()[:TAG_LEN]


def sign(request: AuthRequestT, key: bytes, nonce: bytes) -> AuthRequestT:
    """*request* with its tag set for *nonce* under *key*."""
    return replace(request, tag=compute_tag(key, nonce, request))


def tag_matches(request: AuthenticatedRequest, key: bytes, nonce: bytes) -> bool:
    """True when *request*'s tag is the one *key* gives for *nonce* (constant-time compare)."""
    return hmac.compare_digest(request.tag, compute_tag(key, nonce, request))


class AuthResult(IntEnum):
    """The outcome of one privileged attempt: ``value_a`` of its AUTH event."""

    ACCEPTED = 0
    NO_CHALLENGE = 1
    """No nonce pending on this line: none was asked for, or it was used already."""
    EXPIRED = 2
    """The nonce is 300 s old or more."""
    WRONG_LEVEL = 3
    """The level is not the challenge's, or below what the request needs."""
    BAD_TAG = 4
    """The tag is not the one the key gives."""
    LOCKED_OUT = 5
    """Refused unchecked: too many failed attempts."""


_U8 = 0xFF
_U16 = 0xFFFF


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """What an AUTH event records besides the level::

        value_a = result
        value_b = msg_type | failures << 8 | unlogged << 16

    ``failures``: failed attempts in a row after this one (0 after a success),
    saturating at 255.  ``unlogged``: attempts refused while locked out that got
    no AUTH event of their own since the previous one, saturating at 65535.
    """

    result: int
    """See :class:`AuthResult`; a value from a newer peer is kept as it is."""
    msg_type: int
    failures: int = 0
    unlogged: int = 0

    def event_values(self) -> tuple[int, int]:
        """``(value_a, value_b)`` of the AUTH event."""
        packed = (self.msg_type & _U8) | min(self.failures, _U8) << 8 | min(self.unlogged, _U16) << 16
        return self.result, packed

    @classmethod
    def from_event_values(cls, value_a: int, value_b: int) -> AuthOutcome:
        """The outcome an AUTH event's ``value_a`` and ``value_b`` record."""
        return cls(value_a, value_b & _U8, value_b >> 8 & _U8, value_b >> 16)
