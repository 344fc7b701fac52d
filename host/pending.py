"""What a pull would fetch from a unit, told before it starts: the records its log holds that the
archive does not, their size, and how long the line takes to carry them.

The time is the bytes the device sends, framed as ``docs/protocol.md`` sections 2 and 4 lay them
out, at ``baud / 10`` bytes a second (8N1: a start bit, 8 data bits, a stop bit):

- RECORDS frames, each as many whole records as fit in ``RECORDS_ROOM`` bytes (1012: its
  ``request_seq`` takes two of the payload's 1014), plus the frame's header and CRC
  (``MIN_FRAME``), COBS stuffing (at most one byte in 254, plus one) and a 0x00 delimiter on
  either side;
- one RANGE_END frame per window of ``max_window`` records, framed alike.

Record sizes are those of the unit's archived records (their mean), or, with none archived yet,
that of a SAMPLE record (a log is mostly samples): an estimate, said as such.  It ignores the
round trips (a pull keeps two requests in flight to hide them) and any retries on a noisy line.

Reads the archive only (open read-only by the caller); no I/O of its own, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.enums import RecordType
from protocol.formats import RANGE_END
from protocol.framing import MIN_FRAME
from protocol.messages import RECORDS_PREFIX, RECORDS_ROOM
from protocol.records import EARLIER_LAYOUTS, LAYOUTS

from .archive import Archive, column_of
from .errors import UnknownUnit


def _size_sql(rtype: int) -> str:
    """SQL for the byte size of a stored record of *rtype*: its layout's, or an earlier
    firmware's where the fields that layout lacks are NULL (a sample without exhaust)."""
    layout = LAYOUTS[rtype]
    size = str(layout.size)
    for (earlier_type, _), earlier in EARLIER_LAYOUTS.items():
        if earlier_type == rtype:
            first_missing = column_of(layout.names[-1 - earlier.missing])
            size = f"CASE WHEN {first_missing} IS NULL THEN {earlier.layout.size} ELSE {size} END"
    return size


_SIZE_OF_TABLE = {
    "samples": _size_sql(RecordType.SAMPLE),
    "faults": _size_sql(RecordType.FAULT),
    "events": _size_sql(RecordType.EVENT),
    "runups": _size_sql(RecordType.RUNUP),
}
DEFAULT_RECORD_SIZE = LAYOUTS[RecordType.SAMPLE].size
"""Bytes of a record when the archive holds none of the unit's to judge by."""


def framed(payload: int) -> int:
    """Bytes on the line of one frame with *payload* bytes: header and CRC, COBS stuffing at most,
    and the delimiters before and after it."""
    frame = MIN_FRAME + payload
    return int(frame + 1 + frame // 254 + 2)


def line_bytes(records: int, record_size: float, max_window: int) -> int:
    """Bytes the device sends for *records* records of *record_size* bytes on average, in windows of
    *max_window* records: RECORDS frames, and a RANGE_END per window."""
    if records <= 0:
        return 0
    per_frame = max(1, int(RECORDS_ROOM // max(record_size, 1)))
    full, rest = divmod(records, per_frame)
    total = full * framed(RECORDS_PREFIX + round(per_frame * record_size))
    if rest:
        total += framed(RECORDS_PREFIX + round(rest * record_size))
    windows = -(-records // max(max_window, 1))
    return total + windows * framed(RANGE_END.sizeof())


def transfer_seconds(line: int, baud: int) -> float:
    """Seconds to carry *line* bytes at *baud*, 8N1."""
    return line * 10 / baud


@dataclass(frozen=True, slots=True)
class Pending:
    """What a pull of one unit would fetch, as far as can be told before it starts."""

    records: int
    """Records in the unit's log ``[first_seq, next_seq)`` that the archive does not hold."""
    record_bytes: int
    """Their size as records (estimated: see :attr:`record_size`)."""
    line_bytes: int
    """Bytes the device sends to carry them, frames and all."""
    seconds: float
    """At the baud rate given, 8N1."""
    record_size: float
    """Bytes per record assumed: the unit's archived mean, or a SAMPLE record's."""
    archived: bool
    """Whether the archive holds any of this unit's records (the basis of the size)."""

    def to_json(self) -> dict[str, object]:
        return {
            "not_archived": self.records,
            "not_archived_bytes": self.record_bytes,
            "line_bytes": self.line_bytes,
            "pull_estimate_s": round(self.seconds, 1),
        }


def pending(
    archive: Archive | None, serial: str, first_seq: int, next_seq: int, baud: int, max_window: int
) -> Pending:
    """What a pull of *serial*, whose log holds ``[first_seq, next_seq)``, would fetch into
    *archive* (None: there is none, so all of it) at *baud*."""
    wanted = max(0, next_seq - first_seq)
    size: float = DEFAULT_RECORD_SIZE
    archived = False
    if archive is not None and wanted:
        try:
            missing = archive.missing_ranges(serial, first_seq, next_seq)
        except UnknownUnit:
            missing = [(first_seq, next_seq)]
        else:
            archived_size = _mean_record_size(archive, serial)
            if archived_size is not None:
                size, archived = archived_size, True
        wanted = sum(stop - start for start, stop in missing)
    line = line_bytes(wanted, size, max_window)
    return Pending(wanted, round(wanted * size), line, transfer_seconds(line, baud), size, archived)


def _mean_record_size(archive: Archive, serial: str) -> float | None:
    """The mean size of *serial*'s archived records, or None when none is archived."""
    where = "unit IN (SELECT id FROM units WHERE serial = :serial)"  # every epoch of the serial
    arms = [
        f"SELECT COUNT(*) AS n, COALESCE(SUM({size}), 0) AS b FROM {table} WHERE {where}"
        for table, size in _SIZE_OF_TABLE.items()
    ]
    arms.append(f"SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(raw)), 0) AS b FROM other_records WHERE {where}")
    ((count, size),) = archive.query(
        f"SELECT SUM(n), SUM(b) FROM ({' UNION ALL '.join(arms)})", {"serial": serial}
    )
    return None if not count else float(size) / count
