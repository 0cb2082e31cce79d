"""An in-memory ``JobSource``: a Pub/Sub subscription with a dead-letter policy, on a clock.

``MemorySubscription`` holds the messages the way Pub/Sub does for the worker: a delivery leases a
message until its ack deadline (``ack_deadline_s``, then the lease helper's extensions); a lapsed
lease or a nack makes it deliverable again, with ``delivery_attempt`` one higher; a message
delivered ``max_delivery_attempts`` times and handed back once more goes to ``dead_letters``. An
ack with an ack id whose lease has lapsed (the message went to someone else) does nothing, as an
expired ack id does on Pub/Sub. Several ``MemorySource``s on one subscription are several workers
sharing it.

``MemorySource`` is what ``PubSubSource`` is on a real subscription: the same ``Leaser``
(``worker.adapters.sources.lease``) keeps what it holds leased, on the same clock as the
subscription's deadlines, so that a fake clock drives lease extensions, the lease cap and
redeliveries in virtual time. ``faults`` makes calls fail: ``faults["receive"] = [error, ...]``
raises each in turn from the next calls to ``receive`` (also ``"ack"``, ``"nack"``, ``"extend"``).

``tests/contract/test_sources.py`` runs the same checks against this and ``PubSubSource`` on the
emulator.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.adapters.sources.base import OnDeath
from worker.adapters.sources.lease import Leaser
from worker.loop.clock import SYSTEM, Clock
from worker.message.job import Delivery


@dataclass
class Message:
    message_id: str
    data: bytes
    attributes: dict[str, str]
    published_at: float  # epoch seconds
    deliveries: int = 0
    ack_id: str | None = None  # the current lease's
    leased_until: float = 0.0  # monotonic, on the subscription's clock
    acked: bool = False


@dataclass
class MemorySubscription:
    clock: Clock = SYSTEM
    ack_deadline_s: float = 10.0
    max_delivery_attempts: int = 5
    messages: list[Message] = field(default_factory=list)
    dead_letters: list[Message] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: set[threading.Event] = field(default_factory=set)

    def publish(self, body: Any, **attributes: str) -> str:
        """Publish a job message (bytes as they are; anything else as JSON); its message id."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._lock:
            message_id = str(next(self._ids))
            self.messages.append(Message(message_id, data, attributes, self.clock.time()))
            self._wake()
        return message_id

    def backlog(self) -> int:
        """Messages deliverable now (neither acked nor leased)."""
        with self._lock:
            now = self.clock.monotonic()
            return sum(1 for m in self.messages if not m.acked and m.leased_until <= now)

    def unacked(self) -> int:
        with self._lock:
            return sum(1 for m in self.messages if not m.acked)

    # -- for MemorySource ---------------------------------------------------------------------

    def take(self) -> tuple[Message | None, float]:
        """A deliverable message, leased now; else None and how long until one may be."""
        with self._lock:
            now = self.clock.monotonic()
            for m in list(self.messages):
                if m.acked or m.leased_until > now:
                    continue
                if m.deliveries >= self.max_delivery_attempts:  # handed back after the last
                    self.messages.remove(m)
                    self.dead_letters.append(m)
                    continue
                m.deliveries += 1
                m.ack_id = f"{m.message_id}-{m.deliveries}"
                m.leased_until = now + self.ack_deadline_s
                return m, 0.0
            pending = [m.leased_until - now for m in self.messages if not m.acked]
            return None, min(pending, default=float("inf"))

    def waiter(self, event: threading.Event, add: bool) -> None:
        with self._lock:
            (self._waiters.add if add else self._waiters.discard)(event)

    def settle(self, ack_ids: Sequence[str], seconds: float | None) -> None:
        """Ack (``seconds`` None) or set the deadline of the messages leased as ``ack_ids``."""
        with self._lock:
            now = self.clock.monotonic()
            for m in self.messages:
                if m.ack_id not in ack_ids or m.acked or m.leased_until <= now:
                    continue  # an expired ack id: the message is someone else's by now
                if seconds is None:
                    m.acked = True
                else:
                    m.leased_until = now + seconds
            self.messages = [m for m in self.messages if not m.acked]
            self._wake()

    def _wake(self) -> None:
        for event in self._waiters:
            event.set()


class MemorySource:
    finite = False

    def __init__(
        self,
        subscription: MemorySubscription,
        *,
        extension_s: float = 60.0,
        max_lease_s: float = 3600.0,
        max_delivery_attempts: int = 5,
    ) -> None:
        self.subscription = subscription
        self.faults: dict[str, list[BaseException]] = {}
        self._clock = subscription.clock
        self._max_attempts = max_delivery_attempts
        self._leaser = Leaser(self._extend, extension_s, max_lease_s, self._clock)

    def receive(self, timeout_s: float) -> Delivery | None:
        self._fault("receive")
        end = self._clock.monotonic() + timeout_s
        arrived = threading.Event()
        self.subscription.waiter(arrived, add=True)
        try:
            while True:
                arrived.clear()
                message, wait_s = self.subscription.take()
                if message is not None:
                    return self._delivery(message)
                left = end - self._clock.monotonic()
                if left <= 0:
                    return None
                self._clock.wait(arrived, min(left, wait_s))
        finally:
            self.subscription.waiter(arrived, add=False)

    def _delivery(self, message: Message) -> Delivery:
        assert message.ack_id is not None
        self._leaser.add(message.ack_id)
        return Delivery(
            message_id=message.message_id,
            data=message.data,
            attributes=dict(message.attributes),
            delivery_attempt=message.deliveries,
            handle=message.ack_id,
            source="memory",
            published_at=message.published_at,
            final_attempt=message.deliveries >= self._max_attempts,
        )

    def ack(self, delivery: Delivery) -> None:
        self._leaser.remove(str(delivery.handle))
        self._fault("ack")
        self.subscription.settle([str(delivery.handle)], None)

    def nack(self, delivery: Delivery) -> None:
        self._leaser.remove(str(delivery.handle))
        self._fault("nack")
        self.subscription.settle([str(delivery.handle)], 0)

    def watch(self, on_death: OnDeath) -> None:
        self._leaser.watch(on_death)

    def close(self) -> None:
        held = self._leaser.held()
        self._leaser.stop()
        self.subscription.settle(held, 0)

    def _extend(self, ack_ids: Sequence[str], seconds: int) -> None:
        self._fault("extend")
        self.subscription.settle(ack_ids, seconds)

    def _fault(self, call: str) -> None:
        pending = self.faults.get(call)
        if pending:
            raise pending.pop(0)
