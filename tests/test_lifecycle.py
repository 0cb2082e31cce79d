"""``python -m worker run`` as a process: signals, kills, leases, exit codes, logs, config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.cloud import REPO, Cloud
from tests.fakes.scripted import workflow
from tests.proctree import alive
from worker.exitcodes import ExitCode


def wait_for_log(log: Path, message: str, timeout_s: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines() if log.exists() else []:
            if line.startswith("{") and json.loads(line).get("message") == message:
                return dict(json.loads(line))
        time.sleep(0.05)
    raise AssertionError(f"{message!r} never logged; log:\n{log.read_text()}")


def log_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]


def test_sigterm_mid_job_hands_the_message_back_and_exits_in_time(
    cloud: Cloud, tmp_path: Path
) -> None:
    cloud.publish({"job_id": "term", "workflow": workflow(sleep_s=60)})
    log = tmp_path / "worker.log"
    worker = cloud.spawn_worker(log, IDLE_EXIT_S=60)
    wait_for_log(log, "job.started")
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    code = worker.wait(timeout=10)
    assert time.monotonic() - sent < 10
    assert code == ExitCode.OK
    back = cloud.pull(cloud.jobs_subscription, 1, timeout_s=3)  # within seconds, not 600 s
    assert len(back) == 1 and json.loads(back[0].message.data)["job_id"] == "term"
    assert back[0].delivery_attempt == 2
    assert cloud.result("term") is None


def test_sigterm_while_idle_exits_at_once(cloud: Cloud, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = cloud.spawn_worker(log, IDLE_EXIT_S=60)
    wait_for_log(log, "worker.ready")
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == ExitCode.OK
    assert time.monotonic() - sent < 5


def test_executor_ignoring_the_interrupt_still_exits_within_the_grace(
    cloud: Cloud, tmp_path: Path
) -> None:
    cloud.publish({"job_id": "stuck", "workflow": workflow(sleep_s=60, ignore_interrupt=True)})
    log = tmp_path / "worker.log"
    worker = cloud.spawn_worker(log, IDLE_EXIT_S=60)
    wait_for_log(log, "job.started")
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=10)
    assert time.monotonic() - sent < 10
    assert len(cloud.pull(cloud.jobs_subscription, 1, timeout_s=3)) == 1


def test_a_frozen_executor_process_is_not_left_behind(cloud: Cloud, tmp_path: Path) -> None:
    """ComfyUI's process stopped mid-run (it can't answer, nor see the worker's process leave):
    the worker still exits within the grace, hands the message back, and kills it."""
    cloud.publish({"job_id": "frozen", "workflow": workflow(sleep_s=60)})
    log = tmp_path / "worker.log"
    worker = cloud.spawn_worker(log, IDLE_EXIT_S=60)
    child = int(wait_for_log(log, "executor.process_started")["pid"])
    wait_for_log(log, "job.started")
    os.kill(child, signal.SIGSTOP)
    try:
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
        assert time.monotonic() - sent < 10
        assert not alive(child), "the frozen executor process outlived the worker's"
        wait_for_log(log, "executor.process_killed", timeout_s=1)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
    back = cloud.pull(cloud.jobs_subscription, 1, timeout_s=3)
    assert len(back) == 1 and json.loads(back[0].message.data)["job_id"] == "frozen"


def test_sigkill_mid_job_another_worker_completes_it_after_the_lease(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    cloud.publish({"job_id": "kill", "workflow": workflow(sleep_s=2, record=str(record))})
    first = cloud.spawn_worker(tmp_path / "first.log", IDLE_EXIT_S=60)
    wait_for_log(tmp_path / "first.log", "job.started")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=5)
    killed_at = time.monotonic()
    second = cloud.spawn_worker(tmp_path / "second.log", IDLE_EXIT_S=20, MAX_JOBS=1)
    assert second.wait(timeout=60) == ExitCode.OK
    started = wait_for_log(tmp_path / "second.log", "job.started")
    assert started["job_id"] == "kill" and started["delivery_attempt"] == 2
    # Redelivered once the killed worker's lease (LEASE_EXTENSION_S=10) lapsed, not after 600 s.
    assert time.monotonic() - killed_at < 40
    result = cloud.result("kill")
    assert result is not None and result["status"] == "succeeded"
    assert record.read_text().split() == ["kill", "kill"]


def test_logs_are_structured_json_with_job_context(cloud: Cloud, tmp_path: Path) -> None:
    cloud.publish({"job_id": "logged", "workflow": workflow(outputs=[{"name": "x.png"}])})
    log = tmp_path / "w.log"
    worker = cloud.spawn_worker(
        log, CLOUD_RUN_EXECUTION="exec-1", CLOUD_RUN_TASK_INDEX="0", CLOUD_RUN_TASK_COUNT="2"
    )
    assert worker.wait(timeout=30) == ExitCode.OK
    lines = log_lines(log)
    assert lines and all({"severity", "message", "time"} <= set(x) for x in lines)
    assert all(x["execution"] == "exec-1" and x["task_index"] == 0 for x in lines)
    job_lines = {x["message"]: x for x in lines if x.get("job_id") == "logged"}
    assert {"job.received", "job.started", "job.succeeded"} <= set(job_lines)
    done = job_lines["job.succeeded"]
    assert done["delivery_attempt"] == 1 and done["severity"] == "INFO"
    assert {"inputs_s", "execution_s", "upload_s", "total_s"} <= set(done)


def test_unreachable_gcs_is_retried_with_warnings_then_nacked(cloud: Cloud, tmp_path: Path) -> None:
    cloud.publish({"job_id": "nogcs", "workflow": workflow()})
    log = tmp_path / "w.log"
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    worker = cloud.spawn_worker(
        log, STORAGE_EMULATOR_HOST=dead, SERVICE_RETRY_S=2, MAX_CONSECUTIVE_TRANSIENT=1
    )
    assert worker.wait(timeout=60) == ExitCode.SERVICE_UNAVAILABLE
    lines = log_lines(log)
    assert any(x["severity"] == "WARNING" and "retrying" in x["message"] for x in lines)
    nacked = [x for x in lines if x["message"] == "job.nacked"]
    assert nacked and "still failing" in nacked[0]["reason"]
    assert len(cloud.pull(cloud.jobs_subscription, 1, timeout_s=3)) == 1  # redelivered


def run_to_exit(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_bad_configuration_names_the_variable(cloud: Cloud) -> None:
    env = {**os.environ, **cloud.env(IDLE_EXIT_S="soon", OUTPUT_URI="s3://nope")}
    env["PYTHONPATH"] = str(REPO)
    done = run_to_exit(env)
    assert done.returncode == ExitCode.CONFIG
    assert "IDLE_EXIT_S='soon'" in done.stderr and "OUTPUT_URI='s3://nope'" in done.stderr
    env.pop("JOBS_SUBSCRIPTION")
    env["IDLE_EXIT_S"], env["OUTPUT_URI"] = "1", cloud.output_uri
    done = run_to_exit(env)
    assert done.returncode == ExitCode.CONFIG and "JOBS_SUBSCRIPTION" in done.stderr


def test_executor_that_cannot_start_exits_non_zero(cloud: Cloud, tmp_path: Path) -> None:
    worker = cloud.spawn_worker(tmp_path / "w.log", EXECUTOR="tests.fakes.scripted:build_broken")
    assert worker.wait(timeout=30) == ExitCode.WORKER_BROKEN


def test_unreachable_pubsub_gives_up_with_a_clear_error(cloud: Cloud, tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    worker = cloud.spawn_worker(log, PUBSUB_EMULATOR_HOST="127.0.0.1:9", SERVICE_RETRY_S=2)
    assert worker.wait(timeout=60) == ExitCode.SERVICE_UNAVAILABLE
    lines = log_lines(log)
    assert any(x["severity"] == "WARNING" and "Pub/Sub pull" in x["message"] for x in lines)
    final = [x for x in lines if x["message"] == "job source unavailable"]
    assert final and final[0]["severity"] == "ERROR" and "still failing" in final[0]["error"]


def test_sigterm_while_gcs_hangs_still_exits_in_time_and_loses_nothing(
    cloud: Cloud, tmp_path: Path, gcs_emulator: Any
) -> None:
    # Six short jobs: with the finisher stuck, its queue fills and the loop blocks handing over.
    jobs = {f"h{i}" for i in range(6)}
    for job_id in sorted(jobs):
        cloud.publish(
            {"job_id": job_id, "workflow": workflow(sleep_s=0.3, outputs=[{"name": "a"}])}
        )
    log = tmp_path / "w.log"
    worker = cloud.spawn_worker(log, IDLE_EXIT_S=60, SERVICE_RETRY_S=60)
    wait_for_log(log, "job.started")
    gcs_emulator.pause()  # uploads and result.json writes now hang
    try:
        time.sleep(3.0)
        sent = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=10)
        assert time.monotonic() - sent < 10
    finally:
        gcs_emulator.resume()
    done = {job_id for job_id in jobs if cloud.result(job_id) is not None}
    back = {
        json.loads(m.message.data)["job_id"]
        for m in cloud.pull(cloud.jobs_subscription, len(jobs), timeout_s=15)
    }
    assert done | back == jobs  # each job finished or handed back


def test_configuration_error_found_at_start_exits_78(cloud: Cloud, tmp_path: Path) -> None:
    worker = cloud.spawn_worker(
        tmp_path / "w.log", EXECUTOR="tests.fakes.scripted:build_bad_config"
    )
    assert worker.wait(timeout=30) == ExitCode.CONFIG
    assert "WARMUP_WORKFLOW" in (tmp_path / "w.log").read_text()
