"""`turbosim`: the emulated controller on the command line.

Subcommands:

- ``serve``: run a unit and answer on a new pty, a serial device, TCP or RFC 2217.
  Prints exactly one line ``ready <path-or-url>`` on stdout once it answers.
- ``run``: live a unit's history into a flash image without serving it.
- ``info``: what a flash image holds.
- ``fleet``: simulate a whole fleet into flash images, one process per core.
- ``serve-fleet``: serve many units from one process, each on its own TCP or RFC 2217 port, as a
  fleet behind a terminal server; prints ``ready <inventory>`` naming the inventory it wrote.
- ``keys``: a unit's access keys, shown only when asked (or replaced, at the bench).

This module parses arguments, wires the parts together and reports errors
in one line; the behaviour lives in the modules it calls.  It is the only
place besides the links and the in-process line's :class:`~firmware_sim.inproc.WallClock` that
reads the wall clock (to drive the simulated one).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from protocol.enums import GridMode
from protocol.inventory import format_inventory

from .auth import MAX_FAILURES
from .climate import SITES
from .clock import SimClock
from .dialin import Answer, DialFaults, Exchange
from .duty import DUTY_PROFILES
from .errors import ConfigError, SimulatorError
from .faults import ScriptedFault, parse_scripted_fault
from .flash import NorFlash
from .fleet import (
    DEFAULT_AS_OF,
    UnitResult,
    age_summary,
    parse_mix,
    plan_fleet,
    plan_served_fleet,
    simulate_fleet,
)
from .fleet import DEFAULT_START as FLEET_START
from .fleet_server import FleetServer
from .impairment import Impairment, LineFaults
from .inproc import Line, WallClock
from .keystore import KeyStore, UnitKeys, existing_key_chip, key_chip_path
from .links import DialInLink, Link, PtyLink, Rfc2217Link, SerialDeviceLink, TcpLink
from .logstore import LogStore
from .models import PROFILES
from .pacing import Pacer
from .serve import Server
from .served_fleet import (
    UNITS_PER_BATCH,
    FleetUnit,
    allow_descriptors,
    close_units,
    flash_images,
    generated_units,
    image_units,
    inventory_entries,
    live_histories,
    open_listeners,
)
from .session import DeviceSession
from .unit import DEFAULT_BAUD, DEFAULT_SECTOR_COUNT, DEFAULT_SECTOR_SIZE, Unit, build_unit, image_times

EXAMPLES = """
examples:
  turbosim serve --pty /tmp/turbine --model C60 --history 2000h
  turbosim serve --tcp 127.0.0.1:7000 --model C30 --seed 7 --no-pace
  turbosim serve --rfc2217 7001 --flash unit.img --fault 5005@1200h
  turbosim serve --port /dev/ttyUSB1 --baud 57600
  turbosim run --flash unit.img --model C65 --history 8000h
  turbosim info --flash unit.img
  turbosim keys --flash unit.img --level maintenance > maintenance.key
  turbosim fleet --units 4000 --mix C30:0.6,C60:0.4 --seed 1 --out fleet/
  turbosim fleet --units 200 --start 2001-01-01 --end 2004-01-01 --out fleet/
  turbosim serve-fleet --units 1000 --mix C30:0.5,C60:0.5 --history 7d --baud 9600 --tcp 127.0.0.1:7000
  turbosim serve-fleet --images fleet/ --rfc2217 127.0.0.1:7000-7999 --dial busy=0.05,drop=0.05
