"""Map how a ComfyUI run ended onto the design's failure classes. Pure code.

ComfyUI records the end of a run in ``PromptExecutor.status_messages``: the last one is
``execution_success``, ``execution_interrupted`` or ``execution_error`` (with ``node_id``,
``node_type``, ``exception_type``, ``exception_message`` and ``traceback``). ComfyUI catches
every node exception itself, so the class of failure has to be read from these fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from worker.errors import ErrorType, Interrupted, JobFailed, WorkerBroken

MiB = 1024 * 1024
TRACEBACK_FRAMES = 6  # the frames kept in an error's details (the node's own code is last)

# Errors after which the CUDA context is unusable: every later kernel launch fails too.
_CUDA_FATAL = (
    "cuda error",
    "cublas_status",
    "cudnn_status",
    "cudnn error",
    "device-side assert",
    "illegal memory access",
    "cuda driver",
    "nccl error",
    "unspecified launch failure",
    "misaligned address",
    "an illegal instruction",
)
_OOM_TYPES = ("torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError", "MemoryError")


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


def is_oom(exception_type: str, message: str) -> bool:
    text = message.lower()
    return (
        exception_type in _OOM_TYPES
        or "out of memory" in text
        or "cuda_error_out_of_memory" in text
    )


def is_cuda_fatal(exception_type: str, message: str) -> bool:
    if is_oom(exception_type, message):
        return False
    text = message.lower()
    return exception_type == "torch.AcceleratorError" or any(s in text for s in _CUDA_FATAL)


def error_for(data: Mapping[str, Any]) -> JobFailed | WorkerBroken:
    """The exception for an ``execution_error`` status: the job's fault unless CUDA broke.

    An OOM is returned as ``JobFailed(oom)``; the executor frees memory and upgrades it to
    ``WorkerBroken`` when the memory does not come back (``memory_recovered``).
    """
    node_id = str(data.get("node_id")) if data.get("node_id") is not None else None
    node_type = str(data.get("node_type", "?"))
    exc_type = str(data.get("exception_type", "Exception"))
    message = str(data.get("exception_message", "")).strip()
    # ComfyUI appends tips after a blank line; keep the first paragraph as the message.
    headline = message.split("\n\n", 1)[0].strip() or exc_type
    where = f"node {node_id} ({node_type})"
    trace = [str(line) for line in (data.get("traceback") or [])][-TRACEBACK_FRAMES:]
    details: dict[str, Any] = {"exception_type": exc_type, "node_type": node_type}
    if trace:
        details["traceback"] = trace
    if is_cuda_fatal(exc_type, message):
        return WorkerBroken(f"CUDA failed in {where}: {exc_type}: {headline}")
    if is_oom(exc_type, message):
        return JobFailed(
            ErrorType.OOM,
            f"out of memory in {where}: {headline}; try a smaller "
            "size or batch, or fewer models in one workflow",
            node_id=node_id,
            details=details,
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
