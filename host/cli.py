"""`turbolog`: the field technician's command.

Reads a unit's log over its service port into the local archive, and
answers questions about what the archive holds.  Every command that reports
takes ``--json`` for scripts.  Errors are one line on stderr and an exit code
from :mod:`host.errors` (documented in ``turbolog --help``); never a
traceback.  This module parses arguments and presents results; the work is
done by the library modules it calls.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from .archive_path import default_archive_path
from .dial_policy import REDIAL_S, REDIALS, RETRY_AFTER_S
from .errors import ArchiveError, DeviceError, HostError, Interrupted, OutputError, UsageError
from .output_file import STDOUT, describe, output_file
from .selection import as_of_type, cohort_type, confidence_type, date_type, names_type, target_type
from .terminal import ProgressBar, StatusLines, Style, duration, human_bytes, printable, table
from .window import HELP as WINDOW_HELP
from .window import LAST_RECORD, RELATIVE_TO, Window, moment_type, resolve

if TYPE_CHECKING:
    from protocol.inventory import InventoryEntry
    from protocol.messages import IdentifyResponse

    from .archive import Archive, DialRow
    from .archive_writer import ArchiveWriter
    from .driver import Client
    from .failures import FailurePolicy
    from .pending import Pending
    from .poll import PollStatus, Stop, UnitOutcome
    from .pull import PullProgress, Resume
    from .selection import Selection

# The protocol package, the archive, the driver and the exporters are imported by the commands
# that use them, not here: `turbolog --help` and `--version` stay fast (`make bench`, startup).

EXIT_CODES = """
exit codes:
  0  success                     5  an output file cannot be written
  1  unexpected error (a bug)    6  the port is missing, busy or vanished
  2  bad usage or arguments      7  the device did not answer in time
  3  unknown serial number       8  the pull gave up (the line kept failing)
  4  archive corrupt or foreign  9  the device misbehaved or is incompatible
     (or polled by another poll) 10  poll: some units were not reached (the others' records kept)
  130 interrupted (Ctrl-C), 143 stopped by SIGTERM, 129 by SIGHUP:
      what was pulled so far is kept (the count is printed); run again to resume
  141 the reader of the output went away (| head): ended quietly, as if by SIGPIPE
"""

EXAMPLES = """
examples:
  turbolog ports
  turbolog info /dev/ttyUSB0
  turbolog pull /dev/ttyUSB0                      # a USB-serial cable on the service port
  turbolog pull /tmp/turbine --baud 115200        # a pty made by turbosim or socat
  turbolog pull 'rfc2217://10.0.0.5:7001?ign_set_control'
  turbolog summary C60-000001 --json
  turbolog faults C60-000001 --since 30d --severity NORMAL_SHUTDOWN
  turbolog faults C60-000001 --code 5005 --detail  # each with its freeze-frame
  turbolog codes 5005                             # what a fault code means and what to do
  turbolog export C60-000001 --format csv --out c60.csv
  turbolog plot C60-000001 --out c60.png
  turbolog fleet
  turbolog poll fleet.toml --jobs 50 --due 24h    # every unit not reached in a day, 50 links at once
"""

COMMAND_EXAMPLES = {
    "ports": """
examples:
  turbolog ports
  turbolog ports --json
""",
    "info": """
examples:
  turbolog info /dev/ttyUSB0                      # model, serial, log range, and what a pull would fetch
  turbolog info /dev/ttyUSB0 --baud 57600 --db site.sqlite --json
""",
    "pull": """
examples:
  turbolog pull /dev/ttyUSB0                      # into the default archive; run again to resume or top up
  turbolog pull /tmp/turbine --db site.sqlite     # a pty made by turbosim or socat, another archive
  turbolog pull 'rfc2217://10.0.0.5:7001?ign_set_control' --timeout 5
""",
    "poll": """
examples:
  turbolog poll fleet.toml --db fleet.sqlite --jobs 50       # every unit of the inventory, 50 at a time
  turbolog poll fleet.csv --due 24h                          # only units not reached in the last 24 h
  turbolog poll fleet.toml --shard 2/4 --json                # this host's quarter of the inventory

inventory (TOML, or CSV with the header url,baud,serial,group,site; only url required):
  [[unit]]
  url = "rfc2217://10.0.0.5:7001"     # or socket://HOST:PORT, or a device path
  baud = 9600                         # default: --baud
  serial = "C60-000001"               # expected there: another unit answering fails that unit
  group = "north"
  site = "plant-7"
""",
    "units": """
examples:
  turbolog units
  turbolog units --db site.sqlite --json
""",
    "summary": """
examples:
  turbolog summary C60-000001
  turbolog summary C60-000001 --db site.sqlite --json
""",
    "faults": """
examples:
  turbolog faults C60-000001 --since 30d          # the last 30 days of the unit's log (its clock)
  turbolog faults C60-000001 --since 2024-01-01 --until 2024-02-01 --severity NORMAL_SHUTDOWN
  turbolog faults C60-000001 --since 7d --relative-to now --json   # the last 7 days of this computer's clock
  turbolog faults C60-000001 --code 5005 --detail  # each fault, its action, freeze-frame and run-up
  turbolog faults C60-000001 --epoch 2            # only the serial's second archived log
""",
    "codes": """
examples:
  turbolog codes                                  # every fault code: severity, subsystem, name
  turbolog codes 5005                             # what one code means and what to do about it
  turbolog codes --json
""",
    "export": """
examples:
  turbolog export C60-000001 --format csv --out c60.csv
  turbolog export C60-000001 --format jsonl --since 12h | head     # the log's last 12 hours, to stdout
  turbolog export C60-000001 --format csv --since 2024-05-01 --until 2024-05-31T23:59:59 --out may.csv
  turbolog export --format parquet --out fleet.parquet/            # every unit, for Spark, Dask, DuckDB
  turbolog export --format parquet --out /shared/fleet/ --part host-2   # this host's share of one dataset
""",
    "plot": """
examples:
  turbolog plot C60-000001 --out c60.png
  turbolog plot C60-000001 --since 7d --out week.svg              # the log's last week, as SVG
  turbolog plot C60-000001 --since 2024-05-01 --until 2024-06-01 --out may.pdf --json
""",
    "live": """
examples:
  turbolog live /dev/ttyUSB0                      # refreshes every second until Ctrl-C
  turbolog live /dev/ttyUSB0 --interval 5 --count 12 --json
""",
    "fleet": """
examples:
  turbolog fleet
  turbolog fleet --plot fleet.png --db fleet.sqlite
  turbolog fleet --demonstrate 8000 --model C60 --confidence 0.9 --json
  turbolog fleet --as-of 2005-11-30 --growth                     # the fleet as it stood then
  turbolog fleet --site desert --duty peak-shaving --cohort 2001-2002 --since 2004-01-01
""",
    "report": """
examples:
  turbolog report --out fleet.html                                # the whole fleet, to mail
  turbolog report --out c60.html --model C60 --demonstrate 8000 --confidence 0.95
  turbolog report C60-000001 --out unit.html                      # one unit
""",
    "ingest": """
examples:
  turbolog ingest fleet/                          # fleet/*.img, each with its .json identity
  turbolog ingest /media/usb/images --db site.sqlite --json
""",
    "clear-log": """
examples:
  turbolog clear-log /dev/ttyUSB0 --key-file maint.key            # refused unless every record is archived
  TURBOLOG_KEY="$(cat factory.key)" turbolog clear-log /dev/ttyUSB0 --level factory --force
""",
    "set-clock": """
examples:
  turbolog set-clock /dev/ttyUSB0 --key-file maint.key            # to this computer's UTC time
  turbolog set-clock /dev/ttyUSB0 --key-file maint.key --time 2024-05-01T08:00:00 --yes
""",
}
"""Each command's own examples, at the end of its --help."""

DEFAULT_BAUD = 115_200
EXIT_PIPE_CLOSED = 141
"""Standard output's reader went away (``| head``): 128 + SIGPIPE, what a shell shows for git or cat."""


# --- argument types -------------------------------------------------------------------


def since_type(text: str) -> datetime:
    """An ISO date/time, or an age like ``30d``, ``12h``, ``90m``."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    if text and text[-1] in units and text[:-1].replace(".", "", 1).isdigit():
        return datetime.now(UTC) - timedelta(seconds=float(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither an ISO date nor an age like 30d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_SECONDS_PER = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def interval_type(text: str) -> float:
    """A length of time like ``24h``, ``90m``, ``7d`` or ``30s``, in seconds."""
    number = text[:-1]
    if text[-1:] not in _SECONDS_PER or not number.replace(".", "", 1).isdigit() or float(number) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a length of time like 24h, 90m or 7d")
    return float(number) * _SECONDS_PER[text[-1]]


def positive_int(text: str) -> int:
    """A whole number of 1 or more (``--window``, ``--count``)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def severity_type(text: str) -> int:
    from protocol.enums import Severity

    if text.isdigit():
        return int(text)
    try:
        return int(Severity[text.upper().replace("-", "_")])
    except KeyError:
        names = ", ".join(s.name for s in Severity)
        raise argparse.ArgumentTypeError(
            f"unknown severity {text!r}; use a level or one of {names}"
        ) from None


def code_type(text: str) -> int:
    try:
        code = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"fault code {text!r} is not a number") from None
    if not 0 <= code <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"fault code {code} is outside 0..65535")
    return code


