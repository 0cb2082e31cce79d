"""The one place that decides what happens to a message, from the failure class of its outcome.

``decide`` is pure: it maps an outcome (``None`` for success, or the exception that ended the job)
to a ``Decision``. The runner applies decisions and nothing else in the worker acks or nacks.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from enum import Enum

from worker import logs
from worker.errors import JobFailed, ServiceUnavailable, Stopped, Transient, WorkerBroken
from worker.job import Delivery
from worker.sources.base import JobSource
from worker.tracing import NO_TRACER, Tracer

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
        return Decision(Action.ACK, record_result=True, halt=Halt.NO)
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
    """Applies decisions to messages: the only caller of ``JobSource.ack`` and ``nack``."""

    def __init__(self, source: JobSource, health: Health, tracer: Tracer = NO_TRACER) -> None:
        self._source = source
        self._health = health
        self._tracer = tracer

    def settle(
        self,
        delivery: Delivery,
        decision: Decision,
        job_id: str,
        reason: BaseException | None = None,
    ) -> None:
        started = time.monotonic()
        try:
            if decision.action is Action.ACK:
                self._source.ack(delivery)
            else:
                self._source.nack(delivery)
        except Exception as exc:
            # A lost ack means a redelivery, which finds result.json and only re-publishes;
            # a lost nack means redelivery when the lease lapses. Neither loses the job.
            logs.event(
                log,
                f"{decision.action.value} failed",
                logging.WARNING,
                job_id=job_id,
                error=f"{type(exc).__name__}: {exc}",
            )
        self._tracer.settled(delivery, decision.action.value, started)
        if decision.action is Action.NACK:
            logs.event(
                log,
                "job.nacked",
                logging.WARNING if decision.halt is Halt.NO else logging.INFO,
                job_id=job_id,
                halt=decision.halt.value,
                reason=f"{type(reason).__name__}: {reason}" if reason else None,
                delivery_attempt=delivery.delivery_attempt,
            )
        self._health.record(decision)
