"""LogStore: append, read, wrap, clear, recovery, counters and wear on a NorFlash."""

from __future__ import annotations

import random
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from firmware_sim.flash import FlashGeometryError, NorFlash
from firmware_sim.logstore import SECTOR_HEADER_SIZE, LogFullError, LogStore, seeded_log_ids
from firmware_sim.nvstate import LogSink
from protocol.counters import LifetimeCounters
from protocol.crc import crc32c
from protocol.enums import EngineState, EventKind, Severity, Subsystem
from protocol.image_formats import SECTOR_HEADER, SECTOR_HEADER_SEALED, SECTOR_MAGIC
from protocol.records import (
    EventRecord,
    FaultRecord,
    Record,
    SampleRecord,
    Snapshot,
    UnknownRecord,
    decode_record,
    encode_record,
)

SECTOR = 1024
NO_COUNTS = LifetimeCounters()


def snapshot(operating_s: int = 0, starts: int = 0, trips: int = 0, energy_wh: int = 0) -> Snapshot:
    return Snapshot(
        state=EngineState.LOAD, mode=0, active_fault=0, speed_rpm=96000, power_w=28_500,
        tet1_c_x10=6_010, tet2_c_x10=5_990, compressor_inlet_c_x10=150, ambient_c_x10=150,
        ambient_pressure_kpa_x100=10_132, fuel_valve_pct_x10=800, fuel_power_w=115_000,
        dc_bus_v_x10=7_600, grid_voltage_v_x10=4_800, grid_freq_hz_x1000=60_000,
        operating_s=operating_s, starts=starts, trips=trips, energy_wh=energy_wh,
    )


