"""Each message's fate in the corners the control loop owns, on the memory adapters with a fake
clock: events that must not be lost, earlier results that count as done, uploads retried from
the kept outputs, a run that ignores its timeout, a working thread that dies, duplicates, a job
longer than the ack deadline. Moved from ``tests/test_fates.py``, ``tests/test_idempotency.py``
and ``tests/test_lifecycle.py``; the race of two processes on one job stays there."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from tests.fakes.publisher import RecordingPublisher
from tests.fakes.scripted import workflow
from tests.memory.world import World, executed
from worker.errors import Transient
from worker.exitcodes import ExitCode
from worker.loop.runner import ExitReason


def claimed(world: World, folder: str) -> None:
    """The folder as an earlier attempt left it: claimed as a job's."""
    world.put(f"results/{folder}/.namespace", b'{"role": "job", "nonce": "earlier"}')


def test_a_refused_messages_redelivery_re_publishes_its_event(world: World) -> None:
    # An earlier delivery wrote the failed result, then its publish failed: the redelivery
    # finds result.json (create-once would answer 412) and must announce it, not ack silently.
    stored = {"version": 1, "job_id": "ref", "status": "failed", "error": {"type": "invalid_job"}}
    claimed(world, "ref")
    world.put("results/ref/result.json", json.dumps(stored).encode())
    world.publish({"job_id": "ref", "workflow": workflow(), "bogus": 1})
    assert world.run() == ExitCode.OK
    events = world.events()
    assert len(events) == 1 and events[0]["_attributes"] == {"job_id": "ref", "status": "failed"}
    assert world.result("ref") == stored  # not rewritten
    assert world.backlog() == 0


def test_an_oversized_earlier_result_counts_as_done(world: World, tmp_path: Path) -> None:
    record = tmp_path / "runs.txt"
    head = b'{"version": 1, "job_id": "old", "status": "failed", "error": {"message": "'
    claimed(world, "old")
    world.put("results/old/result.json", head + b"x" * 11_000_000 + b'"}}')
    world.publish({"job_id": "old", "workflow": workflow(record=str(record))})
    assert world.run() == ExitCode.OK
    assert not record.exists()  # done: not run again
    events = world.events()
    assert len(events) == 1 and events[0]["status"] == "failed"
    assert events[0]["result_uri"].endswith("/old/result.json")
    assert "larger than the result size cap" in events[0]["note"]
    assert world.backlog() == 0


