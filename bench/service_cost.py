"""CPU the local emulators spend per request, of each kind a job makes, back to back and spaced.

    .venv/bin/python -m bench.service_cost [--requests 200] [--gap-ms 25]

On the 2-core development host the emulators run on the same cores as the worker and ComfyUI,
so their CPU per job is part of what a model-free job costs there (docs/performance.md). This
measures it per request kind: the Pub/Sub emulator's and fake-gcs-server's CPU (their whole
process groups, from /proc) across ``--requests`` requests, once back to back and once with
``--gap-ms`` of sleep between requests (a job's pace: each request then meets a service that
has gone idle since the last one). The clients are the ones the worker uses: google-cloud-pubsub
(unary pull, ack, modify_ack_deadline, publish through the batching client) and
google-cloud-storage. It prints one JSON object: for each kind and pace, each service's CPU in ms
per request ("idle (no request)" is the services' own CPU over the same time).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud import storage

from worker.local import emulators

PROJECT = "bench-project"
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def group_cpu_ms(pid: int) -> float:
    """CPU (user + system) of every process in ``pid``'s process group, in ms."""
    group, total = os.getpgid(pid), 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == group:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])
    return total * TICK_S * 1000


class Services:
    def __init__(self, pubsub: emulators.Emulator, gcs: emulators.Emulator) -> None:
        self.pids = {"pubsub": pubsub.process.pid, "gcs": gcs.process.pid}

    def cpu(self) -> dict[str, float]:
        return {name: group_cpu_ms(pid) for name, pid in self.pids.items()}


def measure(
    services: Services, op: Callable[[int], object], n: int, gap_s: float
) -> dict[str, float]:
    """Each service's CPU per request, over ``op(1)`` .. ``op(n)`` (``op(0)`` warms up)."""
    op(0)
    time.sleep(0.5)
    before = services.cpu()
    for i in range(1, n + 1):
        op(i)
        if gap_s:
            time.sleep(gap_s)
    time.sleep(1.0)  # what the services do after the last answer counts too
    after = services.cpu()
    return {name: round((after[name] - before[name]) / n, 2) for name in after}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=25.0)
    args = parser.parse_args()
    n, gap = args.requests, args.gap_ms / 1000
    with tempfile.TemporaryDirectory() as tmp:
        pubsub = emulators.start_pubsub(Path(tmp))
        gcs = emulators.start_gcs(Path(tmp))
        try:
            os.environ["PUBSUB_EMULATOR_HOST"] = pubsub.host
            os.environ["STORAGE_EMULATOR_HOST"] = f"http://{gcs.host}"
            report = run(Services(pubsub, gcs), n, gap)
        finally:
            pubsub.stop()
            gcs.stop()
    print(json.dumps(report, indent=1))


def run(services: Services, n: int, gap: float) -> dict[str, object]:
    tag = uuid.uuid4().hex[:8]
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    jobs, events = (f"projects/{PROJECT}/topics/{t}-{tag}" for t in ("jobs", "events"))
    subscription = f"projects/{PROJECT}/subscriptions/jobs-{tag}"
    for topic in (jobs, events):
        publisher.create_topic(name=topic)
    subscriber.create_subscription(name=subscription, topic=jobs, ack_deadline_seconds=600)
    client = storage.Client.create_anonymous_client()
    client.project = PROJECT
    bucket = client.create_bucket(f"bench-{tag}")
    futures = [publisher.publish(jobs, b'{"job_id": "x"}') for _ in range(2 * (n + 1))]
    for future in futures:
        future.result()
    held: list[str] = []  # ack ids pulled at this pace, then extended, then acked

    def pull(_: int) -> None:
        got = subscriber.pull(request={"subscription": subscription, "max_messages": 1})
        held.append(got.received_messages[0].ack_id)

    def modack(i: int) -> None:
        subscriber.modify_ack_deadline(
            request={"subscription": subscription, "ack_ids": [held[i]], "ack_deadline_seconds": 60}
        )

    def ack(i: int) -> None:
        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [held[i]]})

    marker = b'{"outcome": "succeeded"}'
    unique = itertools.count()  # object names, never reused across paces
    output = os.urandom(2_000_000)
    kinds: dict[str, Callable[[int], object]] = {
        "idle (no request)": lambda i: None,
        "pubsub pull (1 message)": pull,
        "pubsub modify_ack_deadline": modack,
        "pubsub ack": ack,
        "pubsub publish (event, batching client)": lambda i: publisher.publish(
            events, b'{"status": "succeeded"}' * 20, job_id=str(i)
        ).result(),
        "gcs create-once 24 B (marker)": lambda i: bucket.blob(
            f"m/{next(unique)}"
        ).upload_from_string(marker, if_generation_match=0),
        "gcs stat, absent (cancel check)": lambda i: bucket.get_blob(f"absent/{i}"),
        "gcs create-once 2 MB (output)": lambda i: bucket.blob(
            f"o/{next(unique)}"
        ).upload_from_string(output, if_generation_match=0),
    }
    report: dict[str, dict[str, dict[str, float]]] = {name: {} for name in kinds}
    for pace, gap_s in (("burst", 0.0), ("spaced", gap)):
        held.clear()
        for name, op in kinds.items():
            report[name][pace] = measure(services, op, n, gap_s)
    return {"requests": n, "gap_ms": gap * 1000, "cpu_ms_per_request": report}


if __name__ == "__main__":
    main()
