"""Records finished jobs in the background: outputs, then ``result.json``, then the event, then ack.

One thread works through a short queue, so the previous job's uploads overlap the next job's
execution; the queue's bound is the backpressure that keeps disk and memory in check when GCS is
slower than the GPU. The order within a job is the contract: ``result.json`` is written after every
output (its presence means "finished"), and the message is acked only after the event is out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from worker import logs, metrics, outputs
from worker import result as results
from worker.config import Identity
from worker.cost import NOT_EXECUTED, JobCost
from worker.errors import ErrorType, JobFailed
from worker.events.base import EventPublisher
from worker.executor.base import ExecResult
from worker.prepare import Prepared
from worker.settle import Settler, decide
from worker.storage.base import ObjectStore
from worker.tracing import NO_TRACER, Tracer

log = logging.getLogger(__name__)


@dataclass
class Finished:
    prepared: Prepared
    outcome: BaseException | None  # None: succeeded
    result: ExecResult | None = None
    execution_s: float = 0.0
    cost: JobCost = NOT_EXECUTED  # its share of the task's time (worker.cost)


class Finisher:
    def __init__(
        self,
        store: ObjectStore,
        publisher: EventPublisher,
        settler: Settler,
        identity: Identity,
        depth: int = 2,
        tracer: Tracer = NO_TRACER,
    ) -> None:
        self._tracer = tracer
        self._store = store
        self._publisher = publisher
        self._settler = settler
        self._identity = identity
        self._queue: queue.Queue[Finished | None] = queue.Queue(maxsize=depth)
        self._busy: Finished | None = None
        self._unrecorded: dict[str, int] = {}  # job id -> items queued or in progress
        self._recorded = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="finisher", daemon=True)
        self._thread.start()

    def submit(self, item: Finished, stop: threading.Event) -> bool:
        """Queue a finished job; blocks while the queue is full (backpressure).

        Returns False, without queueing, if ``stop`` is set while it waits: a hung GCS must not
        keep the control loop from honouring SIGTERM.
        """
        job_id = item.prepared.ctx.job_id
        with self._recorded:
            self._unrecorded[job_id] = self._unrecorded.get(job_id, 0) + 1
        while True:
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                if stop.is_set():
                    self._done_with(job_id)
                    return False

    def wait_recorded(self, job_id: str, timeout_s: float) -> bool:
        """Wait until no item for ``job_id`` is queued or being recorded; False if any was.

        Lets the runner notice a duplicate of a job it has just run (a producer that published
        twice) before spending executor time on it: once recorded, its result.json exists.
        """
        with self._recorded:
            if not self._unrecorded.get(job_id):
                return False
            self._recorded.wait_for(lambda: not self._unrecorded.get(job_id), timeout_s)
            return True

    def close(self, timeout_s: float) -> list[Finished]:
        """Finish what is queued within ``timeout_s``; return the items left unfinished."""
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        if not self._thread.is_alive():
            return []
        left = [self._busy] if self._busy is not None else []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return left
            if item is not None:
                left.append(item)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            self._busy = item
            try:
                self._finish(item)
            except Exception as exc:  # the decision for whatever escaped, e.g. a GCS outage
                self._settler.settle(
                    item.prepared.delivery, decide(exc), item.prepared.ctx.job_id, exc
                )
            finally:
                item.prepared.cleanup()
                self._busy = None
                self._done_with(item.prepared.ctx.job_id)

    def _done_with(self, job_id: str) -> None:
        with self._recorded:
            left = self._unrecorded.get(job_id, 1) - 1
            if left > 0:
                self._unrecorded[job_id] = left
            else:
                self._unrecorded.pop(job_id, None)
            self._recorded.notify_all()

    def _finish(self, item: Finished) -> None:
        prepared = item.prepared
        if prepared.existing is not None:
            self._republish(prepared)
            return
        outcome, stored, upload_s = item.outcome, [], 0.0
        if outcome is None and item.result is not None:
            started = time.monotonic()
            try:
                stored = outputs.upload(item.result.outputs, prepared.ctx.folder, self._store)
            except JobFailed as exc:
                outcome = exc
            upload_s = time.monotonic() - started
            self._tracer.phase(prepared.delivery.message_id, "upload", started)
        error = outcome if isinstance(outcome, JobFailed) else None
        timings = results.Timings(
            inputs_s=prepared.inputs_s,
            execution_s=item.execution_s,
            upload_s=upload_s,
            total_s=time.monotonic() - prepared.received_at,
            nodes=item.result.node_timings if item.result else {},
        )
        warnings = prepared.job.warnings if prepared.job else ()
        doc = results.build(
            prepared.ctx,
            status="failed" if error else "succeeded",
            outputs=stored,
            error=error,
            timings=timings,
            identity=self._identity,
            warnings=warnings,
            cost=item.cost.fields(),
        )
        data = results.encode(doc)
        recording = time.monotonic()
        created = self._store.put_bytes_once(doc["result_uri"], data, "application/json")
        if created is None:
            # Another attempt of this job finished first; its result stands and its own
            # delivery publishes (or re-publishes) the event.
            self._settler.settle(prepared.delivery, decide(outcome), prepared.ctx.job_id)
            logs.event(log, "job.duplicate", job_id=prepared.ctx.job_id, winner="other attempt")
            return
        self._publisher.publish(data, results.attributes(doc))
        self._tracer.phase(prepared.delivery.message_id, "record", recording)
        self._settler.settle(prepared.delivery, decide(outcome), prepared.ctx.job_id, outcome)
        self._log(prepared, doc, error)

    def _republish(self, prepared: Prepared) -> None:
        assert prepared.existing is not None
        try:
            doc = json.loads(prepared.existing)
            attributes = results.attributes(doc)
        except (ValueError, KeyError, TypeError) as exc:
            raise JobFailed(
                ErrorType.EXECUTION_ERROR, f"{prepared.ctx.folder}/result.json is unreadable"
            ) from exc
        self._publisher.publish(prepared.existing, attributes)
        self._settler.settle(prepared.delivery, decide(None), prepared.ctx.job_id)
        logs.event(
            log,
            "job.already_done",
            job_id=prepared.ctx.job_id,
            status=attributes["status"],
            delivery_attempt=prepared.ctx.delivery_attempt,
        )

    @staticmethod
    def _log(prepared: Prepared, doc: dict[str, Any], error: JobFailed | None) -> None:
        fields: dict[str, Any] = {
            "job_id": prepared.ctx.job_id,
            "delivery_attempt": prepared.ctx.delivery_attempt,
            "result_uri": doc["result_uri"],
            **doc["timings"],
            **metrics.result_fields(doc, prepared.job.workflow if prepared.job else None),
        }
        if error is None:
            logs.event(log, "job.succeeded", outputs=len(doc["outputs"]), **fields)
        else:
            logs.event(
                log,
                "job.failed",
                logging.WARNING,
                error_type=str(error.error_type),
                error=error.message,
                node_id=error.node_id,
                **fields,
            )
