"""``python -m worker dispatch``: start Cloud Run executions when work is waiting.

Meant to run on a schedule (Cloud Scheduler -> a small Cloud Run job, every minute). Each run
reads the subscription's backlog and the job's unfinished executions, and starts one execution
with the shortfall of tasks (``worker.producer.dispatch``). Two runs at once can't both start:
see ``worker.producer.lock``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from worker.adapters.storage.base import AccessDenied
from worker.config import Settings
from worker.errors import ConfigError, ServiceUnavailable, Transient
from worker.exitcodes import ExitCode
from worker.producer.backlog import Backlog, FixedBacklog, MonitoringBacklog
from worker.producer.cloudrun import CloudRunJob, api_error_exit
from worker.producer.starter import dispatch_once, lock_for, policy


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "dispatch",
        help="start Cloud Run executions sized to the subscription's backlog",
        description="Read the backlog of JOBS_SUBSCRIPTION (Cloud Monitoring's "
        "num_undelivered_messages) and the unfinished executions of RUN_JOB, then start one "
        "execution so that tasks track min(DISPATCH_MAX_TASKS, ceil(backlog / "
        "DISPATCH_JOBS_PER_TASK)), within DISPATCH_MAX_EXECUTIONS and "
        "DISPATCH_DAILY_TASK_BUDGET.",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        metavar="N",
        help="use this backlog instead of reading Cloud Monitoring",
    )
    parser.add_argument("--dry-run", action="store_true", help="decide and print; start nothing")
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.set_defaults(handler=main)


def backlog_reader(args: argparse.Namespace, settings: Settings) -> Backlog:
    if args.backlog is not None:
        if args.backlog < 0:
            raise ConfigError("--backlog must be 0 or more")
        return FixedBacklog(args.backlog)
    settings.require("JOBS_SUBSCRIPTION")
    assert settings.jobs_subscription is not None
    return MonitoringBacklog(settings.jobs_subscription, settings.producer.monitoring_api_endpoint)


def main(args: argparse.Namespace, settings: Settings) -> ExitCode:
    producer = settings.producer
    if producer.run_job is None:
        raise ConfigError("dispatch needs RUN_JOB (the Cloud Run job to start)")
    from google.api_core import exceptions as gexc

    from worker.adapters.storage.gcs import GcsStore

    store = GcsStore(settings.project, settings.timeouts.service_retry_s)
    try:
        backlog = backlog_reader(args, settings).undelivered()
        job = CloudRunJob(producer.run_job, producer.run_api_endpoint)
        plan = dispatch_once(
            backlog, job, policy(producer), lock_for(settings, store), dry_run=args.dry_run
        )
    except (Transient, ServiceUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.SERVICE_UNAVAILABLE
    except AccessDenied as exc:
        raise ConfigError(f"the dispatch lock: {exc}") from exc
    except gexc.GoogleAPICallError as exc:
        return api_error_exit(exc, producer.run_job)
    if args.json:
        print(json.dumps(plan.as_fields()))
    else:
        print(
            f"backlog {plan.backlog}, {plan.running_tasks} task(s) in "
            f"{plan.running_executions} execution(s), {plan.wanted_tasks} wanted: {plan.reason}"
        )
    return ExitCode.OK
