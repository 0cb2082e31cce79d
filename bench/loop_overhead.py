"""Per-job worker overhead and GPU duty cycle of the job loop, against the emulators.

    .venv/bin/python -m bench.loop_overhead [--jobs 200] [--exec-s 0.5 3] \
        [--max-crashed-attempts 2 0] [--executor-process] [--latency-ms 40]

A backlog of N jobs goes through the Pub/Sub emulator and fake-gcs-server. The executor takes a
fixed time and writes a 2 MB PNG. Two loops run in the same process on the same backlog size:

- ``baseline``: the sequential loop a straightforward worker has (pull -> prepare -> execute ->
  upload -> result.json -> event -> ack, one after the other), built from the same project pieces;
- ``worker``: ``worker.loop.runner.Runner`` (prefetch of the next job, recording in the background);
  with ``--executor-process`` also ``worker (executor process)``: the same executor behind
  ``ProcessExecutor`` (``EXECUTOR_PROCESS``, the worker's default), in a child process.

Overhead per job = the gap between one execution's end and the next one's start (p50/p95);
duty cycle = execution time / wall time from the first execution's start to the last one's end.

``--latency-ms`` puts that round-trip time on every request to both emulators, as a remote GCS
and Pub/Sub have (``tests.fakes.proxy``): a request on the GPU's path between two executions
then shows as that much overhead per job, where against local emulators it costs a millisecond.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import statistics
import struct
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1
from google.cloud import storage

from tests.fakes.proxy import Proxy
from worker.adapters.events.pubsub import PubSubPublisher
from worker.adapters.sources.pubsub import PubSubSource
from worker.adapters.storage.gcs import GcsStore
from worker.config import Settings
from worker.executor.base import ExecRequest, ExecResult
from worker.executor.process import ProcessExecutor
from worker.local import emulators
from worker.loop.ledger import Ledger
from worker.loop.prepare import Preparer
from worker.loop.runner import Runner
from worker.message.job import ProducedFile
from worker.message.namespace import Namespace
from worker.message.parse import Parser
from worker.models.fetch import ModelFetcher
from worker.record import outputs as outputs_mod
from worker.record import result as results

PROJECT = "bench-project"


def png_bytes(target: int = 2 * 1024 * 1024) -> bytes:
    """A valid, incompressible RGB PNG of about ``target`` bytes."""
    side = int((target / 3) ** 0.5)
    raw = b"".join(b"\x00" + os.urandom(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 0))
        + chunk(b"IEND", b"")
    )


@dataclass
class FixedExecutor:
    """Sleeps ``exec_s`` (as a GPU would be busy) and writes the PNG; records its timings."""

    exec_s: float
    png: bytes
    spans: list[tuple[float, float]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        pass

    def interrupt(self) -> None:
        self._stop.set()

    def close(self) -> None:
        pass

    def execute(self, request: ExecRequest) -> ExecResult:
        begin = time.monotonic()
        self._stop.wait(self.exec_s)
        path = request.output_dir / "image.png"
        path.write_bytes(self.png)
        span = (begin, time.monotonic())  # CLOCK_MONOTONIC: the same in a child process
        self.spans.append(span)
        return ExecResult(
            (ProducedFile(path, "image.png", "image", node_id="9"),), info={"span": span}
        )


def fixed_from_env(settings: Settings) -> FixedExecutor:
    """``EXECUTOR=bench.loop_overhead:fixed_from_env``, in the executor's child process."""
    return FixedExecutor(float(os.environ["LOOP_BENCH_EXEC_S"]), png_bytes())


class InChild:
    """``ProcessExecutor`` over ``fixed_from_env``, keeping the spans its runs report."""

    isolated = True

    def __init__(self, settings: Settings, exec_s: float) -> None:
        os.environ["LOOP_BENCH_EXEC_S"] = str(exec_s)  # the child inherits the environment
        inner = dataclasses.replace(settings, executor="bench.loop_overhead:fixed_from_env")
        self._executor = ProcessExecutor(inner)
        self.spans: list[tuple[float, float]] = []

    def start(self) -> None:
        self._executor.start()

    def interrupt(self) -> None:
        self._executor.interrupt()

    def close(self) -> None:
        self._executor.close()

    def execute(self, request: ExecRequest) -> ExecResult:
        result = self._executor.execute(request)
        begin, end = result.info["span"]
        self.spans.append((begin, end))
        return result


