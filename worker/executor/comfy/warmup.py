"""The optional warmup run: one workflow executed in ``start()``, before the first pull.

It loads the models the real jobs use and compiles what needs compiling, so the first job runs
at warm speed. Its outputs are thrown away. WARMUP_WORKFLOW is a file path or a ``gs://`` URI of
an API-format workflow (or of a job message with a ``workflow`` field); it must need no inputs.
A warmup the workflow itself gets wrong is a configuration error; one that fails while running
means the worker can't do its work.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Protocol

from worker.config import Settings
from worker.errors import ConfigError, ErrorType, Interrupted, JobFailed, WorkerBroken
from worker.executor.base import ExecRequest, ExecResult
from worker.obs import logs

log = logging.getLogger(__name__)
_CONFIG_TYPES = (ErrorType.INVALID_WORKFLOW, ErrorType.MISSING_MODEL, ErrorType.INPUT_ERROR)


class _Runs(Protocol):
    def execute(self, request: ExecRequest) -> ExecResult: ...


def load(source: str) -> dict[str, Any]:
    """The workflow at ``source`` (a path or gs:// URI); ``ConfigError`` if it can't be read."""
    try:
        if source.startswith("gs://"):
            from worker.models.gcs import read_bytes

            raw = read_bytes(source)
        else:
            raw = Path(source).read_bytes()
        doc = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"WARMUP_WORKFLOW={source}: can't be read as JSON: {exc}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("workflow"), dict):
        doc = doc["workflow"]
    if not isinstance(doc, dict):
        raise ConfigError(f"WARMUP_WORKFLOW={source}: must be an API-format workflow object")
    return doc


def run(executor: _Runs, settings: Settings, work: Path) -> float:
    """Run the warmup workflow once; returns its seconds."""
    source = settings.comfy.warmup_workflow
    assert source is not None
    workflow = load(source)
    shutil.rmtree(work, ignore_errors=True)
    (work / "input").mkdir(parents=True)
    started = time.perf_counter()
    try:
        result = executor.execute(ExecRequest("warmup", workflow, work / "input", work / "output"))
    except JobFailed as exc:
        if exc.error_type in _CONFIG_TYPES:
            raise ConfigError(f"WARMUP_WORKFLOW={source}: {exc.message}") from exc
        raise WorkerBroken(f"the warmup workflow failed: {exc.message}") from exc
    except Interrupted as exc:
        raise WorkerBroken("the warmup workflow was interrupted") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - started
    logs.event(
        log,
        "comfyui.warmed_up",
        warmup_s=round(seconds, 3),
        source=source,
        nodes_run=len(result.node_timings),
    )
    return seconds
