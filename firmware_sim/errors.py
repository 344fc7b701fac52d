"""The emulator's exception tree.

::

    SimulatorError                 root of everything firmware_sim raises on purpose
    ├── ConfigError                the user asked for something impossible (bad option values)
    ├── LinkSetupError             a port, pty symlink or listener could not be set up
    ├── IllegalTransition          (firmware_sim.engine) a trigger the engine state table refuses
    └── FlashError                 (firmware_sim.flash) the flash image is foreign, corrupt or unusable
        └── PowerCut, ...          (firmware_sim.flash) a simulated power cut, and image errors

The protocol's own errors (``protocol.ProtocolError``) are not re-rooted: the
device session turns a peer's bad bytes into ERROR responses, never into
exceptions.  This module holds no logic.
"""

from __future__ import annotations


class SimulatorError(Exception):
    """Root of the errors firmware_sim raises."""


class ConfigError(SimulatorError, ValueError):
    """An option or setting that cannot be honoured."""


class LinkSetupError(SimulatorError):
    """A port, pty, symlink or listener could not be set up."""