def _window_options(parser: argparse.ArgumentParser) -> None:
    """``--since``, ``--until`` and ``--relative-to`` (see :mod:`host.window`)."""
    parser.add_argument(
        "--since", type=moment_type, metavar="WHEN", help=f"from this moment on: {WINDOW_HELP}"
    )
    parser.add_argument("--until", type=moment_type, metavar="WHEN", help="up to this moment (same forms)")
    parser.add_argument(
        "--relative-to",
        choices=RELATIVE_TO,
        default=LAST_RECORD,
        help="what an age like 30d counts back from: the unit's last archived record (default) "
        "or now, this computer's clock",
    )


def _window(archive: Archive, args: argparse.Namespace) -> Window:
    return resolve(archive, args.serial, args.since, args.until, args.relative_to)


# --- the parser -------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, without abbreviations (``--key`` is not ``--key-file``) and never quoting
    anything that looks like a key back in its error line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        super().error(_withhold_keys(message))


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked for (reading
    package metadata takes longer than the rest of ``--help``)."""

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


class _ExportFormats(Sequence[str]):
    """The names in :data:`host.export.EXPORTERS`, looked up only when argparse needs them (parsing
    ``export``, or its ``--help``): importing the exporters takes longer than the rest of ``--help``."""

    def _names(self) -> list[str]:
        from .export import EXPORTERS

        return sorted(EXPORTERS)

    def __getitem__(self, index: Any) -> Any:
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--db", type=Path, metavar="FILE", help=f"archive file (default {default_archive_path()})"
    )
    common.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    line = _Parser(add_help=False)
    line.add_argument(
        "port", help="device path (/dev/ttyUSB0, COM3, a pty) or URL (socket://, rfc2217://, spy://)"
    )
    line.add_argument(
        "--baud",
        type=int,
        default=DEFAULT_BAUD,
        help=f"line rate in baud (bit/s), 8N1 (default {DEFAULT_BAUD})",
    )
    line.add_argument(
        "--timeout", type=float, default=2.0,
        help="seconds to wait for each answer at the least, and the first guess before the link's round "
        "trip is measured; a slower link is waited for (default 2)",
    )

    parser = _Parser(
        prog="turbolog",
        description="Pull microturbine controller logs over a serial service port, and read them.",
        epilog=EXAMPLES + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="print turbolog's version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str, parents: Sequence[_Parser]) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_,
            description=help_,
            parents=list(parents),
            epilog=COMMAND_EXAMPLES.get(name, EXAMPLES) + EXIT_CODES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    command("ports", "list the serial ports on this machine", [common])
    command("info", "identify the unit on a port: model, serial, log range, counters", [common, line])
    pull_cmd = command(
        "pull", "pull the unit's log into the archive (resumes where it stopped)", [common, line]
    )
    pull_cmd.add_argument(
        "--window", type=positive_int, default=2048, help="records per request, 1 or more (default 2048)"
    )
    pull_cmd.add_argument(
        "--new-log", action="store_true",
        help="if the unit's log is not the archived one (replaced controller, cleared log), archive it "
        "as the serial's next epoch instead of refusing",
    )
    poll_cmd = command(
        "poll", "pull every unit of an inventory (TOML or CSV) into the archive, several links at once",
        [common],
    )
    poll_cmd.add_argument("inventory", type=Path, metavar="INVENTORY", help="FILE.toml or FILE.csv")
    poll_cmd.add_argument("--jobs", type=int, default=8, help="links open at once, 1 or more (default 8)")
    poll_cmd.add_argument(
        "--due", type=interval_type, metavar="AGE",
        help="dial only units not reached within AGE (24h, 90m, 7d); failed ones again after a back-off "
        f"of {RETRY_AFTER_S / 60:g} min doubling with each failure (default: dial every unit)",
    )
    poll_cmd.add_argument(
        "--redials", type=int, default=REDIALS, metavar="N",
        help=f"call a unit that does not answer (busy, refused, silent) again up to N times in the poll, "
        f"{REDIAL_S:g} s apart (default {REDIALS})",
    )
    poll_cmd.add_argument(
        "--shard", metavar="K/N", help="only the K-th of N stable shares of the inventory (one per host)"
    )
    poll_cmd.add_argument(
        "--baud", type=int, default=DEFAULT_BAUD,
        help=f"for units the inventory gives none (default {DEFAULT_BAUD})",
    )
    poll_cmd.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for each answer at the least (default 2)"
    )
    command("units", "list the units in the archive", [common])
    epoch = _Parser(add_help=False)
    epoch.add_argument(
        "--epoch", type=int, metavar="N",
        help="only the unit's Nth archived log (default: every log of the serial)",
    )
    reliability = _Parser(add_help=False)
    reliability.add_argument(
        "--failures", default="trips", metavar="POLICY",
        help="what counts as a failure: trips (default: every shutdown-class fault), equipment "
        "(trips less grid disturbances, E-stops, enclosure doors), service-calls (trips the "
        "controller latches: a technician's visit), or CODE,SUBSYSTEM,... (e.g. 5005,inverter)",
    )
    reliability.add_argument(
        "--hours", default="archive", metavar="BASIS",
        help="MTBF over: archive (default: the hours the archived records cover and the failures "
        "in them) or lifetime (the device's counters: operating hours and trips; trips policy only)",
    )
    reliability.add_argument(
        "--confidence", type=confidence_type, default=0.90, metavar="C",
        help="confidence of every bound shown, 0.9 or 90%% (default 0.9)",
    )
    summary = command(
        "summary", "operating hours, starts, energy, faults and MTBF of one unit",
        [common, epoch, reliability],
    )
    summary.add_argument("serial")
    faults = command("faults", "the faults of one unit", [common, epoch])
    faults.add_argument("serial")
    _window_options(faults)
    faults.add_argument(
        "--severity",
        type=severity_type,
        metavar="LEVEL",
        help="at or above: 2/WARNING, 3/NORMAL_SHUTDOWN, 4/FAST_SHUTDOWN, 5/EMERGENCY_STOP",
    )
    faults.add_argument("--code", type=code_type, help="only this fault code")
    faults.add_argument(
        "--detail", action="store_true",
        help="each fault followed by its freeze-frame, with units, and its run-up (a trip's last minute)"
    )
    codes = command("codes", "list the fault codes, or explain one: what it means and what to do", [])
    codes.add_argument("code", nargs="?", type=code_type, help="the fault code to explain")
    codes.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    exp = command(
        "export", "write a unit's records as CSV or JSON lines, or the archive as Parquet", [common, epoch]
    )
    exp.add_argument("serial", nargs="?", help="the unit (optional for parquet: all units)")
    exp.add_argument(
        "--format", required=True, choices=_ExportFormats(), metavar="FORMAT", dest="fmt",
        help="one of %(choices)s",
    )
    exp.add_argument(
        "--out",
        metavar="PATH",
        help="output file, - for standard output (the default); for parquet, a directory (required)",
    )
    exp.add_argument(
        "--part", metavar="NAME",
        help="parquet: add this archive's share, its files named part-NAME.parquet, to the dataset --out "
        "shared with other archives (one NAME per host, e.g. the poll's shard-2-of-4)",
    )
    _window_options(exp)
    plot = command(
        "plot", "draw power, speed and exhaust temperature over time, faults marked", [common, epoch]
    )
    plot.add_argument("serial")
    plot.add_argument(
        "--out",
        metavar="FILE",
        required=True,
        help="the picture file, its format by extension (.png, .svg, .pdf ...); - for PNG on standard output",
    )
    _window_options(plot)
    live = command("live", "a refreshing view of the unit's live telemetry", [common, line])
    live.add_argument("--interval", type=float, default=1.0, help="seconds between readings (default 1)")
    live.add_argument(
        "--count", type=positive_int, help="stop after this many readings, 1 or more (default: until Ctrl-C)"
    )
    scope = _Parser(add_help=False)
    scope.add_argument(
        "--demonstrate", type=target_type, metavar="HOURS",
        help="does the data demonstrate MTBF >= HOURS at --confidence (one-sided lower bound), and "
        "if not, how many more operating hours without a failure would",
    )
    selection = scope.add_argument_group("selection (each a name or a comma-separated list)")
    selection.add_argument("--model", type=names_type, metavar="MODEL", help="only these models")
    selection.add_argument("--site", type=names_type, metavar="SITE", help="only units at these sites")
    selection.add_argument("--duty", type=names_type, metavar="DUTY", help="only these duty profiles")
    selection.add_argument(
        "--cohort", type=cohort_type, metavar="YEARS",
        help="only units commissioned in these years: 2001, 2001-2003",
    )
    selection.add_argument(
        "--since", type=date_type, metavar="DATE", help="only records from this device time on (ISO, UTC)"
    )
    selection.add_argument(
        "--until", type=date_type, metavar="DATE", help="only records up to this device time"
    )
    selection.add_argument(
        "--as-of", type=as_of_type, metavar="DATE",
        help="the fleet as it stood at the end of DATE: its records to then, the units that had one",
    )
    fleet = command(
        "fleet", "every archived unit: hours, starts, faults and MTBF per model", [common, reliability, scope]
    )
    fleet.add_argument(
        "--plot",
        metavar="FILE",
        help="also draw MTBF per model with its interval, and fleet hours over time: PNG, or the "
        "format of FILE's extension (.svg, .pdf); - for PNG on standard output, instead of the table",
    )
    fleet.add_argument(
        "--breakdown", action="store_true",
        help="also failures per 1,000 starts, forced and planned down time per model, and failures "
        "by subsystem and by code, most first, each with its MTBF (--json always has them)",
    )
    fleet.add_argument(
        "--growth", action="store_true",
        help="also trend and growth against unit age: Crow-AMSAA beta with its interval, the Laplace "
        "and MIL-HDBK-189 trend tests and their verdict, failure rate by age band, and the Weibull "
        "of the time to first failure (in --json too)",
    )
    report = command(
        "report", "write a self-contained HTML report of the fleet, or of one unit, to mail",
        [common, reliability, scope],
    )
    report.add_argument("serial", nargs="?", help="the unit (default: the fleet the selection keeps)")
    report.add_argument(
        "--out", metavar="FILE.html", required=True, help="the HTML file; - for standard output"
    )
    auth = _Parser(add_help=False)
    auth.add_argument(
        "--key-file",
        type=Path,
        metavar="FILE",
        help="file holding the level's key as 64 hex digits (else $TURBOLOG_KEY); never on the command line",
    )
    auth.add_argument("--level", default="maintenance", help="access level: maintenance (default) or factory")
    clear = command(
        "clear-log", "clear the unit's log (refused unless every record is archived)", [common, line, auth]
    )
    clear.add_argument("--force", action="store_true", help="clear even records not archived yet")
    set_clock = command(
        "set-clock", "set the unit's clock (default: this computer's UTC time)", [common, line, auth]
    )
    set_clock.add_argument(
        "--time",
        type=since_type,
        metavar="ISO",
        help="the time to set, ISO 8601 (naive means UTC; default: this computer's clock, now)",
    )
    set_clock.add_argument(
        "--yes",
        action="store_true",
        help="set it without asking even when that moves the clock by more than a day "
        "(without a terminal to ask on, such a change is refused unless --yes)",
    )
    ingest = command(
        "ingest", "load flash images (DIR/*.img, or FILE.img, with their .json identity) into the archive",
        [common],
    )
    ingest.add_argument("directory", type=Path, metavar="DIR|FILE.img")
    ingest.add_argument(
        "--new-log", action="store_true",
        help="archive an image whose log is not the archived one for its serial as the serial's next epoch",
    )
    return parser


# --- commands ---------------------------------------------------------------------------


class Output:
    """Where a command writes: text for people, JSON for scripts."""

    def __init__(self, as_json: bool, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.style = Style(self.out)

    def json(self, value: Any) -> None:
        with self.writing():
            json.dump(value, self.out, indent=None if not self.out.isatty() else 2)
            self.out.write("\n")

    def text(self, line: str = "") -> None:
        with self.writing():
            self.out.write(line + "\n")

    def flush(self) -> None:
        with self.writing():
            self.out.flush()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A failure to write standard output as OutputError; a closed pipe passes through."""
        try:
            yield
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write standard output: {exc.strerror or exc}") from exc


