"""pyserial's URL handler for ``turbosim://NAME``, a line published by :func:`firmware_sim.inproc.publish`.

pyserial's ``serial_for_url`` imports ``<package>.protocol_<scheme>`` from each package in
``serial.protocol_handler_packages`` and opens its ``Serial`` class; ``publish`` adds this
package there.  This module only names the class; it holds no logic.
"""

from __future__ import annotations

from .inproc import InprocSerial as Serial

__all__ = ["Serial"]
