"""The local end-to-end run behind ``scripts/local-run``.

Starts the Pub/Sub emulator and fake-gcs-server, creates the topics, the dead-lettered
subscription and the output bucket (``worker.local.stack``), submits sample jobs, runs ``python -m
worker run`` until the queue drains, then prints where the outputs and ``result.json`` landed and
the completion events, downloads the outputs under ``.local/outputs/`` and stops what it started.
With ``--keep`` it submits nothing and keeps the stack and a worker up until Ctrl-C instead
(``worker.local.playground``).

This is a developer tool, not part of the worker: it reads its few options from the command line
and hands the worker its environment explicitly.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from worker.local import playground
from worker.local.stack import BUCKET, TOPICS, WATCH, Stack, path, start

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


def submit(stack: Stack) -> list[str]:
    publisher = stack.publisher()
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


def report(stack: Stack, job_ids: list[str], out_dir: Path) -> bool:
    gcs = stack.storage()
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
    subscriber = stack.subscriber()
    response = subscriber.pull(
        request={"subscription": path("subscriptions", WATCH), "max_messages": 50},
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


def worker_env(stack: Stack, comfyui_dir: str, state: Path, **more: str) -> dict[str, str]:
    """This process's environment (PATH, ...) with the stack's and the worker's settings on top."""
    return {
        **os.environ,
        **stack.exports(),
        "COMFYUI_DIR": comfyui_dir,
        "WORK_DIR": str(state / "work"),
        **more,
    }


def samples(stack: Stack, args: argparse.Namespace, state: Path) -> int:
    logs = state / "logs"
    job_ids = submit(stack)
    print(f"submitted {job_ids} to {path('topics', TOPICS['jobs'])}; running the worker...")
    env = worker_env(stack, args.comfyui_dir, state, IDLE_EXIT_S="3")
    code = run_worker(env, logs / "worker.log", args.python)
    print(f"worker exited with {code} (log: {logs / 'worker.log'})")
    ok = report(stack, job_ids, state / "outputs")
    return 0 if ok and code == 0 else 1


def main() -> int:
    ap = argparse.ArgumentParser(prog="scripts/local-run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--comfyui-dir", required=True, help="a ComfyUI checkout (COMFYUI_DIR)")
    ap.add_argument("--state", default=".local", help="where logs, work files and outputs go")
    ap.add_argument("--python", default=sys.executable, help="interpreter that runs the worker")
    ap.add_argument(
        "--keep", action="store_true", help="submit nothing; keep the stack up until Ctrl-C"
    )
    args = ap.parse_args()
    state = Path(args.state).resolve()
    stack = start(state / "logs")
    print(f"Pub/Sub emulator on {stack.pubsub.host}, fake-gcs-server on {stack.gcs.host}")
    try:
        if args.keep:
            # Days, not a minute: a playground waits for its user (Cloud Run's task limit is 7 d).
            week = str(7 * 86_400)
            env = worker_env(stack, args.comfyui_dir, state, IDLE_EXIT_S=week, TASK_TIMEOUT_S=week)
            return playground.keep(stack, [args.python, "-m", "worker", "run"], env, state)
        return samples(stack, args, state)
    finally:
        stack.stop()
        print("\nstopped the emulators")


if __name__ == "__main__":
    sys.exit(main())