WRITING_COMMANDS = frozenset({"pull", "ingest", "clear-log", "poll"})
"""Commands that open the archive for writing (creating it if need be); every other command opens
an existing archive read-only and creates nothing."""


@contextmanager
def open_archive(args: argparse.Namespace) -> Iterator[Archive]:
    from .archive import Archive

    readonly = args.command not in WRITING_COMMANDS
    with Archive.open(args.db or default_archive_path(), readonly=readonly) as archive:
        yield archive


def _check_port_args(args: argparse.Namespace) -> None:
    if args.baud <= 0:
        raise UsageError(f"--baud must be positive, not {args.baud}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive, not {args.timeout}")


@contextmanager
def connected(args: argparse.Namespace) -> Iterator[Client]:
    from .driver import Client
    from .transport import open_port

    _check_port_args(args)
    with open_port(args.port, args.baud) as transport:
        client = Client(transport, timeout=args.timeout)
        client.abort()
        yield client


def cmd_ports(args: argparse.Namespace, out: Output) -> int:
    from serial.tools import list_ports

    ports = sorted(list_ports.comports(), key=lambda p: p.device)
    rows = [{"device": p.device, "description": p.description, "hwid": p.hwid} for p in ports]
    hint = (
        "pseudo-terminals and socat links are not listed: name them by path "
        "(e.g. /tmp/turbine), and network ports by URL (socket://HOST:PORT, rfc2217://HOST:PORT)"
    )
    if out.as_json:
        out.json({"ports": rows, "note": hint})
        return 0
    if rows:
        out.text(table(["device", "description", "hwid"], [list(r.values()) for r in rows]))
    else:
        out.text("no serial ports found")
    out.text(out.style.dim(hint))
    return 0


def _pending(args: argparse.Namespace, info: IdentifyResponse) -> Pending:
    """What a pull of the unit *info* identifies would fetch into the archive (all of its log when
    there is no archive, or it cannot be read: then with a warning)."""
    from .archive import Archive
    from .pending import pending
    from .pull import DEFAULT_WINDOW

    path = args.db or default_archive_path()
    window = min(DEFAULT_WINDOW, info.max_window or DEFAULT_WINDOW)
    archive: Archive | None = None
    try:
        if path.exists():
            archive = Archive.open(path, readonly=True)
    except ArchiveError as exc:
        _warn(f"{exc}; counting the unit's whole log as not archived")
    try:
        return pending(archive, info.serial, info.first_seq, info.next_seq, args.baud, window)
    finally:
        if archive is not None:
            archive.close()


