"""The executor side of HTTP mode: the job worker's runner, fed by one slot.

``Service`` runs ``worker.loop.runner.Runner`` on a background thread with a ``SlotSource`` as its
job source, the real store and results topic (through ``ResultTee``) and the configured
executor. It is the same pipeline as ``python -m worker run``: parse, namespace, ledger,
attempt records, the cancel watch, execution with its timeout, outputs, ``result.json``, the
completion event, and the fates decided in ``worker.loop.fates``. Nothing here decides a job's fate;
``run`` only offers a job and waits for its settlement.

The runner starts on the first request, not at import: ``functions-framework`` imports
``main.py`` in gunicorn's master and then forks the worker process, and threads do not survive
a fork. Boot (ComfyUI's imports, models, warmup) then proceeds in the background while ``/`` and
``/healthz`` answer; ``ready`` turns true once the executor has started (the startup probe).

Service-mode settings: no idle exit and no task budget (a Cloud Run service instance lives until
Cloud Run stops it); everything else, ``JOB_TIMEOUT_S`` included, as configured.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from worker.adapters.events.base import EventPublisher
from worker.adapters.storage.base import ObjectStore
from worker.config import Settings
from worker.executor.base import ExecRequest, ExecResult, Executor, isolated
from worker.http.slot import Busy, ResultTee, SlotSource, Ticket
from worker.loop.runner import ExitReason, Runner
from worker.message.job import Delivery
from worker.message.parse import Parser
from worker.obs import logs

log = logging.getLogger(__name__)

Phase = Literal["idle", "booting", "ready", "failed"]


class NotReady(Exception):
    """The executor has not booted (or can't): 503 with ``Retry-After``."""


@dataclass(frozen=True)
class Outcome:
    """How a request's job ended: ``document`` is its result once it was recorded."""

    job_key: str
    settled: str  # ack, nack, closed, timeout
    document: bytes | None
    seconds: float


class _Ready:
    """The executor, reporting when its ``start`` (the boot) has returned."""

    def __init__(self, inner: Executor, booted: threading.Event) -> None:
        self._inner = inner
        self._booted = booted

    def start(self) -> None:
        self._inner.start()
        self._booted.set()

    def execute(self, request: ExecRequest) -> ExecResult:
        return self._inner.execute(request)

    def interrupt(self) -> None:
        self._inner.interrupt()

    def close(self) -> None:
        self._inner.close()


def service_settings(settings: Settings) -> Settings:
    """No idle exit, no task budget: a service instance runs until Cloud Run stops it."""
    timeouts = dataclasses.replace(
        settings.timeouts, idle_exit_s=math.inf, task_s=math.inf, stop_margin_s=0.0
    )
    return dataclasses.replace(settings, timeouts=timeouts, max_jobs=0)


class Service:
    def __init__(
        self,
        settings: Settings,
        build: Callable[[], tuple[Executor, ObjectStore, EventPublisher, Parser]],
        on_halt: Callable[[ExitReason], None],
    ) -> None:
        self._settings = service_settings(settings)
        self._build = build
        self._on_halt = on_halt
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._booted = threading.Event()
        self._phase: Phase = "idle"
        self._slot = SlotSource()
        self._runner: Runner | None = None
        self.completed = 0
        self.failed = 0

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def running(self) -> bool:
        return self._slot.busy

    def start(self) -> None:
        """Start the runner in this process once (again after a fork: see the module doc)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._phase = "booting"
            self._booted.clear()
            self._slot = SlotSource()
            threading.Thread(target=self._run, name="service-runner", daemon=True).start()

    def ready(self) -> bool:
        if self._booted.is_set() and self._phase == "booting":
            self._phase = "ready"
        return self._phase == "ready"

    def run(
        self, data: bytes, job_key: str | None = None, attributes: Mapping[str, str] | None = None
    ) -> Outcome:
        """Run one job message here and wait for its end. Raises ``Busy`` or ``NotReady``."""
        self.start()
        if not self.ready():
            raise NotReady("failed" if self._phase == "failed" else "booting")
        key = job_key or str(uuid.uuid4())
        delivery = Delivery(
            message_id=key,
            data=data,
            attributes={"job_id": key, **(attributes or {})},
            delivery_attempt=1,
            handle=None,
            source="http",
            published_at=time.time(),
        )
        ticket = self._slot.offer(delivery)
        return self._wait(ticket, key)

    def _wait(self, ticket: Ticket, key: str) -> Outcome:
        t = self._settings.timeouts
        # The runner ends every job within its timeout and grace, then records it (retried for
        # SERVICE_RETRY_S at most, twice): past that bound something is wrong, not slow.
        bound_s = t.job_s + min(30.0, max(2.0, t.job_s / 10)) + 2 * t.service_retry_s + 60
        started = time.monotonic()
        done = ticket.wait(bound_s)
        how = ticket.settled if done and ticket.settled else "timeout"
        if ticket.document is not None:
            status = b'"status": "succeeded"' in ticket.document[:4096]
            self.completed += status
            self.failed += not status
        return Outcome(key, how, ticket.document, time.monotonic() - started)

    def _run(self) -> None:
        try:
            executor, store, publisher, parser = self._build()
            runner = Runner(
                self._settings,
                self._slot,
                _Ready(executor, self._booted),
                store,
                ResultTee(publisher, self._slot),
                parser,
            )
            self._runner = runner
            reason = runner.run()
            if isolated(executor):  # never left behind, even holding a run (see its close)
                executor.close()
        except Exception as exc:  # a bad setting or a failed import while wiring
            logs.event(log, "service.failed", logging.ERROR, error=f"{type(exc).__name__}: {exc}")
            reason = ExitReason.BROKEN
        self._phase = "failed"
        logs.event(log, "service.runner_exited", logging.ERROR, reason=reason.value)
        self._on_halt(reason)

    def stop(self) -> None:
        if self._runner is not None:
            self._runner.stop()


__all__ = ["Busy", "NotReady", "Outcome", "Service"]
