"""A lane: one long-lived daemon thread that runs calls in order and returns futures.

For small writes that must overlap each other (an attempt record and the previous attempt's
release). A thread per call would cost a thread start and, worse, a new storage client and
connection each time (``GcsStore`` keeps one client per thread): several milliseconds on the
GPU's path instead of one round trip.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class Lane:
    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future

    def close(self, wait_s: float = 0.0) -> None:
        """No more calls; wait up to ``wait_s`` (real time) for those queued to end."""
        self._queue.put(None)
        if wait_s > 0 and self._thread is not None:
            self._thread.join(wait_s)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:  # handed to whoever reads the future
                future.set_exception(exc)
