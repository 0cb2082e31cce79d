"""``submit --wait`` end to end: the emulators, a running ``python -m worker run`` (scripted
executor), completion events followed through submit's own temporary subscriptions."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.cloud import PROJECT, Cloud
from tests.fakes.scripted import workflow
from tests.producer.cli import worker_cli
from worker.exitcodes import ExitCode
from worker.producer.display import ProgressBar, describe
from worker.producer.wait import Tracker


@pytest.fixture
def progress_topic(cloud: Cloud) -> str:
    topic = f"projects/{PROJECT}/topics/progress-{cloud.suffix}"
    cloud.publisher.create_topic(name=topic)
    return topic


@pytest.fixture
def worker(cloud: Cloud, tmp_path: Path, progress_topic: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = cloud.spawn_worker(
        tmp_path / "worker.log", IDLE_EXIT_S=60, PROGRESS_TOPIC=progress_topic
    )
    yield proc
    proc.terminate()
    proc.wait(20)


def _jsonl(tmp_path: Path, *bodies: Mapping[str, object]) -> Path:
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in bodies))
    return path


def _submit_subscriptions(cloud: Cloud) -> list[str]:
    names = cloud.subscriber.list_subscriptions(request={"project": f"projects/{PROJECT}"})
    return [s.name for s in names if "/subscriptions/submit-" in s.name]


def test_wait_succeeds_prints_outputs_and_downloads_them(
    cloud: Cloud, tmp_path: Path, worker: subprocess.Popen[bytes], progress_topic: str
) -> None:
    outputs = [{"name": "a.txt", "text": "hello"}, {"name": "sub/b.png", "bytes": 300}]
    path = _jsonl(
        tmp_path, *({"workflow": workflow(outputs=outputs, sleep_s=0.2)} for _ in range(3))
    )
    done = worker_cli(
        cloud,
        "submit",
        "--jsonl",
        path,
        "--wait",
        "--timeout",
        "60",
        "--download",
        tmp_path / "out",
        PROGRESS_TOPIC=progress_topic,
    )
    assert done.returncode == ExitCode.OK, done.stderr
    lines = done.stdout.splitlines()
    ids, outcomes = lines[:3], lines[3:]
    assert sorted(o.split()[0] for o in outcomes) == sorted(ids)
    for outcome in outcomes:
        job_id, status, *uris = outcome.split()
        assert status == "succeeded"
        folder = f"gs://{cloud.bucket}/results/{job_id}"
        # Output names are one path segment: sub/b.png is stored as sub__b.png.
        assert sorted(uris) == [f"{folder}/a.txt", f"{folder}/sub__b.png"]
        assert (tmp_path / "out" / job_id / "a.txt").read_text() == "hello"
        assert (tmp_path / "out" / job_id / "sub__b.png").stat().st_size == 300
    assert "3/3 finished" in done.stderr
    assert _submit_subscriptions(cloud) == []  # cleaned up


def test_wait_exits_non_zero_and_says_why_when_a_job_fails(
    cloud: Cloud, tmp_path: Path, worker: subprocess.Popen[bytes]
) -> None:
    path = _jsonl(
        tmp_path,
        {"job_id": "fine", "workflow": workflow(outputs=[{"name": "x.txt", "text": "x"}])},
        {"job_id": "broken", "workflow": workflow(fail="execution_error")},
        {"job_id": "refused", "pipeline": "demo-invert", "params": {"width": -1}},
    )
    done = worker_cli(cloud, "submit", "--jsonl", path, "--wait", "--json", "--timeout", "60")
    assert done.returncode == ExitCode.JOBS_FAILED
    assert "error: 2 of 3 job(s) failed" in done.stderr
    results = {r["job_id"]: r for r in map(json.loads, done.stdout.splitlines()[3:])}
    assert results["fine"]["status"] == "succeeded"
    assert results["broken"]["error"]["type"] == "execution_error"
    assert results["refused"]["error"]["type"] == "invalid_job"
    assert "parameter 'width' must be int, 1..4096" in results["refused"]["error"]["message"]

    text = worker_cli(
        cloud,
        "submit",
        "--workflow",
        _wf(tmp_path, fail="oom"),
        "--wait",
        "--job-id",
        "oom-1",
        "--timeout",
        "60",
    )
    assert text.returncode == ExitCode.JOBS_FAILED
    assert "oom-1 failed oom: scripted: oom (node 1)" in text.stdout


def _wf(tmp_path: Path, **script: object) -> Path:
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(workflow(**script)))
    return path


def test_wait_times_out_without_a_worker(cloud: Cloud, tmp_path: Path) -> None:
    done = worker_cli(
        cloud,
        "submit",
        "--workflow",
        _wf(tmp_path),
        "--job-id",
        "lonely",
        "--wait",
        "--timeout",
        "3",
    )
    assert done.returncode == ExitCode.JOBS_FAILED
    assert "1 job(s) not finished after 3 s: lonely" in done.stderr
    assert _submit_subscriptions(cloud) == []


def test_tracker_counts_each_job_once_and_follows_progress() -> None:
    tracker = Tracker({"a", "b"})
    assert tracker.feed({"job_id": "a", "status": "running", "value": 1, "total": 4}) is None
    assert tracker.running == {"a": 0.25}
    assert tracker.feed({"job_id": "other", "status": "succeeded"}) is None
    assert tracker.feed({"job_id": "a", "status": "failed"}) is not None
    assert tracker.feed({"job_id": "a", "status": "failed"}) is None  # a duplicate event
    assert tracker.running == {} and tracker.failed == 1 and not tracker.finished
    assert tracker.feed({"job_id": "b", "status": "succeeded"}) is not None
    assert tracker.finished


def test_a_cancelled_job_is_over_for_wait_and_not_a_success() -> None:
    tracker = Tracker({"a", "b"})
    cancelled = {
        "job_id": "a",
        "status": "cancelled",
        "error": {"type": "cancelled", "message": "x"},
    }
    assert tracker.feed(cancelled) is not None
    assert tracker.feed({"job_id": "b", "status": "succeeded"}) is not None
    assert tracker.finished and tracker.cancelled == 1 and tracker.failed == 0
    assert describe(cancelled) == "a cancelled: x"
    assert "1 cancelled" in ProgressBar(io.StringIO()).line(tracker)
