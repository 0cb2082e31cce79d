"""``ProcessExecutor``: the executor in a process of its own, behind the same seam.

The worker's own work (pulling, parsing and staging the next job, uploading the last one's
outputs, leases, attempt markers, events) is Python, and under one GIL it takes turns with
ComfyUI's: a model-free job ran 2-5 times slower beside it (docs/performance.md). Here ComfyUI
runs in a child process (``worker.executor.child``) with no other busy thread, and the worker's
process talks to it over a socket pair: one request at a time (``start``, ``execute``,
``close``) and its answer, progress updates on the way, and ``interrupt`` at any time.

Inputs and outputs are files in the job's folders, which both processes see; only the request
(the workflow, the folders, the job's models) and the result (the output list, timings) cross.
Failures keep their class (``JobFailed`` with its type and node, ``Transient``, ...): the child
sends each as its class name and attributes (``wire``). If the child dies (a segfault in a node,
an OOM kill) the run ends with ``WorkerBroken``: no release marker, so it counts as a crash, as
the death of the whole process did before. The child ignores SIGINT and SIGTERM (the worker's
process decides when to stop, as with an in-process executor) and exits when the socket closes,
so it never outlives the worker's process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import worker
from worker.config import Settings
from worker.errors import WorkerBroken
from worker.executor import wire
from worker.executor.base import ExecRequest, ExecResult
from worker.message.bounded import safe_str
from worker.obs import logs

log = logging.getLogger(__name__)
CLOSE_WAIT_S = 30.0  # for the child to unload models and exit after ``close``
# ``python -m worker.executor.child FD``, from the folder ``worker`` was imported from: the child
# must find the package even when this process found it some other way (a ``sys.path`` entry
# added at run time, another working directory).
_ROOT = str(Path(worker.__file__).resolve().parent.parent)
_BOOT = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "runpy.run_module('worker.executor.child', run_name='__main__', alter_sys=True)"
)


class ProcessExecutor:
    isolated = True  # a run's crash ends the child, not the caller (worker.executor.base)

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()  # interrupt() sends from another thread
        self._running = False

    def start(self) -> None:
        if self._conn is not None:
            return
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, _ROOT, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                # Its own session: a terminal's Ctrl-C reaches the worker's process alone.
                start_new_session=True,
            )
            self._conn = Connection(ours.detach())
        logs.event(log, "executor.process_started", pid=self._proc.pid)
        hello = wire.Hello(self._settings, tuple(sys.path), logs.static())
        self._call(("start", hello), "starting")

    def execute(self, request: ExecRequest) -> ExecResult:
        if self._conn is None:
            raise WorkerBroken("execute() called before start()")
        progress = request.progress
        with self._send_lock:
            self._running = True
        try:
            message = ("execute", dataclasses.replace(request, progress=None), progress is not None)
            result = self._call(message, "running a job", progress)
        finally:
            with self._send_lock:
                self._running = False
        assert isinstance(result, ExecResult)
        return result

    def interrupt(self) -> None:
        with self._send_lock:
            if not self._running or self._conn is None:
                return
            with contextlib.suppress(OSError):  # the child is gone: the run finds out
                self._conn.send(("interrupt",))

    def close(self) -> None:
        """End the child: ``close`` and its answer when it is idle. When a run still holds it (one
        that ignored its interrupt, or a child frozen or stuck in a native call that never lets
        its reader thread see the socket close), nothing would answer or end it, and the
        worker's process leaves with ``os._exit``: the child is killed instead of left holding
        the GPU. The thread waiting on that run then ends with ``WorkerBroken``."""
        conn, proc = self._conn, self._proc
        self._conn = None
        if conn is None or proc is None:
            return
        with self._send_lock:
            running = self._running
        if running:
            logs.event(log, "executor.process_killed", logging.WARNING, pid=proc.pid)
            proc.kill()
            proc.wait()
            return  # the connection is the running call's: it reads the end of it
        try:
            with self._send_lock:
                conn.send(("close",))
            _answer(conn, None)
        except (OSError, EOFError, wire.RemoteError):
            pass  # closing either way
        finally:
            conn.close()
            try:
                proc.wait(CLOSE_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _call(self, message: tuple[Any, ...], doing: str, progress: Any = None) -> Any:
        conn = self._conn
        assert conn is not None
        try:
            with self._send_lock:
                conn.send(message)
            return _answer(conn, progress)
        except wire.RemoteError as exc:
            raise exc.error from None
        except (OSError, EOFError):
            ended = self._exit()
            raise WorkerBroken(f"the executor process ended while {doing}: {ended}") from None

    def _exit(self) -> str:
        proc = self._proc
        assert proc is not None
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            return "it stopped answering and was killed"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"


def _answer(conn: Connection, progress: Any) -> Any:
    """Receive until the answer to the last request; pass progress updates on the way."""
    while True:
        kind, body = conn.recv()
        if kind == "progress":
            if progress is not None:
                try:
                    progress(body)
                except Exception as exc:  # a sink's fault must not desynchronise the two ends
                    logs.event(log, "progress sink failed", logging.WARNING, error=safe_str(exc))
            continue
        if kind == "error":
            raise wire.RemoteError(wire.rebuild(body))
        return body
