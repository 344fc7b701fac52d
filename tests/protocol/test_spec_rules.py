"""docs/protocol.md as an outsider reads it: rules the text states, checked against the text itself
and against the emulator's log.

- Section 8 publishes the canonical schema text: its CRC-32C, computed here from the published
  lines alone, is the fingerprint the document states and the one the code sends.
- Section 5: ``capacity_records`` is the number of SAMPLE records the log is sure to keep (a lower
  bound): a log full of samples never holds fewer, and may hold more.
- The receiver errors named in ``tests/vectors/corrupt.json`` are each named in the text, and every
  ERROR code has a row saying which request it answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from firmware_sim.flash import NorFlash
from firmware_sim.logstore import LogStore
from protocol.crc import crc32c
from protocol.enums import EngineState, ErrorCode
from protocol.messages import SCHEMA_FINGERPRINT
from protocol.records import SampleRecord, Snapshot

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")


def section(number: int) -> str:
    match = re.search(rf"^## {number}\. .*?(?=^## \d+\. |\Z)", SPEC, re.S | re.M)
    assert match, f"no section {number}"
    return match.group(0)


def test_the_fingerprint_is_computed_from_the_published_schema_text() -> None:
    """What an outsider does: take the lines of the block, join them with ';', CRC-32C the ASCII."""
    text = section(8)
    block = re.search(r"```\n(.*?)\n```", text, re.S)
    assert block, "section 8 publishes no schema text"
    canonical = ";".join(block.group(1).split("\n"))
    stated = re.search(r"<!-- generated:fingerprint -->`0x([0-9A-F]{8})`", text)
    assert stated, "section 8 states no fingerprint"
    assert crc32c(canonical.encode("ascii")) == int(stated.group(1), 16) == SCHEMA_FINGERPRINT


def test_every_receiver_error_of_the_vectors_is_named_in_the_text() -> None:
    corrupt = json.loads((ROOT / "tests" / "vectors" / "corrupt.json").read_text(encoding="utf-8"))
    used = {m for m in re.findall(r'"error": "(\w+)"', json.dumps(corrupt))}
    assert used >= {"FrameTooLong", "BadStuffing", "FrameTruncated", "UnsupportedVersion"}
    assert {name for name in used if f"`{name}`" not in SPEC} == set()


def test_every_error_code_says_which_request_it_answers() -> None:
    rows = re.search(r"Which code answers what\..*?\n\n(\|.*?)\n\n", section(4), re.S)
    assert rows, "section 4 has no table of which code answers what"
    named = set(re.findall(r"`([A-Z_]+)`", rows.group(1)))
    assert named == {code.name for code in ErrorCode}


def _sample(seq_time: int) -> SampleRecord:
    snapshot = Snapshot(
        state=EngineState.LOAD, mode=0, active_fault=0, speed_rpm=96000, power_w=28_500,
        tet1_c_x10=6_010, tet2_c_x10=5_990, compressor_inlet_c_x10=150, ambient_c_x10=150,
        ambient_pressure_kpa_x100=10_132, fuel_valve_pct_x10=800, fuel_power_w=115_000,
        dc_bus_v_x10=7_600, grid_voltage_v_x10=4_800, grid_freq_hz_x1000=60_000,
        operating_s=seq_time, starts=1, trips=0, energy_wh=0,
    )
    return SampleRecord(0, 1_700_000_000 + seq_time, snapshot, 2_900)


def test_capacity_records_is_what_the_log_is_sure_to_keep() -> None:
    """The emulator's default sectors (4 KiB), 16 of them: it reports 855 (57 samples of 70 bytes a
    sector, less one sector) and holds between 855 and 912 samples once it has wrapped."""
    store = LogStore(NorFlash(4096, 16))
    assert store.capacity_records == 855
    held = set()
    for n in range(3 * 912):
        store.append(_sample(n))
        held.add(store.next_seq - store.first_seq)
        if store.next_seq >= 912:
            assert store.next_seq - store.first_seq >= store.capacity_records
    assert min(held - set(range(855))) == 855 and max(held) == 912
