"""Publish many job messages fast: the client batches them (up to 1000 per request) and we wait
for all the futures at the end instead of one round trip per message."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent import futures

from worker.producer.messages import Outgoing, SubmitError

BATCH_MESSAGES = 1000
BATCH_BYTES = 9_000_000  # under the 10 MB request limit
BATCH_LATENCY_S = 0.05


def publish_all(topic: str, messages: Iterable[Outgoing], timeout_s: float = 120.0) -> list[str]:
    """Publish every message; return the job ids in order. Raises ``SubmitError`` naming the
    jobs that could not be published (the others are out: publishing is not atomic)."""
    import google.cloud.pubsub_v1 as pubsub_v1

    client = pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(
            max_messages=BATCH_MESSAGES, max_bytes=BATCH_BYTES, max_latency=BATCH_LATENCY_S
        ),
        publisher_options=pubsub_v1.types.PublisherOptions(timeout=timeout_s),
    )
    pending: list[tuple[str, futures.Future[str]]] = []
    try:
        for message in messages:
            pending.append(
                (message.job_id, client.publish(topic, message.data, **message.attributes))
            )
        failed: list[str] = []
        for job_id, future in pending:
            try:
                future.result(timeout=timeout_s)
            except Exception as exc:  # every publish error is reported the same way
                failed.append(f"{job_id} ({type(exc).__name__}: {exc})")
    finally:
        client.stop()
    if failed:
        shown = "; ".join(failed[:5]) + (f"; and {len(failed) - 5} more" if len(failed) > 5 else "")
        raise SubmitError(f"{len(failed)} of {len(pending)} job(s) were not published: {shown}")
    return [job_id for job_id, _ in pending]
