"""The job-source seam: where messages come from and how they are settled.

Implementations: ``worker.adapters.sources.pubsub`` (synchronous pull with a lease helper) and
``worker.adapters.sources.jsonl`` (a JSONL file in GCS, split between a job's tasks). The runner
calls ``ack`` and ``nack`` only from ``worker.loop.runner`` after ``worker.loop.settle.decide`` has
chosen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from worker.message.job import Delivery

OnDeath = Callable[[str, BaseException | None], None]


class JobSource(Protocol):
    """A queue of job messages with at-least-once delivery."""

    @property
    def finite(self) -> bool:
        """True when ``receive`` returning ``None`` means "no more work, ever" (a manifest),
        rather than "nothing right now" (a subscription)."""
        ...

    def receive(self, timeout_s: float) -> Delivery | None:
        """Take one message, or return ``None`` after about ``timeout_s`` with none waiting.

        The source keeps the message leased (it is not redelivered elsewhere) until it is acked
        or nacked. Raises ``ServiceUnavailable`` when the backend stays unreachable.
        """
        ...

    def ack(self, delivery: Delivery) -> None:
        """The job is finished for good (succeeded, or failed with a recorded result)."""
        ...

    def nack(self, delivery: Delivery) -> None:
        """Give the message back now so that another attempt (maybe elsewhere) takes it."""
        ...

    def close(self) -> None:
        """Stop background helpers. Messages still held are nacked."""
        ...

    def watch(self, on_death: OnDeath) -> None:
        """Call ``on_death(thread name, error)`` if a background helper of the source (the
        lease thread) dies: the worker must not go on holding messages it no longer leases."""
        ...
