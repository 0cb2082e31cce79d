"""Follow the completion (and progress) events of the jobs ``submit`` just published.

``submit --wait`` creates its own subscriptions on RESULTS_TOPIC (and PROGRESS_TOPIC when set)
*before* publishing, so no event can be missed, and deletes them at the end. They also expire by
themselves after a day unused, in case the command is killed. Events of other jobs on the topic
are acknowledged and ignored; duplicates (at-least-once delivery) are counted once.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from worker.record.result import STATUSES

PULL_MAX = 1000
PULL_TIMEOUT_S = 2.0


@dataclass
class Tracker:
    """What is known about a set of job ids; fed by events, read by the progress display."""

    wanted: set[str]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)  # job id -> fraction done

    def feed(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        """Take one event; return it when it is the first completion of a wanted job."""
        job_id, status = doc.get("job_id"), doc.get("status")
        if job_id not in self.wanted or not isinstance(job_id, str):
            return None
        if status == "running":
            if job_id not in self.results:
                total = float(doc.get("total") or 0)
                self.running[job_id] = float(doc.get("value") or 0) / total if total else 0.0
            return None
        if status not in STATUSES or job_id in self.results:
            return None
        self.results[job_id] = doc
        self.running.pop(job_id, None)
        return doc

    @property
    def finished(self) -> bool:
        return len(self.results) == len(self.wanted)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results.values() if r.get("status") == "failed")

    @property
    def cancelled(self) -> int:
        return sum(1 for r in self.results.values() if r.get("status") == "cancelled")


class EventFollower:
    """Temporary subscriptions on the results (and progress) topics."""

    def __init__(self, project: str, name: str, topics: Iterable[str]) -> None:
        import google.cloud.pubsub_v1 as pubsub_v1

        self._client = pubsub_v1.SubscriberClient()
        self._subscriptions: list[str] = []
        for i, topic in enumerate(topics):
            subscription = f"projects/{project}/subscriptions/{name}-{i}"
            self._client.create_subscription(
                request={
                    "name": subscription,
                    "topic": topic,
                    "ack_deadline_seconds": 60,
                    "expiration_policy": {"ttl": {"seconds": 86_400}},  # the minimum: one day
                }
            )
            self._subscriptions.append(subscription)

    def pull(self, timeout_s: float = PULL_TIMEOUT_S) -> list[dict[str, Any]]:
        """Events from every subscription, acknowledged at once (they are only being read)."""
        from google.api_core import exceptions as gexc

        docs: list[dict[str, Any]] = []
        for subscription in self._subscriptions:
            try:
                response = self._client.pull(
                    request={"subscription": subscription, "max_messages": PULL_MAX},
                    timeout=timeout_s,
                )
            except gexc.DeadlineExceeded:
                continue
            if not response.received_messages:
                continue
            self._client.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in response.received_messages],
                }
            )
            for received in response.received_messages:
                docs.append(_decode(received.message.data, dict(received.message.attributes)))
        return docs

    def close(self) -> None:
        for subscription in self._subscriptions:
            # It expires by itself after a day unused: not worth failing the command over.
            with contextlib.suppress(Exception):
                self._client.delete_subscription(request={"subscription": subscription})
        self._client.close()


def _decode(data: bytes, attributes: dict[str, str]) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    for key in ("job_id", "status"):
        doc.setdefault(key, attributes.get(key))
    return doc


def follow(
    follower: EventFollower,
    tracker: Tracker,
    on_result: Callable[[dict[str, Any]], None],
    on_tick: Callable[[Tracker], None],
    timeout_s: float | None,
) -> bool:
    """Pull until every wanted job has finished (True) or ``timeout_s`` passes (False)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not tracker.finished:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        for doc in follower.pull():
            result = tracker.feed(doc)
            if result is not None:
                on_result(result)
        on_tick(tracker)
    return True