def test_an_upload_failing_past_its_retries_is_retried_from_the_kept_outputs(
    world: World, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    spec = workflow(outputs=[{"name": "a.png", "bytes": 5000}], record=str(record))
    world.publish({"job_id": "up", "workflow": spec})
    # GCS is out for the first upload: the store's retries are spent (Transient).
    world.store.faults["put_file_once"] = [Transient("GCS upload still failing after 1 s")]
    assert world.run(SERVICE_RETRY_S=1, IDLE_EXIT_S=60) == ExitCode.OK
    assert world.store.faults["put_file_once"] == []  # the outage was met
    assert executed(record) == ["up"]  # executed once
    result = world.result("up")
    assert result is not None and result["status"] == "succeeded", result
    assert [o["name"] for o in result["outputs"]] == ["a.png"]
    assert len(world.events()) == 1
    assert world.backlog() == 0


def test_a_run_that_ignores_its_timeout_gets_a_result_before_the_worker_is_replaced(
    world: World, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    stuck = workflow(sleep_s=12_000, ignore_interrupt=True, record=str(record))
    world.publish({"job_id": "stuck", "workflow": stuck})
    started = world.clock.monotonic()
    # The process must go (the executor is held by the run), but with the job's result.
    assert world.run(JOB_TIMEOUT_S=600, IDLE_EXIT_S=30) == ExitCode.WORKER_BROKEN
    assert world.clock.monotonic() - started < 1200  # the timeout and its grace, not the run
    result = world.result("stuck")
    assert result is not None and result["error"]["type"] == "timeout"
    assert "did not stop" in result["error"]["message"]
    assert len(world.events()) == 1
    assert world.backlog() == 0  # acked: it does not come back to hold another GPU
    assert executed(record) == ["stuck"]


class DyingPublisher(RecordingPublisher):
    """At the first event a ``BaseException`` (a library bug, a ``SystemExit`` from deep
    inside) kills the thread that called it."""

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        raise SystemExit("the finisher's publish blew up")


def test_a_dead_finisher_halts_the_worker_instead_of_hanging(world: World) -> None:
    for i in range(3):
        world.publish({"job_id": f"d{i}", "workflow": workflow(sleep_s=2)})
    started = world.clock.monotonic()
    reason, _ = world.run_for_reason(publisher=DyingPublisher(), IDLE_EXIT_S=30)
    assert reason is ExitReason.BROKEN
    assert world.clock.monotonic() - started < 20
    # Nothing acked without its event; all handed back, deliverable now.
    assert world.subscription.backlog() == 3


def test_redelivered_finished_job_is_not_run_again_but_its_event_is_republished(
    world: World, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    job = {"job_id": "twice", "workflow": workflow(outputs=[{"name": "a.png"}], record=str(record))}
    world.publish(job)
    assert world.run() == ExitCode.OK
    first = world.result("twice")
    world.publish(job)  # the same job again, as a redelivery or a producer retry would
    assert world.run() == ExitCode.OK
    assert executed(record) == ["twice"]  # executed once
    assert world.result("twice") == first  # result.json untouched
    events = world.events()
    assert len(events) == 2 and events[0] == events[1]  # the same event, published again
    assert world.backlog() == 0


def test_back_to_back_duplicates_run_once_even_when_prefetched(
    world: World, tmp_path: Path
) -> None:
    # The duplicate is pulled and prepared while the original still runs, before any
    # result.json exists; the worker notices before executing it.
    record = tmp_path / "runs.txt"
    for job_id, fail in (("bad", "invalid_workflow"), ("good", None)):
        job = {"job_id": job_id, "workflow": workflow(sleep_s=30, fail=fail, record=str(record))}
        world.publish(job)
        world.publish(job)
    assert world.run() == ExitCode.OK
    assert executed(record) == ["bad", "good"]
    result = world.result("bad")
    assert result is not None and result["error"]["type"] == "invalid_workflow"
    assert len(world.events()) == 4  # each delivery announced (the duplicates re-publish)


def test_job_longer_than_the_ack_deadline_is_not_redelivered(world: World, tmp_path: Path) -> None:
    # The subscription's ack deadline is 10 s; the job runs 300 s while a second worker pulls.
    record = tmp_path / "runs.txt"
    world.publish({"job_id": "long", "workflow": workflow(sleep_s=300, record=str(record))})
    codes: list[ExitCode] = []
    a = world.run_in_thread(codes, MAX_JOBS=1, IDLE_EXIT_S=600)
    world.until(lambda: executed(record) == ["long"])
    b = world.run_in_thread(codes, IDLE_EXIT_S=120)
    a.join(30)
    b.join(30)
    assert codes == [ExitCode.OK, ExitCode.OK]
    assert executed(record) == ["long"]
    events = world.events()
    assert len(events) == 1 and events[0]["status"] == "succeeded"
    assert world.subscription.messages == []  # acked


def test_idle_worker_holds_no_messages_and_a_busy_one_at_most_one_extra(
    world: World, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    for i in range(4):
        world.publish({"job_id": f"q{i}", "workflow": workflow(sleep_s=60, record=str(record))})
    codes: list[ExitCode] = []
    worker = world.run_in_thread(codes, IDLE_EXIT_S=600, MAX_JOBS=1)
    world.until(lambda: executed(record) == ["q0"])
    world.clock.sleep(10)  # let the prefetch happen
    # One executing, at most one prefetched: the rest are deliverable to other tasks now.
    assert world.subscription.backlog() >= 2
    worker.join(30)
    assert codes == [ExitCode.OK]


def _most_held(world: World, jobs: int, sleep_s: float, record: Path) -> int:
    """The most messages one worker held at once while it drained ``jobs`` runs of ``sleep_s``."""
    for i in range(jobs):
        job = {
            "job_id": f"{record.stem}{i}",
            "workflow": workflow(sleep_s=sleep_s, record=str(record)),
        }
        world.publish(job)
    codes: list[ExitCode] = []
    worker = world.run_in_thread(codes, IDLE_EXIT_S=600, MAX_JOBS=jobs)
    most = 0
    end = world.clock.monotonic() + 50 * jobs * max(sleep_s, 1.0)
    while len(executed(record)) < jobs:
        assert world.clock.monotonic() < end, "never drained"
        most = max(most, world.subscription.unacked() - world.subscription.backlog())
        world.clock.sleep(sleep_s / 4)
    worker.join(30)
    assert codes == [ExitCode.OK] and world.subscription.unacked() == 0
    return most


def test_short_runs_are_prefetched_two_ahead_and_long_ones_one(
    world: World, tmp_path: Path
) -> None:
    """Runs shorter than a job's preparation would leave the GPU waiting with one job ahead;
    longer ones leave every message but the next deliverable to other tasks."""
    assert _most_held(world, 12, 0.2, tmp_path / "short.txt") == 3  # running, next, next-but-one
    assert _most_held(world, 6, 2.0, tmp_path / "long.txt") == 2
