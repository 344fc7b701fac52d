"""The parts of ``turbosim serve-fleet``: its listeners, its units, the inventory that names them.

- :func:`parse_ports` and :func:`open_listeners`: one loopback TCP or RFC 2217
  listener per unit, on consecutive ports from the one given, within a range
  (``127.0.0.1:7000-7999``), or each on an ephemeral port (port 0).  A port
  that cannot be had closes every listener opened so far and names the port.
- :func:`generated_units`: units built from :func:`~firmware_sim.fleet.plan_served_fleet`
  plans, each on its own flash in memory (sized for its history) and its own
  simulated clock, each living its history at once.
- :func:`flash_images` and :func:`image_units`: units resumed from the flash images of ``turbosim fleet``
  (``DIR/<serial>.img`` with its identity sidecar), living on from their newest
  record, their flash kept in the image files.
- :func:`inventory_entries`: what ``turbolog poll`` reads (written by
  :func:`protocol.inventory.format_inventory`, never here).

The units read the wall clock only through the function they are given; this
module serves nothing (that is :mod:`firmware_sim.fleet_server`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.enums import GridMode
from protocol.image_formats import SECTOR_HEADER_SIZE
from protocol.inventory import InventoryEntry
from protocol.records import LAYOUTS

from .climate import SITES
from .clock import SimClock
from .errors import ConfigError, SimulatorError
from .fleet import UnitPlan
from .links import Rfc2217Link, TcpLink, parse_address
from .sidecar import identity_path
from .unit import DEFAULT_SECTOR_COUNT, DEFAULT_SECTOR_SIZE, Unit, build_unit, image_times

MIN_SECTORS = 4
HEADROOM = 1.25
"""A generated unit's flash holds its history and a quarter more before it evicts its oldest."""


def parse_ports(text: str) -> tuple[str, int, int | None]:
    """``[HOST:]PORT`` or ``[HOST:]FIRST-LAST`` -> (host, first, last or None); port 0 is ephemeral."""
    host, sep, ports = text.rpartition(":")
    first, dash, last = ports.partition("-")
    address = f"{host}{sep}{first}"
    host, first_port = parse_address(address)
    if not dash:
        return host, first_port, None
    _, last_port = parse_address(f"{host}:{last}")
    if first_port == 0 or last_port < first_port:
        raise ConfigError(f"bad port range {text!r}: FIRST-LAST with 0 < FIRST <= LAST")
    return host, first_port, last_port


def open_listeners(kind: str, text: str, count: int, baud: int) -> list[TcpLink]:
    """*count* listeners of *kind* (``"tcp"`` or ``"rfc2217"``) on the ports *text* names."""
    host, first, last = parse_ports(text)
    if last is not None and last - first + 1 < count:
        raise ConfigError(f"port range {text!r} holds {last - first + 1} ports, not the {count} units need")
    if first and first + count - 1 > 65535:
        raise ConfigError(f"{count} ports from {first} run past 65535")
    links: list[TcpLink] = []
    try:
        for index in range(count):
            address = f"{host}:{first + index if first else 0}"
            links.append(Rfc2217Link(address, baud) if kind == "rfc2217" else TcpLink(address))
    except BaseException:
        for link in links:
            link.close()
        raise
    return links


@dataclass
class FleetUnit:
    """A unit to serve, with what the inventory says of it."""

    unit: Unit
    clock: SimClock
    site: str
    age_until: float
    """Simulated time its history reaches (its commissioning plus ``--history``)."""
    sample_interval_s: int


def sectors_for(history_s: float, sample_interval_s: int, sector_size: int = DEFAULT_SECTOR_SIZE) -> int:
    """Sectors of flash for a unit's history of samples (and as many events again, at most), with room."""
    largest = max(layout.size for layout in LAYOUTS.values())
    records = 2 * (history_s / sample_interval_s) + 64
    needed = math.ceil(HEADROOM * records * largest / (sector_size - SECTOR_HEADER_SIZE))
    return min(DEFAULT_SECTOR_COUNT, max(MIN_SECTORS, needed + 1))


