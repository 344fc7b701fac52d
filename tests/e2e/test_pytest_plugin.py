"""The turbosim pytest plugin as a user meets it: ready-made fixtures, the factory, clean teardown,
clear failures, and the documented example run in a project of its own."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.impairment import LineFaults
from firmware_sim.pytest_plugin import (
    RunningUnit,
    Turbosim,
    TurbosimCrashed,
    TurbosimNotReady,
    impair_spec,
)
from host.cli import main as turbolog_main
from tests.e2e.chain import flash_log, pull_json, pulled_equals_device

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "README.md"


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("turbosim_pty", [{"model": "C30", "seed": 7}], indirect=True)
def test_ready_made_fixtures_serve_a_pty_and_tcp(
    turbosim_pty: str, turbosim_tcp: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: the pty unit takes its options (C30, seed 7); the TCP one gets an ephemeral port."""
    assert Path(turbosim_pty).is_symlink()
    assert re.fullmatch(r"socket://127\.0\.0\.1:\d+", turbosim_tcp) and not turbosim_tcp.endswith(":0")
    pty = pull_json(turbosim_pty, tmp_path / "pty.sqlite", capsys)
    tcp = pull_json(turbosim_tcp, tmp_path / "tcp.sqlite", capsys)
    assert (pty["serial"], tcp["serial"]) == ("C30-000007", "C60-000001")


def test_teardown_leaves_no_process_fd_or_symlink(tmp_path: Path) -> None:
    """Figure held: after close, 0 processes, 0 pty symlinks and 0 file descriptors left of 3 units."""
    before = open_fds()
    with Turbosim(tmp_path) as launcher:
        units = [launcher.start(link=link) for link in ("pty", "tcp", "rfc2217")]
        symlink = Path(units[0].url)
        assert symlink.is_symlink() and all(is_running(unit.pid) for unit in units)
    assert not any(is_running(unit.pid) for unit in units)
    assert [unit.process.returncode for unit in units] == [0, 0, 0]
    assert not symlink.exists() and not symlink.is_symlink()
    assert open_fds() == before


def test_a_unit_that_dies_during_the_test_fails_the_teardown_and_leaves_nothing(tmp_path: Path) -> None:
    """Figure held: a SIGKILLed unit is reported (TurbosimCrashed, status -9) and its symlink removed."""
    launcher = Turbosim(tmp_path)
    try:
        unit = launcher.start()
        os.killpg(unit.pid, signal.SIGKILL)
        unit.process.wait()
        assert Path(unit.url).is_symlink()  # SIGKILL gave turbosim no chance to remove it
        with pytest.raises(TurbosimCrashed, match="exited -9"):
            launcher.close()
        assert not Path(unit.url).is_symlink()
    finally:
        for started in launcher.units:
            started.stop()


def test_a_unit_that_cannot_start_raises_with_its_stderr(tmp_path: Path) -> None:
    """Figure held: turbosim's own one-line error reaches the test, with its exit status."""
    before = open_fds()
    with Turbosim(tmp_path) as launcher, pytest.raises(TurbosimNotReady) as failure:
        launcher.start(flash=tmp_path / "no-such-dir" / "unit.img")
    assert "turbosim exited (status 3)" in str(failure.value)
    assert "turbosim: No such file or directory" in str(failure.value)
    assert open_fds() == before


def test_a_unit_not_ready_in_time_is_killed_and_reported(tmp_path: Path) -> None:
    """Figure held: 5 years of history (about 2 s) against a 0.3 s ready timeout: TurbosimNotReady."""
    with Turbosim(tmp_path) as launcher:
        with pytest.raises(TurbosimNotReady, match="printed no ready line within 0.3 s"):
            launcher.start(history="5y", ready_timeout=0.3)
        (unit,) = launcher.units
        assert unit.stopped and not is_running(unit.pid)


@pytest.mark.parametrize(
    ("faults", "spec"),
    [
        (LineFaults(), ""),
        (LineFaults(bit_error_rate=1e-5, disconnect_after=5000), "ber=1e-05,cut=5000"),
        (LineFaults(drop_rate=0.01, insert_rate=0.02, burst_rate=1e-6, burst_length=32, latency_s=0.02),
         "drop=0.01,insert=0.02,burst=1e-06,burst_len=32,latency=0.02"),
    ],
)
def test_impairments_become_turbosims_impair_text(faults: LineFaults, spec: str) -> None:
    """Figure held: the text round-trips through LineFaults.parse."""
    assert impair_spec(faults) == spec
    assert LineFaults.parse(spec) == faults


def test_an_impaired_unit_still_gives_the_whole_log(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: BER 1e-5, drop and insert 1e-5 per byte on both directions of the TCP line:
    archive == flash log, with the damage visible as retries or rejected records."""
    image, db = tmp_path / "unit.img", tmp_path / "archive.sqlite"
    faults = LineFaults(bit_error_rate=1e-5, drop_rate=1e-5, insert_rate=1e-5)
    unit = turbosim_unit(link="tcp", flash=image, history="300h", no_pace=True, impair=faults, impair_seed=5)
    result = pull_json(unit.url, db, capsys)
    assert isinstance(result["retries"], int) and isinstance(result["rejected"], int)
    assert result["retries"] + result["rejected"] > 0
    assert unit.stop() == 0
    pulled_equals_device(db, result, flash_log(image))


def test_an_in_process_unit_with_a_cut_line_gives_the_whole_log_after_one_reconnect(
    turbosim_unit: Callable[..., RunningUnit], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: link="inproc" serves turbosim://NAME in the test's own process (no process of
    its own); its line cut once after 20 kB reaches the host as a LinkError, the pull reconnects
    once, and archive == flash log."""
    image, db = tmp_path / "unit.img", tmp_path / "archive.sqlite"
    unit = turbosim_unit(link="inproc", flash=image, history="300h", no_pace=True, impair="cut=20000")
    assert unit.url.startswith("turbosim://") and unit.process is None
    result = pull_json(unit.url, db, capsys)
    assert (result["reconnects"], result["rejected"]) == (1, 0)
    assert unit.stop() == 0
    pulled_equals_device(db, result, flash_log(image))


def test_an_in_process_unit_is_withdrawn_and_closed_at_teardown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Figure held: after close, the URL opens no more (exit 6, "does not exist") and the flash
    image holds the unit's log; no file descriptor is left."""
    before = open_fds()
    with Turbosim(tmp_path) as launcher:
        unit = launcher.start(link="inproc", flash=tmp_path / "unit.img", history="50h", no_pace=True)
        with pytest.raises(ValueError, match="no process of its own"):
            unit.pid  # noqa: B018
    assert unit.stopped and open_fds() == before
    assert turbolog_main(["info", unit.url]) == 6
    assert f"port {unit.url} does not exist" in capsys.readouterr().err
    assert len(flash_log(tmp_path / "unit.img")) > 150


def test_the_documented_example_passes_in_a_project_of_its_own(tmp_path: Path) -> None:
    """Figure held: the README's fixture example, run by pytest in an empty directory, passes
    with the plugin found through its entry point alone."""
    code = "\n".join(re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL))
    (tmp_path / "test_example.py").write_text(code)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
