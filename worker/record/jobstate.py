"""What a job's folder says about it: queued, running, finished or cancelled.

The one reading of a job's state, for ``python -m worker status`` and the HTTP API's
``status/{id}``. In this order:

1. ``result.json`` exists: the job is finished; its ``status`` (``succeeded``, ``failed``,
   ``cancelled``) is the answer, whatever else the folder holds (a finished job is never
   changed, not even by a late cancel).
2. A cancel marker (``.cancel``) exists: ``cancelled``. A job not yet started never runs; a
   running one is interrupted within ``CANCEL_CHECK_S`` and its ``cancelled`` result follows.
3. Its newest attempt record has no release: ``running``, since the record's ``started_at``, on
   the worker it names (until a worker that died is noticed by the next delivery).
4. Otherwise ``queued``: not received yet, between deliveries, or unknown (a job still in the
   queue leaves nothing in GCS, so an id nobody sent reads the same).

Costs two GCS reads (the result, one listing of the folder's dot-names), three when running.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from worker.adapters.storage.base import ObjectStore, ObjectTooLarge
from worker.loop import attempts
from worker.message import jsonsafe
from worker.record.result import MAX_RESULT_BYTES, RESULT_NAME, STATUSES

State = Literal["queued", "running", "succeeded", "failed", "cancelled"]
_ATTEMPT = re.compile(r"\.attempt-(\d{1,6})\.(json|released)")
_STATUS = re.compile(rb'"status"\s*:\s*"(succeeded|failed|cancelled)"')
_LIST_LIMIT = 1000


@dataclass(frozen=True)
class JobState:
    state: State
    folder: str
    result: dict[str, Any] | None = None  # the result document, once finished
    attempt: dict[str, Any] = field(default_factory=dict)  # the running attempt's record
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        return self.result is not None


def read(store: ObjectStore, folder: str) -> JobState:
    result = _result(store, folder)
    if result is not None:
        status = result.get("status")
        state: State = status if status in STATUSES else "failed"
        return JobState(state, folder, result=result)
    started: set[int] = set()
    released: set[int] = set()
    cancel = False
    for uri in store.list(f"{folder}/.", _LIST_LIMIT):
        name = uri[len(folder) + 1 :]  # a marker lies directly in the folder
        cancel = cancel or name == attempts.CANCEL
        match = _ATTEMPT.fullmatch(name)
        if match is not None:
            (started if match.group(2) == "json" else released).add(int(match.group(1)))
    if cancel:
        return JobState("cancelled", folder, cancel_requested=True)
    newest = max(started | released, default=None)
    if newest is not None and newest in started and newest not in released:
        return JobState("running", folder, attempt=_record(store, folder, newest))
    return JobState("queued", folder)


def _result(store: ObjectStore, folder: str) -> dict[str, Any] | None:
    uri = f"{folder}/{RESULT_NAME}"
    try:
        data = store.get_bytes(uri, MAX_RESULT_BYTES)
    except ObjectTooLarge as exc:  # written before results had a cap: finished all the same
        return _stand_in(uri, exc.head)
    if data is None:
        return None
    try:
        doc = json.loads(data)
    except ValueError:
        return _stand_in(uri, data)
    return doc if isinstance(doc, dict) else _stand_in(uri, data)


def _stand_in(uri: str, head: bytes) -> dict[str, Any]:
    match = _STATUS.search(head[:65536])
    status = match.group(1).decode() if match else "failed"
    return {"status": status, "result_uri": uri, "note": "result.json is not readable here"}


def _record(store: ObjectStore, folder: str, attempt: int) -> dict[str, Any]:
    try:
        data = store.get_bytes(attempts.record_uri(folder, attempt), 16 * 1024)
        doc = jsonsafe.loads(data.decode("utf-8")) if data is not None else None
    except (ValueError, UnicodeDecodeError, ObjectTooLarge):
        doc = None
    return doc if isinstance(doc, dict) else {"attempt": attempt}
