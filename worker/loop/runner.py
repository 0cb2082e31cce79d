"""The job loop: the one owner of every message's fate.

Working threads do the work and post typed events (``worker.record.eventtypes``); this control
loop, on the caller's thread, is the only reader. Every message's fate is decided and applied in
one place, ``worker.loop.fates`` (from ``worker.loop.settle``'s ``decide``), called from this loop
only; the ack or nack itself runs on the settler thread.

- ``prefetch`` pulls one message when allowed and prepares it (parse, namespace, ledger, staging);
- ``executor`` runs one job at a time on one long-lived thread, with its attempt markers;
- ``finisher`` records a job: outputs, ``result.json``, event;
- ``settler`` acks or nacks, and removes the job's working directory.

Three things overlap so that the executor (the GPU) never waits on the worker: while job N
executes, job N+1 is pulled and prepared, and job N-1 is recorded. At most one message is held
beyond the one executing; two when the recent runs were short (``_short_jobs``). The loop waits
on its event queue with a timeout set by the next deadline (job timeout, interrupt grace, task
budget, shutdown): nothing polls.

A stop (SIGTERM), the task budget, idleness, ``MAX_JOBS``, a drained manifest or a halt
(broken worker, unreachable services, a dead thread) closes the loop: no more pulls, the
running job is interrupted when stopping, what is being recorded is finished while the time
allows, and whatever is left is handed back.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from dataclasses import dataclass
from enum import Enum

from worker.adapters.events.base import EventPublisher
from worker.adapters.sources.base import JobSource
from worker.adapters.storage.base import ObjectStore
from worker.config import Settings
from worker.errors import ConfigError, ServiceUnavailable, Stopped, WorkerBroken
from worker.executor.base import ExecRequest, Executor, isolated
from worker.loop.attempts import Markers
from worker.loop.cancelwatch import CancelWatch
from worker.loop.clock import SYSTEM, Clock
from worker.loop.executing import ExecutorThread
from worker.loop.fates import Fates
from worker.loop.finisher import Finisher
from worker.loop.ledger import Ledger
from worker.loop.overlap import BusyClock, BusyExecutor
from worker.loop.prefetch import Prefetcher
from worker.loop.prepare import Prepared, Preparer
from worker.loop.settle import Halt, Health, Settler, decide
from worker.loop.supervise import Act, Limits, Watch
from worker.message.bounded import safe_str
from worker.message.namespace import Namespace
from worker.message.parse import Parser
from worker.models.fetch import ModelFetcher
from worker.obs import logs, metrics
from worker.obs.tracing import NO_TRACER, Tracer
from worker.record import progress
from worker.record.eventtypes import (
    CancelRequested,
    Died,
    Event,
    Executed,
    Pulled,
    PullEmpty,
    PullFailed,
    RecordDone,
    RecordFailed,
    Started,
    Wake,
)

log = logging.getLogger(__name__)

RECORDING_LIMIT = 3  # jobs being recorded before the loop stops starting and pulling more
SAFETY_WAKE_S = 30.0  # the longest the loop sleeps with nothing due (events wake it sooner)
SHORT_JOB_S = 1.0  # recent runs all shorter: prefetch two jobs ahead, not one (_short_jobs)


class ExitReason(Enum):
    IDLE = "idle"  # nothing to do for IDLE_EXIT_S
    MAX_JOBS = "max_jobs"
    BUDGET = "budget"  # the task's time budget (TASK_TIMEOUT_S - STOP_MARGIN_S) ran out
    DRAINED = "drained"  # a finite source (manifest) has no more work
    STOPPED = "stopped"  # stop() was called (SIGTERM)
    BROKEN = "broken"  # the executor can't run jobs, or a working thread died
    UNAVAILABLE = "unavailable"  # Pub/Sub or GCS unreachable
    CONFIG = "config"  # the executor found a configuration error while starting


STOPPING = (ExitReason.STOPPED, ExitReason.BROKEN, ExitReason.UNAVAILABLE)


@dataclass
class Running:
    prepared: Prepared
    watch: Watch
    attempt: int | None = None  # its attempt number, once started (with crash accounting)


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
        models: ModelFetcher | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        assert settings.output_uri is not None
        self._clock = clock
        self._now = clock.monotonic
        self._tracer = tracer
        self._settings = settings
        self._t = settings.timeouts
        self._source = source
        self._executor = executor
        self._progress = progress.ProgressOut(progress_publisher)
        self._started_at = started_at if started_at is not None else self._now()
        self._inbox: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._stop = threading.Event()  # seen by the working threads
        self._stop_requested_at: float | None = None  # set by stop(), maybe in a signal handler
        self._health = Health(settings.max_consecutive_transient)
        self._ledger = Ledger(store, publisher)
        busy = BusyClock()  # when the executor runs: what a model fetch overlapped
        namespace = Namespace(store, settings.output_uri)
        preparer = Preparer(parser, store, settings, namespace, self._ledger, models, busy)
        post = self._inbox.put
        self._prefetch = Prefetcher(
            source, preparer, settings.output_uri, self._t.pull_s, post, self._stop
        )
        self._exec = ExecutorThread(
            BusyExecutor(executor, busy),
            Markers(store, settings.identity),
            post,
            self._stop,
            sync=settings.max_crashed_attempts > 0,
            isolated=isolated(executor),  # ComfyUI in a process of its own (EXECUTOR_PROCESS)
            clock=clock,
        )
        self._finisher = Finisher(
            store, self._ledger, settings.identity, post, tracer, settings.limits.max_pixels_per_job
        )
        self._settler = Settler(source, post, tracer)
        self._cancels = CancelWatch(store, self._t.cancel_check_s, post)
        self._meter = settings.cost.meter(self._started_at)  # cost share-out (worker.obs.cost)
        self._fates = Fates(self._finisher, self._settler, self._ledger, self._health, self._meter)
        self._limits = Limits(
            job_timeout_s=self._t.job_s,
            stop_at=self._stop_at(),
            # On a stop, leave time inside Cloud Run's 10 s to nack and exit.
            stop_grace_s=max(1.0, self._t.shutdown_grace_s - 2.0),
            # Past its timeout a run gets a tenth of JOB_TIMEOUT_S (2-30 s) to notice.
            timeout_grace_s=min(30.0, max(2.0, self._t.job_s / 10)),
        )
        # Control-loop state: touched by the loop's thread only.
        self._ready: Prepared | None = None  # prefetched, runnable, waiting for the executor
        self._running: Running | None = None
        # Handed to the executor thread while the running job still runs: it starts the moment
        # that one ends, without a round trip through this loop.
        self._next: Prepared | None = None
        self._executor_stuck = False  # a run outlived its interrupt grace: the thread is gone
        self._pulling = False  # a pull was permitted and not answered yet
        self._drained = False
        self._taken = 0  # messages received (bounds prefetching under MAX_JOBS)
        self._handled = 0  # messages finished with (MAX_JOBS counts these)
        self._recent_exec_s: deque[float] = deque(maxlen=5)
        self._last_work = self._now()
        self._closing: ExitReason | None = None
        self._close_by = 0.0
        self.jobs_executed = 0

    # -- public -----------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to stop: no more pulls, the running job is interrupted and handed back.
        Safe to call from a signal handler: it sets a flag and puts on a ``SimpleQueue``."""
        if self._stop_requested_at is None:
            self._stop_requested_at = self._now()
        self._inbox.put(Wake())

    @property
    def executor_free(self) -> bool:
        """False when a run ignored its interrupt: the executor must not be touched again."""
        return not self._executor_stuck

    def run(self) -> ExitReason:
        try:
            self._executor.start()
        except Exception as exc:
            logs.event(
                log,
                "executor failed to start",
                logging.ERROR,
                error=f"{type(exc).__name__}: {safe_str(exc)}",
            )
            self._source.close()
            # A bad setting found while booting (say, an invalid warmup workflow) is the user's
            # to fix: a retry of the task would fail the same way.
            return ExitReason.CONFIG if isinstance(exc, ConfigError) else ExitReason.BROKEN
        logs.event(log, "worker.ready", boot_s=round(self._now() - self._started_at, 3))
        self._last_work = self._now()  # idleness counts from ready, not from boot
        for part in (self._prefetch, self._exec, self._finisher, self._settler, self._cancels):
            part.start()
        self._source.watch(lambda name, error: self._inbox.put(Died(name, error)))
        reason = self._loop()
        logs.event(
            log,
            "worker.exit",
            reason=reason.value,
            jobs_executed=self.jobs_executed,
            uptime_s=round(self._now() - self._started_at, 3),
            **self._meter.tail_fields(),
        )
        return reason

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> ExitReason:
        while True:
            if self._closing is None and (reason := self._exit_reason()) is not None:
                self._close(reason)
            if self._closing is not None and (self._quiet() or self._now() >= self._close_by):
                return self._finish_closing(self._closing)
            if self._closing is None:
                self._dispatch()
            self._flush()
            event = self._clock.get(self._inbox, self._wait_s())
            if event is not None:
                halt = self._handle(event)
                if halt is not None and self._closing is None:
                    self._close(halt)
            self._watch_running()

    def _exit_reason(self) -> ExitReason | None:
        halt = self._health.halt
        if halt is Halt.BROKEN:
            return ExitReason.BROKEN
        if halt is Halt.UNAVAILABLE:
            return ExitReason.UNAVAILABLE
        if self._stop_requested_at is not None:
            return ExitReason.STOPPED
        if self._settings.max_jobs and self._handled >= self._settings.max_jobs:
            return ExitReason.MAX_JOBS
        if self._running is not None or self._ready is not None or self._next is not None:
            return None
        if self._drained:
            return ExitReason.DRAINED
        if not self._time_for_another_job():
            return ExitReason.BUDGET
        idle_s = self._now() - self._last_work
        if not self._pulling and idle_s >= self._t.idle_exit_s and not self._source.finite:
            return ExitReason.IDLE
        return None

    def _wait_s(self) -> float:
        due = [self._now() + SAFETY_WAKE_S]
        if self._running is not None:
            deadline = self._running.watch.deadline(self._closing in STOPPING)
            if deadline is not None:
                due.append(deadline)
        if self._closing is not None:
            due.append(self._close_by)
        return max(0.0, min(due) - self._now())

    def _time_for_another_job(self) -> bool:
        """Start a job only if, judging by recent ones, it can end before the budget does."""
        expected = max(self._recent_exec_s, default=0.0)
        return self._now() + expected < self._stop_at()

    def _stop_at(self) -> float:
        return self._started_at + self._t.task_s - self._t.stop_margin_s

    def _may_take(self) -> bool:
        max_jobs = self._settings.max_jobs
        return (not max_jobs or self._taken < max_jobs) and self._time_for_another_job()

    def _dispatch(self) -> None:
        """Hand the waiting job to the executor thread (to start now, or right after the
        running one); allow a pull when no job waits."""
        backlog_ok = len(self._fates.recording) < RECORDING_LIMIT
        running = self._running
        free = running is None or (running.watch.started_at is not None and self._next is None)
        if (
            free
            and self._ready is not None
            and backlog_ok
            and not self._executor_stuck
            and self._time_for_another_job()
        ):
            prepared, self._ready = self._ready, None
            self._start(prepared)
        if (
            not self._pulling
            and self._ready is None
            and (self._next is None or self._short_jobs())
            and backlog_ok
            and not self._between_jobs()
            and self._may_take()
        ):
            self._pulling = True
            self._prefetch.permit()

    def _short_jobs(self) -> bool:
        """Pull the next-but-one while the next waits for the running job, when the recent runs
        were all shorter than ``SHORT_JOB_S``. Making a job ready (the pull, the namespace claim,
        staging, the attempt record and cancel check) is about five round trips to remote
        services, and it starts when the job before it starts: with one job ahead, a run shorter
        than those leaves the GPU waiting. A message is then held for at most two short runs
        before its own; with longer runs one ahead is enough, and the rest stay deliverable to
        other tasks."""
        recent = self._recent_exec_s
        return len(recent) == recent.maxlen and max(recent) < SHORT_JOB_S

    def _between_jobs(self) -> bool:
        """A job was handed to the executor thread and has not started yet.

        Its start waits on a GCS write (the attempt markers); recording and prefetching wait
        for that start, because their Python work would compete with the write for the GIL
        and add milliseconds to every job's start.
        """
        return self._running is not None and self._running.watch.started_at is None

    def _flush(self) -> None:
        if self._closing is not None or not self._between_jobs():
            self._fates.flush()

    def _start(self, prepared: Prepared) -> None:
        """Hand the job to the executor thread; ``job.started`` is logged once it runs."""
        # The executor thread starts it no later than this, judging by recent jobs' length.
        start_by = self._stop_at() - max(self._recent_exec_s, default=0.0)
        assert prepared.job is not None
        job = prepared.job
        request = ExecRequest(
            job.job_id,
            job.workflow,
            prepared.input_dir,
            prepared.output_dir,
            progress=self._progress.sink_for(job.job_id),
            models=prepared.models.files if prepared.models is not None else (),
        )
        after = None
        if self._running is None:
            self._running = Running(prepared, Watch(self._limits))
        else:
            self._next = prepared
            if self._running.attempt is not None:
                after = (self._running.prepared.ctx.folder, self._running.attempt)
        self._exec.run(prepared, request, start_by, after)

    # -- events -------------------------------------------------------------------------------

    def _handle(self, event: Event) -> ExitReason | None:
        """Apply one event; returns a reason to close the loop, if it gives one."""
        if isinstance(event, Pulled):
            self._pulled(event.prepared, event.pulled_at)
        elif isinstance(event, PullEmpty):
            self._pulling = False
            self._drained = self._source.finite
        elif isinstance(event, PullFailed):
            self._pulling = False
            return self._pull_failed(event.error)
        elif isinstance(event, Started):
            self._started(event)
        elif isinstance(event, Executed):
            self._executed(event)
        elif isinstance(event, RecordDone):
            self._fates.recorded(event.item)
        elif isinstance(event, RecordFailed):
            self._fates.record_failed(event.item, event.error, closing=self._closing is not None)
        elif isinstance(event, CancelRequested):
            self._cancel_requested(event.prepared)
        elif isinstance(event, Died):
            self._died(event)
            return ExitReason.BROKEN
        # Wake: the loop looks at the stop flag next.
        return None

    def _died(self, event: Died) -> None:
        """A working thread is gone: log it, and give back what it held (it will never post)."""
        logs.event(
            log,
            "worker thread died",
            logging.ERROR,
            thread=event.thread,
            error=f"{type(event.error).__name__}: {safe_str(event.error)}"
            if event.error is not None
            else None,
        )
        gone = WorkerBroken(f"the {event.thread} thread died")
        if event.thread == "finisher":
            self._fates.finisher_died()
        elif event.thread == "prefetch":
            self._pulling = False
        elif event.thread == "executor":
            self._executor_stuck = True
            for prepared in [r.prepared for r in (self._running,) if r] + [self._next]:
                if prepared is not None:
                    self._fates.settle(prepared, decide(gone), gone)
            self._running, self._next = None, None

    def _pulled(self, prepared: Prepared, pulled_at: float) -> None:
        self._tracer.received(
            prepared.delivery,
            prepared.ctx.job_id,
            pulled_at,
            prepared.received_at,
            prepared.inputs_s,
        )
        self._pulling = False
        self._taken += 1
        self._last_work = self._now()
        self._ledger.hold(prepared.ctx.folder)
        logs.event(
            log,
            "job.received",
            job_id=prepared.ctx.job_id,
            message_id=prepared.delivery.message_id,
            delivery_attempt=prepared.delivery.delivery_attempt,
            form=prepared.job.form if prepared.job else None,
            inputs_s=round(prepared.inputs_s, 4),
        )
        if not prepared.runnable:
            self._handled += 1
            self._decide(prepared, prepared.early)
        elif self._closing is not None:
            self._decide(prepared, Stopped("stop requested before the job ran"))
        else:
            self._ready = prepared

    def _started(self, event: Started) -> None:
        if self._running is None or self._running.prepared is not event.prepared:
            return
        self._running.watch.started_at = event.at
        self._running.attempt = event.attempt
        prepared = event.prepared
        self._cancels.watch(prepared)
        logs.event(
            log,
            "job.started",
            job_id=prepared.ctx.job_id,
            inputs_s=round(prepared.inputs_s, 4),
            delivery_attempt=prepared.ctx.delivery_attempt,
            waited_s=round(event.at - prepared.received_at, 4),
            **metrics.queue_fields(prepared.delivery),
        )

    def _pull_failed(self, error: BaseException) -> ExitReason:
        if isinstance(error, ServiceUnavailable):
            logs.event(log, "job source unavailable", logging.ERROR, error=safe_str(error))
            return ExitReason.UNAVAILABLE
        logs.event(
            log,
            "receiving failed",
            logging.ERROR,
            error=f"{type(error).__name__}: {safe_str(error)}",
        )
        return ExitReason.BROKEN

    def _cancel_requested(self, prepared: Prepared) -> None:
        running = self._running
        if running is None or running.prepared is not prepared:
            return  # it ended meanwhile: a finished job is not changed
        if running.watch.cancel(self._now()):
            logs.event(log, "job.cancel_requested", job_id=prepared.ctx.job_id)
            self._executor.interrupt()

    def _executed(self, event: Executed) -> None:
        self._cancels.unwatch(event.prepared)
        running = self._running
        if self._next is not None and event.prepared is self._next:
            self._next = None  # it never started (a stop, the budget, a broken predecessor)
            self._decide(event.prepared, event.error)
            return
        if running is None or running.prepared is not event.prepared:
            return  # a run given up on has ended after all: its message was settled then
        self._running = None
        if self._next is not None:
            self._running = Running(self._next, Watch(self._limits))
            self._next = None
        outcome = running.watch.outcome(event.error)
        if running.watch.started_at is None:  # never ran: its attempt record failed, or a stop
            self._decide(event.prepared, outcome)
            return
        self.jobs_executed += 1
        self._handled += 1
        self._tracer.phase(
            event.prepared.delivery.message_id, "execute", self._now() - event.seconds
        )
        self._recent_exec_s.append(event.seconds)
        self._last_work = self._now()
        self._decide(event.prepared, outcome, event)

    def _watch_running(self) -> None:
        running = self._running
        if running is None:
            return
        act = running.watch.check(self._now(), self._closing in STOPPING)
        if act is Act.INTERRUPT:
            self._executor.interrupt()
        elif act is Act.GIVE_UP:
            self._running = None
            self._cancels.unwatch(running.prepared)
            self._executor_stuck = running.watch.started_at is not None
            self._handled += 1
            self._decide(running.prepared, running.watch.given_up())
            if self._next is not None and self._executor_stuck:  # it will never start
                prepared, self._next = self._next, None
                self._decide(prepared, Stopped("the executor is stuck in another job"))

    def _decide(
        self, prepared: Prepared, outcome: BaseException | None, ran: Executed | None = None
    ) -> None:
        """Every fate goes through ``worker.loop.fates``, which must know if a pull is in flight."""
        self._fates.decide(prepared, outcome, ran, pulling=self._pulling)

    # -- closing ------------------------------------------------------------------------------

    def _close(self, reason: ExitReason) -> None:
        """Stop taking work; what is running and being recorded may finish until ``_close_by``."""
        self._closing = reason
        self._stop.set()
        self._ledger.wake()
        self._prefetch.close()
        start = self._stop_requested_at or self._now()
        grace = self._t.shutdown_grace_s if reason in STOPPING else self._t.service_retry_s + 30
        # Never plan past the hard end of the task (Cloud Run kills it at TASK_TIMEOUT_S).
        self._close_by = min(start + grace, self._started_at + self._t.task_s - 2.0) - 0.5
        if self._ready is not None:
            prepared, self._ready = self._ready, None
            self._decide(prepared, Stopped("the worker is shutting down"))

    def _quiet(self) -> bool:
        return (
            self._running is None
            and self._next is None
            and not self._pulling
            and not self._fates.recording
        )

    def _finish_closing(self, reason: ExitReason) -> ExitReason:
        """Hand back whatever is left, let the settler finish, and close the source."""
        left: list[tuple[Prepared, BaseException | None]] = list(self._fates.held_back)
        if self._running is not None:  # it ignored the interrupt for as long as we could wait
            left.append((self._running.prepared, WorkerBroken("still running at shutdown")))
            self._executor_stuck = True
        if self._next is not None:
            left.append((self._next, Stopped("the worker is shutting down")))
        if self._executor_stuck or self._health.halt is Halt.BROKEN:
            reason = ExitReason.BROKEN
        for prepared, outcome in left:
            self._fates.hand_back(prepared, outcome)
        if self._fates.recording:
            left_n = len(self._fates.recording)
            logs.event(log, "results still being recorded at shutdown", count=left_n)
        self._exec.close(wait_s=max(0.0, min(5.0, self._close_by - self._now())))
        for part in (self._finisher, self._cancels):
            part.close()
        self._progress.close(timeout_s=min(1.0, max(0.0, self._close_by - self._now())))
        remaining = max(0.0, self._close_by + 0.5 - self._now())
        if not self._settler.close(remaining):
            logs.event(log, "acks and nacks still pending at shutdown", logging.WARNING)
        self._source.close()  # nacks whatever is still held (a pull that returned too late)
        return reason
