"""``python -m worker submit``: publish jobs, optionally start an execution and wait for results.

Exit codes: 0 when published (and, with ``--wait``, every job succeeded); 1 when a job failed or
``--timeout`` passed first (each one is named); 2 for a bad command line or input file; 78 for
missing configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from worker.config import Settings
from worker.exitcodes import ExitCode
from worker.obs import tracing
from worker.producer import build
from worker.producer.cloudrun import api_error_exit
from worker.producer.display import ProgressBar, as_json, describe
from worker.producer.messages import Outgoing, SubmitError, Uploader, new_batch_id
from worker.producer.publish import publish_all


def register(sub: Any) -> None:
    p = sub.add_parser(
        "submit",
        help="publish jobs to JOBS_TOPIC (and wait for their results)",
        description="Publish one job (a workflow file, a pipeline with --param, or a Runpod "
        "request body) or many (a JSONL file of job messages) to JOBS_TOPIC and print the job "
        "ids. Local input files are uploaded to GCS first.",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--workflow", type=Path, metavar="FILE", help="an API-format workflow")
    what.add_argument("--pipeline", metavar="NAME", help="a pipeline from PIPELINES_DIR")
    what.add_argument("--runpod", type=Path, metavar="FILE", help="a Runpod request body")
    what.add_argument("--jsonl", type=Path, metavar="FILE", help="one job message per line")
    p.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        metavar="K=V",
        help="a pipeline parameter; K=@PATH uploads a local file for a file parameter",
    )
    p.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="an input file for the workflow's loaders: a local path (uploaded) or gs:// URI",
    )
    p.add_argument(
        "--job-id",
        help="the job id (default: generated); a Runpod body gets it as the job_id attribute",
    )
    p.add_argument("--prefix", help="output sub-folder under OUTPUT_URI")
    p.add_argument("--metadata", metavar="JSON", help="a small JSON object echoed in the result")
    p.add_argument("--wait", action="store_true", help="follow the jobs until they finish")
    p.add_argument("--timeout", type=float, metavar="S", help="with --wait: give up after S s")
    p.add_argument(
        "--download",
        type=Path,
        metavar="DIR",
        help="fetch outputs to DIR/<job_id>/ (implies --wait)",
    )
    p.add_argument("--json", action="store_true", help="print each result document as JSON")
    p.add_argument(
        "--execute",
        action="store_true",
        help="start a Cloud Run execution of RUN_JOB sized to these jobs",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help='print each message as {"attributes": ..., "data": ...}; publish nothing',
    )
    p.set_defaults(handler=main)


def _store(settings: Settings) -> Any:
    from worker.adapters.storage.gcs import GcsStore

    return GcsStore(settings.project, settings.timeouts.service_retry_s)


def main(args: argparse.Namespace, settings: Settings) -> ExitCode:
    args.wait = args.wait or args.download is not None
    settings.require(
        "JOBS_TOPIC", *(("RESULTS_TOPIC", "GOOGLE_CLOUD_PROJECT") if args.wait else ())
    )
    needs_store = settings.output_uri or settings.producer.submit_input_uri
    store = _store(settings) if needs_store else None
    base = settings.submit_input_uri
    batch = new_batch_id()
    try:
        messages = build.messages(args, settings, Uploader(store, base), batch)
    except SubmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if args.dry_run:  # what Pub/Sub would get, so a Runpod body's job id shows too
        for m in messages:
            print(json.dumps({"attributes": m.attributes, "data": json.loads(m.data)}))
        return ExitCode.OK
    return _publish_and_follow(args, settings, messages, batch, store)


def _publish_and_follow(
    args: argparse.Namespace, settings: Settings, messages: list[Outgoing], batch: str, store: Any
) -> ExitCode:
    from worker.producer.wait import EventFollower, Tracker, follow

    assert settings.jobs_topic is not None
    follower = None
    if args.wait:  # subscribe before publishing so that no event can be missed
        assert settings.project is not None and settings.results_topic is not None
        topics = [settings.results_topic, *filter(None, [settings.comfy.progress_topic])]
        follower = EventFollower(settings.project, f"submit-{batch}", topics)
    try:
        started = time.monotonic()
        try:
            stamp = tracing.stamp(  # trace context into the attributes when TRACING=1
                settings.observability,
                settings.identity,
                [(m.job_id, m.attributes) for m in messages],
            )
            job_ids = publish_all(settings.jobs_topic, messages)
            stamp.end()
        except SubmitError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.JOBS_FAILED
        for job_id in job_ids:
            print(job_id)
        sys.stdout.flush()
        print(
            f"published {len(job_ids)} job(s) in {time.monotonic() - started:.2f} s",
            file=sys.stderr,
        )
        if args.execute:
            from google.api_core import exceptions as gexc

            try:
                build.execute(settings, len(job_ids), store)
            except gexc.GoogleAPICallError as exc:
                assert settings.producer.run_job is not None
                return api_error_exit(exc, settings.producer.run_job)
        if follower is None:
            return ExitCode.OK
        bar = ProgressBar(sys.stderr, started)
        tracker = Tracker(set(job_ids))

        def on_result(result: dict[str, Any]) -> None:
            bar.clear()
            print(as_json(result) if args.json else describe(result), flush=True)
            if args.download is not None and result.get("status") == "succeeded":
                from worker.producer.download import download_outputs

                download_outputs(store or _store(settings), result, args.download)

        finished = follow(follower, tracker, on_result, bar.update, args.timeout)
        bar.done(tracker)
    finally:
        if follower is not None:
            follower.close()
    return _verdict(tracker, finished, args.timeout)


def _verdict(tracker: Any, finished: bool, timeout: float | None) -> ExitCode:
    if not finished:
        left = sorted(tracker.wanted - set(tracker.results))
        shown = ", ".join(left[:10]) + (" ..." if len(left) > 10 else "")
        print(
            f"error: {len(left)} job(s) not finished after {timeout:g} s: {shown} "
            "(they may still run: python -m worker status JOB_ID)",
            file=sys.stderr,
        )
        return ExitCode.JOBS_FAILED
    if tracker.failed or tracker.cancelled:
        cancelled = f", {tracker.cancelled} cancelled" if tracker.cancelled else ""
        print(
            f"error: {tracker.failed} of {len(tracker.wanted)} job(s) failed{cancelled}",
            file=sys.stderr,
        )
        return ExitCode.JOBS_FAILED
    return ExitCode.OK