"""

SERVE_TICK_SAMPLES = 64
"""A serving unit lives at most this many sample intervals per tick (milliseconds of work)."""
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
DEFAULT_START = datetime(2024, 1, 1, tzinfo=UTC)


def parse_duration(text: str) -> float:
    """``"2000h"``, ``"30d"``, ``"15m"``, ``"90s"``, ``"1y"`` or plain seconds."""
    text = text.strip().lower()
    unit = _UNITS.get(text[-1:]) if text else None
    number = text[:-1] if unit else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad duration {text!r}: use e.g. 90s, 15m, 2000h, 30d, 1y"
        ) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"duration {text!r} is not a number of seconds")
    if value < 0:
        raise argparse.ArgumentTypeError(f"duration {text!r} is negative")
    return value


def parse_sample_interval(text: str) -> float:
    """A time between samples: a duration of at least a second (the log's timestamps are whole
    seconds)."""
    value = parse_duration(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"sample interval {text!r}: at least 1s")
    return value


def parse_start(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad start {text!r}: use an ISO date like 2024-01-01") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_fault(text: str) -> ScriptedFault:
    try:
        return parse_scripted_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def parse_impairment(text: str) -> LineFaults:
    try:
        return LineFaults.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _unit_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the unit")
    group.add_argument("--model", default="C60", choices=sorted(PROFILES), help="model profile (default C60)")
    group.add_argument("--serial", help="serial number (default: <model>-<seed>)")
    group.add_argument("--seed", type=int, default=1, help="simulation seed (default 1)")
    group.add_argument("--profile", default="baseload", choices=sorted(DUTY_PROFILES), help="duty profile")
    group.add_argument(
        "--mode", default="grid", choices=["grid", "standalone"], help="grid connect or stand alone"
    )
    group.add_argument("--site", default="temperate", choices=sorted(SITES), help="climate of the site")
    group.add_argument(
        "--flash", metavar="FILE", help="flash image file (kept between runs); default: memory"
    )
    group.add_argument(
        "--sectors", type=int, help=f"flash sectors for a new image (default {DEFAULT_SECTOR_COUNT})"
    )
    group.add_argument("--sector-size", type=int, help=f"bytes per sector (default {DEFAULT_SECTOR_SIZE})")
    group.add_argument(
        "--sample-interval",
        type=parse_sample_interval,
        default=900.0,
        metavar="DUR",
        help="time between runtime samples (default 15m)",
    )
    group.add_argument(
        "--start",
        type=parse_start,
        default=DEFAULT_START.timestamp(),
        metavar="DATE",
        help="when a new unit is commissioned (default 2024-01-01)",
    )
    group.add_argument(
        "--history",
        type=parse_duration,
        default=0.0,
        metavar="DUR",
        help="the unit's age to live up to before serving, e.g. 2000h: counted from its commissioning "
        "(its first record, else --start); an image already that old lives nothing more",
    )
    group.add_argument(
        "--fault",
        type=parse_fault,
        action="append",
        default=[],
        metavar="CODE@HOURSh",
        help="script a fault at an operating hour, e.g. 5005@1200h (repeatable)",
    )
    group.add_argument("--baud", type=int, default=DEFAULT_BAUD, help="line rate (default 115200, 8N1)")


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> NoReturn:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("turbolog")
        except PackageNotFoundError:
            installed = "(not installed: no package metadata)"
        print(f"{parser.prog} {installed}")
        parser.exit()


class _RaisingParser(argparse.ArgumentParser):
    """A parser for options given in code (the pytest plugin's in-process unit): a mistake raises
    ConfigError with argparse's message instead of printing usage and exiting the caller's process."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message}")


def build_parser(
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The command's parser; *parser_class* is also the subcommands' parsers' class."""
    parser = parser_class(
        prog="turbosim",
        allow_abbrev=False,
        description="An emulated microturbine controller that answers on a serial line.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="print turbosim's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        allow_abbrev=False,
        help="run a unit and answer on a line",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = serve.add_mutually_exclusive_group(required=True)
    where.add_argument("--pty", metavar="PATH", help="a new pseudo-terminal, reachable at symlink PATH")
    where.add_argument(
        "--port", metavar="DEVICE", help="an existing serial device (or one end of a socat pair)"
    )
    where.add_argument("--tcp", metavar="[HOST:]PORT", help="raw TCP listener (loopback unless HOST given)")
    where.add_argument(
        "--rfc2217", metavar="[HOST:]PORT", help="RFC 2217 listener (loopback unless HOST given)"
    )
    _unit_options(serve)
    line = serve.add_argument_group("the line")
    line.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)"
    )
    line.add_argument("--no-pace", action="store_true", help="send as fast as the link takes it")
    line.add_argument(
        "--impair",
        type=parse_impairment,
        metavar="SPEC",
        help="impair the line, e.g. ber=1e-5,drop=0.001,insert=0.001,burst=1e-6,latency=0.02,cut=5000 "
        "(bytes both ways; latency: the round trip, on the replies; cut: once, after N bytes to the host)",
    )
    line.add_argument("--impair-seed", type=int, default=0, help="seed of the impairment (default 0)")

    run = commands.add_parser(
        "run", allow_abbrev=False, help="live a unit's history into a flash image, without serving"
    )
    _unit_options(run)

    info = commands.add_parser("info", allow_abbrev=False, help="what a flash image holds")
    info.add_argument("--flash", metavar="FILE", required=True)
    info.add_argument("--json", action="store_true", help="machine-readable output")
    _fleet_parser(commands)
    _serve_fleet_parser(commands)

    keys = commands.add_parser(
        "keys", allow_abbrev=False,
        help="a unit's access keys as hex (kept in FILE.keys, beside its flash image FILE)",
    )
    keys.add_argument("--flash", metavar="FILE", required=True)
    keys.add_argument(
        "--level", choices=["maintenance", "factory"], help="print only this level's key (for a key file)"
    )
    keys.add_argument("--json", action="store_true", help="machine-readable output")
    keys.add_argument(
        "--rotate", action="store_true",
        help="first replace the keys with new random ones (a running unit takes them at its next start)",
    )
    return parser


