"""`turbolog ingest DIR`: load flash images read out of units into the archive.

For every ``DIR/<serial>.img`` with its identity sidecar ``DIR/<serial>.json``
(``docs/flash-image.md``): check the sidecar and the image, and find the log
as the controller would (:mod:`host.flash_image`, whose records are verified
and decoded by :func:`protocol.records.decode_rows`, the decoder of a pull).
Then do what a pull does after IDENTIFY: record the unit with its identity,
log bounds and counters; note as evicted the seqs below the log's
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

from .archive import Archive
from .errors import DeviceError, UnknownUnit, UsageError
from .flash_image import FlashImage, UnitIdentity, parse_identity, parse_image

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
    archive: Archive, directory: str | os.PathLike[str], progress: Progress | None = None
) -> IngestResult:
    """Ingest every ``*.img`` in *directory* (in name order) with its identity sidecar.

    Raises UsageError when *directory* is not a directory.  Failures of single
    images are in the result, not raised.
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a directory")
    paths = sorted(folder.glob("*.img"))
    results = []
    for done, path in enumerate(paths, start=1):
        try:
            result = ingest_image(archive, path)
        except DeviceError as exc:
            result = ImageResult(path.name, None, None, 0, 0, 0, 0, str(exc))
        results.append(result)
        if progress is not None:
            progress(done, len(paths), result)
    return IngestResult(str(folder), tuple(results))


def ingest_image(archive: Archive, path: str | os.PathLike[str]) -> ImageResult:
    """Ingest one image, whose identity sidecar lies beside it (``<serial>.json``).

    Raises DeviceError when the sidecar or the image cannot be read or
    verified, or when the log contradicts what the archive holds for that
    serial number (then records of other batches may have been stored).
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
        return _load(archive, identity, parse_image(data, image_path.name))
    finally:
        if isinstance(data, mmap.mmap):
            data.close()


def _read_identity(image_path: Path) -> UnitIdentity:
    sidecar = image_path.with_suffix(".json")
    try:
        text = sidecar.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeviceError(f"{image_path.name} has no identity sidecar {sidecar.name} beside it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceError(f"cannot read {sidecar}: {exc}") from exc
    return parse_identity(text, image_path.name)


def _load(archive: Archive, identity: UnitIdentity, image: FlashImage) -> ImageResult:
    """What a pull does after IDENTIFY, with the image standing in for the line."""
    serial = identity.serial
    try:
        known_first: int | None = archive.unit(serial).first_seq
    except UnknownUnit:
        known_first = None
    counters = image.counters
    archive.upsert_unit(
        serial, identity.model, identity.firmware, identity.schema_fingerprint,
        first_seq=image.first_seq, next_seq=image.next_seq, capacity_records=image.capacity_records,
        device_time=image.last_timestamp, operating_s=counters.operating_s, starts=counters.starts,
        trips=counters.trips, energy_wh=counters.energy_wh,
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
