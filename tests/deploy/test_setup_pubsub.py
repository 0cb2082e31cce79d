"""scripts/setup-pubsub against the real Pub/Sub emulator, through gcloud's endpoint override:
it creates what infra/ creates, converges on a re-run, and dead-letters after five attempts."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1

from worker.local.emulators import Emulator

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "setup-test"


def setup_pubsub(emulator: Emulator, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as config:
        env = dict(
            os.environ,
            CLOUDSDK_CONFIG=config,
            CLOUDSDK_AUTH_DISABLE_CREDENTIALS="true",
            CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
            CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB=f"http://{emulator.host}/",
        )
        result = subprocess.run(
            [str(ROOT / "scripts" / "setup-pubsub"), "--project", PROJECT, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    return result


def sub_path(name: str) -> str:
    return f"projects/{PROJECT}/subscriptions/{name}"


def test_creates_the_dead_lettered_subscription_and_converges(pubsub_emulator: Emulator) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    first = setup_pubsub(pubsub_emulator, "--prefix", prefix)
    assert f"created subscription {prefix}-jobs-worker" in first.stderr
    subscriber = pubsub_v1.SubscriberClient()
    sub = subscriber.get_subscription(subscription=sub_path(f"{prefix}-jobs-worker"))
    assert sub.topic == f"projects/{PROJECT}/topics/{prefix}-jobs"
    assert sub.ack_deadline_seconds == 600
    assert (
        sub.dead_letter_policy.dead_letter_topic
        == f"projects/{PROJECT}/topics/{prefix}-dead-letter"
    )
    assert sub.dead_letter_policy.max_delivery_attempts == 5
    assert sub.retry_policy.minimum_backoff.total_seconds() == 10
    assert sub.retry_policy.maximum_backoff.total_seconds() == 600
    for name in (f"{prefix}-dead-letter-hold", f"{prefix}-results-watch"):
        subscriber.get_subscription(subscription=sub_path(name))

    # Someone changes a setting by hand; a second run puts it back and creates nothing.
    subscriber.update_subscription(
        request={
            "subscription": {"name": sub_path(f"{prefix}-jobs-worker"), "ack_deadline_seconds": 30},
            "update_mask": {"paths": ["ack_deadline_seconds"]},
        }
    )
    second = setup_pubsub(pubsub_emulator, "--prefix", prefix)
    assert "created" not in second.stderr
    assert f"topic {prefix}-jobs exists" in second.stderr
    sub = subscriber.get_subscription(subscription=sub_path(f"{prefix}-jobs-worker"))
    assert sub.ack_deadline_seconds == 600
    assert sub.dead_letter_policy.max_delivery_attempts == 5


def test_a_message_nacked_five_times_lands_in_the_dead_letter_hold(
    pubsub_emulator: Emulator,
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    # Short backoff so five redeliveries take seconds, not minutes.
    setup_pubsub(
        pubsub_emulator, "--prefix", prefix, "--min-retry-delay", "1s", "--max-retry-delay", "1s"
    )
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    publisher.publish(f"projects/{PROJECT}/topics/{prefix}-jobs", b'{"job_id": "doomed"}').result()
    attempts: list[int] = []
    held: list[bytes] = []
    deadline = time.monotonic() + 90
    # Keep pulling like a worker: the emulator moves the message to the dead-letter topic when the
    # sixth delivery would be due.
    while not held and time.monotonic() < deadline:
        resp = subscriber.pull(
            request={"subscription": sub_path(f"{prefix}-jobs-worker"), "max_messages": 1},
            timeout=2,
        )
        for msg in resp.received_messages:
            attempts.append(msg.delivery_attempt)
            subscriber.modify_ack_deadline(
                request={
                    "subscription": sub_path(f"{prefix}-jobs-worker"),
                    "ack_ids": [msg.ack_id],
                    "ack_deadline_seconds": 0,
                }
            )
        if len(attempts) >= 5:
            resp = subscriber.pull(
                request={"subscription": sub_path(f"{prefix}-dead-letter-hold"), "max_messages": 1},
                timeout=2,
            )
            held += [m.message.data for m in resp.received_messages]
    assert attempts == [1, 2, 3, 4, 5]
    assert held == [b'{"job_id": "doomed"}']
