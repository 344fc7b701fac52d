"""pull() against the emulated device session over an in-process line (tests/host/loopback.py).

What a user would notice: the archive holds the device's log byte for byte,
nothing twice, nothing unverified or unasked for; a re-run resumes; evictions
are reported as such; bad devices and bad lines end with a clear error in
bounded (virtual) time.
"""

from __future__ import annotations

import random
import signal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

import firmware_sim.session
from firmware_sim.impairment import LineFaults
from host.archive import Archive
from host.errors import DeviceError, Interrupted, LinkError, LinkTimeout, PullFailed, UsageError
from host.pull import PullProgress, PullResult, idle_timeout, pull
from host.transport import Guarded
from protocol.enums import ErrorCode, MsgType
from protocol.framing import Frame, FrameDecoder
from protocol.messages import AbortResponse, ErrorResponse, ReadRange, ReadSet, decode_message, encode_message
from protocol.records import scan_records
from tests.host.loopback import Line, ListUnit, VirtualClock, make_records
from tests.host.test_client_session import identify_rsp

N = 3000
RAWS = make_records(N)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with Archive.open(tmp_path / "archive.sqlite") as opened:
        yield opened


def run(line: Line, archive: Archive, **options: object) -> PullResult:
    return pull(line.connect, archive, clock=line.clock, sleep=line.clock.advance, **options)  # type: ignore[arg-type]


def archived(archive: Archive, serial: str = "TL-0001") -> list[tuple[int, bytes]]:
    return list(archive.iter_raw(serial))


def log_of(unit: ListUnit) -> list[tuple[int, bytes]]:
    return [(seq, unit.raws[seq]) for seq in range(unit.first_seq, unit.next_seq)]


class Requests:
    """Wraps a transport and decodes what the host writes."""

    def __init__(self, inner: Guarded, log: list[object]) -> None:
        self._inner = inner
        self._decoder = FrameDecoder()
        self._log = log

    def write(self, data: bytes) -> None:
        self._log += [decode_message(f) for f in self._decoder.feed(data) if isinstance(f, Frame)]
        self._inner.write(data)

    def read(self, max_bytes: int, timeout: float) -> bytes:
        return self._inner.read(max_bytes, timeout)

    def close(self) -> None:
        self._inner.close()


# --- the happy path ------------------------------------------------------------------------------------


