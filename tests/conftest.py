"""Shared test helpers: external tools that CI must have.

Locally, a test that needs socat or ser2net is skipped when the tool is
missing; under CI (``CI=true``) it fails instead, so a green CI always means
the whole chain ran.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_tool(name: str) -> str:
    """Path of an external program, or skip (fail under CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install {name})"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message + "; CI must install it")
        pytest.skip(message)
    return path


@pytest.fixture(autouse=True, scope="session")
def _no_users_archive(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads or writes the user's own archive (``$XDG_DATA_HOME/turbolog``): commands run
    without ``--db``, in this process or in a child, find a data directory of the test run's own."""
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("xdg-data"))
