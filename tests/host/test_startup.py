"""`turbolog --help` and `--version` start without the heavy modules.

Their speed is a `make bench` figure (bench/startup.py); what is tested here is the cause a
user would feel as a slow `--help`: a module-level import of the protocol's formats (construct),
SQLite, the driver, matplotlib or pyarrow by the command-line module.
"""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("protocol", "construct", "sqlite3", "host.archive", "host.driver", "host.export", "matplotlib",
         "pyarrow", "scipy")


def imported_after(code: str) -> set[str]:
    """The heavy modules loaded by a fresh interpreter after running *code*."""
    probe = f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"
    shown = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False).stdout
    return {name for name in shown.splitlines() if name.split(".")[0] in HEAVY or name in HEAVY}


def test_help_imports_no_heavy_module() -> None:
    loaded = imported_after(
        "import contextlib, io\nfrom host.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--help'])"
    )
    assert loaded == set()


def test_version_imports_no_heavy_module() -> None:
    loaded = imported_after(
        "import contextlib, io\nfrom host.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['--version'])"
    )
    assert loaded == set()


def test_a_command_still_finds_what_it_imports_late() -> None:
    loaded = imported_after(
        "import contextlib, io\nfrom host.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['codes', '5005'])"
    )
    assert "protocol.fault_codes" in loaded
