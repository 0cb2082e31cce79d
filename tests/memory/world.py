"""The worker's job loop in this process on the in-memory adapters and a ``FakeClock``.

``World`` is ``tests.cloud.Cloud`` without the cloud: a memory subscription (ack deadline 10 s,
five delivery attempts, as ``Cloud``'s), a memory bucket and a recording publisher, and ``run``,
which wires a ``Runner`` the way ``python -m worker run`` does (``worker.commands.run``: the
process's own work folder, the pipeline catalog, the exit code) but with these adapters and the
clock. Timeouts, budgets, idling and leases then pass in virtual time: a test of a 60 s job
timeout takes milliseconds. What only a real process or a real service shows (signals, kills,
real leases and preconditions across processes) stays on the emulators (``tests/cloud.py``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fakes.clock import FakeClock
from tests.fakes.memsource import MemorySource, MemorySubscription
from tests.fakes.memstore import MemoryStore, Stored
from tests.fakes.publisher import RecordingPublisher
from tests.fakes.scripted import ScriptedExecutor
from worker.adapters.events.base import EventPublisher
from worker.commands import run as run_command
from worker.config import Settings
from worker.executor.base import Executor
from worker.exitcodes import ExitCode
from worker.loop import workdir
from worker.loop.runner import ExitReason, Runner
from worker.message.parse import Parser

BUCKET = "out-memory"


@dataclass
class World:
    work_dir: Path
    clock: FakeClock = field(default_factory=FakeClock)
    store: MemoryStore = field(default_factory=MemoryStore)
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)

    def __post_init__(self) -> None:
        self.subscription = MemorySubscription(self.clock, ack_deadline_s=10)
        self.runners: list[Runner] = []

    bucket = BUCKET
    output_uri = f"gs://{BUCKET}/results"

    # -- configuration ----------------------------------------------------------------------

    def env(self, **overrides: Any) -> dict[str, str]:
        env = {
            "GOOGLE_CLOUD_PROJECT": "test-project",
            "JOBS_SUBSCRIPTION": "projects/test-project/subscriptions/jobs",
            "RESULTS_TOPIC": "projects/test-project/topics/results",
            "OUTPUT_URI": self.output_uri,
            "WORK_DIR": str(self.work_dir),
            "EXECUTOR": "tests.fakes.scripted:build",
            "IDLE_EXIT_S": "1",
            "PULL_TIMEOUT_S": "10",
            "LEASE_EXTENSION_S": "60",
            "SERVICE_RETRY_S": "5",
        }
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def settings(self, **overrides: Any) -> Settings:
        return Settings.from_env(self.env(**overrides))

    def executor(self, **kwargs: Any) -> ScriptedExecutor:
        return ScriptedExecutor(clock=self.clock, step_s=30.0, **kwargs)

    # -- driving ------------------------------------------------------------------------------

    def publish(self, body: Any, **attributes: str) -> str:
        return self.subscription.publish(body, **attributes)

    def put(self, key: str, data: bytes) -> None:
        assert self.store.put_bytes_once(f"gs://{self.bucket}/{key}", data, "text/plain")

    def run(
        self,
        executor: Executor | None = None,
        publisher: EventPublisher | None = None,
        progress: EventPublisher | None = None,
        **overrides: Any,
    ) -> ExitCode:
        """One worker, to its exit, in this thread (as ``worker.commands.run.main``)."""
        reason, finite = self.run_for_reason(executor, publisher, progress, **overrides)
        return run_command.exit_code(reason, finite)

    def run_for_reason(
        self,
        executor: Executor | None = None,
        publisher: EventPublisher | None = None,
        progress: EventPublisher | None = None,
        **overrides: Any,
    ) -> tuple[ExitReason, bool]:
        settings = self.settings(**overrides)
        slot = workdir.claim(settings.work_dir)
        try:
            settings = settings.in_slot(slot.path)
            t = settings.timeouts
            source = MemorySource(
                self.subscription,
                extension_s=t.lease_extension_s,
                max_lease_s=2 * t.job_s + 2 * t.service_retry_s + 60,  # as build_source's
                max_delivery_attempts=settings.max_delivery_attempts,
            )
            executor = executor or self.executor()
            runner = Runner(
                settings,
                source,
                executor,
                self.store,
                publisher or self.publisher,
                Parser(
                    settings.limits, settings.output_bucket, run_command.load_pipelines(settings)
                ),
                progress_publisher=progress,
                clock=self.clock,
            )
            self.runners.append(runner)
            reason = runner.run()
            if runner.executor_free:
                executor.close()
            return reason, source.finite
        finally:
            slot.release()

    def run_in_thread(self, results: list[ExitCode], **kwargs: Any) -> threading.Thread:
        thread = threading.Thread(target=lambda: results.append(self.run(**kwargs)), daemon=True)
        thread.start()
        return thread

    def until(self, what: Callable[[], bool], virtual_s: float = 600) -> None:
        """Let virtual time pass (in 0.5 s steps) until ``what()`` holds."""
        end = self.clock.monotonic() + virtual_s
        while not what():
            assert self.clock.monotonic() < end, "never happened"
            self.clock.sleep(0.5)

    # -- inspecting ---------------------------------------------------------------------------

    def result(self, job_id: str, prefix: str = "") -> dict[str, Any] | None:
        key = "/".join(p for p in ("results", prefix, job_id, "result.json") if p)
        data = self.store.get_bytes(f"gs://{self.bucket}/{key}", 50_000_000)
        return None if data is None else dict(json.loads(data))

    def objects(self, prefix: str = "") -> dict[str, Stored]:
        base = f"gs://{self.bucket}/"
        return {
            uri.removeprefix(base): stored
            for uri, stored in sorted(self.store.objects.items())
            if uri.startswith(base + prefix)
        }

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(data) | {"_attributes": attributes}
            for data, attributes in self.publisher.published
        ]

    def backlog(self) -> int:
        """Messages not acked (leased ones included: nothing holds them once a run ends)."""
        return self.subscription.unacked()


def executed(record: Path) -> list[str]:
    return record.read_text().split() if record.exists() else []
