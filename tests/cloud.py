"""A test's own slice of the emulated cloud, and helpers to drive and inspect the worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud import storage

from worker.config import Settings

PROJECT = "test-project"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Cloud:
    suffix: str
    work_dir: Path
    pubsub_host: str
    gcs_url: str
    publisher: pubsub_v1.PublisherClient = field(repr=False)
    subscriber: pubsub_v1.SubscriberClient = field(repr=False)
    gcs: storage.Client = field(repr=False)

    @classmethod
    def create(
        cls, suffix: str, work_dir: Path, pubsub_host: str, gcs_url: str, ack_deadline_s: int = 10
    ) -> Cloud:
        c = cls(
            suffix,
            work_dir,
            pubsub_host,
            gcs_url,
            pubsub_v1.PublisherClient(),
            pubsub_v1.SubscriberClient(),
            storage.Client(project=PROJECT),
        )
        for topic in (c.jobs_topic, c.results_topic, c.dead_topic):
            c.publisher.create_topic(name=topic)
        c.subscriber.create_subscription(
            request={
                "name": c.jobs_subscription,
                "topic": c.jobs_topic,
                "ack_deadline_seconds": ack_deadline_s,
                "dead_letter_policy": {
                    "dead_letter_topic": c.dead_topic,
                    "max_delivery_attempts": 5,
                },
                "retry_policy": {
                    "minimum_backoff": {"seconds": 0},
                    "maximum_backoff": {"seconds": 1},
                },
            }
        )
        c.subscriber.create_subscription(name=c.events_subscription, topic=c.results_topic)
        c.subscriber.create_subscription(name=c.dead_subscription, topic=c.dead_topic)
        c.gcs.create_bucket(c.bucket)
        return c

    # -- names ------------------------------------------------------------------------------

    @property
    def jobs_topic(self) -> str:
        return f"projects/{PROJECT}/topics/jobs-{self.suffix}"

    @property
    def results_topic(self) -> str:
        return f"projects/{PROJECT}/topics/results-{self.suffix}"

    @property
    def dead_topic(self) -> str:
        return f"projects/{PROJECT}/topics/dead-{self.suffix}"

    @property
    def jobs_subscription(self) -> str:
        return f"projects/{PROJECT}/subscriptions/jobs-{self.suffix}"

    @property
    def events_subscription(self) -> str:
        return f"projects/{PROJECT}/subscriptions/events-{self.suffix}"

    @property
    def dead_subscription(self) -> str:
        return f"projects/{PROJECT}/subscriptions/dead-{self.suffix}"

    @property
    def bucket(self) -> str:
        return f"out-{self.suffix}"

    @property
    def output_uri(self) -> str:
        return f"gs://{self.bucket}/results"

    # -- configuration ----------------------------------------------------------------------

    def env(self, **overrides: Any) -> dict[str, str]:
        """The worker's environment for this slice (short timeouts for tests)."""
        env = {
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "JOBS_SUBSCRIPTION": self.jobs_subscription,
            "RESULTS_TOPIC": self.results_topic,
            "OUTPUT_URI": self.output_uri,
            "WORK_DIR": str(self.work_dir),
            "EXECUTOR": "tests.fakes.scripted:build",
            "IDLE_EXIT_S": "1",
            "PULL_TIMEOUT_S": "1.5",
            "LEASE_EXTENSION_S": "10",
            "SERVICE_RETRY_S": "5",
            "PUBSUB_EMULATOR_HOST": self.pubsub_host,
            "STORAGE_EMULATOR_HOST": self.gcs_url,
        }
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def settings(self, **overrides: Any) -> Settings:
        return Settings.from_env(self.env(**overrides))

    # -- driving ------------------------------------------------------------------------------

    def publish(self, body: Any, **attributes: str) -> str:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        message_id: str = self.publisher.publish(self.jobs_topic, data, **attributes).result()
        return message_id

    def spawn_worker(self, log_path: Path, **overrides: Any) -> subprocess.Popen[bytes]:
        """``python -m worker run`` in a child process with this slice's environment."""
        env = {**os.environ, **self.env(**overrides), "PYTHONPATH": str(REPO)}
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "worker", "run"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    # -- inspecting ---------------------------------------------------------------------------

    def pull(
        self, subscription: str, want: int, timeout_s: float = 10, ack: bool = True
    ) -> list[pubsub_v1.types.ReceivedMessage]:
        got: list[pubsub_v1.types.ReceivedMessage] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < want and time.monotonic() < deadline:
            response = self.subscriber.pull(
                request={"subscription": subscription, "max_messages": want - len(got)},
                timeout=max(1.5, min(3.0, deadline - time.monotonic())),
            )
            if ack and response.received_messages:
                self.subscriber.acknowledge(
                    request={
                        "subscription": subscription,
                        "ack_ids": [m.ack_id for m in response.received_messages],
                    }
                )
            got.extend(response.received_messages)
        return got

    def events(self, want: int, timeout_s: float = 10) -> list[dict[str, Any]]:
        return [
            json.loads(m.message.data) | {"_attributes": dict(m.message.attributes)}
            for m in self.pull(self.events_subscription, want, timeout_s)
        ]

    def result(self, job_id: str, prefix: str = "") -> dict[str, Any] | None:
        key = "/".join(p for p in ("results", prefix, job_id, "result.json") if p)
        blob = self.gcs.bucket(self.bucket).get_blob(key)
        return None if blob is None else dict(json.loads(blob.download_as_bytes()))

    def objects(self, prefix: str = "") -> dict[str, storage.Blob]:
        return {b.name: b for b in self.gcs.list_blobs(self.bucket, prefix=prefix)}

    def backlog(self, timeout_s: float = 2.5) -> int:
        """How many job messages are deliverable now (pulled, then handed straight back)."""
        msgs = self.pull(self.jobs_subscription, 1000, timeout_s, ack=False)
        if msgs:
            self.subscriber.modify_ack_deadline(
                request={
                    "subscription": self.jobs_subscription,
                    "ack_ids": [m.ack_id for m in msgs],
                    "ack_deadline_seconds": 0,
                }
            )
        return len(msgs)

    def close(self) -> None:
        self.subscriber.close()
        self.publisher.stop()
