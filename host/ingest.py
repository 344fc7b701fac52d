"""`turbolog ingest DIR` (or `ingest FILE.img`): load flash images read out of units into the archive.

For every ``DIR/NAME.img`` with its identity sidecar ``DIR/NAME.json``
(``docs/flash-image.md``): check the sidecar and the image, and find the log
as the controller would (:mod:`host.flash_image`, whose records are verified
and decoded by :func:`protocol.records.decode_rows`, the decoder of a pull).
Then do what a pull does after IDENTIFY: check that the log is the one
archived for the serial (:func:`host.log_identity.log_mismatch`, the image
standing in for the unit; another log is refused, or with ``new_log``
archived as the serial's next epoch), record the unit with its identity,
log bounds and counters, and its profile when the sidecar gives one (site, duty,
commissioning and shipping dates: the fleet report's filters); note as evicted the seqs below the log's
``first_seq`` that the archive never received; and store the verified rows
as a pull does, with :meth:`~host.archive.Archive.store_decoded`, which is
idempotent (ingesting an image twice adds nothing) and refuses a seq already
archived with other bytes.

An image that cannot be read (no sidecar, a foreign or corrupt header,
another schema, a log that contradicts what the archive holds for that
serial) is reported in its :class:`ImageResult` and skipped; the others go
on.  An archive that cannot be written stops everything
(:class:`~host.errors.ArchiveError`).

Reads files (an image is memory-mapped, read-only) and writes only through
the archive.  Never imports firmware_sim.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from protocol.records import DecodedRow
from protocol.sidecar import SIDECAR_SUFFIX, UnitIdentity

from .archive import Archive
from .errors import DeviceError, UnknownUnit, UsageError
from .flash_image import FlashImage, parse_identity, parse_image
from .log_identity import ReportedLog, log_mismatch, next_epoch, refusal

BATCH = 8192
"""Records per store_decoded call (one archive transaction)."""


@dataclass(frozen=True, slots=True)
class ImageResult:
    """What became of one image."""

    image: str
    """The image's file name."""
    serial: str | None
    model: str | None
    records: int
    """Records the image's log holds."""
    added: int
    """Records new to the archive."""
    evicted: int
    """Seqs newly noted as evicted (gone from the log before the archive had them)."""
    discarded: int
    """Records that failed verification in the image (torn by a power cut): not archived."""
    error: str | None = None
    """Why the image was skipped; None when it was ingested."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Every image of one directory."""

    directory: str
    images: tuple[ImageResult, ...]

    @property
    def added(self) -> int:
        return sum(image.added for image in self.images)

    @property
    def records(self) -> int:
        return sum(image.records for image in self.images)

    @property
    def failed(self) -> tuple[ImageResult, ...]:
        return tuple(image for image in self.images if image.error is not None)

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": self.directory,
            "images": len(self.images),
            "ingested": len(self.images) - len(self.failed),
            "failed": len(self.failed),
            "records": self.records,
            "added": self.added,
            "evicted": sum(image.evicted for image in self.images),
            "discarded": sum(image.discarded for image in self.images),
            "results": [image.to_json() for image in self.images],
        }


Progress = Callable[[int, int, ImageResult], None]
"""Called after each image with (images done, images in all, its result)."""


def ingest_dir(
    archive: Archive, directory: str | os.PathLike[str], progress: Progress | None = None,
    *, new_log: bool = False,
) -> IngestResult:
    """Ingest every ``*.img`` in *directory* (in name order) with its identity sidecar; or, when
    *directory* is an image file, that one.

    Raises UsageError when *directory* is neither.  Failures of single
    images are in the result, not raised.
    """
    folder = Path(directory)
    if folder.is_file():
        if folder.suffix != ".img":
            raise UsageError(
                f"{folder} is not a flash image: give NAME.img (its identity sidecar NAME.json beside it) "
                "or a directory of them"
            )
        paths = [folder]
    elif folder.is_dir():
        paths = sorted(folder.glob("*.img"))
    else:
        raise UsageError(f"{folder} is neither a directory nor a flash image file")
    results = []
    for done, path in enumerate(paths, start=1):
        try:
            result = ingest_image(archive, path, new_log=new_log)
        except DeviceError as exc:
            result = ImageResult(path.name, None, None, 0, 0, 0, 0, str(exc))
        results.append(result)
        if progress is not None:
            progress(done, len(paths), result)
    return IngestResult(str(folder), tuple(results))


