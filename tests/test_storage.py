"""The GCS object store against fake-gcs-server: write-once semantics and read limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cloud import PROJECT, Cloud
from worker.adapters.storage.base import ObjectNotFound, ObjectTooLarge
from worker.adapters.storage.gcs import GcsStore


@pytest.fixture
def store(cloud: Cloud) -> GcsStore:
    return GcsStore(PROJECT, retry_budget_s=5)


def test_create_once_tells_another_writer_from_a_repeat_of_our_own(
    cloud: Cloud, store: GcsStore
) -> None:
    uri = f"gs://{cloud.bucket}/r/result.json"
    first = store.put_bytes_once(uri, b'{"a": 1}', "application/json")
    assert first is not None and first.size == 8 and first.content_type == "application/json"
    # The same bytes again (a retry whose first try landed) still count as ours...
    again = store.put_bytes_once(uri, b'{"a": 1}', "application/json")
    assert again is not None and again.generation == first.generation
    # ...different bytes mean someone else created it first: nothing is overwritten.
    assert store.put_bytes_once(uri, b'{"a": 2}', "application/json") is None
    assert cloud.gcs.bucket(cloud.bucket).blob("r/result.json").download_as_bytes() == b'{"a": 1}'


def test_files_are_write_once_and_describe_what_is_stored(
    cloud: Cloud, store: GcsStore, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(b"first attempt")
    b.write_bytes(b"second attempt, other bytes")
    uri = f"gs://{cloud.bucket}/job/out.png"
    first = store.put_file_once(uri, a, "image/png")
    second = store.put_file_once(uri, b, "image/png")
    assert second == first and second.size == len(b"first attempt")


def test_reads_are_bounded_and_missing_objects_are_named(
    cloud: Cloud, store: GcsStore, tmp_path: Path
) -> None:
    cloud.gcs.bucket(cloud.bucket).blob("big").upload_from_string(b"x" * 100)
    assert store.get_bytes(f"gs://{cloud.bucket}/nothing", 10) is None
    with pytest.raises(ObjectTooLarge):
        store.get_bytes(f"gs://{cloud.bucket}/big", 10)
    with pytest.raises(ObjectTooLarge, match="100 bytes; the limit is 50"):
        store.download(f"gs://{cloud.bucket}/big", tmp_path / "x", 50)
    with pytest.raises(ObjectNotFound):
        store.download(f"gs://{cloud.bucket}/nothing", tmp_path / "x", 50)
    assert store.download(f"gs://{cloud.bucket}/big", tmp_path / "x", 100) == 100


def test_the_one_copy_multipart_body_is_the_librarys_byte_for_byte() -> None:
    import importlib
    import random

    from worker.adapters.storage import multipart

    _upload = importlib.import_module("google.cloud.storage._media._upload")
    original = _upload.construct_multipart_request
    if original is multipart.build:  # a GcsStore already installed it: compare with a fresh copy
        original = importlib.reload(_upload).construct_multipart_request
        multipart.install()
    data = random.Random(7).randbytes(300_000)
    metadata = {"name": "out.png", "crc32c": "AAAAAA==", "ifGenerationMatch": 0}
    state = random.getstate()
    want = original(data, metadata, "image/png")
    random.setstate(state)  # the same boundary (get_boundary draws from random)
    assert multipart.build(data, metadata, "image/png") == want
    assert multipart.install() and _upload.construct_multipart_request is multipart.build
