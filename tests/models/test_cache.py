"""The model cache: reuse, LRU eviction under a small cap, pins of the running and prefetched
jobs, one download for concurrent asks, corrupt files, dead processes, gs:// generations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import storage

from tests.modelhost import Certs, File, ModelHost
from tests.models.helpers import NEVER, KiB, blob, fetcher, sha, spec
from worker.errors import ErrorType, JobFailed, Transient
from worker.local.emulators import Emulator
from worker.models.cache import ModelCache

REPO = Path(__file__).resolve().parents[2]


def serve(host: ModelHost, count: int, size: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(count):
        data = blob(size, 100 + i)
        host.files[f"/m{i}"] = File(data)
        out.append((host.url(f"/m{i}"), data))
    return out


def cached(cache_dir: Path) -> set[str]:
    return {p.name for p in (cache_dir / ".cas" / "blobs").iterdir() if len(p.name) == 64}


def test_lru_eviction_under_a_small_cap(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    models = serve(model_host, 4, 100 * KiB)
    # Room for three models (and the cache's own small files), not four.
    clock = iter(range(1000))  # an ordered, readable LRU
    f = fetcher(
        tmp_path,
        model_certs,
        (model_host.netloc,),
        cache_bytes=330 * KiB,
        clock=lambda: float(next(clock)),
    )
    for i in (0, 1, 2, 0):  # m0 is used again: m1 is now the least recently used
        f.fetch((spec(*models[i]),), NEVER).release()
    f.fetch((spec(*models[3]),), NEVER).release()
    assert cached(tmp_path) == {sha(models[i][1]) for i in (0, 2, 3)}
    assert f.cache.usage() <= f.cache.max_bytes
    got = f.fetch((spec(*models[1]),), NEVER)  # m2 is the least recently used now
    assert got.records[0]["source"] == "download"
    assert cached(tmp_path) == {sha(models[i][1]) for i in (0, 1, 3)}


def test_models_in_use_are_never_evicted(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    models = serve(model_host, 3, 100 * KiB)
    f = fetcher(tmp_path, model_certs, (model_host.netloc,), cache_bytes=230 * KiB, wait_s=10)
    running = f.fetch((spec(*models[0]),), NEVER)  # the running job's model
    prefetched = f.fetch((spec(*models[1]),), NEVER)  # the prefetched job's
    started = time.monotonic()
    threading.Timer(0.6, running.release).start()  # the running job is settled a bit later
    third = f.fetch((spec(*models[2]),), NEVER)  # waited for room, then evicted m0 only
    assert time.monotonic() - started >= 0.5
    assert cached(tmp_path) == {sha(models[1][1]), sha(models[2][1])}
    assert prefetched.files[0].path.read_bytes() == models[1][1]
    third.release()
    prefetched.release()


def test_what_can_never_fit_is_a_model_error_with_the_sizes(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    models = serve(model_host, 2, 100 * KiB)
    f = fetcher(tmp_path, model_certs, (model_host.netloc,), cache_bytes=150 * KiB)
    with pytest.raises(JobFailed) as info:
        f.fetch((spec(*models[0]), spec(*models[1], name="y.safetensors")), NEVER)
    message = info.value.message
    assert info.value.error_type is ErrorType.MODEL_ERROR and message.startswith("models[1]")
    assert f"needs {100 * KiB} bytes; the model cache holds {150 * KiB} (MODEL_CACHE_MAX_GB)" in (
        message
    )
    assert f.cache.pinned("x") == set()  # the failed job let go of its first model
    busy = fetcher(
        tmp_path / "b", model_certs, (model_host.netloc,), cache_bytes=150 * KiB, wait_s=0.3
    )
    held = busy.fetch((spec(*models[0]),), NEVER)
    with pytest.raises(Transient, match="waited 0 s for other jobs"):
        busy.fetch((spec(*models[1]),), NEVER)  # would fit once the other job lets go
    held.release()


def test_concurrent_asks_for_one_model_download_it_once(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    data = blob(400 * KiB, 7)
    model_host.files["/shared"] = File(data, stall_s=0.2)
    # Two fetchers on one directory: two processes' worth of caches and holders.
    fetchers = [fetcher(tmp_path, model_certs, (model_host.netloc,)) for _ in range(2)]
    results: list[object] = []
    threads = [
        threading.Thread(
            target=lambda f=f: results.append(
                f.fetch((spec(model_host.url("/shared"), data),), NEVER)
            )
        )
        for f in fetchers * 2
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    sources = sorted(r.records[0]["source"] for r in results)  # type: ignore[attr-defined]
    assert sources == ["cache", "cache", "cache", "download"]
    assert model_host.seen[0].headers["range"] == "bytes=0-65535"
    assert model_host.gets("/shared") == 7  # one download: the first chunk and 6 ranges


def test_a_corrupt_or_truncated_cached_file_is_fetched_again(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    data = blob(100 * KiB, 9)
    model_host.files["/m"] = File(data)
    f = fetcher(tmp_path, model_certs, (model_host.netloc,))
    first = f.fetch((spec(model_host.url("/m"), data),), NEVER)
    path = first.files[0].path
    first.release()
    os.truncate(path, 1000)  # truncated: the size no longer matches its record
    again = f.fetch((spec(model_host.url("/m"), data),), NEVER)
    assert again.records[0]["source"] == "download" and path.read_bytes() == data
    again.release()
    # Same size, same mtime: only hashing sees it; a new process hashes a blob before its first
    # use (this one trusts what it verified).
    st = path.stat()
    with path.open("r+b") as fh:
        fh.write(b"\xff" * 10)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    other = fetcher(tmp_path, model_certs, (model_host.netloc,))
    fresh = other.fetch((spec(model_host.url("/m"), data),), NEVER)
    assert fresh.records[0]["source"] == "download" and path.read_bytes() == data
    assert model_host.gets("/m") == 6  # three downloads of two requests each


def test_a_dead_process_pins_nothing(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    models = serve(model_host, 2, 100 * KiB)
    f = fetcher(tmp_path, model_certs, (model_host.netloc,), cache_bytes=150 * KiB, wait_s=0.5)
    mine = f.fetch((spec(*models[0]),), NEVER)  # pinned, and this "process" goes on living
    # Another process pins m0 too, then dies without a word (SIGKILL).
    script = (
        "import sys, time; from pathlib import Path; from worker.models.cache import ModelCache;"
        f"c = ModelCache(Path({str(tmp_path)!r}), 10**9); c.acquire({sha(models[0][1])!r}, 'o');"
        "print('pinned', flush=True); time.sleep(60)"
    )
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline().strip() == b"pinned"
    mine.release()  # this process lets go
    with pytest.raises(Transient):  # the child's pin still holds m0
        f.fetch((spec(*models[1]),), NEVER)
    child.send_signal(signal.SIGKILL)
    child.wait()
    got = f.fetch((spec(*models[1]),), NEVER)  # the dead child's pin is gone: m0 evicted
    assert got.records[0]["source"] == "download"
    assert cached(tmp_path) == {sha(models[1][1])}
    holders = {p.stem for p in (tmp_path / ".cas" / "holders").glob("*.lock")}
    assert len(holders) == 1  # the child's holder files were swept


# -- gs:// models on fake-gcs-server --------------------------------------------------------------


@pytest.fixture
def bucket(gcs_emulator: Emulator) -> Iterator[storage.Bucket]:
    b = storage.Client(project="test-project").create_bucket(f"models-{uuid.uuid4().hex[:10]}")
    yield b


def test_gs_models_by_generation_and_by_hash(
    tmp_path: Path, bucket: storage.Bucket, model_certs: Certs
) -> None:
    data, other = blob(300 * KiB, 11), blob(50 * KiB, 12)
    bucket.blob("loras/a.safetensors").upload_from_string(data)
    uri = f"gs://{bucket.name}/loras/a.safetensors"
    f = fetcher(tmp_path, model_certs, chunk=64 * KiB)
    first = f.fetch((spec(uri, name="a.safetensors", sha256=None),), NEVER)
    assert first.files[0].sha256 == sha(data) and first.records[0]["source"] == "download"
    again = f.fetch((spec(uri, name="b.safetensors", sha256=None),), NEVER)
    assert again.records[0]["source"] == "cache"  # the same generation: no download
    assert again.files[0].path == first.files[0].path
    by_hash = f.fetch((spec(uri, data),), NEVER)  # with its hash: found without a download
    assert by_hash.records[0]["source"] == "cache"
    bucket.blob("loras/a.safetensors").upload_from_string(other)  # a new generation
    changed = f.fetch((spec(uri, name="a.safetensors", sha256=None),), NEVER)
    assert changed.records[0]["source"] == "download" and changed.files[0].sha256 == sha(other)
    for wrong, expected in [
        (spec(f"gs://{bucket.name}/missing.safetensors", sha256=None), "does not exist"),
        (spec(uri, sha256="1" * 64), f"its SHA-256 is {sha(other)}, not the {'1' * 64}"),
    ]:
        with pytest.raises(JobFailed) as info:
            f.fetch((wrong,), NEVER)
        assert info.value.error_type is ErrorType.MODEL_ERROR and expected in info.value.message
    small = fetcher(tmp_path / "s", model_certs, max_model_bytes=10 * KiB)
    with pytest.raises(JobFailed, match="MAX_MODEL_BYTES"):
        small.fetch((spec(uri, sha256=None),), NEVER)
    assert not any((tmp_path / "s" / ".cas" / "tmp").iterdir())


def test_manifest_files_are_shared_not_copied(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    data = blob(20 * KiB, 13)
    manifest_file = tmp_path / "checkpoints" / "base.safetensors"
    manifest_file.parent.mkdir(parents=True)
    manifest_file.write_bytes(data)
    cache = ModelCache(tmp_path, 10**9)
    assert cache.adopt(manifest_file, sha(data))
    assert cache.blob_path(sha(data)).stat().st_ino == manifest_file.stat().st_ino
    assert cache.usage() < len(data) + 4 * KiB  # one inode, counted once
    f = fetcher(tmp_path, model_certs, ("nowhere.test",))
    got = f.fetch((spec("https://nowhere.test/base.safetensors", data),), NEVER)
    assert got.records[0]["source"] == "cache"  # no host was asked
    got.release()
    # A manifest file's blob would free nothing if evicted: it is never chosen, and a model
    # that needs its room is refused.
    extra = blob(10 * KiB, 14)
    model_host.files["/extra"] = File(extra)
    tight = fetcher(tmp_path, model_certs, (model_host.netloc,), cache_bytes=25 * KiB)
    with pytest.raises(JobFailed, match="can't be evicted"):
        tight.fetch((spec(model_host.url("/extra"), extra),), NEVER)
    assert cache.blob_path(sha(data)).exists() and manifest_file.read_bytes() == data
    dest = tmp_path / "elsewhere.safetensors"
    assert cache.link_out(sha(data), dest) and dest.read_bytes() == data
