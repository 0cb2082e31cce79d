"""Backfills end to end: ``python -m worker run`` processes split a manifest between them.

Real Pub/Sub emulator and fake-gcs-server; the scripted executor records each execution in a file
so runs are counted across processes.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.cloud import Cloud
from tests.fakes.scripted import workflow
from worker.adapters.sources.jsonl import line_message_id, message_id_prefix
from worker.exitcodes import ExitCode

TASKS = 3


def _upload(cloud: Cloud, lines: list[bytes], name: str = "jobs.jsonl") -> str:
    cloud.gcs.bucket(cloud.bucket).blob(f"manifests/{name}").upload_from_string(
        b"\n".join(lines) + b"\n"
    )
    return f"gs://{cloud.bucket}/manifests/{name}"


def _line(record: Path, **script: Any) -> bytes:
    outputs = [{"name": "out.txt", "text": "done"}]
    return json.dumps(
        {"workflow": workflow(record=str(record), outputs=outputs, **script)}
    ).encode()


def _spawn_tasks(cloud: Cloud, uri: str, logs: Path, tasks: range) -> list[subprocess.Popen[bytes]]:
    logs.mkdir(exist_ok=True)
    return [
        cloud.spawn_worker(
            logs / f"task-{i}.log",
            MANIFEST_URI=uri,
            CLOUD_RUN_TASK_INDEX=i,
            CLOUD_RUN_TASK_COUNT=TASKS,
            CLOUD_RUN_EXECUTION=f"backfill-{i}",
        )
        for i in tasks
    ]


def _executions(record: Path) -> Counter[str]:
    return Counter(record.read_text().split()) if record.exists() else Counter()


def _job_ids(uri: str, lines: list[bytes]) -> list[str]:
    """The job id of each line that names none: its message id."""
    return [line_message_id(message_id_prefix(uri), n, x) for n, x in enumerate(lines, 1)]


def test_three_tasks_do_each_of_thirty_lines_exactly_once(cloud: Cloud, tmp_path: Path) -> None:
    record = tmp_path / "executions.txt"
    lines = [_line(record) for _ in range(30)]
    uri = _upload(cloud, lines)
    procs = _spawn_tasks(cloud, uri, tmp_path / "logs", range(TASKS))
    assert [p.wait(60) for p in procs] == [ExitCode.OK] * TASKS

    ids = _job_ids(uri, lines)
    assert _executions(record) == Counter(ids)  # every line once, none twice
    results = {job_id: cloud.result(job_id) for job_id in ids}
    assert all(r is not None and r["status"] == "succeeded" for r in results.values())
    by_task = Counter(r["worker"]["task_index"] for r in results.values() if r)
    assert by_task == {0: 10, 1: 10, 2: 10}
    assert len(cloud.events(30, timeout_s=15)) == 30
    for i in range(TASKS):
        log = (tmp_path / "logs" / f"task-{i}.log").read_text()
        assert '"done": 10, "total": 10' in log  # progress as done / total


def test_a_rerun_after_a_killed_task_finishes_only_the_rest(cloud: Cloud, tmp_path: Path) -> None:
    record = tmp_path / "executions.txt"
    lines = [_line(record, sleep_s=0.3) for _ in range(30)]
    uri = _upload(cloud, lines)
    procs = _spawn_tasks(cloud, uri, tmp_path / "logs", range(TASKS))
    ids = _job_ids(uri, lines)
    victim = ids[1::TASKS]  # task 1's lines
    deadline = time.monotonic() + 60
    while sum(cloud.result(j) is not None for j in victim) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGKILL)  # a crash: no chance to clean up
    assert procs[1].wait(10) == -signal.SIGKILL
    assert [procs[0].wait(60), procs[2].wait(60)] == [ExitCode.OK, ExitCode.OK]

    finished = {j for j in ids if cloud.result(j) is not None}
    assert 3 <= len(finished & set(victim)) < 10
    first_run = _executions(record)
    record.unlink()

    again = _spawn_tasks(cloud, uri, tmp_path / "rerun-logs", range(TASKS))
    assert [p.wait(60) for p in again] == [ExitCode.OK] * TASKS
    assert set(_executions(record)) == set(ids) - finished  # only what had no result
    assert all(count == 1 for count in _executions(record).values())
    assert all(cloud.result(j) is not None for j in ids)
    assert all(first_run[j] == 1 for j in finished)


def test_a_bad_line_fails_alone(cloud: Cloud, tmp_path: Path) -> None:
    record = tmp_path / "executions.txt"
    lines = [_line(record) for _ in range(6)]
    lines[1] = b"{this is not json"
    lines[3] = json.dumps({"pipeline": "no-such-pipeline", "params": {}}).encode()
    failing = workflow(record=str(record), fail="execution_error")
    lines[4] = json.dumps({"job_id": "named-job", "workflow": failing}).encode()
    uri = _upload(cloud, lines)
    only = cloud.spawn_worker(tmp_path / "only.log", MANIFEST_URI=uri)  # one task: every line
    assert only.wait(60) == ExitCode.OK

    ids = _job_ids(uri, lines)
    status = {j: (cloud.result(j) or {}).get("status") for j in ids}
    assert [status[ids[i]] for i in (0, 2, 5)] == ["succeeded"] * 3
    bad_json = cloud.result(ids[1])
    assert bad_json is not None and bad_json["status"] == "failed"
    assert bad_json["error"]["type"] == "invalid_job"
    unknown = cloud.result(ids[3])
    assert unknown is not None and unknown["error"]["type"] == "invalid_job"
    assert "unknown pipeline 'no-such-pipeline'" in unknown["error"]["message"]
    named = cloud.result("named-job")  # a line's own job_id wins over the line's id
    assert named is not None and named["error"]["type"] == "execution_error"
    assert sorted(_executions(record)) == sorted([ids[0], ids[2], ids[5], "named-job"])


def test_a_stopped_task_exits_interrupted_so_cloud_run_retries_it(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "executions.txt"
    lines = [_line(record, sleep_s=0.3) for _ in range(10)]
    uri = _upload(cloud, lines)
    proc = cloud.spawn_worker(tmp_path / "task.log", MANIFEST_URI=uri)
    ids = _job_ids(uri, lines)
    deadline = time.monotonic() + 30
    while cloud.result(ids[1]) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == ExitCode.INTERRUPTED
    done = sum(cloud.result(j) is not None for j in ids)
    assert 2 <= done < 10
    log = (tmp_path / "task.log").read_text()
    assert '"unfinished": ' in log and '"total": 10' in log


def test_a_line_with_lasting_transient_faults_is_retried_then_left_to_a_task_retry(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "executions.txt"
    lines = [_line(record) for _ in range(4)]
    lines[0] = _line(record, fail="transient")
    uri = _upload(cloud, lines)
    proc = cloud.spawn_worker(tmp_path / "task.log", MANIFEST_URI=uri, MAX_CONSECUTIVE_TRANSIENT=10)
    assert proc.wait(60) == ExitCode.SERVICE_UNAVAILABLE  # non-zero: Cloud Run retries the task
    ids = _job_ids(uri, lines)
    assert _executions(record)[ids[0]] == 3  # MANIFEST_MAX_ATTEMPTS, after the others
    assert all(cloud.result(j) is not None for j in ids[1:]) and cloud.result(ids[0]) is None
    assert "line(s) 1 failed 3 attempts" in (tmp_path / "task.log").read_text()


def test_a_new_manifest_at_the_same_uri_runs_its_edited_lines(cloud: Cloud, tmp_path: Path) -> None:
    """Lines without ids: a re-run skips what is unchanged and runs what was edited, rather
    than handing an edited line the result of what its line number held before."""
    record = tmp_path / "executions.txt"
    first = [_line(record), _line(record)]
    uri = _upload(cloud, first)
    assert cloud.spawn_worker(tmp_path / "first.log", MANIFEST_URI=uri).wait(60) == ExitCode.OK
    edited = workflow(record=str(record), outputs=[{"name": "other.txt", "text": "edited"}])
    second = [first[0], json.dumps({"workflow": edited}).encode()]
    assert _upload(cloud, second) == uri
    assert cloud.spawn_worker(tmp_path / "second.log", MANIFEST_URI=uri).wait(60) == ExitCode.OK

    old, new = _job_ids(uri, first), _job_ids(uri, second)
    assert old[0] == new[0] and old[1] != new[1]
    assert _executions(record) == Counter([old[0], old[1], new[1]])  # line 1 ran once
    result = cloud.result(new[1])
    assert result is not None and [o["name"] for o in result["outputs"]] == ["other.txt"]