def cmd_info(args: argparse.Namespace, out: Output) -> int:
    with connected(args) as client:
        info = client.identify()
    waiting = _pending(args, info)
    last = info.next_seq - 1 if info.next_seq > info.first_seq else None
    report = {
        "serial": info.serial,
        "model": info.model,
        "firmware": info.firmware,
        "protocol": info.protocol_version,
        "schema_fingerprint": f"0x{info.schema_fingerprint:08X}",
        "first_seq": info.first_seq,
        "last_seq": last,
        "records": info.next_seq - info.first_seq,
        "capacity_records": info.capacity_records,
        "operating_hours": round(info.operating_s / 3600, 3),
        "starts": info.starts,
        "trips": info.trips,
        "energy_kwh": round(info.energy_wh / 1000, 3),
        "device_time": datetime.fromtimestamp(info.device_time, UTC).isoformat(),
        "baud": info.baud,
        "max_window": info.max_window,
        "log_id": info.log_id.hex(),
    }
    if out.as_json:
        out.json({**report, **waiting.to_json()})
    else:
        width = max(map(len, report))
        for key, value in report.items():
            out.text(f"{key.replace('_', ' '):<{width}}  {printable(value)}")
        basis = "" if waiting.archived else ", if most are samples"
        size = human_bytes(waiting.record_bytes)
        out.text(
            f"{'not archived':<{width}}  {waiting.records:,} records, about {size}: "
            f"a pull takes about {duration(waiting.seconds)} (min:s) at {args.baud:,} baud{basis}"
            if waiting.records
            else f"{'not archived':<{width}}  none: the archive holds the unit's whole log"
        )
    return 0


def cmd_pull(args: argparse.Namespace, out: Output) -> int:
    from .pull import pull
    from .transport import open_port

    _check_port_args(args)
    bar = ProgressBar(out.err)

    def progress(p: PullProgress) -> None:
        if p.reconnecting:
            down = f"link lost, reconnecting ({p.reconnecting}/{p.reconnects_max})"
            bar.show(p.done, p.total, down, now=True)
        else:
            bar.show(p.done, p.total, f"{human_bytes(p.bytes_per_s)}/s  ETA {duration(p.eta_s)}")

    def resuming(r: Resume) -> None:
        bar.close()
        with suppress(OSError):
            print(f"resuming: {r.held:,} of {r.records:,} records archived, fetching from seq {r.from_seq}",
                  file=out.err)

    with open_archive(args) as archive:
        try:
            result = pull(
                lambda: open_port(args.port, args.baud),
                archive,
                window=args.window,
                progress=progress,
                timeout=args.timeout,
                new_log=args.new_log,
                on_resume=resuming,
            )
        finally:
            bar.close()
    if out.as_json:
        out.json(result.to_json())
        return 0
    last = "-" if result.last_seq is None else f"{result.last_seq:,}"
    rate = result.bytes / result.elapsed_s if result.elapsed_s > 0 else 0.0
    epoch = f" (epoch {result.epoch})" if result.epoch > 1 else ""
    out.text(out.style.bold(f"{printable(result.serial)}{epoch}: {result.added:,} records added"))
    out.text(f"  device log     {result.first_seq:,} .. {last}")
    out.text(f"  accounted for  {result.planned_from:,} .. {last}: {result.added:,} added, "
             f"{result.evicted:,} evicted, {result.already_held:,} already held")
    out.text(f"  evicted        {result.evicted:,} (overwritten on the unit before they were read)")
    out.text(
        f"  retries        {result.retry_windows:,} windows, {result.timeouts:,} timeouts   "
        f"rejected {result.rejected:,}   reconnects {result.reconnects}"
    )
    out.text(
        f"  transferred    {human_bytes(result.bytes)} in {duration(result.elapsed_s)}"
        f" ({human_bytes(rate)}/s)"
    )
    again = f" --db {shlex.quote(os.fspath(args.db))}" if args.db else ""
    out.text(out.style.dim(f"  next: turbolog summary {shlex.quote(printable(result.serial))}{again}"))
    return 0


EXIT_SOME_UNREACHED = 10
"""``turbolog poll``: some units of the inventory were not reached; the others' records are kept."""


