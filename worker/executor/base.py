"""The executor seam: what runs a workflow. The runner imports only this module.

One executor runs one job at a time (ComfyUI's interrupt flag, progress registry and model
manager are process-global). ``interrupt()`` is the only method called from another thread.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from worker.message.job import ModelFile, ProducedFile


@dataclass(frozen=True)
class Progress:
    """A throttled progress update from inside a run (a sampler step, a node finishing)."""

    job_id: str
    node_id: str | None
    value: float
    total: float


ProgressSink = Callable[[Progress], None]


@dataclass(frozen=True)
class ExecRequest:
    """Everything an executor needs for one job.

    The runner has already staged the job's inputs into ``input_dir``; the executor writes outputs
    under ``output_dir``. Both directories belong to this job alone and are removed by the runner
    after the outputs are uploaded. ``models`` are the job's own model files (``models`` in the
    message), fetched and pinned in the cache: the executor shows each under its folder and name
    for this job only.
    """

    job_id: str
    workflow: Mapping[str, Any]
    input_dir: Path
    output_dir: Path
    progress: ProgressSink | None = None
    models: tuple[ModelFile, ...] = ()


@dataclass(frozen=True)
class ExecResult:
    """What a successful run produced. ``node_timings`` maps node id to seconds."""

    outputs: tuple[ProducedFile, ...]
    node_timings: Mapping[str, float] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)


def isolated(executor: object) -> bool:
    """Whether a run can't take the caller's process down with it: an executor in a process of
    its own (``ProcessExecutor``) says so with ``isolated = True``; any other is taken to share
    the caller's process."""
    return getattr(executor, "isolated", False) is True


class Executor(Protocol):
    """Runs workflows. Failures are raised as ``worker.errors`` classes:

    - ``JobFailed``: the job is wrong (validation, missing model, node exception, OOM that cleared);
    - ``Transient``: a fault outside the job that a later attempt may not meet;
    - ``WorkerBroken``: this process can't run jobs any more;
    - ``Interrupted``: ``interrupt()`` was called during the run.
    """

    def start(self) -> None:
        """Boot once per process (imports, node registry, models, warmup). Slow; call before
        the first pull. Raises ``WorkerBroken`` when the runtime can't come up."""
        ...

    def execute(self, request: ExecRequest) -> ExecResult:
        """Run one job to completion and return its outputs."""
        ...

    def interrupt(self) -> None:
        """Ask the current run (if any) to end soon with ``Interrupted``. Thread-safe."""
        ...

    def close(self) -> None:
        """Release what ``start`` acquired. Idempotent."""
        ...
