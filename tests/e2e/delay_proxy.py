"""A TCP proxy on loopback that delays each direction by a fixed time: a slow link for tests.

``DelayProxy(upstream_port, one_way_s)`` listens on an ephemeral loopback port and forwards each
connection to ``127.0.0.1:upstream_port``; every chunk read in either direction is written on
``one_way_s`` seconds after it was read, in order and unchanged, so a round trip takes twice that
(a cellular or satellite modem, without its losses).  An end that closes is closed on the other side
once what it sent before has been delivered.  Threads, not processes: stop() (or leaving the
``with``) closes every socket and joins every thread.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from types import TracebackType

CHUNK = 65536


class DelayProxy:
    """Forwards loopback TCP connections to *upstream_port*, each way *one_way_s* seconds late."""

    def __init__(self, upstream_port: int, one_way_s: float) -> None:
        self.upstream_port = upstream_port
        self.one_way_s = one_way_s
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = [self._listener]
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._start(self._accept)

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _start(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed: stop() is running
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                held: queue.Queue[tuple[float, bytes]] = queue.Queue()
                self._start(self._read, source, held)
                self._start(self._write, held, sink)

    def _read(self, source: socket.socket, held: queue.Queue[tuple[float, bytes]]) -> None:
        while True:
            try:
                data = source.recv(CHUNK)
            except OSError:
                data = b""
            held.put((time.monotonic() + self.one_way_s, data))
            if not data:
                return

    def _write(self, held: queue.Queue[tuple[float, bytes]], sink: socket.socket) -> None:
        while True:
            due, data = held.get()
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                return
            try:
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
            except OSError:
                return

    def stop(self) -> None:
        self._stopping.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5)

    def __enter__(self) -> DelayProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