def _mix(text: str) -> dict[str, float]:
    try:
        return parse_mix(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fleet_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = commands.add_parser(
        "fleet",
        allow_abbrev=False,
        help="simulate a fleet into flash images (DIR/<serial>.img and .json), one process per core",
        description="Simulate a growing fleet on the press release's timeline (shipments from December 1998 "
        "to about 4,000 units in May 2007, documented hours about 3 M by December 2002, 10 M by "
        "November 2005 and 15 M by May 2007), scaled to --units: each unit with its own serial number, "
        "shipment date, duty profile and climate site, logging an hourly sample and every fault and event "
        "of its documented window into a flash image big enough for it (docs/flash-image.md, "
        "docs/simulation.md).",
    )
    fleet.add_argument("--units", type=int, required=True, help="number of units")
    fleet.add_argument(
        "--mix", type=_mix, default="C30:0.6,C60:0.4", metavar="MODEL:SHARE,...",
        help="models and their shares (default C30:0.6,C60:0.4)",
    )
    fleet.add_argument(
        "--hours", type=float,
        help="mean documented operating hours per unit at the read-out date (default: the timeline's, "
        "3,750 h from 1998-12-01 to 2007-05-01)",
    )
    fleet.add_argument("--seed", type=int, default=1, help="fleet seed (default 1)")
    fleet.add_argument("--out", required=True, metavar="DIR", help="directory for the images")
    fleet.add_argument(
        "--start", type=parse_start, default=float(FLEET_START), metavar="DATE",
        help="first shipment; the timeline is stretched from it to the read-out (default 1998-12-01)",
    )
    fleet.add_argument(
        "--end", "--as-of", dest="as_of", type=parse_start, default=float(DEFAULT_AS_OF), metavar="DATE",
        help="read-out date, when every unit's history ends at the latest (default 2007-05-01)",
    )
    fleet.add_argument("--workers", type=int, help="processes (default: one per core)")


def _serve_fleet_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fleet = commands.add_parser(
        "serve-fleet",
        allow_abbrev=False,
        help="serve many units from one process, each on its own TCP or RFC 2217 port",
        description="Serve a fleet as a terminal server would: each unit its own simulated life on its "
        "own loopback port (consecutive from PORT, within FIRST-LAST, or ephemeral with port 0), paced "
        "at its own line rate and living on while served.  Prints one line, 'ready INVENTORY', once "
        "every unit answers: the inventory (TOML, or CSV for a .csv path) names each unit's URL, baud "
        "and serial number, as turbolog poll reads it.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = fleet.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="[HOST:]PORT[-LAST]", help="raw TCP listeners (loopback unless HOST)")
    where.add_argument("--rfc2217", metavar="[HOST:]PORT[-LAST]", help="RFC 2217 listeners")
    who = fleet.add_mutually_exclusive_group(required=True)
    who.add_argument("--units", type=int, help="number of units to generate")
    who.add_argument("--images", metavar="DIR", help="serve the flash images of turbosim fleet (DIR/*.img)")
    group = fleet.add_argument_group("the units")
    group.add_argument(
        "--mix", type=_mix, default="C30:0.6,C60:0.4", metavar="MODEL:SHARE,...",
        help="models and their shares of --units (default C30:0.6,C60:0.4)",
    )
    group.add_argument("--seed", type=int, default=1, help="fleet seed: each unit's seed derives from it")
    group.add_argument(
        "--history", type=parse_duration, default=0.0, metavar="DUR",
        help="each unit's age to live up to before serving, e.g. 7d (for --images: counted from the "
        "image's first record, as serve --flash counts it)",
    )
    group.add_argument(
        "--start", type=parse_start, default=DEFAULT_START.timestamp(), metavar="DATE",
        help="when generated units are commissioned (default 2024-01-01)",
    )
    group.add_argument(
        "--sample-interval", type=parse_sample_interval, default=900.0, metavar="DUR",
        help="time between runtime samples of generated units (default 15m)",
    )
    group.add_argument(
        "--sectors", type=int,
        help="flash sectors per generated unit (default: room for its history and a quarter more)",
    )
    group.add_argument(
        "--workers", type=int,
        help="processes that live the generated units' histories (default: one per core); the "
        "units are then served from this one",
    )
    line = fleet.add_argument_group("the lines")
    line.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD, help="every unit's line rate (default 115200, 8N1)"
    )
    line.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)"
    )
    line.add_argument("--no-pace", action="store_true", help="send as fast as each link takes it")
    line.add_argument(
        "--impair", type=parse_impairment, metavar="SPEC",
        help="impair every unit's line as serve --impair does, each unit seeded apart",
    )
    line.add_argument("--impair-seed", type=int, default=0, help="seed of the impairments (default 0)")
    line.add_argument(
        "--dial", metavar="SPEC",
        help="dial-in mishaps, e.g. delay=2,busy=0.05,silent=0.02,drop=0.05,drop_within=16384: the "
        "handshake in seconds (what the host sends meanwhile is lost), shares of calls answered busy "
        "(closed at once), never answered, and dropped after 1 to drop_within bytes to the host",
    )
    line.add_argument("--dial-seed", type=int, help="seed of the calls' fates (default: --seed)")
    fleet.add_argument(
        "--inventory", metavar="FILE",
        help="where to write the inventory (kept); default: a temporary file removed at exit",
    )


