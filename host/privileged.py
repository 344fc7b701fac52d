"""Privileged operations on a unit: authenticate, then set its clock or clear its log;
and the check that its log is archived before it is cleared.

Each operation follows ``docs/protocol.md`` section 7::

    AUTH_CHALLENGE(level)  ->  AUTH_CHALLENGE_RSP(nonce)
    request with tag = HMAC-SHA256(key, nonce || msg_type || arguments)[:16]  ->  response

and sends each of the two requests exactly once, never again: a nonce is good
for one request, so a repeated request could only be refused, and would count
as a failed attempt towards the unit's lockout.  When the answer to an
authorised request is lost, the request may or may not have been carried out;
the error says so, and the caller checks (CLOCK_GET, IDENTIFY) rather than
retrying blindly.  Refusals (ERROR UNAUTHORIZED, LOCKED_OUT) are
:class:`~host.errors.DeviceError`; an UNAUTHORIZED one says how many attempts are left before the
unit locks out, as the unit's own audit record of the attempt tells (section 7.6: its failures in
a row, read back from the end of its log; the lockout comes with the :data:`LOCKOUT_AFTER`-th,
section 7.5), or nothing more when that record cannot be read.  A level or time that cannot be asked for is a
:class:`~host.errors.UsageError`, raised before anything is sent, so that a
mistake of ours never costs an attempt.

Use on a :class:`~host.driver.Client` with no stream pending (after
:meth:`~host.driver.Client.abort`).  Keys come from :mod:`host.auth`; tags are
computed by :mod:`protocol.auth`, the code the device checks them with.  This
module never reads a key from anywhere itself, never prints, and never imports
firmware_sim.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

from protocol.auth import (
    KEY_LEN,
    REQUIRED_LEVEL,
    AuthenticatedRequest,
    AuthOutcome,
    AuthRequestT,
    AuthResult,
    sign,
)
from protocol.enums import AccessLevel, ErrorCode, EventKind
from protocol.errors import ProtocolError
from protocol.messages import (
    ClockSet,
    ErrorResponse,
    IdentifyResponse,
    LogClear,
    RangeEnd,
    ReadRange,
    Records,
)
from protocol.records import EventRecord, decode_record, scan_records

from .archive import Archive
from .driver import Client
from .errors import DeviceRefused, HostError, LinkTimeout, UnknownUnit, UsageError

_U32_MAX = 0xFFFFFFFF
_LEVELS = frozenset(AccessLevel)
_SHOWN_RANGES = 5
LOCKOUT_AFTER = 5
"""Failures in a row at which a unit locks out (docs/protocol.md section 7.5)."""
_TAIL = 16
"""Records read back from the end of the log to find the audit record of a refused attempt."""


def authenticate_and_set_clock(client: Client, key: bytes, level: AccessLevel, t: int) -> int:
    """Set the unit's clock to *t* (Unix seconds, UTC) at access *level* with that level's *key*;
    returns the device time the unit reports afterwards."""
    if not 0 <= t <= _U32_MAX:
        raise UsageError(f"time {t} is outside what a unit's clock holds (0 .. {_U32_MAX})")
    request = _authorise(client, key, ClockSet(t, level))
    with _outcome_unknown_on_silence(request), _attempts_left_on_refusal(client, request):
        return client.clock_set(request.new_time, level=request.level, tag=request.tag)


def authenticate_and_clear_log(client: Client, key: bytes, level: AccessLevel) -> int:
    """Clear the unit's log at access *level* with that level's *key*; returns its new first seq.

    Check :func:`ensure_archived` first.  Records the unit logs between that
    check and the clear are cleared too: they are the seqs from the checked
    ``next_seq`` up to the returned first seq.
    """
    request = _authorise(client, key, LogClear(level))
    with _outcome_unknown_on_silence(request), _attempts_left_on_refusal(client, request):
        return client.log_clear(level=request.level, tag=request.tag)


def ensure_archived(
    archive: Archive,
    serial: str,
    identify: IdentifyResponse,
    read: Callable[[int], bytes | None] | None = None,
) -> None:
    """Refuse (:class:`UsageError`) unless every record the unit's log holds is in *archive*:
    the seqs ``[first_seq, next_seq)`` that *identify* (the unit's IDENTIFY_RSP) reports,
    stored under *serial* in the epoch of that very log (its log id).

    With *read* (a client's ``read_record``), a short tail the unit logged since the last pull
    (at most :data:`_TAIL` records after archived ones: the audit records of a wrong key, say) is
    read and archived here instead of refused."""
    if identify.serial != serial:
        raise UsageError(f"the unit on the port is {identify.serial!r}, not {serial!r}")
    first, stop = identify.first_seq, identify.next_seq
    if first >= stop:
        return
    try:
        archived_id = archive.unit(serial).log_id
        if archived_id is not None and archived_id != identify.log_id:
            raise UsageError(
                f"unit {serial}: its log (id {identify.log_id.hex()}) is not the one archived (id "
                f"{archived_id.hex()}): pull it first (turbolog pull --new-log), or clear anyway with --force"
            )
        missing = archive.missing_ranges(serial, first, stop)
        if read is not None and _archive_tail(archive, serial, missing, first, stop, read):
            missing = archive.missing_ranges(serial, first, stop)
    except UnknownUnit:
        missing = [(first, stop)]
    if not missing:
        return
    count = sum(end - start for start, end in missing)
    shown = ", ".join(f"{start}..{end - 1}" for start, end in missing[:_SHOWN_RANGES])
    more = ", ..." if len(missing) > _SHOWN_RANGES else ""
    raise UsageError(
        f"unit {serial}: {count:,} of the {stop - first:,} records in its log are not in the archive "
        f"(seqs {shown}{more}): pull them first, or clear anyway with --force"
    )


def _archive_tail(
    archive: Archive,
    serial: str,
    missing: list[tuple[int, int]],
    first: int,
    stop: int,
    read: Callable[[int], bytes | None],
) -> bool:
    """Read and store the records of *missing* when they are one short tail after archived ones;
    whether it did."""
    if len(missing) != 1 or missing[0][1] != stop or missing[0][0] <= first or stop - missing[0][0] > _TAIL:
        return False
    raws = [read(seq) for seq in range(missing[0][0], stop)]
    if any(raw is None for raw in raws):
        return False
    records, _ = scan_records(b"".join(raw for raw in raws if raw is not None))
    archive.store_records(serial, records)
    return True


def start_epoch_after_clear(
    archive: Archive, before: IdentifyResponse, after: IdentifyResponse, first_seq: int
) -> int | None:
    """After a clear this host made, archive the unit's new log as the next epoch of its serial,
    so that the next pull goes on without ``--new-log``; return that epoch's number.

    *before* and *after* are the unit's IDENTIFY_RSP before and after the clear, *first_seq* the
    new first seq LOG_CLEAR_RSP gave.  Only when the archive's latest epoch of the serial is the
    log that was cleared (an unarchived log's clear is nothing the archive can vouch for: the next
    pull decides), and not twice."""
    serial = before.serial
    try:
        latest = archive.unit(serial)
    except UnknownUnit:
        return None
    if latest.log_id == after.log_id or latest.log_id not in (None, before.log_id):
        return None
    return archive.start_epoch(
        serial, after.model, after.firmware, after.schema_fingerprint, log_id=after.log_id,
        origin_seq=first_seq, continues=True, first_seq=first_seq, next_seq=after.next_seq,
        capacity_records=after.capacity_records, device_time=after.device_time,
        operating_s=after.operating_s, starts=after.starts, trips=after.trips, energy_wh=after.energy_wh,
    )


def _authorise(client: Client, key: bytes, request: AuthRequestT) -> AuthRequestT:
    """*request* signed for a fresh challenge at its level."""
    level, needed = request.level, REQUIRED_LEVEL[request.MSG_TYPE]
    if level not in _LEVELS or level < needed:
        raise UsageError(f"{request.MSG_TYPE.name} needs access level {needed.name.lower()} or above")
    if len(key) != KEY_LEN:
        raise UsageError(f"a key is {KEY_LEN} bytes, not {len(key)}")
    return sign(request, key, client.auth_challenge(level))


@contextmanager
def _outcome_unknown_on_silence(request: AuthenticatedRequest) -> Iterator[None]:
    """A lost answer to an authorised request: say that it may have been carried out."""
    try:
        yield
    except LinkTimeout as exc:
        raise LinkTimeout(
            f"{exc}; the {request.MSG_TYPE.name} may or may not have been carried out (an authorised "
            "request is sent once, never repeated): check the unit before trying again"
        ) from exc


@contextmanager
def _attempts_left_on_refusal(client: Client, request: AuthenticatedRequest) -> Iterator[None]:
    """An UNAUTHORIZED refusal, with how many attempts are left before the unit locks out."""
    try:
        yield
    except DeviceRefused as exc:
        if exc.code != ErrorCode.UNAUTHORIZED:
            raise
        failures = _failures_in_a_row(client, request)
        if failures is None:
            raise
        if failures >= LOCKOUT_AFTER:
            more = f"the unit is locked out now, after {failures} failed attempts in a row"
        else:
            left = LOCKOUT_AFTER - failures
            more = f"{left} attempt{'s' if left != 1 else ''} left before the unit locks out"
        raise DeviceRefused(f"{exc}; {more}", exc.code) from exc


def _failures_in_a_row(client: Client, request: AuthenticatedRequest) -> int | None:
    """The failures in a row that the unit's latest audit record of a refused *request* counts
    (docs/protocol.md 7.6), read from the end of its log; None when it cannot be read."""
    seq: int | None = None
    try:
        info = client.identify()
        start = max(info.first_seq, info.next_seq - _TAIL)
        if start >= info.next_seq:
            return None
        seq = client.send(ReadRange(start, info.next_seq - start))
        raw = b""
        deadline = client.clock() + client.timeout
        ended = False
        while not ended and (left := deadline - client.clock()) > 0:
            for response in client.receive(left):
                if response.request_seq != seq or isinstance(response, ErrorResponse):
                    continue
                if isinstance(response, Records):
                    raw += response.records
                ended = ended or isinstance(response, RangeEnd)
        if not ended:
            with suppress(HostError):
                client.abort()
            return None
        records, _ = scan_records(raw)
    except (HostError, ProtocolError):
        return None
    finally:
        if seq is not None:
            client.session.forget(seq)
    for *_, body in reversed(records):
        record = decode_record(body)
        if isinstance(record, EventRecord) and record.kind == EventKind.AUTH:
            outcome = AuthOutcome.from_event_values(record.value_a, record.value_b)
            counted = outcome.result not in (AuthResult.ACCEPTED, AuthResult.LOCKED_OUT)
            if outcome.msg_type != request.MSG_TYPE or not counted:
                return None
            return outcome.failures
    return None
