"""The job loop: receive -> prepare -> execute -> finish, until a reason to exit.

Three things overlap so that the executor (the GPU) never waits on the worker:
- while job N executes, one more message is pulled and prepared (parsed, checked for an existing
  result, inputs staged) on the ``prefetch`` thread;
- job N-1's outputs, ``result.json``, event and ack are handled by the ``Finisher`` thread;
- the control loop (this module, on the caller's thread) only hands work between them and watches
  for stop requests, the job timeout and the task budget.

At most one message is held beyond the one executing, and only while a job runs; an idle worker
holds at most the message its pull just returned. Every outcome goes through
``worker.settle.decide``; the ``Settler`` is the only thing that acks or nacks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import Any

from worker import logs, metrics, progress, supervise
from worker.config import Settings
from worker.errors import ConfigError, ServiceUnavailable, Stopped
from worker.events.base import EventPublisher
from worker.executor.base import ExecRequest, Executor
from worker.finisher import Finished, Finisher
from worker.parse import Parser
from worker.prepare import Prepared, existing_result, prepare
from worker.settle import Halt, Health, Settler, decide
from worker.sources.base import JobSource
from worker.storage.base import ObjectStore
from worker.supervise import POLL_S, Execution
from worker.tasks import Task
from worker.tracing import NO_TRACER, Tracer

log = logging.getLogger(__name__)


class ExitReason(Enum):
    IDLE = "idle"  # nothing to do for IDLE_EXIT_S
    MAX_JOBS = "max_jobs"
    BUDGET = "budget"  # the task's time budget (TASK_TIMEOUT_S - STOP_MARGIN_S) ran out
    DRAINED = "drained"  # a finite source (manifest) has no more work
    STOPPED = "stopped"  # stop() was called (SIGTERM)
    BROKEN = "broken"  # the executor can't run jobs
    UNAVAILABLE = "unavailable"  # Pub/Sub or GCS unreachable
    CONFIG = "config"  # the executor found a configuration error while starting


@dataclass(frozen=True)
class Acquired:
    prepared: Prepared | None  # a runnable job, or None
    saw_work: bool  # some message arrived (maybe settled without running)
    empty: bool  # the source had nothing: for a finite source, the work is done


class Runner:
    def __init__(
        self,
        settings: Settings,
        source: JobSource,
        executor: Executor,
        store: ObjectStore,
        publisher: EventPublisher,
        parser: Parser,
        *,
        progress_publisher: EventPublisher | None = None,
        started_at: float | None = None,
        tracer: Tracer = NO_TRACER,
    ) -> None:
        self._tracer = tracer
        self._settings = settings
        self._t = settings.timeouts
        self._source = source
        self._executor = executor
        self._store = store
        self._parser = parser
        self._progress_publisher = progress_publisher
        self._started_at = started_at if started_at is not None else time.monotonic()
        self._health = Health(settings.max_consecutive_transient)
        self._settler = Settler(source, self._health, tracer)
        self._finisher = Finisher(store, publisher, self._settler, settings.identity, tracer=tracer)
        self._meter = settings.cost.meter(self._started_at)  # cost share-out (worker.cost)
        self._stop = threading.Event()
        self._stop_requested_at: float | None = None
        self._taken = 0  # messages received (bounds prefetching under MAX_JOBS)
        self._handled = 0  # messages finished with (MAX_JOBS counts these)
        self._count_lock = threading.Lock()
        self._recent_exec_s: deque[float] = deque(maxlen=5)
        self._pending: Task[Acquired] | None = None
        self._interrupted: tuple[Prepared, BaseException | None] | None = None
        self._last_work = time.monotonic()
        self._limits = supervise.Limits(
            job_timeout_s=self._t.job_s,
            stop_at=self._stop_at(),
            # On a stop, leave time inside Cloud Run's 10 s to nack and exit.
            stop_grace_s=max(1.0, self._t.shutdown_grace_s - 2.0),
        )
        self.jobs_executed = 0

    # -- public -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop: no more pulls, the running job is interrupted and nacked.
        Safe to call from a signal handler (it only sets a flag)."""
        if self._stop_requested_at is None:
            self._stop_requested_at = time.monotonic()
        self._stop.set()

    def run(self) -> ExitReason:
        try:
            self._executor.start()
        except Exception as exc:
            logs.event(
                log, "executor failed to start", logging.ERROR, error=f"{type(exc).__name__}: {exc}"
            )
            self._finisher.close(1.0)
            self._source.close()
            # A bad setting found while booting (say, an invalid warmup workflow) is the user's
            # to fix: a retry of the task would fail the same way.
            return ExitReason.CONFIG if isinstance(exc, ConfigError) else ExitReason.BROKEN
        logs.event(log, "worker.ready", boot_s=round(time.monotonic() - self._started_at, 3))
        self._last_work = time.monotonic()  # idleness counts from ready, not from boot
        reason = ExitReason.BROKEN
        try:
            reason = self._loop()
        finally:
            self._shutdown(reason)
        logs.event(
            log,
            "worker.exit",
            reason=reason.value,
            jobs_executed=self.jobs_executed,
            uptime_s=round(time.monotonic() - self._started_at, 3),
            **self._meter.tail_fields(),
        )
        return reason

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> ExitReason:
        while True:
            reason = self._exit_reason()
            if reason is not None:
                return reason
            if self._pending is None:
                self._pending = Task(self._acquire, "prefetch")
            if not self._wait(self._pending):
                continue  # stop requested while pulling: _exit_reason says so next
            task, self._pending = self._pending, None
            try:
                got = task.result()
            except ServiceUnavailable as exc:
                logs.event(log, "job source unavailable", logging.ERROR, error=str(exc))
                return ExitReason.UNAVAILABLE
            except Exception as exc:
                logs.event(
                    log,
                    "receiving failed",
                    logging.ERROR,
                    error=f"{type(exc).__name__}: {exc}",
                    exc_info=True,
                )
                return ExitReason.BROKEN
            if got.saw_work:
                self._last_work = time.monotonic()
            if got.prepared is not None:
                self._run_one(got.prepared)
            elif got.empty and self._source.finite:
                return ExitReason.DRAINED

    def _exit_reason(self) -> ExitReason | None:
        halt = self._health.halt
        if halt is Halt.BROKEN:
            return ExitReason.BROKEN
        if halt is Halt.UNAVAILABLE:
            return ExitReason.UNAVAILABLE
        if self._stop.is_set():
            return ExitReason.STOPPED
        if self._settings.max_jobs and self._handled >= self._settings.max_jobs:
            return ExitReason.MAX_JOBS
        if not self._time_for_another_job():
            return ExitReason.BUDGET
        idle_s = time.monotonic() - self._last_work
        if self._pending is None and idle_s >= self._t.idle_exit_s and not self._source.finite:
            return ExitReason.IDLE
        return None

    def _time_for_another_job(self) -> bool:
        """Start a job only if, judging by recent ones, it can end before the budget does."""
        expected = max(self._recent_exec_s, default=0.0)
        return time.monotonic() + expected < self._stop_at()

    def _stop_at(self) -> float:
        return self._started_at + self._t.task_s - self._t.stop_margin_s

    def _wait(self, task: Task[Any]) -> bool:
        """Wait for ``task`` unless a stop is requested first. True when it finished."""
        while not task.wait(POLL_S):
            if self._stop.is_set():
                return False
        return True

    # -- receiving ---------------------------------------------------------------------------

    def _acquire(self) -> Acquired:
        """On the prefetch thread: pull until a runnable job, an empty pull, or a stop.

        Messages that end before execution (refused, already done, bad inputs) are settled
        here, so a burst of bad messages never makes the executor wait.
        """
        saw_work = False
        while not self._stop.is_set() and self._may_take():
            pulled = time.monotonic()
            delivery = self._source.receive(self._t.pull_s)
            if delivery is None:
                return Acquired(None, saw_work, empty=True)
            saw_work = True
            with self._count_lock:
                self._taken += 1
            prepared = prepare(delivery, self._parser, self._store, self._settings)
            self._tracer.received(
                delivery, prepared.ctx.job_id, pulled, prepared.received_at, prepared.inputs_s
            )
            logs.event(
                log,
                "job.received",
                job_id=prepared.ctx.job_id,
                message_id=delivery.message_id,
                delivery_attempt=delivery.delivery_attempt,
                form=prepared.job.form if prepared.job else None,
                inputs_s=round(prepared.inputs_s, 4),
            )
            if prepared.runnable:
                if self._stop.is_set():
                    self._settle_unrun(prepared, Stopped("stop requested before the job ran"))
                    return Acquired(None, saw_work, empty=False)
                return Acquired(prepared, saw_work, empty=False)
            self._settle_unrun(prepared, prepared.early)
            self._count_handled()
        return Acquired(None, saw_work, empty=False)

    def _count_handled(self) -> None:
        with self._count_lock:
            self._handled += 1

    def _may_take(self) -> bool:
        max_jobs = self._settings.max_jobs
        return (not max_jobs or self._taken < max_jobs) and self._time_for_another_job()

    def _settle_unrun(self, prepared: Prepared, outcome: BaseException | None) -> None:
        decision = decide(outcome)
        if decision.record_result:  # refused / bad input: a failed result, or a re-publish
            self._record(Finished(prepared, outcome))
        else:
            self._settler.settle(prepared.delivery, decision, prepared.ctx.job_id, outcome)
            prepared.cleanup()

    # -- executing ---------------------------------------------------------------------------

    def _run_one(self, prepared: Prepared) -> None:
        try:
            self._execute(prepared)
        finally:
            self._count_handled()

    def _execute(self, prepared: Prepared) -> None:
        assert prepared.job is not None
        job = prepared.job
        if self._is_duplicate_of_recent(prepared):
            return
        request = ExecRequest(
            job.job_id,
            job.workflow,
            prepared.input_dir,
            prepared.output_dir,
            progress=progress.sink_for(job.job_id, self._progress_publisher),
        )
        logs.event(
            log,
            "job.started",
            job_id=job.job_id,
            inputs_s=round(prepared.inputs_s, 4),
            delivery_attempt=prepared.ctx.delivery_attempt,
            waited_s=round(time.monotonic() - prepared.received_at, 4),
            **metrics.queue_fields(prepared.delivery),
        )
        execution = Execution(self._executor, request, self._limits, self._stop)
        # Only now, with a job running, may one more message be pulled.
        if self._pending is None and not self._stop.is_set():
            self._pending = Task(self._acquire, "prefetch")
        ran = execution.wait()
        self._tracer.phase(prepared.delivery.message_id, "execute", time.monotonic() - ran.seconds)
        outcome = ran.error
        self.jobs_executed += 1
        self._recent_exec_s.append(ran.seconds)
        self._last_work = time.monotonic()
        decision = decide(outcome)
        if decision.record_result:
            cost = self._meter.charge(ran.seconds)
            self._record(Finished(prepared, outcome, ran.result, ran.seconds, cost))
        elif decision.halt is Halt.STOP:
            # Nacked in _shutdown, after the prefetch pull returns: nacked now, the message
            # would go straight back to that pull and cost a second delivery attempt.
            self._interrupted = (prepared, outcome)
        else:
            self._settler.settle(prepared.delivery, decision, job.job_id, outcome)
            prepared.cleanup()

    def _record(self, item: Finished) -> None:
        """Hand a job to the finisher; if stopping while it is full, give the message back."""
        if not self._finisher.submit(item, self._stop):
            stopped = Stopped("stopping while results were still being recorded")
            self._settler.settle(
                item.prepared.delivery, decide(stopped), item.prepared.ctx.job_id, stopped
            )
            item.prepared.cleanup()

    def _is_duplicate_of_recent(self, prepared: Prepared) -> bool:
        """Was this job id run here a moment ago (prepared before its result.json existed)?"""
        if not self._finisher.wait_recorded(prepared.ctx.job_id, self._t.service_retry_s):
            return False
        try:
            prepared.existing = existing_result(self._store, prepared.ctx)
        except Exception as exc:
            prepared.early = exc
        if prepared.existing is None and prepared.early is None:
            return False
        self._settle_unrun(prepared, prepared.early)
        return True

    # -- shutting down -------------------------------------------------------------------------

    def _shutdown(self, reason: ExitReason) -> None:
        stopping = reason in (ExitReason.STOPPED, ExitReason.BROKEN, ExitReason.UNAVAILABLE)
        start = self._stop_requested_at or time.monotonic()
        grace = self._t.shutdown_grace_s if stopping else self._t.service_retry_s + 30.0
        # Never plan past the hard end of the task (Cloud Run kills it at TASK_TIMEOUT_S).
        deadline = min(start + grace, self._started_at + self._t.task_s - 2.0)
        self._stop.set()  # the prefetch thread pulls no more
        # A pull returns within PULL_TIMEOUT_S; whatever it got is handed back now.
        wait_s = max(0.0, min(deadline - time.monotonic(), self._t.pull_s))
        if self._pending is not None and self._pending.wait(wait_s):
            try:
                prepared = self._pending.result().prepared
            except Exception:
                prepared = None
            if prepared is not None:
                self._settle_unrun(prepared, Stopped("the worker is shutting down"))
        if self._interrupted is not None:
            prepared, outcome = self._interrupted
            self._settle_unrun(prepared, outcome)
        for left in self._finisher.close(max(0.0, deadline - time.monotonic() - 0.5)):
            reason_exc = Stopped("shutdown before its result was recorded")
            self._settler.settle(
                left.prepared.delivery, decide(reason_exc), left.prepared.ctx.job_id, reason_exc
            )
        self._source.close()
