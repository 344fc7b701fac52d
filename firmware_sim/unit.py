"""The emulated controller: one microturbine with its identity, log, clock and device time.

:class:`Unit` composes a model profile, a serial number and firmware string,
a :class:`~firmware_sim.logstore.LogStore`, a
:class:`~firmware_sim.simulator.Simulator` and a
:class:`~firmware_sim.clock.SimClock`.  At construction it restores the
lifetime counters from the log and powers the simulator up.  Between the
simulator and the log sits the device's real-time clock::

    Simulator --record (sim time)--> _DeviceTimeLog --record (device time)--> LogStore

Device time is simulated time plus the offset that CLOCK_SET changes.  Record
timestamps are device time clamped so that they never decrease, not after a
backwards clock set nor across a re-opened flash (``docs/protocol.md`` 6.5),
and within 32 bits.  A unit satisfies :class:`firmware_sim.session.UnitPort`.

The unit owns its :class:`~firmware_sim.auth.AccessControl`: its keys, its
failure count and lockout on the simulated clock, and its audit trail (EVENT
AUTH records in the log, like any record).  Its keys live on a key chip of
their own (:mod:`firmware_sim.keystore`), never in the log.

:func:`build_unit` is the factory the CLI uses: it opens the flash and the key
chip (image files or memory), makes the keys at the unit's first start, and
builds the unit on them.

The unit reads time only from the clock it is given and draws randomness only
from its seed and the random-bytes function it is given for new keys (which
never reach the log: the same seed gives the same log bytes whatever the
keys); it knows nothing of frames or lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

from protocol.auth import AuthOutcome
from protocol.enums import EngineState, EventKind, GridMode
from protocol.records import (
    EventRecord,
    FaultRecord,
    Record,
    SampleRecord,
    Snapshot,
    decode_record,
    scan_records,
)

from .auth import AccessControl
from .climate import DEFAULT_SITE, Site
from .clock import SimClock
from .errors import ConfigError
from .faults import ScriptedFault
from .flash import NorFlash
from .keystore import (
    KEY_SECTOR_COUNT,
    KEY_SECTOR_SIZE,
    KeyStore,
    RandomBytes,
    UnitKeys,
    key_chip_path,
    load_or_create_keys,
    open_key_chip,
)
from .logstore import LogStore, seeded_log_ids
from .models import ModelProfile, site_profile
from .nvstate import Counters
from .sidecar import write_identity
from .simulator import LastSeen, Simulator

FIRMWARE_VERSION = "turbosim-1.0"
DEFAULT_BAUD = 115_200
DEFAULT_MAX_WINDOW = 4096
"""Records one READ_RANGE or READ_SET may ask for."""
DEFAULT_SECTOR_SIZE = 4096
DEFAULT_SECTOR_COUNT = 512
"""2 MiB of flash: about 30,000 samples, 300 days at one every 15 minutes."""

_U32_MAX = 0xFFFFFFFF
_SNAPSHOT_LOOKBACK = 256
"""Records searched back from the newest for the last logged TET at power-up."""
_IDENTITY_SIZES = {"model": 8, "serial": 16, "firmware": 16}
"""Fixed ASCII field sizes in IDENTIFY_RSP."""


class _DeviceTimeLog:
    """The simulator's log sink: stamps records with device time, never decreasing."""

    def __init__(self, store: LogStore) -> None:
        self._store = store
        self.offset = 0
        """Device time minus simulated time, whole seconds."""
        last = store.read(store.next_seq - 1) if store.next_seq else None
        self.last_timestamp = int.from_bytes(last[4:8], "little") if last is not None else 0

    def append(self, record: Record) -> int:
        timestamp = min(max(record.timestamp + self.offset, self.last_timestamp), _U32_MAX)
        self.last_timestamp = timestamp
        return self._store.append(replace(record, timestamp=timestamp))


