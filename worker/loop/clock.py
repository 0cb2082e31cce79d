"""The loop's clock: what the runner, the executor thread and the lease helper read and wait on.

Production uses ``SYSTEM`` (``time.monotonic``, ``time.time``, real waits); nothing else is ever
wired in by the CLI. Tests inject a fake (``tests/fakes/clock.py``) whose time jumps ahead while
the code waits, so that a 600 s job timeout, a task budget or a lease cap is reached in
milliseconds. The seam is three calls wide on purpose: what reads the time, and the two ways the
loop's threads wait with a timeout (an event, an inbox). Waits without a timeout (a thread parked
on its work queue) need no clock.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (the loop's deadlines)."""
        ...

    def time(self) -> float:
        """Epoch seconds (what a log line or a result shows)."""
        ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """``event.wait(timeout)``: True when it is set."""
        ...

    def get(self, inbox: queue.SimpleQueue[T], timeout: float) -> T | None:
        """The next item of ``inbox``, or ``None`` when none comes within ``timeout``."""
        ...


class SystemClock:
    """The real clock. Each call is the ``time``/``threading`` call it names, nothing more."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)

    @staticmethod
    def wait(event: threading.Event, timeout: float) -> bool:
        return event.wait(timeout)

    @staticmethod
    def get(inbox: queue.SimpleQueue[T], timeout: float) -> T | None:
        try:
            return inbox.get(timeout=timeout)
        except queue.Empty:
            return None


SYSTEM: Clock = SystemClock()
