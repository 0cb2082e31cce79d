"""At-least-once delivery across processes: racing workers on the emulators leave one result.

A job delivered twice to one worker (redelivered after it finished, or a duplicate prefetched while
the first copy runs) runs once: ``tests/memory/test_fates.py``."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cloud import PROJECT, Cloud
from tests.fakes.scripted import workflow
from worker.exitcodes import ExitCode


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
