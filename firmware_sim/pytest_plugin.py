"""pytest fixtures that serve an emulated controller: ``turbosim serve`` in a subprocess, or in-process.

Installed with the package as the pytest plugin ``turbosim`` (entry point
``pytest11``), so any project that installs turbolog gets these fixtures::

    turbosim_unit(**options) -> RunningUnit   factory: one unit per call, any link, any options
    turbosim_pty                              path of a pty served by a unit
    turbosim_tcp                              socket:// URL of a unit on loopback TCP

``turbosim_pty`` and ``turbosim_tcp`` take the factory's options through
indirect parametrisation (``@pytest.mark.parametrize("turbosim_pty",
[{"history": "200h"}], indirect=True)``).  Options: see :meth:`Turbosim.start`.

A unit is ready when turbosim prints its ``ready <path-or-url>`` line, and only
then; a unit that exits first, or says nothing within ``ready_timeout``,
raises :class:`TurbosimNotReady` with turbosim's stderr.  TCP and RFC 2217
listeners bind an ephemeral loopback port, read back from the ready line.
Teardown sends SIGTERM to the unit's process group (SIGKILL if it lingers),
closes every pipe and file the fixture opened and removes a pty symlink the
unit left behind; a unit that died on its own with a non-zero status fails
the teardown with its stderr, since the test talked to a dead device.

``link="inproc"`` builds the unit in the test's own process from the same
options (:func:`firmware_sim.cli.inproc_line`) and publishes its line as
``turbosim://NAME`` (:mod:`firmware_sim.inproc`): anything that opens ports
with pyserial's ``serial_for_url`` opens it, with no process, pty or socket.
Its time is the wall clock and it answers while the test reads; stopping it
closes its flash image.

This module starts processes and reads their first line; it knows nothing of
the wire protocol and never imports the host.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import Literal

import pytest

from . import inproc
from .errors import ConfigError
from .impairment import LineFaults
from .unit import Unit

LinkKind = Literal["pty", "tcp", "rfc2217", "port", "inproc"]

TURBOSIM = (sys.executable, "-m", "firmware_sim.cli")
"""The command: turbosim run by the interpreter running the tests, so it is the installed version."""
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0

_IMPAIR_KEYS = {
    "bit_error_rate": "ber", "drop_rate": "drop", "insert_rate": "insert", "burst_rate": "burst",
    "burst_length": "burst_len", "latency_s": "latency", "disconnect_after": "cut",
}
"""LineFaults fields and the names ``turbosim serve --impair`` gives them."""


_INPROC_NAMES = itertools.count()
"""Numbers of in-process units, for their unique ``turbosim://unit-N`` names."""


class TurbosimNotReady(RuntimeError):
    """turbosim exited, or printed no ``ready`` line in time; the message carries its stderr."""


class TurbosimCrashed(RuntimeError):
    """A unit exited on its own with a non-zero status while a test was using it."""


def impair_spec(faults: LineFaults) -> str:
    """The ``--impair`` text for *faults* (only the fields that differ from a clean line)."""
    clean = LineFaults()
    return ",".join(
        f"{_IMPAIR_KEYS[f.name]}={getattr(faults, f.name)}"
        for f in fields(faults)
        if getattr(faults, f.name) != getattr(clean, f.name)
    )


