"""Is the log a unit reports the one the archive holds for its serial number?  (protocol.md 6, step 2)

A serial number names a unit, not a log: a controller board replaced under the
same serial, a cleared log, or two emulated units with the same default serial
each bring another history.  Before anything of a unit's log is added to the
archive, :func:`log_mismatch` compares what the unit reports (its log id, its
lifetime counters, the end of its log, and one record that both hold) with the
serial's latest archived epoch, and says what differs; :func:`next_epoch`
says how a log that differs is archived as the serial's next epoch.

A pull asks the unit for the overlapping record over the line, an ingest takes
it from the image: both hand in ``read_crc``.  This module reads the archive
and never writes it; it never talks to a port itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .archive import Archive, UnitRow


@dataclass(frozen=True, slots=True)
class ReportedLog:
    """What a unit (over the line, or in a flash image) says about its log."""

    serial: str
    log_id: bytes
    first_seq: int
    next_seq: int
    operating_s: int
    starts: int
    energy_wh: int


@dataclass(frozen=True, slots=True)
class NewEpoch:
    """How a log that is not the archived one starts the serial's next epoch."""

    origin_seq: int
    """Where the log began as far as the archive can tell: where the old log ended when it
    carries on from it (a clear), else 0."""
    continues: bool
    """Whether the log carries on the old one's seqs and lifetime counters (a cleared log on
    the same controller): then reports count its hours from where the old one ended."""


def _counters_back(log: ReportedLog, archived: tuple[int, int, int, int]) -> list[str]:
    operating_s, starts, _trips, energy_wh = archived
    back = []
    if log.operating_s < operating_s:
        back.append(f"operating hours {log.operating_s / 3600:,.1f} < {operating_s / 3600:,.1f}")
    if log.starts < starts:
        back.append(f"starts {log.starts:,} < {starts:,}")
    if log.energy_wh < energy_wh:
        back.append(f"energy {log.energy_wh / 1000:,.1f} < {energy_wh / 1000:,.1f} kWh")
    return back


def log_mismatch(
    archive: Archive, row: UnitRow, log: ReportedLog, read_crc: Callable[[int], int | None]
) -> str | None:
    """What shows that *log* is not the log archived as *row* (the serial's latest epoch), or None.

    In order: another log id (an epoch archived before logs had ids has none to compare);
    lifetime counters below those archived (they never go backwards); a log that ends at or
    below the highest archived seq (seqs are never reused); and the CRC-32C of the highest
    archived seq that the log still holds, which ``read_crc(seq)`` gives as the unit holds it
    (None: it no longer does, nothing to compare)."""
    epoch = f"epoch {row.epoch}"
    if row.log_id is not None and row.log_id != log.log_id:
        return f"its log (id {log.log_id.hex()}) is not the archived one ({epoch}, id {row.log_id.hex()})"
    back = _counters_back(log, archive.newest_counters(log.serial))
    if back:
        return f"its lifetime counters went backwards ({', '.join(back)} archived in {epoch})"
    top = archive.max_seq(log.serial)
    if top is not None and log.next_seq <= top:
        return f"its log ends before seq {log.next_seq:,}, but {epoch} holds up to seq {top:,}"
    held = archive.stored_ranges(log.serial, log.first_seq, log.next_seq)
    if held:
        seq = held[-1][1] - 1
        archived, on_unit = archive.stored_crc(log.serial, seq), read_crc(seq)
        if on_unit is not None and on_unit != archived:
            return (
                f"its record {seq:,} differs from the archived one (CRC-32C 0x{on_unit:08X} on the unit, "
                f"0x{archived or 0:08X} in {epoch})"
            )
    return None


def refusal(serial: str, row: UnitRow, problem: str, option: str = "--new-log") -> str:
    """The one line that stops a pull or ingest of a log that is not the archived one."""
    return (
        f"unit {serial}: {problem}: another controller, a cleared log or another unit under this serial; "
        f"nothing was written (to archive it as epoch {row.epoch + 1} of {serial}, use {option})"
    )


def next_epoch(archive: Archive, row: UnitRow, log: ReportedLog) -> NewEpoch:
    """How *log*, not the one archived as *row*, becomes the serial's next epoch.

    It continues the old log when its seqs start at or after the old log's end and its
    counters are at or above the old log's (a clear on the same controller keeps both);
    otherwise (a replaced controller, another unit) it is a history of its own from seq 0."""
    top = archive.max_seq(log.serial)
    old_end = max(row.next_seq, 0 if top is None else top + 1)
    continues = log.first_seq >= old_end and not _counters_back(log, archive.newest_counters(log.serial))
    return NewEpoch(old_end if continues else 0, continues)
