"""The real run_v2 clients (REST transport, endpoint override, anonymous credentials) against a
local stand-in for the Cloud Run Admin API; assertions are on the requests it received."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.producer.fake_cloudrun import FakeCloudRun, serve
from worker.producer.backlog import MonitoringBacklog
from worker.producer.cloudrun import CloudRunJob
from worker.producer.dispatch import Policy
from worker.producer.starter import dispatch_once

JOB = "projects/proj/locations/europe-west4/jobs/comfy"
POLICY = Policy(max_tasks=10, jobs_per_task=20, max_executions=3, daily_task_budget=0)


@pytest.fixture
def fake() -> Iterator[FakeCloudRun]:
    with serve() as server:
        yield server


def test_start_sends_run_with_a_task_count_override(fake: FakeCloudRun) -> None:
    name = CloudRunJob(JOB, fake.url).start(4, env={"MANIFEST_URI": "gs://b/m.jsonl"})
    [run] = fake.runs()
    assert run.path == f"/v2/{JOB}:run"
    assert run.body == {
        "overrides": {
            "taskCount": 4,
            "containerOverrides": [{"env": [{"name": "MANIFEST_URI", "value": "gs://b/m.jsonl"}]}],
        }
    }
    assert name == f"{JOB}/executions/comfy-0001"


def test_start_polls_the_operation_when_the_first_answer_lacks_the_execution(
    fake: FakeCloudRun,
) -> None:
    fake.operation_without_metadata = True
    name = CloudRunJob(JOB, fake.url).start(2)
    polls = [r for r in fake.requests if "/operations/" in r.path]
    assert polls and polls[0].path == "/v2/projects/proj/locations/europe-west4/operations/op-1"
    assert name == f"{JOB}/executions/comfy-0001"


def test_executions_are_listed_across_pages(fake: FakeCloudRun) -> None:
    for _ in range(5):
        fake.add_execution(JOB, 3, done=True, succeeded=3)
    fake.add_execution(JOB, 4, succeeded=1)
    states = CloudRunJob(JOB, fake.url).executions()
    lists = [r for r in fake.requests if r.path == f"/v2/{JOB}/executions"]
    assert len(lists) == 3  # 6 executions, 2 per page
    assert len(states) == 6
    assert states[0].unfinished_tasks == 3 and not states[0].done
    assert all(s.done and s.unfinished_tasks == 0 for s in states[1:])


def test_dispatch_starts_the_shortfall_once(fake: FakeCloudRun) -> None:
    job = CloudRunJob(JOB, fake.url)
    fake.add_execution(JOB, 1)
    first = dispatch_once(45, job, POLICY, lock=None)
    assert first.start_tasks == 2
    assert [r.body for r in fake.runs()] == [{"overrides": {"taskCount": 2}}]
    second = dispatch_once(45, job, POLICY, lock=None)  # sees the execution it just started
    assert second.start_tasks == 0 and second.running_tasks == 3
    assert len(fake.runs()) == 1


def test_dry_run_starts_nothing(fake: FakeCloudRun) -> None:
    decided = dispatch_once(100, CloudRunJob(JOB, fake.url), POLICY, lock=None, dry_run=True)
    assert decided.start_tasks == 5 and fake.runs() == []


def test_monitoring_backlog_reads_the_newest_point(fake: FakeCloudRun) -> None:
    fake.backlog_points = [90, 40, 17]
    backlog = MonitoringBacklog("projects/proj/subscriptions/jobs-sub", fake.url)
    assert backlog.undelivered() == 17
    [request] = [r for r in fake.requests if r.path.endswith("/timeSeries")]
    assert request.path == "/v3/projects/proj/timeSeries"
    assert request.query["filter"] == [
        'metric.type = "pubsub.googleapis.com/subscription/num_undelivered_messages" AND '
        'resource.labels.subscription_id = "jobs-sub"'
    ]
    assert "interval.startTime" in request.query and "interval.endTime" in request.query


def test_monitoring_without_data_means_no_backlog(fake: FakeCloudRun) -> None:
    assert MonitoringBacklog("projects/p/subscriptions/s", fake.url).undelivered() == 0
