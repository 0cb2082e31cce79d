"""The job source of HTTP mode: one slot, filled by a request, drained by the usual runner.

``SlotSource`` is a ``JobSource`` like the Pub/Sub one: the runner (``worker.loop.runner``) pulls
from it, prepares, executes, records and settles exactly as it does for queued messages. A request
``offer``s its job and waits on the ``Ticket``; the settler's ``ack`` (result recorded) or
``nack`` (handed back: a transient fault, a stop) ends the wait. The slot holds at most one job
from offer to settlement, so a second request is refused (``Busy``) instead of queued, and the
GPU never has two jobs. The result document reaches the ticket through ``ResultTee``, which sits
in front of the results topic: what the ledger publishes for a job is what its request returns.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from worker.adapters.events.base import EventPublisher
from worker.adapters.sources.base import OnDeath
from worker.message.job import Delivery

Settled = Literal["ack", "nack", "closed"]


class Busy(Exception):
    """A job holds the slot: the request gets 429 with ``Retry-After``."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"busy with another job; retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass(eq=False)
class Ticket:
    delivery: Delivery
    offered_at: float = field(default_factory=time.monotonic)
    settled: Settled | None = None
    document: bytes | None = None  # the result (or re-announced earlier result) as published
    _done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout_s: float) -> bool:
        return self._done.wait(timeout_s)

    def settle(self, how: Settled) -> None:
        if self.settled is None:
            self.settled = how
        self._done.set()


class SlotSource:
    """One job at a time, from ``offer`` to its ack or nack."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: Ticket | None = None
        self._taken = False  # the runner received the held job
        self._closed = False
        self.last_exec_s = 0.0  # how long the previous job held the slot (Retry-After)

    @property
    def finite(self) -> bool:
        return False

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._held is not None

    def offer(self, delivery: Delivery) -> Ticket:
        with self._cond:
            if self._held is not None:
                held_s = time.monotonic() - self._held.offered_at
                raise Busy(max(1, min(60, round(self.last_exec_s - held_s + 0.5))))
            if self._closed:
                raise Busy(10)
            ticket = Ticket(delivery)
            self._held, self._taken = ticket, False
            self._cond.notify_all()
            return ticket

    def receive(self, timeout_s: float) -> Delivery | None:
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._waiting(), timeout_s)
            if self._closed or not self._waiting():
                return None
            assert self._held is not None
            self._taken = True
            return self._held.delivery

    def _waiting(self) -> bool:
        return self._held is not None and not self._taken

    def ack(self, delivery: Delivery) -> None:
        self._settle(delivery, "ack")

    def nack(self, delivery: Delivery) -> None:
        self._settle(delivery, "nack")

    def note_result(self, data: bytes) -> None:
        """A result was published: hand it to the request of the job it belongs to."""
        with self._cond:
            ticket = self._held
        if ticket is None:
            return
        try:
            message_id = json.loads(data).get("message_id")
        except (ValueError, AttributeError):
            return
        if message_id == ticket.delivery.message_id:
            ticket.document = data

    def _settle(self, delivery: Delivery, how: Settled) -> None:
        with self._cond:
            ticket = self._held
            if ticket is None or ticket.delivery is not delivery:
                return
            self._held = None
            self.last_exec_s = time.monotonic() - ticket.offered_at
            self._cond.notify_all()
        ticket.settle(how)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            ticket, self._held = self._held, None
            self._cond.notify_all()
        if ticket is not None:
            ticket.settle("closed")

    def watch(self, on_death: OnDeath) -> None:
        """Nothing runs in the background here."""


class ResultTee:
    """The results topic's publisher, which also hands each result to the slot's request."""

    def __init__(self, inner: EventPublisher, slot: SlotSource) -> None:
        self._inner = inner
        self._slot = slot

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        message_id = self._inner.publish(data, attributes)
        self._slot.note_result(data)  # after the event is out: the job is recorded
        return message_id

    def publish_nowait(self, data: bytes, attributes: Mapping[str, str]) -> None:
        self._inner.publish_nowait(data, attributes)

    def close(self) -> None:
        self._inner.close()