def last_seen(store: LogStore) -> LastSeen | None:
    """What the log shows of the moment power went: None for an empty log.

    The state is the one the newest record shows (its snapshot's, or the state
    an event left the engine in); the TET comes from the newest sample or fault
    among the last records, when there is one.
    """
    newest: Record | None = None
    tet_c: float | None = None
    for seq in range(store.next_seq - 1, max(store.first_seq, store.next_seq - _SNAPSHOT_LOOKBACK) - 1, -1):
        raw = store.read(seq)
        if raw is None:
            continue
        record = decode_record(raw)
        newest = newest or record
        if isinstance(record, SampleRecord | FaultRecord):
            tet_c = (record.snapshot if isinstance(record, SampleRecord) else record.freeze).tet_avg_c
            break
    if newest is None:
        return None
    if isinstance(newest, SampleRecord):
        state = newest.snapshot.state
    elif isinstance(newest, FaultRecord):
        state = newest.freeze.state
    elif isinstance(newest, EventRecord):
        state = newest.state_to
    else:
        return LastSeen(newest.timestamp, EngineState.STAND_BY, tet_c)
    try:
        return LastSeen(newest.timestamp, EngineState(state), tet_c)
    except ValueError:
        return LastSeen(newest.timestamp, EngineState.STAND_BY, tet_c)


