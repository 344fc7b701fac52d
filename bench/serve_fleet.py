"""Serve-fleet: 1,000 units served by one ``turbosim serve-fleet`` process on this machine.

One fleet of 1,000 units (C30 and C60 half and half, each with a week of 15-minute samples,
9,600 baud, loopback TCP) is started as a user would start it, and measured:

- startup: wall time from the command to its ``ready`` line, beside the process's CPU seconds
  (living 1,000 weeks of history is nearly all of it);
- memory: the process's resident set once ready;
- idle: the CPU the fleet takes while nobody calls (1,000 units living on in simulated time);
- pacing: 200 units streaming their whole log at once to a client in this process (one thread,
  ``selectors``, frames decoded with the protocol's own decoder): each unit's rate beside its
  line rate (9,600 baud 8N1 = 960 bytes/s), the sum beside 200 line rates, and the CPU the fleet
  took meanwhile.

The host package is not used: the client is the protocol alone.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from protocol.framing import Frame, FrameDecoder
from protocol.inventory import parse_inventory
from protocol.messages import RangeEnd, ReadRange, decode_message, encode_message

from .figures import Figure

UNITS = 1000
STREAMING = 200
BAUD = 9600
HISTORY = "7d"
IDLE_S = 10.0
LINE_BYTES_PER_S = BAUD / 10
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def _rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {key} for {pid}")


@dataclass
class _Stream:
    """One unit's whole log on its own socket, until its RANGE_END."""

    sock: socket.socket
    decoder: FrameDecoder = field(default_factory=FrameDecoder)
    bytes: int = 0
    first_byte: float = 0.0
    ended: float = 0.0


def _stream_all(urls: list[str]) -> list[_Stream]:
    """Ask every unit of *urls* for its whole log at once; read every stream to its end."""
    selector = selectors.DefaultSelector()
    streams = []
    for url in urls:
        host, port = url.split("://", 1)[1].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)))
        sock.setblocking(False)
        stream = _Stream(sock)
        streams.append(stream)
        selector.register(sock, selectors.EVENT_READ, stream)
    for stream in streams:
        stream.sock.sendall(encode_message(ReadRange(0, 4000), 1))
    open_streams = len(streams)
    while open_streams:
        for key, _ in selector.select(30.0):
            stream = key.data
            chunk = stream.sock.recv(65536)
            now = time.monotonic()
            if not chunk:
                raise AssertionError("a unit hung up mid-stream")
            stream.first_byte = stream.first_byte or now
            stream.bytes += len(chunk)
            for item in stream.decoder.feed(chunk):
                if isinstance(item, Frame) and isinstance(decode_message(item), RangeEnd):
                    stream.ended = now
                    selector.unregister(stream.sock)
                    open_streams -= 1
    for stream in streams:
        stream.sock.close()
    selector.close()
    return streams


def run() -> list[Figure]:
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "firmware_sim.cli", "serve-fleet", "--units", str(UNITS),
         "--mix", "C30:0.5,C60:0.5", "--seed", "1", "--history", HISTORY, "--baud", str(BAUD),
         "--tcp", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        line = process.stdout.readline()
        if not line.startswith("ready "):
            raise AssertionError(f"serve-fleet did not get ready: {process.stderr.read()}")
        ready_s = time.monotonic() - started
        startup_cpu = _cpu_s(process.pid)
        rss_ready = _rss_mb(process.pid)
        entries = parse_inventory(Path(line.split(" ", 1)[1].strip()).read_text(), kind="toml")

        idle_cpu = _cpu_s(process.pid)
        time.sleep(IDLE_S)
        idle_share = (_cpu_s(process.pid) - idle_cpu) / IDLE_S

        cpu_before, wall_before = _cpu_s(process.pid), time.monotonic()
        streams = _stream_all([entry.url for entry in entries[:STREAMING]])
        stream_wall = time.monotonic() - wall_before
        stream_cpu = (_cpu_s(process.pid) - cpu_before) / stream_wall
        peak_rss = _rss_mb(process.pid, "VmHWM")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    history = stderr.splitlines()[0] if stderr else ""
    rates = [s.bytes / (s.ended - s.first_byte) for s in streams]
    total = sum(rates)
    ideal = STREAMING * LINE_BYTES_PER_S
    streamed = sum(s.bytes for s in streams)
    return [
        Figure(f"serve-fleet: {UNITS:,} units to ready ({HISTORY} of history each)", ready_s, "s", 90.0,
               False,
               reference=f"CPU {startup_cpu:.1f} s of it; {history.removeprefix('fleet: ')}",
               limit=startup_cpu),
        Figure(f"serve-fleet: resident memory, {UNITS:,} units", rss_ready, "MB", 400.0, False,
               reference=f"peak {peak_rss:.0f} MB after {STREAMING} streams; "
                         f"{rss_ready * 1024 / UNITS:.0f} kB per unit"),
        Figure(f"serve-fleet: CPU while {UNITS:,} units idle", idle_share, "cores", 0.1, False,
               reference=f"over {IDLE_S:.0f} s, every unit living on at --speed 1"),
        Figure(f"serve-fleet: {STREAMING} units streaming at 9,600 baud", total / ideal, "x line rate", 0.95,
               reference=f"{total:,.0f} bytes/s of {ideal:,.0f}; slowest unit "
                         f"{min(rates) / LINE_BYTES_PER_S:.3f}, median "
                         f"{statistics.median(rates) / LINE_BYTES_PER_S:.3f} x its line; "
                         f"{streamed / 1e6:.1f} MB in {stream_wall:.0f} s"),
        Figure(f"serve-fleet: CPU while {STREAMING} units stream", stream_cpu, "cores", 1.0, False,
               reference=f"{stream_cpu / (total / 1e6):.2f} core per MB/s paced; "
                         f"the other {UNITS - STREAMING:,} units idle"),
    ]
