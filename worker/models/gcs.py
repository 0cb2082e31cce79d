"""Reading model files and small documents from Cloud Storage (or fake-gcs-server).

Large files come down as parallel ranged reads (``transfer_manager.download_chunks_concurrently``
with threads): a single stream from GCS tops out far below what a Cloud Run task's network can
take. Each chunk is checked with CRC32C against the object's, and the combined checksum against
the whole object's.
"""

from __future__ import annotations

from pathlib import Path

from google.cloud import storage
from google.cloud.storage import transfer_manager

from worker.adapters.storage import uri as gsuri

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024  # a manifest or a warmup workflow


def client() -> storage.Client:
    return storage.Client()


def read_bytes(uri: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> bytes:
    """A small object's bytes; ``OSError`` when it can't be read (so callers treat it as I/O)."""
    bucket, key = gsuri.split(uri)
    try:
        blob = client().bucket(bucket).blob(key)
        data: bytes = blob.download_as_bytes(end=max_bytes)
    except Exception as exc:
        raise OSError(f"{uri}: {type(exc).__name__}: {exc}") from exc
    if len(data) > max_bytes:
        raise OSError(f"{uri} is larger than {max_bytes} bytes")
    return data


def object_size(gcs: storage.Client, uri: str) -> int | None:
    bucket, key = gsuri.split(uri)
    blob = gcs.bucket(bucket).get_blob(key)
    return None if blob is None else int(blob.size or 0)


def download(
    gcs: storage.Client,
    uri: str,
    dest: Path,
    chunk_bytes: int,
    workers: int,
    generation: int | None = None,
) -> None:
    """Download ``uri`` (that ``generation`` of it, if given) to ``dest`` with ``workers``
    parallel ranged requests."""
    bucket, key = gsuri.split(uri)
    blob = gcs.bucket(bucket).blob(key, generation=generation)
    blob.reload()
    if (blob.size or 0) <= chunk_bytes:
        blob.download_to_filename(str(dest), checksum="crc32c")
        return
    transfer_manager.download_chunks_concurrently(
        blob,
        str(dest),
        chunk_size=chunk_bytes,
        worker_type=transfer_manager.THREAD,
        max_workers=workers,
        crc32c_checksum=True,
    )
