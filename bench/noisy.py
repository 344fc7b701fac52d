"""Noisy line: a pull's time on the line against the best any reader could do on it.

Each pull takes a log of about 2,000 records (:func:`bench.device.image`) from an emulated unit
on the in-process line (:mod:`firmware_sim.inproc`) at 115,200 baud on a virtual clock, so the
line time is exact and the machine's load does not enter it; with the integration test's noise
(``tests/host/test_noisy_line.py``: bit-error rate 1e-4, 1 % of bytes dropped and 1 % inserted,
both ways, each pull its own seed) and on a clean line.  Each figure is a median line time, beside
its limit:

- clean: the record bytes at the line rate (``baud / 10`` bytes a second, as :mod:`bench.link`
  counts it);
- noisy: a perfect reader's time at that noise, the record bytes at the line rate over the
  *ceiling* efficiency: record bytes over wire bytes of RECORDS frames of k records, times the
  share of such frames that come through that impairment whole (measured here by pushing 2,000
  frames of each k through :class:`~firmware_sim.impairment.Impairment` and decoding them), for the
  best k.  It never loses a request, a RANGE_END or a moment of the line.

The targets: at most 2 x the limit on the noisy line, 1.1 x on the clean one, and no record lost.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Callable

from firmware_sim.impairment import Impairment, LineFaults
from firmware_sim.inproc import Line, VirtualClock
from firmware_sim.unit import Unit, build_unit
from host.archive import Archive
from host.pull import PullResult, pull
from host.transport import Guarded
from protocol.formats import MAX_PAYLOAD
from protocol.framing import Frame, FrameDecoder
from protocol.messages import Records, encode_message

from .device import image, remove_db, scratch_db, workdir
from .figures import Figure

RECORDS = 2_000
BAUD = 115_200
NOISE = LineFaults(bit_error_rate=1e-4, drop_rate=0.01, insert_rate=0.01)
NOISY_PULLS = 15
CLEAN_PULLS = 3
NOISY_TARGET = 2.0
CLEAN_TARGET = 1.1
CEILING_FRAMES = 2_000


def unit() -> Unit:
    """The emulated unit over a copy of the bench's image, its clock stopped (nothing is logged)."""
    copy = workdir() / "noisy-line.img"
    shutil.copyfile(image(RECORDS), copy)
    return build_unit("C65", "BENCH-NOISY", seed=0, clock=lambda: 1_700_000_000.0, flash_path=copy, baud=BAUD)


def one_pull(served: Unit, faults: LineFaults | None, seed: int) -> tuple[PullResult, list[bytes], int]:
    """One pull into a new archive: its result, the raw records archived, records lost."""
    line = Line(served, clock=VirtualClock(), baud=BAUD, to_host=faults, to_device=faults, seed=seed)
    clock = line.clock

    def connect() -> Guarded:
        return Guarded(line.connect(), "in-process line")

    path = scratch_db()
    try:
        with Archive.open(path) as archive:
            result = pull(connect, archive, clock=clock, sleep=clock.advance)
            raws = [raw for _, raw in archive.iter_raw(result.serial)]
    finally:
        remove_db(path)
    planned = served.next_seq - served.first_seq
    return result, raws, planned - len(raws)


def ceiling(records: list[bytes], faults: LineFaults) -> tuple[float, int]:
    """The best record bytes per wire byte through *faults*, and the records per frame that give it."""
    best, best_k = 0.0, 1
    for k in range(1, 1 + MAX_PAYLOAD // min(map(len, records))):
        frames = [records[i:i + k] for i in range(0, len(records) - k + 1, k)][:CEILING_FRAMES]
        if len(frames) < 100 or any(sum(map(len, frame)) > MAX_PAYLOAD for frame in frames):
            break
        messages = [Records(seq, b"".join(frame)) for seq, frame in enumerate(frames)]
        wire = [encode_message(message, message.request_seq) for message in messages]
        whole = sum(
            1 for item in FrameDecoder().feed(Impairment(faults, seed=k).apply(b"".join(wire)))
            if isinstance(item, Frame) and item.seq < len(messages)
            and item.payload[2:] == messages[item.seq].records
        )
        useful = whole / len(frames) * sum(map(len, (b"".join(f) for f in frames))) / len(frames)
        efficiency = useful / (sum(map(len, wire)) / len(frames))
        if efficiency > best:
            best, best_k = efficiency, k
    return best, best_k


def figure(
    name: str, served: Unit, faults: LineFaults | None, pulls: int, limit_of: Callable[[list[bytes]], float],
    target: float, how: Callable[[list[bytes]], str],
) -> list[Figure]:
    results = [one_pull(served, faults, seed) for seed in range(pulls)]
    raws = results[0][1]
    limit = limit_of(raws)
    line_s = statistics.median(result.elapsed_s for result, _, _ in results)
    lost = sum(lost for _, _, lost in results)
    timeouts = statistics.median(result.timeouts for result, _, _ in results)
    retry_windows = statistics.median(result.retry_windows for result, _, _ in results)
    return [
        Figure(
            f"{name}: pull line time (virtual clock)", line_s, "s", target * limit, higher_is_better=False,
            reference=f"{how(raws)}: {limit:,.1f} s; {len(raws):,} records, {BAUD:,} baud; median of {pulls} "
                      f"pulls; median {timeouts:g} timeouts, {retry_windows:g} retry windows",
            limit=limit,
        ),
        Figure(f"{name}: records lost", lost, "records", 0, higher_is_better=False,
               reference=f"in all {pulls} pulls"),
    ]


def run() -> list[Figure]:
    served = unit()
    try:
        def at_line_rate(raws: list[bytes]) -> float:
            return sum(map(len, raws)) / (BAUD / 10)

        def perfect_reader(raws: list[bytes]) -> float:
            efficiency, _ = ceiling(raws, NOISE)
            return at_line_rate(raws) / efficiency

        def perfect_how(raws: list[bytes]) -> str:
            efficiency, k = ceiling(raws, NOISE)
            return (f"a perfect reader at this noise ({k} records a frame, {efficiency:.1%} of the bytes "
                    f"records; the record bytes at the line rate: {at_line_rate(raws):,.1f} s)")

        return [
            *figure("clean line", served, None, CLEAN_PULLS, at_line_rate, CLEAN_TARGET,
                    lambda raws: "the record bytes at the line rate"),
            *figure("noisy line, BER 1e-4, 1 % dropped, 1 % inserted", served, NOISE, NOISY_PULLS,
                    perfect_reader, NOISY_TARGET, perfect_how),
        ]
    finally:
        served.close()
