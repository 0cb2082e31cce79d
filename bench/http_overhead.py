"""HTTP mode's overhead against the embedded job worker's, on the same workflow and emulators.

    COMFYUI_DIR=/path/to/ComfyUI VENV/bin/python -m bench.http_overhead [--rounds 4] [--jobs 10]

Starts the local stack (the Pub/Sub emulator and fake-gcs-server), then two processes with real
ComfyUI on the same emulators:

- ``http``: ``main.py`` served by functions-framework, as ``python main.py --test`` serves it.
  A job is one ``POST /predict``; its overhead is the request's latency minus the executor's own
  time (``timings.execution_s`` of the result document it returns).
- ``worker``: ``python -m worker run``, the embedded job worker. A job is published to the jobs
  topic, then the bench waits for its completion event on the results topic before publishing
  the next: one job at a time, the load a synchronous client gives. Its overhead is publish ->
  completion event seen, minus ``timings.execution_s`` of that event's document (the bytes of
  ``result.json``).

Each path's jobs are the model-free ``demo-invert`` pipeline at 64x64 (a different colour per job,
so no job is served from ComfyUI's cache). The two paths run in ABBA rounds, ``--jobs`` jobs per
block, after one warmup job each. For both paths the table also gives the worker's own view:
``timings.total_s - execution_s`` (received -> outputs uploaded, minus execution: the namespace
claim, the attempt record, the executor's wrapping and the upload; not ``result.json`` or the
event, which come after ``total_s`` is taken).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1

from worker.local import emulators, stack
from worker.local.http_selftest import REPO, request, server_env, spawn, wait_for


@dataclass
class Sample:
    path: str
    latency_ms: float  # request -> response (http); publish -> completion event seen (worker)
    execution_ms: float
    inside_ms: float  # timings.total_s - execution_s

    @property
    def overhead_ms(self) -> float:
        return self.latency_ms - self.execution_ms


@dataclass
class Events:
    """Completion events from the results topic, by job id, with the time each was seen."""

    local: stack.Stack
    seen: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def start(self) -> None:
        self.subscriber = self.local.subscriber()
        flow = pubsub_v1.types.FlowControl(max_messages=100)
        self.future = self.subscriber.subscribe(
            stack.path("subscriptions", stack.WATCH), self._on_message, flow_control=flow
        )

    def _on_message(self, message: Any) -> None:
        at = time.monotonic()
        message.ack()
        with self.cond:
            self.seen[message.attributes.get("job_id", "")] = (at, json.loads(message.data))
            self.cond.notify_all()

    def wait(self, job_id: str, timeout_s: float) -> tuple[float, dict[str, Any]]:
        with self.cond:
            ok = self.cond.wait_for(lambda: job_id in self.seen, timeout_s)
            assert ok, f"no completion event for {job_id} within {timeout_s} s"
            return self.seen.pop(job_id)

    def stop(self) -> None:
        self.future.cancel()
        self.subscriber.close()


def publisher(local: stack.Stack) -> pubsub_v1.PublisherClient:
    """A publisher that sends each message at once (the default batches for up to 10 ms)."""
    import grpc
    from google.pubsub_v1.services.publisher.transports.grpc import PublisherGrpcTransport

    transport = PublisherGrpcTransport(channel=grpc.insecure_channel(local.pubsub.host))
    batch = pubsub_v1.types.BatchSettings(max_messages=1, max_latency=0.001)
    return pubsub_v1.PublisherClient(batch_settings=batch, transport=transport)


def job(job_id: str, n: int) -> dict[str, Any]:
    params = {"width": 64, "height": 64, "color": (n * 7919) % 0xFFFFFF}
    return {"job_id": job_id, "pipeline": "demo-invert", "params": params}


def inside_ms(doc: dict[str, Any]) -> float:
    t = doc["timings"]
    return (float(t["total_s"]) - float(t["execution_s"])) * 1000


def run_http(base: str, job_id: str, n: int) -> Sample:
    started = time.monotonic()
    status, doc, _ = request(f"{base}/predict", job(job_id, n))
    took = time.monotonic() - started
    assert status == 200 and doc.get("status") == "succeeded", (status, doc)
    execution = float(doc["timings"]["execution_s"]) * 1000
    return Sample("http", took * 1000, execution, inside_ms(doc))


def run_worker(
    pub: pubsub_v1.PublisherClient, events: Events, job_id: str, n: int, timeout_s: float = 120
) -> Sample:
    topic = stack.path("topics", stack.TOPICS["jobs"])
    data = json.dumps(job(job_id, n)).encode()
    started = time.monotonic()
    pub.publish(topic, data, job_id=job_id).result()
    seen_at, doc = events.wait(job_id, timeout_s)
    assert doc.get("status") == "succeeded", doc
    execution = float(doc["timings"]["execution_s"]) * 1000
    return Sample("worker", (seen_at - started) * 1000, execution, inside_ms(doc))


def start_processes(
    local: stack.Stack, logs: Path, comfyui: str
) -> tuple[str, subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    port = emulators.free_port()
    env = {**server_env(port, logs / "http-work", comfyui, local), "LOG_LEVEL": "WARNING"}
    base, server, _ = spawn(port, env, logs / "http.log")
    worker_env = {
        **os.environ,
        **local.exports(),
        "OUTPUT_URI": f"gs://{stack.BUCKET}/worker",
        "WORK_DIR": str(logs / "worker-work"),
        "PYTHONPATH": str(REPO),
        "COMFYUI_DIR": comfyui,
        "COMFYUI_DEVICE": os.environ.get("COMFYUI_DEVICE", "cpu"),
        "IDLE_EXIT_S": "86400",
        "LOG_LEVEL": "WARNING",
    }
    with (logs / "worker.log").open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            cwd=REPO, env=worker_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return base, server, worker


def stats(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def report(samples: list[Sample]) -> None:
    by = {p: [s for s in samples if s.path == p] for p in ("http", "worker")}
    print("\n| path | jobs | execution p50 | latency p50 | overhead p50 | overhead p95 "
          "| total_s - execution_s p50 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, rows in by.items():
        over_p50, over_p95 = stats([s.overhead_ms for s in rows])
        print(
            f"| {name} | {len(rows)} | {statistics.median(s.execution_ms for s in rows):.2f} ms "
            f"| {statistics.median(s.latency_ms for s in rows):.1f} ms | {over_p50:.1f} ms "
            f"| {over_p95:.1f} ms | {statistics.median(s.inside_ms for s in rows):.1f} ms |"
        )
    h50, h95 = stats([s.overhead_ms for s in by["http"]])
    w50, w95 = stats([s.overhead_ms for s in by["worker"]])
    hi, wi = (statistics.median(s.inside_ms for s in by[p]) for p in ("http", "worker"))
    print(
        f"\nhttp - worker: overhead p50 {h50 - w50:+.1f} ms, p95 {h95 - w95:+.1f} ms; "
        f"total_s - execution_s p50 {hi - wi:+.1f} ms (target: within 5 ms)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4, help="ABBA rounds (an even number)")
    parser.add_argument("--jobs", type=int, default=10, help="jobs per path per round")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    args = parser.parse_args()
    comfyui = os.environ.get("COMFYUI_DIR")
    if not comfyui:
        print("set COMFYUI_DIR to a ComfyUI checkout", file=sys.stderr)
        return 2
    samples: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="http-overhead-") as tmp:
        logs = Path(tmp)
        local = stack.start(logs)
        events = Events(local)
        events.start()
        pub = publisher(local)
        base, server, worker = start_processes(local, logs, comfyui)
        try:
            assert wait_for(f"{base}/ready", 300, server) is not None, "http: not ready"
            run_http(base, "warm-http", 0)  # the first job loads ComfyUI's caches
            run_worker(pub, events, "warm-worker", 0, timeout_s=300)
            n = 0
            for r in range(args.rounds):
                order = ("http", "worker") if r % 2 == 0 else ("worker", "http")
                for path in order:
                    for _ in range(args.jobs):
                        n += 1
                        job_id = f"{path}-{n:04d}"
                        if path == "http":
                            samples.append(run_http(base, job_id, n))
                        else:
                            samples.append(run_worker(pub, events, job_id, n))
                print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
        except BaseException:
            for name in ("http.log", "worker.log"):
                sys.stderr.write(f"--- {name}\n")
                sys.stderr.write((logs / name).read_text(errors="replace")[-3000:])
            raise
        finally:
            for process in (server, worker):
                process.terminate()
            for process in (server, worker):
                process.wait(15)
            events.stop()
            local.stop()
    if args.json:
        args.json.write_text(json.dumps([s.__dict__ for s in samples], indent=1))
    report(samples)
    return 0


if __name__ == "__main__":
    sys.exit(main())
