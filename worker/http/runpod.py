"""Runpod's response shapes, from this project's result documents and job states.

Runpod's ``status`` answers ``{"id", "status", "output"?, "error"?, "delayTime"?,
"executionTime"?, "workerId"?}``; worker-comfyui's ``output`` is ``{"images": [{"filename",
"type": "base64" | "s3_url", "data"}]}``. Here:

| job state (``worker.record.jobstate``) | Runpod ``status`` |
|---|---|
| queued (nothing, or an attempt handed back) | ``IN_QUEUE`` |
| running (an attempt record without release) | ``IN_PROGRESS`` |
| ``result.json`` ``succeeded`` | ``COMPLETED`` |
| ``result.json`` ``failed`` (``timeout``: ``TIMED_OUT``) | ``FAILED`` |
| a cancel marker, or ``result.json`` ``cancelled`` | ``CANCELLED`` |

``output.images`` lists image outputs, ``output.files`` the others (video, audio, text, any
file), each ``{"filename", "type": "gcs_uri", "data": "gs://..."}``, or ``"type": "base64"`` with
the bytes when inlined; ``output.result`` is the whole result document. ``error`` is
``"<type>: <message>"``. ``delayTime`` is the time from publish (or the request) to the start
of execution, ``executionTime`` the execution, both in milliseconds; ``workerId`` the worker's
execution (job mode) or revision (HTTP mode).
"""

from __future__ import annotations

import base64
from typing import Any

from worker.adapters.storage.base import ObjectStore, ObjectTooLarge
from worker.record.jobstate import JobState

RUNPOD_STATUS = {
    "queued": "IN_QUEUE",
    "running": "IN_PROGRESS",
    "succeeded": "COMPLETED",
    "failed": "FAILED",
    "cancelled": "CANCELLED",
}


def status_doc(token: str, state: JobState, output: dict[str, Any] | None = None) -> dict[str, Any]:
    """Runpod's ``status`` answer for a job in ``state``."""
    doc: dict[str, Any] = {"id": token, "status": RUNPOD_STATUS[state.state]}
    if state.state == "running":
        worker = state.attempt.get("worker") or {}
        doc["workerId"] = _worker_id(worker)
        return doc
    result = state.result
    if result is None:
        return doc
    error = result.get("error")
    if state.state == "failed" and isinstance(error, dict) and error.get("type") == "timeout":
        doc["status"] = "TIMED_OUT"
    timings = result.get("timings") or {}
    queue_s = float(timings.get("queue_s") or 0.0) + float(timings.get("inputs_s") or 0.0)
    doc["delayTime"] = round(queue_s * 1000)
    doc["executionTime"] = round(float(timings.get("execution_s") or 0.0) * 1000)
    doc["workerId"] = _worker_id(result.get("worker") or {})
    doc["output"] = output if output is not None else outputs(result)
    if isinstance(error, dict):
        doc["error"] = f"{error.get('type')}: {error.get('message')}"
    return doc


def _worker_id(worker: dict[str, Any]) -> str | None:
    parts = [str(worker[k]) for k in ("execution", "task_index", "host") if worker.get(k)]
    return "/".join(parts) or None


def outputs(
    result: dict[str, Any],
    store: ObjectStore | None = None,
    inline_max_bytes: int = 0,
    *,
    with_result: bool = True,
) -> dict[str, Any]:
    """worker-comfyui's ``output`` shape: images and other files, inlined while they fit, and
    (``with_result``) the result document itself."""
    images: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    left = inline_max_bytes
    for entry in result.get("outputs") or []:
        item: dict[str, Any] = {
            "filename": entry.get("name"),
            "type": "gcs_uri",
            "data": entry.get("uri"),
            "content_type": entry.get("content_type"),
            "size": entry.get("size"),
        }
        size = int(entry.get("size") or 0)
        if store is not None and 0 < size <= left and isinstance(entry.get("uri"), str):
            data = _read(store, entry["uri"], size)
            if data is not None:
                item["type"], item["data"] = "base64", base64.b64encode(data).decode("ascii")
                left -= len(data)
        (images if entry.get("kind") == "image" else files).append(item)
    doc: dict[str, Any] = {"images": images, "files": files}
    if with_result:
        doc["result"] = result
    if not images and result.get("status") == "succeeded":
        doc["status"] = "success_no_images"  # as worker-comfyui says it
    return doc


def _read(store: ObjectStore, uri: str, size: int) -> bytes | None:
    try:
        return store.get_bytes(uri, size)
    except ObjectTooLarge:  # replaced by a bigger object since: give the URI instead
        return None
