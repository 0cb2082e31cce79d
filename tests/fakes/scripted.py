"""A scripted test double for the executor seam, driven by the job's own workflow.

A workflow node ``{"class_type": "Scripted", "inputs": {...}}`` says what the run does, so the
same double works in-process and behind ``python -m worker run`` (``EXECUTOR=
tests.fakes.scripted:build``) without any test-only configuration:

- ``sleep_s``: how long the run takes (interruptible unless ``ignore_interrupt``);
- ``outputs``: ``[{"name": "a.png", "bytes": N}]``, ``[{"name": "t.txt", "text": "..."}]`` or
  ``[{"name": "a.png", "png": [width, height]}]`` (a real PNG, with a ``workflow`` text chunk);
- ``copy_inputs``: also output every staged input file under ``inputs/<name>``;
- ``list_models``: also output ``models.txt``, a line ``<folder>/<name> <sha256 of its bytes>``
  per model the request shows (the job's own models, as the executor received them);
- ``fail``: ``"transient"``, ``"broken"``, ``"crash"`` (an unclassified exception) or an
  ``ErrorType`` value such as ``"execution_error"`` (a JobFailed);
- ``record``: a file path; one line ``<job_id>`` is appended per execution (counts runs across
  processes);
- ``crash``: ``"exit"`` (``os._exit``) or ``"segv"`` (SIGSEGV), or a list of them taken in turn
  by successive runs (needs ``record``): the run kills its own process, as a crashing custom
  node or an OOM kill would; no handler can see it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from worker.config import Settings
from worker.errors import ConfigError, ErrorType, Interrupted, JobFailed, Transient, WorkerBroken
from worker.executor.base import ExecRequest, ExecResult, Progress
from worker.message.job import OutputKind, ProducedFile

_KINDS: dict[str, OutputKind] = {".png": "image", ".txt": "text", ".mp4": "video", ".flac": "audio"}


class ScriptedExecutor:
    def __init__(
        self, start_fails: bool = False, start_s: float = 0.0, start_config_error: bool = False
    ) -> None:
        self.start_fails = start_fails
        self.start_config_error = start_config_error
        self.start_s = start_s
        self.started = 0
        self.executed: list[str] = []
        self._interrupt = threading.Event()

    def start(self) -> None:
        self.started += 1
        time.sleep(self.start_s)  # a slow boot (imports, model downloads, warmup)
        if self.start_fails:
            raise WorkerBroken("scripted: start failed")
        if self.start_config_error:
            raise ConfigError("WARMUP_WORKFLOW=scripted is not a valid workflow")

    def interrupt(self) -> None:
        self._interrupt.set()

    def close(self) -> None:
        pass

    def execute(self, request: ExecRequest) -> ExecResult:
        self._interrupt.clear()
        script = _script(request)
        self.executed.append(request.job_id)
        if script.get("record"):
            with open(script["record"], "a") as f:
                f.write(request.job_id + "\n")
        _crash(script, request.job_id)
        self._sleep(float(script.get("sleep_s", 0)), bool(script.get("ignore_interrupt")), request)
        fail = script.get("fail")
        if fail:
            _raise(str(fail))
        outputs = [_write(request.output_dir, spec) for spec in script.get("outputs", [])]
        if script.get("list_models"):
            outputs.append(_list_models(request))
        if script.get("copy_inputs"):
            for path in sorted(p for p in request.input_dir.rglob("*") if p.is_file()):
                name = "inputs/" + str(path.relative_to(request.input_dir))
                outputs.append(ProducedFile(path, name, "file", node_id="1"))
        return ExecResult(tuple(outputs), node_timings={"1": float(script.get("sleep_s", 0))})

    def _sleep(self, seconds: float, ignore_interrupt: bool, request: ExecRequest) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if ignore_interrupt:
                time.sleep(min(left, 0.05))
            elif self._interrupt.wait(min(left, 0.05)):
                raise Interrupted("scripted: interrupted")
            if request.progress is not None:
                request.progress(Progress(request.job_id, "1", seconds - max(left, 0), seconds))


def _crash(script: dict[str, Any], job_id: str) -> None:
    kinds = script.get("crash") or []
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if not kinds:
        return
    runs = 1
    if script.get("record"):
        runs = Path(script["record"]).read_text().split().count(job_id)
    kind = kinds[(runs - 1) % len(kinds)]
    if kind == "exit":
        os._exit(3)
    if kind == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
        while True:  # a real fault stops the thread at once; kill() may return first
            time.sleep(1)


def _script(request: ExecRequest) -> dict[str, Any]:
    for node in request.workflow.values():
        if node.get("class_type") == "Scripted":
            return dict(node.get("inputs", {}))
    raise JobFailed(ErrorType.INVALID_WORKFLOW, "scripted: no Scripted node in the workflow")


def _raise(kind: str) -> None:
    if kind == "transient":
        raise Transient("scripted: transient fault")
    if kind == "broken":
        raise WorkerBroken("scripted: the worker broke")
    if kind == "crash":
        raise RuntimeError("scripted: an unclassified exception")
    raise JobFailed(ErrorType(kind), f"scripted: {kind}", node_id="1")


def _list_models(request: ExecRequest) -> ProducedFile:
    lines = [
        f"{m.folder}/{m.name} {hashlib.sha256(m.path.read_bytes()).hexdigest()}"
        for m in request.models
    ]
    path = request.output_dir / "models.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return ProducedFile(path, "models.txt", "text", node_id="1")


def _write(directory: Path, spec: dict[str, Any]) -> ProducedFile:
    path = directory / spec["name"]
    path.parent.mkdir(parents=True, exist_ok=True)
    if "png" in spec:
        from PIL import Image, PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_text("workflow", '{"scripted": true}')
        Image.new("RGB", tuple(spec["png"]), (200, 30, 90)).save(path, pnginfo=info)
    elif "text" in spec:
        path.write_text(spec["text"])
    else:
        path.write_bytes(os.urandom(int(spec.get("bytes", 100))))
    kind = _KINDS.get(path.suffix, "file")
    return ProducedFile(path, spec["name"], kind, node_id="1")


def build(settings: Settings) -> ScriptedExecutor:
    """``EXECUTOR=tests.fakes.scripted:build``."""
    return ScriptedExecutor()


def workflow(**script: Any) -> dict[str, Any]:
    """A one-node workflow that tells the scripted executor what to do."""
    return {"1": {"class_type": "Scripted", "inputs": script}}


def build_broken(settings: Settings) -> ScriptedExecutor:
    """``EXECUTOR=tests.fakes.scripted:build_broken``: an executor whose start() fails."""
    return ScriptedExecutor(start_fails=True)


def build_slow_start(settings: Settings) -> ScriptedExecutor:
    """``EXECUTOR=tests.fakes.scripted:build_slow_start``: boots for 3 s, longer than idling."""
    return ScriptedExecutor(start_s=3.0)


def build_bad_config(settings: Settings) -> ScriptedExecutor:
    """``EXECUTOR=tests.fakes.scripted:build_bad_config``: start() finds a bad setting."""
    return ScriptedExecutor(start_config_error=True)
