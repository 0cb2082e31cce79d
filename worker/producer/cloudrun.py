"""Cloud Run Jobs: list one job's executions and start new ones (google.cloud.run_v2).

Only ``dispatch`` and ``submit --execute`` use this. The clients speak REST; an ``http://``
endpoint (``RUN_API_ENDPOINT``) means a local stand-in, reached without credentials.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.errors import ConfigError
from worker.exitcodes import ExitCode
from worker.obs import logs

log = logging.getLogger(__name__)

# How long to poll run_job's operation for the new execution's name when the first answer lacks
# it. The operation itself completes only when the whole execution does: never wait for that.
NAME_POLL_S = 10.0


@dataclass(frozen=True)
class ExecutionState:
    """One execution, as far as sizing cares: how many of its tasks may still run."""

    name: str
    task_count: int
    unfinished_tasks: int  # tasks not yet succeeded, failed or cancelled (pending ones count)
    create_time: datetime | None
    done: bool


def _state(execution: Any) -> ExecutionState:
    done = execution.completion_time is not None or execution.delete_time is not None
    finished = execution.succeeded_count + execution.failed_count + execution.cancelled_count
    return ExecutionState(
        name=execution.name,
        task_count=execution.task_count,
        unfinished_tasks=0 if done else max(0, execution.task_count - finished),
        create_time=execution.create_time,
        done=done,
    )


def client_kwargs(endpoint: str | None) -> dict[str, Any]:
    """REST transport; with an ``http://`` endpoint, anonymous credentials (a local stand-in)."""
    kwargs: dict[str, Any] = {"transport": "rest"}
    if endpoint:
        kwargs["client_options"] = {"api_endpoint": endpoint}
        if endpoint.startswith("http://"):
            from google.auth.credentials import AnonymousCredentials

            kwargs["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
    return kwargs


class CloudRunJob:
    """One Cloud Run job (``projects/P/locations/R/jobs/J``)."""

    def __init__(self, job: str, endpoint: str | None = None) -> None:
        import google.auth.exceptions
        from google.cloud import run_v2

        self.job = job
        self._run_v2 = run_v2
        try:
            self._jobs = run_v2.JobsClient(**client_kwargs(endpoint))
            self._executions = run_v2.ExecutionsClient(**client_kwargs(endpoint))
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigError(f"no Google credentials to call Cloud Run: {exc}") from exc

    def executions(self) -> list[ExecutionState]:
        """Every execution the service still lists for this job, newest first."""
        found: Iterable[Any] = self._executions.list_executions(parent=self.job)
        return [_state(e) for e in found]

    def start(self, task_count: int, env: Mapping[str, str] | None = None) -> str:
        """Start one execution with ``task_count`` tasks (and extra env vars); return its name.

        Needs ``run.jobs.runWithOverrides`` on the job.
        """
        overrides = self._run_v2.RunJobRequest.Overrides(task_count=task_count)
        if env:
            container = self._run_v2.RunJobRequest.Overrides.ContainerOverride(
                env=[self._run_v2.EnvVar(name=k, value=v) for k, v in env.items()]
            )
            overrides.container_overrides = [container]
        operation = self._jobs.run_job(
            request=self._run_v2.RunJobRequest(name=self.job, overrides=overrides)
        )
        name = self._execution_name(operation)
        logs.event(log, "dispatch.started", job=self.job, execution=name, task_count=task_count)
        return name

    def _execution_name(self, operation: Any) -> str:
        deadline = time.monotonic() + NAME_POLL_S
        while True:
            metadata = operation.metadata
            if metadata is not None and metadata.name:
                return str(metadata.name)
            if operation.done() or time.monotonic() > deadline:  # done() polls the operation
                metadata = operation.metadata
                return str(metadata.name) if metadata is not None else "(unknown execution)"
            time.sleep(0.5)


def api_error_exit(exc: Exception, job: str) -> ExitCode:
    """Say what went wrong talking to Cloud Run and pick the exit code: configuration
    problems (no such job, no permission, bad request) exit 78, outages 69."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.NotFound):
        hint = f"the Cloud Run job {job} does not exist (RUN_JOB, REGION)"
    elif isinstance(exc, gexc.PermissionDenied):
        hint = (
            f"not allowed on {job}: grant run.jobs.runWithOverrides and "
            "run.executions.list (roles/run.developer) to this identity"
        )
    elif isinstance(exc, gexc.InvalidArgument | gexc.FailedPrecondition):
        hint = f"Cloud Run refused the request for {job}"
    else:
        print(f"error: Cloud Run unavailable: {exc}", file=sys.stderr)
        return ExitCode.SERVICE_UNAVAILABLE
    print(f"error: {hint}: {exc}", file=sys.stderr)
    return ExitCode.CONFIG
