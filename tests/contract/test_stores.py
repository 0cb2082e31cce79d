"""``ObjectStore``: create-once writes, generations, checksums, bounded reads, listing; memory
and fake-gcs-server alike."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import google_crc32c
import pytest

from worker.adapters.storage.base import ObjectNotFound, ObjectStore, ObjectTooLarge


def md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def crc32c(data: bytes) -> str:
    checksum = google_crc32c.Checksum(data)  # type: ignore[no-untyped-call]
    return base64.b64encode(checksum.digest()).decode()  # type: ignore[no-untyped-call]


def test_create_once_tells_another_writer_from_a_repeat_of_our_own(
    store_and_bucket: tuple[ObjectStore, str],
) -> None:
    store, bucket = store_and_bucket
    uri = f"gs://{bucket}/r/result.json"
    first = store.put_bytes_once(uri, b'{"a": 1}', "application/json")
    assert first is not None and first.uri == uri
    assert (first.size, first.content_type) == (8, "application/json")
    assert (first.md5, first.crc32c) == (md5(b'{"a": 1}'), crc32c(b'{"a": 1}'))
    assert isinstance(first.generation, int) and first.generation > 0
    # The same bytes again (a retry whose first try landed) still count as ours...
    again = store.put_bytes_once(uri, b'{"a": 1}', "application/json")
    assert again is not None and again.generation == first.generation
    # ...different bytes mean someone else created it first (412): nothing is overwritten.
    assert store.put_bytes_once(uri, b'{"a": 2}', "application/json") is None
    assert store.get_bytes(uri, 100) == b'{"a": 1}'
    assert store.stat(uri) == first


def test_files_are_write_once_and_describe_what_is_stored(
    store_and_bucket: tuple[ObjectStore, str], tmp_path: Path
) -> None:
    store, bucket = store_and_bucket
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"first attempt")
    b.write_bytes(b"second attempt, other bytes")
    uri = f"gs://{bucket}/job/out.png"
    first = store.put_file_once(uri, a, "image/png")
    assert (first.size, first.content_type, first.md5) == (13, "image/png", md5(b"first attempt"))
    second = store.put_file_once(uri, b, "image/png")
    assert second == first  # the stored object, not the new file
    assert store.get_bytes(uri, 100) == b"first attempt"


def test_each_new_object_gets_a_later_generation(
    store_and_bucket: tuple[ObjectStore, str],
) -> None:
    store, bucket = store_and_bucket
    generations = []
    for name in ("one", "two", "three"):
        info = store.put_bytes_once(f"gs://{bucket}/g/{name}", name.encode(), "text/plain")
        assert info is not None and info.generation is not None
        generations.append(info.generation)
    assert generations == sorted(generations) and len(set(generations)) == 3


def test_reads_are_bounded_and_missing_objects_are_named(
    store_and_bucket: tuple[ObjectStore, str], tmp_path: Path
) -> None:
    store, bucket = store_and_bucket
    big = f"gs://{bucket}/big"
    store.put_bytes_once(big, b"x" * 100, "application/octet-stream")
    assert store.get_bytes(f"gs://{bucket}/nothing", 10) is None
    assert store.stat(f"gs://{bucket}/nothing") is None
    with pytest.raises(ObjectTooLarge) as too_large:
        store.get_bytes(big, 10)
    assert too_large.value.head == b"x" * 10
    assert store.get_bytes(big, 100) == b"x" * 100
    with pytest.raises(ObjectTooLarge, match="100 bytes; the limit is 50"):
        store.download(big, tmp_path / "x", 50)
    with pytest.raises(ObjectNotFound):
        store.download(f"gs://{bucket}/nothing", tmp_path / "x", 50)
    assert store.download(big, tmp_path / "x", 100) == 100
    assert (tmp_path / "x").read_bytes() == b"x" * 100


def test_listing_is_sorted_bounded_and_by_prefix(
    store_and_bucket: tuple[ObjectStore, str],
) -> None:
    store, bucket = store_and_bucket
    for key in ("a/2", "a/1", "a/3/x", "ab/1", "b/1"):
        store.put_bytes_once(f"gs://{bucket}/{key}", b"-", "text/plain")
    assert store.list(f"gs://{bucket}/a/", 10) == [
        f"gs://{bucket}/a/1",
        f"gs://{bucket}/a/2",
        f"gs://{bucket}/a/3/x",
    ]
    assert store.list(f"gs://{bucket}/a/", 2) == [f"gs://{bucket}/a/1", f"gs://{bucket}/a/2"]
    assert store.list(f"gs://{bucket}/a", 10)[-1] == f"gs://{bucket}/ab/1"
    assert store.list(f"gs://{bucket}/none/", 10) == []


def test_uris_that_name_no_object_are_refused_before_any_request(
    store_and_bucket: tuple[ObjectStore, str],
) -> None:
    store, bucket = store_and_bucket
    for bad in ("s3://x/y", f"gs://{bucket}/", f"gs://{bucket}", "gs://B/k"):
        with pytest.raises(ValueError):
            store.put_bytes_once(bad, b"-", "text/plain")
        with pytest.raises(ValueError):
            store.stat(bad)
