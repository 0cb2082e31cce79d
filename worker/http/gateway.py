"""The queue side of HTTP mode: jobs published to the jobs topic, states read from GCS.

``run`` checks the body with the core's own parser (so a body that could never run is refused
with 400 ``invalid_job`` and nothing is queued), names it (its ``job_id``, else a new UUID, sent
as the ``job_id`` attribute as ``submit`` does) and publishes it unchanged; the job workers run
it like any other message. ``status`` and ``cancel`` read and write the job's folder
(``worker.record.jobstate``, ``worker.record.cancel``); ``health`` reads the backlog from Cloud
Monitoring; ``purge-queue`` (off unless ``PURGE_QUEUE_ENABLED``) seeks the job subscription to now,
which acknowledges every message waiting in it.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from worker.adapters.events.base import EventPublisher
from worker.adapters.storage.base import ObjectStore
from worker.config import Settings
from worker.errors import Transient
from worker.http.edge import ErrorKind, HttpError
from worker.message.job import Delivery
from worker.message.jobref import JobRef
from worker.message.parse import Parser, Refused
from worker.record import cancel, jobstate
from worker.record.jobstate import JobState

POLL_S = 0.5


class Gateway:
    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        parser: Parser,
        jobs: EventPublisher | None,
    ) -> None:
        assert settings.output_uri is not None
        self._settings = settings
        self._output_uri = settings.output_uri
        self._store = store
        self._parser = parser
        self._jobs = jobs

    def check(self, body: bytes, key: str) -> JobRef:
        """Where the job in ``body`` will be recorded; ``HttpError`` 400 if it can't run."""
        delivery = Delivery(key, body, {"job_id": key}, None, handle=None, source="http")
        try:
            job = self._parser.parse(delivery)
        except Refused as refused:
            raise HttpError(400, ErrorKind.INVALID_JOB, refused.error.message) from None
        return JobRef(job.job_id, job.output_prefix)

    def submit(self, body: bytes) -> JobRef:
        if self._jobs is None:
            raise HttpError(403, ErrorKind.FORBIDDEN, "this deployment has no JOBS_TOPIC to queue")
        ref = self.check(body, str(uuid.uuid4()))
        try:
            self._jobs.publish(body, {"job_id": ref.job_id})
        except Transient as exc:
            raise HttpError(503, ErrorKind.UNAVAILABLE, str(exc), retry_after_s=5) from exc
        return ref

    def state(self, ref: JobRef) -> JobState:
        return jobstate.read(self._store, ref.folder(self._output_uri))

    def wait(self, ref: JobRef, seconds: float) -> JobState:
        """The job's state once finished, or as it is after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            state = self.state(ref)
            if state.finished or time.monotonic() >= deadline:
                return state
            time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))

    def cancel(self, ref: JobRef, by: str) -> cancel.CancelOutcome:
        try:
            return cancel.request(self._store, self._output_uri, ref, by)
        except cancel.CancelRefused as exc:
            raise HttpError(400, ErrorKind.INVALID_REQUEST, str(exc)) from exc

    def backlog(self) -> int | None:
        """Messages waiting in the job subscription (Cloud Monitoring; None if unknown)."""
        subscription = self._settings.jobs_subscription
        if subscription is None:
            return None
        from worker.producer.backlog import MonitoringBacklog

        endpoint = self._settings.producer.monitoring_api_endpoint
        try:
            return MonitoringBacklog(subscription, endpoint).undelivered()
        except Exception:  # health answers without it: monitoring lags or is not granted
            return None

    def purge(self) -> int | None:
        """Acknowledge every message waiting in the job subscription; how many there were."""
        if not self._settings.http.purge_queue or self._settings.jobs_subscription is None:
            raise HttpError(
                403,
                ErrorKind.FORBIDDEN,
                "purge-queue is off: set PURGE_QUEUE_ENABLED=true and JOBS_SUBSCRIPTION",
            )
        import google.cloud.pubsub_v1 as pubsub_v1
        from google.protobuf import timestamp_pb2

        before = self.backlog()
        now = timestamp_pb2.Timestamp()
        now.FromDatetime(datetime.now(UTC))
        with pubsub_v1.SubscriberClient() as client:
            client.seek(request={"subscription": self._settings.jobs_subscription, "time": now})
        return before
