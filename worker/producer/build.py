"""Turn ``submit``'s command line into job messages, and start an execution for them."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from worker.config import Settings
from worker.errors import ConfigError, JobFailed
from worker.producer.messages import (
    Outgoing,
    SubmitError,
    Uploader,
    jsonl_bodies,
    outgoing,
    read_json,
    resolve_local_inputs,
    workflow_from_file,
)

# Flags that build a v1 body: a Runpod body is sent unchanged, and a JSONL line has its own.
V1_ONLY = ("param", "input", "prefix", "metadata")


def messages(
    args: argparse.Namespace, settings: Settings, uploader: Uploader, batch: str
) -> list[Outgoing]:
    """Every message, built and checked before anything is published."""
    if args.jsonl is not None or args.runpod is not None:
        given = [f"--{n}" for n in V1_ONLY if getattr(args, n)]
        if given:
            raise SubmitError(f"{', '.join(given)} only go with --workflow or --pipeline")
    if args.jsonl is not None and args.job_id:
        raise SubmitError("--job-id names one job: give each line of a JSONL file its own job_id")
    if args.jsonl is not None:
        base = args.jsonl.resolve().parent
        out = []
        for number, body in jsonl_bodies(args.jsonl):
            resolve_local_inputs(body, base, uploader)
            out.append(outgoing(body, f"{batch}-{number:06d}"))
        if not out:
            raise SubmitError(f"{args.jsonl} has no job messages")
        return out
    if args.runpod is not None:
        body = read_json(args.runpod, "Runpod request body")
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            raise SubmitError(f'{args.runpod} must be a Runpod body: {{"input": {{...}}}}')
        return [outgoing(body, args.job_id or batch)]  # the id travels as the job_id attribute
    return [outgoing(_single(args, settings, uploader), args.job_id or batch)]


def _single(args: argparse.Namespace, settings: Settings, uploader: Uploader) -> dict[str, Any]:
    inputs = [_input(spec, uploader) for spec in args.input]
    body: dict[str, Any]
    if args.workflow is not None:
        if args.param:
            raise SubmitError("--param goes with --pipeline; edit the workflow file instead")
        body = {"workflow": workflow_from_file(args.workflow)}
    else:
        params, more = _params(args.pipeline, args.param, settings, uploader)
        body, inputs = {"pipeline": args.pipeline, "params": params}, inputs + more
    if inputs:
        body["inputs"] = inputs
    if args.prefix:
        body["output"] = {"prefix": args.prefix}
    if args.metadata:
        try:
            body["metadata"] = json.loads(args.metadata)
        except json.JSONDecodeError as exc:
            raise SubmitError(f"--metadata is not valid JSON: {exc}") from exc
    return body


def _input(spec: str, uploader: Uploader) -> dict[str, str]:
    """``PATH``, ``NAME=PATH``, ``gs://...`` or ``NAME=gs://...``."""
    name, sep, where = spec.partition("=")
    if not sep or spec.startswith("gs://"):
        name, where = "", spec
    if where.startswith("gs://"):
        return {"name": name or where.rsplit("/", 1)[-1], "uri": where}
    return {"name": name or Path(where).name, "uri": uploader.upload(Path(where))}


def _params(
    name: str, given: list[str], settings: Settings, uploader: Uploader
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Read ``K=V`` by each parameter's declared type, and check them all with the catalog."""
    from worker.message.pipelines import PipelineCatalog

    try:
        catalog = PipelineCatalog.load(settings.producer.pipelines_dir)
        pipeline = catalog.get(name)
    except (ConfigError, JobFailed) as exc:
        raise SubmitError(str(exc)) from exc
    params: dict[str, Any] = {}
    inputs: list[dict[str, str]] = []
    for item in given:
        key, sep, text = item.partition("=")
        if not sep:
            raise SubmitError(f"--param {item!r}: use K=V with K one of: {pipeline.allowed()}")
        param = pipeline.params.get(key)
        if param is None:
            close = pipeline.suggest(key)
            hint = f"did you mean {close!r}?" if close else f"parameters: {pipeline.allowed()}"
            raise SubmitError(f"unknown parameter {key!r}; {hint}")
        if text.startswith("@") and param.type == "file":
            path = Path(text[1:])
            inputs.append({"name": path.name, "uri": uploader.upload(path)})
            text = path.name
        try:
            params[key] = param.from_text(text)
        except ValueError as exc:
            raise SubmitError(str(exc)) from exc
    try:
        catalog.render(name, params)  # the worker renders again (and draws the seed) itself
    except JobFailed as exc:
        raise SubmitError(exc.message) from exc
    return params, inputs


def execute(settings: Settings, jobs: int, store: Any) -> None:
    """``--execute``: start an execution sized to ``jobs`` unless enough tasks already run.

    It takes the dispatch lock like ``dispatch`` does; when a dispatcher holds it, it tries
    again once the lock's slot has passed.
    """
    from worker.producer.cloudrun import CloudRunJob
    from worker.producer.starter import dispatch_once, lock_for, policy

    producer = settings.producer
    if producer.run_job is None:
        raise ConfigError("--execute needs RUN_JOB (the Cloud Run job to start)")
    job = CloudRunJob(producer.run_job, producer.run_api_endpoint)
    lock = lock_for(settings, store) if store is not None else None
    for attempt in range(2):
        plan = dispatch_once(jobs, job, policy(producer), lock)
        if not plan.locked_out or attempt:
            break
        time.sleep(producer.dispatch_lock_s)
    print(f"execute: {plan.reason}", file=sys.stderr)
