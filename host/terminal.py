"""What the command shows a person: sanitised text, colour, tables, a progress bar.

Strings a device supplies (serial numbers, model names, firmware versions)
are untrusted: :func:`printable` strips control characters and escape
sequences before they reach a terminal, and :func:`safe_filename` before they
reach a file name.  Colour and progress bars appear only on a terminal (and
never when ``NO_COLOR`` is set).  This module formats; it decides nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import TextIO

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]")


def printable(text: object, limit: int = 64) -> str:
    """*text* with every control character shown as '?', cut to *limit* characters."""
    cleaned = _UNPRINTABLE.sub("?", str(text))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def safe_filename(text: str) -> str:
    """A file-name component made from untrusted *text*: [A-Za-z0-9._-] only, never '.' or '..'."""
    name = _UNSAFE_IN_NAME.sub("_", text)[:64].strip(".")
    return name or "unit"


class Style:
    """ANSI colour when writing to a terminal, nothing otherwise."""

    def __init__(self, stream: TextIO, enabled: bool | None = None) -> None:
        if enabled is None:
            enabled = stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], numeric: Sequence[bool] = ()) -> str:
    """A plain text table; columns flagged in *numeric* are right-aligned."""
    cells = [[printable(h) for h in headers]] + [[printable(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        parts = [
            cell.rjust(width) if i < len(numeric) and numeric[i] else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def human_bytes(count: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class ProgressBar:
    """One self-overwriting line on a terminal; silent anywhere else.

    The line never reaches the terminal's last column (a line that fills it wraps, and every
    redraw then leaves a line behind): at each draw it is fitted to the width the terminal has
    then; the bar goes first, then the detail, then the counts are cut."""

    def __init__(
        self,
        stream: TextIO,
        *,
        min_interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        columns: Callable[[], int] | None = None,
    ) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._last = 0.0
        self._clock = clock
        self._min_interval = min_interval
        self._drawn = False
        self._columns = columns or self._terminal_columns

    def _terminal_columns(self) -> int:
        try:
            return os.get_terminal_size(self._stream.fileno()).columns or 80
        except (OSError, ValueError):
            return 80

    def line(self, done: int, total: int, detail: str, columns: int) -> str:
        """The line for *columns* columns: at most ``columns - 1`` characters."""
        room = max(columns - 1, 1)
        percent = 100.0 if total <= 0 else min(100.0, 100.0 * done / total)
        counts = f"{percent:5.1f}%  {done:,}/{total:,} records"
        for bar_width in (28, 20, 10):
            filled = bar_width if total <= 0 else min(bar_width, int(bar_width * done / total))
            candidate = f"{'█' * filled}{'·' * (bar_width - filled)} {counts}  {detail}"
            if len(candidate) <= room:
                return candidate
        for candidate in (f"{counts}  {detail}", detail, counts):
            if len(candidate) <= room:
                return candidate
        return counts[:room]

    def show(self, done: int, total: int, detail: str, *, now: bool = False) -> None:
        """Draw; at most once per ``min_interval`` unless done, or *now* (a change of state)."""
        if not self._enabled:
            return
        at = self._clock()
        if not now and at - self._last < self._min_interval and done < total:
            return
        self._last = at
        text = self.line(done, total, printable(detail, 200), self._columns())
        self._stream.write(f"\r{text}\x1b[K")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Clear the bar; a terminal that is gone (closed: SIGHUP) has nothing left to clear."""
        if self._drawn:
            self._drawn = False
            with contextlib.suppress(OSError):
                self._stream.write("\r\x1b[K")
                self._stream.flush()


class StatusLines:
    """A few self-overwriting lines on a terminal (a live status table); silent anywhere else.

    Each line is cut to the terminal's width less one column, so that none wraps."""

    def __init__(self, stream: TextIO, *, columns: Callable[[], int] | None = None) -> None:
        self._stream = stream
        self._enabled = stream.isatty()
        self._drawn = 0
        self._columns = columns or (lambda: _columns_of(stream))

    def show(self, lines: Sequence[str]) -> None:
        if not self._enabled:
            return
        room = max(self._columns() - 1, 1)
        up = f"\x1b[{self._drawn}F" if self._drawn else "\r"
        body = "".join(f"{printable(line, room)}\x1b[K\n" for line in lines)
        try:
            self._stream.write(up + body)
            self._stream.flush()
        except OSError:  # the terminal is gone (SIGHUP): nothing is shown any more
            self._enabled = False
            return
        self._drawn = len(lines)

    def close(self) -> None:
        """Clear the lines; a terminal that is gone has nothing left to clear."""
        if self._drawn:
            with contextlib.suppress(OSError):
                self._stream.write(f"\x1b[{self._drawn}F\x1b[J")
                self._stream.flush()
            self._drawn = 0


def _columns_of(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (OSError, ValueError):
        return 80
