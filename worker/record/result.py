"""The result document: ``result.json`` and the completion event carry the same JSON.

Version 1 fields: ``version, job_id, status, outputs[], models[], error, timings, gpu_seconds,
billed_s, cost_usd, delivery_attempt, worker, metadata, result_uri, message_id, form, pipeline,
params, warnings, finished_at``. Event attributes:
``job_id`` and ``status``. Consumers must tolerate duplicates (at-least-once) and unknown fields.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from worker.adapters.storage import uri as gsuri
from worker.config import Identity
from worker.errors import JobFailed
from worker.message import jsonsafe
from worker.message.job import StoredOutput

RESULT_NAME = "result.json"
VERSION = 1
# result.json and the completion event carry the same bytes: far under Pub/Sub's 10 MB message
# limit, whatever a job sent (echoed values are cut, metadata is at most MAX_METADATA_BYTES).
MAX_RESULT_BYTES = 1024 * 1024


class ResultTooLarge(Exception):
    """The document is over ``MAX_RESULT_BYTES`` even trimmed: its outputs list alone is."""


Status = Literal["succeeded", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = get_args(Status)  # a result.json's statuses: the job is over


def job_folder(output_uri: str, prefix: str, job_id: str) -> str:
    """``<OUTPUT_URI>/[prefix/]<job_id>``: where a job's outputs and result.json lie."""
    return gsuri.join(output_uri, prefix, job_id)


@dataclass
class Timings:
    inputs_s: float = 0.0
    execution_s: float = 0.0
    upload_s: float = 0.0
    total_s: float = 0.0
    nodes: Mapping[str, float] = field(default_factory=dict)
    models_s: float = 0.0  # fetching the job's own models (0 when it brings none)
    models_overlap_s: float = 0.0  # of models_s, while the executor ran another job
    queue_s: float | None = None  # publish (or HTTP request) -> received, when the source knows

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "inputs_s": round(self.inputs_s, 4),
            "models_s": round(self.models_s, 4),
            "models_overlap_s": round(self.models_overlap_s, 4),
            "execution_s": round(self.execution_s, 4),
            "upload_s": round(self.upload_s, 4),
            "total_s": round(self.total_s, 4),
        }
        if self.queue_s is not None:
            doc["queue_s"] = round(self.queue_s, 4)
        if self.nodes:
            doc["nodes"] = {k: round(v, 4) for k, v in self.nodes.items()}
        return doc


@dataclass(frozen=True)
class JobContext:
    """What a result says about where the job came from (filled in before execution)."""

    job_id: str
    message_id: str
    delivery_attempt: int | None
    folder: str
    form: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    pipeline: str | None = None
    params: Mapping[str, Any] | None = None


def build(
    ctx: JobContext,
    *,
    status: Status,
    outputs: Sequence[StoredOutput],
    error: JobFailed | None,
    timings: Timings,
    identity: Identity,
    warnings: Sequence[str] = (),
    cost: Mapping[str, Any] | None = None,
    models: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    return {
        "version": VERSION,
        "job_id": ctx.job_id,
        "status": status,
        "outputs": [o.to_dict() for o in outputs],
        # The job's own models: folder, name, sha256, size, source (cache | download), uri
        # (without its query string).
        "models": [dict(m) for m in models],
        "error": error.to_dict() if error else None,
        "timings": timings.to_dict(),
        **(cost or {}),  # gpu_seconds, billed_s, cost_usd (worker.obs.cost)
        "delivery_attempt": ctx.delivery_attempt,
        "worker": {
            "job": identity.job,
            "execution": identity.execution,
            "task_index": identity.task_index,
            "task_attempt": identity.task_attempt,
        },
        "metadata": dict(ctx.metadata),
        "result_uri": f"{ctx.folder}/{RESULT_NAME}",
        "message_id": ctx.message_id,
        "form": ctx.form,
        "pipeline": ctx.pipeline,
        "params": dict(ctx.params) if ctx.params is not None else None,
        "warnings": list(warnings),
        "finished_at": datetime.now(UTC).isoformat(),
    }


def encode(doc: Mapping[str, Any]) -> bytes:
    """Strict UTF-8 JSON of at most ``MAX_RESULT_BYTES``.

    A document over the cap loses what it can spare, in this order, each with a note in
    ``truncated``: error details, per-node timings, the indentation, the echoed metadata (what
    the sender asked to get back goes last: indented, deep metadata of 16 KiB takes 40 times
    its size). Raises ``ResultTooLarge`` when the outputs list alone is over the cap.
    """
    data = jsonsafe.dumps(doc, indent=2)
    if len(data) <= MAX_RESULT_BYTES:
        return data
    trimmed = dict(doc)
    notes: list[str] = []
    if isinstance(trimmed.get("error"), Mapping) and "details" in trimmed["error"]:
        trimmed["error"] = {k: v for k, v in trimmed["error"].items() if k != "details"}
        notes.append("error.details")
    if isinstance(trimmed.get("timings"), Mapping) and "nodes" in trimmed["timings"]:
        trimmed["timings"] = {k: v for k, v in trimmed["timings"].items() if k != "nodes"}
        notes.append("timings.nodes")
    trimmed["truncated"] = notes
    for indent in (2, None):
        data = jsonsafe.dumps(trimmed, indent=indent)
        if len(data) <= MAX_RESULT_BYTES:
            return data
    if trimmed.get("metadata"):
        trimmed["metadata"] = {}
        notes.append("metadata")
        data = jsonsafe.dumps(trimmed)
        if len(data) <= MAX_RESULT_BYTES:
            return data
    raise ResultTooLarge(
        f"the result document is {len(data)} bytes with "
        f"{len(trimmed.get('outputs') or [])} outputs; the limit is {MAX_RESULT_BYTES}"
    )


def attributes(doc: Mapping[str, Any]) -> dict[str, str]:
    return {"job_id": str(doc["job_id"]), "status": str(doc["status"])}