@dataclass
class RunningUnit:
    """One ``turbosim serve`` process that printed its ready line."""

    url: str
    """What a host opens: the pty symlink or device path, ``socket://HOST:PORT`` or ``rfc2217://HOST:PORT``."""
    serial: str
    model: str
    link: LinkKind
    process: subprocess.Popen[bytes] | None
    """None for ``link="inproc"``."""
    flash: Path | None
    """The flash image, when one was asked for: it holds the unit's log after :meth:`stop`."""
    stderr_path: Path
    _symlink: Path | None = field(default=None, repr=False)
    stopped: bool = field(default=False, repr=False)
    """Whether :meth:`stop` ran (the unit did not exit on its own while in use)."""
    unit: Unit | None = field(default=None, repr=False)
    """The in-process unit (``link="inproc"``), None for a unit in a process of its own."""
    line: inproc.Line | None = field(default=None, repr=False)
    """The in-process unit's line (``link="inproc"``)."""

    @property
    def pid(self) -> int:
        """The unit's process id, which is also its process group id (ConfigError for inproc)."""
        if self.process is None:
            raise ConfigError("an in-process unit has no process of its own")
        return self.process.pid

    @property
    def crashed(self) -> bool:
        """The unit's process exited on its own with a non-zero status while in use."""
        return not self.stopped and self.process is not None and self.process.poll() not in (None, 0)

    def stderr(self) -> str:
        """Everything turbosim wrote on stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the unit (SIGKILL after *timeout*), release what it held; its exit status.

        Idempotent.  turbosim exits 0 on SIGTERM, removing its pty symlink itself.  An
        in-process unit is withdrawn and closed (its flash image written), status 0.
        """
        if self.process is None:
            if not self.stopped:
                self.stopped = True
                inproc.withdraw(self.url.removeprefix(f"{inproc.SCHEME}://"))
                if self.unit is not None:
                    self.unit.close()
            return 0
        if not self.stopped:
            self.stopped = True
            try:
                if self.process.poll() is None:
                    _signal_group(self.process, signal.SIGTERM)
                    try:
                        self.process.wait(timeout)
                    except subprocess.TimeoutExpired:
                        _signal_group(self.process, signal.SIGKILL)
                        self.process.wait()
            finally:
                if self.process.stdout is not None:
                    self.process.stdout.close()
                if self._symlink is not None and self._symlink.is_symlink():
                    self._symlink.unlink()
        return self.process.returncode


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


