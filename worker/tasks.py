"""A one-shot daemon thread with a result, for work the control loop waits on.

Daemon threads (not ``ThreadPoolExecutor``, whose threads are joined at interpreter exit) so that
an executor stuck in native code can't keep the process alive past its SIGTERM grace.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Task(Generic[T]):
    def __init__(self, fn: Callable[[], T], name: str) -> None:
        self._fn = fn
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self.started_at = time.monotonic()
        self.finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to whoever reads the result
            self._error = exc
        finally:
            self.finished_at = time.monotonic()
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def result(self) -> T:
        """The function's return value; re-raises what it raised. Call only when ``done``."""
        assert self._done.is_set(), "Task.result() before the task finished"
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