def generated_units(
    plans: Sequence[UnitPlan],
    *,
    sample_interval_s: int,
    speed: float,
    baud: int,
    sectors: int | None,
    wall: Callable[[], float],
) -> list[FleetUnit]:
    """A unit per plan, on its own flash in memory, at the start of its history (not lived yet)."""
    units: list[FleetUnit] = []
    try:
        for plan in plans:
            clock = SimClock(plan.commissioned, speed, wall=wall)
            unit = build_unit(
                plan.model, plan.serial, seed=plan.seed, clock=clock, duty=plan.duty, mode=plan.mode,
                site=SITES[plan.site], sample_interval_s=sample_interval_s, baud=baud,
                sector_count=sectors or sectors_for(plan.calendar_s, sample_interval_s),
            )
            units.append(FleetUnit(unit, clock, plan.site, plan.as_of, sample_interval_s))
    except BaseException:
        close_units(units)
        raise
    return units


def flash_images(directory: str | os.PathLike[str]) -> list[Path]:
    """The flash images in *directory* (``*.img``), by name; ConfigError if there are none."""
    images = sorted(Path(directory).glob("*.img"))
    if not images:
        raise ConfigError(f"{directory} holds no flash images (*.img)")
    return images


def image_units(
    images: Sequence[Path],
    *,
    history_s: float,
    start: float,
    sample_interval_s: int,
    speed: float,
    baud: int,
    wall: Callable[[], float],
) -> list[FleetUnit]:
    """A unit per flash image of *images* (each with its ``.json`` identity sidecar).

    Each resumes from its image's newest record and lives up to *history_s* after its first
    (else *start*), as ``turbosim serve --flash`` does; its seed, duty, site and grid mode are
    the sidecar's ``simulated`` ones where ``turbosim fleet`` wrote them."""
    units: list[FleetUnit] = []
    try:
        for image in images:
            identity, simulated = _identity(image)
            site = str(simulated.get("site", "temperate"))
            interval = int(simulated.get("sample_interval_s", sample_interval_s))
            commissioned, newest = image_times(image)
            clock = SimClock(newest or start, speed, wall=wall)
            unit = build_unit(
                str(identity["model"]), str(identity["serial"]), seed=int(simulated.get("seed", 1)),
                clock=clock, flash_path=image, duty=str(simulated.get("duty", "baseload")),
                mode=GridMode.STAND_ALONE if simulated.get("mode") == "standalone" else GridMode.GRID_CONNECT,
                site=SITES[site], sample_interval_s=interval, baud=baud, simulated=simulated or None,
            )
            units.append(FleetUnit(unit, clock, site, (commissioned or start) + history_s, interval))
    except (KeyError, TypeError, ValueError) as exc:
        close_units(units)
        raise ConfigError(f"{image}: its identity sidecar does not say who the unit is ({exc})") from None
    except BaseException:
        close_units(units)
        raise
    return units


def _identity(image: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The identity sidecar of *image*, and its ``simulated`` part (empty without one)."""
    path = identity_path(image)
    try:
        document = json.loads(path.read_text(encoding="ascii"))
    except FileNotFoundError:
        raise SimulatorError(f"{image} has no identity sidecar {path.name}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SimulatorError(f"{path}: not an identity sidecar ({exc})") from None
    simulated = document.get("simulated", {}) if isinstance(document, dict) else None
    if not isinstance(simulated, dict):
        raise SimulatorError(f"{path}: not an identity sidecar")
    return document, simulated


def live_histories(units: Sequence[FleetUnit]) -> int:
    """Live every unit's history up to its ``age_until``; the records they logged."""
    logged = 0
    for member in units:
        seconds = member.age_until - member.clock.now()
        if seconds > 0:
            before = member.unit.next_seq
            member.unit.fast_forward(seconds)
            logged += member.unit.next_seq - before
    return logged


def inventory_entries(units: Sequence[FleetUnit], urls: Sequence[str], baud: int) -> list[InventoryEntry]:
    """An inventory entry per unit: its URL, line rate and serial, its model as group, its site."""
    return [
        InventoryEntry(url, baud, member.unit.serial, member.unit.model, member.site)
        for member, url in zip(units, urls, strict=True)
    ]


def close_units(units: Sequence[FleetUnit]) -> None:
    for member in units:
        member.unit.close()
