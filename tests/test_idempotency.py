"""At-least-once delivery: a job delivered twice runs once; racing workers leave one result."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cloud import PROJECT, Cloud
from tests.fakes.scripted import workflow
from tests.helpers import run_worker
from worker.exitcodes import ExitCode


def test_redelivered_finished_job_is_not_run_again_but_its_event_is_republished(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    job = {"job_id": "twice", "workflow": workflow(outputs=[{"name": "a.png"}], record=str(record))}
    cloud.publish(job)
    assert run_worker(cloud) == ExitCode.OK
    first = cloud.result("twice")
    cloud.publish(job)  # the same job again, as a redelivery or a producer retry would
    assert run_worker(cloud) == ExitCode.OK

    assert record.read_text().split() == ["twice"]  # executed once
    assert cloud.result("twice") == first  # result.json untouched
    events = cloud.events(2)
    assert len(events) == 2 and events[0] == events[1]  # the same event, published again
    assert cloud.backlog() == 0


def test_back_to_back_duplicates_run_once_even_when_prefetched(
    cloud: Cloud, tmp_path: Path
) -> None:
    # The duplicate is pulled and prepared while the original still runs, before any
    # result.json exists; the worker notices before executing it.
    record = tmp_path / "runs.txt"
    for job_id, fail in (("bad", "invalid_workflow"), ("good", None)):
        job = {"job_id": job_id, "workflow": workflow(sleep_s=1, fail=fail, record=str(record))}
        cloud.publish(job)
        cloud.publish(job)
    assert run_worker(cloud) == ExitCode.OK
    assert record.read_text().split() == ["bad", "good"]
    result = cloud.result("bad")
    assert result is not None and result["error"]["type"] == "invalid_workflow"
    assert len(cloud.events(4)) == 4  # each delivery announced (the duplicates re-publish)


def test_two_workers_racing_on_one_job_leave_one_result(cloud: Cloud, tmp_path: Path) -> None:
    # A second subscription on the jobs topic gives a second worker its own copy of the same
    # message: both run the job at the same time and race to record it.
    second_sub = f"projects/{PROJECT}/subscriptions/jobs2-{cloud.suffix}"
    cloud.subscriber.create_subscription(name=second_sub, topic=cloud.jobs_topic)
    record = tmp_path / "runs.txt"
    spec = workflow(sleep_s=1.5, outputs=[{"name": "img.png", "bytes": 5000}], record=str(record))
    cloud.publish({"job_id": "race", "workflow": spec})

    a = cloud.spawn_worker(tmp_path / "a.log", MAX_JOBS=1)
    b = cloud.spawn_worker(tmp_path / "b.log", MAX_JOBS=1, JOBS_SUBSCRIPTION=second_sub)
    assert a.wait(timeout=60) == ExitCode.OK and b.wait(timeout=60) == ExitCode.OK

    assert record.read_text().split() == ["race", "race"]  # both executed
    result = cloud.result("race")
    assert result is not None and result["status"] == "succeeded"
    # The outputs are write-once: whichever attempt wrote them, result.json describes them.
    blob = cloud.objects("results/race/")["results/race/img.png"]
    assert result["outputs"][0]["crc32c"] == blob.crc32c
    logs = (tmp_path / "a.log").read_text() + (tmp_path / "b.log").read_text()
    messages = [json.loads(x)["message"] for x in logs.splitlines() if x.startswith("{")]
    assert messages.count("job.succeeded") == 1
    assert messages.count("job.duplicate") == 1  # the loser saw the precondition fail
    events = cloud.events(2, timeout_s=4)
    assert len(events) == 1  # only the winner announces it
    assert cloud.backlog() == 0
