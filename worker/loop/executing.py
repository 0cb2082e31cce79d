"""The executor's one long-lived thread: runs jobs one at a time, with their attempt markers.

One thread for the life of the process (not one per job): a thread per job costs a start each
time, and ComfyUI keeps state per thread in places (its event loop, CUDA streams).

Markers around each run (``worker.loop.attempts``), with crash accounting on
(``MAX_CRASHED_ATTEMPTS`` > 0): a job's attempt record must be durable before it runs, and the
previous attempt's release before the next one starts (else a crash of the next one would be blamed
on the previous). To keep a single small write on the GPU's path, the record of a job handed over
while another runs is written during that run, naming it as ``after``: it counts as a crash only if
that one was released (``attempts.history``). So between two jobs only the release is waited for. A
run that ended with ``WorkerBroken`` gets no release: it counts as crashed. A release for a message
to be handed back is written before the nack. With accounting off, markers go in the background and
are written after the next job has started. With the executor in a process of its own
(``isolated``) a crash of the next run ends that process, not this one, which goes on writing the
release beside the run: the release leaves the GPU's path (only the death of the worker's own
process in those milliseconds would still blame the job before).

``run`` is called by the control loop; the job queued behind the running one starts the moment
that one ends, without a round trip through the loop, unless a stop came, ``start_by`` passed,
or the run before broke the executor.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from worker.errors import Interrupted, JobFailed, Stopped, Transient
from worker.executor.base import ExecRequest, Executor
from worker.loop import attempts
from worker.loop.attempts import Markers
from worker.loop.clock import SYSTEM, Clock
from worker.loop.lanes import Lane
from worker.loop.prepare import Prepared
from worker.message.bounded import safe_str
from worker.obs import logs
from worker.record.eventtypes import Executed, Post, Started, start_thread

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


@dataclass
class _Queued:
    prepared: Prepared
    request: ExecRequest
    start_by: float
    record: Future[int] | None  # written while the job before it ran
    cancel: Future[bool] | None = None  # its cancel marker, looked for once the record is written


class ExecutorThread:
    def __init__(
        self,
        executor: Executor,
        markers: Markers,
        post: Post,
        stop: threading.Event,
        sync: bool,
        isolated: bool = False,
        clock: Clock = SYSTEM,
    ) -> None:
        self._now = clock.monotonic  # start_by is the control loop's deadline, on its clock
        self._executor = executor
        self._markers = markers
        self._post = post
        self._stop = stop
        self._sync = sync
        self._isolated = isolated
        self._inbox: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._records = Lane("attempt-records")
        self._releases = Lane("attempt-releases")
        self._released = True  # whether the previous attempt's release was written
        self._later: Callable[[], bool] | None = None  # background: once the next has started
        self._broken = False  # the last run took the executor down: start nothing more

    def start(self) -> None:
        start_thread("executor", self._loop, self._post)

    def run(
        self,
        prepared: Prepared,
        request: ExecRequest,
        start_by: float,
        after: tuple[str, int] | None = None,
    ) -> None:
        """Run ``request`` after whatever is queued, unless stopped, past ``start_by``
        (monotonic) or after a run that broke the executor: then it ends as ``Stopped``.
        ``after`` is the (folder, attempt) of the running job it will follow."""
        record = cancel = None
        if self._sync and after is not None:
            record = self._records.submit(functools.partial(self._record, prepared, after))
            cancel = self._records.submit(functools.partial(self._cancel_requested, prepared))
        self._inbox.put(_Queued(prepared, request, start_by, record, cancel))

    def close(self, wait_s: float = 0.0) -> None:
        """Stop; wait up to ``wait_s`` for releases still being written (with an isolated
        executor the last job's is written beside nothing, and the process is about to end)."""
        self._inbox.put(None)
        self._records.close()
        self._flush_later()
        self._releases.close(wait_s)

    def _loop(self) -> None:
        while (item := self._inbox.get()) is not None:
            self._one(item)

    def _one(self, item: _Queued) -> None:
        prepared = item.prepared
        if self._broken or self._stop.is_set() or self._now() > item.start_by:
            why = "the executor broke" if self._broken else "a stop or the task budget"
            self._not_started(item, Stopped(f"not started: {why}"))
            return
        record = item.record or self._records.submit(
            functools.partial(self._record, prepared, None)
        )
        cancel = item.cancel
        if cancel is None and self._sync:
            cancel = self._records.submit(functools.partial(self._cancel_requested, prepared))
        try:
            attempt = self._ready(record)
        except Exception as exc:  # GCS unreachable: the job is handed back unrun
            unrun = exc if isinstance(exc, Transient) else Transient(f"attempt markers: {exc}")
            self._not_started(item, unrun, record)
            return
        if self._stop.is_set():
            self._not_started(item, Stopped("stopped before it started"), record)
            return
        if cancel is not None and cancel.result():
            self._not_started(item, attempts.cancelled_error(prepared.ctx.folder), record)
            return
        started = self._now()
        self._post(Started(prepared, started, attempt))
        self._flush_later()
        result = None
        try:
            result = self._executor.execute(item.request)
            error: BaseException | None = None
        except BaseException as exc:  # every ending is the control loop's to classify
            error = exc
        seconds = self._now() - started
        self._broken = ending(error) is None
        release = functools.partial(self._end, prepared, record, error)
        if (self._sync and not self._isolated) or (
            not isinstance(error, JobFailed) and error is not None
        ):
            # Before the next job starts, and before a hand-back's nack (so that no crash is
            # counted); written from this thread, while the control loop still sleeps.
            self._released = release()
        elif self._isolated or self._inbox.empty():
            # Isolated: a crash of the next run can't stop this write, so at once, beside it.
            self._releases.submit(release)
        else:
            self._later = release
        self._post(Executed(prepared, error, result, seconds))

    def _ready(self, record: Future[int]) -> int | None:
        """In sync mode, wait until the record is durable (the previous release already is)."""
        if not self._sync:
            return None
        if not self._released:
            self._released = True
            raise Transient("the previous attempt's release marker could not be written")
        return record.result()

    def _not_started(
        self, item: _Queued, error: BaseException, record: Future[int] | None = None
    ) -> None:
        self._flush_later()
        record = record or item.record
        if record is not None:  # a record written for nothing: release it (it never ran)
            self._end(item.prepared, record, Stopped("not started"))
        self._post(Executed(item.prepared, error, None, 0.0))

    def _flush_later(self) -> None:
        if self._later is not None:
            later, self._later = self._later, None
            self._releases.submit(later)

    def _record(self, prepared: Prepared, after: tuple[str, int] | None) -> int:
        ctx = prepared.ctx
        return self._markers.start(
            ctx.folder,
            prepared.attempt,
            job_id=ctx.job_id,
            message_id=ctx.message_id,
            delivery_attempt=ctx.delivery_attempt,
            after=after,
        )

    def _cancel_requested(self, prepared: Prepared) -> bool:
        """Looked for right after the attempt record is written (on the same lane): a ``cancel``
        writes its marker and then reads the records, so one of the two sees the other."""
        try:
            return self._markers.cancel_requested(prepared.ctx.folder)
        except Exception as exc:  # the watch looks again while it runs
            logs.event(
                log,
                "cancel check failed",
                logging.WARNING,
                job_id=prepared.ctx.job_id,
                error=f"{type(exc).__name__}: {safe_str(exc, 300)}",
            )
            return False

    def _end(self, prepared: Prepared, record: Future[int], error: BaseException | None) -> bool:
        """Write the release of ``record``'s attempt; False when it could not be written."""
        outcome = ending(error)
        if outcome is None:
            return True
        try:
            self._markers.release(prepared.ctx.folder, record.result(), outcome)
        except Exception as exc:  # the next delivery may count a crash that wasn't one
            logs.event(
                log,
                "attempt release failed",
                logging.WARNING,
                job_id=prepared.ctx.job_id,
                error=f"{type(exc).__name__}: {safe_str(exc, 300)}",
            )
            return False
        return True
