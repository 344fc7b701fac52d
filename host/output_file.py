"""Where an output file named on the command line (``--out``, ``--plot``) is written, and how.

:func:`output_file` opens a stream for a target a user named, by what the
target is, never by what its name looks like:

- ``-``: standard output (the stream the caller gives), written in place.
- ``/dev/stdout``, ``/dev/stderr``, ``/dev/fd/N``, ``/proc/self/fd/N`` (what a
  shell's process substitution ``>(...)`` gives): this process's own
  descriptor N, written through a duplicate of it, so that a redirection in
  append mode keeps appending.
- a symlink: followed; its target is written as below, the link stays.
- a regular file, or nothing yet: written to a temporary file in the same
  directory, flushed to disk and renamed over the target only when complete,
  so that a reader sees the old file or the new one, never a part.  A
  replaced file keeps its permission bits (and its owner, where the process
  may set it); a new one gets the umask's.
- anything else (a device such as ``/dev/null`` or a tty, a FIFO): written in
  place, never replaced.

A failure to write is :class:`~host.errors.OutputError`, one line naming the
target as the user gave it ("standard output" for ``-``), and leaves no
temporary file behind.  ``BrokenPipeError`` (the reader went away) passes
through untranslated: it is not an error of the output but the end of
interest in it, and the CLI ends quietly on it.  This module never reads the
archive and never prints.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import IO, Any

from .errors import OutputError

STDOUT = "-"
"""The target that means standard output."""

_OWN_FD = re.compile(rf"^/proc/(?:self|thread-self|{os.getpid()})/fd/(\d+)$|^/dev/fd/(\d+)$")
_STD_STREAMS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_MAX_LINKS = 40
"""As the kernel's limit on symlinks followed in one lookup."""


def describe(target: str | os.PathLike[str]) -> str:
    """How messages name *target*."""
    return "standard output" if os.fspath(target) == STDOUT else os.fspath(target)


def _resolve(target: str) -> tuple[str, int | None]:
    """(the path *target* leads to, following symlinks; this process's descriptor it names, if any)."""
    path = target
    for _ in range(_MAX_LINKS):
        path = os.path.join(os.path.realpath(os.path.dirname(path) or "."), os.path.basename(path))
        if path in _STD_STREAMS:
            return path, _STD_STREAMS[path]
        own = _OWN_FD.match(path)
        if own:
            return path, int(own.group(1) or own.group(2))
        if not os.path.islink(path):
            return path, None
        path = os.path.join(os.path.dirname(path), os.readlink(path))
    return path, None  # a loop: opening it gives ELOOP, reported as usual


@contextmanager
def output_file(
    target: str | os.PathLike[str], *, binary: bool, stdout: IO[str] | None = None
) -> Iterator[IO[Any]]:
    """A stream writing to *target* as the module docstring says, text (UTF-8) or *binary*;
    *stdout* is standard output for ``-`` (default :data:`sys.stdout`).

    The target is complete when the ``with`` block ends without an exception;
    when it raises, a temporary file is removed and a replaced file is left as
    it was.  Raises OutputError when *target* cannot be written.
    """
    name = describe(target)
    try:
        if os.fspath(target) == STDOUT:
            stream: IO[Any] = stdout or sys.stdout
            yield stream.buffer if binary else stream  # type: ignore[attr-defined]
            stream.flush()
            return
        path, fd = _resolve(os.fspath(target))
        if fd is not None:
            for std in (sys.stdout, sys.stderr):
                std.flush()
            with _wrap(os.dup(fd), binary) as stream:
                yield stream
            return
        try:
            mode: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode.st_mode):
            with _wrap(os.open(path, os.O_WRONLY), binary) as stream:
                yield stream
            return
        with _replacing(path, mode, binary) as stream:
            yield stream
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(f"cannot write {name}: {exc.strerror or exc}") from exc


def _wrap(fd: int, binary: bool) -> IO[Any]:
    if binary:
        return os.fdopen(fd, "wb")
    return os.fdopen(fd, "w", encoding="utf-8", newline="")


@contextmanager
def _replacing(path: str, old: os.stat_result | None, binary: bool) -> Iterator[IO[Any]]:
    """A temporary file beside *path*, renamed over it when the block ends without an exception."""
    folder, base = os.path.split(path)
    while True:
        part = os.path.join(folder, f".{base}.{os.urandom(4).hex()}.part")
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with _wrap(fd, binary) as stream:
            if old is not None:
                os.fchmod(fd, stat.S_IMODE(old.st_mode))
                if (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
                    with suppress(OSError):
                        os.fchown(fd, old.st_uid, old.st_gid)
            yield stream
            stream.flush()
            os.fsync(fd)
        os.replace(part, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(part)
        raise
