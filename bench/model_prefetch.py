"""GPU duty cycle when every job brings its own model: prefetched vs fetched in the job's time.

    .venv/bin/python -m bench.model_prefetch [--jobs 10] [--model-mb 100 300] [--exec-s 3]

N distinct models (sizes spread evenly over ``--model-mb MIN MAX``; one value: all that size)
are uploaded to fake-gcs-server, and a backlog of N jobs, each needing its own model (a gs://
entry with its sha256, allowed by ``ALLOWED_MODEL_BUCKETS``), goes through the Pub/Sub emulator.
The executor sleeps a fixed time. Two loops run on the same models in the same process run,
each with an empty model cache of its own:

- ``baseline``: fetching in the job's own time, the sequential loop of ``bench.loop_overhead``
  (pull -> prepare, which fetches the model -> execute -> upload -> result -> ack); the worker
  has no setting that turns its model prefetch off;
- ``worker``: ``python -m worker run`` in a child process (``EXECUTOR=
  bench.model_prefetch:build_executor``), which fetches the next job's model while the current
  one executes.

Duty cycle = execution time / wall time from the first execution's start to the last one's
end (the first job's own fetch, which nothing can overlap, falls outside). ``models_s`` and
``models_overlap_s`` come from each job's ``result.json``. Model bytes are a random 1 MiB block
repeated, behind a per-model header (so hashes differ); the model caches are deleted after
each loop and everything else when the run ends.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.cloud import storage

from bench.loop_overhead import PROJECT, FixedExecutor, Slice, png_bytes, run_baseline, summarize
from worker.config import Settings
from worker.executor.base import ExecRequest, ExecResult
from worker.local import emulators
from worker.models.fetch import ModelFetcher

REPO = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024
BLOCK = 1 * MiB


@dataclass
class SpanFileExecutor(FixedExecutor):
    """``FixedExecutor`` that also appends each run's ``begin end`` (monotonic) to a file, so
    the bench can read the spans of a worker in another process."""

    spans_file: Path | None = None

    def execute(self, request: ExecRequest) -> ExecResult:
        result = super().execute(request)
        if self.spans_file is not None:
            begin, end = self.spans[-1]
            with self.spans_file.open("a") as f:
                f.write(f"{begin:.6f} {end:.6f}\n")
        return result


def build_executor(settings: Settings) -> SpanFileExecutor:
    """``EXECUTOR=bench.model_prefetch:build_executor`` (``BENCH_EXEC_S``, ``BENCH_SPANS``)."""
    return SpanFileExecutor(
        float(os.environ.get("BENCH_EXEC_S", "3")),
        png_bytes(64 * 1024),
        spans_file=Path(os.environ["BENCH_SPANS"]) if os.environ.get("BENCH_SPANS") else None,
    )


@dataclass(frozen=True)
class Model:
    uri: str
    name: str
    size: int
    sha256: str


def sizes(count: int, low_mb: float, high_mb: float) -> list[int]:
    if count == 1:
        return [int(low_mb * MiB)]
    step = (high_mb - low_mb) / (count - 1)
    return [int((low_mb + i * step) * MiB) for i in range(count)]


def model_bytes(index: int, size: int, block: bytes) -> bytes:
    header = f"bench-model {index} {uuid.uuid4().hex}\n".encode()
    body = block * (size // len(block) + 1)
    return (header + body)[:size]


def upload_models(bucket: str, byte_sizes: list[int]) -> list[Model]:
    client = storage.Client(project=PROJECT)
    client.create_bucket(bucket)
    block = os.urandom(BLOCK)
    models = []
    for i, size in enumerate(byte_sizes):
        data = model_bytes(i, size, block)
        name = f"bench-{i:04d}.safetensors"
        blob = client.bucket(bucket).blob(f"models/{name}")
        blob.upload_from_string(data, content_type="application/octet-stream", timeout=300)
        uri = f"gs://{bucket}/models/{name}"
        models.append(Model(uri, name, size, hashlib.sha256(data).hexdigest()))
        del data
    return models


def publish(sl: Slice, models: list[Model], exec_s: float) -> list[str]:
    futures, ids = [], []
    for i, m in enumerate(models):
        job_id = f"job-{i:05d}"
        body = {
            "job_id": job_id,
            "workflow": {"9": {"class_type": "Bench", "inputs": {"exec_s": exec_s}}},
            "models": [{"uri": m.uri, "folder": "loras", "name": m.name, "sha256": m.sha256}],
        }
        futures.append(sl.publisher.publish(sl.topic, json.dumps(body).encode()))
        ids.append(job_id)
    for f in futures:
        f.result()
    return ids


def read_results(sl: Slice, ids: list[str]) -> list[dict[str, Any]]:
    bucket = storage.Client(project=PROJECT).bucket(sl.bucket)
    docs = []
    for job_id in ids:
        doc = json.loads(bucket.blob(f"out/{job_id}/result.json").download_as_bytes())
        assert doc["status"] == "succeeded", (job_id, doc.get("error"))
        docs.append(doc)
    return docs


def run_worker_process(
    sl: Slice, jobs: int, exec_s: float, work: Path, log_dir: Path | None
) -> list[tuple[float, float]]:
    spans_file = work / f"spans-{sl.bucket}.txt"
    log_file = (log_dir or work) / f"worker-{sl.bucket}.log"
    env = {
        **os.environ,
        **sl.env,
        "EXECUTOR": "bench.model_prefetch:build_executor",
        "BENCH_EXEC_S": str(exec_s),
        "BENCH_SPANS": str(spans_file),
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(REPO),
    }
    with log_file.open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "worker", "run"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            code = child.wait(timeout=120 + jobs * (exec_s + 30))
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
    if code != 0:
        sys.stderr.write(log_file.read_text()[-5000:])
        raise SystemExit(f"python -m worker run exited {code}")
    spans = [
        (float(a), float(b))
        for a, b in (line.split() for line in spans_file.read_text().split("\n") if line)
    ]
    assert len(spans) == jobs, (len(spans), jobs)
    return spans


def measure(
    loop: str,
    models: list[Model],
    exec_s: float,
    work: Path,
    extra: dict[str, str],
    log_dir: Path | None = None,
) -> dict[str, Any]:
    cache = work / f"cache-{loop}"
    sl = Slice(
        loop,
        work,
        extra_env={
            "ALLOWED_MODEL_BUCKETS": models[0].uri.split("/")[2],
            "MODEL_CACHE_DIR": str(cache),
            **extra,
        },
    )
    ids = publish(sl, models, exec_s)
    started = time.monotonic()
    try:
        if loop == "baseline":
            executor = FixedExecutor(exec_s, png_bytes(64 * 1024))
            fetcher = ModelFetcher.from_settings(sl.settings)
            assert fetcher is not None
            run_baseline(sl, executor, len(ids), fetcher)
            spans = executor.spans
        else:
            spans = run_worker_process(sl, len(ids), exec_s, work, log_dir)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(sl.settings.work_dir, ignore_errors=True)
    total_s = time.monotonic() - started
    docs = read_results(sl, ids)
    models_s = [d["timings"]["models_s"] for d in docs]
    overlap_s = [d["timings"]["models_overlap_s"] for d in docs]
    later = models_s[1:]  # the first job's fetch has nothing to overlap
    mib = sum(m.size for m in models) / MiB
    return {
        "loop": loop,
        "jobs": len(ids),
        "exec_s": exec_s,
        "model_mib_min": round(min(m.size for m in models) / MiB),
        "model_mib_max": round(max(m.size for m in models) / MiB),
        **summarize(spans),
        "run_s": total_s,
        "models_s_sum": sum(models_s),
        "models_s_p50": statistics.median(later or models_s),
        "models_s_max": max(later or models_s),
        "models_overlap_s_sum": sum(overlap_s),
        "overlap_pct_after_first": 100 * sum(overlap_s[1:]) / max(sum(later), 1e-9),
        "fetch_mib_per_s": mib / max(sum(models_s), 1e-9),
        "models_s_each": [round(x, 2) for x in models_s],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument(
        "--model-mb",
        type=float,
        nargs="+",
        default=[100.0, 300.0],
        metavar="MB",
        help="model size in MiB, or MIN MAX to spread the sizes evenly (default 100 300)",
    )
    ap.add_argument("--exec-s", type=float, default=3.0)
    ap.add_argument(
        "--loops", nargs="+", default=["baseline", "worker"], choices=["baseline", "worker"]
    )
    ap.add_argument(
        "--env",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="extra worker settings for both loops, e.g. MODEL_DOWNLOAD_WORKERS=4",
    )
    ap.add_argument("--log-dir", type=Path, help="keep the worker's log here (JSON lines)")
    args = ap.parse_args()
    low, high = args.model_mb[0], args.model_mb[-1]
    extra = dict(item.split("=", 1) for item in args.env)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        work = Path(tmp)
        ps = emulators.start_pubsub(work / "logs")
        gcs = emulators.start_gcs(work / "logs")
        os.environ["PUBSUB_EMULATOR_HOST"] = ps.host
        os.environ["STORAGE_EMULATOR_HOST"] = f"http://{gcs.host}"
        try:
            began = time.monotonic()
            models = upload_models(f"models-{uuid.uuid4().hex[:6]}", sizes(args.jobs, low, high))
            print(
                f"uploaded {len(models)} models, {sum(m.size for m in models) / MiB:.0f} MiB, "
                f"in {time.monotonic() - began:.1f} s",
                flush=True,
            )
            for loop in args.loops:
                rows.append(measure(loop, models, args.exec_s, work, extra, args.log_dir))
                print(
                    json.dumps(
                        {k: round(v, 4) if isinstance(v, float) else v for k, v in rows[-1].items()}
                    ),
                    flush=True,
                )
        finally:
            ps.stop()
            gcs.stop()
    print("\n| loop | duty cycle | gap p50 | gap p95 | models_s p50 (max) | overlapped | fetch |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['loop']} | {r['duty_cycle_pct']:.2f} % | {r['overhead_p50_ms']:.0f} ms | "
            f"{r['overhead_p95_ms']:.0f} ms | "
            f"{r['models_s_p50']:.2f} s ({r['models_s_max']:.2f} s) | "
            f"{r['overlap_pct_after_first']:.1f} % | {r['fetch_mib_per_s']:.0f} MiB/s |"
        )


if __name__ == "__main__":
    main()
