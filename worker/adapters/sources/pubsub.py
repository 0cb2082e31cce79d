"""``JobSource`` on a Pub/Sub subscription: synchronous pull, one message at a time.

Synchronous pull (not streaming) because the worker must never hold messages it isn't about to
run: a streaming pull buffers messages in the client, where another task can't take them, and
drops their lease when ``max_lease_duration`` is shorter than a job (the message then runs twice).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as gexc

from worker import retry
from worker.adapters.sources.base import OnDeath
from worker.adapters.sources.lease import Leaser
from worker.config import Settings
from worker.errors import ServiceUnavailable, Transient
from worker.message.job import Delivery
from worker.obs import logs

log = logging.getLogger(__name__)

RETRYABLE: tuple[type[BaseException], ...] = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.Aborted,
    gexc.Unknown,
    gexc.ResourceExhausted,
    gexc.DeadlineExceeded,
)


class PubSubSource:
    finite = False

    def __init__(
        self,
        subscription: str,
        *,
        extension_s: float,
        max_lease_s: float,
        budget_s: float,
        max_delivery_attempts: int = Settings.max_delivery_attempts,
    ) -> None:
        self._subscription = subscription
        self._budget_s = budget_s
        self._max_attempts = max_delivery_attempts
        self._client = pubsub_v1.SubscriberClient()
        self._leaser = Leaser(self._extend, extension_s, max_lease_s)

    def receive(self, timeout_s: float) -> Delivery | None:
        def pull() -> pubsub_v1.types.PullResponse:
            try:
                return self._client.pull(
                    request={"subscription": self._subscription, "max_messages": 1},
                    timeout=timeout_s,
                    retry=None,
                )
            except gexc.DeadlineExceeded:  # nothing arrived within timeout_s
                return pubsub_v1.types.PullResponse()

        try:
            response = retry.call(
                pull,
                what=f"Pub/Sub pull {self._subscription}",
                budget_s=self._budget_s,
                retryable=RETRYABLE,
            )
        except Transient as exc:
            raise ServiceUnavailable(str(exc)) from exc
        except gexc.NotFound as exc:
            raise ServiceUnavailable(f"subscription {self._subscription} does not exist") from exc
        except gexc.PermissionDenied as exc:
            raise ServiceUnavailable(
                f"no permission to pull from {self._subscription}: grant the worker's service "
                "account roles/pubsub.subscriber on it"
            ) from exc
        # The raw protobuf: proto-plus copies a bytes field on each access (three copies of a
        # message of several MB, on this thread, while a job executes).
        pb = pubsub_v1.types.PullResponse.pb(response)
        if not pb.received_messages:
            return None
        received = pb.received_messages[0]
        self._leaser.add(received.ack_id)
        message = received.message
        # Only set when the subscription has a dead-letter policy; 0 means unknown.
        attempt = received.delivery_attempt or None
        published = message.publish_time if message.HasField("publish_time") else None
        return Delivery(
            message_id=message.message_id,
            data=message.data,
            attributes=dict(message.attributes),
            delivery_attempt=attempt,
            handle=received.ack_id,
            source="pubsub",
            published_at=published.seconds + published.nanos / 1e9 if published else None,
            final_attempt=attempt is not None and attempt >= self._max_attempts,
        )

    def watch(self, on_death: OnDeath) -> None:
        self._leaser.watch(on_death)

    def ack(self, delivery: Delivery) -> None:
        ack_id = str(delivery.handle)
        self._leaser.remove(ack_id)
        retry.call(
            lambda: self._client.acknowledge(
                request={"subscription": self._subscription, "ack_ids": [ack_id]},
                retry=None,
                timeout=30,
            ),
            what="Pub/Sub ack",
            budget_s=self._budget_s,
            retryable=RETRYABLE,
        )

    def nack(self, delivery: Delivery) -> None:
        ack_id = str(delivery.handle)
        self._leaser.remove(ack_id)
        self._modify([ack_id], 0, what="Pub/Sub nack")

    def close(self) -> None:
        held = self._leaser.held()
        self._leaser.stop()
        if held:  # hand back anything still held so another task takes it now
            try:
                self._modify(held, 0, what="Pub/Sub nack on close", budget_s=3.0)
            except Exception as exc:
                logs.event(
                    log,
                    "could not hand back held messages",
                    logging.WARNING,
                    count=len(held),
                    error=str(exc),
                )
        self._client.close()

    def _extend(self, ack_ids: Sequence[str], seconds: int) -> None:
        self._modify(ack_ids, seconds, what="Pub/Sub lease extension")

    def _modify(
        self, ack_ids: Sequence[str], seconds: int, *, what: str, budget_s: float | None = None
    ) -> None:
        retry.call(
            lambda: self._client.modify_ack_deadline(
                request={
                    "subscription": self._subscription,
                    "ack_ids": list(ack_ids),
                    "ack_deadline_seconds": seconds,
                },
                retry=None,
                timeout=30,
            ),
            what=what,
            budget_s=budget_s or self._budget_s,
            retryable=RETRYABLE,
        )