def _make_unit(args: argparse.Namespace, speed: float) -> tuple[Unit, SimClock]:
    commissioned, newest = image_times(args.flash)
    start = newest or args.start
    args.age_until = (commissioned or args.start) + args.history
    clock = SimClock(start, speed, wall=time.monotonic)
    serial = args.serial or f"{args.model}-{args.seed:06d}"
    unit = build_unit(
        args.model,
        serial,
        seed=args.seed,
        clock=clock,
        flash_path=args.flash,
        sector_size=args.sector_size,
        sector_count=args.sectors,
        duty=args.profile,
        sample_interval_s=int(args.sample_interval),
        scripted_faults=args.fault,
        mode=GridMode.STAND_ALONE if args.mode == "standalone" else GridMode.GRID_CONNECT,
        baud=args.baud,
        site=SITES[args.site],
    )
    return unit, clock


def _live_history(unit: Unit, until: float, clock: SimClock) -> None:
    """Live the unit's life up to *until* (its commissioning plus ``--history``), if not there yet."""
    seconds = until - clock.now()
    if seconds <= 0:
        return
    began, first = time.monotonic(), unit.next_seq
    unit.fast_forward(seconds)
    print(
        f"history: {seconds / 3600:,.0f} h lived in {time.monotonic() - began:.1f} s, "
        f"{unit.next_seq - first:,} records (log holds {unit.first_seq}..{unit.next_seq - 1})",
        file=sys.stderr,
    )


