"""The running job's limits: when to interrupt it, when to give up on it, and what its end means.

Pure logic for the control loop, which owns the clock: ``deadline`` says when it must look
again, ``check`` what to do at that moment. A stop request or the end of the task budget
interrupts the run and leaves ``stop_grace_s`` for it to end (then it is handed back); the job
timeout interrupts it and leaves ``timeout_grace_s``. A run that outlives its grace has an
executor that ignores interrupts: after a stop that is ``WorkerBroken`` (nack, exit non-zero);
after the timeout the job gets its ``timeout`` result before the process is replaced, so that it
does not come back five times to hold the GPU for ``JOB_TIMEOUT_S`` each. A cancel request
interrupts it like the timeout does, with the same grace, and it ends ``cancelled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from worker.errors import Cancelled, ErrorType, Interrupted, JobFailed, Stopped, WorkerBroken


@dataclass(frozen=True)
class Limits:
    job_timeout_s: float
    stop_at: float  # monotonic time the task budget ends (stop like a SIGTERM)
    stop_grace_s: float  # after an interrupt for a stop: leave time to nack and exit
    timeout_grace_s: float = 30.0  # after an interrupt for the job timeout


class Act(Enum):
    NOTHING = "nothing"
    INTERRUPT = "interrupt"
    GIVE_UP = "give_up"


@dataclass
class Watch:
    limits: Limits
    started_at: float | None = None  # set when the executor starts (after the attempt record)
    why: str | None = None  # "stop", "timeout" or "cancel", once interrupted
    interrupted_at: float = 0.0

    def deadline(self, stopping: bool) -> float | None:
        """The next moment ``check`` may have something to do (None: only events matter)."""
        if self.why is not None:
            grace = self.limits.stop_grace_s if self.why == "stop" else self.limits.timeout_grace_s
            return self.interrupted_at + grace
        if stopping:
            return 0.0
        if self.started_at is None:
            return None
        return min(self.started_at + self.limits.job_timeout_s, self.limits.stop_at)

    def check(self, now: float, stopping: bool) -> Act:
        if self.why is not None:
            deadline = self.deadline(stopping)
            return Act.GIVE_UP if deadline is not None and now >= deadline else Act.NOTHING
        if stopping or now >= self.limits.stop_at:
            self.why = "stop"
        elif self.started_at is not None and now >= self.started_at + self.limits.job_timeout_s:
            self.why = "timeout"
        else:
            return Act.NOTHING
        self.interrupted_at = now
        return Act.INTERRUPT

    def cancel(self, now: float) -> bool:
        """A cancel request for the running job: True when it must be interrupted now (a run
        already interrupted for another reason keeps that reason)."""
        if self.why is not None or self.started_at is None:
            return False
        self.why = "cancel"
        self.interrupted_at = now
        return True

    def outcome(self, error: BaseException | None) -> BaseException | None:
        """What the run's end means: ``Interrupted`` becomes ``Stopped``, ``timeout`` or
        ``cancelled``."""
        if not isinstance(error, Interrupted):
            return error
        if self.why == "cancel":
            return Cancelled("cancelled by a cancel request while it ran: it was interrupted")
        if self.why == "timeout":
            return JobFailed(ErrorType.TIMEOUT, self._timeout_message("was interrupted"))
        return Stopped("interrupted by a stop request")

    def given_up(self) -> BaseException:
        if self.started_at is None:  # still writing its attempt record: it never ran
            return Stopped("stopped before the job started")
        if self.why == "cancel":
            grace = self.limits.timeout_grace_s
            return Cancelled(
                f"cancelled while it ran; it did not stop within {grace:.0f} s of its interrupt",
                halts_worker=True,
            )
        if self.why == "timeout":
            grace = self.limits.timeout_grace_s
            return JobFailed(
                ErrorType.TIMEOUT,
                self._timeout_message(f"did not stop within {grace:.0f} s of its interrupt"),
                halts_worker=True,
            )
        return WorkerBroken(
            f"the executor did not stop within {self.limits.stop_grace_s:.0f} s of an interrupt"
        )

    def _timeout_message(self, what: str) -> str:
        return f"the job ran longer than JOB_TIMEOUT_S={self.limits.job_timeout_s:.0f} s and {what}"
