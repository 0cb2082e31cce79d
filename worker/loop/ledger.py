"""The result ledger: the one place that answers "is this job done?" and records that it is.

A job is done when its ``result.json`` exists. The ledger

- looks it up (``lookup``): an earlier attempt's result, readable or not, means "done": a result
  over the size cap or one that is not JSON is announced by a small stand-in event that points at
  it, never treated as a broken worker;
- records it (``record``): ``result.json`` create-once, then the completion event. When another
  attempt created it first, this one loses the race: the stored result stands. It is re-published
  when this delivery is a redelivery (the winner may be an earlier delivery of this message whose
  publish failed); a concurrent first delivery leaves the announcing to the winner, whose own
  delivery publishes it or, failing, is redelivered and re-publishes;
- re-publishes a found result (``republish``);
- knows which jobs this process holds right now (``hold``/``let_go``/``wait_free``), so that a
  duplicate prefetched while the first copy runs waits for it instead of running twice.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from worker.adapters.events.base import EventPublisher
from worker.adapters.storage.base import ObjectStore, ObjectTooLarge
from worker.message import jsonsafe
from worker.record.result import MAX_RESULT_BYTES, RESULT_NAME, VERSION, JobContext

_STATUS = re.compile(rb'"status"\s*:\s*"(succeeded|failed|cancelled)"')


@dataclass(frozen=True)
class Existing:
    """A result an earlier attempt left: the bytes to announce and their event attributes."""

    data: bytes
    attributes: Mapping[str, str]


class Recorded(Enum):
    RECORDED = "recorded"  # this attempt's result.json and event
    LOST = "lost"  # another attempt's result stands; its delivery announces it
    LOST_REPUBLISHED = "lost_republished"  # another attempt's result stands; announced again


class Ledger:
    def __init__(self, store: ObjectStore, publisher: EventPublisher) -> None:
        self._store = store
        self._publisher = publisher
        self._held: dict[str, int] = {}  # job folder -> messages of it this process holds
        self._cond = threading.Condition()

    # -- in this process ---------------------------------------------------------------------

    def hold(self, folder: str) -> None:
        with self._cond:
            self._held[folder] = self._held.get(folder, 0) + 1

    def let_go(self, folder: str) -> None:
        with self._cond:
            left = self._held.get(folder, 1) - 1
            if left > 0:
                self._held[folder] = left
            else:
                self._held.pop(folder, None)
            self._cond.notify_all()

    def wait_free(self, folder: str, stop: threading.Event) -> bool:
        """Block while this process holds another message of the job in ``folder`` (it runs or
        is being recorded); False if ``stop`` was set first. Woken by ``let_go`` and ``wake``."""
        with self._cond:
            self._cond.wait_for(lambda: stop.is_set() or not self._held.get(folder))
            return not stop.is_set()

    def wake(self) -> None:
        """Wake waiters so they see a stop."""
        with self._cond:
            self._cond.notify_all()

    # -- in the store --------------------------------------------------------------------------

    def lookup(self, ctx: JobContext) -> Existing | None:
        uri = f"{ctx.folder}/{RESULT_NAME}"
        try:
            data = self._store.get_bytes(uri, MAX_RESULT_BYTES)
        except ObjectTooLarge as exc:  # written before results had a cap: done all the same
            return self._stand_in(ctx, uri, exc.head, "is larger than the result size cap")
        if data is None:
            return None
        try:
            doc = json.loads(data)
            attributes = {"job_id": str(doc["job_id"]), "status": str(doc["status"])}
        except (ValueError, KeyError, TypeError):
            return self._stand_in(ctx, uri, data, "is not a readable result document")
        return Existing(data, attributes)

    def republish(self, existing: Existing) -> None:
        self._publisher.publish(existing.data, existing.attributes)

    def record(
        self, ctx: JobContext, data: bytes, attributes: Mapping[str, str], redelivered: bool
    ) -> Recorded:
        """Create ``result.json`` (unless another attempt did) and publish the event."""
        uri = f"{ctx.folder}/{RESULT_NAME}"
        if self._store.put_bytes_once(uri, data, "application/json") is not None:
            self._publisher.publish(data, attributes)
            return Recorded.RECORDED
        if not redelivered:
            return Recorded.LOST
        existing = self.lookup(ctx)
        if existing is not None:
            self.republish(existing)
        return Recorded.LOST_REPUBLISHED

    @staticmethod
    def _stand_in(ctx: JobContext, uri: str, head: bytes, problem: str) -> Existing:
        """A small event for a result that can't be announced as it is."""
        match = _STATUS.search(head[:65536])
        status = match.group(1).decode() if match else "failed"
        doc: dict[str, Any] = {
            "version": VERSION,
            "job_id": ctx.job_id,
            "status": status,
            "result_uri": uri,
            "message_id": ctx.message_id,
            "note": f"{RESULT_NAME} {problem}; read it from result_uri",
        }
        return Existing(jsonsafe.dumps(doc), {"job_id": ctx.job_id, "status": status})
