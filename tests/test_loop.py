"""The job loop against the real Pub/Sub emulator and fake-gcs-server (scripted executor)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

from tests.cloud import PROJECT, Cloud
from tests.fakes.scripted import workflow
from tests.helpers import run_worker
from worker.exitcodes import ExitCode


def test_success_writes_outputs_then_result_then_one_event_then_acks(cloud: Cloud) -> None:
    outputs = [{"name": "a.png", "bytes": 3000}, {"name": "b.png", "bytes": 10}]
    outputs.append({"name": "caption.txt", "text": "a cat"})
    cloud.publish(
        {
            "job_id": "ok-1",
            "workflow": workflow(outputs=outputs),
            "output": {"prefix": "batch/7"},
            "metadata": {"campaign": "spring"},
        }
    )
    assert run_worker(cloud) == ExitCode.OK

    result = cloud.result("ok-1", prefix="batch/7")
    assert result is not None and result["status"] == "succeeded" and result["error"] is None
    objects = cloud.objects("results/batch/7/ok-1/")
    folder = f"gs://{cloud.bucket}/results/batch/7/ok-1"
    by_name = {o["name"]: o for o in result["outputs"]}
    assert set(by_name) == {"a.png", "b.png", "caption.txt"}
    for name, entry in by_name.items():
        blob = objects[f"results/batch/7/ok-1/{name}"]
        assert entry["uri"] == f"{folder}/{name}"
        assert (entry["size"], entry["crc32c"], entry["md5"]) == (
            blob.size,
            blob.crc32c,
            blob.md5_hash,
        )
        assert entry["content_type"] == blob.content_type
    assert by_name["a.png"]["content_type"] == "image/png"
    assert by_name["caption.txt"]["content_type"].startswith("text/plain")
    # result.json is written last: its generation (a microsecond timestamp) follows every output's.
    result_blob = objects["results/batch/7/ok-1/result.json"]
    names = {n.rsplit("/", 1)[-1] for n in objects}
    markers = {n for n in names if n.startswith(".")}
    assert markers == {".namespace", ".attempt-1.json", ".attempt-1.released"}
    outputs_blobs = [b for n, b in objects.items() if n.rsplit("/", 1)[-1] in by_name]
    assert len(outputs_blobs) == 3 and len(objects) == 3 + len(markers) + 1
    assert all(b.generation < result_blob.generation for b in outputs_blobs)
    assert result["metadata"] == {"campaign": "spring"}
    assert result["result_uri"] == f"{folder}/result.json"
    assert result["delivery_attempt"] == 1
    assert set(result["timings"]) >= {"inputs_s", "execution_s", "upload_s", "total_s"}

    events = cloud.events(1)
    assert len(events) == 1
    assert events[0]["_attributes"] == {"job_id": "ok-1", "status": "succeeded"}
    assert {k: v for k, v in events[0].items() if k != "_attributes"} == result
    assert cloud.events(1, timeout_s=2) == []  # exactly one event
    assert cloud.backlog() == 0  # acked: nothing to redeliver


def test_bad_messages_fail_alone_and_the_worker_keeps_going(cloud: Cloud) -> None:
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
            "inputs": [{"name": "x.png", "uri": f"gs://{cloud.bucket}/nope.png"}],
        },
        "bad-base64": {
            "job_id": "bad-base64",
            "workflow": wf,
            "inputs": [{"name": "x.png", "data": "not base64!"}],
        },
        "node-error": {"job_id": "node-error", "workflow": workflow(fail="execution_error")},
    }
    ids = {key: cloud.publish(body) for key, body in bad.items()}
    cloud.publish({"job_id": "good", "workflow": workflow(outputs=[{"name": "o.png"}])})

    assert run_worker(cloud, MAX_MESSAGE_BYTES=4096) == ExitCode.OK

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
        result = cloud.result(job_id if key != "oversized" else ids["oversized"])
        assert result is not None, key
        assert result["status"] == "failed", key
        assert result["error"]["type"] == error_type, key
        assert fragment in result["error"]["message"], (key, result["error"])
    good = cloud.result("good")
    assert good is not None and good["status"] == "succeeded"
    events = cloud.events(len(bad) + 1)
    assert sorted(e["status"] for e in events) == ["failed"] * len(bad) + ["succeeded"]
    assert cloud.backlog() == 0  # every message acked: nothing is retried
    assert cloud.pull(cloud.dead_subscription, 1, timeout_s=2) == []


def test_runpod_body_runs_unchanged(cloud: Cloud) -> None:
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
    message_id = cloud.publish(body, job_id="rp-1")
    assert run_worker(cloud) == ExitCode.OK
    result = cloud.result("rp-1")
    assert result is not None and result["status"] == "succeeded", result
    assert result["form"] == "runpod" and result["message_id"] == message_id
    # Output names are one path segment: inputs/input.png is stored as inputs__input.png.
    blobs = cloud.objects("results/rp-1/inputs__")
    assert blobs["results/rp-1/inputs__input.png"].download_as_bytes() == png
    assert blobs["results/rp-1/inputs__mask.png"].download_as_bytes() == b"mask"


def test_gcs_inputs_are_staged(cloud: Cloud) -> None:
    cloud.gcs.bucket(cloud.bucket).blob("in/photo.png").upload_from_string(b"photo-bytes")
    cloud.publish(
        {
            "job_id": "gs-in",
            "workflow": workflow(copy_inputs=True),
            "inputs": [{"name": "photos/p.png", "uri": f"gs://{cloud.bucket}/in/photo.png"}],
        }
    )
    assert run_worker(cloud) == ExitCode.OK
    blob = cloud.objects("results/gs-in/")["results/gs-in/inputs__photos__p.png"]
    assert blob.download_as_bytes() == b"photo-bytes"


def test_input_over_the_size_limit_fails_with_input_error(cloud: Cloud) -> None:
    cloud.gcs.bucket(cloud.bucket).blob("in/big.bin").upload_from_string(b"x" * 5000)
    cloud.publish(
        {
            "job_id": "big",
            "workflow": workflow(),
            "inputs": [{"name": "big.bin", "uri": f"gs://{cloud.bucket}/in/big.bin"}],
        }
    )
    assert run_worker(cloud, MAX_INPUT_BYTES=4000) == ExitCode.OK
    result = cloud.result("big")
    assert result is not None and result["error"]["type"] == "input_error"
    assert "MAX_INPUT_BYTES" in result["error"]["message"]


def test_transient_failure_is_redelivered_then_fails_as_retries_exhausted(
    cloud: Cloud, tmp_path: Path
) -> None:
    record = tmp_path / "runs.txt"
    cloud.publish({"job_id": "flaky", "workflow": workflow(fail="transient", record=str(record))})
    code = run_worker(cloud, IDLE_EXIT_S=4, MAX_CONSECUTIVE_TRANSIENT=50)
    assert code == ExitCode.OK
    assert record.read_text().split() == ["flaky"] * 5  # five delivery attempts
    # The fifth (MAX_DELIVERY_ATTEMPTS) records the failure instead of dead-lettering it
    # silently: the sender sees why.
    result = cloud.result("flaky")
    assert result is not None and result["error"]["type"] == "retries_exhausted"
    assert result["delivery_attempt"] == 5
    assert "scripted: transient fault" in result["error"]["message"]
    assert [e["status"] for e in cloud.events(2)] == ["failed"]
    assert cloud.pull(cloud.dead_subscription, 1, timeout_s=2) == []
    assert cloud.backlog() == 0


def test_repeated_transient_failures_stop_the_worker(cloud: Cloud) -> None:
    for i in range(3):
        cloud.publish({"job_id": f"t{i}", "workflow": workflow(fail="transient")})
    assert run_worker(cloud, MAX_CONSECUTIVE_TRANSIENT=2) == ExitCode.SERVICE_UNAVAILABLE
    assert cloud.backlog() >= 1  # handed back, not lost


def test_job_timeout_fails_the_job(cloud: Cloud) -> None:
    cloud.publish({"job_id": "slow", "workflow": workflow(sleep_s=30)})
    started = time.monotonic()
    assert run_worker(cloud, JOB_TIMEOUT_S=1) == ExitCode.OK
    assert time.monotonic() - started < 15
    result = cloud.result("slow")
    assert result is not None and result["error"]["type"] == "timeout"
    assert "JOB_TIMEOUT_S" in result["error"]["message"]


def test_max_jobs_exit(cloud: Cloud, tmp_path: Path) -> None:
    record = tmp_path / "runs.txt"
    for i in range(4):  # each runs long enough for the next to be prefetched meanwhile
        cloud.publish({"job_id": f"m{i}", "workflow": workflow(sleep_s=0.8, record=str(record))})
    assert run_worker(cloud, MAX_JOBS=2, IDLE_EXIT_S=60) == ExitCode.OK
    assert len(record.read_text().split()) == 2  # the prefetched second job ran, too
    done = [i for i in range(4) if cloud.result(f"m{i}") is not None]
    assert len(done) == 2
    assert cloud.backlog() == 2  # the rest were never taken


def test_idle_exit(cloud: Cloud) -> None:
    started = time.monotonic()
    assert run_worker(cloud, IDLE_EXIT_S=2) == ExitCode.OK
    assert 2 <= time.monotonic() - started < 8


def test_idle_time_counts_from_ready_not_from_boot(cloud: Cloud) -> None:
    cloud.publish({"job_id": "after-boot", "workflow": workflow()})
    assert run_worker(cloud, EXECUTOR="tests.fakes.scripted:build_slow_start") == ExitCode.OK
    assert cloud.result("after-boot") is not None


def test_broken_executor_exits_non_zero_and_hands_the_job_back(cloud: Cloud) -> None:
    cloud.publish({"job_id": "b1", "workflow": workflow(fail="broken")})
    cloud.publish({"job_id": "b2", "workflow": workflow()})
    assert run_worker(cloud, IDLE_EXIT_S=30) == ExitCode.WORKER_BROKEN
    assert cloud.result("b1") is None
    assert cloud.backlog() == 2  # the broken job and the prefetched one are both back


def test_unclassified_executor_exception_is_treated_as_broken(cloud: Cloud) -> None:
    cloud.publish({"job_id": "c1", "workflow": workflow(fail="crash")})
    assert run_worker(cloud) == ExitCode.WORKER_BROKEN
    assert cloud.result("c1") is None and cloud.backlog() == 1


def test_task_budget_stops_before_the_deadline(cloud: Cloud) -> None:
    cloud.publish({"job_id": "long", "workflow": workflow(sleep_s=60)})
    started = time.monotonic()
    code = run_worker(cloud, TASK_TIMEOUT_S=12, STOP_MARGIN_S=8, IDLE_EXIT_S=60)
    assert code == ExitCode.OK
    assert time.monotonic() - started < 10
    assert cloud.result("long") is None and cloud.backlog() == 1  # interrupted and handed back


def test_progress_is_published_when_a_progress_topic_is_set(cloud: Cloud) -> None:
    topic = f"projects/{PROJECT}/topics/progress-{cloud.suffix}"
    watch = f"projects/{PROJECT}/subscriptions/progress-{cloud.suffix}"
    cloud.publisher.create_topic(name=topic)
    cloud.subscriber.create_subscription(name=watch, topic=topic)
    cloud.publish({"job_id": "p1", "workflow": workflow(sleep_s=0.5)})
    assert run_worker(cloud, PROGRESS_TOPIC=topic) == ExitCode.OK
    updates = [json.loads(m.message.data) for m in cloud.pull(watch, 3)]
    assert len(updates) == 3
    assert all(u["job_id"] == "p1" and u["status"] == "running" for u in updates)
    assert all(0 < u["value"] <= u["total"] == 0.5 for u in updates)
