"""A fake ``worker.loop.clock.Clock`` whose time jumps ahead while the code waits.

Virtual time is the real monotonic clock plus the jumps made so far, so it never goes back and
never stops: code that waits on something real still sees time pass. Whoever waits through the
clock (``wait``, ``get``, ``sleep``) registers its virtual deadline and polls in short real
slices. When nothing has touched the clock for ``quiet_s`` of real time (no read, no wait begun
or ended), and every thread that read the time and is not waiting has been silent for
``busy_s`` (it is taken to be busy with what it read the time for), the waiter with the earliest
deadline moves the clock to that deadline, and it (and whoever else is now due) returns. That is
trio's ``MockClock(autojump_threshold=...)`` for threads: a 600 s job timeout, a task budget or a
lease cap comes in milliseconds, and in the order the deadlines say.

What it can't see: a thread busy for longer than ``busy_s`` (real work, or starved of CPU) or one
that never touched the clock. Time may then jump while it works, as if the work had been slow.
The tests on this clock give their deadlines room for that (a timeout of 60 s, not 1 s).
``busy_s`` is 0.3 s: at 0.1 s, four test processes on two cores with the emulators beside them
starved a thread that long about once in ten runs of tests/memory (a lease lapsed in virtual
time, a duplicate event), at the same suite time.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class FakeClock:
    def __init__(self, quiet_s: float = 0.01, busy_s: float = 0.3, slice_s: float = 0.004) -> None:
        self._quiet_s = quiet_s
        self._busy_s = busy_s
        self._readers: dict[int, float] = {}  # thread -> real time it last read the clock
        self._waiting: dict[int, int] = {}  # thread -> how many clock waits it is in
        self._slice_s = slice_s
        self._lock = threading.Lock()
        self._offset = 0.0
        self._epoch = time.time() - time.monotonic()
        self._deadlines: dict[int, float] = {}  # waiter -> virtual deadline
        self._ids = itertools.count()
        self._touched = time.monotonic()  # real time of the last activity
        self.jumps: list[float] = []  # the size of each jump, in order

    # -- the Clock protocol --------------------------------------------------------------------

    def monotonic(self) -> float:
        with self._lock:
            real = time.monotonic()
            self._touched = self._readers[threading.get_ident()] = real
            return real + self._offset

    def time(self) -> float:
        return self._epoch + self.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return self._wait(event.wait, timeout)

    def get(self, inbox: queue.SimpleQueue[T], timeout: float) -> T | None:
        got: list[T] = []

        def take(seconds: float) -> bool:
            try:
                got.append(inbox.get(timeout=seconds))
            except queue.Empty:
                return False
            return True

        return got[0] if self._wait(take, timeout) else None

    # -- for tests -----------------------------------------------------------------------------

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of virtual time (the test thread waits like any other)."""
        self._wait(threading.Event().wait, seconds)

    @property
    def skipped(self) -> float:
        """Virtual seconds jumped over so far."""
        with self._lock:
            return self._offset

    # -- inside --------------------------------------------------------------------------------

    def _wait(self, attempt: Callable[[float], bool], timeout: float) -> bool:
        token = next(self._ids)
        me = threading.get_ident()
        with self._lock:
            real = time.monotonic()
            deadline = real + self._offset + max(0.0, timeout)
            self._deadlines[token] = deadline
            self._waiting[me] = self._waiting.get(me, 0) + 1
            self._touched = real
        try:
            while True:
                left = deadline - (time.monotonic() + self._offset)
                if left <= 0:
                    return attempt(0)
                if attempt(min(left, self._slice_s)):
                    return True
                self._jump_if_quiet(token)
        finally:
            with self._lock:
                del self._deadlines[token]
                self._waiting[me] -= 1
                self._touched = self._readers[me] = time.monotonic()

    def _jump_if_quiet(self, token: int) -> None:
        with self._lock:
            real = time.monotonic()
            deadline = self._deadlines[token]
            if real - self._touched < self._quiet_s or deadline > min(self._deadlines.values()):
                return
            if any(
                real - last < self._busy_s
                for thread, last in self._readers.items()
                if not self._waiting.get(thread)
            ):
                return
            step = deadline - (real + self._offset)
            if step > 0:
                self._offset += step
                self.jumps.append(step)
            self._touched = real
