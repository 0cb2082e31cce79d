"""A job that kills its worker process is failed for good after MAX_CRASHED_ATTEMPTS deaths.

No handler sees an ``os._exit`` or a SIGSEGV in a custom node (or the kernel's OOM kill): the
message comes back when its lease lapses, to a fresh worker, again and again. The attempt
records bound that loop: real ``python -m worker run`` processes, the Pub/Sub emulator and
fake-gcs-server.

Both places the executor can run: its own child process (``EXECUTOR_PROCESS``, the default),
where the worker's process outlives the death, nacks the message and exits ``WORKER_BROKEN``
naming the signal; and the worker's process, which the death takes down with it. There each
death costs a lease lapse (10 s) before the message comes back, so the default run uses
``MAX_CRASHED_ATTEMPTS=1`` (one death, by SIGSEGV); the default setting's two deaths (``os._exit``,
then SIGSEGV) run with:

    CRASH_LOOP_K=2 .venv/bin/python -m pytest tests/test_crashloop.py -q
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cloud import Cloud
from tests.fakes.scripted import workflow
from worker.exitcodes import ExitCode

K = int(os.environ.get("CRASH_LOOP_K", "1"))  # MAX_CRASHED_ATTEMPTS for this run
KINDS = ["segv", "exit"] if K == 1 else ["exit", "segv"]


def drain(
    cloud: Cloud, tmp_path: Path, job_ids: list[str], timeout_s: float, child: bool
) -> list[int]:
    """Run workers one after another until every job has a result; their exit codes."""
    codes: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker = cloud.spawn_worker(
            tmp_path / f"w{len(codes)}.log",
            IDLE_EXIT_S=15,
            MAX_CRASHED_ATTEMPTS=K,
            EXECUTOR_PROCESS=str(child).lower(),
        )
        while worker.poll() is None and time.monotonic() < deadline:
            if all(cloud.result(j) is not None for j in job_ids):
                worker.send_signal(signal.SIGTERM)  # no need to wait for the idle exit
                break
            time.sleep(0.3)
        try:
            codes.append(worker.wait(timeout=15))
        except subprocess.TimeoutExpired:
            worker.kill()
            raise
        if all(cloud.result(j) is not None for j in job_ids):
            return codes
    raise AssertionError(f"not every job finished; worker exit codes {codes}")


@pytest.mark.parametrize("child", [True, False], ids=["executor-process", "in-process"])
def test_a_job_that_kills_its_worker_ends_worker_crashed_and_the_others_succeed(
    cloud: Cloud, tmp_path: Path, child: bool
) -> None:
    record = tmp_path / "runs.txt"
    good = [f"good-{i}" for i in range(3)]
    cloud.publish({"job_id": "boom", "workflow": workflow(crash=KINDS, record=str(record))})
    for job_id in good:
        spec = workflow(sleep_s=0.3, outputs=[{"name": "x.png"}], record=str(record))
        cloud.publish({"job_id": job_id, "workflow": spec})

    codes = drain(cloud, tmp_path, ["boom", *good], timeout_s=100, child=child)

    boom = cloud.result("boom")
    assert boom is not None and boom["error"]["type"] == "worker_crashed", boom
    assert f"{K} earlier attempts" in boom["error"]["message"]
    for n in range(1, K + 1):
        assert f"attempt {n} (delivery " in boom["error"]["message"], boom["error"]["message"]
    for job_id in good:
        result = cloud.result(job_id)
        assert result is not None and result["status"] == "succeeded", result
    runs = record.read_text().split()
    assert runs.count("boom") == K  # run twice, then never again
    deaths = [c for c in codes if c != ExitCode.OK]
    assert len(deaths) <= K, codes  # only the crashing job's runs took a worker down
    if child:  # the worker's process saw its executor die, and said how
        assert set(deaths) <= {ExitCode.WORKER_BROKEN}, codes
        said = "".join(log.read_text() for log in tmp_path.glob("w*.log"))
        assert said.count("the executor process ended while running a job") == len(deaths)
        for kind in KINDS[:K]:
            assert {"segv": "killed by SIGSEGV", "exit": "exit status 3"}[kind] in said, said
    else:
        assert set(deaths) <= {-signal.SIGSEGV, 3}, codes
    events = cloud.events(len(good) + 1)
    assert sorted(e["job_id"] for e in events) == sorted(["boom", *good])
    assert cloud.events(1, timeout_s=1.5) == []  # one each
    assert cloud.pull(cloud.dead_subscription, 1, timeout_s=2) == []
    assert cloud.backlog() == 0
