"""Publishing throughput of ``submit --jsonl`` against the Pub/Sub emulator.

    .venv/bin/python -m bench.submit_publish [--jobs 20000] [--baseline-jobs 500]

Two publishers run in the same process against the same emulator, on the same messages:

- ``baseline``: one publish at a time, waiting for each message id (what a loop calling
  ``publisher.publish(...).result()`` per job does);
- ``submit``: what ``submit --jsonl`` does: read the JSONL file, build each message, and
  ``worker.producer.publish.publish_all`` them (client-side batches of up to 1000, all futures
  awaited at the end); the time includes reading and building.

It prints messages per second for each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import google.cloud.pubsub_v1 as pubsub_v1

from worker.local import emulators
from worker.producer.messages import Outgoing, jsonl_bodies, outgoing
from worker.producer.publish import publish_all

PROJECT = "bench-project"


def messages(n: int, batch: str) -> list[Outgoing]:
    body = {"pipeline": "sd15-txt2img", "params": {"prompt": "a lighthouse at dusk, " * 4}}
    return [outgoing(dict(body), f"{batch}-{i:06d}") for i in range(n)]


def baseline(topic: str, msgs: list[Outgoing]) -> float:
    client = pubsub_v1.PublisherClient()
    started = time.perf_counter()
    for m in msgs:
        client.publish(topic, m.data, **m.attributes).result()
    elapsed = time.perf_counter() - started
    client.stop()
    return len(msgs) / elapsed


def batched(topic: str, jsonl: Path) -> float:
    started = time.perf_counter()
    msgs = [outgoing(body, f"fast-{n:06d}") for n, body in jsonl_bodies(jsonl)]
    publish_all(topic, msgs)
    return len(msgs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--baseline-jobs", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        emulator = emulators.start_pubsub(Path(tmp))
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        try:
            topic = f"projects/{PROJECT}/topics/jobs-{uuid.uuid4().hex[:8]}"
            pubsub_v1.PublisherClient().create_topic(name=topic)
            base = baseline(topic, messages(args.baseline_jobs, "base"))
            jsonl = Path(tmp) / "jobs.jsonl"
            jsonl.write_bytes(b"".join(m.data + b"\n" for m in messages(args.jobs, "fast")))
            fast = batched(topic, jsonl)
        finally:
            emulator.stop()
    print(
        json.dumps(
            {
                "baseline_msgs_per_s": round(base),
                "baseline_jobs": args.baseline_jobs,
                "submit_msgs_per_s": round(fast),
                "submit_jobs": args.jobs,
                "ratio": round(fast / base, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
