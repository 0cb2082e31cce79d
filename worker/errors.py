"""The failure classes of the design, as exceptions.

Every failure the worker can meet is raised as one of these four classes. The runner maps the class
to what happens to the message (``worker.loop.settle.decide``); nothing else decides ack, nack or
exit.

| class            | meaning                                   | message          | process     |
|------------------|-------------------------------------------|------------------|-------------|
| ``JobFailed``    | the job is wrong (or failed for good)     | ack + failed res.| goes on     |
| ``Transient``    | a service fault that outlived its retries | nack (redeliver) | goes on     |
| ``WorkerBroken`` | this process can no longer run jobs       | nack             | exits, != 0 |
| ``Stopped``      | SIGTERM or the task budget ran out        | nack, deadline 0 | exits       |
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from worker.message.bounded import ECHO_CHARS, bound, clip


class ErrorType(StrEnum):
    """Stable error types that users see in ``result.json`` and the completion event."""

    INVALID_JOB = "invalid_job"  # the message is not a readable, valid job
    INVALID_WORKFLOW = "invalid_workflow"  # the workflow fails ComfyUI's validation
    MISSING_MODEL = "missing_model"  # a model file the workflow names is not installed
    MODEL_ERROR = "model_error"  # a model the job brings (``models``) can't be fetched or used
    INPUT_ERROR = "input_error"  # an input could not be fetched or decoded
    EXECUTION_ERROR = "execution_error"  # a node raised while running this job's inputs
    OOM = "oom"  # the job needs more GPU/host memory than the worker has
    TIMEOUT = "timeout"  # the job ran past JOB_TIMEOUT_S
    WORKER_CRASHED = "worker_crashed"  # earlier attempts died with their process
    RETRIES_EXHAUSTED = "retries_exhausted"  # a transient fault on the last delivery attempt
    CANCELLED = "cancelled"  # a cancel marker was written for the job (the result's status too)


class WorkerError(Exception):
    """Base of every failure the worker raises on purpose."""


class JobFailed(WorkerError):
    """The job is wrong, or failed for good: record a ``failed`` result, ack, keep going."""

    def __init__(
        self,
        error_type: ErrorType,
        message: str,
        *,
        node_id: str | None = None,
        details: dict[str, Any] | None = None,
        halts_worker: bool = False,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.node_id = node_id
        self.details = details or {}
        # The job failed for good, and the process can't go on either (a run that ignored the
        # interrupt at its timeout still holds the executor): record, ack, then exit non-zero.
        self.halts_worker = halts_worker

    def to_dict(self) -> dict[str, Any]:
        """The ``error`` object of a result, bounded whatever the message quoted."""
        out: dict[str, Any] = {"type": str(self.error_type), "message": clip(self.message)}
        if self.node_id is not None:
            out["node_id"] = clip(self.node_id, ECHO_CHARS)
        if self.details:
            out["details"] = bound(self.details)
        return out


class Cancelled(JobFailed):
    """The job's cancel marker was found: before it ran (it never runs) or while it ran (it was
    interrupted). Recorded like a failure, with status ``cancelled``, and acked."""

    def __init__(self, message: str, *, halts_worker: bool = False) -> None:
        super().__init__(ErrorType.CANCELLED, message, halts_worker=halts_worker)


class Transient(WorkerError):
    """A fault outside the job (a service 5xx, a timeout) that in-process retries did not clear.

    The message is nacked so Pub/Sub redelivers it later, and after the subscription's maximum
    delivery attempts, moves it to the dead-letter topic.
    """


class WorkerBroken(WorkerError):
    """This process can no longer run jobs (CUDA error, ComfyUI crashed, memory that won't free).

    The in-flight message is nacked and the process exits non-zero so Cloud Run replaces it.
    """


class ServiceUnavailable(WorkerBroken):
    """Pub/Sub or GCS stayed unreachable past the retry budget: exit with a clear error."""


class Stopped(WorkerError):
    """A stop was requested (SIGTERM, task time budget) while the job ran; it was interrupted."""


class Interrupted(WorkerError):
    """Raised by an executor whose run ended because ``interrupt()`` was called.

    The executor does not know why; the runner does, and turns it into ``Stopped`` (a stop was
    requested) or a ``timeout`` ``JobFailed`` (the job ran past its limit).
    """


class ConfigError(WorkerError):
    """A configuration value is missing or invalid; the message names the variable."""