def test_full_pull_equals_the_device_log_byte_for_byte(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    result = run(Line(unit), archive)
    assert archived(archive) == log_of(unit)
    assert (result.serial, result.added, result.first_seq, result.last_seq) == ("TL-0001", N, 0, N - 1)
    assert (result.evicted, result.retries, result.reconnects) == (0, 0, 0)
    assert (result.received, result.rejected) == (N, 0)
    assert result.bytes > sum(map(len, RAWS))
    assert set(result.to_json()) >= {
        "serial", "added", "first_seq", "last_seq", "evicted", "retries", "bytes", "elapsed_s",
    }
    (pulls,) = archive.query("SELECT added, evicted, retries, bytes FROM pulls")
    assert pulls == (N, 0, 0, result.bytes)
    assert archive.unit("TL-0001").next_seq == N


def test_a_pull_hands_the_archive_its_decoded_rows_and_decodes_nothing_twice(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_second_check(*args: object) -> None:
        raise AssertionError("the pull re-verified its records through store_records")

    stored: list[int] = []
    original = Archive.store_decoded

    def counting(self: Archive, serial: str, rows: list[tuple[object, ...]]) -> int:
        stored.append(len(rows))
        return original(self, serial, rows)

    monkeypatch.setattr(Archive, "store_records", no_second_check)
    monkeypatch.setattr(Archive, "store_decoded", counting)
    unit = ListUnit(list(RAWS))
    result = run(Line(unit), archive, commit_every=1000)
    assert archived(archive) == log_of(unit)
    assert result.added == sum(stored) == N
    assert max(stored) < 1000 + 100  # batches of commit_every, plus at most one frame


def test_a_second_pull_adds_nothing_and_fetches_nothing(archive: Archive) -> None:
    line = Line(ListUnit(list(RAWS)))
    run(line, archive)
    again = run(line, archive)
    assert (again.added, again.received, again.evicted) == (0, 0, 0)
    assert again.bytes < 300, "ABORT, IDENTIFY and the one record the log check compares, nothing more"


def test_only_new_records_are_fetched(archive: Archive) -> None:
    unit = ListUnit(RAWS[:2000])
    line = Line(unit)
    run(line, archive)
    unit.raws += RAWS[2000:]
    result = run(line, archive)
    assert (result.added, result.received) == (N - 2000, N - 2000)
    assert archived(archive) == log_of(unit)


def test_scattered_gaps_are_fetched_with_read_set(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    archive.upsert_unit(
        unit.serial, unit.model, unit.firmware, 0, first_seq=0, next_seq=N, capacity_records=N,
        device_time=0, operating_s=0, starts=0, trips=0, energy_wh=0,
    )
    held = [record for record in scan_records(b"".join(RAWS))[0] if record[0] % 10]
    archive.store_records(unit.serial, held)
    line = Line(unit)
    requests: list[object] = []
    result = pull(lambda: Requests(line.connect(), requests), archive, clock=line.clock)
    assert (result.added, result.received) == (N - len(held), N - len(held))
    assert archived(archive) == log_of(unit)
    kinds = [type(r).__name__ for r in requests]
    assert kinds[:3] == ["Abort", "Identify", "ReadRange"], "the log check reads one overlapping record"
    assert "ReadSet" in kinds and "ReadRange" not in kinds[3:]


def test_windows_respect_max_window_and_two_stay_outstanding(archive: Archive) -> None:
    unit = ListUnit(list(RAWS), max_window=500)
    line = Line(unit)
    requests: list[object] = []
    result = pull(lambda: Requests(line.connect(), requests), archive, clock=line.clock)
    assert result.added == N
    reads = [r for r in requests if type(r).__name__ == "ReadRange"]
    assert [r.count for r in reads] == [500] * 6  # type: ignore[attr-defined]
    assert line.device.frames_in == 2 + 6


def test_paced_line_stays_busy_with_record_bytes(archive: Archive) -> None:
    raws = make_records(6000)
    line = Line(ListUnit(raws), baud=115200, latency_s=0.05)
    result = run(line, archive)
    busy = sum(map(len, raws)) * 10 / 115200 / result.elapsed_s
    assert busy >= 0.95
    assert result.added == 6000


def test_progress_reports_counts_rates_and_eta(archive: Archive) -> None:
    seen: list[PullProgress] = []
    line = Line(ListUnit(list(RAWS)), baud=115200)
    run(line, archive, progress=seen.append)
    assert len(seen) > 10
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].done == seen[-1].total == N
    assert seen[-1].eta_s == 0
    middle = seen[len(seen) // 2]
    assert 0 < middle.done < N and middle.eta_s is not None and middle.eta_s > 0
    assert middle.bytes_per_s == pytest.approx(11_520, rel=0.02)  # the line rate


def test_bad_options_are_usage_errors(archive: Archive) -> None:
    line = Line(ListUnit(list(RAWS)))
    with pytest.raises(UsageError):
        run(line, archive, depth=5)
    with pytest.raises(UsageError):
        run(line, archive, window=0)


# --- interruption and resume ---------------------------------------------------------------------------


@pytest.mark.slow
def test_interrupted_pulls_resume_without_loss_or_duplicates(tmp_path: Path) -> None:
    total_bytes = 204_000
    cuts = [0, 1, 20, 150, 300] + [random.Random(seed).randrange(total_bytes) for seed in range(20)]
    for i, cut in enumerate(cuts):
        with Archive.open(tmp_path / f"a{i}.sqlite") as archive:
            unit = ListUnit(list(RAWS))
            line = Line(unit, cuts=[cut])
            with pytest.raises(LinkError):
                run(line, archive, max_reconnects=0)
            first = archive.unit(unit.serial).record_count if archive.units() else 0
            resumed = run(line, archive)
            assert archived(archive) == log_of(unit), cut
            assert first + resumed.added == N, cut
            assert resumed.received == N - first, cut  # nothing verified was fetched twice


def test_a_resume_that_starts_mid_frame_still_asks_for_full_frames(archive: Archive) -> None:
    """The device was sending when the link was cut: the new connection first hears the rest of that
    frame, which fails verification, but that is not the line's damage."""
    unit = ListUnit(list(RAWS))
    line = Line(unit, cuts=[50_000])
    with pytest.raises(LinkError):
        run(line, archive, max_reconnects=0)
    requests: list[object] = []
    pull(lambda: Requests(line.connect(), requests), archive, clock=line.clock)
    assert archived(archive) == log_of(unit)
    reads = [r for r in requests if isinstance(r, ReadRange | ReadSet)]
    assert reads and all(r.max_payload == 0 for r in reads)


def test_a_lost_link_is_reconnected_within_one_pull(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    line = Line(unit, cuts=[5_000, 60_000, 20_000, 1_000])
    result = run(line, archive)
    assert archived(archive) == log_of(unit)
    assert result.reconnects == 4 and line.connections == 5
    assert result.added == result.received == N


def test_reconnects_are_bounded(archive: Archive) -> None:
    line = Line(ListUnit(list(RAWS)), cuts=[3_000 * (i + 1) for i in range(10)])
    with pytest.raises(LinkError, match="gave up after 2 reconnects"):
        run(line, archive, max_reconnects=2)
    assert line.connections == 3
    assert 0 < archive.unit("TL-0001").record_count < N


def test_keyboard_interrupt_keeps_what_was_verified(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    line = Line(unit, baud=115200)

    def stop_midway(progress: PullProgress) -> None:
        if progress.done >= 1000:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted) as stopped:
        run(line, archive, progress=stop_midway)
    kept = archive.unit(unit.serial).record_count
    assert kept >= 1000
    assert stopped.value.kept == kept and stopped.value.exit_code == 130
    resumed = run(line, archive)
    assert resumed.received == N - kept
    assert archived(archive) == log_of(unit)


def test_a_signal_during_a_commit_keeps_that_batch(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM (as the command's handler raises it) while the archive writes a batch: the batch's
    transaction rolls back, and the rows are committed on the way out, not dropped."""
    unit = ListUnit(list(RAWS))
    line = Line(unit, baud=115200)
    store = archive.store_decoded
    calls = {"n": 0}

    def interrupted_once(serial: str, rows: list[object]) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise Interrupted(signal.SIGTERM)
        return store(serial, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(archive, "store_decoded", interrupted_once)
    with pytest.raises(Interrupted) as stopped:
        run(line, archive, commit_every=500)
    monkeypatch.undo()
    kept = archive.unit(unit.serial).record_count
    assert stopped.value.kept == kept >= 500 and stopped.value.exit_code == 143
    resumed = run(line, archive)
    assert resumed.received == N - kept
    assert archived(archive) == log_of(unit)


def test_a_stream_left_running_by_a_previous_host_is_aborted(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    line = Line(unit)
    line.device.receive_data(encode_message(ReadRange(0, 2000), 2))  # a previous host's requests,
    line.device.receive_data(encode_message(ReadRange(0, 2000), 3))  # numbered as ours will be
    line.device.data_to_send(5_000)  # it read part of the answer, then vanished
    result = run(line, archive)
    assert result.received == N
    assert archived(archive) == log_of(unit)


def peak_memory_of_a_pull(tmp_path: Path, count: int) -> int:
    raws = make_records(count)
    with Archive.open(tmp_path / f"{count}.sqlite") as archive:
        line = Line(ListUnit(raws))
        tracemalloc.start()
        try:
            assert run(line, archive, window=500, commit_every=500).added == count
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


def test_memory_does_not_grow_with_the_log(tmp_path: Path) -> None:
    small, large = peak_memory_of_a_pull(tmp_path, 2_000), peak_memory_of_a_pull(tmp_path, 8_000)
    assert large < small * 1.25, (small, large)


# --- noise ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_noisy_line_loses_duplicates_and_alters_nothing(archive: Archive, seed: int) -> None:
    # BER 1e-4 per bit; dropped and inserted bytes at 1e-5 per byte (about 1 % of full frames each).
    faults = LineFaults(bit_error_rate=1e-4, drop_rate=1e-5, insert_rate=1e-5)
    unit = ListUnit(list(RAWS))
    line = Line(unit, to_host=faults, to_device=faults, seed=seed, baud=115200)
    result = run(line, archive)
    assert archived(archive) == log_of(unit)
    assert result.added == N and result.retries > 0


def test_records_the_device_cannot_deliver_fail_the_pull_clearly(archive: Archive) -> None:
    raws = list(RAWS)
    bad = bytearray(raws[1234])
    bad[20] ^= 1
    raws[1234] = bytes(bad)  # a flash cell gone bad: the record never passes its CRC
    unit = ListUnit(raws)
    with pytest.raises(PullFailed, match="1234..1234 still missing; 40 retries in a row brought nothing"):
        run(Line(unit), archive)
    stored = archived(archive)
    assert 1234 not in dict(stored)
    assert all(raw == RAWS[seq] for seq, raw in stored)
    assert len(stored) == N - 1


def test_records_not_asked_for_are_never_archived(archive: Archive) -> None:
    """A device that sends one record more than asked after every range: the extra is dropped, so
    each RANGE_END counts a record the reader did not accept; a window whose records all came but
    whose count and digest disagree is never archived (it is asked again, then the pull fails)."""

    class Chatty(ListUnit):
        def iter_raw(self, start_seq: int, stop_seq: int) -> Iterator[bytes]:
            yield from super().iter_raw(start_seq, stop_seq)
            yield self.raws[0] if start_seq > 0 else self.raws[-1]  # one extra, out of range

    unit = Chatty(RAWS[:1000])
    with pytest.raises(PullFailed, match="never matched the count and digest"):
        run(Line(unit), archive, window=600)
    stored = archived(archive)
    assert all(raw == unit.raws[seq] for seq, raw in stored)  # the device's records, nothing else
    assert len(stored) < 1000  # not the windows whose RANGE_END contradicted them


# --- eviction ------------------------------------------------------------------------------------------


def test_records_evicted_before_any_pull_are_reported_not_requested(archive: Archive) -> None:
    unit = ListUnit(list(RAWS), first_seq=1000)
    line = Line(unit)
    requests: list[object] = []
    result = pull(lambda: Requests(line.connect(), requests), archive, clock=line.clock)
    assert (result.added, result.evicted, result.first_seq) == (N - 1000, 1000, 1000)
    assert archive.evicted_count(unit.serial) == 1000
    assert all(r.start_seq >= 1000 for r in requests if type(r).__name__ == "ReadRange")  # type: ignore[attr-defined]
    again = run(line, archive)
    assert (again.added, again.evicted) == (0, 0)


def test_eviction_during_a_pull_is_reported_as_eviction(archive: Archive) -> None:
    unit = ListUnit(list(RAWS), max_window=500)
    line = Line(unit, at_bytes=[(40_000, lambda: unit.evict_to(2200))])
    result = run(line, archive)
    stored = dict(archived(archive))
    assert all(seq in stored for seq in range(2200, N))
    assert result.evicted == 2200 - sum(1 for seq in stored if seq < 2200)
    assert result.evicted > 0
    assert result.added + result.evicted == N
    assert archive.evicted_count(unit.serial) == result.evicted


def test_eviction_between_pulls_is_reported(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    line = Line(unit, cuts=[50_000])
    with pytest.raises(LinkError):
        run(line, archive, max_reconnects=0)
    kept = archive.unit(unit.serial).record_count
    unit.evict_to(kept + 100)
    result = run(line, archive)
    assert result.evicted == 100
    assert archive.unit(unit.serial).record_count == N - 100


# --- bad devices ---------------------------------------------------------------------------------------


def test_a_schema_mismatch_is_a_device_error(archive: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(firmware_sim.session, "SCHEMA_FINGERPRINT", 0x12345678)
    with pytest.raises(DeviceError, match="schema fingerprint 0x12345678"):
        run(Line(ListUnit(list(RAWS))), archive)
    assert archive.units() == []


def test_a_protocol_version_mismatch_is_a_device_error(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(firmware_sim.session, "PROTOCOL_VERSION", 3)
    with pytest.raises(DeviceError, match="protocol version 3"):
        run(Line(ListUnit(list(RAWS))), archive)


class Refusing:
    """A device that identifies itself, then answers every READ with ERROR UNAUTHORIZED."""

    def __init__(self) -> None:
        self._decoder = FrameDecoder()
        self._out = b""

    def write(self, data: bytes) -> None:
        for frame in self._decoder.feed(data):
            assert isinstance(frame, Frame)
            if frame.msg_type == MsgType.ABORT:
                answer: object = AbortResponse(frame.seq)
            elif frame.msg_type == MsgType.IDENTIFY:
                answer = identify_rsp(frame.seq)
            else:
                answer = ErrorResponse(frame.seq, ErrorCode.UNAUTHORIZED, "log locked")
            self._out += encode_message(answer, 0)  # type: ignore[arg-type]

    def read(self, max_bytes: int, timeout: float) -> bytes:
        data, self._out = self._out[:max_bytes], self._out[max_bytes:]
        return data

    def close(self) -> None:
        pass


def test_a_refused_read_is_a_device_error_naming_the_code(archive: Archive) -> None:
    with pytest.raises(DeviceError, match="READ_RANGE with UNAUTHORIZED: log locked"):
        pull(Refusing, archive, clock=VirtualClock())


def test_a_device_sending_only_garbage_fails_within_its_deadline(archive: Archive) -> None:
    clock = VirtualClock()
    rng = random.Random(3)

    class Garbage:
        def write(self, data: bytes) -> None:
            pass

        def read(self, max_bytes: int, timeout: float) -> bytes:
            clock.advance(0.01)
            return rng.randbytes(max_bytes)

        def close(self) -> None:
            pass

    with pytest.raises(DeviceError, match="not one valid turbolog frame"):
        pull(Garbage, archive, clock=clock, timeout=1.0)
    assert clock() <= 3 * 1.0 + 0.02


class Silent:
    def __init__(self, clock: VirtualClock) -> None:
        self._clock = clock

    def write(self, data: bytes) -> None:
        pass

    def read(self, max_bytes: int, timeout: float) -> bytes:
        self._clock.advance(timeout)
        return b""

    def close(self) -> None:
        pass


def test_a_silent_device_times_out_without_reconnecting(archive: Archive) -> None:
    clock = VirtualClock()
    connections: list[Silent] = []

    def connect() -> Silent:
        connections.append(Silent(clock))
        return connections[-1]

    with pytest.raises(LinkTimeout, match="no answer to IDENTIFY in 3 x 1 s"):
        pull(connect, archive, clock=clock, sleep=clock.advance, timeout=1.0)
    assert len(connections) == 1
    assert clock() == pytest.approx(3.0)


def test_a_device_gone_silent_mid_pull_is_reconnected_a_bounded_number_of_times(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    line = Line(unit, cuts=[10_000])
    connections: list[Guarded | Silent] = []

    def connect() -> Guarded | Silent:
        connections.append(line.connect() if not connections else Silent(line.clock))
        return connections[-1]

    with pytest.raises(LinkTimeout, match="gave up after 2 reconnects"):
        pull(connect, archive, clock=line.clock, sleep=line.clock.advance, timeout=1.0, max_reconnects=2)
    assert len(connections) == 3
    assert line.clock() <= 2 * 3 * 1.0 + 0.5 + 1.0 + 0.1
    assert 0 < archive.unit(unit.serial).record_count < N


def test_a_device_that_stops_mid_pull_is_asked_again(archive: Archive) -> None:
    unit = ListUnit(list(RAWS))
    line = Line(unit, baud=115200)
    sent = {"n": 0}
    original = line.device.receive_data

    def lose_one_request(data: bytes) -> None:  # the third request never reaches the device
        sent["n"] += 1
        if sent["n"] != 3:
            original(data)

    line.device.receive_data = lose_one_request  # type: ignore[method-assign]
    result = run(line, archive, window=1000)
    assert archived(archive) == log_of(unit)
    assert result.retries >= 1
    assert result.elapsed_s >= idle_timeout(115200)
