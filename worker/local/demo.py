"""The local end-to-end run behind ``scripts/local-run``.

Starts the Pub/Sub emulator and fake-gcs-server, creates the topics, the dead-lettered
subscription and the output bucket, submits sample jobs, runs ``python -m worker run`` until the
queue drains, then prints where the outputs and ``result.json`` landed and the completion events,
downloads the outputs under ``.local/outputs/`` and stops what it started.

This is a developer tool, not part of the worker: it reads its few options from the command line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.api_core import exceptions as gexc
from google.cloud import storage

from worker.local import emulators

PROJECT = "local-project"
BUCKET = "local-outputs"
TOPICS = {"jobs": "jobs", "results": "results", "dead": "jobs-dead-letter"}
SAMPLES: list[dict[str, Any]] = [
    {  # a named pipeline with parameters (pipelines/demo-invert.json)
        "job_id": "demo-pipeline",
        "pipeline": "demo-invert",
        "params": {"width": 256, "height": 128, "color": 0x3366FF},
        "metadata": {"sample": "pipeline"},
    },
    {  # the same kind of workflow as a Runpod worker-comfyui request body, unchanged
        "input": {
            "workflow": {
                "1": {
                    "class_type": "EmptyImage",
                    "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": 0xFF8800},
                },
                "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
                "3": {
                    "class_type": "SaveImage",
                    "inputs": {"images": ["2", 0], "filename_prefix": "runpod"},
                },
            }
        }
    },
]


def path(kind: str, name: str) -> str:
    return f"projects/{PROJECT}/{kind}/{name}"


def create_resources() -> None:
    """Idempotent: topics, the job subscription (600 s deadline, backoff, dead-letter after 5)."""
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    for topic in TOPICS.values():
        with contextlib.suppress(gexc.AlreadyExists):
            publisher.create_topic(name=path("topics", topic))
    subscriptions: dict[str, dict[str, Any]] = {
        "jobs": {
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
        "results-watch": {"topic": path("topics", TOPICS["results"])},
    }
    for name, spec in subscriptions.items():
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(request={"name": path("subscriptions", name), **spec})
    with contextlib.suppress(gexc.Conflict):
        storage.Client(project=PROJECT).create_bucket(BUCKET)


def submit() -> list[str]:
    publisher = pubsub_v1.PublisherClient()
    ids = []
    for sample in SAMPLES:
        data = json.dumps(sample).encode()
        attrs = {} if "job_id" in sample else {"job_id": "demo-runpod"}
        publisher.publish(path("topics", TOPICS["jobs"]), data, **attrs).result()
        ids.append(sample.get("job_id", "demo-runpod"))
    return ids


def run_worker(env: dict[str, str], log_path: Path, python: str) -> int:
    with log_path.open("w") as log:
        return subprocess.call([python, "-m", "worker", "run"], env=env, stdout=log, stderr=log)


def report(job_ids: list[str], out_dir: Path) -> bool:
    gcs = storage.Client(project=PROJECT)
    ok = True
    for job_id in job_ids:
        blobs = list(gcs.list_blobs(BUCKET, prefix=f"outputs/{job_id}/"))
        print(f"\n== job {job_id}: gs://{BUCKET}/outputs/{job_id}/")
        for blob in blobs:
            local = out_dir / job_id / Path(blob.name).name
            local.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(local))
            print(f"   {blob.name:<45} {blob.content_type:<28} {blob.size:>8} B -> {local}")
        result = next((b for b in blobs if b.name.endswith("/result.json")), None)
        if result is None:
            print("   no result.json: the job did not finish (see the worker log)")
            ok = False
            continue
        doc = json.loads(result.download_as_bytes())
        ok = ok and doc["status"] == "succeeded"
        print(f"   status: {doc['status']}  error: {doc['error']}  timings: {doc['timings']}")
    subscriber = pubsub_v1.SubscriberClient()
    response = subscriber.pull(
        request={"subscription": path("subscriptions", "results-watch"), "max_messages": 50},
        timeout=5,
    )
    print(f"\n== completion events on {path('topics', TOPICS['results'])}:")
    for m in response.received_messages:
        doc = json.loads(m.message.data)
        print(
            f"   attributes={dict(m.message.attributes)} outputs="
            f"{[o['uri'] for o in doc['outputs']]}"
        )
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/local-run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui-dir", required=True, help="a ComfyUI checkout (COMFYUI_DIR)")
    ap.add_argument("--state", default=".local", help="where logs, work files and outputs go")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs the worker")
    args = ap.parse_args()
    state = Path(args.state).resolve()
    logs = state / "logs"
    ps = emulators.start_pubsub(logs)
    gcs = emulators.start_gcs(logs)
    os.environ["PUBSUB_EMULATOR_HOST"] = ps.host
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://{gcs.host}"
    print(f"Pub/Sub emulator on {ps.host}, fake-gcs-server on {gcs.host} (logs: {logs})")
    try:
        create_resources()
        job_ids = submit()
        print(f"submitted {job_ids} to {path('topics', TOPICS['jobs'])}; running the worker...")
        env = {
            **os.environ,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "JOBS_SUBSCRIPTION": "jobs",
            "RESULTS_TOPIC": TOPICS["results"],
            "OUTPUT_URI": f"gs://{BUCKET}/outputs",
            "COMFYUI_DIR": args.comfyui_dir,
            "WORK_DIR": str(state / "work"),
            "IDLE_EXIT_S": "3",
        }
        code = run_worker(env, logs / "worker.log", args.python)
        print(f"worker exited with {code} (log: {logs / 'worker.log'})")
        ok = report(job_ids, state / "outputs")
    finally:
        ps.stop()
        gcs.stop()
        print("\nstopped the emulators")
    return 0 if ok and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
