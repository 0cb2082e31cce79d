"""``EventPublisher`` on a Pub/Sub topic.

The client batches publishes briefly (10 ms, ``max_latency_s``) and retries on its own; a
publisher whose callers each wait for their one message (HTTP mode's, one request at a time;
the job worker's results, which the finisher waits for before the ack) sends it at once
instead (``max_latency_s=0``: a batch of one, no wait for company).
``publish`` waits for the server's ack at most ``budget_s`` and then raises ``Transient``, so a
stuck publish can't hold a job's ack forever. A publish that completes after that only
duplicates an event, which consumers must tolerate anyway (at-least-once).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent import futures

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as gexc

from worker.errors import Transient
from worker.obs import logs

log = logging.getLogger(__name__)


class PubSubPublisher:
    def __init__(self, topic: str, budget_s: float, max_latency_s: float = 0.01) -> None:
        self._topic = topic
        self._budget_s = budget_s
        batch = (
            pubsub_v1.types.BatchSettings(max_latency=max_latency_s)
            if max_latency_s > 0
            else pubsub_v1.types.BatchSettings(max_messages=1)
        )
        self._client = pubsub_v1.PublisherClient(
            batch_settings=batch,
            publisher_options=pubsub_v1.types.PublisherOptions(timeout=budget_s),
        )

    @property
    def topic(self) -> str:
        return self._topic

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        future = self._client.publish(self._topic, data, **attributes)
        try:
            message_id: str = future.result(timeout=self._budget_s)
        except (futures.TimeoutError, gexc.GoogleAPICallError, gexc.RetryError) as exc:
            raise Transient(
                f"publishing to {self._topic} failed after {self._budget_s:.0f} s: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return message_id

    def publish_nowait(self, data: bytes, attributes: Mapping[str, str]) -> None:
        future = self._client.publish(self._topic, data, **attributes)

        def done(f: futures.Future[str]) -> None:
            exc = f.exception()
            if exc is not None:
                logs.event(
                    log,
                    "event publish failed",
                    logging.WARNING,
                    topic=self._topic,
                    error=f"{type(exc).__name__}: {exc}",
                )

        future.add_done_callback(done)

    def close(self) -> None:
        self._client.stop()
