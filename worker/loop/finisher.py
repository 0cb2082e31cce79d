"""Records finished jobs on one thread: outputs, then ``result.json``, then the event.

The previous job's uploads overlap the next job's execution. The order within a job is the
contract: ``result.json`` is written after every output (its presence means "finished"), and the
event after it (through ``worker.loop.ledger``). The finisher decides nothing about the message: it
posts ``RecordDone`` or ``RecordFailed`` and the control loop settles it.
"""

from __future__ import annotations

import logging
import queue
import time
from typing import Any

from worker.adapters.storage.base import ObjectStore
from worker.config import Identity, Limits
from worker.errors import ErrorType, JobFailed
from worker.loop.ledger import Ledger, Recorded
from worker.loop.prepare import Prepared
from worker.obs import logs, metrics
from worker.obs.tracing import NO_TRACER, Tracer
from worker.record import outputs
from worker.record import result as results
from worker.record.eventtypes import Post, RecordDone, RecordFailed, Recording, start_thread
from worker.record.output_format import convert

log = logging.getLogger(__name__)
# Jobs recorded at once. Each is a few round trips to GCS and Pub/Sub (outputs, result.json, the
# event); on one thread, jobs shorter than those would queue behind each other. Two copies of one
# job are never recorded at once: the ledger makes a duplicate wait until the first is settled.
THREADS = 2


class Finisher:
    def __init__(
        self,
        store: ObjectStore,
        ledger: Ledger,
        identity: Identity,
        post: Post,
        tracer: Tracer = NO_TRACER,
        max_pixels: int = Limits.max_pixels_per_job,
    ) -> None:
        self._tracer = tracer
        self._max_pixels = max_pixels  # the largest output image converted (output.format)
        self._store = store
        self._ledger = ledger
        self._identity = identity
        self._post = post
        self._queue: queue.SimpleQueue[Recording | None] = queue.SimpleQueue()

    def start(self) -> None:
        for _ in range(THREADS):
            start_thread("finisher", self._run, self._post)

    def submit(self, item: Recording) -> None:
        self._queue.put(item)

    def close(self) -> None:
        for _ in range(THREADS):
            self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                how = self._finish(item)
            except Exception as exc:  # classified by the control loop (a GCS outage: Transient)
                self._post(RecordFailed(item, exc))
            else:
                self._post(RecordDone(item, how))

    def _finish(self, item: Recording) -> Recorded | None:
        prepared = item.prepared
        if prepared.existing is not None:
            self._ledger.republish(prepared.existing)
            logs.event(
                log,
                "job.already_done",
                job_id=prepared.ctx.job_id,
                status=prepared.existing.attributes.get("status"),
                delivery_attempt=prepared.ctx.delivery_attempt,
            )
            return None
        if item.doc is None or item.data is None:
            item.doc = self._document(item)
            item.data = results.encode(item.doc)
        attempt = prepared.ctx.delivery_attempt
        redelivered = attempt is not None and attempt > 1
        attributes = results.attributes(item.doc)
        recording = time.monotonic()
        how = self._ledger.record(prepared.ctx, item.data, attributes, redelivered=redelivered)
        self._tracer.phase(prepared.delivery.message_id, "record", recording)
        if how is Recorded.RECORDED:
            self._log(prepared, item.doc)
        else:
            logs.event(log, "job.duplicate", job_id=prepared.ctx.job_id, winner="other attempt")
        return how

    def _document(self, item: Recording) -> dict[str, Any]:
        prepared = item.prepared
        outcome, stored, upload_s = item.outcome, [], 0.0
        notes: list[str] = []
        if outcome is None and item.result is not None:
            started = time.monotonic()
            try:
                files = list(item.result.outputs)
                if prepared.job is not None:  # WebP/JPEG: converted here, off the GPU's time
                    fmt = prepared.job.output_format
                    files, notes = convert(files, fmt, self._max_pixels)
                stored = outputs.upload(files, prepared.ctx.folder, self._store)
            except JobFailed as exc:
                outcome = exc
            upload_s = time.monotonic() - started
            self._tracer.phase(prepared.delivery.message_id, "upload", started)
        doc = self._build(item, outcome, stored, upload_s, notes)
        try:
            results.encode(doc)
        except results.ResultTooLarge as exc:
            too_large = JobFailed(
                ErrorType.EXECUTION_ERROR,
                f"{exc}: produce fewer output files (their listing must fit result.json)",
            )
            doc = self._build(item, too_large, [], upload_s, notes)
        return doc

    def _build(
        self,
        item: Recording,
        outcome: BaseException | None,
        stored: list[Any],
        upload_s: float,
        notes: list[str],
    ) -> dict[str, Any]:
        prepared = item.prepared
        error = outcome if isinstance(outcome, JobFailed) else None
        timings = results.Timings(
            inputs_s=prepared.inputs_s,
            execution_s=item.execution_s,
            upload_s=upload_s,
            total_s=time.monotonic() - prepared.received_at,
            nodes=item.result.node_timings if item.result else {},
            models_s=prepared.models_s,
            models_overlap_s=prepared.models_overlap_s,
            queue_s=_queue_s(prepared),
        )
        return results.build(
            prepared.ctx,
            status=_status(error),
            outputs=stored,
            error=error,
            timings=timings,
            identity=self._identity,
            warnings=[*(prepared.job.warnings if prepared.job else ()), *notes],
            cost=item.cost.fields(),
            models=prepared.models.records if prepared.models is not None else (),
        )

    @staticmethod
    def _log(prepared: Prepared, doc: dict[str, Any]) -> None:
        fields: dict[str, Any] = {
            "job_id": prepared.ctx.job_id,
            "delivery_attempt": prepared.ctx.delivery_attempt,
            "result_uri": doc["result_uri"],
            **{k: v for k, v in doc["timings"].items() if k != "nodes"},
            **metrics.result_fields(doc, prepared.job.workflow if prepared.job else None),
        }
        error = doc.get("error")
        if not error:
            logs.event(log, "job.succeeded", outputs=len(doc["outputs"]), **fields)
            return
        if doc["status"] == "cancelled":
            logs.event(log, "job.cancelled", error=error.get("message"), **fields)
            return
        logs.event(
            log,
            "job.failed",
            logging.WARNING,
            error_type=error.get("type"),
            error=error.get("message"),
            node_id=error.get("node_id"),
            **fields,
        )


def _status(error: JobFailed | None) -> results.Status:
    if error is None:
        return "succeeded"
    return "cancelled" if error.error_type is ErrorType.CANCELLED else "failed"


def _queue_s(prepared: Prepared) -> float | None:
    """Publish time (Pub/Sub) or request time (HTTP) -> received by this worker."""
    published = prepared.delivery.published_at
    if published is None:
        return None
    received = time.time() - (time.monotonic() - prepared.received_at)
    return max(0.0, received - published)
