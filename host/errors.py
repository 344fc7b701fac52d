"""Errors raised by the host package, and the process exit code of each.

Every error here derives from :class:`HostError`, so a caller (the CLI) can
catch the whole package with one clause and exit with ``exc.exit_code``.  The
tree separates *whose fault* it was::

    HostError                       1  not classified further
    ├── UsageError                  2  the caller or user asked for something impossible:
    │   │                              bad arguments, an unknown export format, a bad filter
    │   └── UnknownUnit             3  a serial number the archive has never seen
    │                                  (also a LookupError)
    ├── ArchiveError                4  environment: the archive file is corrupt, foreign, of a
    │                                  newer schema, or its path cannot be created or written
    ├── OutputError                 5  environment: an output file (export, plot) cannot be written
    ├── LinkError                   6  environment: the port is missing, busy or vanished
    │   │                              (SerialException / OSError translated at the boundary);
    │   │                              a caller may reconnect and resume
    │   └── LinkTimeout             7  nothing arrived in time (also a TimeoutError)
    ├── PullFailed                  8  environment: a pull gave up, the line kept losing the same
    │                                  records until retries ran out (not a LinkError: reconnecting
    │                                  is not the remedy, a better line is)
    └── DeviceError                 9  the peer's fault: the device speaks something else, has an
        │                              incompatible schema fingerprint, refused a request with an
        │                              ERROR code, or contradicts what the archive already holds
        ├── DeviceRefused           9  the device answered a request with ERROR (its ``code``)
        └── WrongUnit               9  another unit answers than the poll's inventory expects there

Exit codes: 0 is success; 1 is also what the CLI returns for an exception
that is not a HostError at all (a bug).  Beside the tree, :class:`Interrupted`
(a KeyboardInterrupt, not an error) says a signal asked the process to stop:
SIGINT 130, SIGHUP 129, SIGTERM 143 (128 + the signal's number).  Lower-layer exceptions (sqlite3,
pyserial, OSError) are translated into these where they are met, with
``raise ... from exc``, and the message is one line a user can act on.

This module holds no logic beyond the classes themselves.
"""

from __future__ import annotations

import signal


class HostError(Exception):
    """Root of every error raised by :mod:`host`."""

    exit_code: int = 1


class UsageError(HostError):
    """The caller or the user asked for something impossible (bad arguments)."""

    exit_code = 2


class UnknownUnit(UsageError, LookupError):
    """The serial number is not in the archive."""

    exit_code = 3


class ArchiveError(HostError):
    """The archive file is corrupt, foreign, newer than us, or cannot be written."""

    exit_code = 4


class OutputError(HostError):
    """An output file (an export, a plot) cannot be written."""

    exit_code = 5


class LinkError(HostError):
    """The port is missing, busy or vanished."""

    exit_code = 6


class LinkTimeout(LinkError, TimeoutError):
    """Nothing arrived from the device in time."""

    exit_code = 7


class PullFailed(HostError):
    """A pull gave up: the same records stayed missing after every retry."""

    exit_code = 8


class DeviceError(HostError):
    """The device misbehaved: wrong protocol or schema, a refusal, or a contradiction."""

    exit_code = 9


class Interrupted(KeyboardInterrupt):
    """A signal asked the process to stop: SIGINT (Ctrl-C), SIGTERM or SIGHUP.

    A KeyboardInterrupt, so whatever cleans up on Ctrl-C cleans up on all three.  ``kept`` is
    what a pull committed before it stopped (None where nothing is counted)."""

    def __init__(self, signum: int = signal.SIGINT, kept: int | None = None) -> None:
        super().__init__(signum, kept)
        self.signum = signum
        self.kept = kept

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @classmethod
    def of(cls, stop: KeyboardInterrupt, *, kept: int | None = None) -> Interrupted:
        """*stop* as an Interrupted (a plain KeyboardInterrupt is SIGINT's), *kept* recorded if given."""
        if isinstance(stop, Interrupted) and kept is None:
            return stop
        return cls(getattr(stop, "signum", signal.SIGINT), kept)


class DeviceRefused(DeviceError):
    """The device answered a request with ERROR; ``code`` is its :class:`~protocol.enums.ErrorCode`."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class WrongUnit(DeviceError):
    """The unit that answered is not the one expected there: another serial than the inventory's,
    or a unit that a poll is pulling through another URL at the same moment."""
