"""An ``EventPublisher`` that keeps what it was given, for tests that run without Pub/Sub.

``faults`` makes ``publish`` fail: each error in ``faults`` is raised by the next call, in turn
(``worker.errors.Transient`` is what ``PubSubPublisher`` raises once its budget is spent). A failed
``publish_nowait`` is dropped, as the real one logs and drops it. ``tests/contract/
test_publishers.py`` runs the same checks against this and ``PubSubPublisher`` on the emulator.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class RecordingPublisher:
    published: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    faults: list[BaseException] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        with self._lock:
            if self.faults:
                raise self.faults.pop(0)
            self.published.append((data, dict(attributes)))
            return str(len(self.published))

    def publish_nowait(self, data: bytes, attributes: Mapping[str, str]) -> None:
        with contextlib.suppress(Exception):  # the real one logs a warning and drops it
            self.publish(data, attributes)

    def close(self) -> None:
        pass
