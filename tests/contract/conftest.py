"""Each seam, two implementations, one suite: the in-memory fakes and the emulated cloud.

Every test here takes a harness fixture parametrised ``memory`` / ``emulator``: the memory one
wraps ``tests/fakes`` (on a ``FakeClock``, so that waiting past an ack deadline costs no time); the
emulator one wraps the worker's own ``PubSubSource``, ``PubSubPublisher`` and ``GcsStore`` on the
Pub/Sub emulator and fake-gcs-server (the ``cloud`` fixture: fresh topics, subscriptions and
bucket per test). A test states the behaviour the worker relies on once, and both must show it,
so the fakes the loop tests run on cannot drift from the real adapters.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import pytest

from tests.cloud import PROJECT, Cloud
from tests.fakes.clock import FakeClock
from tests.fakes.memsource import MemorySource, MemorySubscription
from tests.fakes.memstore import MemoryStore
from tests.fakes.publisher import RecordingPublisher
from worker.adapters.events.base import EventPublisher
from worker.adapters.events.pubsub import PubSubPublisher
from worker.adapters.sources.base import JobSource
from worker.adapters.sources.pubsub import PubSubSource
from worker.adapters.storage.base import ObjectStore
from worker.adapters.storage.gcs import GcsStore
from worker.errors import Transient

IMPLS = ["memory", "emulator"]
ACK_DEADLINE_S = 10  # the subscription's (tests.cloud), and the memory subscription's


class Sources(Protocol):
    """A subscription to publish to and to open sources on, and the time they live in."""

    def publish(self, body: Any, **attributes: str) -> str: ...
    def source(self, *, max_lease_s: float = 600.0, extension_s: float = 10.0) -> JobSource: ...
    def sleep(self, seconds: float) -> None: ...
    def now(self) -> float: ...


@dataclass
class MemorySources:
    clock: FakeClock = field(default_factory=FakeClock)
    opened: list[MemorySource] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.subscription = MemorySubscription(self.clock, ack_deadline_s=ACK_DEADLINE_S)

    def publish(self, body: Any, **attributes: str) -> str:
        return self.subscription.publish(body, **attributes)

    def source(self, *, max_lease_s: float = 600.0, extension_s: float = 10.0) -> JobSource:
        s = MemorySource(self.subscription, extension_s=extension_s, max_lease_s=max_lease_s)
        self.opened.append(s)
        return s

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)

    def now(self) -> float:
        return self.clock.monotonic()


@dataclass
class EmulatorSources:
    cloud: Cloud
    opened: list[PubSubSource] = field(default_factory=list)

    def publish(self, body: Any, **attributes: str) -> str:
        return self.cloud.publish(body, **attributes)

    def source(self, *, max_lease_s: float = 600.0, extension_s: float = 10.0) -> JobSource:
        s = PubSubSource(
            self.cloud.jobs_subscription,
            extension_s=extension_s,
            max_lease_s=max_lease_s,
            budget_s=5,
        )
        self.opened.append(s)
        return s

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def now(self) -> float:
        return time.monotonic()


H = TypeVar("H")


def harness(
    request: pytest.FixtureRequest, memory: Callable[[], H], emulator: Callable[[Cloud], H]
) -> Iterator[H]:
    """The fixture's implementation for its param, and whatever it ``opened`` closed after."""
    made = memory() if request.param == "memory" else emulator(request.getfixturevalue("cloud"))
    try:
        yield made
    finally:
        for opened in getattr(made, "opened", []):
            opened.close()


@pytest.fixture(params=IMPLS)
def sources(request: pytest.FixtureRequest) -> Iterator[Sources]:
    made: Iterator[Sources] = harness(request, MemorySources, EmulatorSources)
    yield from made


@pytest.fixture(params=IMPLS)
def store_and_bucket(request: pytest.FixtureRequest) -> tuple[ObjectStore, str]:
    """A store and an empty bucket in it."""
    if request.param == "memory":
        return MemoryStore(), "out-memory"
    cloud: Cloud = request.getfixturevalue("cloud")
    return GcsStore(PROJECT, retry_budget_s=5), cloud.bucket


class Events(Protocol):
    def publisher(self) -> EventPublisher: ...
    def broken(self) -> EventPublisher: ...
    def received(self, want: int, timeout_s: float = 10) -> list[tuple[bytes, dict[str, str]]]: ...


@dataclass
class MemoryEvents:
    recording: RecordingPublisher = field(default_factory=RecordingPublisher)

    def publisher(self) -> EventPublisher:
        return self.recording

    def broken(self) -> EventPublisher:
        return RecordingPublisher(faults=[Transient("publishing failed after 1 s")] * 3)

    def received(self, want: int, timeout_s: float = 10) -> list[tuple[bytes, dict[str, str]]]:
        return list(self.recording.published)


@dataclass
class EmulatorEvents:
    cloud: Cloud
    opened: list[PubSubPublisher] = field(default_factory=list)

    def publisher(self) -> EventPublisher:
        self.opened.append(PubSubPublisher(self.cloud.results_topic, budget_s=5))
        return self.opened[-1]

    def broken(self) -> EventPublisher:
        missing = f"projects/{PROJECT}/topics/missing-{self.cloud.suffix}"
        self.opened.append(PubSubPublisher(missing, budget_s=1))
        return self.opened[-1]

    def received(self, want: int, timeout_s: float = 10) -> list[tuple[bytes, dict[str, str]]]:
        got = self.cloud.pull(self.cloud.events_subscription, want, timeout_s)
        return [(m.message.data, dict(m.message.attributes)) for m in got]


@pytest.fixture(params=IMPLS)
def events(request: pytest.FixtureRequest) -> Iterator[Events]:
    made: Iterator[Events] = harness(request, MemoryEvents, EmulatorEvents)
    yield from made


def job(job_id: str) -> bytes:
    return json.dumps({"job_id": job_id}).encode()
