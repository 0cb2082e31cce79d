"""A worker process's logs stay small whatever a message quotes (real emulators; the scripted
executor). The fates the control loop owns (events that must not be lost, earlier results, uploads
retried from the kept outputs, a run that ignores its timeout, a dying thread) run on the memory
adapters with a fake clock: ``tests/memory/test_fates.py``."""

from __future__ import annotations

from pathlib import Path

from tests.cloud import Cloud
from tests.fakes.scripted import workflow
from tests.test_lifecycle import log_lines
from worker.exitcodes import ExitCode


def test_logs_stay_small_whatever_they_quote(cloud: Cloud, tmp_path: Path) -> None:
    cloud.publish(
        {"job_id": "loud", "workflow": workflow(fail="execution_error"), "x": "y" * 10**6}
    )
    log = tmp_path / "w.log"
    assert cloud.spawn_worker(log).wait(timeout=60) == ExitCode.OK
    assert max(len(line.encode()) for line in log.read_text().splitlines()) < 64 * 1024
    assert any(x["message"] == "job.failed" for x in log_lines(log))