def _open_link(args: argparse.Namespace) -> Link:
    if args.pty:
        return PtyLink(args.pty)
    if args.port:
        return SerialDeviceLink(args.port, args.baud)
    if args.tcp:
        return TcpLink(args.tcp)
    return Rfc2217Link(args.rfc2217, args.baud)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise ConfigError(f"--speed must be positive, not {args.speed}")
    link = _open_link(args)  # first: a refused link changes nothing, not even the flash image
    try:
        unit, clock = _make_unit(args, args.speed)
    except BaseException:
        link.close()
        raise
    stopping: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    with unit:
        try:
            _live_history(unit, args.age_until, clock)
            unit.max_tick_s = SERVE_TICK_SAMPLES * int(args.sample_interval)
            if link.exposed:
                print(
                    f"warning: {link.url} is reachable from other machines: anyone who reaches it can "
                    "read the log; setting the clock or clearing the log needs the unit's keys "
                    f"(turbosim keys), and {MAX_FAILURES} wrong attempts lock the port",
                    file=sys.stderr,
                )
            impair_out = impair_in = None
            if args.impair is not None:
                impair_out = Impairment(args.impair, seed=args.impair_seed)
                impair_in = Impairment(_per_byte(args.impair), seed=args.impair_seed + 1)
            server = Server(
                link,
                lambda: DeviceSession(unit),
                unit.tick,
                Pacer(None if args.no_pace else args.baud, now=time.monotonic()),
                impair_in=impair_in,
                impair_out=impair_out,
                baud_changed=unit.set_baud,
            )
            signal.signal(signal.SIGINT, stop)
            signal.signal(signal.SIGTERM, stop)
            print(f"ready {link.url}", flush=True)
            server.run(lambda: bool(stopping))
            unit.power_down()
            _report_unraised(unit)
            if isinstance(link, Rfc2217Link) and (link.malformed or link.clients_dropped):
                print(
                    f"rfc2217: dropped {link.malformed} malformed Telnet commands and "
                    f"{link.clients_dropped} clients that overflowed a bound",
                    file=sys.stderr,
                )
        finally:
            link.close()
    return 0


FLEET_TICK_S = 0.5
"""How often a served fleet's unit lives on (a request is answered from its log as of then)."""
FLEET_TICK_BUDGET_S = 0.002
"""Wall time a fleet unit behind its --speed may spend catching up per tick (one bounded step):
a thousand units behind must not keep the others' lines waiting."""
FLEET_BURST_S = 0.1
"""Line time a fleet unit's pacer may save up.  Its server wakes when 64 bytes are due (at 9,600
baud 15 times a second per streaming unit), so a wake-up up to 30 ms late, among a thousand
units' on two shared cores, still loses no line time."""


