"""The access-server end of RFC 2217 (Telnet COM-PORT-OPTION), sans I/O: bytes in, bytes out.

:class:`ComPortServer` is one client connection's Telnet state.  ``receive(data)``
takes bytes from the client in any chunking and returns the serial data among
them (``IAC IAC`` unescaped); the Telnet replies it owes the client (option
negotiation, COM-PORT-OPTION answers) collect in ``take_replies()``;
``escape(data)`` doubles IAC in serial data going to the client.

Anyone who reaches the port can send anything, so every input is handled:

- malformed input (``IAC SE`` outside a subnegotiation, an undefined command
  byte, a COM-PORT-OPTION subnegotiation too short, too long or with an
  undefined value, a subnegotiation of another option) is dropped and counted
  in ``malformed``, never raised;
- a subnegotiation longer than :data:`MAX_SUBNEGOTIATION` bytes, or replies
  piling up beyond :data:`MAX_REPLIES` because the client does not read, set
  ``overflowed``: the caller drops the client.  Nothing else grows with input;
- a baud rate outside :data:`MIN_BAUD`..:data:`MAX_BAUD` (what a UART does) is
  refused by answering the current rate, as RFC 2217 lets a server do.  Data
  size, parity and stop bits are 8N1 whatever is asked (the answer says so).

Option negotiation follows RFC 1143's rule of never acknowledging a state one
is already in, so that no exchange loops.  A new connection gets a new
instance at the unit's configured rate: nothing one client set outlives it.

This module knows no sockets and no protocol above the serial bytes.
"""

from __future__ import annotations

import struct

IAC, DONT, DO, WONT, WILL, SB, SE = 255, 254, 253, 252, 251, 250, 240
BINARY, ECHO, SGA, COM_PORT_OPTION = 0, 1, 3, 44
_NEGOTIATIONS = (WILL, WONT, DO, DONT)
_COMMANDS = frozenset(range(241, 250))
"""NOP, DM, BRK, IP, AO, AYT, EC, EL, GA: defined, and meaningless on a serial line: ignored."""

MIN_BAUD = 50
MAX_BAUD = 4_000_000
MAX_SUBNEGOTIATION = 256
"""Bytes between IAC SB and IAC SE (the longest legal COM-PORT-OPTION one is a signature text)."""
MAX_REPLIES = 65536
"""Reply bytes waiting for a client that does not read."""
SIGNATURE = b"turbosim"

# COM-PORT-OPTION commands (client to server; the server answers with the command + 100).
SIGNATURE_CMD, SET_BAUDRATE, SET_DATASIZE, SET_PARITY, SET_STOPSIZE, SET_CONTROL = 0, 1, 2, 3, 4, 5
NOTIFY_LINESTATE, NOTIFY_MODEMSTATE, FLOWCONTROL_SUSPEND, FLOWCONTROL_RESUME = 6, 7, 8, 9
SET_LINESTATE_MASK, SET_MODEMSTATE_MASK, PURGE_DATA = 10, 11, 12
SERVER_OFFSET = 100

MODEMSTATE = 0x10 | 0x20 | 0x80
"""CTS, DSR and carrier detect: a controller that is powered and connected."""
_ONE_BYTE = {SET_DATASIZE: 8, SET_PARITY: 1, SET_STOPSIZE: 1}
"""Line settings the emulator has, whatever is asked (8 data bits, no parity, 1 stop bit)."""
_ONE_BYTE_DEFINED = {SET_DATASIZE: {0, 5, 6, 7, 8}, SET_PARITY: set(range(6)), SET_STOPSIZE: set(range(4))}
"""The values RFC 2217 defines for them (0 asks for the current one)."""
_CONTROL_ECHOED = frozenset({1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 16, 17, 18, 19})
"""SET_CONTROL values acknowledged as asked (flow control, BREAK, DTR, RTS: nothing to do on a pty)."""
_CONTROL_QUERIES = {0: 1, 4: 6, 7: 8, 10: 11, 13: 14}
"""SET_CONTROL queries and their answers: no flow control, BREAK off, DTR on, RTS on, no inbound flow."""

_OURS = frozenset({BINARY, ECHO, SGA, COM_PORT_OPTION})
"""Options the server does itself (answers DO with WILL)."""
_THEIRS = frozenset({BINARY, SGA, COM_PORT_OPTION})
"""Options the server lets the client do (answers WILL with DO)."""

_DATA, _IAC, _OPTION, _SUB, _SUB_IAC = range(5)


def _echoed(command: int, value: bytes) -> bool:
    """Whether a COM-PORT-OPTION request is acknowledged by answering its own value."""
    if len(value) != 1:
        return False
    if command == SET_CONTROL:
        return value[0] in _CONTROL_ECHOED
    if command == PURGE_DATA:
        return 1 <= value[0] <= 3
    return command in (SET_LINESTATE_MASK, SET_MODEMSTATE_MASK)


