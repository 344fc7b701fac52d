"""Access control on the service port: challenges, refusals, lockout, expiry and the audit trail.

Most tests drive the pure DeviceSession through bytes (the Host helper of
test_session) against a FakeUnit that carries a real AccessControl on a clock
the test moves; the last ones run a real Unit: its AUTH records in the log,
its keys on their own chip, and the audit trail across power cuts.
"""

from __future__ import annotations

import json
import os
import random
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from firmware_sim import cli
from firmware_sim.auth import LOCKOUT_BASE_S, LOCKOUT_MAX_S, MAX_FAILURES, NONCE_LIFETIME_S, AccessControl
from firmware_sim.clock import SimClock
from firmware_sim.flash import FlashOperation, NorFlash, PowerCut
from firmware_sim.keystore import KeyStore, UnitKeys, key_chip_path
from firmware_sim.logstore import LogStore
from firmware_sim.models import get_profile
from firmware_sim.session import DeviceSession
from firmware_sim.unit import Unit, build_unit
from protocol.auth import AuthenticatedRequest, AuthOutcome, AuthResult, compute_tag, sign
from protocol.enums import AccessLevel, ErrorCode, EventKind, MsgType
from protocol.framing import encode_frame
from protocol.messages import (
    AuthChallenge,
    AuthChallengeResponse,
    ClockResponse,
    ClockSet,
    ErrorResponse,
    LogClear,
    LogClearResponse,
    Message,
    RangeEnd,
    ReadRange,
    encode_payload,
)
from protocol.records import EventRecord, decode_record

from .test_session import FakeUnit, Host, digest_of, records_of, seqs_of

KEYS = UnitKeys(bytes(range(32)), bytes(range(100, 132)), bytes(range(200, 232)))
MAINT, FACTORY, READ = AccessLevel.MAINTENANCE, AccessLevel.FACTORY, AccessLevel.READ
T_SET = 1_600_000_000


class AuthUnit(FakeUnit):
    """The fake unit of test_session with a real AccessControl on a clock the test moves."""

    def __init__(self, next_seq: int = 0, *, boot_salt: bytes = b"\x00" * 4, **kwargs: int) -> None:
        super().__init__(next_seq, **kwargs)
        self.now = 10_000.0
        self.audit: list[tuple[int, AuthOutcome]] = []
        self.levels: list[int] = []
        """Access level of every command carried out."""
        self.clears = 0
        self.access = AccessControl(
            KEYS, clock=lambda: self.now, audit=lambda level, outcome: self.audit.append((level, outcome)),
            boot_salt=boot_salt,
        )

    def set_device_time(self, new_time: int, *, level: int = 0) -> None:
        self.levels.append(level)
        super().set_device_time(new_time)

    def clear_log(self, *, level: int = 0) -> int:
        self.levels.append(level)
        self.clears += 1
        return super().clear_log()

    @property
    def results(self) -> list[int]:
        return [outcome.result for _, outcome in self.audit]


def make(next_seq: int = 0, seed: int = 7, **kwargs: int) -> tuple[AuthUnit, Host]:
    unit = AuthUnit(next_seq, **kwargs)
    return unit, line(unit, seed)


def line(unit: AuthUnit, seed: int = 7) -> Host:
    """Another line (session) into *unit*."""
    return Host(DeviceSession(unit, entropy=random.Random(seed).randbytes))


def challenge(host: Host, level: int = MAINT) -> bytes:
    (rsp,) = host.ask(AuthChallenge(level))
    assert isinstance(rsp, AuthChallengeResponse), rsp
    return rsp.nonce


def one(host: Host, msg: Message) -> Message:
    (rsp,) = host.ask(msg)
    return rsp


def refused_with(rsp: Message, code: ErrorCode = ErrorCode.UNAUTHORIZED) -> bool:
    return isinstance(rsp, ErrorResponse) and rsp.code == code and bool(rsp.detail)


REQUESTS: dict[str, AuthenticatedRequest] = {
    "clock_set": ClockSet(T_SET, MAINT),
    "log_clear": LogClear(MAINT),
}


# --- the exchange that works ---------------------------------------------------------------------------


