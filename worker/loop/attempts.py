"""Attempt records: what each execution attempt of a job leaves in the job's folder.

Markers (names are stable; docs/job-message.md lists them; status and cancel build on them):

- ``F/.attempt-<n>.json``: written (create-once) before attempt ``n`` starts executing; holds
  ``attempt``, ``job_id``, ``message_id``, ``delivery_attempt``, ``worker`` (execution, task
  index, host, pid), ``started_at`` (when written) and ``after``: the (``folder``, ``attempt``) of
  the job this process was running when it wrote the record, if any; the job starts only once
  that one ended.
- ``F/.attempt-<n>.released``: written (create-once) when attempt ``n`` ended without taking its
  process down, before the process starts anything else; holds ``outcome`` (``succeeded``,
  ``failed``, ``interrupted``, ``transient``, ``stopped``) and ``ended_at``.
- ``F/.cancel``: written (create-once) by ``cancel`` (``worker.record.cancel``): a job whose marker
  is found before it starts never runs; one found while it runs is interrupted
  (``worker.loop.cancelwatch``).

An attempt with a record, no release and no ``result.json`` ended with its process (a segfault
in a node, an OOM kill, a run that ignored its interrupt, a ``WorkerBroken`` error), unless its
``after`` attempt was not released either: then the process died while that one ran, and this
one never started. Hand-backs on purpose (SIGTERM, the task budget, a transient fault) are
released, so only real crashes count towards ``MAX_CRASHED_ATTEMPTS``.

Why the release must be durable before the next job starts: if job B crashed the process while
job A's release was still in flight, A (innocent, being recorded) would count a crash and B none.
That is one small write on the GPU's path per job; B's record was written during A's run. With
the executor in a process of its own (``EXECUTOR_PROCESS``, the default) B's crash ends that
process, and the worker's goes on to write A's release: then it is written beside B's run, off
the GPU's path (``worker.loop.executing``).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.adapters.storage.base import ObjectStore
from worker.config import Identity
from worker.errors import Cancelled, ErrorType, JobFailed, Transient
from worker.message import jsonsafe
from worker.message.bounded import clip

PREFIX = ".attempt-"
CANCEL = ".cancel"
_NAME = re.compile(r"\.attempt-(\d{1,6})\.(json|released)")
_LIST_LIMIT = 1000
_START_TRIES = 5  # a concurrent attempt that took our number makes us take the next one


@dataclass(frozen=True)
class History:
    """What earlier attempts left: the next free attempt number and the crashed ones."""

    next_attempt: int = 1
    crashed: tuple[int, ...] = ()
    cancelled: bool = False  # the folder holds a cancel marker


def record_uri(folder: str, attempt: int) -> str:
    return f"{folder}/{PREFIX}{attempt}.json"


def release_uri(folder: str, attempt: int) -> str:
    return f"{folder}/{PREFIX}{attempt}.released"


def cancel_uri(folder: str) -> str:
    return f"{folder}/{CANCEL}"


def history(store: ObjectStore, folder: str) -> History:
    """What the folder's markers say (one listing of its dot-names: attempts and ``.cancel``)."""
    started: set[int] = set()
    released: set[int] = set()
    cancelled = False
    for uri in store.list(f"{folder}/.", _LIST_LIMIT):
        name = uri[len(folder) + 1 :]  # a marker lies directly in the folder
        cancelled = cancelled or name == CANCEL
        match = _NAME.fullmatch(name)
        if match is not None:
            (started if match.group(2) == "json" else released).add(int(match.group(1)))
    numbers = started | released
    crashed = [n for n in sorted(started - released) if _ran(store, folder, n)]
    return History(
        next_attempt=max(numbers, default=0) + 1, crashed=tuple(crashed), cancelled=cancelled
    )


def cancelled_error(folder: str, *, running: bool = False) -> Cancelled:
    when = "while it ran: it was interrupted" if running else "before it started: it never ran"
    return Cancelled(f"cancelled by a cancel request ({cancel_uri(folder)}) {when}")


