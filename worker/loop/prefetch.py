"""The prefetch thread: pulls one message when the control loop allows it, and prepares it.

The control loop grants one pull at a time (``permit``), only while no runnable job is waiting:
at most one message is held beyond the one executing. Preparing (parse, namespace, ledger,
staging) happens here, off the GPU's path; whatever a message holds, it comes back as a
``Pulled`` event, never as an exception.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from worker.adapters.sources.base import JobSource
from worker.errors import ErrorType, JobFailed
from worker.loop.prepare import Prepared, Preparer
from worker.message.bounded import safe_str
from worker.message.job import Delivery
from worker.obs import logs
from worker.record.eventtypes import Post, Pulled, PullEmpty, PullFailed, start_thread
from worker.record.result import JobContext, job_folder

log = logging.getLogger(__name__)


class Prefetcher:
    def __init__(
        self,
        source: JobSource,
        preparer: Preparer,
        output_uri: str,
        pull_s: float,
        post: Post,
        stop: threading.Event,
    ) -> None:
        self._source = source
        self._preparer = preparer
        self._output_uri = output_uri
        self._pull_s = pull_s
        self._post = post
        self._stop = stop
        self._permits: queue.SimpleQueue[bool] = queue.SimpleQueue()

    def start(self) -> None:
        start_thread("prefetch", self._loop, self._post)

    def permit(self) -> None:
        """Allow one pull; answered by exactly one ``Pulled``, ``PullEmpty`` or ``PullFailed``."""
        self._permits.put(True)

    def close(self) -> None:
        self._permits.put(False)

    def _loop(self) -> None:
        while self._permits.get():
            pulled_at = time.monotonic()
            try:
                delivery = self._source.receive(self._pull_s)
            except Exception as exc:
                self._post(PullFailed(exc))
                continue
            if delivery is None:
                self._post(PullEmpty())
                continue
            self._post(Pulled(self._prepare(delivery), pulled_at))

    def _prepare(self, delivery: Delivery) -> Prepared:
        try:
            return self._preparer.prepare(delivery, self._stop)
        except Exception as exc:  # a bug in preparing: still this message's failure alone
            logs.event(
                log,
                "prepare failed",
                logging.ERROR,
                exc_info=True,
                message_id=delivery.message_id,
                error=f"{type(exc).__name__}: {safe_str(exc, 500)}",
            )
            mid = delivery.message_id
            folder = job_folder(self._output_uri, "", mid)
            ctx = JobContext(mid, mid, delivery.delivery_attempt, folder)
            error = JobFailed(
                ErrorType.INVALID_JOB,
                f"the message could not be prepared ({type(exc).__name__}: {safe_str(exc, 300)})",
            )
            return Prepared(delivery, ctx, early=error)
