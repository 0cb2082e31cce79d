"""Cancel a job: write its cancel marker, and say what that does.

Shared by ``python -m worker cancel`` and the HTTP API's ``cancel/{id}``. The job's folder is
claimed as a job's first (``worker.message.namespace``: a prefix level is never written into), then
``F/.cancel`` is created once (``requested_at``, ``by``), then the folder is read again
(``worker.record.jobstate``). Workers look for the marker before a job starts (the prefetch, and
again right after the attempt record: whichever of the two writes comes second sees the other) and
while it runs (``worker.loop.cancelwatch``). So:

- a job not started yet never runs: it ends ``cancelled`` (one result, one event, acked) when a
  worker receives it;
- a running job is interrupted within ``CANCEL_CHECK_S`` and ends ``cancelled``;
- a finished job is not changed, and no marker is written.

Cancelling an id nothing was sent for yet leaves a marker that cancels it when it comes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from worker.adapters.storage.base import ObjectStore
from worker.loop import attempts
from worker.message import jsonsafe
from worker.message.jobref import JobRef
from worker.message.namespace import Namespace
from worker.record import jobstate
from worker.record.jobstate import JobState


class CancelRefused(Exception):
    """The reference names no job's folder (it is a prefix level of other jobs)."""


@dataclass(frozen=True)
class CancelOutcome:
    state: JobState  # what the folder says after the marker was written (or why it wasn't)
    written: bool  # False: the job had finished (or was already cancelled)


def request(store: ObjectStore, output_uri: str, ref: JobRef, by: str) -> CancelOutcome:
    folder = ref.folder(output_uri)
    before = jobstate.read(store, folder)
    if before.finished or before.cancel_requested:
        return CancelOutcome(before, written=False)
    clash = Namespace(store, output_uri).claim_job(ref.prefix, ref.job_id)
    if clash is not None:
        raise CancelRefused(f"{folder} is not a job's folder: {clash}")
    marker = {"requested_at": datetime.now(UTC).isoformat(), "by": by[:200]}
    written = store.put_bytes_once(
        attempts.cancel_uri(folder), jsonsafe.dumps(marker), "application/json"
    )
    return CancelOutcome(jobstate.read(store, folder), written=written is not None)