def cmd_serve_fleet(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise ConfigError(f"--speed must be positive, not {args.speed}")
    if args.baud <= 0:
        raise ConfigError(f"--baud must be positive, not {args.baud}")
    if args.units is not None and args.units < 1:
        raise ConfigError(f"--units must be at least 1, not {args.units}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    if args.sectors is not None and args.sectors < 2:
        raise ConfigError(f"--sectors must be at least 2, not {args.sectors}")
    if args.inventory and not Path(args.inventory).resolve().parent.is_dir():
        raise ConfigError(f"--inventory {args.inventory}: its directory does not exist")
    dial = None if args.dial is None else DialFaults.parse(args.dial)
    interval = int(args.sample_interval)
    images = flash_images(args.images) if args.images else []
    kind = "rfc2217" if args.rfc2217 else "tcp"
    allow_descriptors(len(images) or args.units, images=bool(images))
    # The listeners first: a refused port changes nothing, not even a flash image.
    links = open_listeners(kind, args.rfc2217 or args.tcp, len(images) or args.units, args.baud)
    began = time.monotonic()
    try:
        if images:
            members = image_units(
                images, history_s=args.history, start=args.start, sample_interval_s=interval,
                speed=args.speed, baud=args.baud, wall=time.monotonic,
            )
        else:
            plans = plan_served_fleet(args.units, args.mix, args.seed, int(args.start), int(args.history))
            workers = min(args.workers or os.cpu_count() or 1, math.ceil(len(plans) / UNITS_PER_BATCH))
            members = generated_units(
                plans, sample_interval_s=interval, speed=args.speed, baud=args.baud, sectors=args.sectors,
                wall=time.monotonic, workers=workers,
            )
    except BaseException:
        for link in links:
            link.close()
        raise
    workdir = None
    try:
        live_histories(members)
        held = sum(member.unit.next_seq - member.unit.first_seq for member in members)
        print(
            f"fleet: {len(members):,} units lived their history in {time.monotonic() - began:.1f} s; "
            f"their logs hold {held:,} records",
            file=sys.stderr,
        )
        if links[0].exposed:
            print(
                f"warning: {links[0].url} and the other {len(links) - 1:,} units are reachable from "
                "other machines: anyone who reaches them can read their logs",
                file=sys.stderr,
            )
        dial_seed = args.seed if args.dial_seed is None else args.dial_seed
        servers = [
            _fleet_server(member, link, args, dial, dial_seed)
            for member, link in zip(members, links, strict=True)
        ]
        text_kind = "csv" if args.inventory and args.inventory.endswith(".csv") else "toml"
        if args.inventory:
            inventory = Path(args.inventory)
        else:
            workdir = Path(tempfile.mkdtemp(prefix="turbosim-fleet-"))
            inventory = workdir / "inventory.toml"
        entries = inventory_entries(members, [link.url for link in links], args.baud)
        part = inventory.with_name(f".{inventory.name}.part")
        part.write_text(format_inventory(entries, kind=text_kind), encoding="utf-8")
        os.replace(part, inventory)
        stopping: list[int] = []

        def stop(signum: int, frame: FrameType | None) -> None:
            stopping.append(signum)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        print(f"ready {inventory}", flush=True)
        FleetServer(servers).run(lambda: bool(stopping))
        for member in members:
            member.unit.power_down()
        _report_calls(servers)
    finally:
        for link in links:
            link.close()
        close_units(members)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _fleet_server(
    member: FleetUnit, tcp: TcpLink, args: argparse.Namespace, dial: DialFaults | None, dial_seed: int
) -> Server:
    """The server of one fleet unit: its line (a dial-in line with --dial), pacer and impairments."""
    unit = member.unit
    unit.max_tick_s = SERVE_TICK_SAMPLES * member.sample_interval_s
    link: Link = tcp
    if dial is not None:
        link = DialInLink(tcp, Exchange(dial, f"{dial_seed}:{unit.serial}"), time.monotonic)
    impair_out = impair_in = None
    if args.impair is not None:
        seed = zlib.crc32(f"{args.impair_seed}:{unit.serial}".encode())
        impair_out = Impairment(args.impair, seed=seed)
        impair_in = Impairment(_per_byte(args.impair), seed=seed + 1)
    return Server(
        link,
        lambda: DeviceSession(unit),
        unit.tick,
        Pacer(None if args.no_pace else args.baud, now=time.monotonic(), burst_s=FLEET_BURST_S),
        impair_in=impair_in,
        impair_out=impair_out,
        tick_interval=FLEET_TICK_S,
        tick_budget=FLEET_TICK_BUDGET_S,
        baud_changed=unit.set_baud,
    )


def _report_calls(servers: Sequence[Server]) -> None:
    """One line on stderr: the calls the fleet took, by fate (only with --dial)."""
    lines = [server.link for server in servers if isinstance(server.link, DialInLink)]
    if not lines:
        return
    fates = {answer: sum(line.fates[answer] for line in lines) for answer in Answer}
    print(
        "serve-fleet: calls " + ", ".join(f"{answer.value} {count:,}" for answer, count in fates.items())
        + f"; {sum(line.dropped for line in lines):,} dropped mid-transfer",
        file=sys.stderr,
    )


def _per_byte(faults: LineFaults) -> LineFaults:
    """*faults*' damage to bytes alone (errors, drops, inserts, bursts), without its latency and cut.

    ``--impair`` damages the bytes of both directions (each with its own seed), but its latency
    and its cut are properties of the whole line, so each is applied once, in one place:

    - ``latency`` is the round trip (USB batching, OS buffers), so it delays one direction only:
      serve holds the device's replies that long (:class:`~firmware_sim.serve.Server`), the
      in-process line holds the host's writes (:class:`~firmware_sim.inproc.Line`); delaying
      both would double every round trip.
    - ``cut=N`` counts the bytes towards the host (where a pull's stream flows) and then drops
      the peer once; the line works again for the next connection.  An :class:`Impairment`
      given a cut swallows every byte after it for good, and nothing watches the inbound one,
      so a cut there would leave the unit deaf instead of cutting the line.
    """
    return replace(faults, latency_s=0.0, disconnect_after=None)


def inproc_line(argv: Sequence[str]) -> tuple[Unit, Line]:
    """A unit built from ``turbosim serve`` options (*argv*, without a link option), its history
    lived, on an in-process line on the wall clock: what the pytest plugin's ``link="inproc"``
    serves.  The caller closes the unit.  A cut (``--impair cut=N``) happens once, as in serve.
    """
    args = build_parser(_RaisingParser).parse_args(["serve", "--port", "inproc", *argv])  # link ignored
    if args.speed <= 0:
        raise ConfigError(f"--speed must be positive, not {args.speed}")
    unit, clock = _make_unit(args, args.speed)
    try:
        _live_history(unit, args.age_until, clock)
        unit.max_tick_s = SERVE_TICK_SAMPLES * int(args.sample_interval)
        faults: LineFaults | None = args.impair
        cut = None if faults is None else faults.disconnect_after
        line = Line(
            unit, clock=WallClock(), baud=None if args.no_pace else args.baud,
            to_host=None if faults is None else _per_byte(faults),
            to_device=None if faults is None else _per_byte(faults),
            cuts=[] if cut is None else [cut], latency_s=0.0 if faults is None else faults.latency_s,
            seed=args.impair_seed, tick=unit.tick,
        )
    except BaseException:
        unit.close()
        raise
    return unit, line


def cmd_run(args: argparse.Namespace) -> int:
    unit, clock = _make_unit(args, speed=1.0)
    with unit:
        _live_history(unit, args.age_until, clock)
        unit.power_down()
        _report_unraised(unit)
    return 0


def _report_unraised(unit: Unit) -> None:
    """One line on stderr naming the scripted faults (``--fault``) this run never raised."""
    missed = unit.scripted_unraised
    if not missed:
        return
    ended_s = unit.counters.operating_s
    ahead = [str(s) for s in missed if s.at_operating_s > ended_s]
    past = [str(s) for s in missed if s.at_operating_s <= ended_s]
    parts = []
    if ahead:
        parts.append(f"{', '.join(ahead)} not reached: the run ended at operating hour {ended_s / 3600:,.1f}")
    if past:
        parts.append(f"{', '.join(past)} already past when the unit powered up")
    print(f"turbosim: scripted fault never raised: {'; '.join(parts)}", file=sys.stderr)


def cmd_info(args: argparse.Namespace) -> int:
    with NorFlash.open(args.flash) as flash:
        store = LogStore(flash)
        counts = flash.erase_counts()
        summary = {
            "first_seq": store.first_seq,
            "next_seq": store.next_seq,
            "records": store.next_seq - store.first_seq,
            "capacity_records": store.capacity_records,
            "operating_hours": round(store.counters.operating_s / 3600, 2),
            "starts": store.counters.starts,
            "trips": store.counters.trips,
            "kwh": round(store.counters.energy_wh / 1000, 3),
            "sectors": flash.sector_count,
            "sector_size": flash.sector_size,
            "erase_count_max": max(counts),
            "erase_count_mean": round(sum(counts) / len(counts), 2),
        }
    if args.json:
        print(json.dumps(summary))
    else:
        width = max(map(len, summary))
        for key, value in summary.items():
            print(f"{key.replace('_', ' '):<{width}}  {value}")
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {args.workers}")
    plans = plan_fleet(args.units, args.mix, args.hours, args.seed, int(args.as_of), int(args.start))
    print(age_summary(plans), file=sys.stderr)
    began = time.monotonic()
    done: list[UnitResult] = []

    def progress(result: UnitResult) -> None:
        done.append(result)
        if len(done) % max(1, len(plans) // 10) == 0:
            print(f"fleet: {len(done):,} of {len(plans):,} units, {time.monotonic() - began:.0f} s",
                  file=sys.stderr)

    results = simulate_fleet(plans, args.out, workers=args.workers, progress=progress)
    hours = sum(result.operating_s for result in results) / 3600
    print(
        f"fleet: {len(results):,} units, {hours:,.0f} operating hours, "
        f"{sum(result.records for result in results):,} records, "
        f"{sum(result.image_bytes for result in results) / 1e6:,.0f} MB of images in {args.out} "
        f"({time.monotonic() - began:.1f} s)"
    )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    with existing_key_chip(args.flash) as chip:
        store = KeyStore(chip)
        if args.rotate:
            store.save(UnitKeys.generate(os.urandom))
        keys, generation = store.keys, store.generation
    if keys is None:
        raise ConfigError(f"{key_chip_path(args.flash)} holds no valid keys")
    shown = {"maintenance": keys.maintenance.hex(), "factory": keys.factory.hex()}
    if args.level:
        print(shown[args.level])
    elif args.json:
        print(json.dumps({**shown, "generation": generation}))
    else:
        for level, key in shown.items():
            print(f"{level:<11}  {key}")
    return 0


COMMANDS = {
    "serve": cmd_serve, "run": cmd_run, "info": cmd_info, "fleet": cmd_fleet, "serve-fleet": cmd_serve_fleet,
    "keys": cmd_keys,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SimulatorError as exc:
        print(f"turbosim: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"turbosim: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
