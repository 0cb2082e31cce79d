"""Each message's fate in the corners the control loop owns: events that must not be lost,
earlier results that count as done, uploads retried from the kept outputs, a run that ignores
its timeout, a working thread that dies. Real emulators; the scripted executor."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Mapping
from pathlib import Path

from tests.cloud import PROJECT, Cloud
from tests.fakes.proxy import proxy
from tests.fakes.scripted import ScriptedExecutor, workflow
from tests.helpers import run_worker
from tests.test_lifecycle import log_lines, wait_for_log
from worker.adapters.events.pubsub import PubSubPublisher
from worker.adapters.sources.pubsub import PubSubSource
from worker.adapters.storage.gcs import GcsStore
from worker.config import Settings
from worker.exitcodes import ExitCode
from worker.loop.runner import ExitReason, Runner
from worker.message.parse import Parser


def put(cloud: Cloud, key: str, data: bytes) -> None:
    cloud.gcs.bucket(cloud.bucket).blob(key).upload_from_string(data)


def claimed(cloud: Cloud, folder: str) -> None:
    """The folder as an earlier attempt left it: claimed as a job's."""
    put(cloud, f"results/{folder}/.namespace", b'{"role": "job", "nonce": "earlier"}')


def test_a_refused_messages_redelivery_re_publishes_its_event(cloud: Cloud) -> None:
    # An earlier delivery wrote the failed result, then its publish failed: the redelivery
    # finds result.json (create-once would answer 412) and must announce it, not ack silently.
    stored = {"version": 1, "job_id": "ref", "status": "failed", "error": {"type": "invalid_job"}}
    claimed(cloud, "ref")
    put(cloud, "results/ref/result.json", json.dumps(stored).encode())
    cloud.publish({"job_id": "ref", "workflow": workflow(), "bogus": 1})
    assert run_worker(cloud) == ExitCode.OK
    events = cloud.events(1)
    assert len(events) == 1 and events[0]["_attributes"] == {"job_id": "ref", "status": "failed"}
    assert cloud.result("ref") == stored  # not rewritten
    assert cloud.backlog() == 0


def test_an_oversized_earlier_result_counts_as_done(cloud: Cloud, tmp_path: Path) -> None:
    record = tmp_path / "runs.txt"
    head = b'{"version": 1, "job_id": "old", "status": "failed", "error": {"message": "'
    claimed(cloud, "old")
    put(cloud, "results/old/result.json", head + b"x" * 11_000_000 + b'"}}')
    cloud.publish({"job_id": "old", "workflow": workflow(record=str(record))})
    assert run_worker(cloud) == ExitCode.OK
    assert not record.exists()  # done: not run again
    events = cloud.events(1)
    assert len(events) == 1 and events[0]["status"] == "failed"
    assert events[0]["result_uri"].endswith("/old/result.json")
    assert "larger than the result size cap" in events[0]["note"]
    assert cloud.backlog() == 0


def test_an_upload_failing_past_its_retries_is_retried_from_the_kept_outputs(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    spec = workflow(sleep_s=1.0, outputs=[{"name": "a.png", "bytes": 5000}], record=str(record))
    cloud.publish({"job_id": "up", "workflow": spec})
    log = tmp_path / "w.log"
    with proxy(cloud.gcs_url.removeprefix("http://")) as gcs:
        worker = cloud.spawn_worker(
            log, STORAGE_EMULATOR_HOST=f"http://{gcs.host}", SERVICE_RETRY_S=1, IDLE_EXIT_S=60
        )
        wait_for_log(log, "job.started")
        gcs.up.clear()  # GCS refuses connections: the upload's retries run out
        wait_for_log(log, "recording retried from the kept outputs", timeout_s=30)
        gcs.up.set()
        wait_for_log(log, "job.succeeded", timeout_s=30)
        worker.send_signal(signal.SIGTERM)  # rather than wait for the idle exit
        assert worker.wait(timeout=30) == ExitCode.OK
    assert record.read_text().split() == ["up"]  # executed once
    result = cloud.result("up")
    assert result is not None and result["status"] == "succeeded", result
    assert [o["name"] for o in result["outputs"]] == ["a.png"]
    assert len(cloud.events(1)) == 1 and cloud.events(1, timeout_s=1.5) == []
    assert cloud.backlog() == 0


def test_a_run_that_ignores_its_timeout_gets_a_result_before_the_worker_is_replaced(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    stuck = workflow(sleep_s=120, ignore_interrupt=True, record=str(record))
    cloud.publish({"job_id": "stuck", "workflow": stuck})
    log = tmp_path / "w.log"
    started = time.monotonic()
    worker = cloud.spawn_worker(log, JOB_TIMEOUT_S=1, IDLE_EXIT_S=30)
    # The process must go (the executor is held by the run), but with the job's result.
    assert worker.wait(timeout=60) == ExitCode.WORKER_BROKEN
    assert time.monotonic() - started < 30
    result = cloud.result("stuck")
    assert result is not None and result["error"]["type"] == "timeout"
    assert "did not stop" in result["error"]["message"]
    assert len(cloud.events(1)) == 1 and cloud.events(1, timeout_s=1.5) == []
    assert cloud.backlog() == 0  # acked: it does not come back to hold another GPU
    assert record.read_text().split() == ["stuck"]


class DyingPublisher:
    """The real publisher, until the first event: then a ``BaseException`` (a library bug, a
    ``SystemExit`` from deep inside) kills the thread that called it."""

    def __init__(self, inner: PubSubPublisher) -> None:
        self.inner = inner

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        raise SystemExit("the finisher's publish blew up")

    def publish_nowait(self, data: bytes, attributes: Mapping[str, str]) -> None:
        self.inner.publish_nowait(data, attributes)

    def close(self) -> None:
        self.inner.close()


def test_a_dead_finisher_halts_the_worker_instead_of_hanging(cloud: Cloud, caplog: object) -> None:
    for i in range(3):
        cloud.publish({"job_id": f"d{i}", "workflow": workflow(sleep_s=0.2)})
    settings: Settings = cloud.settings(IDLE_EXIT_S=30)
    assert settings.jobs_subscription and settings.results_topic and settings.output_uri
    source = PubSubSource(settings.jobs_subscription, extension_s=10, max_lease_s=600, budget_s=5)
    publisher = DyingPublisher(PubSubPublisher(settings.results_topic, 5))
    runner = Runner(
        settings,
        source,
        ScriptedExecutor(),
        GcsStore(PROJECT, 5),
        publisher,
        Parser(settings.limits, settings.output_bucket),
    )
    started = time.monotonic()
    assert runner.run() is ExitReason.BROKEN
    assert time.monotonic() - started < 20
    publisher.close()
    assert cloud.backlog() == 3  # nothing acked without its event; all handed back


def test_logs_stay_small_whatever_they_quote(cloud: Cloud, tmp_path: Path) -> None:
    cloud.publish(
        {"job_id": "loud", "workflow": workflow(fail="execution_error"), "x": "y" * 10**6}
    )
    log = tmp_path / "w.log"
    assert cloud.spawn_worker(log).wait(timeout=60) == ExitCode.OK
    assert max(len(line.encode()) for line in log.read_text().splitlines()) < 64 * 1024
    assert any(x["message"] == "job.failed" for x in log_lines(log))
