"""The log fields that the log-based metrics in ``infra/metrics.tf`` read.

Metrics cost the job path nothing: Cloud Logging turns the worker's JSON lines into counters and
distributions (no client, no extra latency, nothing lost when the process dies). This module only
computes the few fields those lines need beyond what the runner already logs; names are stable
(docs/observability.md lists them, and ``tests/obs/test_metrics.py`` checks every
metric against the lines the worker really writes).

- ``job.started``: ``queue_s``, publish time -> execution start (Pub/Sub only);
- ``job.succeeded`` / ``job.failed``: ``status``, ``gpu_seconds``, ``billed_s``, ``cost_usd``,
  ``output_bytes``, ``images``, ``model_s``;
- ``worker.exit``: ``unattributed_s``, ``unattributed_usd`` (``worker.obs.cost``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from worker.message.job import Delivery


def queue_fields(delivery: Delivery, now: float | None = None) -> dict[str, Any]:
    """``queue_s`` when the source knows when the message was published."""
    if delivery.published_at is None:
        return {}
    waited = (time.time() if now is None else now) - delivery.published_at
    return {"queue_s": round(max(0.0, waited), 3)}


def model_seconds(workflow: Mapping[str, Any] | None, nodes: Mapping[str, float]) -> float:
    """Seconds the job's model loader nodes took (``*Loader*`` class types: checkpoints, LoRAs,
    VAEs, CLIP, upscalers, ...). A loader ComfyUI served from its cache takes about 0."""
    if not workflow:
        return 0.0
    total = 0.0
    for node_id, seconds in nodes.items():
        node = workflow.get(node_id)
        if isinstance(node, Mapping) and "Loader" in str(node.get("class_type", "")):
            total += seconds
    return total


def result_fields(doc: Mapping[str, Any], workflow: Mapping[str, Any] | None) -> dict[str, Any]:
    """The metric fields of a finished job's ``job.succeeded`` / ``job.failed`` line."""
    outputs = doc.get("outputs") or []
    timings = doc.get("timings") or {}
    return {
        "status": doc["status"],
        "gpu_seconds": doc.get("gpu_seconds", 0.0),
        "billed_s": doc.get("billed_s", 0.0),
        "cost_usd": doc.get("cost_usd", 0.0),
        "output_bytes": sum(int(o.get("size") or 0) for o in outputs),
        "images": sum(1 for o in outputs if o.get("kind") == "image"),
        "model_s": round(model_seconds(workflow, timings.get("nodes") or {}), 4),
    }
