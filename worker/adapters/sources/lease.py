"""Keeps held messages leased: one small thread that extends their ack deadlines.

Modelled on google-cloud-pubsub's leaser/heartbeater: the thread sleeps on an interruptible event
with jitter, extends every held message in one call, and stops extending a message once it has been
held for ``max_lease_s`` (then Pub/Sub redelivers it: a runaway job can't hold a message forever).

Each extension is short (``extension_s``, 60 s by default) rather than the subscription's 600 s, so
that a task killed with SIGKILL gives its message back within a minute, not ten.

A new message is first extended ``FIRST_EXTENSION_S`` after it arrives, not at once: Pub/Sub's
shortest ack deadline is 10 s, which leaves the call 8 s, and a job acked sooner (a short job,
or one refused at the edge) then costs no extension request at all. Whenever one message is due,
every held message is extended in the same call.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence

from worker.loop.clock import SYSTEM, Clock
from worker.obs import logs

log = logging.getLogger(__name__)

Extend = Callable[[Sequence[str], int], None]


OnDeath = Callable[[str, BaseException | None], None]

FIRST_EXTENSION_S = 2.0


class Leaser:
    def __init__(
        self, extend: Extend, extension_s: float, max_lease_s: float, clock: Clock = SYSTEM
    ) -> None:
        self._clock = clock
        self._extend = extend
        self._on_death: OnDeath | None = None
        self._dead: tuple[str, BaseException | None] | None = None
        self._extension_s = extension_s
        self._max_lease_s = max_lease_s
        self._first_s = min(FIRST_EXTENSION_S, extension_s / 3)
        # ack id -> (monotonic time it was received, when its next extension is due)
        self._held: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._guarded, name="leaser", daemon=True)
        self._thread.start()

    def watch(self, on_death: OnDeath) -> None:
        """``on_death("leaser", error)`` when the thread ends other than by ``stop``."""
        with self._lock:
            self._on_death = on_death
            dead = self._dead
        if dead is not None:
            on_death(*dead)

    def add(self, ack_id: str) -> None:
        """Hold ``ack_id``; its first extension comes ``FIRST_EXTENSION_S`` later."""
        now = self._clock.monotonic()
        with self._lock:
            self._held[ack_id] = (now, now + self._first_s)
        self._wake.set()  # the thread may be asleep until a later due time

    def remove(self, ack_id: str) -> None:
        with self._lock:
            self._held.pop(ack_id, None)

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout=5)

    def _next_wait(self, idle_s: float) -> float:
        """Seconds until the earliest extension is due; ``idle_s`` when nothing is held."""
        with self._lock:
            if not self._held:
                return idle_s
            soonest = min(due for _, due in self._held.values())
        return max(0.0, soonest - self._clock.monotonic())

    def _due(self) -> list[str]:
        """Everything held once any of it is due (one call for all), after the lease cap."""
        now = self._clock.monotonic()
        with self._lock:
            expired = [a for a, (t, _) in self._held.items() if now - t >= self._max_lease_s]
            for ack_id in expired:
                del self._held[ack_id]
            any_due = any(due <= now for _, due in self._held.values())
            due = list(self._held) if any_due else []
        if expired:
            logs.event(
                log,
                "lease cap reached; message left to redelivery",
                logging.WARNING,
                count=len(expired),
                max_lease_s=self._max_lease_s,
            )
        return due

    def _guarded(self) -> None:
        error: BaseException | None = None
        try:
            self._run()
        except BaseException as exc:
            error = exc
        if self._stopped.is_set():
            return
        logs.event(
            log,
            "leaser died",
            logging.ERROR,
            error=f"{type(error).__name__}: {error}" if error else None,
        )
        with self._lock:
            self._dead = ("leaser", error)
            on_death = self._on_death
        if on_death is not None:
            on_death("leaser", error)

    def _extended(self, ack_ids: list[str], next_s: float) -> None:
        now = self._clock.monotonic()
        with self._lock:
            for ack_id in ack_ids:
                if ack_id in self._held:
                    self._held[ack_id] = (self._held[ack_id][0], now + next_s)

    def _run(self) -> None:
        # Extend at about a third of the deadline, jittered so that many tasks don't align.
        period = self._extension_s / 3
        while not self._stopped.is_set():
            self._clock.wait(self._wake, self._next_wait(period))
            self._wake.clear()
            if self._stopped.is_set():
                return
            due = self._due()
            if not due:
                continue
            # Scheduled before the call: a failed call is tried again a period later.
            self._extended(due, period * random.uniform(0.8, 1.0))
            try:
                self._extend(due, int(self._extension_s))
            except Exception as exc:  # keep leasing: the next round may get through
                logs.event(
                    log,
                    "lease extension failed",
                    logging.WARNING,
                    error=f"{type(exc).__name__}: {exc}",
                    count=len(due),
                )