class Machine:
    """A seeded stream of sample, fault and event records whose counters only grow."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.time = 1_700_000_000
        self.counters = LifetimeCounters()

    def record(self) -> Record:
        rng, c = self.rng, self.counters
        self.time += 60
        c = replace(c, operating_s=c.operating_s + 60, energy_wh=c.energy_wh + rng.randint(0, 500))
        self.counters = c
        roll = rng.random()
        if roll < 0.75:
            return SampleRecord(0, self.time, snapshot(c.operating_s, c.starts, c.trips, c.energy_wh))
        if roll < 0.85:
            severity = rng.choice(list(Severity))
            if severity.is_failure:
                self.counters = c = replace(c, trips=c.trips + 1)
            freeze = snapshot(c.operating_s, c.starts, c.trips, c.energy_wh)
            return FaultRecord(0, self.time, rng.randint(1, 9999), severity, Subsystem.INVERTER, 0, freeze)
        kind = rng.choice([EventKind.START, EventKind.STOP, EventKind.STATE_CHANGE])
        if kind is EventKind.START:
            self.counters = replace(c, starts=c.starts + 1)
        return EventRecord(0, self.time, kind, 0, 4, 0, rng.getrandbits(32), rng.getrandbits(32))


def state(store: LogStore) -> tuple[int, int, LifetimeCounters, list[bytes]]:
    return store.first_seq, store.next_seq, store.counters, list(store.iter_raw(0, store.next_seq))


def fill(store: LogStore, machine: Machine, count: int) -> dict[int, bytes]:
    written = {}
    for _ in range(count):
        record = machine.record()
        seq = store.append(record)
        written[seq] = encode_record(replace(record, seq=seq))
    return written


def test_a_fresh_flash_is_an_empty_log() -> None:
    store = LogStore(NorFlash(SECTOR, 8))
    assert (store.first_seq, store.next_seq, store.counters) == (0, 0, LifetimeCounters())
    assert store.read(0) is None and list(store.iter_raw(0, 100)) == []
    assert store.capacity_records == 7 * ((SECTOR - SECTOR_HEADER_SIZE) // 70)  # 70 bytes: a sample


def test_append_stores_the_encoded_record_under_the_next_seq() -> None:
    store = LogStore(NorFlash(SECTOR, 8))
    records: list[Record] = [
        SampleRecord(999, 1_700_000_000, snapshot(3600, 2, 0, 50_000)),
        FaultRecord(7, 1_700_000_060, 4021, Severity.FAST_SHUTDOWN, Subsystem.GENERATOR, 3,
                    snapshot(3660, 2, 1, 50_100)),
        EventRecord(0, 1_700_000_061, EventKind.STOP, EngineState.LOAD, EngineState.WARMDOWN),
        UnknownRecord(0, 1_700_000_062, 77, b"from a newer firmware"),
    ]
    for expected_seq, record in enumerate(records):
        assert store.append(record) == expected_seq
    for seq, record in enumerate(records):
        raw = store.read(seq)
        assert raw == encode_record(replace(record, seq=seq))
        assert decode_record(raw) == replace(record, seq=seq)
    assert (store.first_seq, store.next_seq) == (0, 4)
    assert store.read(4) is None and store.read(-1) is None
    assert store.counters == LifetimeCounters(3660, 2, 1, 50_100), (
        "events and unknown records carry no counters"
    )


def test_iter_raw_yields_held_records_in_order() -> None:
    store = LogStore(NorFlash(SECTOR, 8))
    written = fill(store, Machine(1), 50)
    assert list(store.iter_raw(0, 50)) == [written[s] for s in range(50)]
    assert list(store.iter_raw(10, 13)) == [written[10], written[11], written[12]]
    assert list(store.iter_raw(45, 1000)) == [written[s] for s in range(45, 50)]
    assert list(store.iter_raw(30, 30)) == [] and list(store.iter_raw(40, 20)) == []
    assert list(store.iter_raw(50, 60)) == []


def test_iter_raw_follows_the_log_as_it_changes() -> None:
    store = LogStore(NorFlash(SECTOR, 8))
    machine = Machine(2)
    fill(store, machine, 5)
    stream = store.iter_raw(0, 8)
    assert decode_record(next(stream)).seq == 0
    fill(store, machine, 5)
    assert [decode_record(raw).seq for raw in stream] == [1, 2, 3, 4, 5, 6, 7]
    stream = store.iter_raw(0, 100)
    next(stream)
    store.clear()
    assert list(stream) == [], "records cleared before the stream reached them are not sent"


def test_a_full_ring_evicts_its_oldest_sector() -> None:
    store = LogStore(NorFlash(SECTOR, 8))
    machine = Machine(3)
    written: dict[int, bytes] = {}
    firsts = []
    while len(set(firsts)) < 5:
        written |= fill(store, machine, 1)
        firsts.append(store.first_seq)
    assert firsts == sorted(firsts), "first_seq never moves back"
    steps = {b - a for a, b in zip(firsts, firsts[1:], strict=False) if b != a}
    assert all(10 <= step <= 40 for step in steps), f"a sector's worth of records at a time, got {steps}"
    first, next_seq = store.first_seq, store.next_seq
    assert store.read(first - 1) is None
    assert list(store.iter_raw(0, next_seq)) == [written[s] for s in range(first, next_seq)]
    assert next_seq - first >= 7 * (SECTOR - SECTOR_HEADER_SIZE) // 74


def test_clear_empties_the_log_and_seqs_carry_on() -> None:
    store = LogStore(NorFlash(SECTOR, 8))
    machine = Machine(4)
    fill(store, machine, 30)
    counters = store.counters
    assert store.clear() == 30
    assert (store.first_seq, store.next_seq, store.counters) == (30, 30, counters)
    assert store.read(29) is None and list(store.iter_raw(0, 100)) == []
    assert store.append(machine.record()) == 30
    assert [decode_record(raw).seq for raw in store.iter_raw(0, 100)] == [30]
    assert store.clear() == 31 and store.clear() == 31
    assert LogStore(NorFlash(SECTOR, 2)).clear() == 0


def test_sink_interface() -> None:
    sink: LogSink = LogStore(NorFlash(SECTOR, 4))
    assert sink.append(EventRecord(0, 0, EventKind.POWER_UP)) == 0


def _scenario(name: str) -> NorFlash:
    flash = NorFlash(SECTOR, 6)
    store = LogStore(flash)
    machine = Machine(5)
    if name == "partial sector":
        fill(store, machine, 5)
    elif name == "wrapped":
        fill(store, machine, 300)
    elif name == "cleared":
        fill(store, machine, 40)
        store.clear()
    elif name == "cleared and wrapped":
        fill(store, machine, 40)
        store.clear()
        fill(store, machine, 200)
    elif name == "events after a wrap":
        fill(store, machine, 300)
        for _ in range(100):
            store.append(EventRecord(0, 0, EventKind.STATE_CHANGE))
    return flash


@pytest.mark.parametrize(
    "name", ["empty", "partial sector", "wrapped", "cleared", "cleared and wrapped", "events after a wrap"]
)
def test_recovery_rebuilds_the_same_log(name: str) -> None:
    flash = _scenario(name)
    live = LogStore(flash)
    twin_flash = flash.copy()
    recovered = LogStore(twin_flash)
    assert state(recovered) == state(live)
    probe = SampleRecord(0, 1_800_000_000, snapshot(10**6, 10**3, 10, 10**9))
    assert recovered.append(probe) == live.append(probe)
    assert state(recovered) == state(live)
    assert twin_flash.read(0, twin_flash.size) == flash.read(0, flash.size)


def test_counters_survive_wrap_clear_and_reopen() -> None:
    flash = NorFlash(SECTOR, 4)
    store = LogStore(flash)
    store.append(SampleRecord(0, 1, snapshot(7200, 3, 1, 123_456)))
    expected = LifetimeCounters(7200, 3, 1, 123_456)
    for _ in range(400):
        store.append(EventRecord(0, 2, EventKind.STATE_CHANGE))
    assert store.first_seq > 0 and store.read(0) is None, "the sample itself was evicted"
    assert store.counters == expected and LogStore(flash).counters == expected
    store.clear()
    assert store.counters == expected and LogStore(flash).counters == expected
    store = LogStore(flash)
    store.append(FaultRecord(0, 3, 1, Severity.NORMAL_SHUTDOWN, 0, 0, snapshot(7300, 3, 2, 123_500)))
    assert LogStore(flash).counters == LifetimeCounters(7300, 3, 2, 123_500)


def test_a_log_in_an_image_file_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "flash.img"
    with NorFlash.open(path, sector_size=4096, sector_count=8) as flash:
        store = LogStore(flash)
        written = fill(store, Machine(6), 700)
        before = state(store)
    with NorFlash.open(path) as flash:
        store = LogStore(flash)
        assert state(store) == before
        assert all(store.read(seq) == raw for seq, raw in written.items() if seq >= store.first_seq)


def test_damage_after_the_last_record_moves_appends_to_a_fresh_sector() -> None:
    flash = NorFlash(SECTOR, 4)
    store = LogStore(flash)
    written = fill(store, Machine(7), 3)
    end = SECTOR_HEADER_SIZE + sum(len(raw) for raw in written.values())
    flash.program(end + 20, b"\x00")
    store = LogStore(flash)
    assert list(store.iter_raw(0, 10)) == list(written.values())
    seq = store.append(EventRecord(0, 9, EventKind.POWER_UP))
    assert seq == 3
    assert flash.read(SECTOR + SECTOR_HEADER_SIZE, 26) == store.read(3), "the next sector took it"
    assert flash.read(end, 20) == b"\xff" * 20, "nothing was programmed over the damage"
    assert state(LogStore(flash)) == state(store)


def test_a_corrupt_record_in_an_old_sector_hides_only_the_rest_of_that_sector() -> None:
    flash = NorFlash(SECTOR, 6)
    store = LogStore(flash)
    written = fill(store, Machine(8), 60)
    base_seq = SECTOR_HEADER.parse(flash.read(SECTOR, SECTOR_HEADER_SIZE)).base_seq
    broken = base_seq + 2
    crc_at = SECTOR + SECTOR_HEADER_SIZE + sum(len(written[s]) for s in range(base_seq, broken + 1)) - 4
    assert flash.read(crc_at, 4) == written[broken][-4:] != bytes(4)
    flash.program(crc_at, bytes(4))
    recovered = LogStore(flash)
    held = {decode_record(raw).seq for raw in recovered.iter_raw(0, 100)}
    lost = set(written) - held
    assert broken in lost and broken - 1 in held and 59 in held
    assert all(recovered.read(seq) is None for seq in lost)
    assert all(recovered.read(seq) == written[seq] for seq in held)
    assert recovered.next_seq == 60 and recovered.append(EventRecord(0, 0, EventKind.POWER_UP)) == 60


def oracle_header(
    generation: int, base_seq: int, first_seq: int, counters: LifetimeCounters, log_id: bytes = bytes(8)
) -> bytes:
    """A sector header built by construct from its definition (the oracle)."""
    fields = {"magic": SECTOR_MAGIC, "generation": generation, "base_seq": base_seq, "first_seq": first_seq,
              **asdict(counters), "log_id": log_id}
    return bytes(SECTOR_HEADER.build({**fields, "crc": crc32c(SECTOR_HEADER_SEALED.build(fields))}))


def newest_generation(flash: NorFlash) -> int:
    """The highest generation among the sector headers on *flash* (-1 if none), read by construct."""
    raws = [flash.read(index * flash.sector_size, SECTOR_HEADER_SIZE) for index in range(flash.sector_count)]
    generations = [SECTOR_HEADER.parse(raw).generation for raw in raws if raw.startswith(SECTOR_MAGIC)]
    return max(generations, default=-1)


def write_sector(
    flash: NorFlash,
    generation: int,
    base_seq: int,
    first_seq: int,
    seqs: list[int],
    counters: LifetimeCounters = NO_COUNTS,
) -> list[bytes]:
    """Lay a sector out with its header built by construct (the oracle); return its records."""
    start = generation % flash.sector_count * flash.sector_size
    flash.program(start, oracle_header(generation, base_seq, first_seq, counters))
    records = [encode_record(EventRecord(seq, 5, EventKind.START, value_a=generation)) for seq in seqs]
    flash.program(start + SECTOR_HEADER_SIZE, b"".join(records))
    return records


def test_the_sector_headers_written_are_what_construct_builds() -> None:
    flash = NorFlash(SECTOR, 4)
    store, machine = LogStore(flash), Machine(5)
    opened: list[tuple[int, int, int, LifetimeCounters, bytes]] = []
    while len(opened) < 6:  # wraps the 4-sector ring, so evictions move first_seq; the 5th is a clear
        counters, next_seq = store.counters, store.next_seq
        if len(opened) == 4:
            store.clear()
        else:
            store.append(machine.record())
        generation = newest_generation(flash)
        if generation == len(opened):
            opened.append((generation, next_seq, store.first_seq, counters, store.log_id))
    for generation, base_seq, first_seq, counters, log_id in opened[-4:]:
        raw = flash.read(generation % 4 * SECTOR, SECTOR_HEADER_SIZE)
        assert raw == oracle_header(generation, base_seq, first_seq, counters, log_id)
    assert opened[4][1] == opened[4][2], "a clear opens a sector whose first_seq is its base_seq"
    assert opened[5][2] > 0 and opened[3][3] != NO_COUNTS
    log_ids = [entry[4] for entry in opened]
    assert len(set(log_ids[:4])) == 1, "a log keeps its id across sectors"
    assert log_ids[4] == log_ids[5] != log_ids[3], "a clear makes a new log"


def test_the_on_flash_layout_is_the_documented_one() -> None:
    flash = NorFlash(SECTOR, 4)
    (record,) = write_sector(flash, 6, 0xFFFFFFFD, 0xFFFFFFF0, [0xFFFFFFFD], LifetimeCounters(3600, 2, 1, 99))
    store = LogStore(flash)
    assert (store.first_seq, store.next_seq) == (0xFFFFFFFD, 0xFFFFFFFE)
    assert store.counters == LifetimeCounters(3600, 2, 1, 99)
    assert store.read(0xFFFFFFFD) == record
    assert store.append(EventRecord(0, 6, EventKind.STOP)) == 0xFFFFFFFE
    with pytest.raises(LogFullError):
        store.append(EventRecord(0, 7, EventKind.STOP))


def test_recovery_follows_only_the_chain_of_sectors_behind_the_newest() -> None:
    flash = NorFlash(SECTOR, 5)
    write_sector(flash, 1, 10, 10, [10, 11, 12])
    write_sector(flash, 7, 20, 0, [20, 21, 22, 23])
    overlapped = write_sector(flash, 8, 23, 0, [23, 24])
    newest = write_sector(flash, 9, 25, 0, [25, 99])
    store = LogStore(flash)
    assert (store.first_seq, store.next_seq) == (20, 26), "generation 1 is not behind generation 7"
    assert store.read(23) == overlapped[0], "a sector's records stop at the next sector's base_seq"
    assert store.read(24) == overlapped[1] and store.read(25) == newest[0]
    assert store.append(EventRecord(0, 6, EventKind.STOP)) == 26
    assert flash.read(SECTOR_HEADER_SIZE, 26) == store.read(26), "a record out of sequence closed the head"
    assert flash.read(SECTOR, 4) == SECTOR_MAGIC, "stale sector 1 is left alone until the ring reaches it"


@pytest.mark.parametrize("geometry", [(SECTOR, 1), (256, 16)])
def test_a_flash_too_small_for_a_log_is_refused(geometry: tuple[int, int]) -> None:
    with pytest.raises(FlashGeometryError):
        LogStore(NorFlash(*geometry))


def test_wear_is_even_over_ten_wraps() -> None:
    flash = NorFlash(SECTOR, 16)
    store = LogStore(flash)
    machine = Machine(9)
    while min(flash.erase_counts()) < 10:
        store.append(machine.record())
    counts = flash.erase_counts()
    assert max(counts) / (sum(counts) / len(counts)) <= 1.2, counts


def test_a_log_keeps_its_id_across_power_ups_and_a_clear_makes_a_new_one() -> None:
    flash = NorFlash(SECTOR, 4)
    store, machine = LogStore(flash, new_log_id=seeded_log_ids("C60", "S1", 1)), Machine(3)
    for _ in range(40):
        store.append(machine.record())
    first = store.log_id
    assert LogStore(flash).log_id == first, "the id is in the flash, not in the object"
    store.clear()
    cleared = LogStore(flash).log_id
    assert cleared != first and len(cleared) == 8
    store = LogStore(flash, new_log_id=seeded_log_ids("C60", "S1", 1))
    store.clear()
    assert LogStore(flash).log_id not in (first, cleared), "every clear, a new id"


def test_two_seeds_make_two_log_ids_and_one_seed_the_same() -> None:
    def log_id(seed: int) -> bytes:
        store = LogStore(NorFlash(SECTOR, 4), new_log_id=seeded_log_ids("C60", "C60-000001", seed))
        store.append(Machine(seed).record())
        return store.log_id

    assert log_id(1) == log_id(1) != log_id(2)
