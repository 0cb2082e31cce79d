"""``python -m worker status JOB_ID``: read a job's ``result.json`` and print the outcome.

Exit codes: 0 succeeded, 1 failed, 3 not finished (no result yet: still queued or running, or an
unknown id), 78 when OUTPUT_URI is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from worker.config import Settings
from worker.exitcodes import ExitCode
from worker.producer.display import describe

NOT_FINISHED = 3
MAX_RESULT_BYTES = 16 * 1024 * 1024


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "status",
        help="print a job's outcome from its result.json",
        description="Read <OUTPUT_URI>/[prefix/]<JOB_ID>/result.json and print the outcome: "
        "the output URIs, or the error type and message. Exit 0 succeeded, 1 failed, "
        "3 not finished (or unknown).",
    )
    parser.add_argument("job_id", metavar="JOB_ID", help="a job id, or a result.json gs:// URI")
    parser.add_argument("--prefix", default="", help="the job's output prefix, if it had one")
    parser.add_argument("--json", action="store_true", help="print the whole result document")
    parser.set_defaults(handler=main)


def result_uri(settings: Settings, job_id: str, prefix: str) -> str:
    if job_id.startswith("gs://"):
        return job_id if job_id.endswith(".json") else f"{job_id.rstrip('/')}/result.json"
    settings.require("OUTPUT_URI")
    parts = [settings.output_uri or "", prefix.strip("/"), job_id, "result.json"]
    return "/".join(p for p in parts if p)


def main(args: argparse.Namespace, settings: Settings) -> int:
    from worker.storage.gcs import GcsStore

    uri = result_uri(settings, args.job_id, args.prefix)
    store = GcsStore(settings.project, settings.timeouts.service_retry_s)
    data = store.get_bytes(uri, MAX_RESULT_BYTES)
    if data is None:
        print(f"{args.job_id} not finished: no {uri} yet (queued, running, or unknown)")
        return NOT_FINISHED
    try:
        result = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"error: {uri} is not a result document: {exc}", file=sys.stderr)
        return ExitCode.JOBS_FAILED
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
