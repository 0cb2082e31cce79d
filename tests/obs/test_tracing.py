"""Traces: one span per job phase under the context ``submit`` put in the message attributes;
tracing off imports no SDK or exporter; the profiler says what it needs."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.cloud import REPO, Cloud
from tests.fakes.scripted import workflow
from tests.helpers import run_worker
from tests.producer.cli import worker_cli
from worker.config import Identity, Settings
from worker.errors import ConfigError
from worker.exitcodes import ExitCode
from worker.message.job import Delivery
from worker.obs import profiler
from worker.obs.tracing_otel import OtelTracer


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


PHASES = ["pull", "stage", "execute", "upload", "record", "ack"]


def test_phases_become_children_of_the_job_span_under_the_producers_context() -> None:
    sent, exported = InMemorySpanExporter(), InMemorySpanExporter()  # two processes
    producer = OtelTracer(sent, service="submit", version="t", batch=False)
    attributes: dict[str, str] = {"job_id": "j1"}
    producer.stamp([("j1", attributes)]).end()
    assert attributes["traceparent"].startswith("00-")

    tracer = OtelTracer(exported, service="comfy-worker", version="t", batch=False)
    delivery = Delivery("m1", b"{}", attributes, 2, handle=None)
    t0 = time.monotonic()
    tracer.received(delivery, "j1", t0, t0 + 0.01, 0.02)
    tracer.phase("m1", "execute", t0 + 0.03, t0 + 1.03)
    tracer.phase("m1", "upload", t0 + 1.03, t0 + 1.1)
    tracer.phase("m1", "record", t0 + 1.1, t0 + 1.2)
    tracer.settled(delivery, "ack", t0 + 1.2)
    tracer.phase("m1", "late", t0)  # after the end: ignored
    tracer.close()

    spans = {s.name: s for s in [*sent.get_finished_spans(), *exported.get_finished_spans()]}
    assert set(spans) == {"submit", "publish", "job", *PHASES}
    job, publish, submit = spans["job"], spans["publish"], spans["submit"]
    assert job.context is not None and publish.context is not None and submit.context is not None
    assert job.parent is not None and job.parent.span_id == publish.context.span_id
    assert job.context.trace_id == submit.context.trace_id
    assert job.attributes is not None and job.attributes["job.id"] == "j1"
    for name in PHASES:
        parent = spans[name].parent
        assert parent is not None and parent.span_id == job.context.span_id
    execute = spans["execute"]
    assert execute.end_time is not None and execute.start_time is not None
    assert (execute.end_time - execute.start_time) / 1e9 == pytest.approx(1.0, abs=1e-3)
    starts = [spans[name].start_time or 0 for name in PHASES]
    assert starts == sorted(starts)


def spans_in(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{") and '"context"' in line:
            span = json.loads(line)
            if "trace_id" in span.get("context", {}):
                found.append(span)
    return found


def test_a_submitted_job_continues_the_submit_trace(
    cloud: Cloud, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps(workflow(outputs=[{"name": "a.png", "bytes": 50}])))
    env: dict[str, Any] = {"TRACING": "1", "TRACING_EXPORTER": "console"}
    submitted = worker_cli(cloud, "submit", "--workflow", flow, "--job-id", "traced", **env)
    assert submitted.returncode == 0, submitted.stderr
    producer = {s["name"]: s for s in spans_in(submitted.stderr)}
    assert set(producer) == {"submit", "publish"}

    capfd.readouterr()
    assert run_worker(cloud, **env) == ExitCode.OK
    worker = spans_in(capfd.readouterr().err)
    [job] = [s for s in worker if s["name"] == "job"]
    assert job["attributes"]["job.id"] == "traced"
    assert job["context"]["trace_id"] == producer["publish"]["context"]["trace_id"]
    assert job["parent_id"] == producer["publish"]["context"]["span_id"]
    children = sorted(
        (s for s in worker if s.get("parent_id") == job["context"]["span_id"]),
        key=lambda s: s["start_time"],
    )
    assert [s["name"] for s in children] == PHASES
    assert worker[0]["resource"]["attributes"]["service.name"] == "comfy-worker"


def test_tracing_off_imports_no_sdk_and_no_exporter(cloud: Cloud) -> None:
    """The real ``python -m worker run``, idle until it exits, with Python's import log."""
    env = {**os.environ, **cloud.env(), "PYTHONPATH": str(REPO)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "worker", "run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in run.stderr.splitlines()
        if "import time:" in line
    }
    # the log is complete
    assert "worker.loop.runner" in imported and "worker.obs.tracing" in imported
    for module in (
        "worker.obs.tracing_otel",
        "opentelemetry.sdk",
        "opentelemetry.sdk.trace",
        "opentelemetry.exporter",
        "googlecloudprofiler",
    ):
        assert module not in imported, f"{module} imported with tracing and profiling off"


def test_tracing_to_cloud_trace_without_its_exporter_says_what_to_install() -> None:
    if installed("opentelemetry.exporter.cloud_trace"):
        pytest.skip("the Cloud Trace exporter is installed here")
    from worker.obs import tracing

    settings = Settings.from_env({"TRACING": "1"})
    with pytest.raises(ConfigError, match="pip install opentelemetry-exporter-gcp-trace"):
        tracing.build(settings.observability, Identity())


def test_profiler_off_by_default_and_missing_agent_is_a_config_error() -> None:
    assert profiler.start(Settings.from_env({}).observability, Identity()) is False
    if installed("googlecloudprofiler"):
        pytest.skip("the Cloud Profiler agent is installed here")
    on = Settings.from_env({"PROFILER": "1", "SERVICE_VERSION": "abc123"}).observability
    with pytest.raises(ConfigError, match="pip install google-cloud-profiler"):
        profiler.start(on, Identity())
