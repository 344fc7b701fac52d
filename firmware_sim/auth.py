"""The device side of access control: challenges, the check of a tagged request, lockout, the audit trail.

Reads are open; a request that changes or destroys state (CLOCK_SET,
LOG_CLEAR) is carried out only if it answers a fresh challenge
(``docs/protocol.md`` section 7, tag computed by :mod:`protocol.auth`).
One :class:`AccessControl` belongs to one unit, shared by every line into
it; the pending :class:`Challenge` belongs to one line (the device session),
so that each line has its own nonce while failures and lockout are counted
for the unit as a whole.

What happens to a tagged request, in this order (first match wins)::

    locked out (now < locked_until)              LOCKED_OUT    not a failure
    no challenge pending on the line             NO_CHALLENGE  failure
    challenge issued NONCE_LIFETIME_S ago or more EXPIRED      failure
    level != challenge's level, or below the
      request's REQUIRED_LEVEL, or READ          WRONG_LEVEL   failure
    tag != HMAC(key of level, ...)[:16]          BAD_TAG       failure
    otherwise                                    carried out, then ACCEPTED; failures = 0

The line's pending challenge is consumed by every tagged request, whatever
the outcome, so a nonce is good for one attempt.  The MAX_FAILURES-th failure
in a row locks the unit for LOCKOUT_BASE_S; every further failure in a row
(one can only come after the lockout ends) locks it again for twice as long
as the one before, up to LOCKOUT_MAX_S.  While locked, AUTH_CHALLENGE and
tagged requests are answered LOCKED_OUT, even with a correct tag.  There is no
"logged-in" state to time out: a nonce is the only authority, and it expires
NONCE_LIFETIME_S (5 minutes) of simulated time after it was issued, which is
how this protocol returns to the read level after 5 minutes idle.

Every attempt is audited (the unit logs an EVENT AUTH, encoded by
:class:`protocol.auth.AuthOutcome`): a refusal at once, an acceptance right
after the request's own record (CLOCK_SET, LOG_CLEARED), so that a clear does
not erase its own authorisation.  While locked out, only the first refused
attempt of each lockout is logged on its own; the others are counted in the
next AUTH event, so that a flood of attempts cannot wrap the log and evict
the history it is meant to protect.  Failures and lockout live in RAM: a
power-up clears them (as on the real controllers; cutting a unit's power
needs physical access).

Nonces are ``HMAC-SHA256(nonce secret, boot salt || counter || entropy)[:16]``:
the entropy comes from the session's entropy source, which in the field is
the operating system's cryptographic source whatever the simulation's seed
(a restored old flash image repeats the boot salt and the counter, and a
seeded source would repeat a recorded exchange's nonce, letting it be
replayed); the salt and counter keep nonces distinct even under a test's
seeded source, and the secret keeps them unpredictable.

Pure: time comes from the clock passed in (the unit's simulated clock),
randomness from the entropy passed in; logging is the audit callback's job.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from protocol.auth import (
    NONCE_LEN,
    REQUIRED_LEVEL,
    AuthenticatedRequest,
    AuthOutcome,
    AuthResult,
    tag_matches,
)
from protocol.enums import AccessLevel, ErrorCode, name_of

from .keystore import UnitKeys

NONCE_LIFETIME_S = 300.0
MAX_FAILURES = 5
LOCKOUT_BASE_S = 60.0
LOCKOUT_MAX_S = 3600.0
_MAX_DOUBLINGS = 6
"""60 s x 2^6 is past LOCKOUT_MAX_S already."""

T = TypeVar("T")

Audit = Callable[[int, AuthOutcome], None]
"""Called with the level a request named and its outcome, to log an EVENT AUTH."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """A nonce issued to one line for one level, at a moment of the unit's clock."""

    level: AccessLevel
    nonce: bytes
    issued_at: float


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a tagged request was not carried out."""

    result: AuthResult
    detail: str

    @property
    def error_code(self) -> ErrorCode:
        return ErrorCode.LOCKED_OUT if self.result is AuthResult.LOCKED_OUT else ErrorCode.UNAUTHORIZED


class AccessControl:
    """One unit's keys, failure count and lockout; see the module docstring."""

    def __init__(self, keys: UnitKeys, *, clock: Callable[[], float], audit: Audit, boot_salt: bytes) -> None:
        self._keys = keys
        self._clock = clock
        self._audit = audit
        self._boot_salt = boot_salt
        self._issued = 0
        self._locked_until = float("-inf")
        self._lockout_logged = False
        """Whether a LOCKED_OUT refusal was logged during the present lockout."""
        self._unlogged = 0
        self.failures = 0
        """Failed attempts in a row."""

    def locked_for(self) -> float:
        """Seconds of lockout left (0 when not locked)."""
        return max(0.0, self._locked_until - self._clock())

    def lockout_refusal(self) -> Refusal | None:
        """The refusal for anything privileged while the unit is locked out, or None."""
        left = self.locked_for()
        if left <= 0:
            return None
        return Refusal(
            AuthResult.LOCKED_OUT,
            f"locked out for {left:.0f} s more after {self.failures} failed attempts in a row "
            "(each further failure doubles the lockout)",
        )

    def challenge(self, level: AccessLevel, entropy: bytes) -> Challenge:
        """A fresh challenge for *level*, its nonce derived from *entropy* (see the module docstring)."""
        seed = self._boot_salt + self._issued.to_bytes(8, "little") + entropy
        self._issued += 1
        nonce = hmac.new(self._keys.nonce_secret, seed, hashlib.sha256).digest()[:NONCE_LEN]
        return Challenge(level, nonce, self._clock())

    def perform(
        self, challenge: Challenge | None, request: AuthenticatedRequest, command: Callable[[], T]
    ) -> T | Refusal:
        """Check *request* against *challenge* (the line's, already consumed by the caller);
        if it passes, run *command* and return what it returns, otherwise the Refusal.
        Audits either way."""
        now = self._clock()
        refusal = self.lockout_refusal() or self._check(challenge, request, now)
        if refusal is None:
            done = command()
            self.failures = 0
            self._log(request, AuthResult.ACCEPTED)
            return done
        if refusal.result is AuthResult.LOCKED_OUT:
            if self._lockout_logged:
                self._unlogged += 1
                return refusal
            self._lockout_logged = True
        else:
            self.failures += 1
            if self.failures >= MAX_FAILURES:
                doublings = min(self.failures - MAX_FAILURES, _MAX_DOUBLINGS)
                self._locked_until = now + min(LOCKOUT_BASE_S * 2**doublings, LOCKOUT_MAX_S)
                self._lockout_logged = False
        self._log(request, refusal.result)
        return refusal

    def _check(
        self, challenge: Challenge | None, request: AuthenticatedRequest, now: float
    ) -> Refusal | None:
        name = request.MSG_TYPE.name
        if challenge is None:
            return Refusal(
                AuthResult.NO_CHALLENGE,
                f"{name} without a pending challenge: send AUTH_CHALLENGE first "
                "(a nonce is good for one request)",
            )
        if now - challenge.issued_at >= NONCE_LIFETIME_S:
            return Refusal(AuthResult.EXPIRED, f"the challenge expired ({NONCE_LIFETIME_S:.0f} s)")
        needed = REQUIRED_LEVEL[request.MSG_TYPE]
        key = self._keys.for_level(challenge.level)
        if request.level != challenge.level or request.level < needed or key is None:
            return Refusal(
                AuthResult.WRONG_LEVEL,
                f"{name} at level {name_of(AccessLevel, request.level)} after a challenge for "
                f"{challenge.level.name}; it needs {needed.name} or above",
            )
        if not tag_matches(request, key, challenge.nonce):
            detail = f"the tag does not verify (not this unit's {challenge.level.name} key?)"
            return Refusal(AuthResult.BAD_TAG, detail)
        return None

    def _log(self, request: AuthenticatedRequest, result: AuthResult) -> None:
        unlogged, self._unlogged = self._unlogged, 0
        self._audit(request.level, AuthOutcome(result, request.MSG_TYPE, self.failures, unlogged))
