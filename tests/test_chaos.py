"""Chaos on one host: several workers with the same default settings drain a few hundred jobs
while workers are killed (SIGKILL) and stopped (SIGTERM) at random and GCS and Pub/Sub freeze
(SIGSTOP). Every job must end with exactly one ``result.json``; a succeeded result lists exactly
its own outputs (each job writes its own id into one of them); a failed one may only be
``worker_crashed``, for a job whose runs were killed ``MAX_CRASHED_ATTEMPTS`` times; nothing is
lost or dead-lettered.

A campaign, not part of the default run (a few minutes):

    CHAOS_JOBS=300 .venv/bin/python -m pytest tests/test_chaos.py -q -s

``CHAOS_WORKERS`` (default 3) and ``CHAOS_SEED`` vary it; the figures are printed at the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import Cloud
from tests.fakes.scripted import workflow
from worker.local.emulators import Emulator

JOBS = int(os.environ.get("CHAOS_JOBS", "0"))
WORKERS = int(os.environ.get("CHAOS_WORKERS", "3"))
SEED = int(os.environ.get("CHAOS_SEED", "7"))

pytestmark = pytest.mark.skipif(JOBS == 0, reason="a campaign: set CHAOS_JOBS=300 to run it")


class Fleet:
    """Workers on one host sharing one WORK_DIR, kept at ``size``."""

    def __init__(self, cloud: Cloud, logs: Path, size: int) -> None:
        self.cloud, self.logs, self.size = cloud, logs, size
        self.live: list[subprocess.Popen[bytes]] = []
        self.exits: Counter[int] = Counter()
        self.spawned = 0

    def top_up(self) -> None:
        for worker in [w for w in self.live if w.poll() is not None]:
            self.exits[worker.returncode] += 1
            self.live.remove(worker)
        while len(self.live) < self.size:
            self.spawned += 1
            log = self.logs / f"worker-{self.spawned}.log"
            self.live.append(self.cloud.spawn_worker(log, IDLE_EXIT_S=30))

    def signal(self, rng: random.Random, signum: int) -> None:
        if self.live:
            rng.choice(self.live).send_signal(signum)

    def stop(self) -> None:
        for worker in self.live:
            worker.send_signal(signal.SIGTERM)
        for worker in self.live:
            try:
                self.exits[worker.wait(timeout=40)] += 1
            except subprocess.TimeoutExpired:
                worker.kill()
                self.exits[worker.wait()] += 1


def freeze(emulator: Emulator, seconds: float) -> None:
    emulator.pause()
    try:
        time.sleep(seconds)
    finally:
        emulator.resume()


def test_chaos_on_one_host_loses_nothing_and_mixes_nothing(
    cloud: Cloud, tmp_path: Path, pubsub_emulator: Emulator, gcs_emulator: Emulator
) -> None:
    rng = random.Random(SEED)
    record = tmp_path / "runs.txt"
    ids = [f"c{i:04d}" for i in range(JOBS)]
    for job_id in ids:
        outputs = [{"name": "own.txt", "text": job_id}, {"name": "sub/img.png", "bytes": 2000}]
        spec = workflow(sleep_s=rng.uniform(0.1, 0.6), outputs=outputs, record=str(record))
        cloud.publish({"job_id": job_id, "workflow": spec})

    fleet = Fleet(cloud, tmp_path, WORKERS)
    actions: Counter[str] = Counter()
    started = time.monotonic()
    deadline = started + 60 + JOBS * 2
    bucket = cloud.gcs.bucket(cloud.bucket)
    done = 0
    while time.monotonic() < deadline:
        fleet.top_up()
        done = sum(1 for b in cloud.objects("results/") if b.endswith("/result.json"))
        if done >= JOBS:
            break
        action = rng.choice(["kill", "term", "freeze-gcs", "freeze-pubsub", "wait", "wait"])
        actions[action] += 1
        if action == "kill":
            fleet.signal(rng, signal.SIGKILL)
        elif action == "term":
            fleet.signal(rng, signal.SIGTERM)
        elif action == "freeze-gcs":
            freeze(gcs_emulator, rng.uniform(0.5, 4))
        elif action == "freeze-pubsub":
            freeze(pubsub_emulator, rng.uniform(0.5, 4))
        time.sleep(rng.uniform(0.3, 1.5))
    fleet.stop()
    elapsed = time.monotonic() - started

    results: dict[str, dict[str, Any]] = {}
    result_objects = [n for n in cloud.objects("results/") if n.endswith("/result.json")]
    for job_id in ids:
        blob = bucket.get_blob(f"results/{job_id}/result.json")
        assert blob is not None, f"{job_id} has no result.json"
        results[job_id] = json.loads(blob.download_as_bytes())
    assert len(result_objects) == JOBS  # exactly one each, and none elsewhere

    statuses: Counter[str] = Counter()
    for job_id, result in results.items():
        if result["status"] == "succeeded":
            statuses["succeeded"] += 1
            by_name = {o["name"]: o for o in result["outputs"]}
            assert set(by_name) == {"own.txt", "sub__img.png"}, (job_id, by_name)
            for output in result["outputs"]:
                assert output["uri"] == f"gs://{cloud.bucket}/results/{job_id}/{output['name']}"
            own = bucket.blob(f"results/{job_id}/own.txt").download_as_bytes()
            assert own == job_id.encode(), (job_id, own)  # its own bytes, not another job's
        else:
            error = result["error"]["type"]
            statuses[error] += 1
            assert error == "worker_crashed", (job_id, result["error"])
            markers = cloud.objects(f"results/{job_id}/.attempt-")
            unreleased = [
                n for n in markers if n.endswith(".json") and n[:-5] + ".released" not in markers
            ]
            assert len(unreleased) >= 2, (job_id, sorted(markers))

    dead = cloud.pull(cloud.dead_subscription, 10, timeout_s=3)
    assert dead == []
    assert cloud.backlog() == 0
    runs = Counter(record.read_text().split())
    events = cloud.pull(cloud.events_subscription, JOBS * 3, timeout_s=15)
    event_ids = Counter(json.loads(m.message.data)["job_id"] for m in events)
    assert set(event_ids) == set(ids)  # every job announced (at least once)
    figures = {
        "jobs": JOBS,
        "workers": WORKERS,
        "seconds": round(elapsed),
        "actions": dict(actions),
        "worker_processes": fleet.spawned,
        "exit_codes": {str(k): v for k, v in sorted(fleet.exits.items())},
        "statuses": dict(statuses),
        "result_json_per_job": 1,
        "executions": sum(runs.values()),
        "jobs_run_more_than_once": sum(1 for n in runs.values() if n > 1),
        "events": len(events),
        "duplicate_events": len(events) - len(event_ids),
        "dead_lettered": 0,
    }
    print("\nCHAOS " + json.dumps(figures))