def _read_inventory(path: Path) -> list[InventoryEntry]:
    from protocol.errors import InventoryError
    from protocol.inventory import KINDS, parse_inventory

    kind = path.suffix.lower().lstrip(".")
    if kind not in KINDS:
        raise UsageError(f"{path}: an inventory is FILE.toml or FILE.csv, not {path.suffix or 'no suffix'}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read inventory {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        return parse_inventory(text, kind=kind)
    except InventoryError as exc:
        raise UsageError(f"{path}: {exc}") from exc


def cmd_poll(args: argparse.Namespace, out: Output) -> int:
    from .archive import Archive
    from .archive_writer import ArchiveWriter
    from .poll import PollStatus, Shard, Stop, claim_archive, due

    if args.jobs < 1:
        raise UsageError(f"--jobs must be 1 or more, not {args.jobs}")
    if args.redials < 0:
        raise UsageError(f"--redials must be 0 or more, not {args.redials}")
    if args.baud <= 0 or args.timeout <= 0:
        raise UsageError(f"--baud and --timeout must be positive, not {args.baud} and {args.timeout}")
    shard = Shard.parse(args.shard) if args.shard is not None else None
    entries = _read_inventory(args.inventory)
    if shard is not None:
        entries = [entry for entry in entries if shard.holds(entry.url)]
    path = args.db or default_archive_path()
    with claim_archive(path), ArchiveWriter(path) as writer:
        listed = len(entries)
        if args.due is not None:
            dials = {row.url: row for row in writer.call(Archive.dials)}
            entries = due(entries, dials, time.time(), args.due)
        stop = Stop()
        status = PollStatus(units=len(entries), started=time.monotonic())
        outcomes = _run_poll(entries, writer, args, stop, status, out)
    reached = sum(outcome.reached for outcome in outcomes)
    failed = [outcome for outcome in outcomes if not outcome.reached and outcome.outcome != "not dialled"]
    added = sum(outcome.added for outcome in outcomes)
    total = {
        "units": listed, "dialled": len(entries), "not_due": listed - len(entries), "reached": reached,
        "failed": len(failed), "added": added, "evicted": sum(outcome.evicted for outcome in outcomes),
        "seconds": round(time.monotonic() - status.started, 3),
    }
    if out.as_json:
        out.json({"units": [outcome.to_json() for outcome in outcomes], "total": total})
    else:
        for outcome in failed:
            who = f" ({printable(outcome.serial)})" if outcome.serial else ""
            out.text(out.style.red(f"{printable(outcome.url, 120)}{who}: {printable(outcome.error, 300)}"))
        skipped = f", {total['not_due']:,} not due" if total["not_due"] else ""
        out.text(
            f"polled {len(entries):,} of {listed:,} units{skipped}: {reached:,} reached, "
            f"{len(failed):,} failed, {added:,} records added in {duration(total['seconds'])}"
        )
    if stop.is_set():
        line = _interrupted(Interrupted(stop.signum))
        done = sum(outcome.reached for outcome in outcomes)
        with suppress(OSError):
            print(f"turbolog: {line}; every unit's committed records are kept ({added:,} records added, "
                  f"{done:,} units complete), run again to resume", file=sys.stderr)
        return 128 + stop.signum
    return 0 if reached == len(entries) else EXIT_SOME_UNREACHED


def _run_poll(
    entries: list[InventoryEntry], writer: ArchiveWriter, args: argparse.Namespace, stop: Stop,
    status: PollStatus, out: Output,
) -> list[UnitOutcome]:
    """Poll in a thread of its own while this one (which signals reach) draws the status table
    and turns a stop signal into *stop*."""
    from .poll import poll
    from .transport import open_port

    outcomes: list[UnitOutcome] = []
    failure: list[BaseException] = []

    finished = threading.Event()

    def run() -> None:
        try:
            outcomes.extend(poll(
                entries, writer, lambda entry: open_port(entry.url, entry.baud or args.baud),
                jobs=args.jobs, stop=stop, status=status, timeout=args.timeout, redials=args.redials,
            ))
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            failure.append(exc)
        finally:
            finished.set()

    lines = StatusLines(out.err)
    worker = threading.Thread(target=run, name="poll")
    worker.start()
    while not finished.is_set():
        try:  # a sleep, not a join: a signal in Thread.join can leave it thinking the thread ended
            time.sleep(0.25)
            lines.show(_poll_table(status))
        except KeyboardInterrupt as interrupt:
            stop.set(Interrupted.of(interrupt).signum)
    worker.join()
    lines.close()
    if failure:
        raise failure[0]
    return outcomes


def _poll_table(status: PollStatus) -> list[str]:
    now = time.monotonic()
    elapsed = max(now - status.started, 1e-9)
    with status.lock:
        done, failed, flying, records = status.done, status.failed, len(status.in_flight), status.records
    waiting = status.units - done - flying
    return [
        f"units {status.units:,}   done {done - failed:,}   in progress {flying:,}   failed {failed:,}   "
        f"waiting {waiting:,}",
        f"records {records:,} ({records / elapsed:,.0f}/s)   elapsed {duration(elapsed)}   "
        f"ETA {duration(status.eta_s(now))}",
    ]


def _seqs(first: int | None, last: int | None) -> str:
    return "-" if first is None or last is None or last < first else f"{first}..{last}"


def _unit_differs(row: dict[str, Any]) -> str | None:
    """Where the device's log (at its last IDENTIFY) and what the archive holds of it differ."""
    device_first, device_next = row["first_seq"], row["next_seq"]
    low = row["first_archived_seq"]
    said = []
    if row["not_archived"]:
        said.append(f"{row['not_archived']:,} of its {device_next - device_first:,} records are not archived "
                    "(turbolog pull PORT fetches them)")
    if low is not None and low < device_first:
        said.append(f"the archive keeps {low}..{device_first - 1}, which the device has since overwritten")
    if not said:
        return None
    where = f"{printable(row['serial'])} (epoch {row['epoch']})"
    return f"{where}: the device's log ran {_seqs(device_first, device_next - 1)} at its last contact; " + \
        "; ".join(said)


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _last_polls(dials: list[DialRow]) -> dict[str, dict[str, Any]]:
    """Per serial, the poll's latest try where that serial answered, and when it last reached it."""
    latest: dict[str, DialRow] = {}
    reached: dict[str, float] = {}
    for row in dials:
        if row.serial is None:
            continue
        if row.serial not in latest or row.last_attempt > latest[row.serial].last_attempt:
            latest[row.serial] = row
        if row.last_success is not None:
            reached[row.serial] = max(row.last_success, reached.get(row.serial, row.last_success))
    return {
        serial: {"url": row.url, "outcome": row.outcome, "error": row.error,
                 "last_attempt": _iso(row.last_attempt), "last_reached": _iso(reached.get(serial))}
        for serial, row in latest.items()
    }


def cmd_units(args: argparse.Namespace, out: Output) -> int:
    with open_archive(args) as archive:
        units = archive.units()
        held = [archive.holding(u.serial, u.epoch, u.first_seq, u.next_seq) for u in units]
        polls = _last_polls(archive.dials())
    rows: list[dict[str, Any]] = [
        {
            "serial": u.serial,
            "epoch": u.epoch,
            "model": u.model,
            "firmware": u.firmware,
            "first_seq": u.first_seq,
            "next_seq": u.next_seq,
            "operating_hours": round(u.operating_s / 3600, 1),
            "starts": u.starts,
            "log_id": None if u.log_id is None else u.log_id.hex(),
            "records": u.record_count,
            "first_archived_seq": low,
            "last_archived_seq": top,
            "not_archived": max(0, u.next_seq - u.first_seq - within),
            "last_contact": datetime.fromtimestamp(u.updated, UTC).isoformat(timespec="seconds"),
            "last_poll": polls.get(u.serial),
        }
        for u, (low, top, within) in zip(units, held, strict=True)
    ]
    if out.as_json:
        out.json(rows)
    elif rows:
        headers = ["serial", "epoch", "model", "firmware", "records", "archived", "device log",
                   "last contact", "last poll", "operating hours", "starts", "log id"]
        numeric = [False, True, False, False, True, True, True, False, False, True, True, False]
        shown = [
            [r["serial"], r["epoch"], r["model"], r["firmware"], f"{r['records']:,}",
             _seqs(r["first_archived_seq"], r["last_archived_seq"]), _seqs(r["first_seq"], r["next_seq"] - 1),
             _when(r["last_contact"]), _poll_cell(r["last_poll"]), r["operating_hours"], r["starts"],
             "-" if r["log_id"] is None else r["log_id"]]
            for r in rows
        ]
        out.text(table(headers, shown, numeric=numeric))
        for note in filter(None, map(_unit_differs, rows)):
            out.text(out.style.yellow(note))
    else:
        out.text("the archive holds no units yet: turbolog pull PORT")
    return 0


def _when(iso: str) -> str:
    return iso.replace("T", " ").replace("+00:00", " UTC")


def _poll_cell(last: dict[str, Any] | None) -> str:
    """``turbolog units``' last poll column: when the poll last reached the unit, or how it failed."""
    if last is None:
        return "-"
    from .archive import REACHED

    if last["outcome"] == REACHED:
        return f"reached {_when(last['last_attempt'])}"
    reached = f", reached {_when(last['last_reached'])}" if last["last_reached"] else ""
    return f"{last['outcome']} {_when(last['last_attempt'])}{reached}"


def _fmt_hours(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:,.0f} h"


def cmd_summary(args: argparse.Namespace, out: Output) -> int:
    from protocol.fault_codes import fault_label, lookup

    from .analytics import unit_summary
    from .failures import parse_policy

    policy = parse_policy(args.failures)
    with open_archive(args) as archive:
        summary = unit_summary(
            archive, args.serial, args.epoch, policy=policy, basis=args.hours, confidence=args.confidence
        )
    report = summary.to_json()
    if out.as_json:
        out.json(report)
        return 0
    low, high = report["mtbf_ci"]
    percent = f"{args.confidence:.0%}".replace("%", " %")
    out.text(
        out.style.bold(
            f"{printable(summary.serial)} ({printable(summary.model)}, {printable(summary.firmware)})"
        )
    )
    if summary.first_record is None:
        out.text("  records          none archived yet (turbolog pull PORT)")
    else:
        out.text(
            f"  records          {summary.records:,} ({report['first_record']} .. {report['last_record']})"
        )
    if len(report["epochs"]) > 1 or args.epoch is not None:
        shown = ", ".join(f"{e['epoch']} ({e['operating_hours']:,.1f} h)" for e in report["epochs"])
        out.text(f"  archived logs    {shown}; hours of each counted once")
    out.text(
        f"  operating hours  {report['operating_hours']:,.1f} (lifetime, from the {summary.counters_from})"
    )
    if summary.coverage is not None:
        out.text(
            f"  archive covers   {summary.exposure_hours:,.1f} h of them ({summary.coverage:.1%})"
        )
    out.text(f"  starts           {report['starts']:,}")
    out.text(f"  energy           {report['energy_kwh']:,.1f} kWh")
    severities = ", ".join(f"{k} {v}" for k, v in report["faults_by_severity"].items()) or "none"
    out.text(f"  faults           {severities}")
    by_code = sorted(summary.faults_by_code.items(), key=lambda item: (-item[1], item[0]))
    width = max((len(fault_label(code)) for code, _ in by_code), default=0)
    for code, count in by_code:
        definition = lookup(code)
        severity = definition.severity.name if definition else ""
        out.text(f"    {count:>6,}  {fault_label(code):<{width}}  {out.style.dim(severity)}".rstrip())
    out.text(f"  failures         {summary.failures} in {summary.exposure_hours:,.1f} archived h")
    out.text(f"  policy           {summary.policy.name}: {summary.policy.definition}")
    point = report["mtbf_hours"]
    basis = report["mtbf_from"]
    mtbf = f"{_fmt_hours(point)}, {percent} interval {_fmt_hours(low)} .. {_fmt_hours(high)}"
    if args.hours == "lifetime":
        out.text(
            "  " + out.style.yellow(
                f"MTBF over the lifetime counters, not the archive: {basis['hours']:,.1f} h, "
                f"{basis['failures']} trips"
            )
        )
        if point is None:
            mtbf = f"no trips yet; lower bound ({percent}) {_fmt_hours(report['mtbf_lower'])}"
    elif summary.exposure_hours <= 0:
        mtbf = "unknown: no operating hours between archived records yet"
    elif point is None:
        mtbf = f"no failures yet; lower bound ({percent}) {_fmt_hours(report['mtbf_lower'])}"
    out.text(f"  MTBF             {mtbf}")
    if summary.exposure_starts:
        per = 1000 * summary.failures / summary.exposure_starts
        out.text(f"  per 1,000 starts {per:,.2f} failures ({summary.exposure_starts:,} archived starts)")
    if report["availability"] is not None:
        planned = (
            f"; {100 * report['availability_with_planned']:.2f} % with "
            f"{report['planned_downtime_hours']:,.1f} h planned service"
        )
        out.text(f"  availability     {100 * report['availability']:.2f} % (forced outages){planned}")
    if summary.evicted:
        out.text(
            out.style.yellow(f"  {summary.evicted:,} records were evicted on the unit before they were read")
        )
    return 0


def cmd_faults(args: argparse.Namespace, out: Output) -> int:
    from protocol.fault_codes import lookup

    from .analytics import fault_list
    from .fault_text import freeze_frame_lines, runup_lines

    with open_archive(args) as archive:
        window = _window(archive, args)
        since = None if window.since is None else datetime.fromtimestamp(window.since, UTC)
        entries = [
            e.to_json()
            for e in fault_list(archive, args.serial, since, args.severity, args.code, args.epoch)
            if window.contains(e.fault.timestamp)
        ]
    if out.as_json:
        out.json(entries)
        return 0
    if not entries:
        out.text("no faults match")
        return 0
    headers = ["time", "code", "name", "severity", "subsystem", "state", "operating hours"]
    numeric = [False, True, False, False, False, False, True]
    rows = [
        [
            e["time"],
            e["code"],
            e["name"] or "(unknown code)",
            e["severity"],
            e["subsystem"],
            e["freeze"]["state"],
            f"{e['freeze']['operating_hours']:,.1f}",
        ]
        for e in entries
    ]
    if not args.detail:
        out.text(table(headers, rows, numeric=numeric))
        return 0
    lines = table(headers, rows, numeric=numeric).splitlines()
    out.text(lines[0])
    out.text(lines[1])
    for line, entry in zip(lines[2:], entries, strict=True):
        out.text(out.style.bold(line))
        definition = lookup(entry["code"])
        if definition is not None:
            out.text(f"  action: {definition.action}")
        out.text(f"  seq {entry['seq']:,}; event flags {', '.join(entry['flags']) or 'none'}; freeze-frame:")
        for detail in freeze_frame_lines(entry["freeze"]):
            out.text(detail)
        runup = [channel for channel in entry["runup"] if channel["runup_values"]]
        if runup:
            first = runup[0]
            out.text(f"  run-up: {len(first['runup_values'])} values {first['interval_s']} s apart, "
                     f"from {first['runup_start']} to the fault:")
            for detail in runup_lines(runup):
                out.text(detail)
    return 0


def cmd_codes(args: argparse.Namespace, out: Output) -> int:
    from protocol.fault_codes import FAULT_CODES, lookup

    from .fault_text import explain

    if args.code is not None:
        definition = lookup(args.code)
        if definition is None:
            raise UsageError(
                f"unknown fault code {args.code}: `turbolog codes` lists the {len(FAULT_CODES)} known codes"
            )
        if out.as_json:
            out.json(definition.to_json())
        else:
            for line in explain(definition):
                out.text(line)
        return 0
    if out.as_json:
        out.json([d.to_json() for d in FAULT_CODES.values()])
        return 0
    rows = [[d.code, d.severity.name, d.subsystem.name, d.name] for d in FAULT_CODES.values()]
    out.text(table(["code", "severity", "subsystem", "name"], rows, numeric=[True]))
    out.text(out.style.dim("turbolog codes CODE explains one: what it means and what to do"))
    return 0


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    from .export import EXPORTERS, export

    if EXPORTERS[args.fmt].write_directory is not None:
        if args.out is None:
            raise UsageError(f"--format {args.fmt} writes a directory: give it with --out DIR")
        if args.epoch is not None:
            raise UsageError(f"--format {args.fmt} exports every epoch (column epoch): leave out --epoch")
        if args.since is not None or args.until is not None:
            raise UsageError(
                "--since and --until select records for csv and jsonl; a Parquet dataset holds them all "
                "(filter on its time column where you read it)"
            )
        with open_archive(args) as archive:
            count = export(archive, args.serial, args.fmt, args.out, part=args.part)
        _wrote(out, f"{count:,} records written to the {args.fmt.capitalize()} dataset {args.out}",
               path=os.fspath(args.out), format=args.fmt, serial=args.serial, records=count)
        return 0
    if args.serial is None:
        raise UsageError(f"--format {args.fmt} exports one unit: name its serial number")
    if args.part is not None:
        raise UsageError(f"--part names a share of a Parquet dataset, not of a {args.fmt} file")
    target = args.out or STDOUT
    _json_needs_a_file(out, target)
    with open_archive(args) as archive:
        archive.unit(args.serial, args.epoch)
        window = _window(archive, args)
        with output_file(target, binary=EXPORTERS[args.fmt].binary, stdout=out.out) as stream:
            count = export(archive, args.serial, args.fmt, stream, args.epoch, window)
    if target != STDOUT:
        _wrote(out, f"{count:,} records written to {describe(target)}" + _within(window),
               path=target, format=args.fmt, serial=args.serial, records=count, **_bounds(window))
    return 0


def _json_needs_a_file(out: Output, target: str) -> None:
    """``--json`` reports what a command wrote to a file; standard output is taken by the data."""
    if out.as_json and target == STDOUT:
        raise UsageError("--json reports what was written: give the file with --out FILE (standard output "
                         "carries the data itself)")


def _within(window: Window) -> str:
    return f" ({window.describe()})" if window.bounded else ""


def _bounds(window: Window) -> dict[str, str | None]:
    return {
        name: None if t is None else datetime.fromtimestamp(t, UTC).isoformat()
        for name, t in (("since", window.since), ("until", window.until))
    }


def _wrote(out: Output, line: str, **report: Any) -> None:
    """What an export or plot wrote: *report* as JSON on standard output with ``--json``,
    else *line* on standard error (standard output may be the data)."""
    if out.as_json:
        out.json(report)
    else:
        print(line, file=out.err)


def cmd_plot(args: argparse.Namespace, out: Output) -> int:
    from .plot import format_for, unit_picture

    _json_needs_a_file(out, args.out)
    fmt = format_for(args.out)
    with open_archive(args) as archive:
        window = _window(archive, args)
        picture = unit_picture(archive, args.serial, window, fmt, args.epoch)
    with output_file(args.out, binary=True, stdout=out.out) as stream:
        stream.write(picture.data)
    if args.out != STDOUT:
        _wrote(out, f"plot written to {describe(args.out)}" + _within(window),
               path=args.out, format=fmt, serial=args.serial, samples=picture.samples,
               faults=picture.faults, **_bounds(window))
    return 0


def cmd_live(args: argparse.Namespace, out: Output) -> int:
    """Readings until --count or q or Ctrl-C; a lost line is reconnected (said on the screen, or on
    stderr off a terminal), not the end; on a terminal, changed values are highlighted and space
    pauses.  Only a first connection that fails ends the command with its error."""
    from .errors import LinkError
    from .fields import iso_time, snapshot_fields
    from .live import KEYS_HELP, PAUSE_KEY, QUIT_KEYS, Keys, live_view

    if args.interval <= 0:
        raise UsageError(f"--interval must be positive, not {args.interval}")
    refresh = out.out.isatty() and not out.as_json
    highlight = refresh and out.style.enabled
    screen: dict[str, Any] = {"unit": None, "values": None, "previous": None}

    def mark(text: str) -> str:
        return f"\x1b[7m{text}\x1b[27m"

    def draw(status: str = "") -> None:
        if screen["values"] is None or screen["unit"] is None:
            if status:
                out.text(status)
            return
        if refresh:
            with out.writing():
                out.out.write("\x1b[H\x1b[2J")
        serial, model = screen["unit"]
        previous = screen["previous"] if highlight else None
        out.text(live_view(serial, model, screen["values"], previous, mark=mark, status=status))
        out.flush()

    def wait(keys: Keys, seconds: float, status: str = "") -> bool:
        """Sleep *seconds*, obeying the keys; True when the user quits."""
        deadline = time.monotonic() + seconds
        paused = False
        while True:
            key = keys.wait(3600.0 if paused else deadline - time.monotonic())
            if key in QUIT_KEYS:
                return True
            if key == PAUSE_KEY:
                paused = not paused
                if not paused:
                    return False
                draw(out.style.yellow(f"paused: {KEYS_HELP}"))
            elif key is None and not paused:
                return False

    taken, lost, connected_once = 0, 0, False
    with Keys(sys.stdin if refresh else None) as keys:
        help_line = out.style.dim(KEYS_HELP) if keys.enabled else ""
        while args.count is None or taken < args.count:
            try:
                with connected(args) as client:
                    info = client.identify()
                    connected_once = True
                    screen["unit"] = (info.serial, info.model)
                    attempts = f"{lost} attempt{'s' if lost > 1 else ''}"
                    status = help_line
                    if lost and refresh:
                        status = out.style.green(f"reconnected after {attempts}")
                    if lost and not refresh:
                        _say(f"reconnected to {args.port} after {attempts}")
                    lost = 0
                    while args.count is None or taken < args.count:
                        reading = client.live()
                        taken += 1
                        values: dict[str, Any] = {
                            **snapshot_fields(reading.snapshot), "time": iso_time(reading.timestamp)
                        }
                        screen["previous"], screen["values"] = screen["values"], values
                        if out.as_json:
                            out.json(values)
                            out.flush()
                        else:
                            draw(status)
                        status = help_line
                        if (args.count is None or taken < args.count) and wait(keys, args.interval):
                            return 0
            except LinkError as exc:
                if not connected_once:
                    raise
                lost += 1
                message = f"connection lost ({exc}); reconnecting, attempt {lost}"
                if refresh:
                    draw(out.style.yellow(message))
                else:
                    _say(message)
                if wait(keys, args.interval):
                    return 0
    return 0


def cmd_fleet(args: argparse.Namespace, out: Output) -> int:
    from .failures import parse_policy
    from .fleet_growth import demonstration, failure_instants, fleet_growth, growth_text
    from .fleet_report import breakdown_text, exposure_at, fleet_png, fleet_table
    from .plot import format_for
    from .selection import check, from_args

    png: bytes | None = None
    left_out: tuple[str, ...] = ()
    policy = parse_policy(args.failures)
    selection = from_args(args)
    figures = {"policy": policy, "basis": args.hours, "confidence": args.confidence, "selection": selection}
    fmt = format_for(args.plot) if args.plot else None
    with open_archive(args) as archive:
        check(archive, selection)
        report = fleet_table(archive, **figures)
        if fmt is not None:
            png, left_out = fleet_png(archive, **figures, fmt=fmt, report=report)
        timeline = exposure_at(archive, failure_instants(report.units), selection) if args.growth else None
    growth = fleet_growth(report.units, args.confidence, timeline) if args.growth else None
    proof = None if args.demonstrate is None else demonstration(report.total, args.demonstrate)
    if png is not None:
        with output_file(args.plot, binary=True, stdout=out.out) as stream:
            stream.write(png)
    if args.plot != STDOUT:
        if out.as_json:
            document = report.to_json()
            if growth is not None:
                document["growth"] = [result.to_json() for result in growth]
            if proof is not None:
                document["demonstration"] = {"units": selection.describe(), **proof.to_json()}
            out.json(document)
        else:
            out.text(report.to_text())
            if args.breakdown:
                out.text("\n" + breakdown_text(report))
            if growth is not None:
                out.text("\n" + growth_text(growth))
            if proof is not None:
                out.text("\n" + proof.to_text(selection.describe()))
    if args.plot and args.plot != STDOUT:
        print(f"plot written to {describe(args.plot)}", file=out.err)
    if left_out:
        print(
            f"turbolog: the plot leaves out {len(left_out):,} units with no records archived yet: "
            f"{printable(', '.join(left_out), 200)}",
            file=out.err,
        )
    return 0


def cmd_report(args: argparse.Namespace, out: Output) -> int:
    from .failures import parse_policy
    from .selection import ALL, check, from_args

    _json_needs_a_file(out, args.out)
    policy = parse_policy(args.failures)
    selection = from_args(args)
    with open_archive(args) as archive:
        if args.serial is None:
            check(archive, selection)
            page, what = _fleet_page(archive, args, policy, selection), "fleet"
        elif selection != ALL or args.demonstrate is not None:
            raise UsageError("the selection options and --demonstrate are for the fleet report (no SERIAL)")
        else:
            page, what = _unit_page(archive, args, policy), args.serial
    with output_file(args.out, binary=False, stdout=out.out) as stream:
        stream.write(page)
    if args.out != STDOUT:
        _wrote(out, f"report written to {describe(args.out)}", path=args.out, report=what,
               bytes=len(page.encode()), confidence=args.confidence, failures_policy=policy.to_json())
    return 0


def _fleet_page(
    archive: Archive, args: argparse.Namespace, policy: FailurePolicy, selection: Selection
) -> str:
    from .fleet_growth import demonstration, failure_instants, fleet_growth
    from .fleet_plots import age_band_plot, availability_plot, crow_amsaa_plot, mtbf_plot, pareto_plot
    from .fleet_report import exposure_at, fleet_table
    from .html_report import fleet_html

    report = fleet_table(
        archive, policy=policy, basis=args.hours, confidence=args.confidence, selection=selection
    )
    timeline = exposure_at(archive, failure_instants(report.units), selection)
    growth = fleet_growth(report.units, args.confidence, timeline)
    plots = [crow_amsaa_plot(report, growth), pareto_plot(report), mtbf_plot(report, args.demonstrate),
             age_band_plot(growth[-1]), availability_plot(report)]
    proof = None if args.demonstrate is None else demonstration(report.total, args.demonstrate)
    return fleet_html(report, growth, plots, proof, str(archive.path))


def _unit_page(archive: Archive, args: argparse.Namespace, policy: FailurePolicy) -> str:
    from .analytics import unit_summary
    from .html_report import unit_html
    from .plot import unit_picture

    summary = unit_summary(archive, args.serial, policy=policy, basis=args.hours, confidence=args.confidence)
    try:
        svg = unit_picture(archive, args.serial, fmt="svg").data.decode()
    except UsageError:
        svg = None  # no sample and no fault archived: the report says what there is
    return unit_html(summary, None if svg is None else svg[svg.index("<svg"):], str(archive.path))


def cmd_clear_log(args: argparse.Namespace, out: Output) -> int:
    from .auth import load_key, parse_level
    from .privileged import authenticate_and_clear_log, ensure_archived, start_epoch_after_clear

    key, level = load_key(args.key_file, os.environ, _warn), parse_level(args.level)
    with connected(args) as client:
        info = client.identify()
        if not args.force:
            with open_archive(args) as archive:
                ensure_archived(archive, info.serial, info, client.read_record)
        first = authenticate_and_clear_log(client, key, level)
        try:
            after: IdentifyResponse | None = client.identify()
        except HostError as exc:
            after = None
            print(f"turbolog: the log was cleared, but the unit did not identify itself afterwards ({exc}): "
                  "the next pull needs --new-log", file=out.err)
    epoch = None
    if after is not None:
        with open_archive(args) as archive:
            epoch = start_epoch_after_clear(archive, info, after, first)
    report = {
        "serial": info.serial,
        "cleared_first_seq": info.first_seq,
        "new_first_seq": first,
        "cleared_after_check": max(0, first - info.next_seq),
        "epoch": epoch,
    }
    if out.as_json:
        out.json(report)
    else:
        out.text(
            f"{printable(info.serial)}: log cleared; records {info.first_seq:,} .. {first - 1:,} are gone "
            f"from the unit, the next record is {first:,}"
        )
        if first > info.next_seq:
            out.text(
                out.style.yellow(f"  {first - info.next_seq} records logged after the check were cleared too")
            )
        if epoch is not None:
            out.text(f"  the archive keeps its new log as epoch {epoch} of {printable(info.serial)}")
    return 0


def cmd_set_clock(args: argparse.Namespace, out: Output) -> int:
    from .auth import load_key, parse_level
    from .privileged import authenticate_and_set_clock

    key, level = load_key(args.key_file, os.environ, _warn), parse_level(args.level)
    wanted = int((args.time or datetime.now(UTC)).timestamp())
    with connected(args) as client:
        before = client.clock_get()
        if abs(wanted - before) > CONFIRM_CLOCK_CHANGE_S and not args.yes:
            _confirm_clock_change(before, wanted)
        after = authenticate_and_set_clock(client, key, level, wanted)
    report = {
        "before": datetime.fromtimestamp(before, UTC).isoformat(),
        "after": datetime.fromtimestamp(after, UTC).isoformat(),
        "requested": wanted,
    }
    if out.as_json:
        out.json(report)
    else:
        out.text(f"device clock: {report['before']} -> {report['after']}")
    return 0


CONFIRM_CLOCK_CHANGE_S = 86_400
"""A clock change larger than this (a day) is asked about first: record times after it jump."""


def _confirm_clock_change(before: int, wanted: int) -> None:
    """Ask on the terminal before moving the unit's clock by more than a day; UsageError (exit 2)
    unless the answer is yes, or when there is no terminal to ask on (then --yes is needed)."""
    change = wanted - before
    days = abs(change) / 86_400
    way = "forward" if change > 0 else "back"
    stamp = datetime.fromtimestamp(before, UTC).isoformat()
    target = datetime.fromtimestamp(wanted, UTC).isoformat()
    what = f"this moves the unit's clock {days:,.1f} days {way} ({stamp} -> {target})"
    if not (sys.stdin is not None and sys.stdin.isatty()):
        raise UsageError(f"{what}: confirm with --yes (there is no terminal to ask on)")
    print(f"turbolog: warning: {what}; its records will be stamped by the new time.", file=sys.stderr)
    print("Set the clock? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError("set-clock not confirmed: the unit's clock is unchanged")


def cmd_ingest(args: argparse.Namespace, out: Output) -> int:
    from .ingest import ImageResult, ingest_dir

    bar = ProgressBar(out.err)

    def progress(done: int, total: int, result: ImageResult) -> None:
        bar.show(done, total, printable(result.serial or result.image, 24))

    with open_archive(args) as archive:
        try:
            result = ingest_dir(archive, args.directory, progress, new_log=args.new_log)
        finally:
            bar.close()
    if not result.images:
        raise UsageError(f"no flash images (*.img) in {args.directory}")
    if out.as_json:
        out.json(result.to_json())
    else:
        summary = result.to_json()
        out.text(
            f"{summary['ingested']:,} of {summary['images']:,} images ingested: "
            f"{summary['added']:,} records added of {summary['records']:,} read"
        )
        for image in result.failed:
            out.text(out.style.red(f"  {printable(image.image)}: {printable(image.error, 200)}"))
    return DeviceError.exit_code if result.failed else 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Output], int]] = {
    "ports": cmd_ports,
    "info": cmd_info,
    "pull": cmd_pull,
    "units": cmd_units,
    "summary": cmd_summary,
    "faults": cmd_faults,
    "codes": cmd_codes,
    "export": cmd_export,
    "plot": cmd_plot,
    "live": cmd_live,
    "poll": cmd_poll,
    "fleet": cmd_fleet,
    "report": cmd_report,
    "ingest": cmd_ingest,
    "clear-log": cmd_clear_log,
    "set-clock": cmd_set_clock,
}


