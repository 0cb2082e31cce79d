"""The job loop's timing and fates on the in-memory adapters with a fake clock.

Moved from the emulator tests (``tests/test_loop.py``): what they show is the loop's own logic
(parsing, redelivery counts, timeouts, budgets, idling), which the contract suite
(``tests/contract``) shows the memory adapters share with Pub/Sub and GCS. Durations here are
virtual: ``JOB_TIMEOUT_S=60`` is reached in milliseconds.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

from tests.fakes.scripted import workflow
from tests.memory.world import World, executed
from worker.exitcodes import ExitCode


def test_bad_messages_fail_alone_and_the_worker_keeps_going(world: World) -> None:
    wf = workflow()
    bad = {
        "not-json": b"{oops",
        "schema": {"job_id": "schema", "workflow": wf, "bogus": 1},
        "oversized": {"job_id": "oversized", "workflow": wf, "metadata": {"x": "y" * 6000}},
        "prefix": {"job_id": "prefix", "workflow": wf, "output": {"prefix": "../../etc"}},
        "name": {"job_id": "name", "workflow": wf, "inputs": [{"name": "../x", "data": "eA=="}]},
        "bucket": {
            "job_id": "bucket",
            "workflow": wf,
            "inputs": [{"name": "x.png", "uri": "gs://someone-elses/x.png"}],
        },
        "missing-input": {
            "job_id": "missing-input",
            "workflow": wf,
            "inputs": [{"name": "x.png", "uri": f"gs://{world.bucket}/nope.png"}],
        },
        "bad-base64": {
            "job_id": "bad-base64",
            "workflow": wf,
            "inputs": [{"name": "x.png", "data": "not base64!"}],
        },
        "node-error": {"job_id": "node-error", "workflow": workflow(fail="execution_error")},
    }
    ids = {key: world.publish(body) for key, body in bad.items()}
    world.publish({"job_id": "good", "workflow": workflow(outputs=[{"name": "o.png"}])})

    assert world.run(MAX_MESSAGE_BYTES=4096) == ExitCode.OK

    expected = {
        "not-json": (ids["not-json"], "invalid_job", "not valid JSON"),
        "schema": ("schema", "invalid_job", "unknown field(s) ['bogus']"),
        "oversized": ("oversized", "invalid_job", "MAX_MESSAGE_BYTES"),
        "prefix": ("prefix", "invalid_job", "output.prefix"),
        "name": ("name", "invalid_job", "inputs[0].name"),
        "bucket": ("bucket", "invalid_job", "ALLOWED_INPUT_BUCKETS"),
        "missing-input": ("missing-input", "input_error", "does not exist"),
        "bad-base64": ("bad-base64", "input_error", "not valid base64"),
        "node-error": ("node-error", "execution_error", "scripted"),
    }
    for key, (job_id, error_type, fragment) in expected.items():
        result = world.result(job_id if key != "oversized" else ids["oversized"])
        assert result is not None, key
        assert result["status"] == "failed", key
        assert result["error"]["type"] == error_type, key
        assert fragment in result["error"]["message"], (key, result["error"])
    good = world.result("good")
    assert good is not None and good["status"] == "succeeded"
    events = world.events()
    assert sorted(e["status"] for e in events) == ["failed"] * len(bad) + ["succeeded"]
    assert world.backlog() == 0  # every message acked: nothing is retried
    assert world.subscription.dead_letters == []


def test_runpod_body_runs_unchanged(world: World) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    body = {
        "input": {
            "workflow": workflow(copy_inputs=True),
            "images": [
                {"name": "input.png", "image": base64.b64encode(png).decode()},
                {
                    "name": "mask.png",
                    "image": "data:image/png;base64," + base64.b64encode(b"mask").decode(),
                },
            ],
        }
    }
    message_id = world.publish(body, job_id="rp-1")
    assert world.run() == ExitCode.OK
    result = world.result("rp-1")
    assert result is not None and result["status"] == "succeeded", result
    assert result["form"] == "runpod" and result["message_id"] == message_id
    # Output names are one path segment: inputs/input.png is stored as inputs__input.png.
    stored = world.objects("results/rp-1/inputs__")
    assert stored["results/rp-1/inputs__input.png"].data == png
    assert stored["results/rp-1/inputs__mask.png"].data == b"mask"


def test_gcs_inputs_are_staged(world: World) -> None:
    world.put("in/photo.png", b"photo-bytes")
    world.publish(
        {
            "job_id": "gs-in",
            "workflow": workflow(copy_inputs=True),
            "inputs": [{"name": "photos/p.png", "uri": f"gs://{world.bucket}/in/photo.png"}],
        }
    )
    assert world.run() == ExitCode.OK
    stored = world.objects("results/gs-in/")["results/gs-in/inputs__photos__p.png"]
    assert stored.data == b"photo-bytes"


def test_input_over_the_size_limit_fails_with_input_error(world: World) -> None:
    world.put("in/big.bin", b"x" * 5000)
    world.publish(
        {
            "job_id": "big",
            "workflow": workflow(),
            "inputs": [{"name": "big.bin", "uri": f"gs://{world.bucket}/in/big.bin"}],
        }
    )
    assert world.run(MAX_INPUT_BYTES=4000) == ExitCode.OK
    result = world.result("big")
    assert result is not None and result["error"]["type"] == "input_error"
    assert "MAX_INPUT_BYTES" in result["error"]["message"]


def test_transient_failure_is_redelivered_then_fails_as_retries_exhausted(
    world: World, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    world.publish({"job_id": "flaky", "workflow": workflow(fail="transient", record=str(record))})
    code = world.run(IDLE_EXIT_S=4, MAX_CONSECUTIVE_TRANSIENT=50)
    assert code == ExitCode.OK
    assert executed(record) == ["flaky"] * 5  # five delivery attempts
    # The fifth (MAX_DELIVERY_ATTEMPTS) records the failure instead of dead-lettering it
    # silently: the sender sees why.
    result = world.result("flaky")
    assert result is not None and result["error"]["type"] == "retries_exhausted"
    assert result["delivery_attempt"] == 5
    assert "scripted: transient fault" in result["error"]["message"]
    assert [e["status"] for e in world.events()] == ["failed"]
    assert world.subscription.dead_letters == []
    assert world.backlog() == 0


def test_repeated_transient_failures_stop_the_worker(world: World) -> None:
    for i in range(3):
        world.publish({"job_id": f"t{i}", "workflow": workflow(fail="transient")})
    assert world.run(MAX_CONSECUTIVE_TRANSIENT=2) == ExitCode.SERVICE_UNAVAILABLE
    assert world.backlog() == 3  # handed back, not lost
    assert world.subscription.backlog() == 3  # and deliverable now, not after a lease


def test_job_timeout_fails_the_job(world: World) -> None:
    world.publish({"job_id": "slow", "workflow": workflow(sleep_s=3000)})
    started = world.clock.monotonic()
    assert world.run(JOB_TIMEOUT_S=60, IDLE_EXIT_S=5) == ExitCode.OK
    assert 60 <= world.clock.monotonic() - started < 200  # long before the 3000 s run's end
    result = world.result("slow")
    assert result is not None and result["error"]["type"] == "timeout"
    assert "JOB_TIMEOUT_S=60" in result["error"]["message"]


def test_max_jobs_exit(world: World, tmp_path: Path) -> None:
    record = tmp_path / "runs.txt"
    for i in range(4):  # each runs long enough for the next to be prefetched meanwhile
        world.publish({"job_id": f"m{i}", "workflow": workflow(sleep_s=20, record=str(record))})
    assert world.run(MAX_JOBS=2, IDLE_EXIT_S=600) == ExitCode.OK
    assert len(executed(record)) == 2  # the prefetched second job ran, too
    done = [i for i in range(4) if world.result(f"m{i}") is not None]
    assert len(done) == 2
    assert world.backlog() == 2 and world.subscription.backlog() == 2  # the rest never taken


def test_idle_exit(world: World) -> None:
    started, real = world.clock.monotonic(), time.monotonic()
    assert world.run(IDLE_EXIT_S=120) == ExitCode.OK
    assert 120 <= world.clock.monotonic() - started < 140
    assert time.monotonic() - real < 60  # virtual minutes, not real ones


def test_idle_time_counts_from_ready_not_from_boot(world: World) -> None:
    world.publish({"job_id": "after-boot", "workflow": workflow()})
    boot_longer_than_idling = world.executor(start_s=120)
    assert world.run(boot_longer_than_idling, IDLE_EXIT_S=30) == ExitCode.OK
    assert world.result("after-boot") is not None


def test_broken_executor_exits_non_zero_and_hands_the_job_back(world: World) -> None:
    world.publish({"job_id": "b1", "workflow": workflow(fail="broken")})
    world.publish({"job_id": "b2", "workflow": workflow()})
    assert world.run(IDLE_EXIT_S=30) == ExitCode.WORKER_BROKEN
    assert world.result("b1") is None
    assert world.subscription.backlog() == 2  # the broken job and the prefetched one are back


def test_unclassified_executor_exception_is_treated_as_broken(world: World) -> None:
    world.publish({"job_id": "c1", "workflow": workflow(fail="crash")})
    assert world.run() == ExitCode.WORKER_BROKEN
    assert world.result("c1") is None and world.subscription.backlog() == 1


def test_task_budget_stops_before_the_deadline(world: World) -> None:
    world.publish({"job_id": "long", "workflow": workflow(sleep_s=6000)})
    started = world.clock.monotonic()
    code = world.run(TASK_TIMEOUT_S=1200, STOP_MARGIN_S=300, JOB_TIMEOUT_S=7200, IDLE_EXIT_S=6000)
    assert code == ExitCode.OK
    assert 900 <= world.clock.monotonic() - started < 1200  # stopped inside the budget
    # Interrupted and handed back: deliverable at once, not after a lease.
    assert world.result("long") is None and world.subscription.backlog() == 1
