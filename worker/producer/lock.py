"""At most one dispatch decision at a time, from create-only objects in GCS.

Time is cut into slots of ``DISPATCH_LOCK_S`` seconds. A dispatcher may act only if it creates the
object of the current slot (``if_generation_match=0``: exactly one creator wins), the previous
slot's object, if any, is at least one slot old, and no next-slot object exists yet (each one
writes before it reads, so of two racing at a slot boundary at least one sees the other). A
winner gives itself half a slot to act and stops short otherwise, so two decisions are always
apart in time and the later one sees the executions the earlier one started. No object is ever
deleted or overwritten: this needs only create-only writes and reads (which fake-gcs-server
honours too); a bucket lifecycle rule removes old slot objects.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable

from worker.adapters.storage.base import ObjectStore
from worker.obs import logs

log = logging.getLogger(__name__)


class SlotLock:
    def __init__(
        self,
        store: ObjectStore,
        prefix_uri: str,
        slot_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.prefix = prefix_uri.rstrip("/")
        self.slot_s = slot_s
        self.clock = clock
        self.acquired_at: float | None = None

    def _uri(self, slot: int) -> str:
        return f"{self.prefix}/{slot}.json"

    def acquire(self) -> bool:
        """True when this process may make the decision now; logs why not otherwise."""
        now = self.clock()
        slot = int(now // self.slot_s)
        body = json.dumps({"created_at": now, "host": socket.gethostname()}).encode()
        if self.store.put_bytes_once(self._uri(slot), body, "application/json") is None:
            logs.event(
                log,
                "dispatch.skipped",
                reason="another dispatcher took this slot",
                lock=self._uri(slot),
            )
            return False
        previous = self.store.get_bytes(self._uri(slot - 1), 4096)
        if previous is not None:
            try:
                previous_at = float(json.loads(previous)["created_at"])
            except (ValueError, KeyError, TypeError):
                previous_at = now  # unreadable: assume the worst (it may be acting right now)
            if now - previous_at < self.slot_s:
                logs.event(
                    log,
                    "dispatch.skipped",
                    reason=f"another dispatcher acted {now - previous_at:.1f} s ago",
                    lock=self._uri(slot - 1),
                )
                return False
        if self.store.stat(self._uri(slot + 1)) is not None:
            logs.event(
                log,
                "dispatch.skipped",
                reason="a later dispatcher took the next slot",
                lock=self._uri(slot + 1),
            )
            return False
        self.acquired_at = now
        return True

    def still_held(self) -> bool:
        """Whether the decision may still be acted on (within half a slot of acquiring)."""
        return self.acquired_at is not None and self.clock() - self.acquired_at < self.slot_s / 2