def ingest_image(archive: Archive, path: str | os.PathLike[str], *, new_log: bool = False) -> ImageResult:
    """Ingest one image, whose identity sidecar lies beside it (``NAME.json``).

    Raises DeviceError when the sidecar or the image cannot be read or
    verified, or when its log is not the one archived for that serial number
    (then nothing is written; with *new_log* it becomes the serial's next epoch).
    """
    image_path = Path(path)
    identity = _read_identity(image_path)
    try:
        with open(image_path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            data = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError as exc:
        raise DeviceError(f"cannot read {image_path}: {exc.strerror or exc}") from exc
    try:
        return _load(archive, identity, parse_image(data, image_path.name), new_log)
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _read_identity(image_path: Path) -> UnitIdentity:
    sidecar = image_path.with_suffix(SIDECAR_SUFFIX)
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeviceError(f"{image_path.name} has no identity sidecar {sidecar.name} beside it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceError(f"cannot read {sidecar}: {exc}") from exc
    return parse_identity(text, image_path.name)


def _check_log(archive: Archive, identity: UnitIdentity, image: FlashImage, new_log: bool) -> None:
    """The log check of a pull (protocol.md section 6, step 2), the image standing in for the unit:
    DeviceError for a log that is not the archived one, or with *new_log* its next epoch."""
    serial = identity.serial
    try:
        row = archive.unit(serial)
    except UnknownUnit:
        return
    if image.log_id is None:
        return  # an empty image: nothing to add, nothing to contradict
    counters = image.counters
    log = ReportedLog(serial, image.log_id, image.first_seq, image.next_seq, counters.operating_s,
                      counters.starts, counters.energy_wh)
    problem = log_mismatch(archive, row, log, image.record_crc)
    if problem is None:
        return
    if not new_log:
        raise DeviceError(refusal(serial, row, problem, "turbolog ingest --new-log"))
    epoch = next_epoch(archive, row, log)
    archive.start_epoch(
        serial, identity.model, identity.firmware, identity.schema_fingerprint, log_id=image.log_id,
        origin_seq=epoch.origin_seq, continues=epoch.continues, first_seq=epoch.origin_seq,
        next_seq=image.next_seq, capacity_records=image.capacity_records, device_time=image.last_timestamp,
        operating_s=counters.operating_s, starts=counters.starts, trips=counters.trips,
        energy_wh=counters.energy_wh,
    )


def _load(archive: Archive, identity: UnitIdentity, image: FlashImage, new_log: bool) -> ImageResult:
    """What a pull does after IDENTIFY, with the image standing in for the line."""
    serial = identity.serial
    _check_log(archive, identity, image, new_log)
    try:
        known_first: int | None = archive.unit(serial).first_seq
    except UnknownUnit:
        known_first = None
    counters = image.counters
    if identity.site or identity.duty or identity.commissioned or identity.shipped:
        archive.set_profile(serial, site=identity.site, duty=identity.duty,
                            commissioned=identity.commissioned, shipped=identity.shipped)
    archive.upsert_unit(
        serial, identity.model, identity.firmware, identity.schema_fingerprint,
        first_seq=image.first_seq, next_seq=image.next_seq, capacity_records=image.capacity_records,
        device_time=image.last_timestamp, operating_s=counters.operating_s, starts=counters.starts,
        trips=counters.trips, energy_wh=counters.energy_wh, log_id=image.log_id,
    )
    low = 0 if known_first is None else min(known_first, image.first_seq)
    evicted = 0
    for start, stop in archive.missing_ranges(serial, low, image.first_seq):
        archive.record_evicted(serial, start, stop - start)
        evicted += stop - start
    records = added = discarded = 0
    batch: list[DecodedRow] = []
    for sector in image.sectors():
        batch += sector.records
        discarded += sector.discarded
        if len(batch) >= BATCH:
            added += archive.store_decoded(serial, batch)
            records += len(batch)
            batch = []
    if batch:
        added += archive.store_decoded(serial, batch)
        records += len(batch)
    return ImageResult(image.name, serial, identity.model, records, added, evicted, discarded)
