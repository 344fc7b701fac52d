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
:class:`~host.errors.DeviceError`; a level or time that cannot be asked for is a
:class:`~host.errors.UsageError`, raised before anything is sent, so that a
mistake of ours never costs an attempt.

Use on a :class:`~host.driver.Client` with no stream pending (after
:meth:`~host.driver.Client.abort`).  Keys come from :mod:`host.auth`; tags are
computed by :mod:`protocol.auth`, the code the device checks them with.  This
module never reads a key from anywhere itself, never prints, and never imports
firmware_sim.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from protocol.auth import KEY_LEN, REQUIRED_LEVEL, AuthenticatedRequest, AuthRequestT, sign
from protocol.enums import AccessLevel
from protocol.messages import (
    ClockSet,
    IdentifyResponse,
    LogClear,
)

from .archive import Archive
from .driver import Client
from .errors import LinkTimeout, UnknownUnit, UsageError

_U32_MAX = 0xFFFFFFFF
_LEVELS = frozenset(AccessLevel)
_SHOWN_RANGES = 5


def authenticate_and_set_clock(client: Client, key: bytes, level: AccessLevel, t: int) -> int:
    """Set the unit's clock to *t* (Unix seconds, UTC) at access *level* with that level's *key*;
    returns the device time the unit reports afterwards."""
    if not 0 <= t <= _U32_MAX:
        raise UsageError(f"time {t} is outside what a unit's clock holds (0 .. {_U32_MAX})")
    request = _authorise(client, key, ClockSet(t, level))
    with _outcome_unknown_on_silence(request):
        return client.clock_set(request.new_time, level=request.level, tag=request.tag)


def authenticate_and_clear_log(client: Client, key: bytes, level: AccessLevel) -> int:
    """Clear the unit's log at access *level* with that level's *key*; returns its new first seq.

    Check :func:`ensure_archived` first.  Records the unit logs between that
    check and the clear are cleared too: they are the seqs from the checked
    ``next_seq`` up to the returned first seq.
    """
    request = _authorise(client, key, LogClear(level))
    with _outcome_unknown_on_silence(request):
        return client.log_clear(level=request.level, tag=request.tag)


def ensure_archived(archive: Archive, serial: str, identify: IdentifyResponse) -> None:
    """Refuse (:class:`UsageError`) unless every record the unit's log holds is in *archive*:
    the seqs ``[first_seq, next_seq)`` that *identify* (the unit's IDENTIFY_RSP) reports,
    stored under *serial* in the epoch of that very log (its log id)."""
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
