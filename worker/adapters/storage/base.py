"""The object-store seam (GCS in production, fake-gcs-server locally).

URIs are ``gs://bucket/key``. Implementations retry transient faults themselves and raise
``worker.errors.Transient`` once their retry budget is spent (``ServiceUnavailable`` when the store
can't be reached at all).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class ObjectInfo:
    uri: str
    size: int
    content_type: str
    crc32c: str | None
    md5: str | None
    generation: int | None


class ObjectNotFound(Exception):
    """The object does not exist (or the bucket doesn't)."""


class ObjectTooLarge(Exception):
    """The object is bigger than the caller allowed. ``head`` holds its first bytes when the
    read that found out had them (``get_bytes``)."""

    def __init__(self, message: str, head: bytes = b"") -> None:
        super().__init__(message)
        self.head = head


class AccessDenied(Exception):
    """The worker's identity may not read or write this object."""


class ObjectStore(Protocol):
    def put_file_once(self, uri: str, path: Path, content_type: str) -> ObjectInfo:
        """Upload ``path`` unless ``uri`` exists; return what is stored at ``uri`` either way.

        Outputs are write-once so that two attempts of one job never leave a ``result.json``
        that describes bytes another attempt replaced.
        """
        ...

    def put_bytes_once(self, uri: str, data: bytes, content_type: str) -> ObjectInfo | None:
        """Create ``uri`` with ``data`` only if it does not exist (generation precondition 0).

        Returns the new object's info, or ``None`` when another writer created it first.
        """
        ...

    def get_bytes(self, uri: str, max_bytes: int) -> bytes | None:
        """Read a small object; ``None`` when absent. Raises ``ObjectTooLarge``."""
        ...

    def download(self, uri: str, dest: Path, max_bytes: int) -> int:
        """Download to ``dest`` and return the size. Raises ``ObjectNotFound``,
        ``ObjectTooLarge``, ``AccessDenied``."""
        ...

    def stat(self, uri: str) -> ObjectInfo | None:
        """Metadata of ``uri``, or ``None`` when absent."""
        ...

    def list(self, prefix: str, limit: int) -> list[str]:
        """URIs of at most ``limit`` objects whose URI starts with ``prefix`` (``gs://b/k``)."""
        ...
