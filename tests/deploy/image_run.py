"""Run the built image against the emulators on this host (``tests/deploy/build-image`` calls it).

As the plan's "Test 3" goes on a machine without a GPU: the Pub/Sub emulator and fake-gcs-server
run here, the container shares this host's network (buildah's chroot isolation), and inside it,
as the image's user, run ``python -m worker check`` (exit 0 expected) and then ``python -m worker
run``, which must drain a model-free job and an SD1.5 job (random weights, mounted read-only at
/models, never baked in) to ``result.json`` and events, and exit 0. Prints what each step took
and writes the figures to ``--summary`` (JSON).

    python -m tests.deploy.image_run --container CTR --models DIR --summary FILE [--store DRIVER]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.cloud import Cloud
from tests.comfy import workflows
from worker.local import emulators

SD15 = "random-sd15-v1.safetensors"
WORKER = ("python", "-m", "worker")
JOBS = {
    "image-model-free": workflows.model_free(color=0x336699, size=512),
    "image-sd15": workflows.sd15(SD15, seed=7),
}


def container_env(cloud: Cloud) -> dict[str, str]:
    return cloud.env(
        EXECUTOR="worker.executor.comfy:build_executor",
        COMFYUI_DEVICE="cpu",  # no GPU here; jobs.yaml says cuda
        MODELS_DIR="/models",
        WORK_DIR="/tmp/worker",
        IDLE_EXIT_S="5",
        PULL_TIMEOUT_S="2",
        JOB_TIMEOUT_S="600",
    )


def in_container(
    store: str, container: str, models: Path, env: dict[str, str], *argv: str
) -> tuple[int, str, float]:
    cmd = ["buildah", "--storage-driver", store, "run", "--isolation", "chroot"]
    cmd += ["--volume", f"{models}:/models:ro"]
    for key, value in env.items():
        cmd += ["--env", f"{key}={value}"]
    cmd += [container, "--", *argv]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=False)
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def json_lines(text: str) -> list[dict[str, Any]]:
    out = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def first(lines: list[dict[str, Any]], message: str) -> dict[str, Any]:
    return next((line for line in lines if line.get("message") == message), {})


def run(store: str, container: str, models: Path) -> tuple[dict[str, Any], list[str]]:
    failures: list[str] = []
    summary: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as logs_dir:
        logs = Path(logs_dir)
        ps, gcs = emulators.start_pubsub(logs), emulators.start_gcs(logs)
        os.environ["PUBSUB_EMULATOR_HOST"] = ps.host
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://{gcs.host}"
        cloud = Cloud.create("image", logs / "work", ps.host, f"http://{gcs.host}", 600)
        try:
            env = container_env(cloud)
            code, out, took = in_container(store, container, models, env, *WORKER, "check")
            summary["check"] = {"exit": code, "seconds": round(took, 1)}
            print(f"image-run: worker check exited {code} in {took:.1f} s", file=sys.stderr)
            if code != 0:
                failures.append(f"worker check exited {code}:\n{out[-3000:]}")
            for job_id, workflow in JOBS.items():
                cloud.publish({"job_id": job_id, "workflow": workflow})
            code, out, took = in_container(store, container, models, env, *WORKER, "run")
            lines = json_lines(out)
            summary["run"] = {
                "exit": code,
                "seconds": round(took, 1),
                "boot_s": first(lines, "worker.ready").get("boot_s"),
                "comfyui_phases": first(lines, "comfyui.booted").get("phases"),
            }
            print(f"image-run: worker run exited {code} in {took:.1f} s", file=sys.stderr)
            if code != 0:
                failures.append(f"worker run exited {code}:\n{out[-4000:]}")
            events = {e["job_id"]: e for e in cloud.events(len(JOBS), timeout_s=20)}
            for job_id in JOBS:
                result = cloud.result(job_id)
                status = result["status"] if result else None
                summary[job_id] = {
                    "status": status,
                    "timings": result["timings"] if result else None,
                    "outputs": [o["uri"] for o in result["outputs"]] if result else [],
                    "event": job_id in events,
                }
                print(f"image-run: {job_id}: {summary[job_id]}", file=sys.stderr)
                if status != "succeeded" or not result or not result["outputs"]:
                    failures.append(f"{job_id}: {result}")
                if job_id not in events:
                    failures.append(f"{job_id}: no completion event")
        finally:
            cloud.close()
            ps.stop()
            gcs.stop()
    return summary, failures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--container", required=True)
    parser.add_argument("--models", type=Path, required=True, help="has checkpoints/" + SD15)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--store", default="overlay", help="buildah's storage driver")
    args = parser.parse_args(argv)
    if not (args.models / "checkpoints" / SD15).is_file():
        print(f"image-run: {args.models}/checkpoints/{SD15} is missing", file=sys.stderr)
        return 2
    summary, failures = run(args.store, args.container, args.models)
    args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    for failure in failures:
        print(f"image-run: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