def test_a_signed_clock_set_is_carried_out_and_audited_after_its_own_record() -> None:
    unit, host = make()
    nonce = challenge(host)
    assert one(host, sign(ClockSet(T_SET, MAINT), KEYS.maintenance, nonce)) == ClockResponse(host.seq, T_SET)
    assert unit.clock_sets == [(1_700_000_000, T_SET)] and unit.levels == [MAINT]
    assert unit.audit == [(MAINT, AuthOutcome(AuthResult.ACCEPTED, MsgType.CLOCK_SET))]


def test_a_signed_log_clear_is_carried_out() -> None:
    unit, host = make(next_seq=50)
    nonce = challenge(host)
    assert one(host, sign(LogClear(MAINT), KEYS.maintenance, nonce)) == LogClearResponse(host.seq, 50)
    assert unit.first_seq == 50 and unit.levels == [MAINT]
    assert unit.results == [AuthResult.ACCEPTED]


def test_the_factory_key_does_what_the_maintenance_key_does() -> None:
    unit, host = make()
    nonce = challenge(host, FACTORY)
    assert one(host, sign(ClockSet(T_SET, FACTORY), KEYS.factory, nonce)) == ClockResponse(host.seq, T_SET)
    assert unit.levels == [FACTORY] and unit.audit[0][0] == FACTORY


def test_a_signed_log_clear_during_a_stream_ends_it() -> None:
    unit, host = make(next_seq=500)
    (read_seq,) = host.send(ReadRange(0, 500))
    msgs = host.decode(host.session.data_to_send(1100))
    host.send(AuthChallenge(MAINT))
    msgs += host.decode(host.session.data_to_send(2000))  # the answer overtakes the stream
    nonce = next(m.nonce for m in msgs if isinstance(m, AuthChallengeResponse))
    host.send(sign(LogClear(MAINT), KEYS.maintenance, nonce))
    msgs += host.pull()
    sent = seqs_of(records_of(msgs))
    assert sent == list(range(len(sent))) and len(sent) < 100
    assert LogClearResponse(host.seq, 500) in msgs
    assert msgs[-1] == RangeEnd(read_seq, 500, 501, len(sent), digest_of(records_of(msgs)))


def test_reads_need_no_authentication() -> None:
    unit, host = make(next_seq=10)
    msgs = host.ask(ReadRange(0, 10))
    assert isinstance(msgs[-1], RangeEnd) and msgs[-1].sent == 10
    assert unit.audit == []


# --- every way of getting it wrong ---------------------------------------------------------------------

Attempt = Callable[[AuthUnit, Host, AuthenticatedRequest], Message]


