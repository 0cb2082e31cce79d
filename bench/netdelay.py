"""A TCP relay that adds network latency: the emulators as if they were a data centre away.

On one machine every request to the emulators returns in about a millisecond, so a benchmark
can't tell a request made while the executor runs from one made between two executions. In
production each GCS or Pub/Sub round trip takes tens of milliseconds. ``Delay`` listens on a
local port and relays each connection to ``upstream``, holding every chunk ``one_way_s`` in each
direction before it goes on (chunks keep their order; a chunk's wait does not add to the next
one's), so that a request-response pair costs ``2 * one_way_s`` more, as over a real link.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time


class Delay:
    def __init__(self, upstream: str, one_way_s: float) -> None:
        host, port = upstream.rsplit(":", 1)
        self._upstream = (host, int(port))
        self._one_way_s = one_way_s
        self._server = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, name="netdelay", daemon=True).start()

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for src, dst in ((client, upstream), (upstream, client)):
                self._pipe(src, dst)

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        held: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

        def read() -> None:
            while True:
                try:
                    chunk = src.recv(1 << 16)
                except OSError:
                    chunk = b""
                held.put((time.monotonic() + self._one_way_s, chunk))
                if not chunk:
                    return

        def write() -> None:
            while True:
                due, chunk = held.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not chunk:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                try:
                    dst.sendall(chunk)
                except OSError:
                    return

        threading.Thread(target=read, daemon=True).start()
        threading.Thread(target=write, daemon=True).start()
