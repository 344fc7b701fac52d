"""Which units and which stretch of their lives a fleet figure covers: the filters of `turbolog fleet`
and `turbolog report` (``--model``, ``--site``, ``--duty``, ``--cohort``, ``--since``, ``--until``,
``--as-of``).

A :class:`Selection` keeps units by model, site, duty profile and commissioning
year (site, duty and commissioning come from the unit's profile, recorded at
ingest from its image's sidecar: :meth:`host.archive.Archive.set_profile`; a
unit without one matches no site, duty or cohort filter), and keeps of each
unit only its records timestamped within the window ``since`` .. ``until`` on
device time.  ``as_of`` is the fleet as it stood at that moment: the window
ends there, and units with no record by then are not in the fleet yet.

:func:`check` refuses (UsageError, exit 2) a model, site or duty the archive
does not know and a window that ends before it starts; a filter that is
valid but selects nothing gives an empty table.  Parses text and reads the
archive's known names; never writes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import UsageError

if TYPE_CHECKING:  # the command line's parser imports this module: it must stay light
    from .archive import Archive


def date_type(text: str) -> int:
    """argparse type of ``--since``/``--until``: an ISO date or date-time (UTC unless zoned), Unix s."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date-time (2005-11-30, 2005-11-30T12:00)"
        ) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp())


def as_of_type(text: str) -> int:
    """argparse type of ``--as-of``: like :func:`date_type`, a bare date meaning the end of that day."""
    moment = date_type(text)
    if "T" not in text and " " not in text.strip():
        moment += int(timedelta(days=1).total_seconds()) - 1
    return moment


def cohort_type(text: str) -> frozenset[int]:
    """argparse type of ``--cohort``: years of commissioning, ``2001``, ``2001-2003`` or ``2001,2004``."""
    years: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise argparse.ArgumentTypeError(f"--cohort: {text!r} is not a year, YEAR-YEAR or a list of them")
        first, last = int(low), int(high or low)
        if last < first:
            raise argparse.ArgumentTypeError(f"--cohort: {part.strip()} ends before it starts")
        years.update(range(first, last + 1))
    return frozenset(years)


def confidence_type(text: str) -> float:
    """argparse type of ``--confidence``: a fraction (0.9) or a percentage (90%), strictly
    between 0 and 1."""
    stripped = text.strip()
    try:
        value = float(stripped[:-1]) / 100 if stripped.endswith("%") else float(stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number like 0.9 or 90%") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1): a confidence lies strictly between")
    return value


def target_type(text: str) -> float:
    """argparse type of ``--demonstrate``: a target MTBF in operating hours, above 0."""
    try:
        value = float(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hours") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"a target MTBF of {text} h: it must be above 0")
    return value


def names_type(text: str) -> frozenset[str]:
    """argparse type of ``--model``, ``--site``, ``--duty``: one name or a comma-separated list."""
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("needs at least one name")
    return names


Profile = tuple[str | None, str | None, int | None]
"""A unit's (site, duty, commissioned)."""


def _iso(timestamp: int | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class Selection:
    """Units kept by model, site, duty and cohort, and the window of device time kept of each."""

    models: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    duties: frozenset[str] = frozenset()
    cohorts: frozenset[int] = frozenset()
    """Years of commissioning."""
    since: int | None = None
    until: int | None = None
    as_of: int | None = None

    @property
    def end(self) -> int | None:
        """The last device time kept: the earlier of ``until`` and ``as_of``."""
        ends = [moment for moment in (self.until, self.as_of) if moment is not None]
        return min(ends, default=None)

    @property
    def windowed(self) -> bool:
        return self.since is not None or self.end is not None

    def keeps(self, model: str, profile: Profile | None) -> bool:
        """Whether a unit of *model* with *profile* (site, duty, commissioned) is selected."""
        site, duty, commissioned = profile or (None, None, None)
        year = None if commissioned is None else datetime.fromtimestamp(commissioned, UTC).year
        return (
            (not self.models or model in self.models)
            and (not self.sites or site in self.sites)
            and (not self.duties or duty in self.duties)
            and (not self.cohorts or year in self.cohorts)
        )

    def describe(self) -> str:
        """The selection in words: ``all units, all time`` when nothing is filtered."""
        parts = []
        for label, values in (("model", self.models), ("site", self.sites), ("duty", self.duties)):
            if values:
                parts.append(f"{label} {', '.join(sorted(values))}")
        if self.cohorts:
            parts.append(f"commissioned in {', '.join(map(str, sorted(self.cohorts)))}")
        units = "; ".join(parts) or "all units"
        if self.as_of is not None:
            units += f"; the fleet as of {_iso(self.as_of)}"
        since, until = _iso(self.since), _iso(self.until)
        window = (
            f"records from {since} to {until}" if since and until else f"records from {since}" if since
            else f"records to {until}" if until else "all records"
        )
        return f"{units}; {window}"

    def to_json(self) -> dict[str, Any]:
        return {
            "models": sorted(self.models),
            "sites": sorted(self.sites),
            "duties": sorted(self.duties),
            "cohorts": sorted(self.cohorts),
            "since": _iso(self.since),
            "until": _iso(self.until),
            "as_of": _iso(self.as_of),
            "description": self.describe(),
        }


ALL = Selection()

def unit_profiles(archive: Archive) -> dict[str, Profile]:
    """(site, duty, commissioned) per serial, for the serials that have a profile."""
    rows = archive.query("SELECT serial, site, duty, commissioned FROM unit_profiles")
    return {serial: (site, duty, commissioned) for serial, site, duty, commissioned in rows}


def from_args(args: argparse.Namespace) -> Selection:
    """The selection of ``--model``, ``--site``, ``--duty``, ``--cohort``, ``--since``, ``--until``
    and ``--as-of`` (each may be absent from *args*)."""
    selection = Selection(
        models=getattr(args, "model", None) or frozenset(),
        sites=getattr(args, "site", None) or frozenset(),
        duties=getattr(args, "duty", None) or frozenset(),
        cohorts=getattr(args, "cohort", None) or frozenset(),
        since=getattr(args, "since", None),
        until=getattr(args, "until", None),
        as_of=getattr(args, "as_of", None),
    )
    return selection


def check(archive: Archive, selection: Selection) -> None:
    """UsageError for a model, site or duty *archive* does not know, or an empty window."""
    if selection.since is not None and selection.end is not None and selection.end < selection.since:
        raise UsageError(
            f"--until/--as-of ({_iso(selection.end)}) is before --since ({_iso(selection.since)}): "
            "nothing lies between"
        )
    for label, column, table, wanted in (
        ("model", "model", "units", selection.models),
        ("site", "site", "unit_profiles", selection.sites),
        ("duty", "duty", "unit_profiles", selection.duties),
    ):
        if not wanted:
            continue
        known = {name for (name,) in archive.query(f"SELECT DISTINCT {column} FROM {table}") if name}
        unknown = sorted(wanted - known)
        if unknown:
            listed = ", ".join(sorted(known)) or "none recorded"
            raise UsageError(f"--{label}: {', '.join(unknown)} is not in the archive (it knows: {listed})")
