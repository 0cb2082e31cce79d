"""Named process exit codes. Cloud Run retries a task that exits non-zero, so only a broken
worker (or an unfinished manifest share) exits non-zero from ``run``."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # idle, MAX_JOBS reached, task budget reached, or stopped in queue mode
    JOBS_FAILED = 1  # submit --wait / status: at least one job failed
    USAGE = 2  # bad command line (argparse's own code)
    SERVICE_UNAVAILABLE = 69  # Pub/Sub or GCS unreachable past SERVICE_RETRY_S
    WORKER_BROKEN = 70  # the executor can no longer run jobs: let Cloud Run replace the task
    INTERRUPTED = 75  # stopped with a manifest share unfinished: a task retry resumes it
    CONFIG = 78  # invalid or missing configuration
