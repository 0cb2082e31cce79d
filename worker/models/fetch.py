"""A job's models into the cache, pinned: from the cache when there, else downloaded, verified.

``ModelFetcher.fetch`` runs on the prefetch thread while the previous job executes (the GPU
never waits for a download; a job whose models aren't ready yet is not handed to the executor).
Per entry: the cache key is the SHA-256 when the job gives one, else the gs:// object's
generation (an immutable version); a cached blob is used as is (hashed once per process, and
again whenever its size, mtime or inode changed: a truncated or corrupt file is deleted and
fetched again, never loaded). Otherwise one download per key runs at a time across threads and
processes (the others wait and then find it cached), space is made by LRU eviction, the file is
written to a temporary name, checked (GCS: CRC32C per chunk and whole; SHA-256 against the job's
when given) and moved into place.

Failures become the job's: ``model_error`` (acked) for what the job got wrong, saying which
entry and why; ``Transient`` (nacked, redelivered with backoff, ``retries_exhausted`` on the
last attempt) for a 5xx, a timeout or a cut transfer that outlasted ``SERVICE_RETRY_S`` of
retries.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker import retry
from worker.config import Limits, Settings
from worker.errors import ErrorType, JobFailed, Stopped, Transient
from worker.message.bounded import safe_str
from worker.message.job import ModelFile, ModelSpec
from worker.models.cache import Blob, CacheBusy, CacheFull, ModelCache, alias_key, sha256_file
from worker.models.faults import ModelRefused, ModelUnreachable
from worker.models.https import HttpsPolicy
from worker.models.spec import redact
from worker.obs import logs

log = logging.getLogger(__name__)


@dataclass
class JobModels:
    """A prepared job's models, pinned in the cache until ``release()``."""

    files: tuple[ModelFile, ...]
    records: list[dict[str, Any]]  # for the result: folder, name, sha256, size, source, uri
    release: Callable[[], None] = field(repr=False)
    downloaded_bytes: int = 0


@dataclass(frozen=True)
class Source:
    """What is known of a model before fetching it: its size (None: not until the download)
    and its cache key."""

    key: str
    size: int | None
    generation: int | None = None
    alias: bool = False


