"""Named values that travel on the wire as small integers.

Engine states, modes, severities, subsystems, record and message types, event
kinds and error codes.  Decoders keep the raw integers (an unknown value from a
newer firmware must survive a round trip); these enums give them names.  Use
:func:`name_of` to print a value that may not be a member.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class EngineState(IntEnum):
    """Engine states as technicians know them from the controller display."""

    STAND_BY = 0
    LIFT_OFF = 1
    LIGHT_OFF = 2
    ACCEL = 3
    LOAD = 4
    COOLDOWN = 5
    WARMDOWN = 6
    RELIGHT = 7
    SETDOWN = 8
    SHUTDOWN = 9
    FAULT_LOCKOUT = 10


class GridMode(IntEnum):
    """Grid connect (follows the utility) or stand alone (forms its own grid)."""

    GRID_CONNECT = 0
    STAND_ALONE = 1


class Severity(IntEnum):
    """Fault severity levels used by the controllers."""

    INFO = 1
    WARNING = 2
    """The unit keeps running."""
    NORMAL_SHUTDOWN = 3
    """Shutdown through COOLDOWN."""
    FAST_SHUTDOWN = 4
    """Shutdown through WARMDOWN."""
    EMERGENCY_STOP = 5

    @property
    def is_failure(self) -> bool:
        """Shutdown-class severities count as failures for MTBF."""
        return self >= Severity.NORMAL_SHUTDOWN


class Subsystem(IntEnum):
    ENGINE = 0
    FUEL = 1
    GENERATOR = 2
    INVERTER = 3
    GRID = 4
    DC_BUS = 5
    """Battery / DC bus."""
    CONTROLS = 6
    COMMS = 7


class EventFlag(IntFlag):
    """Inverter-style event flags (after the SunSpec inverter models)."""

    NONE = 0
    GROUND_FAULT = 1 << 0
    DC_OVER_VOLTAGE = 1 << 1
    AC_DISCONNECT = 1 << 2
    GRID_DISCONNECT = 1 << 3
    CABINET_OPEN = 1 << 4
    MANUAL_SHUTDOWN = 1 << 5
    OVER_TEMPERATURE = 1 << 6
    OVER_FREQUENCY = 1 << 7
    UNDER_FREQUENCY = 1 << 8
    AC_OVER_VOLTAGE = 1 << 9
    AC_UNDER_VOLTAGE = 1 << 10
    UNDER_TEMPERATURE = 1 << 11
    MEMORY_LOSS = 1 << 12
    HARDWARE_TEST_FAILURE = 1 << 13


class RecordType(IntEnum):
    SAMPLE = 1
    """Runtime / performance sample."""
    FAULT = 2
    """Fault with a freeze-frame snapshot."""
    EVENT = 3
    """Start, stop, state change, power-up, clear, clock set, configuration, auth."""
    RUNUP = 4
    """Pre-trigger buffer: the last seconds of one key channel before a shutdown-class fault,
    written right after that fault's record (one record per channel, see RunupChannel)."""


class RunupChannel(IntEnum):
    """The channel of a RUNUP record, and the unit of one step of its ``values``."""

    TET_AVG = 1
    """Turbine exit temperature, the average of TET #1 and #2: steps of 0.1 °C."""
    SPEED = 2
    """Shaft speed: steps of 10 rpm."""
    POWER = 3
    """Generator output power: steps of 100 W."""
    GRID_VOLTAGE = 4
    """Grid voltage, line to line: steps of 0.1 V."""
    GRID_FREQ = 5
    """Grid frequency: steps of 0.01 Hz."""
    DC_BUS = 6
    """DC bus voltage: steps of 0.1 V."""


class EventKind(IntEnum):
    POWER_UP = 1
    START = 2
    STOP = 3
    """value_a: the fault code that stopped the engine; 0 with level 0 for a commanded stop,
    0 with level EMERGENCY_STOP for a loss of power (after POWER_LOSS)."""
    STATE_CHANGE = 4
    LOG_CLEARED = 5
    CLOCK_SET = 6
    CONFIG_CHANGE = 7
    AUTH = 8
    FAULT_CLEARED = 9
    COUNTERS_RESET = 10
    POWER_LOSS = 11
    """Logged at the power-up after the controller lost power with the shaft turning: state_from
    the state then, value_a the time of the last record before the loss, value_b the seconds from
    it to this power-up; an EVENT STOP (value_a 0) with the same level follows."""
    SERVICE = 12
    """Planned maintenance done (logged when it ends): value_a 1 service, 2 overhaul; value_b its
    planned downtime in seconds (the unit stopped for it with a commanded STOP)."""


class AccessLevel(IntEnum):
    READ = 0
    MAINTENANCE = 1
    FACTORY = 2


class MsgType(IntEnum):
    """Message types; responses have the high bit set."""

    IDENTIFY = 0x01
    LIVE = 0x02
    CLOCK_GET = 0x03
    CLOCK_SET = 0x04
    LOG_CLEAR = 0x05
    READ_RANGE = 0x06
    READ_SET = 0x07
    ABORT = 0x08
    AUTH_CHALLENGE = 0x09

    IDENTIFY_RSP = 0x81
    LIVE_RSP = 0x82
    CLOCK_RSP = 0x83
    LOG_CLEAR_RSP = 0x85
    RECORDS = 0x86
    RANGE_END = 0x87
    ABORT_RSP = 0x88
    AUTH_CHALLENGE_RSP = 0x89
    ERROR = 0xFF


class ErrorCode(IntEnum):
    """Codes carried by an ERROR response."""

    UNKNOWN_MESSAGE = 1
    MALFORMED_REQUEST = 2
    UNSUPPORTED_VERSION = 3
    OUT_OF_RANGE = 4
    UNAUTHORIZED = 5
    LOCKED_OUT = 6
    BUSY = 7
    INTERNAL = 8


def name_of(enum: type[IntEnum], value: int) -> str:
    """The member's name, or ``UNKNOWN(value)`` for a value newer than us."""
    try:
        return enum(value).name
    except ValueError:
        return f"UNKNOWN({value})"
