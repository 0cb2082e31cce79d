"""Map how a ComfyUI run ended onto the design's failure classes. Pure code.

ComfyUI records the end of a run in ``PromptExecutor.status_messages``: the last one is
``execution_success``, ``execution_interrupted`` or ``execution_error`` (with ``node_id``,
``node_type``, ``exception_type``, ``exception_message`` and ``traceback``). ComfyUI catches
every node exception itself, so the class of failure has to be read from these fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from worker.errors import ErrorType, Interrupted, JobFailed, WorkerBroken
from worker.message.bounded import clip

MiB = 1024 * 1024
TRACEBACK_FRAMES = 6  # the frames kept in an error's details (the node's own code is last)

# The class is chosen from ``exception_type`` (a class path: code decides it, a job can't) and
# from the device's state, never from message text: a job picks its input names, ids and values,
# and ComfyUI quotes them in its messages.
_OOM_TYPES = frozenset({"torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError", "MemoryError"})
# What a broken CUDA context raises: torch >= 2.8 has ``AcceleratorError``; torch 2.7 (the
# image's) raises plain ``RuntimeError``, the same type as a shape mismatch. Whether the context
# is really broken is decided by probing the device after the run.
_DEVICE_SUSPECTS = frozenset(
    {
        "torch.AcceleratorError",
        "RuntimeError",
        "torch.cuda.CudaError",
        "torch.cuda.DeferredCudaCallError",
    }
)

DeviceProbe = Callable[[], str | None]  # None when the device still works; else what failed


def no_device() -> str | None:
    """The probe on CPU: there is no device context to break."""
    return None


class Ending(Enum):
    SUCCESS = "execution_success"
    INTERRUPTED = "execution_interrupted"
    ERROR = "execution_error"


@dataclass(frozen=True)
class RunEnd:
    ending: Ending
    data: Mapping[str, Any]


def run_end(status_messages: Sequence[tuple[str, Mapping[str, Any]]]) -> RunEnd:
    """The last terminal status message. A run without one ended abnormally."""
    for event, data in reversed(status_messages):
        for ending in Ending:
            if event == ending.value:
                return RunEnd(ending, data)
    raise WorkerBroken("ComfyUI ended a run without a success, error or interrupt status")


def is_oom(exception_type: str) -> bool:
    return exception_type in _OOM_TYPES


def is_device_suspect(exception_type: str) -> bool:
    return exception_type in _DEVICE_SUSPECTS


def error_for(data: Mapping[str, Any], probe: DeviceProbe = no_device) -> JobFailed | WorkerBroken:
    """The exception for an ``execution_error`` status: the job's fault unless the device broke.

    An OOM is returned as ``JobFailed(oom)``; the executor frees memory and upgrades it to
    ``WorkerBroken`` when the memory does not come back (``memory_recovered``). An exception of
    a type a broken CUDA context raises is ``WorkerBroken`` only if ``probe`` then fails.
    """
    node_id = str(data.get("node_id")) if data.get("node_id") is not None else None
    node_type = clip(str(data.get("node_type", "?")), 200)
    exc_type = clip(str(data.get("exception_type", "Exception")), 200)
    message = str(data.get("exception_message", "")).strip()
    # ComfyUI appends tips after a blank line; keep the first paragraph as the message.
    headline = clip(message.split("\n\n", 1)[0].strip(), 1000) or exc_type
    where = f"node {clip(str(node_id), 100)} ({node_type})"
    trace = [clip(str(line), 1000) for line in (data.get("traceback") or [])][-TRACEBACK_FRAMES:]
    details: dict[str, Any] = {"exception_type": exc_type, "node_type": node_type}
    if trace:
        details["traceback"] = trace
    if is_oom(exc_type):
        return JobFailed(
            ErrorType.OOM,
            f"out of memory in {where}: {headline}; try a smaller "
            "size or batch, or fewer models in one workflow",
            node_id=node_id,
            details=details,
        )
    if is_device_suspect(exc_type):
        problem = probe()
        if problem is not None:
            return WorkerBroken(
                f"the GPU is unusable after {exc_type} in {where} (probe: {clip(problem, 300)})"
            )
    return JobFailed(
        ErrorType.EXECUTION_ERROR,
        f"{where} raised {exc_type}: {headline}",
        node_id=node_id,
        details=details,
    )


def interrupted(data: Mapping[str, Any]) -> Interrupted:
    node = data.get("node_id")
    where = f" in node {node} ({data.get('node_type', '?')})" if node is not None else ""
    return Interrupted(f"execution_interrupted{where}")


def memory_recovered(allocated: int, baseline: int, total: int) -> bool:
    """After an OOM and a full unload, is the device's memory back near its idle level?

    ``allocated`` and ``baseline`` are bytes torch holds now and held when the worker was
    idle after boot; the margin tolerates allocator fragments and cached kernels.
    """
    margin = max(512 * MiB, total // 20)
    return allocated <= baseline + margin