class Turbosim:
    """Starts units in *workdir* (pty symlinks, stderr logs) and stops every one of them on close."""

    def __init__(self, workdir: Path, command: Sequence[str] = TURBOSIM) -> None:
        self.workdir = workdir
        self.command = list(command)
        self.units: list[RunningUnit] = []

    def start(
        self,
        *,
        link: LinkKind = "pty",
        port: str | None = None,
        model: str = "C60",
        serial: str | None = None,
        seed: int = 1,
        history: str | float = 0,
        baud: int = 115_200,
        no_pace: bool = False,
        impair: LineFaults | str | None = None,
        impair_seed: int = 0,
        flash: str | os.PathLike[str] | None = None,
        faults: Sequence[str] = (),
        extra_args: Sequence[str] = (),
        ready_timeout: float = READY_TIMEOUT_S,
    ) -> RunningUnit:
        """Serve a unit and wait for its ready line.

        *link*: ``"pty"`` (a new pty, symlinked in the work directory), ``"tcp"``
        or ``"rfc2217"`` (an ephemeral loopback port), ``"port"`` (the
        existing serial device *port*, e.g. one end of a socat pair), or
        ``"inproc"`` (in this process, at ``turbosim://NAME``).
        *history*: the unit's age to live up to before serving, as turbosim takes it (``"2000h"``,
        ``"30d"``) or seconds.  *serial* defaults to ``<model>-<seed:06d>``.
        *impair*: a :class:`~firmware_sim.impairment.LineFaults` or its
        ``--impair`` text.  *flash*: an image file that keeps the log (and lets a
        test read it after :meth:`RunningUnit.stop`).  *faults*: scripted
        faults such as ``"5005@1200h"``.  *extra_args*: any other
        ``turbosim serve`` options, passed as they are.
        """
        number = len(self.units)
        if link == "port":
            if port is None:
                raise ConfigError("link='port' needs port=<device path>")
            where = ["--port", port]
        elif port is not None:
            raise ConfigError(f"port= is only for link='port', not link={link!r}")
        elif link == "pty":
            where = ["--pty", str(self.workdir / f"turbine-{number}")]
        elif link in ("tcp", "rfc2217"):
            where = [f"--{link}", "127.0.0.1:0"]
        elif link == "inproc":
            where = []
        else:
            raise ConfigError(f"unknown link {link!r}: use pty, tcp, rfc2217, port or inproc")
        serial = serial or f"{model}-{seed:06d}"
        argv = [
            "--model", model, "--serial", serial, "--seed", str(seed), "--history", str(history),
            "--baud", str(baud),
        ]
        if no_pace:
            argv.append("--no-pace")
        if impair is not None:
            spec = impair if isinstance(impair, str) else impair_spec(impair)
            argv += ["--impair", spec, "--impair-seed", str(impair_seed)]
        if flash is not None:
            argv += ["--flash", os.fspath(flash)]
        for fault in faults:
            argv += ["--fault", fault]
        argv += extra_args
        stderr_path = self.workdir / f"turbosim-{number}.stderr"
        if link == "inproc":
            return self._start_inproc(argv, serial, model, flash, stderr_path)
        argv = [*self.command, "serve", *where, *argv]
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, start_new_session=True
            )
        unit = RunningUnit(
            url="", serial=serial, model=model, link=link, process=process,
            flash=Path(flash) if flash is not None else None, stderr_path=stderr_path,
            _symlink=Path(where[1]) if link == "pty" else None,
        )
        self.units.append(unit)
        unit.url = self._wait_ready(unit, argv, ready_timeout)
        return unit

    def _start_inproc(
        self, argv: list[str], serial: str, model: str, flash: str | os.PathLike[str] | None,
        stderr_path: Path,
    ) -> RunningUnit:
        from .cli import inproc_line  # the command's own reading of the options

        stderr_path.touch()
        built, line = inproc_line(argv)
        try:
            url = inproc.publish(line, f"unit-{next(_INPROC_NAMES)}")
        except BaseException:
            built.close()
            raise
        unit = RunningUnit(
            url=url, serial=serial, model=model, link="inproc", process=None,
            flash=Path(flash) if flash is not None else None, stderr_path=stderr_path, unit=built, line=line,
        )
        self.units.append(unit)
        return unit

    def _wait_ready(self, unit: RunningUnit, argv: list[str], timeout: float) -> str:
        """The URL from the unit's ``ready`` line; TurbosimNotReady (the unit stopped) otherwise."""
        assert unit.process is not None and unit.process.stdout is not None
        fd = unit.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        received = b""
        while b"\n" not in received:
            left = deadline - time.monotonic()
            readable = select.select([fd], [], [], max(0.0, left))[0] if left > 0 else []
            chunk = os.read(fd, 4096) if readable else b""
            if not chunk:
                why = "exited" if readable else f"printed no ready line within {timeout:g} s"
                status = unit.stop()
                raise TurbosimNotReady(
                    f"turbosim {why} (status {status}): {' '.join(argv)}\n"
                    f"stdout: {received.decode(errors='replace')!r}\nstderr:\n{unit.stderr()}"
                )
            received += chunk
        line = received.split(b"\n", 1)[0].decode(errors="replace")
        if not line.startswith("ready "):
            unit.stop()
            raise TurbosimNotReady(
                f"turbosim said {line!r} instead of 'ready <url>'\nstderr:\n{unit.stderr()}"
            )
        return line.removeprefix("ready ").strip()

    def close(self) -> None:
        """Stop every unit; then raise TurbosimCrashed if one had died on its own."""
        crashed = [unit for unit in self.units if unit.crashed]
        for unit in self.units:
            unit.stop()
        if crashed:
            raise TurbosimCrashed("; ".join(
                f"turbosim {unit.url or unit.link} exited {unit.process and unit.process.returncode}:\n"
                f"{unit.stderr()}"
                for unit in crashed
            ))

    def __enter__(self) -> Turbosim:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@pytest.fixture
def turbosim_unit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., RunningUnit]]:
    """Factory: ``turbosim_unit(**options)`` serves one more unit (options: :meth:`Turbosim.start`)."""
    with Turbosim(tmp_path_factory.mktemp("turbosim")) as launcher:
        yield launcher.start


@pytest.fixture
def turbosim_pty(turbosim_unit: Callable[..., RunningUnit], request: pytest.FixtureRequest) -> str:
    """The path of a pty served by a unit (options by indirect parametrisation)."""
    return turbosim_unit(link="pty", **getattr(request, "param", {})).url


@pytest.fixture
def turbosim_tcp(turbosim_unit: Callable[..., RunningUnit], request: pytest.FixtureRequest) -> str:
    """The ``socket://127.0.0.1:PORT`` URL of a unit on TCP (options by indirect parametrisation)."""
    return turbosim_unit(link="tcp", **getattr(request, "param", {})).url
