"""Run the built image against the emulators on this host (``tests/deploy/build-image`` calls it).

As the plan's "Test 3" goes on a machine without a GPU: the Pub/Sub emulator and fake-gcs-server
run here, the container shares this host's network (buildah's chroot isolation), and inside it,
as the image's user, run ``python -m worker check`` (exit 0 expected) and then ``python -m worker
run``, which must drain a model-free job and an SD1.5 job (random weights, mounted read-only at
/models, never baked in) to ``result.json`` and events, and exit 0.

Then the service shape (service.yaml): the image's default command (its entrypoint and command as
the image config has them: ``python -m worker serve``) with ``PORT`` and the same emulator
environment. ``GET /healthz`` must answer 200 (timed), ``GET /ready`` 200 within
``--ready-timeout`` (process start to ready: the cold start), ``POST /predict`` of the model-free
workflow must answer its result document (succeeded, its output in GCS, the same ``result.json``
written, an event), and a second ``/predict`` while an SD1.5 one runs must get 429 (the SD1.5 one
then succeeds). SIGTERM to the served process must stop it with exit 0. Prints what each step
took and writes the figures to ``--summary`` (JSON).

    python -m tests.deploy.image_run --container CTR --models DIR --summary FILE [--store DRIVER]
        [--ready-timeout S]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from tests.cloud import Cloud
from tests.comfy import workflows
from worker.local import emulators
from worker.local.http_selftest import Answer, request, wait_for

SD15 = "random-sd15-v1.safetensors"
WORKER = ("python", "-m", "worker")
JOBS = {
    "image-model-free": workflows.model_free(color=0x336699, size=512),
    "image-sd15": workflows.sd15(SD15, seed=7),
}
# The service shape's requests: a model-free job, and an SD1.5 one that a second is refused beside.
HTTP_MODEL_FREE = {"job_id": "http-model-free", "workflow": workflows.model_free(0x663399, 512)}
HTTP_SD15 = {"job_id": "http-sd15", "workflow": workflows.sd15(SD15, seed=11)}
HTTP_BUSY = {"job_id": "http-busy", "workflow": workflows.model_free(0x996633, 64)}


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


def service_env(cloud: Cloud, port: int) -> dict[str, str]:
    """service.yaml's variables that matter here, on this run's emulated cloud."""
    env = container_env(cloud)
    for key in ("IDLE_EXIT_S", "PULL_TIMEOUT_S"):  # the job loop's; the service pulls nothing
        env.pop(key)
    return env | {"PORT": str(port), "JOBS_TOPIC": cloud.jobs_topic}


def buildah_run(
    store: str, container: str, models: Path, env: dict[str, str], *argv: str
) -> list[str]:
    cmd = ["buildah", "--storage-driver", store, "run", "--isolation", "chroot"]
    cmd += ["--volume", f"{models}:/models:ro"]
    for key, value in env.items():
        cmd += ["--env", f"{key}={value}"]
    return [*cmd, container, "--", *argv]


def default_command(store: str, container: str) -> list[str]:
    """The image's entrypoint and command (``buildah run`` wants a command spelled out)."""
    cmd = ["buildah", "--storage-driver", store, "inspect", "--type", "container", container]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    config = json.loads(done.stdout)["OCIv1"]["config"]  # (buildah's templates have no json)
    return [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]


def in_container(
    store: str, container: str, models: Path, env: dict[str, str], *argv: str
) -> tuple[int, str, float]:
    cmd = buildah_run(store, container, models, env, *argv)
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


def booted_apart(lines: list[dict[str, Any]]) -> bool:
    """ComfyUI booted in the executor's child process (``EXECUTOR_PROCESS``, the default)."""
    started = first(lines, "executor.process_started")
    return bool(started) and first(lines, "comfyui.booted").get("process") == "executor"


def run(
    store: str, container: str, models: Path, ready_timeout_s: float
) -> tuple[dict[str, Any], list[str]]:
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
            summary["run"]["executor_process"] = booted_apart(lines)
            if not booted_apart(lines):
                failures.append("worker run: ComfyUI did not boot in the executor process")
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
            summary["service"] = serve(store, container, models, cloud, logs, ready_timeout_s,
                                       failures)  # fmt: skip
        finally:
            cloud.close()
            ps.stop()
            gcs.stop()
    return summary, failures


def serve(
    store: str,
    container: str,
    models: Path,
    cloud: Cloud,
    logs: Path,
    ready_timeout_s: float,
    failures: list[str],
) -> dict[str, Any]:
    """The service shape: the default command serving on the host network, then its checks."""
    command = default_command(store, container)
    summary: dict[str, Any] = {"command": command}
    if command[-1:] != ["serve"]:
        failures.append(f"the image's default command is {command}, not serve")
        return summary
    port = emulators.free_port()
    cmd = buildah_run(store, container, models, service_env(cloud, port), *command)
    log = logs / "service.log"
    started = time.monotonic()
    with log.open("wb") as out:
        # Its own process group: what is left of it can be killed at the end.
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        checks(f"http://127.0.0.1:{port}", started, server, cloud, ready_timeout_s, summary,
               failures)  # fmt: skip
    finally:
        summary["stop"] = stop(server)
        if summary["stop"]["exit"] != 0:
            failures.append(f"service: exited {summary['stop']['exit']} on SIGTERM")
        text = log.read_text(errors="replace")
        lines = json_lines(text)
        summary["boot_s"] = first(lines, "worker.ready").get("boot_s")
        summary["comfyui_phases"] = first(lines, "comfyui.booted").get("phases")
        summary["executor_process"] = booted_apart(lines)
        if not booted_apart(lines):
            failures.append("service: ComfyUI did not boot in the executor process")
        if failures:
            print(f"image-run: the service's log ends:\n{text[-4000:]}", file=sys.stderr)
    print(f"image-run: service: {summary}", file=sys.stderr)
    return summary


