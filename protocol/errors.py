"""Errors raised or reported by the protocol package.

Every error here derives from :class:`ProtocolError`, so a caller can catch the
whole package with one clause.  The tree separates *whose fault* it was::

    ProtocolError
    ├── RemoteProtocolError      the peer (or the line) sent bytes we cannot accept
    │   ├── FrameError           a frame failed to unstuff, verify or fit the cap
    │   │   ├── FrameTooLong
    │   │   ├── BadStuffing
    │   │   ├── FrameTruncated
    │   │   ├── FrameCrcMismatch
    │   │   ├── LengthMismatch
    │   │   └── UnsupportedVersion
    │   ├── RecordError          a log record failed to verify or parse
    │   │   ├── RecordTruncated
    │   │   └── RecordCrcMismatch
    │   ├── MalformedMessage     a verified frame whose payload does not parse
    │   └── ImageError           a flash image whose header is foreign, corrupt or of another version
    │       └── IdentityError    an image's identity sidecar that is foreign, of another version or schema
    ├── LocalProtocolError       our own caller asked for something impossible
    │                            (a payload over the cap, a value out of range)
    └── InventoryError           a fleet inventory (TOML or CSV) that cannot be read: the file's
                                 author's fault, named with its line number

Decoders *return* remote errors as values (a noisy line produces them all the
time and the caller decides what to count); builders *raise* local errors.
This module holds no logic beyond the classes themselves.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every error raised or reported by :mod:`protocol`."""


class RemoteProtocolError(ProtocolError):
    """The peer (or the line between us) sent bytes that cannot be accepted."""


class FrameError(RemoteProtocolError):
    """A frame could not be unstuffed, verified or bounded."""


class FrameTooLong(FrameError):
    """More bytes arrived without a delimiter than the largest legal frame."""


class BadStuffing(FrameError):
    """The bytes between two delimiters are not valid COBS."""


class FrameTruncated(FrameError):
    """The frame is shorter than a header and a CRC."""


class FrameCrcMismatch(FrameError):
    """The frame's CRC-32C does not match its contents."""


class LengthMismatch(FrameError):
    """The header's payload length disagrees with the bytes received."""


class UnsupportedVersion(FrameError):
    """The frame carries a protocol version this implementation does not speak.

    Its CRC verified, so ``version``, ``msg_type`` and ``seq`` (laid out alike in every
    version) are the sender's: a device answers it with ERROR UNSUPPORTED_VERSION.
    """

    def __init__(self, message: str, *, version: int = 0, msg_type: int = 0, seq: int = 0) -> None:
        super().__init__(message)
        self.version = version
        self.msg_type = msg_type
        self.seq = seq


class RecordError(RemoteProtocolError):
    """A log record could not be verified or parsed."""


class RecordTruncated(RecordError):
    """A record's declared length runs past the end of its container."""


class RecordCrcMismatch(RecordError):
    """A record's own CRC-32C does not match its bytes."""


class MalformedMessage(RemoteProtocolError):
    """A verified frame carries a payload that does not fit its message type."""


class ImageError(RemoteProtocolError):
    """A flash image's header is foreign, corrupt, of another version or of an impossible geometry."""


class IdentityError(ImageError):
    """An image's identity sidecar is not one, is of another version or schema, or names another image."""


class LocalProtocolError(ProtocolError):
    """The caller asked for something the protocol cannot express."""


class InventoryError(ProtocolError):
    """A fleet inventory that cannot be read: malformed, a duplicate URL, an unknown scheme, a bad baud.

    ``line`` is the 1-based line of the inventory text the fault is on (None when it is the file as a
    whole); the message starts with it, so one line tells a user where to look.
    """

    def __init__(self, reason: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line is not None else reason)
        self.reason = reason
        self.line = line
