"""The identity sidecar beside a flash image: who the unit is, for whoever reads the image.

A controller keeps its serial number in configuration memory, not in its log
flash, so an image travels with ``<image stem>.json`` (``docs/flash-image.md``
section 4).  Every image the emulator writes gets one: ``turbosim fleet`` for
each unit, and ``turbosim serve``/``run --flash FILE`` when the unit starts
(:func:`firmware_sim.unit.build_unit`).  The log's own identity (its log id)
is in the image itself, in every sector header.

:func:`write_identity` writes the file under a temporary name and renames it
into place, so a reader never sees half of one.  It writes nothing else and
knows nothing of the host.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from protocol.messages import SCHEMA_FINGERPRINT

IDENTITY_FORMAT = "turbolog-unit-identity"
IDENTITY_VERSION = 1


def identity_path(image: str | os.PathLike[str]) -> Path:
    """Where the sidecar of the image at *image* lies: the same name, suffix ``.json``."""
    return Path(image).with_suffix(".json")


def identity_json(
    image_name: str, serial: str, model: str, firmware: str, simulated: dict[str, Any] | None = None
) -> str:
    """The sidecar of the image called *image_name*; *simulated* says how the unit was simulated."""
    doc: dict[str, Any] = {
        "format": IDENTITY_FORMAT,
        "version": IDENTITY_VERSION,
        "serial": serial,
        "model": model,
        "firmware": firmware,
        "schema_fingerprint": SCHEMA_FINGERPRINT,
        "image": image_name,
    }
    if simulated is not None:
        doc["simulated"] = simulated
    return json.dumps(doc, indent=2) + "\n"


def write_identity(
    image: str | os.PathLike[str], serial: str, model: str, firmware: str,
    simulated: dict[str, Any] | None = None,
) -> Path:
    """Write the sidecar of the image at *image* (atomically) and return its path."""
    path = identity_path(image)
    part = path.with_name(f".{path.name}.part")
    part.write_text(identity_json(Path(image).name, serial, model, firmware, simulated), encoding="ascii")
    os.replace(part, path)
    return path
