"""Writing the identity sidecar beside a flash image: who the unit is, for whoever reads the image.

A controller keeps its serial number in configuration memory, not in its log
flash, so an image travels with ``<image stem>.json`` (``docs/flash-image.md``
section 4).  Every image the emulator writes gets one: ``turbosim fleet`` for
each unit, and ``turbosim serve``/``run --flash FILE`` when the unit starts
(:func:`firmware_sim.unit.build_unit`).  The log's own identity (its log id)
is in the image itself, in every sector header.

The sidecar's text is :func:`protocol.sidecar.encode_identity`'s, the reader's
definition too.  :func:`write_identity` writes it under a temporary name and
renames it into place, so a reader never sees half of one.  It writes nothing
else and knows nothing of the host.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from protocol.sidecar import SIDECAR_SUFFIX, UnitIdentity, encode_identity


def identity_path(image: str | os.PathLike[str]) -> Path:
    """Where the sidecar of the image at *image* lies: the same name, suffix ``.json``."""
    return Path(image).with_suffix(SIDECAR_SUFFIX)


def write_identity(
    image: str | os.PathLike[str], serial: str, model: str, firmware: str,
    simulated: dict[str, Any] | None = None,
) -> Path:
    """Write the sidecar of the image at *image* (atomically) and return its path.

    Without *simulated*, a ``simulated`` section the image's sidecar already has is kept: serving
    or running an image of ``turbosim fleet`` again must not forget its site, duty and
    commissioning (the fleet figures filter on them)."""
    path = identity_path(image)
    if simulated is None:
        simulated = _simulated_in(path)
    part = path.with_name(f".{path.name}.part")
    text = encode_identity(UnitIdentity(serial, model, firmware), Path(image).name, simulated)
    part.write_text(text, encoding="ascii")
    os.replace(part, path)
    return path


def _simulated_in(path: Path) -> dict[str, Any] | None:
    """The ``simulated`` section of the sidecar at *path*; None when there is no such file or section
    (a sidecar that is not JSON is left to the reader to refuse: it is replaced here)."""
    try:
        document = json.loads(path.read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    simulated = document.get("simulated") if isinstance(document, dict) else None
    return simulated if isinstance(simulated, dict) else None