def _ran(store: ObjectStore, folder: str, attempt: int) -> bool:
    """Did unreleased attempt ``attempt`` start? Not if the job it waited for never ended."""
    after = _read(store, record_uri(folder, attempt)).get("after")
    if not isinstance(after, dict):
        return True
    before_folder, before = after.get("folder"), after.get("attempt")
    if not isinstance(before_folder, str) or not isinstance(before, int):
        return True
    return store.stat(release_uri(before_folder, before)) is not None


def crashed_error(store: ObjectStore, folder: str, crashed: tuple[int, ...]) -> JobFailed:
    """``worker_crashed``, naming each crashed attempt from its record."""
    described = []
    for n in crashed[-10:]:
        described.append(_describe(n, _read(store, record_uri(folder, n))))
    return JobFailed(
        ErrorType.WORKER_CRASHED,
        f"{len(crashed)} earlier attempts of this job ended with their worker process and no "
        f"result ({'; '.join(described)}): a node crashed the process (a segfault), it ran out "
        "of host memory and was killed, or it ignored an interrupt. It is not run again "
        "(MAX_CRASHED_ATTEMPTS); look for the cause in those workers' logs",
        details={"attempts": list(crashed), "folder": folder},
    )


def _read(store: ObjectStore, uri: str) -> dict[str, Any]:
    try:
        data = store.get_bytes(uri, 16 * 1024)
        doc = jsonsafe.loads(data.decode("utf-8")) if data is not None else None
    except (ValueError, UnicodeDecodeError):
        doc = None
    return doc if isinstance(doc, dict) else {}


def _describe(n: int, record: dict[str, Any]) -> str:
    worker = record.get("worker") if isinstance(record.get("worker"), dict) else {}
    assert isinstance(worker, dict)
    where = ", ".join(
        f"{k} {clip(str(worker[k]), 80)}"
        for k in ("execution", "task_index", "host", "pid")
        if worker.get(k) is not None
    )
    started = clip(str(record.get("started_at", "?")), 40)
    delivery = record.get("delivery_attempt")
    return f"attempt {n} (delivery {delivery}, started {started}{', ' + where if where else ''})"


class Markers:
    """Writes the markers of this process's attempts (see the module doc)."""

    def __init__(self, store: ObjectStore, identity: Identity) -> None:
        self._store = store
        self._worker = {
            "job": identity.job,
            "execution": identity.execution,
            "task_index": identity.task_index,
            "task_attempt": identity.task_attempt,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }

    def start(
        self,
        folder: str,
        attempt: int,
        *,
        job_id: str,
        message_id: str,
        delivery_attempt: int | None,
        after: tuple[str, int] | None = None,
    ) -> int:
        """Write the record of an attempt about to execute; return its number (the first free
        one from ``attempt`` on: another attempt may have taken that number meanwhile)."""
        for n in range(attempt, attempt + _START_TRIES):
            doc = {
                "attempt": n,
                "job_id": job_id,
                "message_id": message_id,
                "delivery_attempt": delivery_attempt,
                "worker": self._worker,
                "started_at": datetime.now(UTC).isoformat(),
                "after": {"folder": after[0], "attempt": after[1]} if after else None,
            }
            data = jsonsafe.dumps(doc)
            if self._store.put_bytes_once(record_uri(folder, n), data, "application/json"):
                return n
        raise Transient(
            f"{_START_TRIES} other attempts of this job started at the same moment; "
            "it is handed back to run later"
        )

    def cancel_requested(self, folder: str) -> bool:
        """Whether the job's cancel marker exists (one stat)."""
        return self._store.stat(cancel_uri(folder)) is not None

    def release(self, folder: str, attempt: int, outcome: str) -> None:
        """Mark attempt ``attempt`` as ended without taking the process down."""
        doc = {"outcome": outcome, "ended_at": datetime.now(UTC).isoformat()}
        self._store.put_bytes_once(
            release_uri(folder, attempt), jsonsafe.dumps(doc), "application/json"
        )