class Slice:
    """Fresh topics, subscription and bucket on the emulators for one measured run."""

    def __init__(
        self,
        tag: str,
        work: Path,
        max_crashed_attempts: int = 2,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        suffix = f"{tag}-{uuid.uuid4().hex[:6]}"
        self.topic = f"projects/{PROJECT}/topics/jobs-{suffix}"
        self.results = f"projects/{PROJECT}/topics/results-{suffix}"
        self.subscription = f"projects/{PROJECT}/subscriptions/jobs-{suffix}"
        self.bucket = f"bench-{suffix}"
        pub = pubsub_v1.PublisherClient()
        pub.create_topic(name=self.topic)
        pub.create_topic(name=self.results)
        pubsub_v1.SubscriberClient().create_subscription(
            name=self.subscription, topic=self.topic, ack_deadline_seconds=60
        )
        storage.Client(project=PROJECT).create_bucket(self.bucket)
        self.env = {  # the worker's environment (also for ``python -m worker run``)
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "JOBS_SUBSCRIPTION": self.subscription,
            "RESULTS_TOPIC": self.results,
            "OUTPUT_URI": f"gs://{self.bucket}/out",
            "WORK_DIR": str(work / suffix),
            "IDLE_EXIT_S": "2",
            "PULL_TIMEOUT_S": "1.5",
            "LOG_LEVEL": "WARNING",
            "MAX_CRASHED_ATTEMPTS": str(max_crashed_attempts),
            **(extra_env or {}),
        }
        self.settings = Settings.from_env(self.env)
        body = {"workflow": {"9": {"class_type": "Bench", "inputs": {}}}}
        self.publisher = pub
        self.body = json.dumps(body).encode()

    def fill(self, jobs: int) -> None:
        futures = [
            self.publisher.publish(self.topic, self.body, job_id=f"job-{i:05d}")
            for i in range(jobs)
        ]
        for f in futures:
            f.result()

    def pieces(self) -> tuple[PubSubSource, GcsStore, PubSubPublisher, Parser]:
        s = self.settings
        assert s.jobs_subscription and s.results_topic
        source = PubSubSource(s.jobs_subscription, extension_s=60, max_lease_s=3600, budget_s=30)
        return (
            source,
            GcsStore(PROJECT, 30),
            PubSubPublisher(s.results_topic, 30),
            Parser(s.limits, s.output_bucket),
        )


def run_baseline(
    sl: Slice, executor: FixedExecutor, jobs: int, models: ModelFetcher | None = None
) -> None:
    """The sequential loop: nothing overlaps the executor (a job's ``models`` are fetched in
    its own time, before it executes, when ``models`` is given)."""
    source, store, publisher, parser = sl.pieces()
    assert sl.settings.output_uri is not None
    preparer = Preparer(
        parser,
        store,
        sl.settings,
        Namespace(store, sl.settings.output_uri),
        Ledger(store, publisher),
        models,
    )
    never = threading.Event()
    done = 0
    while done < jobs:
        delivery = source.receive(1.5)
        if delivery is None:
            continue
        prepared = preparer.prepare(delivery, never)
        assert prepared.job is not None and prepared.runnable
        request = ExecRequest(
            prepared.job.job_id, prepared.job.workflow, prepared.input_dir, prepared.output_dir
        )
        out = executor.execute(request)
        stored = outputs_mod.upload(out.outputs, prepared.ctx.folder, store)
        doc = results.build(
            prepared.ctx,
            status="succeeded",
            outputs=stored,
            error=None,
            timings=results.Timings(models_s=prepared.models_s),
            identity=sl.settings.identity,
        )
        data = results.encode(doc)
        store.put_bytes_once(doc["result_uri"], data, "application/json")
        publisher.publish(data, results.attributes(doc))
        source.ack(delivery)
        prepared.cleanup()
        done += 1
    source.close()
    publisher.close()


def run_worker(sl: Slice, executor: FixedExecutor | InChild, jobs: int) -> None:
    source, store, publisher, parser = sl.pieces()
    runner = Runner(sl.settings, source, executor, store, publisher, parser)
    runner.run()
    publisher.close()
    executor.close()
    assert runner.jobs_executed == jobs, runner.jobs_executed


def summarize(spans: list[tuple[float, float]]) -> dict[str, float]:
    gaps = sorted(b[0] - a[1] for a, b in itertools.pairwise(spans))
    busy = sum(end - begin for begin, end in spans)
    wall = spans[-1][1] - spans[0][0]
    return {
        "overhead_p50_ms": 1000 * statistics.median(gaps),
        "overhead_p95_ms": 1000 * gaps[int(0.95 * (len(gaps) - 1))],
        "duty_cycle_pct": 100 * busy / wall,
        "wall_s": wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--exec-s", type=float, nargs="+", default=[0.5, 3.0])
    ap.add_argument(
        "--max-crashed-attempts",
        type=int,
        nargs="+",
        default=[2],
        help="worker runs with these MAX_CRASHED_ATTEMPTS (0: attempt markers in the background)",
    )
    ap.add_argument(
        "--executor-process",
        action="store_true",
        help="also run each worker loop with the executor in a child process",
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="round-trip time added to every request to the emulators (remote services)",
    )
    args = ap.parse_args()
    png = png_bytes()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ps = emulators.start_pubsub(work / "logs")
        gcs = emulators.start_gcs(work / "logs")
        ps_host, gcs_host = ps.host, gcs.host
        if args.latency_ms > 0:
            one_way_s = args.latency_ms / 2000
            ps_host, gcs_host = Proxy(ps.host, one_way_s).host, Proxy(gcs.host, one_way_s).host
        os.environ["PUBSUB_EMULATOR_HOST"] = ps_host
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://{gcs_host}"
        try:
            for exec_s in args.exec_s:
                loops: list[tuple[str, Any, int, bool]] = [("baseline", run_baseline, 2, False)]
                for k in args.max_crashed_attempts:
                    loops.append((f"worker (MAX_CRASHED_ATTEMPTS={k})", run_worker, k, False))
                    if args.executor_process:
                        name = f"worker (MAX_CRASHED_ATTEMPTS={k}, executor process)"
                        loops.append((name, run_worker, k, True))
                for name, fn, k, child in loops:
                    sl = Slice(name.split()[0], work, k)
                    sl.fill(args.jobs)
                    executor: FixedExecutor | InChild = (
                        InChild(sl.settings, exec_s) if child else FixedExecutor(exec_s, png)
                    )
                    if child:
                        executor.start()  # the boot is not what is measured
                    fn(sl, executor, args.jobs)
                    rows.append(
                        {
                            "loop": name,
                            "exec_s": exec_s,
                            "latency_ms": args.latency_ms,
                            "png_bytes": len(png),
                            **summarize(executor.spans),
                        }
                    )
                    print(json.dumps(rows[-1]), flush=True)
        finally:
            ps.stop()
            gcs.stop()
    print("\n| exec | loop | overhead p50 | overhead p95 | duty cycle |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['exec_s']} s | {r['loop']} | {r['overhead_p50_ms']:.1f} ms | "
            f"{r['overhead_p95_ms']:.1f} ms | {r['duty_cycle_pct']:.2f} % |"
        )
    for exec_s in args.exec_s:
        base = next(r for r in rows if r["exec_s"] == exec_s and r["loop"] == "baseline")
        for ours in (r for r in rows if r["exec_s"] == exec_s and r["loop"] != "baseline"):
            print(
                f"exec {exec_s} s: overhead p50 ratio baseline/{ours['loop']} = "
                f"{base['overhead_p50_ms'] / max(ours['overhead_p50_ms'], 1e-3):.1f}x"
            )


if __name__ == "__main__":
    main()
