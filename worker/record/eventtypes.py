"""What the working threads tell the control loop: small typed events, one queue.

The prefetch, executor, finisher and settler threads do work and post what happened; only the
control loop (``worker.loop.runner``) reads these and decides each message's fate. The queue is a
``queue.SimpleQueue``: its ``put`` is safe from a signal handler, which is how ``Runner.stop``
wakes the loop.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from worker.executor.base import ExecResult
from worker.loop.ledger import Recorded
from worker.loop.prepare import Prepared
from worker.obs.cost import NOT_EXECUTED, JobCost


@dataclass(frozen=True)
class Wake:
    """Look at the stop flag (posted by ``Runner.stop``)."""


@dataclass(frozen=True)
class Pulled:
    """A message was received and prepared: runnable, or already ended (``early``/``existing``)."""

    prepared: Prepared
    pulled_at: float = 0.0  # monotonic time the pull began (the trace's "pull" phase)


@dataclass(frozen=True)
class PullEmpty:
    """The pull returned nothing (for a finite source: the work is done)."""


@dataclass(frozen=True)
class PullFailed:
    """The job source failed (``ServiceUnavailable`` once its retries are spent)."""

    error: BaseException


@dataclass(frozen=True)
class Started:
    """The job's attempt record is written and the executor is running it (from ``at``)."""

    prepared: Prepared
    at: float
    attempt: int | None  # its attempt number, when crash accounting waited for the record


@dataclass(frozen=True)
class Executed:
    """The executor's run ended: ``error`` is None on success."""

    prepared: Prepared
    error: BaseException | None
    result: ExecResult | None
    seconds: float


@dataclass(eq=False)
class Recording:
    """What the control loop hands the finisher. Kept across rounds: a round that failed is
    retried from the kept outputs and the same encoded document (``data``)."""

    prepared: Prepared
    outcome: BaseException | None  # None: succeeded
    result: ExecResult | None = None
    execution_s: float = 0.0
    doc: dict[str, Any] | None = None  # the result document, as first built
    data: bytes | None = None  # ...and encoded
    cost: JobCost = NOT_EXECUTED  # its share of the task's time (worker.obs.cost)


@dataclass(frozen=True)
class RecordDone:
    """The finisher recorded a job (``how``) or re-published an earlier attempt's result."""

    item: Recording
    how: Recorded | None  # None: an existing result was re-published


@dataclass(frozen=True)
class RecordFailed:
    """Recording a job failed (outputs and result.json are kept for another round)."""

    item: Recording
    error: BaseException


@dataclass(frozen=True)
class CancelRequested:
    """The running job's cancel marker was found (``worker.loop.cancelwatch``)."""

    prepared: Prepared


@dataclass(frozen=True)
class Died:
    """A working thread ended unexpectedly: the worker can't go on."""

    thread: str
    error: BaseException | None


Event = (
    Wake
    | Pulled
    | PullEmpty
    | PullFailed
    | Started
    | Executed
    | RecordDone
    | RecordFailed
    | CancelRequested
    | Died
)
Post = Callable[[Event], None]


def start_thread(name: str, body: Callable[[], None], post: Post) -> threading.Thread:
    """Run ``body`` on a daemon thread that reports its own death.

    Bodies return only when closed; anything they raise (a bug, a ``BaseException`` from a
    library) posts ``Died`` so that the control loop halts the worker instead of waiting on a
    thread that is gone.
    """

    def run() -> None:
        try:
            body()
        except BaseException as exc:
            post(Died(name, exc))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
