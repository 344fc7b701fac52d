"""What `turbolog live` shows, and the keys it reads on a terminal.

:func:`live_view` is the screen for one reading: pure, from the reading's
values (:func:`host.fields.snapshot_fields`), the previous reading's (values that changed
since are passed through *mark*, which highlights them on a terminal) and a
status line (paused, connection lost, reconnected).  The active fault is
shown by its code, name and what to do (:mod:`protocol.fault_codes`), never
as a bare number.  :class:`Keys` reads single key presses from a terminal
without waiting for Enter (space pauses and resumes, q quits, as python-can's
``can.viewer`` does) and restores the terminal afterwards; anywhere but a
terminal (a pipe, a file, Windows) it only waits.

This module neither talks to the device nor decides when to reconnect: the
command does.
"""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from types import TracebackType
from typing import Any, TextIO

from protocol.fault_codes import fault_label, lookup

from .terminal import printable

PAUSE_KEY = " "
QUIT_KEYS = frozenset({"q", "Q"})
KEYS_HELP = "space pause/resume, q quit"


def live_view(
    serial: str,
    model: str,
    values: Mapping[str, Any],
    previous: Mapping[str, Any] | None = None,
    *,
    mark: Callable[[str], str] = lambda text: text,
    status: str = "",
) -> str:
    """The screen for one live reading; every value shown differently from *previous* goes through
    *mark* (a change too small to show, in the last digit's units, is not marked)."""

    def cell(key: str, text: str) -> str:
        changed = previous is not None and key in previous and previous[key] != values[key]
        return mark(text) if changed else text

    v = values

    def c(key: str, spec: str, scale: float | None = None) -> str:
        text = format(v[key] if scale is None else v[key] / scale, spec)
        if previous is None or key not in previous:
            return text
        before = format(previous[key] if scale is None else previous[key] / scale, spec)
        return mark(text) if before != text else text

    state = cell("state", str(v["state"]))
    mode = cell("mode", str(v["mode"]))
    lines = [
        f"{printable(serial)} ({printable(model)})  {v['time']}  {state}  {mode}",
        f"  speed      {c('speed_rpm', '>9,')} rpm      power      {c('power_w', '>8.1f', 1000)} kW",
        f"  TET1/TET2  {c('tet1_c', '>6.1f')} / {c('tet2_c', '.1f')} °C   "
        f"compressor in {c('compressor_inlet_c', '.1f')} °C",
        f"  ambient    {c('ambient_c', '>9.1f')} °C       "
        f"pressure   {c('ambient_pressure_kpa', '>8.2f')} kPa",
        f"  fuel valve {c('fuel_valve_pct', '>9.1f')} %        "
        f"fuel       {c('fuel_power_w', '>8.1f', 1000)} kW",
        f"  DC bus     {c('dc_bus_v', '>9.1f')} V        "
        f"grid       {c('grid_voltage_v', '.1f')} V {c('grid_freq_hz', '.3f')} Hz",
        f"  hours      {c('operating_hours', '>9,.1f')}          starts     {c('starts', '>8,')}   "
        f"energy {c('energy_kwh', ',.0f')} kWh",
    ]
    code = int(v["active_fault"])
    if code:
        definition = lookup(code)
        lines.append(f"  fault      {cell('active_fault', fault_label(code))}"
                     + (f" ({definition.severity.name}, {definition.subsystem.name})" if definition else ""))
        if definition:
            lines.append(f"             {definition.action}")
    else:
        lines.append(f"  fault      {cell('active_fault', 'none')}")
    if status:
        lines.append(status)
    return "\n".join(lines)


class Keys:
    """Single key presses from *stream* when it is a terminal (cbreak mode, restored on exit)."""

    def __init__(self, stream: TextIO | None) -> None:
        self._fd: int | None = None
        self._saved: list[Any] | None = None
        if stream is not None and sys.platform != "win32":
            try:
                if stream.isatty():
                    self._fd = stream.fileno()
            except (AttributeError, OSError, ValueError):
                self._fd = None

    @property
    def enabled(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Keys:
        if self._fd is not None:
            import termios
            import tty

            try:
                self._saved = termios.tcgetattr(self._fd)
                tty.setcbreak(self._fd)
            except termios.error:
                self._fd = None
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None and self._saved is not None:
            import termios

            with suppress(termios.error, OSError):  # a terminal that hung up has nothing to restore
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)

    def wait(self, seconds: float) -> str | None:
        """The first key pressed within *seconds* (then at once), or None when the time is up."""
        if self._fd is None:
            time.sleep(max(0.0, seconds))
            return None
        ready, _, _ = select.select([self._fd], [], [], max(0.0, seconds))
        if not ready:
            return None
        data = os.read(self._fd, 32)
        return data.decode("utf-8", "replace")[:1] if data else None
