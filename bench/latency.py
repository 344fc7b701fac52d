"""Latency: the IDENTIFY round trip over a pty, beside a raw 16-byte echo over a pty.

The host side is the real one: :class:`host.driver.Client` on
:func:`host.transport.open_port`, asking ``turbosim serve --pty --no-pace``
(unpaced, so the figure is the software's latency, not line time: IDENTIFY_RSP
is about 100 bytes, 0.9 ms at 115,200 baud) to identify itself, one request at
a time.  The limit is measured in the same run on the same kind of pty: a
thread echoing on the master of ``os.openpty``, 16 bytes written and read back
on the slave with plain ``os.write``/``os.read``.
"""

from __future__ import annotations

import os
import select
import statistics
import threading
import time
import tty

from host.driver import Client
from host.transport import open_port

from .device import image, serve
from .figures import Figure

ROUND_TRIPS = 2000
WARM_UP = 50
ECHO_BYTES = 16


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def identify_round_trips(count: int) -> list[float]:
    """Seconds per IDENTIFY exchange, *count* of them after a warm-up."""
    with serve(image(1000)) as device:
        transport = open_port(device.port, 115_200)
        try:
            client = Client(transport)
            client.abort()
            times = []
            for _ in range(WARM_UP + count):
                started = time.perf_counter()
                client.identify()
                times.append(time.perf_counter() - started)
        finally:
            transport.close()
    return times[WARM_UP:]


def echo_round_trips(count: int) -> list[float]:
    """Seconds per 16-byte echo over a fresh pty, *count* of them after a warm-up."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            if select.select([master], [], [], 0.1)[0]:
                os.write(master, os.read(master, 4096))

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    message = bytes(range(ECHO_BYTES))
    times = []
    try:
        for _ in range(WARM_UP + count):
            started = time.perf_counter()
            os.write(slave, message)
            got = b""
            while len(got) < ECHO_BYTES:
                got += os.read(slave, ECHO_BYTES - len(got))
            times.append(time.perf_counter() - started)
    finally:
        stop.set()
        thread.join()
        os.close(slave)
        os.close(master)
    return times[WARM_UP:]


def run() -> list[Figure]:
    identify = identify_round_trips(ROUND_TRIPS)
    echo = echo_round_trips(ROUND_TRIPS)
    us = 1e6
    ours = statistics.median(identify) * us, percentile(identify, 0.99) * us
    floor = statistics.median(echo) * us, percentile(echo, 0.99) * us
    about = f"{ROUND_TRIPS:,} round trips each, turbosim unpaced"
    return [
        Figure("IDENTIFY round trip over a pty, median", ours[0], "us", None,
               reference=f"raw 16-byte pty echo: median {floor[0]:.0f} us; {about}", limit=floor[0]),
        Figure("IDENTIFY round trip over a pty, p99", ours[1], "us", None,
               reference=f"raw 16-byte pty echo: p99 {floor[1]:.0f} us; {about}", limit=floor[1]),
    ]
