"""The executor's one long-lived thread: runs jobs one at a time, with their attempt markers.

One thread for the life of the process (not one per job): ComfyUI's state is per thread in
places (CUDA streams, its event loop), and a thread per job costs a start each time.

Around each run (see ``worker.attempts``): before the executor starts, the job's attempt record
and the previous attempt's release are both durable (written in parallel: one small write on the
GPU's path); after it ends, the release is written at once when the message is to be handed
back (before the nack, so the next delivery doesn't count a crash), or in the background when
the job is to be recorded (the next start waits for it). A run that ended with ``WorkerBroken``
gets no release: it counts as a crashed attempt. With ``MAX_CRASHED_ATTEMPTS=0`` the markers are
written in the background and never waited for.

``interrupt()`` is called by the control loop, from its own thread; a stop requested while the
markers were being written keeps the job from starting at all.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from worker import logs
from worker.attempts import Markers
from worker.bounded import safe_str
from worker.errors import Interrupted, JobFailed, Stopped, Transient
from worker.eventtypes import Executed, Post, Started, start_thread
from worker.executor.base import ExecRequest, Executor
from worker.prepare import Prepared
from worker.tasks import Task

log = logging.getLogger(__name__)


def ending(error: BaseException | None) -> str | None:
    """How an attempt ended, for its release marker; None when it took the process down."""
    if error is None:
        return "succeeded"
    if isinstance(error, JobFailed):
        return "failed"
    if isinstance(error, Interrupted | Stopped):
        return "interrupted"
    if isinstance(error, Transient):
        return "transient"
    return None  # WorkerBroken, or an exception nobody classified


class ExecutorThread:
    def __init__(
        self, executor: Executor, markers: Markers, post: Post, stop: threading.Event, sync: bool
    ) -> None:
        self._executor = executor
        self._markers = markers
        self._post = post
        self._stop = stop
        self._sync = sync
        self._inbox: queue.SimpleQueue[tuple[Prepared, ExecRequest] | None] = queue.SimpleQueue()
        self._release: Task[None] | None = None  # the previous attempt's, being written

    def start(self) -> None:
        start_thread("executor", self._loop, self._post)

    def run(self, prepared: Prepared, request: ExecRequest) -> None:
        self._inbox.put((prepared, request))

    def close(self) -> None:
        self._inbox.put(None)

    def _loop(self) -> None:
        while (item := self._inbox.get()) is not None:
            self._one(*item)

    def _one(self, prepared: Prepared, request: ExecRequest) -> None:
        try:
            attempt = self._begin(prepared)
            if self._sync:
                attempt.result()
        except Exception as exc:  # GCS unreachable: the job is handed back unrun
            unrun = exc if isinstance(exc, Transient) else Transient(f"attempt record: {exc}")
            self._post(Executed(prepared, unrun, None, 0.0))
            return
        if self._stop.is_set():
            self._end(prepared, attempt, Stopped("stop requested before the job started"))
            self._post(Executed(prepared, Stopped("stopped before it started"), None, 0.0))
            return
        started = time.monotonic()
        self._post(Started(prepared, started))
        result = None
        try:
            result = self._executor.execute(request)
            error: BaseException | None = None
        except BaseException as exc:  # every ending is the control loop's to classify
            error = exc
        seconds = time.monotonic() - started
        if isinstance(error, JobFailed) or error is None:
            self._release = Task(lambda: self._end(prepared, attempt, error), "release")
        else:
            self._end(prepared, attempt, error)
        self._post(Executed(prepared, error, result, seconds))

    def _begin(self, prepared: Prepared) -> Task[int]:
        """Write this attempt's record while the previous release finishes; in sync mode both
        have landed when this returns (the record's errors surface from ``result()``)."""
        ctx = prepared.ctx

        def record() -> int:
            return self._markers.start(
                ctx.folder,
                prepared.attempt,
                job_id=ctx.job_id,
                message_id=ctx.message_id,
                delivery_attempt=ctx.delivery_attempt,
            )

        task = Task(record, "attempt-record")
        if self._sync:
            if self._release is not None:
                self._release.wait()
                self._release = None
            task.wait()
        return task

    def _end(self, prepared: Prepared, attempt: Task[int], error: BaseException | None) -> None:
        outcome = ending(error)
        if outcome is None:
            return
        try:
            attempt.wait()
            self._markers.release(prepared.ctx.folder, attempt.result(), outcome)
        except Exception as exc:  # the next delivery may count a crash that wasn't one
            logs.event(
                log,
                "attempt release failed",
                logging.WARNING,
                job_id=prepared.ctx.job_id,
                attempt=attempt,
                error=f"{type(exc).__name__}: {safe_str(exc, 300)}",
            )
