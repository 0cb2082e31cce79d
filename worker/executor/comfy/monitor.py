"""Watch one run: node timings, throttled progress, and re-raising an early interrupt. Pure code.

ComfyUI reports a run through ``PromptServer.send_sync(event, data)`` (``execution_start``,
``executing`` when a node starts, ``executed``, ...) and through the progress-bar hook (a node's
own steps, e.g. sampler steps). The executor routes both to the run's ``RunMonitor``.

Progress updates are ``Progress(job, node, value, total)``: a node starting is ``(node, 0, 1)``,
a node reporting steps is ``(node, step, steps)``. At most one update per ``interval_s`` is passed
on, plus the last step of each node, so a 1000-step node does not flood logs or Pub/Sub.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from worker.executor.base import Progress, ProgressSink
from worker.obs import logs

log = logging.getLogger(__name__)


class RunMonitor:
    def __init__(
        self,
        job_id: str,
        sink: ProgressSink | None,
        interval_s: float,
        on_start: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.job_id = job_id
        self._sink = sink
        self._interval_s = interval_s
        self._on_start = on_start
        self._clock = clock
        self._last_emit: float | None = None
        self._sink_failed = False
        self._current: tuple[str, float] | None = None  # (node id, started at)
        self._durations: dict[str, float] = {}
        self.cached: list[str] = []
        self.events = 0

    def event(self, name: str, data: Mapping[str, Any] | Any) -> None:
        """One ``send_sync`` message from ComfyUI."""
        self.events += 1
        if not isinstance(data, Mapping):
            return  # binary preview frames
        if name == "execution_start" and self._on_start is not None:
            self._on_start()
        elif name == "execution_cached":
            self.cached = [str(n) for n in data.get("nodes") or ()]
        elif name == "executing":
            node = data.get("node")
            self._close_current()
            if node is not None:
                self._current = (str(node), self._clock())
                self._emit(str(node), 0.0, 1.0, force=False)

    def step(self, node_id: str | None, value: float, total: float) -> None:
        """One progress-bar update from inside a node."""
        if node_id is None and self._current is not None:
            node_id = self._current[0]
        done = total > 1 and value >= total
        self._emit(node_id, float(value), float(total), force=done)

    def finish(self) -> dict[str, float]:
        """Seconds per executed node (cached nodes are absent). Call once, when the run ends."""
        self._close_current()
        return {node: round(seconds, 6) for node, seconds in self._durations.items()}

    def _close_current(self) -> None:
        if self._current is not None:
            node, started = self._current
            # A node that waits on another (lazy inputs, async) runs in several slices.
            self._durations[node] = self._durations.get(node, 0.0) + self._clock() - started
            self._current = None

    def _emit(self, node_id: str | None, value: float, total: float, force: bool) -> None:
        if self._sink is None:
            return
        now = self._clock()
        if not force and self._last_emit is not None and now - self._last_emit < self._interval_s:
            return
        self._last_emit = now
        try:
            self._sink(Progress(self.job_id, node_id, value, total))
        except Exception as exc:  # a failing progress consumer must not fail the job
            if not self._sink_failed:
                self._sink_failed = True
                logs.event(
                    log,
                    "progress.sink_failed",
                    logging.WARNING,
                    job_id=self.job_id,
                    error=f"{type(exc).__name__}: {exc}",
                )
