"""The host's access keys: where the key of a privileged command comes from, and what a valid one is.

A key is the unit's 32-byte secret for one access level, written as 64
hexadecimal digits (``turbosim keys --level maintenance`` prints one).  It is
taken from a key file (``--key-file FILE``) or, failing that, from the
environment variable ``TURBOLOG_KEY``; never from a command-line argument,
which other users see in the process list and which stays in shell history.
Whitespace in the key is ignored.  The tag itself is computed by
:mod:`protocol.auth`, the code the device checks it with.

Errors are :class:`~host.errors.UsageError` with one line a user can act on,
and never contain key material: not the file's content, and not a key file
"name" that is itself a key (:func:`withhold_keys`, which the CLI also
applies to every message it prints).  A key file readable by group or others
is used, with a one-line warning (ssh complains of a private key's permissions
alike; unlike ssh, the key is not ignored).
Reads only the key file it is named and the environment mapping it is
given; no device I/O, no clock.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping

from protocol.auth import KEY_LEN
from protocol.enums import AccessLevel

from .errors import UsageError

KEY_ENV = "TURBOLOG_KEY"
KEY_DIGITS = 2 * KEY_LEN
_MAX_KEY_FILE = 4096
"""A key file is one short line; anything longer is not one."""
_HEX = frozenset("0123456789abcdefABCDEF")
_OTHERS_READ = stat.S_IRGRP | stat.S_IROTH
LIKE_A_KEY = 32
"""Hexadecimal digits in a row from which a string is taken for (part of) a key and never echoed."""
_KEY_LIKE = re.compile(rf"[0-9a-fA-F]{{{LIKE_A_KEY},}}")
_FIX = "a key is 64 hexadecimal digits and nothing else (turbosim keys --level LEVEL prints one)"


def parse_key(text: str, *, source: str) -> bytes:
    """The 32-byte key written as hex in *text*; *source* names where it came from, for errors."""
    digits = "".join(text.split())
    if not digits:
        raise UsageError(f"{source} is empty: {_FIX}")
    if not _HEX.issuperset(digits):
        raise UsageError(f"{source} is not hexadecimal: {_FIX}")
    if len(digits) != KEY_DIGITS:
        raise UsageError(f"{source} has {len(digits)} hexadecimal digits: {_FIX}")
    return bytes.fromhex(digits)


def withhold_keys(text: str) -> str:
    """*text* with every run of :data:`LIKE_A_KEY` or more hexadecimal digits replaced by a
    mention of how many were withheld: for messages that quote what a user typed."""
    return _KEY_LIKE.sub(lambda found: f"<{len(found.group())} hex digits withheld>", text)


def load_key(
    key_file: str | os.PathLike[str] | None,
    environ: Mapping[str, str],
    warn: Callable[[str], None] | None = None,
) -> bytes:
    """The key from *key_file* if one is named, otherwise from ``TURBOLOG_KEY`` in *environ*.

    *warn* is told, in one line with the fix, when the key file is readable by
    its group or by others; the key is used all the same.
    """
    if key_file is not None:
        name = withhold_keys(os.fspath(key_file))
        try:
            with open(key_file, "rb") as file:
                mode = stat.S_IMODE(os.fstat(file.fileno()).st_mode)
                raw = file.read(_MAX_KEY_FILE + 1)
        except OSError as exc:
            raise UsageError(f"cannot read key file {name}: {exc.strerror or exc}") from exc
        if mode & _OTHERS_READ and warn is not None:
            warn(f"key file {name} is readable by {_readers(mode)} (mode {mode:04o}): chmod 600 {name}")
        if len(raw) > _MAX_KEY_FILE:
            raise UsageError(f"key file {name} is over {_MAX_KEY_FILE} bytes: {_FIX}")
        return parse_key(raw.decode("ascii", "replace"), source=f"key file {name}")
    text = environ.get(KEY_ENV)
    if text is None:
        raise UsageError(
            f"no key: name a key file with --key-file FILE or set {KEY_ENV} "
            "(a key is never taken from the command line)"
        )
    return parse_key(text, source=KEY_ENV)


def _readers(mode: int) -> str:
    readers = (("its group", stat.S_IRGRP), ("others", stat.S_IROTH))
    return " and ".join(who for who, bit in readers if mode & bit)


def parse_level(text: str) -> AccessLevel:
    """A protected access level by name (``maintenance``, ``factory``) or number (1, 2)."""
    wanted = text.strip().upper()
    for level in AccessLevel:
        if level != AccessLevel.READ and wanted in (level.name, str(int(level))):
            return level
    raise UsageError(f"no access level {text!r}: use maintenance (1) or factory (2)")
