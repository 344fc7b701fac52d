"""Run the benchmarks, print every figure beside its limit, save bench/results.json.

Usage: python -m bench.run [--only NAME ...]
Each suite is a module ``bench/NAME.py`` whose ``run()`` returns its figures.
A missed target is printed as MISSED with its figure; the exit status is 0
either way (a benchmark reports, it does not gate), 1 only when a suite
itself failed (its traceback is printed, the other suites still run).  Only a full run replaces
bench/results.json.  The whole run takes about 25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import Figure, machine, save, table  # noqa: E402

SUITES = ["startup", "decode", "unpaced", "memory", "emulator", "latency", "link", "noisy", "fleet",
          "serve_fleet", "poll"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", nargs="*", choices=SUITES, help="run only these suites")
    args = parser.parse_args()
    figures: list[Figure] = []
    failed: list[str] = []
    for name in args.only or SUITES:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        try:
            figures += importlib.import_module(f"bench.{name}").run()
        except Exception:  # one broken suite must not cost the figures of the others
            traceback.print_exc()
            failed.append(name)
    info = machine()
    print(f"\nmachine: {info['cpus']} cores, Python {info['python']}, {info['system']}, {info['date']}\n")
    print(table(figures))
    if failed:
        print(f"\nsuites that failed (see above): {', '.join(failed)}; bench/results.json not written",
              file=sys.stderr)
        return 1
    if args.only:
        print("\n(a partial run: bench/results.json keeps the last full run)", file=sys.stderr)
    else:
        save(figures, ROOT / "bench" / "results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
