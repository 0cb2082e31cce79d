"""The event-publisher seam: completion (and optional progress) events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class EventPublisher(Protocol):
    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publish and wait until the service has it; return the message id.

        Raises ``worker.errors.Transient`` when it can't within the retry budget.
        """
        ...

    def publish_nowait(self, data: bytes, attributes: Mapping[str, str]) -> None:
        """Publish without waiting (progress updates); failures are logged, never raised."""
        ...

    def close(self) -> None: ...
