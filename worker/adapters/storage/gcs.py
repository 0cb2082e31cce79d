"""``ObjectStore`` on Google Cloud Storage (or fake-gcs-server via STORAGE_EMULATOR_HOST).

The library's own retries are switched off (``retry=None``) so that ``worker.retry`` can log them at
WARNING and bound them. Each thread gets its own client: the library's HTTP session is not
documented as thread-safe, and the runner uploads and downloads from different threads.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import google.auth.exceptions
import requests
from google.api_core import exceptions as gexc
from google.cloud import storage

from worker import retry
from worker.adapters.storage import multipart
from worker.adapters.storage import uri as gsuri
from worker.adapters.storage.base import AccessDenied, ObjectInfo, ObjectNotFound, ObjectTooLarge

T = TypeVar("T")

# Per HTTP request (connect, read). Long enough for a slow chunk, short enough that a hung
# connection becomes a retry instead of a silent stall.
REQUEST_TIMEOUT = (10.0, 60.0)

RETRYABLE: tuple[type[BaseException], ...] = (
    gexc.ServerError,
    gexc.TooManyRequests,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    google.auth.exceptions.TransportError,
    ConnectionError,
    TimeoutError,
)


def _info(uri: str, blob: storage.Blob) -> ObjectInfo:
    return ObjectInfo(
        uri=uri,
        size=int(blob.size or 0),
        content_type=blob.content_type or "application/octet-stream",
        crc32c=blob.crc32c,
        md5=blob.md5_hash,
        generation=blob.generation,
    )


class GcsStore:
    def __init__(self, project: str | None, retry_budget_s: float) -> None:
        multipart.install()  # uploads under 8 MiB with one copy of the data, not a dozen
        self._project = project
        self._budget_s = retry_budget_s
        self._local = threading.local()

    def _client(self) -> storage.Client:
        client: storage.Client | None = getattr(self._local, "client", None)
        if client is None:
            client = storage.Client(project=self._project)
            self._local.client = client
        return client

    def _blob(self, uri: str) -> storage.Blob:
        bucket, key = gsuri.split(uri)
        return self._client().bucket(bucket).blob(key)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return retry.call(fn, what=what, budget_s=self._budget_s, retryable=RETRYABLE)
        except gexc.Forbidden as exc:
            raise AccessDenied(f"{what}: permission denied ({exc.message})") from exc

    def stat(self, uri: str) -> ObjectInfo | None:
        bucket, key = gsuri.split(uri)

        def get() -> storage.Blob | None:
            blob: storage.Blob | None = (
                self._client().bucket(bucket).get_blob(key, retry=None, timeout=REQUEST_TIMEOUT)
            )
            return blob

        blob = self._call(f"GCS stat {uri}", get)
        return None if blob is None else _info(uri, blob)

    def _create(
        self, uri: str, what: str, send: Callable[[storage.Blob], None]
    ) -> ObjectInfo | None:
        """Create ``uri`` with ``send`` under generation precondition 0.

        Returns what was stored (the upload's response carries it), or None if it existed.
        """
        blob = self._blob(uri)

        def attempt() -> ObjectInfo | None:
            try:
                send(blob)
            except gexc.PreconditionFailed:
                return None
            return _info(uri, blob)

        return self._call(f"{what} {uri}", attempt)

    def put_file_once(self, uri: str, path: Path, content_type: str) -> ObjectInfo:
        created = self._create(
            uri,
            "GCS upload",
            lambda blob: blob.upload_from_filename(
                str(path),
                content_type=content_type,
                if_generation_match=0,
                retry=None,
                timeout=REQUEST_TIMEOUT,
                checksum="crc32c",
            ),
        )
        if created is not None:
            return created
        # An earlier attempt of this job wrote it: describe what is stored.
        return self._existing(uri)

    def put_bytes_once(self, uri: str, data: bytes, content_type: str) -> ObjectInfo | None:
        created = self._create(
            uri,
            "GCS create",
            lambda blob: blob.upload_from_string(
                data,
                content_type=content_type,
                if_generation_match=0,
                retry=None,
                timeout=REQUEST_TIMEOUT,
                checksum="crc32c",
            ),
        )
        if created is not None:
            return created
        stored = self._existing(uri)
        # 412 also answers a retry whose first try did land (its response was lost): the
        # object is then ours, byte for byte. Only different bytes mean another writer won.
        ours = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
        return stored if stored.md5 == ours else None

    def _existing(self, uri: str) -> ObjectInfo:
        stored = self.stat(uri)
        if stored is None:
            raise ObjectNotFound(f"{uri} existed a moment ago and is gone")
        return stored

    def get_bytes(self, uri: str, max_bytes: int) -> bytes | None:
        blob = self._blob(uri)

        def read() -> bytes | None:
            try:
                data: bytes = blob.download_as_bytes(
                    end=max_bytes, retry=None, timeout=REQUEST_TIMEOUT
                )
            except gexc.NotFound:
                return None
            return data

        data = self._call(f"GCS read {uri}", read)
        if data is not None and len(data) > max_bytes:
            raise ObjectTooLarge(f"{uri} is larger than {max_bytes} bytes", head=data[:max_bytes])
        return data

    def list(self, prefix: str, limit: int) -> list[str]:
        bucket, _, key = prefix.removeprefix("gs://").partition("/")

        def names() -> list[str]:
            blobs = self._client().list_blobs(
                bucket, prefix=key, max_results=limit, retry=None, timeout=REQUEST_TIMEOUT
            )
            return [f"gs://{bucket}/{blob.name}" for blob in blobs]

        return self._call(f"GCS list {prefix}", names)

    def download(self, uri: str, dest: Path, max_bytes: int) -> int:
        info = self.stat(uri)
        if info is None:
            raise ObjectNotFound(f"{uri} does not exist")
        if info.size > max_bytes:
            raise ObjectTooLarge(f"{uri} is {info.size} bytes; the limit is {max_bytes}")
        blob = self._blob(uri)

        def fetch() -> None:
            try:
                blob.download_to_filename(
                    str(dest), retry=None, timeout=REQUEST_TIMEOUT, checksum="crc32c"
                )
            except gexc.NotFound as exc:
                raise ObjectNotFound(f"{uri} does not exist") from exc

        self._call(f"GCS download {uri}", fetch)
        return dest.stat().st_size
