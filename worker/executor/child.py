"""The executor process: ``python -m worker.executor.child FD``, started by ``ProcessExecutor``.

It serves the requests that arrive on the socket ``FD`` one at a time on its main thread (the
one thread ComfyUI runs on for the life of the process); a reader thread takes them off the
socket, and acts on ``interrupt`` at once, while a run is in progress. When the socket closes
(the worker's process ended, however it ended) the process exits at once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from worker.errors import ConfigError
from worker.executor import loading, wire
from worker.executor.base import Executor, Progress
from worker.obs import logs, profiler

log = logging.getLogger(__name__)


class _Child:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._requests: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._executor: Executor | None = None

    def send(self, message: tuple[Any, ...]) -> None:
        try:
            self._conn.send(message)
        except OSError:
            os._exit(0)  # the worker's process is gone: nobody is waiting for this

    def read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                os._exit(0)
            if message[0] == "interrupt":
                if self._executor is not None:
                    self._executor.interrupt()
            else:
                self._requests.put(message)

    def serve(self, hello: wire.Hello) -> None:
        try:
            # PROFILER=1: this process's CPU (ComfyUI's) is profiled too, beside the worker's.
            profiler.start(hello.settings.observability, hello.settings.identity)
            self._executor = loading.build(hello.settings)
            self._executor.start()
        except BaseException as exc:
            self.send(("error", wire.encode(exc)))
        else:
            self.send(("ok", None))
        while True:
            message = self._requests.get()
            kind = message[0]
            if kind == "close":
                self._close()
                return
            if kind == "execute":
                self._execute(message[1], message[2])

    def _execute(self, request: Any, wants_progress: bool) -> None:
        if wants_progress:
            request = dataclasses.replace(request, progress=self._progress)
        try:
            if self._executor is None:
                raise ConfigError("the executor could not be loaded")
            result = self._executor.execute(request)
        except BaseException as exc:
            self.send(("error", wire.encode(exc)))
        else:
            self.send(("ok", result))

    def _progress(self, update: Progress) -> None:
        self.send(("progress", update))

    def _close(self) -> None:
        try:
            if self._executor is not None:
                self._executor.close()
        except BaseException as exc:
            self.send(("error", wire.encode(exc)))
        else:
            self.send(("ok", None))


def main(argv: list[str]) -> int:
    # The worker's process decides when to stop; a signal meant for it must not end a run here.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:  # under memory pressure, the kernel takes this process, not the worker's
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    conn = Connection(int(argv[1]))
    kind, hello = conn.recv()
    assert kind == "start" and isinstance(hello, wire.Hello)
    sys.path[:] = list(hello.sys_path)
    logs.setup(hello.settings.log_level, static={**hello.log_static, "process": "executor"})
    child = _Child(conn)
    threading.Thread(target=child.read, name="executor-requests", daemon=True).start()
    child.serve(hello)
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # ComfyUI's non-daemon threads must not keep it alive
