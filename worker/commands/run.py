"""``python -m worker run``: the Cloud Run Job's command. Wires the concrete pieces together.

This is the only module that knows which implementation sits behind each seam, installs signal
handlers (they only call ``Runner.stop``, which sets a flag) and names the exit code.
"""

from __future__ import annotations

import argparse
import signal
import time
from types import FrameType
from typing import Any, cast

from worker.adapters.events.pubsub import PubSubPublisher
from worker.adapters.sources.base import JobSource
from worker.adapters.sources.pubsub import PubSubSource
from worker.adapters.storage.base import ObjectStore
from worker.adapters.storage.gcs import GcsStore
from worker.config import Settings
from worker.executor import loading
from worker.executor.base import Executor, isolated
from worker.exitcodes import ExitCode
from worker.loop import workdir
from worker.loop.runner import ExitReason, Runner
from worker.message.parse import Parser, PipelineRenderer
from worker.models.fetch import ModelFetcher
from worker.obs import profiler, tracing


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "run",
        help="run jobs from the subscription (or a manifest) until idle, then exit 0",
        description="The Cloud Run Job's command: pull jobs from JOBS_SUBSCRIPTION one at a "
        "time, run them, write outputs + result.json to OUTPUT_URI, publish completion events "
        "to RESULTS_TOPIC. Exits 0 when idle for IDLE_EXIT_S, after MAX_JOBS, or before the "
        "task budget ends; non-zero only when the worker itself is broken.",
    )
    parser.add_argument(
        "--manifest",
        metavar="GS_URI",
        help="run this task's share of a JSONL manifest instead of the "
        "subscription (default: MANIFEST_URI)",
    )
    parser.set_defaults(handler=main)


def exit_code(reason: ExitReason, finite_source: bool) -> ExitCode:
    if reason in (ExitReason.IDLE, ExitReason.MAX_JOBS, ExitReason.DRAINED):
        return ExitCode.OK
    if reason in (ExitReason.STOPPED, ExitReason.BUDGET):
        # Queue mode: what is left is back on the subscription, so a clean exit is right.
        # Manifest mode: only a task retry (non-zero exit) resumes the unfinished share.
        return ExitCode.INTERRUPTED if finite_source else ExitCode.OK
    if reason is ExitReason.UNAVAILABLE:
        return ExitCode.SERVICE_UNAVAILABLE
    if reason is ExitReason.CONFIG:
        return ExitCode.CONFIG
    return ExitCode.WORKER_BROKEN


def load_executor(settings: Settings) -> Executor:
    return loading.load(settings)


def load_pipelines(settings: Settings) -> PipelineRenderer | None:
    directory = settings.producer.pipelines_dir
    if not directory.is_dir():
        return None
    from worker.message.pipelines import PipelineCatalog

    return cast(PipelineRenderer, PipelineCatalog.load(directory))


def build_source(settings: Settings, store: ObjectStore, manifest: str | None) -> JobSource:
    t = settings.timeouts
    if manifest:
        from worker.adapters.sources.jsonl import ManifestSource

        return cast(JobSource, ManifestSource.open(manifest, store, settings))
    assert settings.jobs_subscription is not None
    # The lease covers waiting behind one running job, its own run, and recording it.
    max_lease_s = 2 * t.job_s + 2 * t.service_retry_s + 60
    return PubSubSource(
        settings.jobs_subscription,
        extension_s=t.lease_extension_s,
        max_lease_s=max_lease_s,
        budget_s=t.service_retry_s,
        max_delivery_attempts=settings.max_delivery_attempts,
    )


def main(args: argparse.Namespace, settings: Settings) -> ExitCode:
    started = time.monotonic()
    manifest = args.manifest or settings.manifest_uri
    settings.require("OUTPUT_URI", "RESULTS_TOPIC", *(() if manifest else ("JOBS_SUBSCRIPTION",)))
    assert settings.results_topic is not None and settings.output_uri is not None
    slot = workdir.claim(settings.work_dir)  # this process's own folder, held until it exits
    try:
        return _run(args, settings.in_slot(slot.path), manifest, started)
    finally:
        slot.release()


def _run(
    args: argparse.Namespace, settings: Settings, manifest: str | None, started: float
) -> ExitCode:
    assert settings.results_topic is not None
    budget = settings.timeouts.service_retry_s
    profiler.start(settings.observability, settings.identity)
    tracer = tracing.build(settings.observability, settings.identity)
    store = GcsStore(settings.project, budget)
    executor = load_executor(settings)
    parser = Parser(settings.limits, settings.output_bucket, load_pipelines(settings))
    source = build_source(settings, store, manifest)
    # The finisher waits for each event before the ack: no batch ever forms, so send at once.
    publisher = PubSubPublisher(settings.results_topic, budget, max_latency_s=0.0)
    progress = (
        PubSubPublisher(settings.comfy.progress_topic, budget)
        if settings.comfy.progress_topic
        else None
    )
    runner = Runner(
        settings,
        source,
        executor,
        store,
        publisher,
        parser,
        progress_publisher=progress,
        started_at=started,
        tracer=tracer,
        models=ModelFetcher.from_settings(settings),
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        runner.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reason = runner.run()
    tracer.close()
    # A run that ignored its interrupt still holds an in-process executor: leave it be. One in a
    # process of its own is ended either way (close kills a child that a run still holds).
    if runner.executor_free or isolated(executor):
        executor.close()
    for pub in (publisher, progress):
        if pub is not None:
            pub.close()
    return exit_code(reason, source.finite)
