"""``python -m worker status JOB_ID``: what a job's folder says (``worker.record.jobstate``).

Prints the outcome from ``result.json`` once finished; before that, whether the job is running
(its attempt record: since when, on which worker), cancelled, or still queued. Exit codes: 0
succeeded, 1 failed or cancelled, 3 not finished (queued or running, or an unknown id), 78 when
OUTPUT_URI is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from worker.config import Settings
from worker.exitcodes import ExitCode
from worker.message.jobref import BadReference, JobRef
from worker.producer.display import describe
from worker.record import jobstate
from worker.record.result import RESULT_NAME

NOT_FINISHED = 3


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "status",
        help="print a job's state: queued, running, or its outcome from result.json",
        description="Read the job's folder <OUTPUT_URI>/[prefix/]<JOB_ID>/: its result.json, "
        "else its cancel marker and attempt records. Exit 0 succeeded, 1 failed or cancelled, "
        "3 not finished (queued, running, or unknown).",
    )
    add_job_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the whole result document")
    parser.set_defaults(handler=main)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "job_id",
        metavar="JOB_ID",
        help="a job id (with its prefix's segments before it, each followed by ~, as the HTTP "
        "API's ids are), or the job folder's / result.json's gs:// URI",
    )
    parser.add_argument("--prefix", default="", help="the job's output prefix, if it had one")


def folder_of(settings: Settings, job_id: str, prefix: str) -> str:
    """The job's folder; raises ``BadReference`` for an id that names none."""
    if job_id.startswith("gs://"):
        return job_id.removesuffix(RESULT_NAME).rstrip("/")
    settings.require("OUTPUT_URI")
    assert settings.output_uri is not None
    ref = JobRef.parse(job_id, settings.limits.max_prefix_chars)
    if prefix.strip("/"):
        ref = JobRef.parse("~".join([*prefix.strip("/").split("/"), job_id]))
    return ref.folder(settings.output_uri)


def main(args: argparse.Namespace, settings: Settings) -> int:
    from worker.adapters.storage.gcs import GcsStore

    try:
        folder = folder_of(settings, args.job_id, args.prefix)
    except BadReference as exc:
        print(f"error: {args.job_id!r}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    store = GcsStore(settings.project, settings.timeouts.service_retry_s)
    state = jobstate.read(store, folder)
    if state.result is not None:
        return _finished(args, state.result)
    if state.state == "cancelled":
        print(f"{args.job_id} cancelled: its cancel marker is in {folder}/ (no result yet)")
        return ExitCode.JOBS_FAILED
    if state.state == "running":
        worker = state.attempt.get("worker") or {}
        where = ", ".join(
            f"{k} {worker[k]}" for k in ("execution", "task_index", "host") if worker.get(k)
        )
        print(
            f"{args.job_id} running: attempt {state.attempt.get('attempt')} since "
            f"{state.attempt.get('started_at')}{' on ' + where if where else ''}"
        )
        return NOT_FINISHED
    print(f"{args.job_id} not finished: queued (no {folder}/{RESULT_NAME} yet), or unknown")
    return NOT_FINISHED


def _finished(args: argparse.Namespace, result: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(describe(result))
        timings = result.get("timings") or {}
        if timings:
            print(
                f"  total {timings.get('total_s')} s, execution {timings.get('execution_s')} s, "
                f"attempt {result.get('delivery_attempt')}, result {result.get('result_uri')}"
            )
    return ExitCode.OK if result.get("status") == "succeeded" else ExitCode.JOBS_FAILED
