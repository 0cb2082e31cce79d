"""The log-based metrics in infra/metrics.tf against the log lines a real run writes.

The worker runs in-process with the real wiring (Pub/Sub emulator, fake-gcs-server, the scripted
executor) and its JSON log lines are captured; the dispatcher makes one decision against the
Cloud Run API stand-in. Every metric's filter must select lines of this run, and every field it
extracts must be on those lines, with the type the metric needs (numbers for distributions,
strings for labels).
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cloud import Cloud
from tests.deploy import hcl
from tests.fakes.scripted import workflow
from tests.helpers import run_worker
from tests.producer.fake_cloudrun import serve
from worker.exitcodes import ExitCode
from worker.obs import logs
from worker.obs.metrics import model_seconds, queue_fields
from worker.producer.cloudrun import CloudRunJob
from worker.producer.dispatch import Policy
from worker.producer.starter import dispatch_once

METRICS_DOC = Path(__file__).resolve().parents[2] / "docs" / "observability.md"
FILTER = re.compile(
    r"\$\{local\.(?P<job>worker_job|dispatch_job)\} AND jsonPayload\.message = "
    r'(?P<messages>"[a-z_.]+"|\("[a-z_.]+"(?: OR "[a-z_.]+")*\))'
    r"(?: AND jsonPayload\.(?P<has>[a-z_]+):\*)?"
)
EXTRACT = re.compile(r"EXTRACT\(jsonPayload\.([a-z_]+)\)")


@dataclass(frozen=True)
class Metric:
    name: str
    job: str
    messages: tuple[str, ...]
    has: str | None
    value: str | None
    labels: dict[str, str]
    value_type: str


def metrics() -> list[Metric]:
    found = []
    for name, body in hcl.load().of_type("google_logging_metric").items():
        text = body["filter"].replace('\\"', '"')
        match = FILTER.fullmatch(text)
        assert match, f"{name}: filter {text!r} is not in the form this test reads"
        value = None
        if "value_extractor" in body:
            extracted = EXTRACT.fullmatch(body["value_extractor"])
            assert extracted, f"{name}: value_extractor {body['value_extractor']!r}"
            value = extracted.group(1)
        labels = {}
        for key, extractor in body.get("label_extractors", {}).items():
            extracted = EXTRACT.fullmatch(extractor)
            assert extracted, f"{name}: label {key} extractor {extractor!r}"
            labels[key] = extracted.group(1)
        descriptor = hcl.one(body, "metric_descriptor")
        declared = {lab["key"] for lab in descriptor.get("labels", [])}
        assert declared == set(labels), f"{name}: declared labels {declared} != extracted"
        assert descriptor["value_type"] == ("DISTRIBUTION" if value else "INT64"), name
        assert body["name"] == name, "the metric's name is its resource name"
        found.append(
            Metric(
                name,
                match.group("job"),
                tuple(re.findall(r'"([a-z_.]+)"', match.group("messages"))),
                match.group("has"),
                value,
                labels,
                descriptor["value_type"],
            )
        )
    return found


@pytest.fixture(scope="module")
def defined() -> list[Metric]:
    return metrics()


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    logs.setup("INFO", static={"execution": "exec-1", "task_index": 0}, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def run_everything(cloud: Cloud) -> None:
    """What a task and a dispatcher write: jobs that succeed, fail and are refused; a nack."""
    cloud.publish(
        {
            "job_id": "ok",
            "workflow": workflow(
                sleep_s=0.2,
                outputs=[{"name": "a.png", "bytes": 300}, {"name": "t.txt", "text": "x"}],
            ),
        }
    )
    cloud.publish({"job_id": "bad", "workflow": workflow(fail="execution_error")})
    cloud.publish(b"not json")
    cloud.publish({"job_id": "flaky", "workflow": workflow(fail="transient")})
    assert run_worker(cloud, MAX_JOBS=4) == ExitCode.OK
    with serve() as fake:
        job = CloudRunJob("projects/p/locations/r/jobs/comfy-worker", fake.url)
        dispatch_once(25, job, Policy(4, 10, 3, 0), None)


def test_metrics_against_the_lines_of_a_real_run(
    cloud: Cloud, captured: io.StringIO, defined: list[Metric]
) -> None:
    run_everything(cloud)
    lines = lines_of(captured)
    every_metric_reads_fields_the_worker_logs(lines, defined)
    metric_values_on_the_right_transitions(lines, cloud)


def every_metric_reads_fields_the_worker_logs(
    lines: list[dict[str, Any]], defined: list[Metric]
) -> None:
    assert len(defined) >= 12
    for metric in defined:
        selected = [
            line
            for line in lines
            if line["message"] in metric.messages and (metric.has is None or metric.has in line)
        ]
        assert selected, f"{metric.name}: no line of a real run matches its filter"
        for line in selected:
            if metric.value is not None:
                value = line.get(metric.value)
                assert isinstance(value, int | float) and not isinstance(value, bool), (
                    f"{metric.name}: {line['message']} has {metric.value}={value!r}"
                )
            for key, field in metric.labels.items():
                if field in line:
                    assert isinstance(line[field], str), f"{metric.name}: label {key}"
        for key, field in metric.labels.items():
            assert any(field in line for line in selected), f"{metric.name}: label {key} never set"


def metric_values_on_the_right_transitions(lines: list[dict[str, Any]], cloud: Cloud) -> None:
    by_job = {(line["message"], line.get("job_id")): line for line in lines}
    ok = by_job[("job.succeeded", "ok")]
    assert ok["status"] == "succeeded" and ok["outputs"] == 2 and ok["images"] == 1
    assert ok["output_bytes"] == 301
    assert ok["gpu_seconds"] == pytest.approx(0.2, abs=0.15)
    assert ok["billed_s"] >= ok["gpu_seconds"] and ok["cost_usd"] > 0
    bad = by_job[("job.failed", "bad")]
    assert (bad["status"], bad["error_type"]) == ("failed", "execution_error")
    started = by_job[("job.started", "ok")]
    assert 0 <= started["queue_s"] < 60
    assert by_job[("job.nacked", "flaky")]["halt"] == "no"
    refused = [line for line in lines if line["message"] == "job.failed" and line is not bad]
    assert refused and refused[0]["error_type"] == "invalid_job"
    assert refused[0]["gpu_seconds"] == 0.0 and refused[0]["cost_usd"] == 0.0
    # The result documents carry the same cost fields as the log lines.
    result = cloud.result("ok")
    assert result is not None
    assert {k: result[k] for k in ("gpu_seconds", "billed_s", "cost_usd")} == {
        k: ok[k] for k in ("gpu_seconds", "billed_s", "cost_usd")
    }
    # The shares plus the tail are the task's whole life: nothing counted twice or lost.
    [ready] = [line for line in lines if line["message"] == "worker.ready"]
    [done] = [line for line in lines if line["message"] == "worker.exit"]
    finished = [line for line in lines if line["message"] in ("job.succeeded", "job.failed")]
    shares = sum(line["billed_s"] for line in finished)
    assert shares + done["unattributed_s"] == pytest.approx(done["uptime_s"], abs=0.05)
    assert shares >= ready["boot_s"]  # the first executed job carried the boot
    assert done["unattributed_usd"] == pytest.approx(done["unattributed_s"] * 0.0003947, rel=0.01)


def test_the_docs_document_every_metric(defined: list[Metric]) -> None:
    doc = METRICS_DOC.read_text()
    for metric in defined:
        assert f"`{metric.name}`" in doc, f"document {metric.name} in docs/observability.md"
        if metric.value is not None:
            assert f"`{metric.value}`" in doc, f"document {metric.value} in docs/observability.md"


def test_model_seconds_counts_loader_nodes_only() -> None:
    flow = {
        "4": {"class_type": "CheckpointLoaderSimple"},
        "5": {"class_type": "LoraLoader"},
        "6": {"class_type": "KSampler"},
        "7": {"class_type": "LoadImage"},
    }
    nodes = {"4": 2.5, "5": 0.25, "6": 9.0, "7": 0.1, "99": 1.0}
    assert model_seconds(flow, nodes) == pytest.approx(2.75)
    assert model_seconds(None, nodes) == 0.0


def test_queue_wait_is_known_only_with_a_publish_time() -> None:
    from worker.message.job import Delivery

    pubsub = Delivery("1", b"", {}, None, handle=None, published_at=100.0)
    assert queue_fields(pubsub, now=103.5) == {"queue_s": 3.5}
    assert queue_fields(pubsub, now=99.0) == {"queue_s": 0.0}  # clock skew never goes negative
    manifest = Delivery("2", b"", {}, None, handle=None, source="manifest")
    assert queue_fields(manifest) == {}
