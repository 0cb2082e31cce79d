"""The model manifest and its sync into a local cache, against fake-gcs-server."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
from google.cloud import storage

from worker.config import Settings
from worker.errors import ConfigError
from worker.local.emulators import Emulator
from worker.models import manifest, verify
from worker.models.sync import ModelFetchError, ModelSync

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def crc(data: bytes) -> str:
    value: Any = google_crc32c
    return base64.b64encode(value.Checksum(data).digest()).decode()


@pytest.fixture
def bucket(gcs_emulator: Emulator) -> Iterator[storage.Bucket]:
    client = storage.Client(project="test-project")
    b = client.create_bucket(f"models-{uuid.uuid4().hex[:10]}")
    yield b


def put(bucket: storage.Bucket, key: str, data: bytes) -> str:
    bucket.blob(key).upload_from_string(data)
    return f"gs://{bucket.name}/{key}"


def sync_for(entries: list[dict[str, Any]], cache: Path, chunk_mib: int = 1) -> ModelSync:
    parsed = manifest.parse(json.dumps({"models": entries}))
    return ModelSync(parsed, cache, chunk_mib * MiB, workers=4)


def test_parallel_ranged_download_then_verified_files_are_skipped(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    big = os.urandom(5 * MiB + 123)  # 6 ranged chunks of 1 MiB
    small = b"tiny vae"
    entries = [
        {
            "source": put(bucket, "m/big.safetensors", big),
            "folder": "checkpoints",
            "size": len(big),
            "sha256": sha(big),
        },
        {
            "source": put(bucket, "m/vae.pt", small),
            "folder": "vae",
            "name": "sub/v.pt",
            "size": len(small),
            "crc32c": crc(small),
        },
    ]
    sync = sync_for(entries, tmp_path)

    assert [e.relpath for e in sync.missing()] == ["checkpoints/big.safetensors", "vae/sub/v.pt"]
    sync.run()

    assert (tmp_path / "checkpoints" / "big.safetensors").read_bytes() == big
    assert (tmp_path / "vae" / "sub" / "v.pt").read_bytes() == small
    assert sync.missing() == [] and not list(tmp_path.rglob("*.partial"))
    assert sync.folders() == {"checkpoints": tmp_path / "checkpoints", "vae": tmp_path / "vae"}
    # Verified: a second sync neither downloads nor hashes (the object is gone, still fine).
    bucket.blob("m/big.safetensors").delete()
    sync_for(entries, tmp_path).run()


def test_a_file_that_changed_locally_is_fetched_again(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    entries = [
        {
            "source": put(bucket, "x.ckpt", data),
            "folder": "checkpoints",
            "size": len(data),
            "sha256": sha(data),
        }
    ]
    sync_for(entries, tmp_path).run()
    target = tmp_path / "checkpoints" / "x.ckpt"
    target.write_bytes(b"\0" * len(data))  # same size, different bytes: the marker no longer fits

    sync_for(entries, tmp_path).run()

    assert target.read_bytes() == data


def test_a_corrupt_download_is_caught_and_never_installed(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    expected, served = os.urandom(2 * MiB), os.urandom(2 * MiB)  # same size, other bytes
    entries = [
        {
            "source": put(bucket, "bad.safetensors", served),
            "folder": "loras",
            "size": len(expected),
            "sha256": sha(expected),
        }
    ]

    with pytest.raises(ModelFetchError, match=f"sha256 is {sha(served)}, the manifest says"):
        sync_for(entries, tmp_path).run()

    assert not (tmp_path / "loras" / "bad.safetensors").exists()
    assert not list(tmp_path.rglob("*.partial"))


def test_size_mismatch_and_absent_objects_say_what_to_fix(
    bucket: storage.Bucket, tmp_path: Path
) -> None:
    data = b"12345"
    wrong_size = [
        {"source": put(bucket, "s.pt", data), "folder": "vae", "size": 6, "sha256": sha(data)}
    ]
    with pytest.raises(ModelFetchError, match="is 5 bytes, the manifest says 6"):
        sync_for(wrong_size, tmp_path).run()
    absent = [
        {"source": f"gs://{bucket.name}/nope.pt", "folder": "vae", "size": 5, "sha256": sha(data)}
    ]
    with pytest.raises(ModelFetchError, match="does not exist"):
        sync_for(absent, tmp_path).run()


def test_manifest_from_gcs_through_settings(bucket: storage.Bucket, tmp_path: Path) -> None:
    data = b"weights"
    doc = [
        {
            "source": put(bucket, "w.safetensors", data),
            "folder": "checkpoints",
            "size": len(data),
            "sha256": sha(data),
        }
    ]
    uri = put(bucket, "manifest.json", json.dumps(doc).encode())
    settings = Settings.from_env({"MODEL_MANIFEST": uri, "WORK_DIR": str(tmp_path)})

    sync = ModelSync.from_settings(settings)

    assert sync is not None and sync.cache_dir == tmp_path / "models"
    fetch = sync.start()
    assert fetch.wait() >= 0
    assert verify.present(sync.cache_dir, sync.entries[0])


@pytest.mark.parametrize(
    ("doc", "expect"),
    [
        ("{", "not valid JSON"),
        ('{"models": {}}', "expected"),
        (
            '[{"source": "s3://b/k", "folder": "x", "size": 1, "sha256": "' + "a" * 64 + '"}]',
            "gs://bucket/path",
        ),
        (
            '[{"source": "gs://bkt/k", "folder": "Bad Folder", "size": 1, "sha256": "'
            + "a" * 64
            + '"}]',
            "ComfyUI model folder",
        ),
        (
            '[{"source": "gs://bkt/k", "folder": "vae", "name": "../x", "size": 1, "sha256": "'
            + "a" * 64
            + '"}]',
            "relative path",
        ),
        (
            '[{"source": "gs://bkt/k", "folder": "vae", "size": 0, "sha256": "' + "a" * 64 + '"}]',
            "size",
        ),
        ('[{"source": "gs://bkt/k", "folder": "vae", "size": 3}]', "needs a checksum"),
        ('[{"source": "gs://bkt/k", "folder": "vae", "size": 3, "sha256": "xyz"}]', "64 hex"),
    ],
)
def test_manifest_errors_name_the_entry_and_field(doc: str, expect: str) -> None:
    with pytest.raises(ConfigError, match="MODEL_MANIFEST") as caught:
        manifest.parse(doc)
    assert expect in str(caught.value)


def test_the_manifest_and_jobs_share_one_cache(bucket: storage.Bucket, tmp_path: Path) -> None:
    from worker.models.cache import ModelCache

    job_brought, listed = os.urandom(200_000), os.urandom(100_000)
    # A job brought this model before (its blob is in the cache); the manifest lists it too.
    cache = ModelCache(tmp_path, 10**9)
    tmp = cache.tmp_path("k")
    tmp.write_bytes(job_brought)
    cache.put(tmp, sha(job_brought), "a-job")
    entries = [
        {
            "source": f"gs://{bucket.name}/gone.safetensors",
            "folder": "loras",
            "size": len(job_brought),
            "sha256": sha(job_brought),
        },
        {
            "source": put(bucket, "m/base.safetensors", listed),
            "folder": "checkpoints",
            "size": len(listed),
            "sha256": sha(listed),
        },
    ]
    parsed = manifest.parse(json.dumps({"models": entries}))
    ModelSync(parsed, tmp_path, MiB, workers=2, cas_max_bytes=10**9).run()  # no object to download
    lora = tmp_path / "loras" / "gone.safetensors"
    assert lora.read_bytes() == job_brought
    assert lora.stat().st_ino == cache.blob_path(sha(job_brought)).stat().st_ino  # linked
    base = tmp_path / "checkpoints" / "base.safetensors"
    shared = cache.blob_path(sha(listed))  # the manifest's download is now a blob for jobs too
    assert shared.read_bytes() == listed and shared.stat().st_ino == base.stat().st_ino
    assert cache.acquire(sha(listed), "another-job") is not None
