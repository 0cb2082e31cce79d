"""An in-memory ``ObjectStore`` with GCS's create-once semantics, for property and loop tests.

Hypothesis runs hundreds of examples per test; against fake-gcs-server each would need a fresh
bucket and real requests. ``tests/contract/test_stores.py`` runs the same checks against this store
and ``GcsStore`` on fake-gcs-server, so the two agree on what the worker relies on: create-only
writes under generation precondition 0 (a repeat of our own bytes is ours, other bytes lose),
increasing generations, crc32c and md5 as GCS reports them, bounded reads, sorted listing.

``faults`` makes calls fail: ``faults["put_bytes_once"] = [error, ...]`` raises each in turn from
the next calls (any method name; ``worker.errors.Transient`` is what ``GcsStore`` raises once its
retries are spent, ``AccessDenied`` what a 403 becomes).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

import google_crc32c

from worker.adapters.storage import uri as gsuri
from worker.adapters.storage.base import ObjectInfo, ObjectNotFound, ObjectTooLarge


@dataclass
class Stored:
    data: bytes
    content_type: str
    generation: int


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _crc32c(data: bytes) -> str:
    checksum = google_crc32c.Checksum(data)  # type: ignore[no-untyped-call]
    return base64.b64encode(checksum.digest()).decode()  # type: ignore[no-untyped-call]


@dataclass
class MemoryStore:
    objects: dict[str, Stored] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)  # every URI written, in order
    faults: dict[str, list[BaseException]] = field(default_factory=dict)
    _generation: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _info(self, uri: str, stored: Stored) -> ObjectInfo:
        data = stored.data
        return ObjectInfo(
            uri, len(data), stored.content_type, _crc32c(data), _md5(data), stored.generation
        )

    def _fault(self, call: str) -> None:
        with self._lock:
            pending = self.faults.get(call)
            error = pending.pop(0) if pending else None
        if error is not None:
            raise error

    def _get(self, uri: str, call: str) -> Stored | None:
        self._fault(call)
        gsuri.split(uri)
        with self._lock:
            return self.objects.get(uri)

    def _create(self, uri: str, data: bytes, content_type: str) -> ObjectInfo | None:
        gsuri.split(uri)  # the same URI checks as GCS
        with self._lock:
            if uri in self.objects:
                return None
            self._generation += 1
            self.objects[uri] = Stored(data, content_type, self._generation)
            self.writes.append(uri)
            return self._info(uri, self.objects[uri])

    def put_bytes_once(self, uri: str, data: bytes, content_type: str) -> ObjectInfo | None:
        self._fault("put_bytes_once")
        created = self._create(uri, data, content_type)
        if created is not None:
            return created
        stored = self.objects[uri]
        return self._info(uri, stored) if stored.data == data else None

    def put_file_once(self, uri: str, path: Path, content_type: str) -> ObjectInfo:
        self._fault("put_file_once")
        created = self._create(uri, path.read_bytes(), content_type)
        return created if created is not None else self._info(uri, self.objects[uri])

    def get_bytes(self, uri: str, max_bytes: int) -> bytes | None:
        stored = self._get(uri, "get_bytes")
        if stored is None:
            return None
        if len(stored.data) > max_bytes:
            raise ObjectTooLarge(f"{uri} is larger than {max_bytes} bytes", stored.data[:max_bytes])
        return stored.data

    def download(self, uri: str, dest: Path, max_bytes: int) -> int:
        stored = self._get(uri, "download")
        if stored is None:
            raise ObjectNotFound(f"{uri} does not exist")
        if len(stored.data) > max_bytes:
            raise ObjectTooLarge(f"{uri} is {len(stored.data)} bytes; the limit is {max_bytes}")
        dest.write_bytes(stored.data)
        return len(stored.data)

    def stat(self, uri: str) -> ObjectInfo | None:
        stored = self._get(uri, "stat")
        return None if stored is None else self._info(uri, stored)

    def list(self, prefix: str, limit: int) -> list[str]:
        self._fault("list")
        with self._lock:
            return sorted(u for u in self.objects if u.startswith(prefix))[:limit]


__all__ = ["MemoryStore"]


@dataclass
class GatedStore(MemoryStore):
    """Holds the write of ``held`` (a URI suffix) until ``gate`` is set: a request that takes as
    long as a test wants."""

    held: str = "/a/.attempt-1.released"
    gate: threading.Event = field(default_factory=threading.Event)

    def put_bytes_once(self, uri: str, data: bytes, content_type: str) -> ObjectInfo | None:
        if uri.endswith(self.held):
            assert self.gate.wait(30), "the gate was never opened"
        return super().put_bytes_once(uri, data, content_type)
