"""Where an executor's progress updates go: a log line each, and optionally a progress event.

Updates come from inside the run, on the executor's thread (ComfyUI's progress hook). Writing
the line and publishing the event happen on a thread of their own: the Pub/Sub client starts a
thread for each batch it sends, and ``Thread.start`` waits until that thread runs, which on a
busy host is milliseconds of the run's time, every update.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from typing import Any

from worker.adapters.events.base import EventPublisher
from worker.executor.base import Progress, ProgressSink
from worker.obs import logs

log = logging.getLogger(__name__)


class ProgressOut:
    """One thread, started with the first update, that logs and publishes updates in order."""

    def __init__(self, publisher: EventPublisher | None) -> None:
        self._publisher = publisher
        self._queue: queue.SimpleQueue[tuple[str, Progress] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def sink_for(self, job_id: str) -> ProgressSink:
        """A sink for one job's updates. It neither blocks nor raises."""

        def sink(update: Progress) -> None:
            if self._thread is None:
                self._start()
            self._queue.put((job_id, update))

        return sink

    def close(self, timeout_s: float = 1.0) -> None:
        """Write what is queued (for at most ``timeout_s``), then stop the thread."""
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._emit(*item)
            except Exception as exc:  # progress is best effort: never lose the thread
                logs.event(log, "progress update failed", logging.WARNING, error=str(exc))

    def _emit(self, job_id: str, update: Progress) -> None:
        fields: dict[str, Any] = {
            "node_id": update.node_id,
            "value": update.value,
            "total": update.total,
        }
        logs.event(log, "job.progress", job_id=job_id, **fields)
        if self._publisher is not None:
            data = json.dumps({"job_id": job_id, "status": "running", **fields}).encode()
            self._publisher.publish_nowait(data, {"job_id": job_id, "status": "running"})
