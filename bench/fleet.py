"""The press-release fleet: 4,000 units and 15 million operating hours, simulated, ingested, queried.

Plans the fleet of the manufacturer's May 2007 press release on its
timeline (4,000 units shipped from December 1998, C30:0.6,C60:0.4, each
documenting its share of its life: about 15,000,000 operating hours, 3,750
per unit, an hourly sample plus every fault and event), simulates it into flash
images on every core (``firmware_sim.fleet``), ingests the images into a
fresh archive (``host.ingest``), and times the fleet table
(``host.fleet_report.fleet_table``, median of 3), the same with every
breakdown, trend and growth figure as ``turbolog fleet --breakdown --growth
--json`` computes them (median of 3), and ``turbolog report`` writing the
fleet's HTML report in a process of its own, with that process's peak RSS.  Everything is written
under a temporary directory, removed afterwards (about 1.3 GB of images and
the archive).

``TURBOLOG_FLEET_UNITS`` scales the fleet down (the same timeline, hours
scaled with the units) for a quick
run; the time and size targets scale with it, the query target does not.
Beside each time is the CPU it took, since the machine is shared.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from firmware_sim.fleet import MILESTONES, UnitPlan, documented_hours, parse_mix, plan_fleet, simulate_fleet
from host.archive import Archive
from host.fleet_growth import fleet_growth
from host.fleet_report import breakdown_text, fleet_table
from host.ingest import ingest_dir

from .figures import Figure, median_of, timed

UNITS = 4000
MIX = "C30:0.6,C60:0.4"
SEED = 2007

SIMULATE_BUDGET_S = 420.0
INGEST_BUDGET_S = 180.0
TOTAL_BUDGET_S = 600.0
ARCHIVE_BUDGET_BYTES = 2e9
QUERY_BUDGET_S = 5.0
ANALYTICS_BUDGET_S = 5.0
"""The fleet table with all breakdowns, trend and growth (issue 16)."""
REPORT_BUDGET_S = 30.0
REPORT_RSS_BUDGET_MB = 500.0
REPORT_SCRIPT = (
    "import resource, sys; from host.cli import main; code = main(sys.argv[1:]); "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(code)"
)
"""``turbolog`` with its peak RSS (KiB) as the last line on standard error."""


def _all_figures(archive: Archive) -> None:
    """What ``turbolog fleet --breakdown --growth --json`` computes."""
    report = fleet_table(archive)
    report.to_json()
    breakdown_text(report)
    for result in fleet_growth(report.units, report.confidence):
        result.to_json()


def _report(archive_path: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of ``turbolog report --out OUT`` in a process of its own."""
    wall = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", REPORT_SCRIPT, "report", "--out", str(out), "--db", str(archive_path)],
        capture_output=True, text=True, check=True,
    )
    seconds = time.perf_counter() - wall
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def _cpu(children: bool) -> float:
    t = os.times()
    return t.children_user + t.children_system if children else t.user + t.system


def run() -> list[Figure]:
    units = int(os.environ.get("TURBOLOG_FLEET_UNITS", UNITS))
    scale = units / UNITS
    scaled = f"target scaled x{scale:g} from {UNITS:,} units" if scale != 1 else ""
    plans = plan_fleet(units, parse_mix(MIX), None, SEED)
    with tempfile.TemporaryDirectory(prefix="turbolog-fleet-") as tmp:
        images, archive_path = Path(tmp) / "images", Path(tmp) / "archive.sqlite"
        cpu, wall = _cpu(children=True), time.perf_counter()
        results = simulate_fleet(plans, images)
        simulate_s, simulate_cpu = time.perf_counter() - wall, _cpu(children=True) - cpu
        cpu, wall = _cpu(children=False), time.perf_counter()
        with Archive.open(archive_path) as archive:
            ingested = ingest_dir(archive, images)
        ingest_s, ingest_cpu = time.perf_counter() - wall, _cpu(children=False) - cpu
        size = sum(path.stat().st_size for path in Path(tmp).glob("archive.sqlite*"))
        with Archive.open(archive_path) as archive:
            query_s = median_of(3, lambda: timed(lambda: fleet_table(archive)))
            report = fleet_table(archive)
            analytics_s = median_of(3, lambda: timed(lambda: _all_figures(archive)))
        report_s, report_rss = _report(archive_path, Path(tmp) / "fleet.html")
    hours = sum(result.operating_s for result in results) / 3600
    records = sum(result.records for result in results)
    if ingested.failed or ingested.records != records:
        failed = [image.error for image in ingested.failed]
        raise AssertionError(f"ingested {ingested.records:,} of {records:,} records; failed: {failed}")
    cores = f"CPU {simulate_cpu:.0f} s on {os.cpu_count()} cores"
    return [
        Figure(f"fleet: simulate {units:,} units", simulate_s, "s", SIMULATE_BUDGET_S * scale, False,
               _note(cores, f"{records / simulate_s:,.0f} rec/s", scaled)),
        Figure("fleet: ingest", ingest_s, "s", INGEST_BUDGET_S * scale, False,
               _note(f"CPU {ingest_cpu:.0f} s", f"{records / ingest_s:,.0f} rec/s", scaled)),
        Figure("fleet: simulate + ingest", simulate_s + ingest_s, "s", TOTAL_BUDGET_S * scale, False, scaled),
        Figure("fleet: archive size", size / 1e9, "GB", ARCHIVE_BUDGET_BYTES / 1e9 * scale, False,
               _note(f"{size / records:.0f} bytes per record", scaled)),
        Figure("fleet: fleet table query", query_s, "s", QUERY_BUDGET_S, False, f"{units:,} units"),
        Figure("fleet: table, breakdowns, trend and growth", analytics_s, "s", ANALYTICS_BUDGET_S, False,
               f"{units:,} units; turbolog fleet --breakdown --growth --json"),
        Figure("fleet: HTML report", report_s, "s", REPORT_BUDGET_S, False,
               f"{units:,} units; turbolog report, a process of its own"),
        Figure("fleet: HTML report peak RSS", report_rss, "MB", REPORT_RSS_BUDGET_MB, False,
               "ru_maxrss of that process"),
        Figure("fleet: documented operating hours", hours, "h", None,
               reference=f"fleet table: {report.total.operating_hours:,.0f} h, {records:,} records; "
               f"planned by milestone: {_milestones(plans, scale)}"),
    ]


def _milestones(plans: Sequence[UnitPlan], scale: float) -> str:
    """The plan's documented hours at each press-release milestone beside its scaled target."""
    return ", ".join(
        f"{datetime.fromtimestamp(at, UTC):%b %Y} {documented_hours(plans, at) / 1e6:.2f} M "
        f"(target {target * scale / 1e6:.2f} M)"
        for at, target in MILESTONES
    )


def _note(*parts: str) -> str:
    return "; ".join(part for part in parts if part)
