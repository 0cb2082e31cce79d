"""A JSONL manifest in GCS as a job source: backfills without publishing a message per job.

Each non-blank line is one job message (the same v1 or Runpod forms as the queue). Task ``i`` of
``N`` (``CLOUD_RUN_TASK_INDEX`` / ``CLOUD_RUN_TASK_COUNT``) takes lines ``n`` with
``(n - 1) % N == i``, so shares are even and need no coordination. A line's message id is
``<manifest name>-<6 hex of its URI>-<line number>-<6 hex of the line>``: the job id of a line
that names none, the same on every run, so a re-run finds the ``result.json`` of finished lines
and the runner skips them (re-publishing their events). A line edited between runs (or another
manifest uploaded to the same URI) gets a new id, and runs, rather than finding the result of
what that line number held before.

Settling: ``ack`` counts the line done. ``nack`` (a transient fault, or a stop) puts the line at
the back of this task's queue for another attempt; after ``MANIFEST_MAX_ATTEMPTS`` attempts it is
set aside, and once the rest of the share is done, ``receive`` raises ``ServiceUnavailable`` so
that the task exits non-zero and Cloud Run's task retry resumes the unfinished lines. A stopped
task also exits non-zero (``ExitCode.INTERRUPTED``, decided by the run command) for the same reason.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import deque
from dataclasses import dataclass

from worker.adapters.sources.base import OnDeath
from worker.adapters.storage.base import AccessDenied, ObjectStore, ObjectTooLarge
from worker.config import ProducerSettings, Settings
from worker.errors import ConfigError, ServiceUnavailable
from worker.message.job import Delivery
from worker.obs import logs

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 30.0  # log done / total at least this often, and at every tenth


@dataclass
class Line:
    number: int  # 1-based line number in the manifest
    data: bytes
    attempts: int = 0


def message_id_prefix(uri: str) -> str:
    """``jobs-1a2b3c`` for ``gs://b/x/jobs.jsonl``: readable, and distinct per manifest URI."""
    stem = uri.rsplit("/", 1)[-1].split(".", 1)[0]
    # never a leading "_": job folders at the top level never start with it (the worker's own)
    safe = re.sub(r"[^A-Za-z0-9._-]", "-", stem)[:80].lstrip("_") or "manifest"
    return f"{safe}-{hashlib.sha256(uri.encode()).hexdigest()[:6]}"


def line_message_id(prefix: str, number: int, data: bytes) -> str:
    """``jobs-1a2b3c-000042-9f8e7d``: the manifest's prefix, the line number, the line's digest."""
    return f"{prefix}-{number:06d}-{hashlib.sha256(data).hexdigest()[:6]}"


def share(data: bytes, index: int, count: int) -> list[Line]:
    """The non-blank lines of task ``index`` of ``count``, in manifest order."""
    lines = []
    for offset, raw in enumerate(data.split(b"\n")):
        if offset % count != index:
            continue
        line = raw.rstrip(b"\r")
        if line.strip():
            lines.append(Line(offset + 1, line))
    return lines


class ManifestSource:
    """This task's share of a manifest; thread-safe (the runner prefetches on another thread)."""

    def __init__(
        self,
        uri: str,
        lines: list[Line],
        max_attempts: int = ProducerSettings.manifest_max_attempts,
    ) -> None:
        self.uri = uri
        self.total = len(lines)
        self.done = 0
        self._prefix = message_id_prefix(uri)
        self._queue: deque[Line] = deque(lines)
        self._in_flight = 0
        self._given_up: list[Line] = []
        self._max_attempts = max_attempts
        self._closed = False
        self._cond = threading.Condition()
        self._last_log = 0.0

    @classmethod
    def open(cls, uri: str, store: ObjectStore, settings: Settings) -> ManifestSource:
        """Read the manifest and take this task's share. A missing or unreadable manifest is a
        configuration error: no task could do anything with it."""
        limit = settings.producer.manifest_max_bytes
        try:
            data = store.get_bytes(uri, limit)
        except ObjectTooLarge as exc:
            raise ConfigError(
                f"manifest {uri} is over MANIFEST_MAX_BYTES={limit}: split it into several "
                "manifests (one execution each) or raise the limit"
            ) from exc
        except AccessDenied as exc:
            raise ConfigError(f"manifest {uri}: {exc}") from exc
        if data is None:
            raise ConfigError(f"manifest {uri} does not exist (MANIFEST_URI / --manifest)")
        ident = settings.identity
        source = cls(
            uri,
            share(data, ident.task_index, ident.task_count),
            settings.producer.manifest_max_attempts,
        )
        logs.event(
            log,
            "manifest.opened",
            manifest=uri,
            task_index=ident.task_index,
            task_count=ident.task_count,
            total=source.total,
            bytes=len(data),
        )
        return source

    @property
    def finite(self) -> bool:
        return True

    def receive(self, timeout_s: float) -> Delivery | None:
        """The next line, or ``None`` once every line of the share is settled.

        While lines are still in flight (one may yet be nacked), this waits for them rather
        than answer ``None`` after ``timeout_s``: for a finite source ``None`` means "done".
        """
        with self._cond:
            while not self._queue and self._in_flight and not self._closed:
                self._cond.wait(timeout_s)
            if not self._queue or self._closed:
                if self._given_up and not self._closed:
                    numbers = ", ".join(str(line.number) for line in self._given_up[:20])
                    raise ServiceUnavailable(
                        f"manifest {self.uri}: line(s) {numbers} failed {self._max_attempts} "
                        "attempts with transient errors; exiting non-zero so that a task "
                        "retry resumes them"
                    )
                return None
            line = self._queue.popleft()
            line.attempts += 1
            self._in_flight += 1
        return Delivery(
            message_id=line_message_id(self._prefix, line.number, line.data),
            data=line.data,
            attributes={"manifest": self.uri, "line": str(line.number)},
            delivery_attempt=line.attempts,
            handle=line,
            source="manifest",
        )

    def ack(self, delivery: Delivery) -> None:
        with self._cond:
            self._in_flight -= 1
            self.done += 1
            self._cond.notify_all()
            now = time.monotonic()
            tenth = max(1, self.total // 10)
            if self.done % tenth == 0 or now - self._last_log >= PROGRESS_EVERY_S:
                self._last_log = now
                logs.event(
                    log, "manifest.progress", manifest=self.uri, done=self.done, total=self.total
                )

    def nack(self, delivery: Delivery) -> None:
        line = delivery.handle
        assert isinstance(line, Line)
        with self._cond:
            self._in_flight -= 1
            if line.attempts >= self._max_attempts:
                self._given_up.append(line)
            else:
                self._queue.append(line)
            self._cond.notify_all()
        logs.event(
            log,
            "manifest.retry_later",
            logging.WARNING,
            manifest=self.uri,
            line=line.number,
            attempts=line.attempts,
        )

    def watch(self, on_death: OnDeath) -> None:
        """Nothing runs in the background here."""

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        left = self.total - self.done
        logs.event(
            log,
            "manifest.closed",
            manifest=self.uri,
            done=self.done,
            total=self.total,
            unfinished=left,
        )