class ComPortServer:
    """One client's Telnet and COM-PORT-OPTION state; see the module docstring."""

    def __init__(self, baud: int) -> None:
        self.baud = baud
        self.malformed = 0
        """Telnet or RFC 2217 inputs dropped because they meant nothing."""
        self.overflowed = False
        """The client sent a subnegotiation over MAX_SUBNEGOTIATION or does not read its replies."""
        self._state = _DATA
        self._verb = 0
        self._sub = bytearray()
        self._replies = bytearray()
        self._ours: set[int] = set()
        self._theirs: set[int] = set()
        self._asked: set[tuple[int, int]] = set()
        """(verb, option) requests sent and not yet answered."""
        self._notified = False
        for verb, option in ((WILL, ECHO), (WILL, SGA), (DO, BINARY), (WILL, COM_PORT_OPTION)):
            self._asked.add((verb, option))
            self._send(verb, option)

    def take_replies(self) -> bytes:
        replies, self._replies = bytes(self._replies), bytearray()
        return replies

    @staticmethod
    def escape(data: bytes) -> bytes:
        return data.replace(b"\xff", b"\xff\xff")

    def receive(self, data: bytes) -> bytes:
        """The serial data in *data*; Telnet commands among it are handled (see the module docstring)."""
        if self._state == _DATA and IAC not in data:
            return data
        out = bytearray()
        for byte in data:
            state = self._state
            if state == _DATA:
                if byte == IAC:
                    self._state = _IAC
                else:
                    out.append(byte)
            elif state == _IAC:
                self._command(byte, out)
            elif state == _OPTION:
                self._state = _DATA
                self._negotiate(self._verb, byte)
            elif state == _SUB:
                if byte == IAC:
                    self._state = _SUB_IAC
                elif not self._collect(byte):
                    break
            elif byte == SE:  # _SUB_IAC
                self._state = _DATA
                self._subnegotiation(bytes(self._sub))
                self._sub.clear()
            elif byte == IAC:
                self._state = _SUB
                if not self._collect(IAC):
                    break
            else:  # IAC and a command inside a subnegotiation: it ends unfinished
                self.malformed += 1
                self._sub.clear()
                self._command(byte, out)
        if len(self._replies) > MAX_REPLIES:
            self.overflowed = True
        return bytes(out)

    def _collect(self, byte: int) -> bool:
        """Add a subnegotiation byte; False (overflowed, state dropped) past MAX_SUBNEGOTIATION."""
        if len(self._sub) >= MAX_SUBNEGOTIATION:
            self.overflowed = True
            self._sub.clear()
            self._state = _DATA
            return False
        self._sub.append(byte)
        return True

    def _command(self, byte: int, out: bytearray) -> None:
        """The byte after an IAC outside a subnegotiation."""
        self._state = _DATA
        if byte == IAC:
            out.append(IAC)
        elif byte in _NEGOTIATIONS:
            self._verb = byte
            self._state = _OPTION
        elif byte == SB:
            self._state = _SUB
        elif byte not in _COMMANDS:  # SE outside a subnegotiation, or an undefined command
            self.malformed += 1

    # --- option negotiation (RFC 854, 1143) ---------------------------------------

    def _send(self, verb: int, option: int) -> None:
        self._replies += bytes((IAC, verb, option))

    def _negotiate(self, verb: int, option: int) -> None:
        if verb in (DO, DONT):
            mine, agree, refuse, supported = self._ours, WILL, WONT, _OURS
        else:
            mine, agree, refuse, supported = self._theirs, DO, DONT, _THEIRS
        asked = (agree, option) in self._asked
        self._asked.discard((agree, option))
        if verb in (DO, WILL):
            if option not in supported:
                self._send(refuse, option)
            elif option not in mine:
                mine.add(option)
                if not asked:
                    self._send(agree, option)
                if option == COM_PORT_OPTION:
                    self._notify_modem_state()
        elif option in mine:
            mine.discard(option)
            self._send(refuse, option)

    def _notify_modem_state(self) -> None:
        """Once the client speaks RFC 2217: the modem lines, as pyserial's own server does."""
        if not self._notified:
            self._notified = True
            self._answer(NOTIFY_MODEMSTATE, bytes((MODEMSTATE,)))

    # --- COM-PORT-OPTION ---------------------------------------------------------

    def _answer(self, command: int, value: bytes) -> None:
        body = bytes((COM_PORT_OPTION, command + SERVER_OFFSET)) + self.escape(value)
        self._replies += bytes((IAC, SB)) + body + bytes((IAC, SE))

    def _subnegotiation(self, sub: bytes) -> None:
        if len(sub) < 2 or sub[0] != COM_PORT_OPTION:
            self.malformed += 1
            return
        command, value = sub[1], sub[2:]
        if command == SIGNATURE_CMD:
            if not value:
                self._answer(SIGNATURE_CMD, SIGNATURE)
        elif command == SET_BAUDRATE:
            self._set_baud(value)
        elif command in _ONE_BYTE and len(value) == 1 and value[0] in _ONE_BYTE_DEFINED[command]:
            self._answer(command, bytes((_ONE_BYTE[command],)))
        elif command == SET_CONTROL and len(value) == 1 and value[0] in _CONTROL_QUERIES:
            self._answer(command, bytes((_CONTROL_QUERIES[value[0]],)))
        elif _echoed(command, value):
            self._answer(command, value)
        elif command == NOTIFY_LINESTATE and not value:
            self._answer(command, b"\x00")
        elif command == NOTIFY_MODEMSTATE and not value:
            self._answer(command, bytes((MODEMSTATE,)))
        elif command in (FLOWCONTROL_SUSPEND, FLOWCONTROL_RESUME) and not value:
            pass  # a pty has no flow to suspend
        else:
            self.malformed += 1

    def _set_baud(self, value: bytes) -> None:
        if len(value) != 4:
            self.malformed += 1
            return
        (baud,) = struct.unpack("!I", value)
        if MIN_BAUD <= baud <= MAX_BAUD:
            self.baud = baud
        self._answer(SET_BAUDRATE, struct.pack("!I", self.baud))