def checks(
    base: str,
    started: float,
    server: subprocess.Popen[bytes],
    cloud: Cloud,
    ready_timeout_s: float,
    summary: dict[str, Any],
    failures: list[str],
) -> None:
    up = wait_for(f"{base}/healthz", 120, server)
    if up is None:
        failures.append("service: /healthz never answered 200")
        return
    status, _, took = request(f"{base}/healthz")
    summary["healthz"] = {"status": status, "ms": round(took * 1000, 1), "up_s": round(up, 1)}
    if status != 200:
        failures.append(f"service: /healthz answered {status}")
    ready = wait_for(f"{base}/ready", ready_timeout_s, server)
    if ready is None:
        failures.append(f"service: /ready not 200 within {ready_timeout_s:.0f} s")
        return
    summary["cold_start_s"] = round(time.monotonic() - started, 1)
    status, doc, took = request(f"{base}/predict", HTTP_MODEL_FREE, timeout_s=600)
    summary["predict"] = predicted(cloud, HTTP_MODEL_FREE, (status, doc, took), failures)
    # A second request while an SD1.5 one runs: refused with 429 (one job at a time).
    answers: list[Answer] = []
    thread = threading.Thread(
        target=lambda: answers.append(request(f"{base}/predict", HTTP_SD15, timeout_s=600))
    )
    thread.start()
    busy: Answer | None = None
    while thread.is_alive():
        _, health, _ = request(f"{base}/v2/image/health", timeout_s=10)
        if health.get("jobs", {}).get("inProgress"):
            busy = request(f"{base}/predict", HTTP_BUSY, timeout_s=60)
            break
        time.sleep(0.05)
    thread.join(660)
    summary["concurrent"] = {
        "status": busy[0] if busy else None,
        "error": (busy[1].get("error") or {}).get("type") if busy else None,
    }
    if busy is None or busy[0] != 429:
        failures.append(f"service: the concurrent /predict got {busy and busy[:2]}, not 429")
    if not answers:
        failures.append("service: the SD1.5 /predict never answered")
    else:
        summary["predict_sd15"] = predicted(cloud, HTTP_SD15, answers[0], failures)
    events = {e["job_id"] for e in cloud.events(2, timeout_s=20)}
    for name, body in (("predict", HTTP_MODEL_FREE), ("predict_sd15", HTTP_SD15)):
        if name in summary:
            summary[name]["event"] = body["job_id"] in events
            if body["job_id"] not in events:
                failures.append(f"service: {body['job_id']}: no completion event")


def predicted(
    cloud: Cloud, body: dict[str, Any], answer: Answer, failures: list[str]
) -> dict[str, Any]:
    """One /predict answer checked: 200, succeeded, its outputs in GCS, result.json the same."""
    status, doc, took = answer
    job_id = body["job_id"]
    outputs = [str(o.get("uri")) for o in doc.get("outputs") or []]
    stored = cloud.objects()
    prefix = f"gs://{cloud.bucket}/"
    in_gcs = [uri for uri in outputs if uri.removeprefix(prefix) in stored]
    recorded = cloud.result(job_id)
    out = {
        "http": status,
        "seconds": round(took, 2),
        "status": doc.get("status"),
        "timings": doc.get("timings"),
        "outputs": outputs,
        "result_json": recorded == doc,
    }
    print(f"image-run: /predict {job_id}: {out}", file=sys.stderr)
    if status != 200 or doc.get("status") != "succeeded":
        failures.append(f"service: /predict {job_id} answered {status}: {str(doc)[:1000]}")
    if not outputs or in_gcs != outputs:
        failures.append(f"service: /predict {job_id}: outputs {outputs}, in GCS {in_gcs}")
    if recorded != doc:
        failures.append(f"service: {job_id}: result.json is {recorded}, the answer {doc}")
    return out


def served_pid(server: subprocess.Popen[bytes]) -> int | None:
    """The container's own process under buildah (its first ``python`` descendant): where Cloud
    Run's SIGTERM goes. buildah, signalled itself, kills its child instead of passing it on."""
    todo, seen = [server.pid], set()
    while todo:
        pid = todo.pop(0)
        seen.add(pid)
        try:
            if pid != server.pid and Path(f"/proc/{pid}/comm").read_text().startswith("python"):
                return pid
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        todo = [c for c in todo if c not in seen]
    return None


def stop(server: subprocess.Popen[bytes]) -> dict[str, Any]:
    """SIGTERM to the served process, as Cloud Run stops an instance; how it exited, and when.
    Its process group is killed after 30 s, or at once when the process can't be found."""
    started = time.monotonic()
    if server.poll() is None:
        pid = served_pid(server)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        try:
            server.wait(30 if pid is not None else 0.1)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)
    return {"exit": server.returncode, "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--container", required=True)
    parser.add_argument("--models", type=Path, required=True, help="has checkpoints/" + SD15)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--store", default="overlay", help="buildah's storage driver")
    parser.add_argument("--ready-timeout", type=float, default=300.0, help="seconds for /ready")
    args = parser.parse_args(argv)
    if not (args.models / "checkpoints" / SD15).is_file():
        print(f"image-run: {args.models}/checkpoints/{SD15} is missing", file=sys.stderr)
        return 2
    summary, failures = run(args.store, args.container, args.models, args.ready_timeout)
    args.summary.write_text(json.dumps(summary, indent=2) + "\n")
    for failure in failures:
        print(f"image-run: FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