def _withhold_keys(message: str) -> str:
    from .auth import withhold_keys

    return withhold_keys(message)


def _warn(message: str) -> None:
    print(f"turbolog: warning: {printable(_withhold_keys(message), limit=500)}", file=sys.stderr)


def _say(message: object) -> None:
    print(f"turbolog: {_withhold_keys(printable(message, limit=500))}", file=sys.stderr)


def _guard_closed_stdout() -> None:
    """After ``>&-`` Python has no ``sys.stdout``, and the next file opened (the archive) would
    take descriptor 1, where ``--out /dev/stdout`` writes: hold it on /dev/null opened for
    reading only, so that every write to it fails as on a closed descriptor, and reported."""
    if sys.stdout is not None:
        return
    try:
        os.fstat(1)
    except OSError:
        devnull = os.open(os.devnull, os.O_RDONLY)
        if devnull != 1:
            os.dup2(devnull, 1)
            os.close(devnull)
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - standard output, for good


def _settle_stdout() -> None:
    """Flush standard output; if that fails (a closed pipe, a full disk), point its descriptor
    at /dev/null, so that what is still buffered drains there when Python exits instead of
    failing again with a traceback (Python's own advice for SIGPIPE)."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        with suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)


STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
"""Signals that end a command as Ctrl-C does (those this platform has): a closed terminal, a
service manager stopping it, a laptop lid."""


def _stop(signum: int, frame: object) -> None:
    """Raise Interrupted once; later stop signals are ignored while it unwinds (commits the pull)."""
    for name in STOP_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Interrupted(signum)


@contextmanager
def stop_signals_interrupt() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (in the main thread only:
    elsewhere signals cannot be handled); the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [getattr(signal, name) for name in STOP_SIGNALS if hasattr(signal, name)]
    previous = {number: signal.signal(number, _stop) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _interrupted(stop: Interrupted) -> str:
    """The one line for a command stopped by a signal."""
    what = "interrupted" if stop.signum == signal.SIGINT else f"stopped by {stop.name}"
    if stop.kept is None:
        return what
    return f"{what}; {stop.kept:,} records of this pull kept in the archive, run again to resume"


def main(argv: Sequence[str] | None = None) -> int:
    _guard_closed_stdout()
    try:
        args = build_parser().parse_args(argv)
        out = Output(getattr(args, "json", False))
        with stop_signals_interrupt():
            status = COMMANDS[args.command](args, out)
            out.flush()
        return status
    except BrokenPipeError:
        return EXIT_PIPE_CLOSED
    except HostError as exc:
        if isinstance(exc.__cause__, BrokenPipeError):
            return EXIT_PIPE_CLOSED
        _say(exc)
        return exc.exit_code
    except KeyboardInterrupt as interrupt:
        stop = Interrupted.of(interrupt)
        with suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"turbolog: {_interrupted(stop)}", file=sys.stderr)
        return stop.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        _say(f"{where}{exc.strerror or exc}")
        return OutputError.exit_code
    finally:
        _settle_stdout()


if __name__ == "__main__":
    sys.exit(main())
