"""``status``, ``pipelines``, ``dispatch`` and ``submit --execute`` through the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import Cloud
from tests.fakes.scripted import workflow
from tests.helpers import run_worker
from tests.producer.cli import worker_cli
from tests.producer.fake_cloudrun import FakeCloudRun, serve
from worker.exitcodes import ExitCode

JOB = "projects/test-project/locations/europe-west4/jobs/comfy"


@pytest.fixture
def fake() -> Iterator[FakeCloudRun]:
    with serve() as server:
        yield server


def test_status_of_succeeded_failed_and_unknown_jobs(cloud: Cloud) -> None:
    cloud.publish(
        {"job_id": "good", "workflow": workflow(outputs=[{"name": "a.txt", "text": "a"}])}
    )
    cloud.publish({"job_id": "bad", "workflow": workflow(fail="execution_error")})
    assert run_worker(cloud) == ExitCode.OK

    good = worker_cli(cloud, "status", "good")
    assert good.returncode == 0
    assert good.stdout.startswith(f"good succeeded gs://{cloud.bucket}/results/good/a.txt")
    bad = worker_cli(cloud, "status", "bad", "--json")
    assert bad.returncode == ExitCode.JOBS_FAILED
    assert json.loads(bad.stdout)["error"]["type"] == "execution_error"
    by_uri = worker_cli(cloud, "status", f"gs://{cloud.bucket}/results/bad/")
    assert by_uri.stdout.startswith("bad failed execution_error: scripted: execution_error")
    unknown = worker_cli(cloud, "status", "nobody")
    assert unknown.returncode == 3 and "not finished" in unknown.stdout


def test_pipelines_lists_parameters_and_renders() -> None:
    listing = worker_cli(None, "pipelines")
    assert listing.returncode == 0
    assert "demo-invert: Model-free demo" in listing.stdout
    assert "width            int, 64..2048, multiple of 8, default 512" in listing.stdout
    doc = json.loads(worker_cli(None, "pipelines", "upscale", "--json").stdout)
    assert doc[0]["params"]["rescale"]["max"] == 1.0
    rendered = worker_cli(None, "pipelines", "demo-invert", "--render", "-p", "width=8")
    assert json.loads(rendered.stdout)["workflow"]["1"]["inputs"]["width"] == 8
    bad = worker_cli(None, "pipelines", "demo-invert", "--render", "-p", "size=8")
    assert bad.returncode == ExitCode.USAGE and "unknown parameter 'size'" in bad.stderr
    broken = worker_cli(None, "pipelines", PIPELINES_DIR="/nonexistent")
    assert broken.returncode == ExitCode.CONFIG and "does not exist" in broken.stderr


def test_dispatch_starts_an_execution_sized_to_the_backlog(
    cloud: Cloud, fake: FakeCloudRun
) -> None:
    env: dict[str, Any] = {
        "RUN_JOB": JOB,
        "RUN_API_ENDPOINT": fake.url,
        "DISPATCH_MAX_TASKS": 4,
        "DISPATCH_JOBS_PER_TASK": 10,
    }
    first = worker_cli(cloud, "dispatch", "--backlog", 25, "--json", **env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["start_tasks"] == 3
    assert [r.body for r in fake.runs()] == [{"overrides": {"taskCount": 3}}]
    assert fake.runs()[0].path == f"/v2/{JOB}:run"
    # The lock's next slot hasn't come: a second run at once decides nothing.
    again = worker_cli(cloud, "dispatch", "--backlog", 25, **env)
    assert again.returncode == 0 and "lock held" in again.stdout
    assert len(fake.runs()) == 1


def test_dispatch_reads_the_backlog_from_monitoring(cloud: Cloud, fake: FakeCloudRun) -> None:
    fake.backlog_points = [5, 80]
    fake.add_execution(JOB, 2)
    env: dict[str, Any] = {
        "RUN_JOB": "comfy",
        "REGION": "europe-west4",
        "RUN_API_ENDPOINT": fake.url,
        "MONITORING_API_ENDPOINT": fake.url,
        "DISPATCH_JOBS_PER_TASK": 20,
    }
    done = worker_cli(cloud, "dispatch", **env)
    assert done.returncode == 0, done.stderr
    assert "backlog 80, 2 task(s) in 1 execution(s), 4 wanted: start 2 task(s)" in done.stdout
    [series] = [r for r in fake.requests if r.path.endswith("/timeSeries")]
    assert f'subscription_id = "jobs-{cloud.suffix}"' in series.query["filter"][0]


def test_dispatch_configuration_errors(cloud: Cloud, fake: FakeCloudRun) -> None:
    missing = worker_cli(cloud, "dispatch", "--backlog", 1)
    assert missing.returncode == ExitCode.CONFIG and "RUN_JOB" in missing.stderr
    bare = worker_cli(cloud, "dispatch", RUN_JOB="comfy")
    assert bare.returncode == ExitCode.CONFIG and "needs GOOGLE_CLOUD_PROJECT and REGION" in (
        bare.stderr
    )
    fake.jobs = {JOB}
    gone = worker_cli(
        cloud, "dispatch", "--backlog", 5, RUN_JOB=JOB + "-gone", RUN_API_ENDPOINT=fake.url
    )
    assert gone.returncode == ExitCode.CONFIG
    assert f"the Cloud Run job {JOB}-gone does not exist" in gone.stderr
    assert fake.runs() == []


def test_submit_execute_starts_an_execution_unless_enough_run(
    cloud: Cloud, fake: FakeCloudRun, tmp_path: Path
) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"workflow": workflow()}) + "\n" for _ in range(45)))
    env: dict[str, Any] = {
        "RUN_JOB": JOB,
        "RUN_API_ENDPOINT": fake.url,
        "DISPATCH_JOBS_PER_TASK": 20,
        "DISPATCH_LOCK_S": 5,
    }
    done = worker_cli(cloud, "submit", "--jsonl", path, "--execute", **env)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.split()) == 45
    assert [r.body for r in fake.runs()] == [{"overrides": {"taskCount": 3}}]
    assert "execute: start 3 task(s)" in done.stderr
    # Three tasks are now unfinished: submitting 40 more needs 2, which are running already.
    path.write_text("".join(json.dumps({"workflow": workflow()}) + "\n" for _ in range(40)))
    again = worker_cli(cloud, "submit", "--jsonl", path, "--execute", **env)
    assert again.returncode == 0, again.stderr
    assert "execute: enough running: 3 task(s) for 2 wanted" in again.stderr
    assert len(fake.runs()) == 1