def no_challenge(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    return one(host, sign(request, KEYS.maintenance, bytes(16)))


def wrong_key(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    return one(host, sign(request, KEYS.factory, challenge(host)))


def another_units_key(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    return one(host, sign(request, bytes(32), challenge(host)))


def level_above_the_challenge(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    return one(host, sign(replace(request, level=FACTORY), KEYS.factory, challenge(host, MAINT)))


def level_below_the_challenge(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    return one(host, sign(request, KEYS.maintenance, challenge(host, FACTORY)))


def read_level(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    nonce = challenge(host)
    return one(host, replace(request, level=READ, tag=compute_tag(KEYS.maintenance, nonce, request)))


def unknown_level(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    return one(host, sign(replace(request, level=7), KEYS.maintenance, challenge(host)))


def tag_for_another_command(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    other: AuthenticatedRequest = LogClear(MAINT) if isinstance(request, ClockSet) else ClockSet(T_SET, MAINT)
    return one(host, replace(request, tag=compute_tag(KEYS.maintenance, challenge(host), other)))


def tag_for_other_arguments(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    nonce = challenge(host)
    if isinstance(request, ClockSet):
        other: AuthenticatedRequest = replace(request, new_time=request.new_time + 1)
    else:
        other = replace(request, level=FACTORY)
    return one(host, replace(request, tag=compute_tag(KEYS.maintenance, nonce, other)))


def truncated_tag(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    good = sign(request, KEYS.maintenance, challenge(host))
    return one(host, replace(good, tag=good.tag[:8] + bytes(8)))


def no_tag(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    challenge(host)
    return one(host, request)


def stale_nonce(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    nonce = challenge(host)
    unit.now += NONCE_LIFETIME_S
    return one(host, sign(request, KEYS.maintenance, nonce))


def reused_nonce(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    nonce = challenge(host)
    assert refused_with(one(host, sign(request, KEYS.factory, nonce)))
    return one(host, sign(request, KEYS.maintenance, nonce))


def superseded_nonce(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    nonce = challenge(host)
    challenge(host)
    return one(host, sign(request, KEYS.maintenance, nonce))


def nonce_of_another_line(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    return one(host, sign(request, KEYS.maintenance, challenge(line(unit, seed=99))))


def nonce_from_before_a_reconnect(unit: AuthUnit, host: Host, request: AuthenticatedRequest) -> Message:
    nonce = challenge(host)
    return one(line(unit), sign(request, KEYS.maintenance, nonce))


WRONG: list[tuple[Attempt, AuthResult]] = [
    (no_challenge, AuthResult.NO_CHALLENGE),
    (wrong_key, AuthResult.BAD_TAG),
    (another_units_key, AuthResult.BAD_TAG),
    (level_above_the_challenge, AuthResult.WRONG_LEVEL),
    (level_below_the_challenge, AuthResult.WRONG_LEVEL),
    (read_level, AuthResult.WRONG_LEVEL),
    (unknown_level, AuthResult.WRONG_LEVEL),
    (tag_for_another_command, AuthResult.BAD_TAG),
    (tag_for_other_arguments, AuthResult.BAD_TAG),
    (truncated_tag, AuthResult.BAD_TAG),
    (no_tag, AuthResult.BAD_TAG),
    (stale_nonce, AuthResult.EXPIRED),
    (reused_nonce, AuthResult.NO_CHALLENGE),
    (superseded_nonce, AuthResult.BAD_TAG),
    (nonce_of_another_line, AuthResult.NO_CHALLENGE),
    (nonce_from_before_a_reconnect, AuthResult.NO_CHALLENGE),
]


@pytest.mark.parametrize("name", REQUESTS)
@pytest.mark.parametrize(("attempt", "result"), WRONG, ids=[attempt.__name__ for attempt, _ in WRONG])
def test_a_state_changing_command_without_valid_authentication_is_refused(
    name: str, attempt: Attempt, result: AuthResult
) -> None:
    unit, host = make(next_seq=50)
    request = REQUESTS[name]
    rsp = attempt(unit, host, request)
    assert refused_with(rsp), rsp
    assert (unit.clock_sets, unit.clears, unit.first_seq, unit.levels) == ([], 0, 0, [])
    assert unit.audit[-1][1] == AuthOutcome(result, request.MSG_TYPE, len(unit.audit))


@pytest.mark.parametrize("name", REQUESTS)
def test_a_truncated_request_is_malformed_and_uses_up_the_nonce(name: str) -> None:
    unit, host = make()
    nonce = challenge(host)
    good = sign(REQUESTS[name], KEYS.maintenance, nonce)
    payload = encode_payload(good)
    host.session.receive_data(encode_frame(good.MSG_TYPE, 1, payload[:-8]))
    assert refused_with(host.pull()[0], ErrorCode.MALFORMED_REQUEST)
    assert refused_with(one(host, good))
    assert unit.results == [AuthResult.NO_CHALLENGE] and unit.levels == []


def test_a_replayed_command_is_refused_however_often_it_is_replayed() -> None:
    unit, host = make()
    frame = host.wire(sign(ClockSet(T_SET, MAINT), KEYS.maintenance, challenge(host)))
    host.session.receive_data(frame)
    assert host.pull() == [ClockResponse(host.seq, T_SET)]
    for _ in range(2):
        host.session.receive_data(frame)
        assert refused_with(host.pull()[0])
        challenge(host)
        host.session.receive_data(frame)
        assert refused_with(host.pull()[0])
    assert len(unit.clock_sets) == 1
    assert unit.results == [AuthResult.ACCEPTED] + [AuthResult.NO_CHALLENGE, AuthResult.BAD_TAG] * 2


def tamper(rng: random.Random, nonce: bytes, accepted: list[AuthenticatedRequest]) -> AuthenticatedRequest:
    """A forged or replayed request for the pending *nonce*: never a valid one."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice(accepted)
    good: AuthenticatedRequest = sign(ClockSet(rng.getrandbits(32), MAINT), KEYS.maintenance, nonce)
    if rng.random() < 0.5:
        good = sign(LogClear(MAINT), KEYS.maintenance, nonce)
    if kind == 1:
        bit = rng.randrange(128)
        return replace(good, tag=(int.from_bytes(good.tag, "little") ^ 1 << bit).to_bytes(16, "little"))
    if kind == 2 and isinstance(good, ClockSet):
        return replace(good, new_time=good.new_time ^ 1 << rng.randrange(32))
    if kind == 2:
        return replace(good, level=good.level ^ 1 << rng.randrange(8))
    if kind == 3:
        other = LogClear(MAINT) if isinstance(good, ClockSet) else ClockSet(T_SET, MAINT)
        return replace(other, tag=good.tag)
    return replace(good, tag=rng.randbytes(16))


@pytest.mark.slow
def test_ten_thousand_replayed_or_tampered_commands_are_refused() -> None:
    unit, host = make(next_seq=5)
    rng = random.Random(2024)
    accepted: list[AuthenticatedRequest] = []
    for i in range(10_000):
        if i % 4 == 0:  # a technician's good command now and then: failures never reach the lockout
            good = sign(ClockSet(T_SET + i, MAINT), KEYS.maintenance, challenge(host))
            assert one(host, good) == ClockResponse(host.seq, T_SET + i)
            accepted.append(good)
        rsp = one(host, tamper(rng, challenge(host), accepted))
        assert refused_with(rsp), (i, rsp)
    assert [new for _, new in unit.clock_sets] == [T_SET + i for i in range(0, 10_000, 4)]
    assert unit.clears == 0 and unit.first_seq == 0
    assert len(unit.audit) == 10_000 + 2_500
    assert AuthResult.LOCKED_OUT not in unit.results


# --- expiry and lockout on the simulated clock ---------------------------------------------------------


def test_a_nonce_lasts_five_minutes_of_simulated_time() -> None:
    unit, host = make()
    nonce = challenge(host)
    unit.now += NONCE_LIFETIME_S - 0.001
    assert isinstance(one(host, sign(ClockSet(T_SET, MAINT), KEYS.maintenance, nonce)), ClockResponse)
    nonce = challenge(host)
    unit.now += NONCE_LIFETIME_S
    rsp = one(host, sign(ClockSet(T_SET, MAINT), KEYS.maintenance, nonce))
    assert refused_with(rsp) and "expired" in rsp.detail  # type: ignore[union-attr]
    assert NONCE_LIFETIME_S == 300


def fail(host: Host) -> Message:
    return one(host, sign(ClockSet(T_SET, MAINT), KEYS.factory, challenge(host)))


def test_five_failures_lock_the_unit_out_even_for_a_correct_tag() -> None:
    unit, host = make()
    other = line(unit, seed=8)
    early = challenge(other)  # asked before the lockout, on another line
    for _ in range(MAX_FAILURES):
        assert refused_with(fail(host))
    assert MAX_FAILURES == 5 and unit.access.locked_for() == LOCKOUT_BASE_S == 60
    assert refused_with(one(host, AuthChallenge(MAINT)), ErrorCode.LOCKED_OUT)
    correct = sign(ClockSet(T_SET, MAINT), KEYS.maintenance, early)
    assert refused_with(one(other, correct), ErrorCode.LOCKED_OUT)
    unit.now += LOCKOUT_BASE_S - 1
    assert refused_with(one(host, AuthChallenge(MAINT)), ErrorCode.LOCKED_OUT)
    unit.now += 1
    correct = sign(ClockSet(T_SET, MAINT), KEYS.maintenance, challenge(host))
    assert isinstance(one(host, correct), ClockResponse)
    assert unit.access.failures == 0 and unit.clock_sets == [(1_700_000_000, T_SET)]
    results = unit.results
    assert results == [AuthResult.BAD_TAG] * 5 + [AuthResult.LOCKED_OUT, AuthResult.ACCEPTED]
    assert [outcome.failures for _, outcome in unit.audit] == [1, 2, 3, 4, 5, 5, 0]


def test_each_failure_after_a_lockout_doubles_it_up_to_an_hour() -> None:
    unit, host = make()
    for _ in range(MAX_FAILURES - 1):
        fail(host)
    lockouts = []
    for _ in range(9):
        assert refused_with(fail(host))
        lockouts.append(unit.access.locked_for())
        unit.now += lockouts[-1]
    assert lockouts == [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert LOCKOUT_MAX_S == 3600


def test_a_flood_while_locked_out_is_logged_once_and_counted() -> None:
    unit, host = make()
    for _ in range(MAX_FAILURES):
        fail(host)
    for _ in range(1000):
        rsp = one(host, sign(LogClear(MAINT), KEYS.maintenance, bytes(16)))
        assert refused_with(rsp, ErrorCode.LOCKED_OUT)
    assert len(unit.audit) == MAX_FAILURES + 1
    unit.now += LOCKOUT_BASE_S
    assert isinstance(one(host, sign(LogClear(MAINT), KEYS.maintenance, challenge(host))), LogClearResponse)
    assert unit.audit[-1][1] == AuthOutcome(AuthResult.ACCEPTED, MsgType.LOG_CLEAR, 0, 999)


# --- challenges ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [READ, 3, 9, 255])
def test_a_challenge_is_only_for_a_protected_level(level: int) -> None:
    _, host = make()
    assert refused_with(one(host, AuthChallenge(level)), ErrorCode.OUT_OF_RANGE)


def test_nonces_are_fresh_and_differ_from_one_power_up_to_the_next() -> None:
    unit, host = make()
    nonces = [challenge(host) for _ in range(1000)]
    assert len(set(nonces)) == 1000 and all(len(n) == 16 for n in nonces)
    _, again = make()
    assert challenge(again) == nonces[0]  # same unit state, same seed: reproducible in tests
    later = AuthUnit(boot_salt=(1).to_bytes(4, "little"))  # the next power-up, its RNG seeded the same
    replay = sign(ClockSet(T_SET, MAINT), KEYS.maintenance, nonces[0])
    restarted = line(later)
    assert challenge(restarted) != nonces[0]
    assert refused_with(one(restarted, replay)) and later.clock_sets == []


# --- a real unit ---------------------------------------------------------------------------------------

START = 1_700_000_100


class FakeWall:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def seeded_bytes(seed: int) -> Callable[[int], bytes]:
    return random.Random(seed).randbytes


def keys_from(seed: int) -> UnitKeys:
    """The keys a unit built with ``random_bytes=seeded_bytes(seed)`` makes at its first start."""
    return UnitKeys.generate(seeded_bytes(seed))


def events(unit: Unit, kind: EventKind) -> list[EventRecord]:
    found = [decode_record(raw) for raw in unit.iter_raw(unit.first_seq, unit.next_seq)]
    return [r for r in found if isinstance(r, EventRecord) and r.kind == kind]


def test_a_unit_logs_every_attempt_and_the_level_of_what_it_carried_out() -> None:
    wall = FakeWall()
    unit = build_unit("C65", "SN-1", seed=3, clock=SimClock(START, wall=wall), random_bytes=seeded_bytes(1))
    keys = keys_from(1)
    host = Host(DeviceSession(unit, entropy=random.Random(1).randbytes))
    assert refused_with(one(host, sign(ClockSet(START + 60, MAINT), keys.factory, challenge(host))))
    assert one(host, sign(ClockSet(START + 60, MAINT), keys.maintenance, challenge(host))) == ClockResponse(
        host.seq, START + 60
    )
    auth = events(unit, EventKind.AUTH)
    assert [(e.level, e.value_a, e.value_b) for e in auth] == [
        (MAINT, AuthResult.BAD_TAG, MsgType.CLOCK_SET | 1 << 8),
        (MAINT, AuthResult.ACCEPTED, MsgType.CLOCK_SET),
    ]
    (clock_set,) = events(unit, EventKind.CLOCK_SET)
    assert clock_set.level == MAINT and clock_set.seq == auth[1].seq - 1
    wall.t += 3600
    unit.tick()
    before = unit.next_seq
    assert one(host, sign(LogClear(FACTORY), keys.factory, challenge(host, FACTORY))) == LogClearResponse(
        host.seq, before
    )
    cleared, accepted = (decode_record(raw) for raw in unit.iter_raw(0, unit.next_seq))
    assert isinstance(cleared, EventRecord)
    assert (cleared.kind, cleared.level) == (EventKind.LOG_CLEARED, FACTORY)
    assert isinstance(accepted, EventRecord) and accepted.kind == EventKind.AUTH
    assert AuthOutcome.from_event_values(accepted.value_a, accepted.value_b) == AuthOutcome(
        AuthResult.ACCEPTED, MsgType.LOG_CLEAR
    )
    assert accepted.timestamp == START + 60 + 3600


def test_the_same_seed_gives_the_same_log_bytes_whatever_the_keys() -> None:
    logs = []
    for key_seed in (1, 2):
        wall = FakeWall()
        unit = build_unit("C60", "SN-2", seed=5, clock=SimClock(START, wall=wall),
                          random_bytes=seeded_bytes(key_seed))
        keys = keys_from(key_seed)
        host = Host(DeviceSession(unit, entropy=random.Random(key_seed).randbytes))
        for step in range(20):
            wall.t += 500
            key = keys.maintenance if step % 3 else keys.factory
            one(host, sign(ClockSet(START + 1000 * step, MAINT), key, challenge(host)))
        logs.append(b"".join(unit.iter_raw(0, unit.next_seq)))
        assert keys.maintenance not in logs[-1] and keys.factory not in logs[-1]
    assert logs[0] == logs[1] and keys_from(1) != keys_from(2)


def test_keys_are_made_at_first_start_on_their_own_chip_and_kept(tmp_path: Path) -> None:
    image = tmp_path / "unit.img"
    draws: list[int] = []

    def random_bytes(n: int) -> bytes:
        draws.append(n)
        return os.urandom(n)

    with build_unit("C30", "SN-3", seed=1, clock=lambda: START, flash_path=image, sector_count=16,
                    random_bytes=random_bytes) as unit:
        unit.fast_forward(100 * 3600)
    chip = Path(key_chip_path(image))
    assert stat.S_IMODE(chip.stat().st_mode) == 0o600
    assert len(draws) == 3
    with NorFlash.open(chip) as flash:
        keys = KeyStore(flash).keys
    assert keys is not None
    with build_unit("C30", "SN-3", seed=1, clock=lambda: START, flash_path=image,
                    random_bytes=random_bytes) as again:
        assert len(draws) == 3  # the keys of the first start, not new ones
        host = Host(DeviceSession(again, entropy=random.Random(1).randbytes))
        clear = sign(LogClear(MAINT), keys.maintenance, challenge(host))
        assert isinstance(one(host, clear), LogClearResponse)
    log_image = image.read_bytes()
    assert all(key not in log_image for key in (keys.maintenance, keys.factory, keys.nonce_secret))


def test_turbosim_keys_shows_the_keys_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = str(tmp_path / "unit.img")
    assert cli.main(["keys", "--flash", image]) == 2
    assert "no keys yet" in capsys.readouterr().err
    assert cli.main(["run", "--flash", image, "--sectors", "16", "--history", "1h"]) == 0
    assert capsys.readouterr().out == ""
    with NorFlash.open(key_chip_path(image)) as flash:
        keys = KeyStore(flash).keys
    assert keys is not None
    assert cli.main(["keys", "--flash", image]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[:2] == [f"maintenance  {keys.maintenance.hex()}", f"factory      {keys.factory.hex()}"]
    assert cli.main(["keys", "--flash", image, "--level", "maintenance"]) == 0
    assert capsys.readouterr().out == keys.maintenance.hex() + "\n"
    assert cli.main(["keys", "--flash", image, "--rotate", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["generation"] == 2 and shown["maintenance"] != keys.maintenance.hex()
    assert keys.nonce_secret.hex() not in str(shown)


# --- the audit trail across power cuts -----------------------------------------------------------------

Step = tuple[str, AuthResult]
STEPS: list[Step] = [
    ("set", AuthResult.ACCEPTED), ("set", AuthResult.BAD_TAG), ("set", AuthResult.NO_CHALLENGE),
    ("set", AuthResult.ACCEPTED), ("set", AuthResult.EXPIRED), ("clear", AuthResult.WRONG_LEVEL),
    ("clear", AuthResult.BAD_TAG), ("clear", AuthResult.ACCEPTED), ("set", AuthResult.BAD_TAG),
    ("set", AuthResult.ACCEPTED),
] * 3


def attempt(host: Host, keys: UnitKeys, wall: FakeWall, kind: str, result: AuthResult) -> Message:
    request: AuthenticatedRequest = ClockSet(START + 10**6, MAINT) if kind == "set" else LogClear(MAINT)
    if result is AuthResult.NO_CHALLENGE:
        return one(host, sign(request, keys.maintenance, bytes(16)))
    nonce = challenge(host)
    if result is AuthResult.EXPIRED:
        wall.t += NONCE_LIFETIME_S
    if result is AuthResult.WRONG_LEVEL:
        request = replace(request, level=FACTORY)
    return one(host, sign(request, keys.factory if result is AuthResult.BAD_TAG else keys.maintenance, nonce))


def power_up(flash: NorFlash, wall: FakeWall) -> Unit:
    return Unit(get_profile("C65"), "SN-4", seed=2, store=LogStore(flash), keys=KEYS,
                clock=SimClock(START, wall=wall), sample_interval_s=600)


def run_audited(
    flash: NorFlash, cut_at: int | None, tear_seed: int = 0
) -> tuple[list[Step], int | None, int]:
    """The STEPS on a unit on *flash*, the power cut at its *cut_at*-th flash operation (torn).
    Returns the attempts the host got an answer to since the last clear it got an answer to;
    if a clear was in flight at the cut, the log's next_seq before it; and the operations done."""
    wall = FakeWall()
    unit = power_up(flash, wall)
    host = Host(DeviceSession(unit, entropy=random.Random(4).randbytes))
    tear = random.Random(tear_seed)
    operations = [0]

    def maybe_cut(op: FlashOperation) -> None:
        if operations[0] == cut_at:
            flash.tear(op, tear)
            raise PowerCut(op.kind.value)
        operations[0] += 1

    answered: list[Step] = []
    flash.on_operation = maybe_cut
    clear_from: int | None = None
    try:
        for kind, result in STEPS:
            wall.t += 450
            clear_from = unit.next_seq if (kind, result) == ("clear", AuthResult.ACCEPTED) else None
            rsp = attempt(host, KEYS, wall, kind, result)
            assert isinstance(rsp, ErrorResponse) == (result is not AuthResult.ACCEPTED), rsp
            if clear_from is not None:
                answered.clear()
            answered.append((kind, result))
        clear_from = None
    except PowerCut:
        pass
    finally:
        flash.on_operation = None
    return answered, clear_from, operations[0]


def audit_trail(store: LogStore) -> list[Step]:
    names = {MsgType.CLOCK_SET: "set", MsgType.LOG_CLEAR: "clear"}
    logged: list[Step] = []
    for raw in store.iter_raw(store.first_seq, store.next_seq):
        record = decode_record(raw)
        if isinstance(record, EventRecord) and record.kind == EventKind.AUTH:
            outcome = AuthOutcome.from_event_values(record.value_a, record.value_b)
            logged.append((names[MsgType(outcome.msg_type)], AuthResult(outcome.result)))
    return logged


@pytest.mark.slow
def test_audit_records_acknowledged_before_a_power_cut_survive_it() -> None:
    """A cut (torn three ways) at every flash operation of a run of attempts, clears among them."""
    answered, _, counted = run_audited(NorFlash(512, 64), None)
    assert answered == STEPS[-3:] and counted > len(STEPS)
    for cut_at in range(counted):
        for tear_seed in range(3):
            flash = NorFlash(512, 64)
            answered, clear_from, _ = run_audited(flash, cut_at, tear_seed)
            store = LogStore(flash)
            logged = audit_trail(store)
            if clear_from is not None and store.first_seq >= clear_from:
                answered = []  # the clear in flight was durable: it took the earlier records with it
            assert logged[: len(answered)] == answered, (cut_at, tear_seed)
            assert len(logged) <= len(answered) + 1, (cut_at, tear_seed)
        wall = FakeWall()
        unit = power_up(flash, wall)
        host = Host(DeviceSession(unit, entropy=random.Random(5).randbytes))
        assert isinstance(attempt(host, KEYS, wall, "set", AuthResult.ACCEPTED), ClockResponse)
        assert audit_trail(LogStore(flash.copy())) == logged + [("set", AuthResult.ACCEPTED)]
