"""Concrete pieces of HTTP mode, wired like ``worker.commands.run`` wires the job worker."""

from __future__ import annotations

from collections.abc import Callable

from worker.adapters.events.base import EventPublisher
from worker.adapters.events.pubsub import PubSubPublisher
from worker.adapters.storage.base import ObjectStore
from worker.adapters.storage.gcs import GcsStore
from worker.commands.run import load_executor, load_pipelines
from worker.config import Settings
from worker.executor.base import Executor
from worker.http.gateway import Gateway
from worker.http.service import Service
from worker.loop import workdir
from worker.loop.runner import ExitReason
from worker.message.parse import Parser


def wire(
    settings: Settings, on_halt: Callable[[ExitReason], None]
) -> tuple[ObjectStore, Gateway, Service | None]:
    budget = settings.timeouts.service_retry_s
    # One request at a time publishes one message and waits for it: a batch would only wait
    # (10 ms for nothing: about 12 ms per event against the emulator, bench/http_overhead.py).
    now = 0.0
    store = GcsStore(settings.project, budget)
    parser = Parser(settings.limits, settings.output_bucket, load_pipelines(settings))
    jobs = PubSubPublisher(settings.jobs_topic, budget, now) if settings.jobs_topic else None
    gateway = Gateway(settings, store, parser, jobs)
    if not settings.http.execute:
        return store, gateway, None

    def build() -> tuple[Executor, ObjectStore, EventPublisher, Parser]:
        # In the serving process (after gunicorn's fork): its own work directory slot, held
        # for the life of the process, and the executor of the configured runtime.
        slot = workdir.claim(settings.work_dir)
        assert settings.results_topic is not None
        return (
            load_executor(settings.in_slot(slot.path)),
            store,
            PubSubPublisher(settings.results_topic, budget, now),
            parser,
        )

    return store, gateway, Service(settings, build, on_halt)
