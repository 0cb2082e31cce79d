"""A job's ``gs://`` model: its size and generation, then that generation's bytes, through the
manifest's parallel ranged downloader (``worker.models.gcs``, CRC32C-checked per chunk and
whole). GCS's answers become ``ModelRefused`` (404, 403) or ``ModelUnreachable`` (5xx, 429,
timeouts, a checksum that did not match in transit)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse

from worker.adapters.storage import uri as gsuri
from worker.adapters.storage.gcs import REQUEST_TIMEOUT, RETRYABLE
from worker.models import gcs
from worker.models.faults import ModelRefused, ModelUnreachable


def stat(client: Any, uri: str) -> tuple[int, int]:
    """(size, generation) of ``uri``."""
    bucket, key = gsuri.split(uri)
    with _faults(uri):
        blob = client.bucket(bucket).get_blob(key, retry=None, timeout=REQUEST_TIMEOUT)
    if blob is None:
        raise ModelRefused(f"{uri} does not exist")
    return int(blob.size or 0), int(blob.generation or 0)


def download(
    client: Any, uri: str, dest: Path, generation: int | None, chunk_bytes: int, workers: int
) -> None:
    with _faults(uri):
        gcs.download(client, uri, dest, chunk_bytes, workers, generation=generation or None)


@contextlib.contextmanager
def _faults(uri: str) -> Iterator[None]:
    try:
        yield
    except gexc.NotFound:
        raise ModelRefused(f"{uri} does not exist (or that generation is gone)") from None
    except gexc.Forbidden:
        raise ModelRefused(
            f"{uri}: access denied; grant the worker's service account "
            "roles/storage.objectViewer on the bucket"
        ) from None
    except (*RETRYABLE, DataCorruption, InvalidResponse) as exc:
        raise ModelUnreachable(f"{uri}: {type(exc).__name__}: {exc}"[:1000]) from None
