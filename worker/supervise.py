"""One executor run on its own thread, watched for stop requests, the job timeout and the budget.

The executor runs on a daemon thread so the control loop stays free to notice a SIGTERM. When a
limit is hit it calls ``Executor.interrupt()`` and gives the run a grace period to end; a run that
ignores the interrupt means the executor is broken. ``Interrupted`` is turned into what it means:
``Stopped`` for a stop request or the task budget, a ``timeout`` ``JobFailed`` for the job timeout.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from worker.errors import ErrorType, Interrupted, JobFailed, Stopped, WorkerBroken
from worker.executor.base import ExecRequest, ExecResult, Executor
from worker.tasks import Task

POLL_S = 0.05  # how often a waiting loop looks at its stop flag


@dataclass(frozen=True)
class Limits:
    job_timeout_s: float
    stop_at: float  # monotonic time the task budget ends (stop like a SIGTERM)
    stop_grace_s: float  # after an interrupt for a stop: leave time to nack and exit
    timeout_grace_s: float = 30.0  # after an interrupt for the job timeout


@dataclass(frozen=True)
class Outcome:
    error: BaseException | None  # None: succeeded
    result: ExecResult | None
    seconds: float


class Execution:
    def __init__(
        self, executor: Executor, request: ExecRequest, limits: Limits, stop: threading.Event
    ) -> None:
        self._executor = executor
        self._limits = limits
        self._stop = stop
        self._task = Task(lambda: executor.execute(request), "executor")

    def wait(self) -> Outcome:
        """Block until the run ends (or is given up on); never raises."""
        error, result = self._watch()
        finished = self._task.finished_at or time.monotonic()
        return Outcome(error, result, finished - self._task.started_at)

    def _watch(self) -> tuple[BaseException | None, ExecResult | None]:
        limits = self._limits
        deadline = self._task.started_at + limits.job_timeout_s
        why: str | None = None
        interrupted_at = 0.0
        while not self._task.wait(POLL_S):
            now = time.monotonic()
            if why is None:
                if self._stop.is_set() or now >= limits.stop_at:
                    why = "stop"
                elif now >= deadline:
                    why = "timeout"
                if why is not None:
                    interrupted_at = now
                    self._executor.interrupt()
            else:
                grace = limits.stop_grace_s if why == "stop" else limits.timeout_grace_s
                if now - interrupted_at > grace:
                    return WorkerBroken(
                        f"the executor did not stop within {grace:.0f} s of an interrupt"
                    ), None
        try:
            return None, self._task.result()
        except Interrupted:
            if why == "timeout":
                return JobFailed(
                    ErrorType.TIMEOUT,
                    f"the job ran longer than JOB_TIMEOUT_S={limits.job_timeout_s:.0f} s and "
                    "was interrupted",
                ), None
            return Stopped("interrupted by a stop request"), None
        except Exception as exc:
            return exc, None
