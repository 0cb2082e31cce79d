"""An ``EventPublisher`` that keeps what it was given, for tests that run without Pub/Sub."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class RecordingPublisher:
    published: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        self.published.append((data, dict(attributes)))
        return str(len(self.published))

    def publish_nowait(self, data: bytes, attributes: Mapping[str, str]) -> None:
        self.publish(data, attributes)

    def close(self) -> None:
        pass
