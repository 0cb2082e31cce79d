"""The GCS store's one-copy upload body. What ``GcsStore`` does (write-once, generations, bounded
reads, listing) is checked against fake-gcs-server and the memory store alike in
``tests/contract/test_stores.py``."""

from __future__ import annotations


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
