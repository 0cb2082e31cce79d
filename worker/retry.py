"""Bounded retries with backoff for calls to Pub/Sub and GCS.

The client libraries' own retries are silent (DEBUG logs on non-propagating loggers) and some retry
forever; the worker turns them off and retries here instead, so that an outage is visible at
WARNING and ends, after ``budget_s``, in a ``Transient`` error that names the operation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import tenacity

from worker.errors import Transient
from worker.obs import logs

T = TypeVar("T")
log = logging.getLogger(__name__)


def call(
    fn: Callable[[], T],
    *,
    what: str,
    budget_s: float,
    retryable: tuple[type[BaseException], ...],
    initial_s: float = 0.25,
    max_wait_s: float = 8.0,
) -> T:
    """Call ``fn`` until it succeeds, a non-retryable error escapes, or ``budget_s`` is spent.

    The first try runs without building a retrier: a call that succeeds (nearly all of them)
    costs no more than ``fn`` itself, which matters for the small writes on the GPU's path.
    """
    started = time.monotonic()
    try:
        return fn()
    except retryable as exc:
        logs.event(
            log,
            f"{what} failed, retrying",
            logging.WARNING,
            attempt=1,
            error=f"{type(exc).__name__}: {exc}",
            elapsed_s=round(time.monotonic() - started, 2),
        )
    budget_s = max(0.0, budget_s - (time.monotonic() - started))

    def warn(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logs.event(
            log,
            f"{what} failed, retrying",
            logging.WARNING,
            attempt=state.attempt_number + 1,
            error=f"{type(exc).__name__}: {exc}",
            elapsed_s=round(state.seconds_since_start or 0.0, 2),
        )

    backoff = tenacity.wait_exponential_jitter(
        multiplier=initial_s, max=max_wait_s, jitter=initial_s
    )

    def wait(state: tenacity.RetryCallState) -> float:
        # Never sleep past the budget: the last try comes at its end, not a backoff later.
        left = budget_s - (state.seconds_since_start or 0.0)
        return max(0.0, min(backoff(state), left))

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(budget_s),
        wait=wait,
        retry=tenacity.retry_if_exception_type(retryable),
        before_sleep=warn,
        reraise=True,
    )
    try:
        return retrying(fn)
    except retryable as exc:
        raise Transient(
            f"{what} still failing after {time.monotonic() - started:.0f} s: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
