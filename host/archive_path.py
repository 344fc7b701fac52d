"""Where the archive lives when ``--db`` does not say: the XDG data directory.

Kept apart from :mod:`host.archive` so that ``turbolog --help``, which names
this path, needs neither SQLite nor the protocol's formats.  Reads the
environment only; creates nothing.
"""

from __future__ import annotations

import os
from pathlib import Path


def default_archive_path() -> Path:
    """``$XDG_DATA_HOME/turbolog/archive.sqlite``, else ``~/.local/share/turbolog/archive.sqlite``."""
    data_home = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "turbolog" / "archive.sqlite"
