"""One job through the booted ComfyUI: stage, validate, execute, read the ending, collect.

ComfyUI's global state (input directory, interrupt flag, progress registry) means one run at a
time per process; ``ComfyExecutor`` guarantees that.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from worker.config import Limits
from worker.errors import ErrorType, Interrupted, JobFailed, WorkerBroken
from worker.executor.base import ExecRequest, ExecResult
from worker.executor.comfy import (
    bounds,
    collect,
    failures,
    private,
    prompt_errors,
    saves,
    shape,
    uncached_outputs,
)
from worker.executor.comfy.boot import Comfy
from worker.executor.comfy.monitor import RunMonitor
from worker.obs import logs

log = logging.getLogger(__name__)
T = TypeVar("T")
CLIENT_ID = "comfy-batch-worker"  # with a client id set, ComfyUI reports each node as it starts


def _empty(directory: Path) -> None:
    with os.scandir(directory) as entries:
        if next(entries, None) is None:
            return  # the usual case: the last job's files were moved out
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


def run_async(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a loop kept across jobs: a new loop per call (what ComfyUI's
    ``PromptExecutor.execute`` does) costs about a millisecond per job. Tasks the run left
    behind are cancelled, as ``asyncio.run`` would."""
    try:
        return loop.run_until_complete(coro)
    finally:
        leftover = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in leftover:
            task.cancel()
        if leftover:
            loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))


def combo_options(comfy: Comfy) -> prompt_errors.OptionsLookup:
    """(class type, input name) -> the input's list of allowed values, for error messages."""

    def lookup(class_type: str, input_name: str) -> list[str] | None:
        cls = comfy.nodes.NODE_CLASS_MAPPINGS.get(class_type)
        if cls is None:
            return None
        try:
            spec = cls.INPUT_TYPES()
        except Exception:
            return None
        for section in ("required", "optional"):
            entry = (spec.get(section) or {}).get(input_name)
            if entry is None:
                continue
            first = entry[0] if isinstance(entry, tuple | list) and entry else None
            if isinstance(first, list):
                return [str(v) for v in first]
            extra = entry[1] if isinstance(entry, tuple | list) and len(entry) > 1 else {}
            if first == "COMBO" and isinstance(extra, dict):
                return [str(v) for v in extra.get("options", [])]
        return None

    return lookup


def model_files(comfy: Comfy) -> dict[str, list[str]]:
    fp = comfy.folder_paths
    skip = {"custom_nodes", "configs", "datasets"}
    out: dict[str, list[str]] = {}
    for name in fp.folder_names_and_paths:
        if name not in skip:
            try:
                out[name] = list(fp.get_filename_list(name))
            except Exception:  # a folder ComfyUI can't list: leave it out of the hints
                continue
    return out


def validate(comfy: Comfy, prompt_id: str, prompt: dict[str, Any]) -> list[str]:
    """The output node ids to execute, or ``JobFailed`` for an invalid workflow."""
    try:
        ok, error, to_execute, node_errors = run_async(
            comfy.job_loop, comfy.execution.validate_prompt(prompt_id, prompt, None)
        )
    except Exception as exc:  # a node's INPUT_TYPES or VALIDATE_INPUTS raised
        raise JobFailed(
            ErrorType.INVALID_WORKFLOW, f"validation raised {type(exc).__name__}: {exc}"
        ) from exc
    if ok and not node_errors:
        return [str(n) for n in to_execute]
    # Only now: listing every model folder (for a missing model's hint) is milliseconds.
    failed = prompt_errors.explain(
        None if ok else error, node_errors or {}, combo_options(comfy), model_files(comfy)
    )
    if failed is not None:
        raise failed
    return [str(n) for n in to_execute]


@dataclass(frozen=True)
class Guards:
    """What a run consults besides the job: limits, the interrupt flag, memory and the device.

    ``interrupted()`` says whether a stop was asked for before execution; ``oom_check`` frees
    memory after an OOM and raises ``WorkerBroken`` if it stays taken; ``probe`` says whether
    the GPU still works after an error of a type a broken CUDA context raises.
    """

    limits: Limits
    interrupted: Callable[[], bool]
    oom_check: Callable[[], None]
    probe: failures.DeviceProbe = failures.no_device


def execute(comfy: Comfy, request: ExecRequest, monitor: RunMonitor, guards: Guards) -> ExecResult:
    """Run ``request`` to its end: outputs, or the exception of its failure class."""
    shape.check_shape(request.workflow)
    prompt = shape.copy_for_run(request.workflow)
    prompt_id = f"{request.job_id}-{uuid.uuid4().hex[:8]}"
    request.output_dir.mkdir(parents=True, exist_ok=True)
    comfy.folder_paths.set_input_directory(str(request.input_dir))
    _empty(comfy.output_dir)
    _empty(comfy.temp_dir)
    started = time.perf_counter()
    to_execute = validate(comfy, prompt_id, prompt)
    # After ComfyUI's own checks (their messages name each input's bounds), before anything runs.
    saves.check_names(request.workflow)
    bounds.check_sizes(request.workflow, guards.limits.max_pixels_per_job)
    bounds.check_images(request.input_dir, guards.limits.max_input_pixels)
    validated_s = time.perf_counter() - started
    if guards.interrupted():
        raise Interrupted("interrupted before execution")
    pe = comfy.prompt_executor
    # This job's files must not outlive it in ComfyUI's cache (worker/executor/comfy/private.py).
    staged = private.staged_names(request.input_dir)
    types = private.output_types(comfy.nodes.NODE_CLASS_MAPPINGS)
    try:
        # PromptExecutor.execute is asyncio.run(execute_async(...)): the same call, warm loop.
        extra = {"client_id": CLIENT_ID}
        run_async(comfy.job_loop, pe.execute_async(prompt, prompt_id, extra, to_execute))
    except Exception as exc:  # ComfyUI catches node errors; this is its own machinery failing
        raise WorkerBroken(f"ComfyUI's executor raised {type(exc).__name__}: {exc}") from exc
    finally:
        timings = monitor.finish()
        uncached_outputs.forget(pe, {*to_execute, *private.nodes(request.workflow, staged, types)})
    end = failures.run_end(pe.status_messages)
    if end.ending is failures.Ending.INTERRUPTED:
        raise failures.interrupted(end.data)
    if end.ending is failures.Ending.ERROR:
        error = failures.error_for(end.data, guards.probe)
        if isinstance(error, JobFailed) and error.error_type is ErrorType.OOM:
            guards.oom_check()
        raise error
    history = getattr(pe, "history_result", {}) or {}
    produced = collect.collect(
        history.get("outputs", {}), comfy.output_dir, request.output_dir, monitor.cached
    )
    logs.event(
        log,
        "comfyui.executed",
        logging.DEBUG,  # the runner logs the job's outcome; this adds ComfyUI's side
        job_id=request.job_id,
        outputs=len(produced),
        validate_s=round(validated_s, 4),
        execute_s=round(time.perf_counter() - started - validated_s, 4),
        cached_nodes=len(monitor.cached),
    )
    return ExecResult(
        outputs=tuple(produced),
        node_timings=timings,
        info={
            "prompt_id": prompt_id,
            "cached_nodes": monitor.cached,
            "validate_s": round(validated_s, 6),
        },
    )
