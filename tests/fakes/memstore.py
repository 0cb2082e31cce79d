"""An in-memory ``ObjectStore`` with GCS's create-once semantics, for property tests.

Hypothesis runs hundreds of examples per test; against fake-gcs-server each would need a fresh
bucket and real requests. ``tests/test_storage.py`` runs the same checks against this store and
``GcsStore`` on fake-gcs-server, so the two agree on what the worker relies on.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field
from pathlib import Path

from worker.adapters.storage import uri as gsuri
from worker.adapters.storage.base import ObjectInfo, ObjectNotFound, ObjectTooLarge


@dataclass
class Stored:
    data: bytes
    content_type: str
    generation: int


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


@dataclass
class MemoryStore:
    objects: dict[str, Stored] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)  # every URI written, in order
    _generation: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _info(self, uri: str, stored: Stored) -> ObjectInfo:
        return ObjectInfo(
            uri, len(stored.data), stored.content_type, None, _md5(stored.data), stored.generation
        )

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
        created = self._create(uri, data, content_type)
        if created is not None:
            return created
        stored = self.objects[uri]
        return self._info(uri, stored) if stored.data == data else None

    def put_file_once(self, uri: str, path: Path, content_type: str) -> ObjectInfo:
        created = self._create(uri, path.read_bytes(), content_type)
        return created if created is not None else self._info(uri, self.objects[uri])

    def get_bytes(self, uri: str, max_bytes: int) -> bytes | None:
        stored = self.objects.get(uri)
        if stored is None:
            return None
        if len(stored.data) > max_bytes:
            raise ObjectTooLarge(f"{uri} is larger than {max_bytes} bytes", stored.data[:max_bytes])
        return stored.data

    def download(self, uri: str, dest: Path, max_bytes: int) -> int:
        stored = self.objects.get(uri)
        if stored is None:
            raise ObjectNotFound(f"{uri} does not exist")
        if len(stored.data) > max_bytes:
            raise ObjectTooLarge(f"{uri} is {len(stored.data)} bytes; the limit is {max_bytes}")
        dest.write_bytes(stored.data)
        return len(stored.data)

    def stat(self, uri: str) -> ObjectInfo | None:
        stored = self.objects.get(uri)
        return None if stored is None else self._info(uri, stored)

    def list(self, prefix: str, limit: int) -> list[str]:
        with self._lock:
            return sorted(u for u in self.objects if u.startswith(prefix))[:limit]


__all__ = ["MemoryStore"]
