"""Frames: building them and finding them again in a byte stream.

On the wire every frame is COBS-stuffed, with a 0x00 delimiter before and after::

    ... 00 | COBS( header | payload | crc32c ) | 00 | COBS( ... ) | 00 ...

    header = version u8 | msg_type u8 | seq u16 | length u16   (little-endian)
    crc32c covers header and payload

COBS guarantees that no 0x00 appears inside a stuffed frame, so a receiver
that lost its place (noise, dropped or inserted bytes, a peer that started
mid-frame) is back in step at the next 0x00 and loses at most the frame that
was hit (a delimiter before *and* after each frame means that even a hit on
a delimiter costs only one frame).  Nothing depends on silence between bytes.

:class:`FrameDecoder` is sans-I/O: feed it bytes in any chunking, get back
frames and errors.  It never holds more than one maximum-size stuffed frame
(:data:`MAX_STUFFED`) of unconsumed input, so an endless stream without a
delimiter, or a hostile length field, cannot make it allocate beyond the cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from cobs import cobs

from . import formats
from .crc import RESIDUE, crc32c
from .errors import (
    BadStuffing,
    FrameCrcMismatch,
    FrameError,
    FrameTooLong,
    FrameTruncated,
    LengthMismatch,
    LocalProtocolError,
    UnsupportedVersion,
)
from .fastpath import flatten

DELIMITER = b"\x00"
HEADER_SIZE = formats.FRAME_HEADER.sizeof()
CRC_SIZE = formats.FRAME_CRC.sizeof()
MIN_FRAME = HEADER_SIZE + CRC_SIZE
MAX_STUFFED = formats.MAX_FRAME + (formats.MAX_FRAME + 253) // 254
"""Longest legal run of bytes between two delimiters."""

_HEADER = flatten(formats.FRAME_HEADER).struct


@dataclass(frozen=True, slots=True)
class Frame:
    """One verified frame."""

    msg_type: int
    seq: int
    payload: bytes
    version: int = formats.PROTOCOL_VERSION


def encode_frame(msg_type: int, seq: int, payload: bytes) -> bytes:
    """Stuffed frame bytes, delimiter included, ready for the line."""
    if len(payload) > formats.MAX_PAYLOAD:
        raise LocalProtocolError(f"payload of {len(payload)} bytes exceeds {formats.MAX_PAYLOAD}")
    if not 0 <= msg_type <= 0xFF or not 0 <= seq <= 0xFFFF:
        raise LocalProtocolError(f"msg_type {msg_type} or seq {seq} out of range")
    body = _HEADER.pack(formats.PROTOCOL_VERSION, msg_type, seq, len(payload)) + payload
    body += crc32c(body).to_bytes(CRC_SIZE, "little")
    stuffed: bytes = cobs.encode(body)
    return DELIMITER + stuffed + DELIMITER


def decode_frame(stuffed: bytes) -> Frame:
    """Verify the bytes found between two delimiters; raise FrameError if bad."""
    if len(stuffed) > MAX_STUFFED:
        raise FrameTooLong(f"{len(stuffed)} bytes between delimiters (cap {MAX_STUFFED})")
    try:
        body = cobs.decode(stuffed)
    except cobs.DecodeError as exc:
        raise BadStuffing(f"invalid COBS: {exc}") from exc
    if len(body) < MIN_FRAME:
        raise FrameTruncated(f"{len(body)} bytes is shorter than a frame")
    if len(body) > formats.MAX_FRAME:
        raise FrameTooLong(f"{len(body)}-byte frame exceeds {formats.MAX_FRAME}")
    if crc32c(body) != RESIDUE:
        raise FrameCrcMismatch("frame CRC-32C mismatch")
    version, msg_type, seq, length = _HEADER.unpack_from(body)
    if version != formats.PROTOCOL_VERSION:
        raise UnsupportedVersion(
            f"protocol version {version}, this side speaks {formats.PROTOCOL_VERSION}",
            version=version, msg_type=msg_type, seq=seq,
        )
    if length != len(body) - MIN_FRAME:
        raise LengthMismatch(f"header says {length} payload bytes, frame has {len(body) - MIN_FRAME}")
    return Frame(msg_type, seq, body[HEADER_SIZE:-CRC_SIZE], version)


class FrameDecoder:
    """Find and verify frames in a byte stream fed in any chunking.

    ``feed(data)`` returns, in stream order, a :class:`Frame` for each good
    frame and a :class:`~protocol.errors.FrameError` *value* for each bad one
    (they are reported, not raised: noise is normal on a serial line).  Empty
    runs between consecutive delimiters are ignored.  ``feed(b"")`` is a no-op.
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._discarding = False
        self.bytes_in = 0
        self.frames = 0
        self.errors = 0

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for a delimiter (never above MAX_STUFFED)."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        self.bytes_in += len(data)
        out: list[Frame | FrameError] = []
        if DELIMITER not in data:
            self._extend(data, out)
            return out
        chunks = data.split(DELIMITER)
        tail = chunks.pop()
        for i, chunk in enumerate(chunks):
            if i == 0 and (self._pending or self._discarding):
                discarding = self._discarding
                self._extend(chunk, out)
                run = bytes(self._pending)
                self._pending.clear()
                self._discarding = False
                if discarding:
                    continue
            else:
                run = chunk
                if len(run) > MAX_STUFFED:
                    self._report(
                        out, FrameTooLong(f"{len(run)} bytes between delimiters (cap {MAX_STUFFED})")
                    )
                    continue
            if run:
                try:
                    out.append(decode_frame(run))
                    self.frames += 1
                except FrameError as exc:
                    self._report(out, exc)
        self._extend(tail, out)
        return out

    def _extend(self, data: bytes, out: list[Frame | FrameError]) -> None:
        if self._discarding or not data:
            return
        if len(self._pending) + len(data) > MAX_STUFFED:
            self._pending.clear()
            self._discarding = True
            self._report(out, FrameTooLong(f"over {MAX_STUFFED} bytes without a delimiter"))
            return
        self._pending += data

    def _report(self, out: list[Frame | FrameError], error: FrameError) -> None:
        self.errors += 1
        out.append(error)
