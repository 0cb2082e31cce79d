"""The job loop against the real Pub/Sub emulator and fake-gcs-server (scripted executor).

One run end to end (what GCS reports of each output, the event, the ack) and the progress topic.
The loop's own logic (bad messages, redeliveries, timeouts, budgets, idling) runs on the memory
adapters with a fake clock: ``tests/memory/test_loop.py``.
"""

from __future__ import annotations

import json

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
