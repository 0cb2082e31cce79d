"""The cancel watch: while a job runs, looks for its cancel marker every ``CANCEL_CHECK_S``.

One small thread for the life of the process. The control loop tells it which job runs
(``watch``) and when it ended (``unwatch``); when the marker ``F/.cancel`` appears it posts one
``CancelRequested`` and the loop interrupts the run, which then ends ``cancelled``. A marker
written before the job started is found earlier, off the GPU's path: by the prefetch
(``worker.loop.prepare``) or right after the attempt record (``worker.loop.executing``).

Cost: one GCS metadata read (a class B operation) per running job every ``CANCEL_CHECK_S``
(2 s: 30 a minute); nothing while idle. A read that fails is logged and tried again at the next
interval: a flaky check never fails a job. ``CANCEL_CHECK_S=0`` turns the watch off.
"""

from __future__ import annotations

import functools
import logging
import threading

from worker.adapters.storage.base import ObjectStore
from worker.loop.attempts import cancel_uri
from worker.loop.prepare import Prepared
from worker.message.bounded import safe_str
from worker.obs import logs
from worker.record.eventtypes import CancelRequested, Post, start_thread

log = logging.getLogger(__name__)


class CancelWatch:
    def __init__(self, store: ObjectStore, interval_s: float, post: Post) -> None:
        self._store = store
        self._interval_s = interval_s
        self._post = post
        self._cond = threading.Condition()
        self._job: Prepared | None = None
        self._closed = False

    def start(self) -> None:
        if self._interval_s > 0:
            start_thread("cancel-watch", self._loop, self._post)

    def watch(self, prepared: Prepared) -> None:
        with self._cond:
            self._job = prepared
            self._cond.notify_all()

    def unwatch(self, prepared: Prepared) -> None:
        with self._cond:
            if self._job is prepared:
                self._job = None
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while (job := self._next()) is not None:
            if self._found(job):
                self.unwatch(job)  # one event per job
                self._post(CancelRequested(job))

    def _next(self) -> Prepared | None:
        """The job still running after one interval (waiting while none runs); None: closed."""
        with self._cond:
            while True:
                self._cond.wait_for(lambda: self._closed or self._job is not None)
                job = self._job
                # Interval from when it started (or the previous check), not a fixed tick.
                self._cond.wait_for(functools.partial(self._moved_on, job), self._interval_s)
                if self._is_closed():
                    return None
                if job is not None and self._job is job:
                    return job

    def _is_closed(self) -> bool:
        return self._closed

    def _moved_on(self, job: Prepared | None) -> bool:
        return self._closed or self._job is not job

    def _found(self, job: Prepared) -> bool:
        try:
            return self._store.stat(cancel_uri(job.ctx.folder)) is not None
        except Exception as exc:
            logs.event(
                log,
                "cancel check failed",
                logging.WARNING,
                job_id=job.ctx.job_id,
                error=f"{type(exc).__name__}: {safe_str(exc, 300)}",
            )
            return False
