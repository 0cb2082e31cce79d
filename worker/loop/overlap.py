"""When the executor was busy: how much of a job's model fetch overlapped another job's run.

``BusyExecutor`` wraps the executor the executor thread calls and marks each run's start and
end on a ``BusyClock``; the preparer asks the clock how much of a fetch's span fell inside runs
(``models_overlap_s`` in the result: of ``models_s``, the seconds the GPU was not waiting).
"""

from __future__ import annotations

import threading
import time
from collections import deque

from worker.executor.base import ExecRequest, ExecResult, Executor

SPANS = 8  # recent runs kept: a fetch overlaps the run in progress and maybe the one before


class BusyClock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spans: deque[tuple[float, float]] = deque(maxlen=SPANS)
        self._since: float | None = None

    def begin(self) -> None:
        with self._lock:
            self._since = time.monotonic()

    def end(self) -> None:
        with self._lock:
            if self._since is not None:
                self._spans.append((self._since, time.monotonic()))
            self._since = None

    def overlap(self, start: float, end: float) -> float:
        """Seconds of ``start``..``end`` (monotonic) during which a run was in progress."""
        with self._lock:
            spans = list(self._spans)
            if self._since is not None:
                spans.append((self._since, time.monotonic()))
        return sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)


class BusyExecutor:
    """``executor`` with its runs marked on ``clock``; everything else passes through."""

    def __init__(self, executor: Executor, clock: BusyClock) -> None:
        self._executor = executor
        self._clock = clock

    def start(self) -> None:
        self._executor.start()

    def execute(self, request: ExecRequest) -> ExecResult:
        self._clock.begin()
        try:
            return self._executor.execute(request)
        finally:
            self._clock.end()

    def interrupt(self) -> None:
        self._executor.interrupt()

    def close(self) -> None:
        self._executor.close()
