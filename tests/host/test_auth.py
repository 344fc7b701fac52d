"""The host's side of access control: keys from a file or the environment, the privileged
operations against an emulated device on the in-process line, and the archive check before a clear."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_sim.auth import MAX_FAILURES, AccessControl
from firmware_sim.keystore import UnitKeys
from host.archive import Archive
from host.auth import KEY_ENV, load_key, parse_key, parse_level, withhold_keys
from host.driver import Client
from host.errors import DeviceError, LinkTimeout, UsageError
from host.privileged import authenticate_and_clear_log, authenticate_and_set_clock, ensure_archived
from protocol.auth import AuthOutcome, AuthResult
from protocol.enums import AccessLevel, MsgType
from protocol.messages import SCHEMA_FINGERPRINT, IdentifyResponse
from protocol.records import scan_records

from .loopback import Line, ListUnit, VirtualClock, make_records

KEYS = UnitKeys(bytes(range(32)), bytes(range(100, 132)), bytes(range(200, 232)))
KEY_HEX = KEYS.maintenance.hex()
MAINT, FACTORY = AccessLevel.MAINTENANCE, AccessLevel.FACTORY


# --- keys ----------------------------------------------------------------------------------------------


def test_a_key_is_64_hex_digits_whitespace_ignored() -> None:
    assert parse_key(KEY_HEX, source="x") == KEYS.maintenance
    assert parse_key(f"  {KEY_HEX[:32]}\n{KEY_HEX[32:].upper()}\n", source="x") == KEYS.maintenance


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is empty"),
        (" \n", "is empty"),
        (KEY_HEX[:-2], "has 62 hexadecimal digits"),
        (KEY_HEX + "00", "has 66 hexadecimal digits"),
        ("maintenance  " + KEY_HEX, "is not hexadecimal"),
        ("0x" + KEY_HEX[2:], "is not hexadecimal"),
    ],
)
def test_a_bad_key_is_refused_without_showing_it(text: str, says: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_key(text, source="key file k")
    message = str(caught.value)
    assert message.startswith("key file k " + says) and "64 hexadecimal digits" in message
    assert KEY_HEX[:16] not in message


def test_the_key_file_comes_first_then_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "maintenance.key"
    path.write_text(KEY_HEX + "\n")
    other = KEYS.factory.hex()
    assert load_key(path, {KEY_ENV: other}) == KEYS.maintenance
    assert load_key(None, {KEY_ENV: other}) == KEYS.factory


def test_no_key_anywhere_says_where_to_put_one() -> None:
    with pytest.raises(UsageError, match=r"--key-file FILE or set TURBOLOG_KEY"):
        load_key(None, {})


def test_an_unreadable_or_wrong_key_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read key file .*missing"):
        load_key(tmp_path / "missing", {})
    huge = tmp_path / "huge"
    huge.write_bytes(b"0" * 10_000)
    with pytest.raises(UsageError, match="over 4096 bytes"):
        load_key(huge, {})
    binary = tmp_path / "binary"
    binary.write_bytes(bytes(range(200, 232)) * 2)
    with pytest.raises(UsageError, match="not hexadecimal"):
        load_key(binary, {})


def test_a_key_file_named_by_a_key_is_not_echoed() -> None:
    """``--key-file <the key itself>``: the message says what went wrong without the key."""
    with pytest.raises(UsageError) as refused:
        load_key(KEY_HEX, {})
    assert str(refused.value) == "cannot read key file <64 hex digits withheld>: No such file or directory"


def test_key_like_runs_are_withheld_and_nothing_else() -> None:
    assert withhold_keys(f"port {KEY_HEX} and {KEY_HEX[:32]}, fingerprint 0x1A2B3C4D") == (
        "port <64 hex digits withheld> and <32 hex digits withheld>, fingerprint 0x1A2B3C4D"
    )


def test_a_key_file_others_can_read_is_used_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "maint.key"
    path.write_text(KEY_HEX + "\n")
    warnings: list[str] = []
    for mode in (0o600, 0o400, 0o644):
        path.chmod(mode)
        assert load_key(path, {}, warnings.append) == KEYS.maintenance
    assert warnings == [f"key file {path} is readable by its group and others (mode 0644): chmod 600 {path}"]


@pytest.mark.parametrize(
    ("text", "level"), [("maintenance", MAINT), ("FACTORY", FACTORY), (" 1 ", MAINT), ("2", FACTORY)]
)
def test_levels_by_name_or_number(text: str, level: AccessLevel) -> None:
    assert parse_level(text) is level


@pytest.mark.parametrize("text", ["read", "0", "3", "admin", ""])
def test_only_protected_levels_can_be_named(text: str) -> None:
    with pytest.raises(UsageError, match="maintenance"):
        parse_level(text)


# --- privileged operations against a device ------------------------------------------------------------


class GuardedUnit(ListUnit):
    """The loopback's list-backed unit with a real access control on the line's virtual clock."""

    def __init__(self, raws: list[bytes], clock: VirtualClock) -> None:
        super().__init__(raws)
        self.audit: list[tuple[int, AuthOutcome]] = []
        self.levels: list[int] = []
        self.access = AccessControl(
            KEYS, clock=clock, audit=lambda level, outcome: self.audit.append((level, outcome)),
            boot_salt=b"\x01\x00\x00\x00",
        )

    def set_device_time(self, new_time: int, *, level: int = 0) -> None:
        self.levels.append(level)
        super().set_device_time(new_time)

    def clear_log(self, *, level: int = 0) -> int:
        self.levels.append(level)
        return super().clear_log()

    @property
    def results(self) -> list[int]:
        return [outcome.result for _, outcome in self.audit]


def connect(records: int = 100) -> tuple[GuardedUnit, Line, Client]:
    clock = VirtualClock()
    unit = GuardedUnit(make_records(records), clock)
    line = Line(unit, clock=clock)
    return unit, line, Client(line.connect(), timeout=1.0, clock=clock)


def test_setting_the_clock_with_the_right_key() -> None:
    unit, _, client = connect()
    assert authenticate_and_set_clock(client, KEYS.maintenance, MAINT, 1_600_000_000) == 1_600_000_000
    assert unit.time == 1_600_000_000 and unit.levels == [MAINT]
    assert unit.audit == [(MAINT, AuthOutcome(AuthResult.ACCEPTED, MsgType.CLOCK_SET))]
    assert client.clock_get() == 1_600_000_000


def test_clearing_the_log_with_the_factory_key() -> None:
    unit, _, client = connect(records=100)
    assert authenticate_and_clear_log(client, KEYS.factory, FACTORY) == 100
    assert unit.first_seq == 100 and unit.levels == [FACTORY]


def test_a_wrong_key_is_refused_once_and_nothing_changes() -> None:
    unit, line, client = connect()
    with pytest.raises(DeviceError, match="refused CLOCK_SET with UNAUTHORIZED: the tag does not verify"):
        authenticate_and_set_clock(client, KEYS.factory, MAINT, 1_600_000_000)
    assert unit.time == 1_700_000_000 and unit.results == [AuthResult.BAD_TAG]
    assert line.device.frames_in == 4  # a challenge, the request (never repeated), IDENTIFY and READ_RANGE
    # (the last two read the unit's audit record of the refusal back, for the attempts left)


def test_a_lockout_is_reported_as_such() -> None:
    unit, _, client = connect()
    for _ in range(MAX_FAILURES):
        with pytest.raises(DeviceError, match="UNAUTHORIZED"):
            authenticate_and_clear_log(client, bytes(32), MAINT)
    with pytest.raises(DeviceError, match="refused AUTH_CHALLENGE with LOCKED_OUT: locked out for 60 s"):
        authenticate_and_clear_log(client, KEYS.maintenance, MAINT)
    assert unit.first_seq == 0


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda c: authenticate_and_set_clock(c, KEYS.maintenance, AccessLevel.READ, 5), "needs access"),
        (lambda c: authenticate_and_clear_log(c, KEYS.maintenance, 7), "needs access level"),  # type: ignore[arg-type]
        (lambda c: authenticate_and_set_clock(c, KEYS.maintenance, MAINT, -1), "outside"),
        (lambda c: authenticate_and_set_clock(c, KEYS.maintenance, MAINT, 2**32), "outside"),
        (lambda c: authenticate_and_clear_log(c, KEYS.maintenance[:16], MAINT), "a key is 32 bytes"),
    ],
)
def test_what_cannot_be_asked_is_refused_before_anything_is_sent(call: object, says: str) -> None:
    unit, line, client = connect()
    with pytest.raises(UsageError, match=says):
        call(client)  # type: ignore[operator]
    assert line.device.frames_in == 0 and unit.audit == []


def test_a_lost_answer_is_not_repeated_and_says_it_may_have_happened() -> None:
    unit, line, client = connect()
    device = line.device
    receive = device.receive_data

    def lose_the_answer_to_the_request(data: bytes) -> None:
        receive(data)
        if device.frames_in == 2:  # the CLOCK_SET: carried out, its answer lost on the way
            device.data_to_send(1 << 20)

    device.receive_data = lose_the_answer_to_the_request  # type: ignore[method-assign]
    with pytest.raises(LinkTimeout, match="may or may not have been carried out"):
        authenticate_and_set_clock(client, KEYS.maintenance, MAINT, 1_600_000_000)
    assert unit.time == 1_600_000_000 and device.frames_in == 2


# --- the archive check before a clear ------------------------------------------------------------------


def identify(serial: str, first: int, next_seq: int) -> IdentifyResponse:
    return IdentifyResponse(0, 2, SCHEMA_FINGERPRINT, "C65", serial, "fw", 1000, first, next_seq,
                            1_700_000_000, 0, 0, 0, 0, 115200, 4096, b"log-id-1")


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    opened = Archive.open(tmp_path / "archive.sqlite")
    opened.upsert_unit("TL-0001", "C65", "fw", SCHEMA_FINGERPRINT, first_seq=0, next_seq=100,
                       capacity_records=1000, device_time=0, operating_s=0, starts=0, trips=0, energy_wh=0)
    good, errors = scan_records(b"".join(make_records(60)))
    assert not errors
    opened.store_records("TL-0001", [record[:4] for record in good])
    with opened:
        yield opened


def test_a_fully_archived_log_may_be_cleared(archive: Archive) -> None:
    ensure_archived(archive, "TL-0001", identify("TL-0001", 0, 60))
    ensure_archived(archive, "TL-0001", identify("TL-0001", 20, 50))
    ensure_archived(archive, "TL-0009", identify("TL-0009", 70, 70))  # an empty log loses nothing


def test_a_log_not_fully_archived_is_refused(archive: Archive) -> None:
    with pytest.raises(UsageError, match=r"40 of the 100 records .*\(seqs 60\.\.99\): pull them first"):
        ensure_archived(archive, "TL-0001", identify("TL-0001", 0, 100))


def test_a_unit_never_archived_is_refused(archive: Archive) -> None:
    with pytest.raises(UsageError, match="TL-0002: 5 of the 5 records"):
        ensure_archived(archive, "TL-0002", identify("TL-0002", 10, 15))


def test_the_archive_checked_must_be_the_units(archive: Archive) -> None:
    with pytest.raises(UsageError, match="is 'TL-0002', not 'TL-0001'"):
        ensure_archived(archive, "TL-0001", identify("TL-0002", 0, 10))


def test_another_log_under_the_archived_serial_is_not_taken_for_archived(archive: Archive) -> None:
    archive.upsert_unit("TL-0001", "C65", "fw", SCHEMA_FINGERPRINT, first_seq=0, next_seq=100,
                        capacity_records=1000, device_time=0, operating_s=0, starts=0, trips=0, energy_wh=0,
                        log_id=b"archived")
    with pytest.raises(UsageError, match=r"its log \(id 6c6f672d69642d31\) is not the one archived"):
        ensure_archived(archive, "TL-0001", identify("TL-0001", 0, 60))
