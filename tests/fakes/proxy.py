"""A TCP proxy between the worker and an emulator: one that can refuse connections, or one that
adds network latency.

Freezing an emulator (SIGSTOP) makes requests hang; an outage where connections are refused
makes them fail at once, so that the worker's retries run out after ``SERVICE_RETRY_S``. No
emulator can be told to do that, so this sits between the worker and fake-gcs-server.

With ``one_way_s`` every chunk is held that long in each direction before it goes on (chunks
keep their order; one chunk's wait does not add to the next one's), so that a request and its
response cost ``2 * one_way_s`` more, as over a link to a remote service
(``bench/loop_overhead.py --latency-ms``).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Iterator


class Proxy:
    def __init__(self, upstream: str, one_way_s: float = 0.0) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._one_way_s = one_way_s
        self._server = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._server.getsockname()[1]}"
        self.up = threading.Event()
        self.up.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        pipe = self._delayed if self._one_way_s > 0 else self._pipe
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                client.close()  # a reset: the client sees the connection refused/aborted
                continue
            try:
                server = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while self.up.is_set() and (data := src.recv(65536)):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.close()

    def _delayed(self, src: socket.socket, dst: socket.socket) -> None:
        """Read ``src`` here; a second thread writes each chunk to ``dst`` once it is due, and
        passes the end on as a half-close, so that what the other way still holds arrives."""
        src.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        held: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

        def write() -> None:
            while True:
                due, chunk = held.get()
                if (wait := due - time.monotonic()) > 0:
                    time.sleep(wait)
                try:
                    if not chunk:
                        dst.shutdown(socket.SHUT_WR)
                        return
                    dst.sendall(chunk)
                except OSError:
                    return

        threading.Thread(target=write, daemon=True).start()
        while True:
            try:
                chunk = src.recv(65536) if self.up.is_set() else b""
            except OSError:
                chunk = b""
            held.put((time.monotonic() + self._one_way_s, chunk))
            if not chunk:
                return

    def close(self) -> None:
        self._server.close()


@contextlib.contextmanager
def proxy(upstream: str) -> Iterator[Proxy]:
    p = Proxy(upstream)
    try:
        yield p
    finally:
        p.close()