class Unit:
    """One emulated controller; see the module docstring.

    *clock* is a :class:`SimClock`, or a plain function of simulated seconds
    (wrapped in a SimClock running at its pace, so that :meth:`fast_forward`
    works on either).  *store*'s counters are restored into the simulator.
    *keys* are the unit's secrets.  *flash* and *key_flash*, if given, are the
    chips under *store* and under the keys, closed by :meth:`close`.
    """

    def __init__(
        self,
        profile: ModelProfile,
        serial: str,
        *,
        seed: int,
        store: LogStore,
        keys: UnitKeys,
        clock: SimClock | Callable[[], float],
        duty: str = "baseload",
        sample_interval_s: int = 900,
        scripted_faults: Sequence[ScriptedFault] = (),
        mode: GridMode = GridMode.GRID_CONNECT,
        baud: int = DEFAULT_BAUD,
        max_window: int = DEFAULT_MAX_WINDOW,
        site: Site = DEFAULT_SITE,
        firmware: str = FIRMWARE_VERSION,
        flash: NorFlash | None = None,
        key_flash: NorFlash | None = None,
    ) -> None:
        for field, value in (("model", profile.name), ("serial", serial), ("firmware", firmware)):
            size = _IDENTITY_SIZES[field]
            if not value.isascii() or not 0 < len(value) <= size:
                raise ConfigError(f"{field} {value!r} must be 1 to {size} ASCII characters")
        self.baud = DEFAULT_BAUD
        self.set_baud(baud)
        if not 1 <= max_window <= _U32_MAX:
            raise ConfigError(f"max_window {max_window} is outside 1..{_U32_MAX}")
        self.profile = profile
        self.serial = serial
        self.firmware = firmware
        self.max_window = max_window
        self._store = store
        self._chips = [chip for chip in (flash, key_flash) if chip is not None]
        self._clock = clock if isinstance(clock, SimClock) else SimClock(clock(), wall=clock)
        self._log = _DeviceTimeLog(store)
        power_up_seq = store.next_seq
        self._sim = Simulator(
            profile, seed=seed, start_time=int(self._clock.now()), log=self._log, duty=duty, mode=mode,
            sample_interval_s=sample_interval_s, counters=store.counters, scripted_faults=scripted_faults,
            site=site, last_seen=last_seen(store),
        )
        self.max_tick_s: float | None = None
        """The most simulated time one :meth:`tick` lives (None: no bound); a server sets it."""
        self.access = AccessControl(
            keys, clock=self._clock.now, audit=self._log_auth, boot_salt=power_up_seq.to_bytes(4, "little")
        )
        """Keys, failures and lockout of the service port (the seq of this power-up's
        POWER_UP record makes its nonces unique to this power-up)."""

    # --- identity and log (the session's UnitPort) -------------------------

    @property
    def model(self) -> str:
        return self.profile.name

    @property
    def capacity_records(self) -> int:
        return self._store.capacity_records

    @property
    def first_seq(self) -> int:
        return self._store.first_seq

    @property
    def next_seq(self) -> int:
        return self._store.next_seq

    @property
    def counters(self) -> Counters:
        return self._sim.counters

    @property
    def log_id(self) -> bytes:
        return self._store.log_id

    @property
    def state(self) -> EngineState:
        return self._sim.state

    @property
    def scripted_unraised(self) -> tuple[ScriptedFault, ...]:
        """The scripted faults this run has not raised."""
        return self._sim.scripted_unraised

    def iter_raw(self, start_seq: int, stop_seq: int) -> Iterator[bytes]:
        return self._store.iter_raw(start_seq, stop_seq)

    # --- time ----------------------------------------------------------------

    def set_baud(self, baud: int) -> None:
        """The line's speed, as IDENTIFY reports it (a client may change it over RFC 2217)."""
        if baud <= 0:
            raise ConfigError(f"baud must be positive, not {baud}")
        self.baud = baud

    def tick(self) -> bool:
        """Run the machine up to the clock's present; True when it got there.

        With :attr:`max_tick_s` set, one tick lives at most that much simulated time and the
        clock loses the rest (False): a unit asked to run faster than the machine can simulate
        runs as fast as it can, and whatever calls it (a request, the serving loop) waits at most
        one bounded step.
        """
        target = self._clock.now()
        limit = self.max_tick_s
        if limit is not None and target - self._sim.now > limit:
            reached = self._sim.now + limit
            self._sim.advance_to(reached)
            self._clock.lose(target - reached)
            return False
        self._sim.advance_to(target)
        return True

    def fast_forward(self, seconds: float) -> None:
        """Live *seconds* of history at once (e.g. 2000 h), as fast as the simulator goes."""
        self._clock.skip(seconds)
        self._sim.advance_to(self._clock.now())

    def device_time(self) -> int:
        """The controller's clock: Unix seconds (UTC), within 32 bits."""
        return min(max(int(self._clock.now()) + self._log.offset, 0), _U32_MAX)

    def set_device_time(self, new_time: int, *, level: int = 0) -> None:
        """Set the controller's clock; logs EVENT CLOCK_SET (value_a old, value_b new) at *level*."""
        if not 0 <= new_time <= _U32_MAX:
            raise ConfigError(f"device time {new_time} is outside 32 bits")
        self.tick()
        old = self.device_time()
        now = int(self._clock.now())
        self._log.offset = new_time - now
        state = int(self._sim.state)
        self._log.append(EventRecord(0, now, EventKind.CLOCK_SET, state, state, level, old, new_time))

    # --- commands --------------------------------------------------------------

    def clear_log(self, *, level: int = 0) -> int:
        """Clear the log and record it (EVENT LOG_CLEARED at *level*, value_a..value_b = the
        seqs cleared); returns the new first_seq, which is that event's."""
        self.tick()
        cleared = (self._store.first_seq, self._store.clear())
        state = int(self._sim.state)
        now = int(self._clock.now())
        self._log.append(EventRecord(0, now, EventKind.LOG_CLEARED, state, state, level, *cleared))
        return self._store.first_seq

    def _log_auth(self, level: int, outcome: AuthOutcome) -> None:
        """The access control's audit trail: EVENT AUTH (value_a, value_b as AuthOutcome packs them)."""
        self.tick()
        state = int(self._sim.state)
        now = int(self._clock.now())
        self._log.append(EventRecord(0, now, EventKind.AUTH, state, state, level, *outcome.event_values()))

    def live_snapshot(self) -> Snapshot:
        """The machine now."""
        self.tick()
        return self._sim.snapshot()

    def inject_fault(self, code: int) -> None:
        """Raise catalogue fault *code* now; ConfigError for an unknown code."""
        self.tick()
        self._sim.inject_fault(code)

    # --- lifetime ----------------------------------------------------------------

    def power_down(self) -> None:
        """Switch the unit off as its operator would: stop the engine, let it come to rest
        (simulated time runs on through the cooldown), then power the controller off.  A unit
        closed without this lost its power: its next power-up logs the loss."""
        self.tick()
        self._sim.switch_off()
        self._clock.skip(max(0.0, self._sim.now - self._clock.now()))

    def close(self) -> None:
        """Close the chips the unit was given (their image files stay as they are)."""
        for chip in self._chips:
            chip.close()

    def __enter__(self) -> Unit:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def build_unit(
    model: str,
    serial: str,
    *,
    seed: int,
    clock: SimClock | Callable[[], float],
    flash_path: str | os.PathLike[str] | None = None,
    sector_size: int | None = None,
    sector_count: int | None = None,
    duty: str = "baseload",
    sample_interval_s: int = 900,
    scripted_faults: Sequence[ScriptedFault] = (),
    mode: GridMode = GridMode.GRID_CONNECT,
    baud: int = DEFAULT_BAUD,
    max_window: int = DEFAULT_MAX_WINDOW,
    site: Site = DEFAULT_SITE,
    random_bytes: RandomBytes = os.urandom,
    simulated: dict[str, Any] | None = None,
) -> Unit:
    """A unit of *model* on a flash in memory, or in the image at *flash_path*.

    A new chip (in memory, or a missing or empty image file) gets the geometry
    given, or the defaults.  An existing image keeps its own; a geometry given
    must match it (:class:`~firmware_sim.flash.FlashImageError` otherwise).
    The key chip is in memory too, or in the image ``<flash_path>.keys``; at
    the unit's first start (no keys on it yet) new keys are drawn from
    *random_bytes* and saved.  An image gets its identity sidecar
    (:mod:`firmware_sim.sidecar`) beside it, so that it can be read out like
    any unit's (with *simulated*, how the unit was simulated, when given).  The unit owns both
    chips: close the unit to close them.
    """
    profile = site_profile(model, site)
    if flash_path is None:
        flash = NorFlash(sector_size or DEFAULT_SECTOR_SIZE, sector_count or DEFAULT_SECTOR_COUNT)
    elif os.path.exists(flash_path) and os.path.getsize(flash_path) > 0:
        flash = NorFlash.open(flash_path, sector_size, sector_count)
    else:
        flash = NorFlash.open(
            flash_path, sector_size or DEFAULT_SECTOR_SIZE, sector_count or DEFAULT_SECTOR_COUNT
        )
    chips = [flash]
    try:
        if flash_path is None:
            key_flash = NorFlash(KEY_SECTOR_SIZE, KEY_SECTOR_COUNT)
        else:
            key_flash = open_key_chip(key_chip_path(flash_path))
        chips.append(key_flash)
        keys = load_or_create_keys(KeyStore(key_flash), random_bytes)
        unit = Unit(
            profile, serial, seed=seed, store=LogStore(flash, new_log_id=seeded_log_ids(model, serial, seed)),
            keys=keys, clock=clock, duty=duty,
            sample_interval_s=sample_interval_s, scripted_faults=scripted_faults, mode=mode, baud=baud,
            max_window=max_window, site=site, flash=flash, key_flash=key_flash,
        )
        if flash_path is not None:
            write_identity(flash_path, serial, profile.name, unit.firmware, simulated)
        return unit
    except BaseException:
        for chip in chips:
            chip.close()
        raise


def image_times(path: str | os.PathLike[str] | None) -> tuple[float | None, float | None]:
    """(commissioned, newest) record timestamps of an existing image, to resume from the newest.

    The unit was commissioned at its first record (seq 0) while the log still holds it;
    after a clear or an eviction that is unknown (None) and ``--start`` stands for it.
    """
    if path is None or not os.path.exists(path) or os.path.getsize(path) == 0:
        return None, None
    with NorFlash.open(path) as flash:
        store = LogStore(flash)
        if store.next_seq == store.first_seq:
            return None, None
        first = store.read(0) if store.first_seq == 0 else None
        last = store.read(store.next_seq - 1)
    return _timestamp(first), _timestamp(last)


def _timestamp(raw: bytes | None) -> float | None:
    if raw is None:
        return None
    good, _ = scan_records(raw)  # the record header as protocol defines it
    return float(good[0][1]) if good else None
