"""Link utilisation: how much of a paced line a pull fills with record bytes.

Each pull takes a log of 20,000 records from ``turbosim serve --pty --baud B``
(:mod:`bench.device`), in this process with :func:`host.pull.pull`, into a new
archive.  Utilisation is the useful record bytes archived over what the line
could carry in the pull's wall time::

    utilisation = record bytes / (B / 10 x elapsed)        (8N1: 10 bits a byte)

The limit beside it is the protocol's own ceiling, measured on the frames
the device sends: record bytes in a full RECORDS frame over that frame's bytes
on the wire (header, request_seq, CRC, COBS and delimiters).  With
``--impair ber=1e-5`` each bit on the line (both ways) flips with that
probability, and lost frames are fetched again.  At 115,200 baud a pull takes
about two minutes, so it runs once there; 921,600 baud runs three times.
"""

from __future__ import annotations

import statistics
import time

from host.archive import Archive
from host.pull import pull
from host.transport import open_port
from protocol.formats import MAX_PAYLOAD
from protocol.messages import Records, encode_message
from protocol.records import encode_record

from .decode import sample
from .device import image, remove_db, scratch_db, serve
from .figures import Figure

RECORDS = 20_000
SAMPLE_SIZE = 68
CLEAN_TARGET = 0.95
NOISY_TARGET = 0.90
BER = "ber=1e-5"
RUNS = ((115_200, None, 1), (921_600, None, 3), (115_200, BER, 1), (921_600, BER, 3))
"""``(baud, impairment, repeats)``."""


def framing_ceiling() -> float:
    """Record bytes over wire bytes in a RECORDS frame packed full of samples."""
    records = b"".join(encode_record(sample(seq)) for seq in range((MAX_PAYLOAD - 2) // SAMPLE_SIZE))
    return len(records) / len(encode_message(Records(0xFFFF, records), 0xFFFF))


def utilisation(baud: int, impair: str | None) -> tuple[float, int, float, int]:
    """One pull: utilisation, records archived, elapsed seconds, idle timeouts."""
    path = scratch_db()
    try:
        with serve(image(RECORDS), baud=baud, impair=impair) as device, Archive.open(path) as archive:
            started = time.perf_counter()
            result = pull(lambda: open_port(device.port, baud), archive)
            elapsed = time.perf_counter() - started
            raws = [raw for unit in archive.units() for _, raw in archive.iter_raw(unit.serial)]
            useful, count = sum(map(len, raws)), len(raws)
    finally:
        remove_db(path)
    if count < RECORDS or result.added != count:
        raise AssertionError(f"the pull at {baud} baud archived {count:,} records, not {RECORDS:,}")
    return useful / (baud / 10 * elapsed), count, elapsed, result.timeouts


def run() -> list[Figure]:
    ceiling = framing_ceiling()
    figures = []
    for baud, impair, repeats in RUNS:
        runs = [utilisation(baud, impair) for _ in range(repeats)]
        value = statistics.median(ratio for ratio, _, _, _ in runs)
        elapsed = statistics.median(seconds for _, _, seconds, _ in runs)
        timeouts = sum(timeouts for _, _, _, timeouts in runs)
        line = "clean line" if impair is None else impair.replace("ber=", "bit-error rate ")
        how = "1 pull (about 2 min each)" if repeats == 1 else f"median of {repeats} pulls"
        figures.append(Figure(
            f"link utilisation, {baud:,} baud, {line}",
            value,
            "x line rate",
            CLEAN_TARGET if impair is None else NOISY_TARGET,
            reference=f"protocol ceiling {ceiling:.3f} (full RECORDS frames); {runs[0][1]:,} records "
                      f"in {elapsed:.1f} s; {how}; {timeouts} idle timeouts in all",
            limit=ceiling,
        ))
    return figures
