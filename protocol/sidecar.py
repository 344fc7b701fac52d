"""The identity sidecar of a flash image (``docs/flash-image.md`` section 4): who the unit is.

A controller keeps its serial number in configuration memory, not in its log flash, so an image
``NAME.img`` travels with ``NAME.json`` (:data:`SIDECAR_SUFFIX`).  This module is the sidecar's
one definition: :func:`encode_identity` gives the text the emulator writes and
:func:`decode_identity` reads it back for the host, both checking the same rules (a version-1
document of this format, serial, model and firmware as IDENTIFY_RSP's fields can carry them,
this build's schema fingerprint, the image it names).

Pure: text in, values out.  It opens no file (writing it atomically is the emulator's
business, finding it beside an image the reader's).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import formats
from .errors import IdentityError, LocalProtocolError
from .messages import EARLIER_FINGERPRINTS, READABLE_FINGERPRINTS, SCHEMA_FINGERPRINT

IDENTITY_FORMAT = "turbolog-unit-identity"
IDENTITY_VERSION = 1
SIDECAR_SUFFIX = ".json"
"""The sidecar of ``NAME.img`` is ``NAME.json``: the image's name with this suffix."""
_IDENTIFY_FIELDS = {sub.name: sub for sub in formats.IDENTIFY_RSP.subcons}
FIELD_SIZES: dict[str, int] = {
    name: _IDENTIFY_FIELDS[name].sizeof() for name in ("serial", "model", "firmware")
}
"""The most ASCII characters of each name: what its IDENTIFY_RSP field holds."""


@dataclass(frozen=True, slots=True)
class UnitIdentity:
    """Who the unit is, from its identity sidecar."""

    serial: str
    model: str
    firmware: str
    schema_fingerprint: int = SCHEMA_FINGERPRINT
    site: str | None = None
    duty: str | None = None
    commissioned: int | None = None
    """Unix s: the unit's age 0 (its counters start there)."""
    shipped: int | None = None
    """Unix s."""


PROFILE_KEYS = ("site", "duty", "commissioned", "shipped")
"""Optional keys of a sidecar (or of its ``simulated`` object): where and how the unit runs and
since when; ``commissioned`` and ``shipped`` are ISO 8601 dates (UTC unless zoned)."""


def _profile(doc: dict[str, Any], image_name: str) -> dict[str, Any]:
    """The optional profile of a sidecar: its own keys, else those of its ``simulated`` object."""
    simulated = doc.get("simulated")
    found: dict[str, Any] = {}
    for key in PROFILE_KEYS:
        value = doc.get(key, simulated.get(key) if isinstance(simulated, dict) else None)
        if value is None:
            continue
        if not isinstance(value, str) or not value.isascii() or not 0 < len(value) <= 40:
            raise IdentityError(f"identity of {image_name}: {key} must be 1 to 40 ASCII characters")
        if key in ("commissioned", "shipped"):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise IdentityError(f"identity of {image_name}: {key} {value!r} is not an ISO date") from None
            found[key] = int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())
        else:
            found[key] = value
    return found


def _field_problem(key: str, value: object) -> str | None:
    size = FIELD_SIZES[key]
    if not isinstance(value, str) or not value.isascii() or not 0 < len(value) <= size:
        return f"{key} must be 1 to {size} ASCII characters"
    return None


def encode_identity(identity: UnitIdentity, image_name: str, simulated: dict[str, Any] | None = None) -> str:
    """The sidecar text of the image called *image_name*; *simulated* (optional, readers ignore
    it) says how the unit was simulated.  Raises LocalProtocolError for an identity
    :func:`decode_identity` would refuse."""
    for key in FIELD_SIZES:
        problem = _field_problem(key, getattr(identity, key))
        if problem is not None:
            raise LocalProtocolError(f"identity of {image_name}: {problem}")
    doc: dict[str, Any] = {
        "format": IDENTITY_FORMAT,
        "version": IDENTITY_VERSION,
        "serial": identity.serial,
        "model": identity.model,
        "firmware": identity.firmware,
        "schema_fingerprint": identity.schema_fingerprint,
        "image": image_name,
    }
    if simulated is not None:
        doc["simulated"] = simulated
    return json.dumps(doc, indent=2) + "\n"


def decode_identity(text: str, image_name: str) -> UnitIdentity:
    """The identity in sidecar *text*, for the image file called *image_name*.

    Raises :class:`IdentityError` for text that is not a version-1 identity, names another
    image, or has a schema fingerprint whose records this build does not decode (its own and
    :data:`~protocol.messages.EARLIER_FINGERPRINTS` it does).  Keys it does not know are ignored.
    """
    try:
        doc: Any = json.loads(text)
    except ValueError as exc:
        raise IdentityError(f"identity of {image_name} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != IDENTITY_FORMAT:
        raise IdentityError(f"identity of {image_name} is not a {IDENTITY_FORMAT} document")
    if doc.get("version") != IDENTITY_VERSION:
        raise IdentityError(
            f"identity of {image_name} is version {doc.get('version')!r}; "
            f"this reader knows {IDENTITY_VERSION}"
        )
    for key in FIELD_SIZES:
        problem = _field_problem(key, doc.get(key))
        if problem is not None:
            raise IdentityError(f"identity of {image_name}: {problem}")
    fingerprint = doc.get("schema_fingerprint")
    if not isinstance(fingerprint, int):
        raise IdentityError(f"identity of {image_name}: schema_fingerprint must be an integer")
    if doc.get("image") != image_name:
        raise IdentityError(
            f"identity of {image_name} names unit {doc['serial']!r} and image {doc.get('image')!r}"
        )
    if fingerprint not in READABLE_FINGERPRINTS:
        raise IdentityError(
            f"unit {doc['serial']} (firmware {doc['firmware']}) wrote its log with schema fingerprint "
            f"0x{fingerprint:08X}, this reader knows 0x{SCHEMA_FINGERPRINT:08X} and the earlier "
            f"{', '.join(f'0x{f:08X}' for f in EARLIER_FINGERPRINTS)}: the formats differ, "
            "so its log cannot be read safely"
        )
    profile = _profile(doc, image_name)
    return UnitIdentity(doc["serial"], doc["model"], doc["firmware"], fingerprint, **profile)