class Downloader:
    """The two transports behind one face (``worker.models.gcsfetch``, ``worker.models.https``);
    google.cloud.storage is imported only when a gs:// model comes."""

    def __init__(self, https: HttpsPolicy, chunk_bytes: int, workers: int) -> None:
        self.https = https
        self._chunk_bytes = chunk_bytes
        self._workers = workers
        self._local = threading.local()

    def _gcs(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            from worker.models import gcs

            client = self._local.client = gcs.client()
        return client

    def describe(self, spec: ModelSpec) -> Source:
        if not spec.uri.startswith("gs://"):
            assert spec.sha256 is not None  # required for https at parse time
            return Source(spec.sha256, None)
        from worker.models import gcsfetch

        size, generation = gcsfetch.stat(self._gcs(), spec.uri)
        if spec.sha256 is not None:
            return Source(spec.sha256, size, generation)
        return Source(alias_key(f"{spec.uri}#{generation}"), size, generation, alias=True)

    def download(
        self,
        spec: ModelSpec,
        source: Source,
        dest: Any,
        max_bytes: int,
        on_size: Callable[[int], None],
        stop: threading.Event,
        timeout_s: float,
    ) -> str | None:
        """Download into ``dest``; the SHA-256 when it was computed on the way."""
        if spec.uri.startswith("gs://"):
            from worker.models import gcsfetch

            assert source.size is not None
            on_size(source.size)
            gcsfetch.download(
                self._gcs(), spec.uri, dest, source.generation, self._chunk_bytes, self._workers
            )
            return None
        from worker.models import https

        got = https.download(spec.uri, dest, max_bytes, self.https, stop, timeout_s, on_size)
        return got.sha256


class ModelFetcher:
    def __init__(
        self,
        cache: ModelCache,
        downloader: Downloader,
        limits: Limits,
        *,
        retry_s: float,
        fetch_timeout_s: float,
        wait_s: float,
    ) -> None:
        self.cache = cache
        self._downloader = downloader
        self._limits = limits
        self._retry_s = retry_s
        self._fetch_timeout_s = fetch_timeout_s
        self._wait_s = wait_s  # for room in the cache, while other jobs hold their models

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelFetcher | None:
        """The fetcher ``run`` uses; None when no model source is allowed (jobs can't bring
        models then: the parser refuses them). ``ConfigError`` for an unreadable token file."""
        limits, m, c, t = settings.limits, settings.models, settings.comfy, settings.timeouts
        if not (limits.allowed_model_buckets or limits.allowed_model_hosts):
            return None
        from worker.models import tokens
        from worker.models.netpolicy import AddressPolicy

        chunk = c.model_chunk_mib * 1024 * 1024
        policy = HttpsPolicy(
            limits.allowed_model_hosts,
            AddressPolicy.of(m.allowed_networks),
            tokens.load(m.host_tokens),
            chunk_bytes=chunk,
            workers=c.model_download_workers,
        )
        return cls(
            ModelCache(settings.model_cache_dir, m.cache_max_bytes),
            Downloader(policy, chunk, c.model_download_workers),
            limits,
            retry_s=t.service_retry_s,
            fetch_timeout_s=m.fetch_timeout_s,
            wait_s=t.job_s + t.service_retry_s,
        )

    def fetch(self, specs: tuple[ModelSpec, ...], stop: threading.Event) -> JobModels:
        """Every model of one job, pinned; raises ``JobFailed``, ``Transient`` or ``Stopped``."""
        owner = uuid.uuid4().hex
        files: list[ModelFile] = []
        records: list[dict[str, Any]] = []
        total = downloaded = 0
        try:
            for i, spec in enumerate(specs):
                where = f"models[{i}] ({spec.folder}/{spec.name} from {redact(spec.uri)})"
                budget = min(
                    self._limits.max_model_bytes, self._limits.max_total_model_bytes - total
                )
                blob, how = self._one(spec, owner, budget, stop, where)
                total += blob.size
                downloaded += blob.size if how == "download" else 0
                files.append(ModelFile(spec.folder, spec.name, blob.path, blob.sha256))
                records.append(
                    {
                        "folder": spec.folder,
                        "name": spec.name,
                        "sha256": blob.sha256,
                        "size": blob.size,
                        "source": how,
                        "uri": redact(spec.uri),
                    }
                )
        except BaseException:
            self.cache.release(owner)
            raise
        return JobModels(tuple(files), records, lambda: self.cache.release(owner), downloaded)

    def _one(
        self, spec: ModelSpec, owner: str, budget: int, stop: threading.Event, where: str
    ) -> tuple[Blob, str]:
        try:
            source = self._call(where, lambda: self._downloader.describe(spec))
            if source.size is not None:
                _check_size(source.size, budget, self._limits, where)
            blob = self._cached(spec, source, owner, stop)
            if blob is not None:
                return blob, "cache"
            with self.cache.fetching(source.key, stop):
                blob = self._cached(spec, source, owner, stop)  # another fetch may have won
                if blob is not None:
                    return blob, "cache"
                return self._download(spec, source, owner, budget, stop, where), "download"
        except ModelRefused as exc:
            raise JobFailed(ErrorType.MODEL_ERROR, f"{where}: {exc}") from None
        except CacheFull as exc:
            raise JobFailed(ErrorType.MODEL_ERROR, f"{where}: {exc}") from None
        except CacheBusy as exc:
            raise Transient(f"{where}: {exc}") from None
        except OSError as exc:  # the cache's disk: full (ENOSPC) or unwritable
            raise JobFailed(
                ErrorType.MODEL_ERROR,
                f"{where}: the model cache could not store it ({exc.strerror or exc}); it holds "
                f"{self.cache.usage()} of {self.cache.max_bytes} bytes (MODEL_CACHE_MAX_GB)",
            ) from None

    def _cached(
        self, spec: ModelSpec, source: Source, owner: str, stop: threading.Event
    ) -> Blob | None:
        sha = spec.sha256 or self.cache.resolve(source.key)
        if sha is None:
            return None
        blob = self.cache.acquire(sha, owner)
        if blob is None or blob.trusted:
            return blob
        if sha256_file(blob.path, stop) == sha:  # first use in this process, or it changed
            self.cache.verified(blob)
            return blob
        logs.event(log, "models.corrupt", logging.WARNING, sha256=sha, path=str(blob.path))
        self.cache.discard(sha, owner)
        return None

    def _download(
        self, spec: ModelSpec, source: Source, owner: str, budget: int, stop: threading.Event,
        where: str,
    ) -> Blob:  # fmt: skip
        tmp = self.cache.tmp_path(source.key)
        started = time.monotonic()

        def on_size(size: int) -> None:
            _check_size(size, budget, self._limits, where)
            self.cache.reserve(source.key, size, owner, stop, self._wait_s)

        def attempt() -> str | None:
            return self._downloader.download(
                spec, source, tmp, budget, on_size, stop, self._fetch_timeout_s
            )

        try:
            sha = self._call(where, attempt) or sha256_file(tmp, stop)
            if spec.sha256 is not None and sha != spec.sha256:
                raise ModelRefused(
                    f"its SHA-256 is {sha}, not the {spec.sha256} the job gives: fix the hash "
                    "or the URI"
                )
            blob = self.cache.put(tmp, sha, owner, alias=source.key if source.alias else None)
        finally:
            tmp.unlink(missing_ok=True)
            self.cache.unreserve(source.key)
        seconds = time.monotonic() - started
        logs.event(
            log,
            "models.downloaded",
            model=f"{spec.folder}/{spec.name}",
            uri=redact(spec.uri),
            bytes=blob.size,
            seconds=round(seconds, 3),
            mib_per_s=round(blob.size / 2**20 / max(seconds, 1e-6), 1),
        )
        return blob

    def _call(self, where: str, fn: Callable[[], Any]) -> Any:
        """``fn`` with in-process retries of passing faults, then ``Transient``."""
        try:
            return retry.call(
                fn, what=f"fetching {where}", budget_s=self._retry_s, retryable=(ModelUnreachable,)
            )
        except Transient as exc:
            raise Transient(safe_str(exc, 1000)) from None


def _check_size(size: int, budget: int, limits: Limits, where: str) -> None:
    if size > budget:
        raise ModelRefused(
            f"it is {size} bytes, over what it may be: {limits.max_model_bytes} per model "
            f"(MAX_MODEL_BYTES) and {limits.max_total_model_bytes} for all of a job's "
            "(MAX_TOTAL_MODEL_BYTES)"
        )


__all__ = ["Downloader", "JobModels", "ModelFetcher", "Stopped"]
