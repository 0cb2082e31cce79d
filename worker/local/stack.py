"""The local stack for ``scripts/local-run``: the emulators, the resources the worker expects, and
clients and environments pointed at them.

Nothing here writes ``os.environ``: this process's own clients are given the emulators' addresses,
and each child (the worker, a second shell) gets its environment spelled out (``Stack.exports``).
"""

from __future__ import annotations

import contextlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as gexc
from google.cloud import storage

from worker.local import emulators

PROJECT = "local-project"
BUCKET = "local-outputs"
TOPICS = {"jobs": "jobs", "results": "results", "progress": "progress", "dead": "jobs-dead-letter"}
SUBSCRIPTION = "jobs"
WATCH = "results-watch"  # what the sample run reads the completion events from


def path(kind: str, name: str) -> str:
    return f"projects/{PROJECT}/{kind}/{name}"


@dataclass
class Stack:
    pubsub: emulators.Emulator
    gcs: emulators.Emulator

    @property
    def output_uri(self) -> str:
        return f"gs://{BUCKET}/outputs"

    def exports(self) -> dict[str, str]:
        """What a process needs to use this stack: the worker, ``submit``, ``status``."""
        return {
            "PUBSUB_EMULATOR_HOST": self.pubsub.host,
            "STORAGE_EMULATOR_HOST": f"http://{self.gcs.host}",
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "JOBS_TOPIC": TOPICS["jobs"],
            "JOBS_SUBSCRIPTION": SUBSCRIPTION,
            "RESULTS_TOPIC": TOPICS["results"],
            "PROGRESS_TOPIC": TOPICS["progress"],
            "OUTPUT_URI": self.output_uri,
        }

    def export_lines(self, extra: dict[str, str] | None = None) -> list[str]:
        env = self.exports() | (extra or {})
        return [f"export {k}={shlex.quote(v)}" for k, v in env.items()]

    # The emulators' addresses go to the clients themselves (the libraries would otherwise read
    # PUBSUB_EMULATOR_HOST / STORAGE_EMULATOR_HOST from this process's environment).

    def publisher(self) -> pubsub_v1.PublisherClient:
        import grpc
        from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

        channel = grpc.insecure_channel(self.pubsub.host)
        return pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=channel))

    def subscriber(self) -> pubsub_v1.SubscriberClient:
        import grpc
        from google.pubsub_v1.services.subscriber.transports.grpc import SubscriberGrpcTransport

        channel = grpc.insecure_channel(self.pubsub.host)
        return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=channel))

    def storage(self) -> storage.Client:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": f"http://{self.gcs.host}"},
        )

    def stop(self) -> None:
        self.pubsub.stop()
        self.gcs.stop()


def start(log_dir: Path) -> Stack:
    """Both emulators, then the topics, the job subscription and the bucket."""
    ps = emulators.start_pubsub(log_dir)
    try:
        gcs = emulators.start_gcs(log_dir)
    except BaseException:
        ps.stop()
        raise
    stack = Stack(ps, gcs)
    try:
        _create_resources(stack)
    except BaseException:
        stack.stop()
        raise
    return stack


def _create_resources(stack: Stack) -> None:
    """Idempotent: topics, the job subscription (600 s deadline, backoff, dead-letter after 5)."""
    publisher, subscriber = stack.publisher(), stack.subscriber()
    for topic in TOPICS.values():
        with contextlib.suppress(gexc.AlreadyExists):
            publisher.create_topic(name=path("topics", topic))
    subscriptions: dict[str, dict[str, Any]] = {
        SUBSCRIPTION: {
            "topic": path("topics", TOPICS["jobs"]),
            "ack_deadline_seconds": 600,
            "retry_policy": {
                "minimum_backoff": {"seconds": 10},
                "maximum_backoff": {"seconds": 600},
            },
            "dead_letter_policy": {
                "dead_letter_topic": path("topics", TOPICS["dead"]),
                "max_delivery_attempts": 5,
            },
        },
        WATCH: {"topic": path("topics", TOPICS["results"])},
    }
    for name, spec in subscriptions.items():
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(request={"name": path("subscriptions", name), **spec})
    subscriber.close()
    with contextlib.suppress(gexc.Conflict):
        stack.storage().create_bucket(BUCKET)
