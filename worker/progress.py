"""Where an executor's progress updates go: a log line each, and optionally a progress event."""

from __future__ import annotations

import json
import logging
from typing import Any

from worker import logs
from worker.events.base import EventPublisher
from worker.executor.base import Progress, ProgressSink

log = logging.getLogger(__name__)


def sink_for(job_id: str, publisher: EventPublisher | None) -> ProgressSink:
    """A sink for one job. Executors throttle; this neither blocks nor raises."""

    def sink(progress: Progress) -> None:
        fields: dict[str, Any] = {
            "node_id": progress.node_id,
            "value": progress.value,
            "total": progress.total,
        }
        logs.event(log, "job.progress", job_id=job_id, **fields)
        if publisher is not None:
            data = json.dumps({"job_id": job_id, "status": "running", **fields}).encode()
            publisher.publish_nowait(data, {"job_id": job_id, "status": "running"})

    return sink
