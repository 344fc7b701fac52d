"""The reader's end of the protocol, without I/O: requests out, responses in.

:class:`ClientSession` numbers the requests it builds (the frame ``seq``),
remembers which are still pending, and turns received bytes, in any chunking,
into the response messages that answer them::

    send(request) -> (seq, bytes)        receive_data(bytes) -> [response, ...]

    pending requests, in sending order, and what may answer each:

    IDENTIFY        IDENTIFY_RSP            } then done
    LIVE            LIVE_RSP                }
    CLOCK_GET/SET   CLOCK_RSP               }
    LOG_CLEAR       LOG_CLEAR_RSP           }
    AUTH_CHALLENGE  AUTH_CHALLENGE_RSP      }
    READ_RANGE/SET  RECORDS* ... RANGE_END  } (RECORDS keeps it pending)
    ABORT           ABORT_RSP               } also ends every request sent before it
    any request     ERROR                   }

Everything else is dropped and counted, never raised: frames that fail
verification (``frame_errors``), verified frames of a type this version does
not know (``unknown_messages``), payloads that do not parse (``malformed``) and
responses to nothing pending, such as the tail of a stream a previous host
left running (``unexpected``); of those, requests, which only our own echo brings, are also
counted as ``echoes``.

:func:`refused` builds the error for an ERROR answer, for the drivers (and the
pull's core) to raise.  It does no I/O, reads no clock and never blocks.  Nothing the device sends
makes it grow: the frame decoder holds at most one frame, and the pending
table holds only requests this side sent.
"""

from __future__ import annotations

from protocol.enums import ErrorCode, MsgType, name_of
from protocol.errors import MalformedMessage, ProtocolError
from protocol.framing import Frame, FrameDecoder
from protocol.messages import (
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
    LogClearResponse,
    RangeEnd,
    ReadRange,
    ReadSet,
    Records,
    UnknownMessage,
    decode_message,
    encode_message,
)

from .errors import DeviceRefused

Request = Identify | Live | ClockGet | ClockSet | LogClear | ReadRange | ReadSet | Abort | AuthChallenge
Response = (
    IdentifyResponse | LiveResponse | ClockResponse | LogClearResponse | Records | RangeEnd
    | AbortResponse | AuthChallengeResponse | ErrorResponse
)

ANSWERS: dict[MsgType, frozenset[MsgType]] = {
    MsgType.IDENTIFY: frozenset({MsgType.IDENTIFY_RSP}),
    MsgType.LIVE: frozenset({MsgType.LIVE_RSP}),
    MsgType.CLOCK_GET: frozenset({MsgType.CLOCK_RSP}),
    MsgType.CLOCK_SET: frozenset({MsgType.CLOCK_RSP}),
    MsgType.LOG_CLEAR: frozenset({MsgType.LOG_CLEAR_RSP}),
    MsgType.AUTH_CHALLENGE: frozenset({MsgType.AUTH_CHALLENGE_RSP}),
    MsgType.READ_RANGE: frozenset({MsgType.RECORDS, MsgType.RANGE_END}),
    MsgType.READ_SET: frozenset({MsgType.RECORDS, MsgType.RANGE_END}),
    MsgType.ABORT: frozenset({MsgType.ABORT_RSP}),
}
"""Which responses (besides ERROR, which answers anything) each request accepts."""


def is_echo(frame: Frame) -> bool:
    """Whether *frame* is a request (a type only a reader sends): on a line to a device, only
    our own requests sent back."""
    return frame.msg_type in ANSWERS


class ClientSession:
    """Sans-I/O client state: frame numbering, pending requests, counters."""

    def __init__(self) -> None:
        self._decoder = FrameDecoder()
        self._next_seq = 0
        self._pending: dict[int, MsgType] = {}
        """Frame seq -> request type, in sending order (dicts keep insertion order)."""
        self.frame_errors = 0
        self.stale_errors = 0
        """Of frame_errors, those before the first good frame: the tail of what was on the line
        when this side came (a frame cut in half, a stream left running), not noise."""
        self.unknown_messages = 0
        self.malformed = 0
        self.unexpected = 0
        self.aborts_answered = 0
        """ABORT_RSPs received for pending ABORTs: the device has ended every stream."""
        self.echoes = 0
        """Of ``unexpected``, verified frames carrying a request, which a device never sends: what
        this side sent, come back (a loopback plug, a modem in command mode)."""
        self.last_error: ProtocolError | None = None
        """The most recent frame or payload that failed, for error messages."""

    @property
    def bytes_received(self) -> int:
        return self._decoder.bytes_in

    @property
    def frames_received(self) -> int:
        """Frames that passed verification, whatever they carried."""
        return self._decoder.frames

    @property
    def damaged_frames(self) -> int:
        """Frames that failed verification after a good one had come: what the line damaged."""
        return self.frame_errors - self.stale_errors

    def is_pending(self, seq: int) -> bool:
        return seq in self._pending

    @property
    def pending(self) -> int:
        return len(self._pending)

    def send(self, request: Request) -> tuple[int, bytes]:
        """Number *request* and return ``(seq, bytes for the line)``; it is now pending."""
        seq = self._next_seq
        data = encode_message(request, seq)
        self._next_seq = (seq + 1) & 0xFFFF
        self._pending.pop(seq, None)  # 65,536 requests ago: long given up
        self._pending[seq] = request.MSG_TYPE
        return seq, data

    def forget(self, seq: int) -> None:
        """Stop waiting for *seq* (the caller gave up on it); its answers become unexpected."""
        self._pending.pop(seq, None)

    def receive_data(self, data: bytes) -> list[Response]:
        """The responses to pending requests found in *data*, in arrival order."""
        responses: list[Response] = []
        verified = self.frames_received
        for item in self._decoder.feed(data):
            if not isinstance(item, Frame):
                self.frame_errors += 1
                if not verified:
                    self.stale_errors += 1
                self.last_error = item
                continue
            verified += 1
            if is_echo(item):
                self.echoes += 1
                self.unexpected += 1
                continue
            try:
                message = decode_message(item)
            except MalformedMessage as exc:
                self.malformed += 1
                self.last_error = exc
                continue
            if isinstance(message, UnknownMessage):
                self.unknown_messages += 1
                continue
            if self._accept(item.msg_type, getattr(message, "request_seq", None)):
                responses.append(message)  # type: ignore[arg-type]
            else:
                self.unexpected += 1
        return responses

    def _accept(self, msg_type: int, request_seq: int | None) -> bool:
        kind = self._pending.get(request_seq) if request_seq is not None else None
        if kind is None:
            return False
        if msg_type == MsgType.RECORDS:
            return MsgType.RECORDS in ANSWERS[kind]
        if msg_type != MsgType.ERROR and msg_type not in ANSWERS[kind]:
            return False
        if msg_type == MsgType.ABORT_RSP:
            self.aborts_answered += 1
            for seq in list(self._pending):
                del self._pending[seq]
                if seq == request_seq:
                    break
        else:
            del self._pending[request_seq]  # type: ignore[arg-type]
        return True


def refused(request: Request, error: ErrorResponse) -> DeviceRefused:
    """The DeviceError for an ERROR answer: request, code name and the device's detail."""
    detail = f": {error.detail}" if error.detail else ""
    return DeviceRefused(
        f"device refused {request.MSG_TYPE.name} with {name_of(ErrorCode, error.code)}{detail}", error.code
    )
