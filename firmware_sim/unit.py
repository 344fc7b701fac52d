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

:func:`build_unit` is the factory the CLI uses: it opens the flash (an image
file or memory) and builds the unit on it.

The unit reads time only from the clock it is given and draws randomness
only from its seed; it knows nothing of frames or lines.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from types import TracebackType

from protocol.enums import EngineState, EventKind, GridMode
from protocol.records import EventRecord, Record, Snapshot

from .climate import DEFAULT_SITE, Site
from .clock import SimClock
from .errors import ConfigError
from .faults import ScriptedFault
from .flash import NorFlash
from .logstore import LogStore
from .models import ModelProfile, get_profile
from .nvstate import Counters
from .simulator import Simulator

FIRMWARE_VERSION = "turbosim-1.0"
DEFAULT_BAUD = 115_200
DEFAULT_MAX_WINDOW = 4096
"""Records one READ_RANGE or READ_SET may ask for."""
DEFAULT_SECTOR_SIZE = 4096
DEFAULT_SECTOR_COUNT = 512
"""2 MiB of flash: about 30,000 samples, 300 days at one every 15 minutes."""

_U32_MAX = 0xFFFFFFFF
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


class Unit:
    """One emulated controller; see the module docstring.

    *clock* is a :class:`SimClock`, or a plain function of simulated seconds
    (wrapped in a SimClock running at its pace, so that :meth:`fast_forward`
    works on either).  *store*'s counters are restored into the simulator.
    *flash*, if given, is the chip under *store*, closed by :meth:`close`.
    """

    def __init__(
        self,
        profile: ModelProfile,
        serial: str,
        *,
        seed: int,
        store: LogStore,
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
    ) -> None:
        for field, value in (("model", profile.name), ("serial", serial), ("firmware", firmware)):
            size = _IDENTITY_SIZES[field]
            if not value.isascii() or not 0 < len(value) <= size:
                raise ConfigError(f"{field} {value!r} must be 1 to {size} ASCII characters")
        if baud <= 0:
            raise ConfigError(f"baud must be positive, not {baud}")
        if not 1 <= max_window <= _U32_MAX:
            raise ConfigError(f"max_window {max_window} is outside 1..{_U32_MAX}")
        self.profile = profile
        self.serial = serial
        self.firmware = firmware
        self.baud = baud
        self.max_window = max_window
        self._store = store
        self._flash = flash
        self._clock = clock if isinstance(clock, SimClock) else SimClock(clock(), wall=clock)
        self._log = _DeviceTimeLog(store)
        self._sim = Simulator(
            profile, seed=seed, start_time=int(self._clock.now()), log=self._log, duty=duty, mode=mode,
            sample_interval_s=sample_interval_s, counters=store.counters, scripted_faults=scripted_faults,
            site=site,
        )

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
    def state(self) -> EngineState:
        return self._sim.state

    def iter_raw(self, start_seq: int, stop_seq: int) -> Iterator[bytes]:
        return self._store.iter_raw(start_seq, stop_seq)

    # --- time ----------------------------------------------------------------

    def tick(self) -> None:
        """Run the machine up to the clock's present."""
        self._sim.advance_to(self._clock.now())

    def fast_forward(self, seconds: float) -> None:
        """Live *seconds* of history at once (e.g. 2000 h), as fast as the simulator goes."""
        self._clock.skip(seconds)
        self.tick()

    def device_time(self) -> int:
        """The controller's clock: Unix seconds (UTC), within 32 bits."""
        return min(max(int(self._clock.now()) + self._log.offset, 0), _U32_MAX)

    def set_device_time(self, new_time: int) -> None:
        """Set the controller's clock; logs EVENT CLOCK_SET (value_a old, value_b new)."""
        if not 0 <= new_time <= _U32_MAX:
            raise ConfigError(f"device time {new_time} is outside 32 bits")
        self.tick()
        old = self.device_time()
        now = int(self._clock.now())
        self._log.offset = new_time - now
        state = int(self._sim.state)
        self._log.append(EventRecord(0, now, EventKind.CLOCK_SET, state, state, 0, old, new_time))

    # --- commands --------------------------------------------------------------

    def clear_log(self) -> int:
        """Clear the log and record it (EVENT LOG_CLEARED, value_a..value_b = the seqs
        cleared); returns the new first_seq, which is that event's."""
        self.tick()
        cleared = (self._store.first_seq, self._store.clear())
        state = int(self._sim.state)
        now = int(self._clock.now())
        self._log.append(EventRecord(0, now, EventKind.LOG_CLEARED, state, state, 0, *cleared))
        return self._store.first_seq

    def live_snapshot(self) -> Snapshot:
        """The machine now."""
        self.tick()
        return self._sim.snapshot()

    def inject_fault(self, code: int) -> None:
        """Raise catalogue fault *code* now; ValueError for an unknown code."""
        self.tick()
        self._sim.inject_fault(code)

    # --- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """Close the flash the unit was given (its image file stays as it is)."""
        if self._flash is not None:
            self._flash.close()

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
) -> Unit:
    """A unit of *model* on a flash in memory, or in the image at *flash_path*.

    A new chip (in memory, or a missing or empty image file) gets the geometry
    given, or the defaults.  An existing image keeps its own; a geometry given
    must match it (:class:`~firmware_sim.flash.FlashImageError` otherwise).
    The unit owns the flash: close the unit to close it.
    """
    profile = get_profile(model)
    if flash_path is None:
        flash = NorFlash(sector_size or DEFAULT_SECTOR_SIZE, sector_count or DEFAULT_SECTOR_COUNT)
    elif os.path.exists(flash_path) and os.path.getsize(flash_path) > 0:
        flash = NorFlash.open(flash_path, sector_size, sector_count)
    else:
        flash = NorFlash.open(
            flash_path, sector_size or DEFAULT_SECTOR_SIZE, sector_count or DEFAULT_SECTOR_COUNT
        )
    try:
        return Unit(
            profile, serial, seed=seed, store=LogStore(flash), clock=clock, duty=duty,
            sample_interval_s=sample_interval_s, scripted_faults=scripted_faults, mode=mode, baud=baud,
            max_window=max_window, site=site, flash=flash,
        )
    except BaseException:
        flash.close()
        raise
