"""What happens to a message, from the failure class of its outcome.

``decide`` is pure: it maps an outcome (``None`` for success, or the exception that ended the job)
to a ``Decision``; ``final`` turns a transient fault on the last delivery attempt into a
``retries_exhausted`` failure. The runner's control loop alone calls them and hands the ack or
nack to the ``Settler``, whose thread is the only caller of ``JobSource.ack`` and ``nack`` (the
calls are RPCs: they must not hold up the loop that watches stop requests and deadlines).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from enum import Enum

from worker.adapters.sources.base import JobSource
from worker.errors import (
    ErrorType,
    JobFailed,
    ServiceUnavailable,
    Stopped,
    Transient,
    WorkerBroken,
)
from worker.loop.prepare import Prepared
from worker.message.bounded import safe_str
from worker.message.job import Delivery
from worker.obs import logs
from worker.obs.tracing import NO_TRACER, Tracer
from worker.record.eventtypes import Post, start_thread

log = logging.getLogger(__name__)


class Action(Enum):
    ACK = "ack"  # finished for good: never deliver again
    NACK = "nack"  # give back now (ack deadline 0): another attempt takes it


class Halt(Enum):
    """Whether the process must stop after this outcome, and why."""

    NO = "no"
    STOP = "stop"  # a stop was requested: exit (0 in queue mode)
    BROKEN = "broken"  # this process can't run jobs: exit non-zero, Cloud Run replaces it
    UNAVAILABLE = "unavailable"  # Pub/Sub or GCS unreachable past the retry budget


@dataclass(frozen=True)
class Decision:
    action: Action
    record_result: bool  # write result.json and publish the completion event before acking
    halt: Halt
    counts_as_transient: bool = False


def decide(outcome: BaseException | None) -> Decision:
    """Map a job's outcome to ack/nack, result or not, and whether the process goes on."""
    if outcome is None:
        return Decision(Action.ACK, record_result=True, halt=Halt.NO)
    if isinstance(outcome, JobFailed):
        # The job is wrong (or failed for good): retrying would burn GPU time for nothing.
        halt = Halt.BROKEN if outcome.halts_worker else Halt.NO
        return Decision(Action.ACK, record_result=True, halt=halt)
    if isinstance(outcome, Stopped):
        return Decision(Action.NACK, record_result=False, halt=Halt.STOP)
    if isinstance(outcome, Transient):
        # Pub/Sub redelivers with the subscription's backoff; dead-letters after N attempts.
        return Decision(Action.NACK, record_result=False, halt=Halt.NO, counts_as_transient=True)
    if isinstance(outcome, ServiceUnavailable):
        return Decision(Action.NACK, record_result=False, halt=Halt.UNAVAILABLE)
    if isinstance(outcome, WorkerBroken):
        return Decision(Action.NACK, record_result=False, halt=Halt.BROKEN)
    # An exception nobody classified is a bug in this process, not in the job: don't record a
    # failure the user can't act on; give the message back and let a fresh instance take it
    # (a message that breaks every worker ends on the dead-letter topic after N attempts).
    return Decision(Action.NACK, record_result=False, halt=Halt.BROKEN)


def final(outcome: BaseException | None, delivery: Delivery) -> BaseException | None:
    """On the last delivery attempt a transient fault fails the job for good
    (``retries_exhausted``), so that the dead-letter topic never holds a job its sender can't
    see. Other outcomes are unchanged."""
    if not isinstance(outcome, Transient) or not delivery.final_attempt:
        return outcome
    return JobFailed(
        ErrorType.RETRIES_EXHAUSTED,
        f"a transient fault outlasted all {delivery.delivery_attempt} delivery attempts "
        f"(MAX_DELIVERY_ATTEMPTS); the last one: {safe_str(outcome, 1000)}",
    )


class Health:
    """Outcomes that concern the whole process, shared by the control loop and the finisher."""

    def __init__(self, max_consecutive_transient: int) -> None:
        self._limit = max_consecutive_transient
        self._lock = threading.Lock()
        self._transient_streak = 0
        self._halt = Halt.NO

    def record(self, decision: Decision) -> None:
        with self._lock:
            if decision.counts_as_transient:
                self._transient_streak += 1
                if self._transient_streak >= self._limit and self._halt is Halt.NO:
                    # Every job is failing the same way: stop spending delivery attempts (each
                    # one moves a job closer to the dead-letter topic) and let Cloud Run retry.
                    self._halt = Halt.UNAVAILABLE
            elif decision.action is Action.ACK:
                self._transient_streak = 0
            if decision.halt in (Halt.BROKEN, Halt.UNAVAILABLE) and self._halt is Halt.NO:
                self._halt = decision.halt

    @property
    def halt(self) -> Halt:
        with self._lock:
            return self._halt


class Settler:
    """Applies the control loop's decisions on its own thread: the only caller of
    ``JobSource.ack`` and ``nack``. Also removes the job's working directory afterwards."""

    def __init__(self, source: JobSource, post: Post, tracer: Tracer = NO_TRACER) -> None:
        self._source = source
        self._post = post
        self._tracer = tracer
        self._queue: queue.SimpleQueue[tuple[Prepared, Decision, BaseException | None] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = start_thread("settler", self._run, self._post)

    def submit(self, prepared: Prepared, decision: Decision, reason: BaseException | None) -> None:
        self._queue.put((prepared, decision, reason))

    def close(self, timeout_s: float) -> bool:
        """Apply what is queued within ``timeout_s``; True when all of it was."""
        self._queue.put(None)
        if self._thread is None:
            return True
        self._thread.join(max(0.0, timeout_s))
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            prepared, decision, reason = item
            try:
                self._apply(prepared.delivery, decision, prepared.ctx.job_id, reason)
            finally:
                prepared.cleanup()

    @staticmethod
    def _source_call(source: JobSource, decision: Decision, delivery: Delivery) -> None:
        if decision.action is Action.ACK:
            source.ack(delivery)
        else:
            source.nack(delivery)

    def _apply(
        self, delivery: Delivery, decision: Decision, job_id: str, reason: BaseException | None
    ) -> None:
        started = time.monotonic()
        try:
            self._source_call(self._source, decision, delivery)
        except Exception as exc:
            # A lost ack means a redelivery, which finds result.json and only re-publishes;
            # a lost nack means redelivery when the lease lapses. Neither loses the job.
            logs.event(
                log,
                f"{decision.action.value} failed",
                logging.WARNING,
                job_id=job_id,
                error=f"{type(exc).__name__}: {safe_str(exc, 500)}",
                elapsed_s=round(time.monotonic() - started, 3),
            )
        self._tracer.settled(delivery, decision.action.value, started)
        if decision.action is Action.NACK:
            logs.event(
                log,
                "job.nacked",
                logging.WARNING if decision.halt is Halt.NO else logging.INFO,
                job_id=job_id,
                halt=decision.halt.value,
                reason=f"{type(reason).__name__}: {safe_str(reason, 1000)}" if reason else None,
                delivery_attempt=delivery.delivery_attempt,
            )
