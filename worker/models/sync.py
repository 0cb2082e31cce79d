"""Bring the manifest's models into the local cache before the first job.

Files already there and verified are skipped; others are downloaded to ``<name>.partial``,
verified against the manifest's size and checksum, and renamed into place, so a half-written or
corrupt file is never seen by ComfyUI. A download that fails verification is retried once (it
may have been damaged in transit) and then reported with both checksums.

The manifest shares the model cache of jobs' own models (``worker.models.cache``): an entry with
a ``sha256`` that a job already brought is linked from the cache instead of downloaded, and
each verified entry with a ``sha256`` is linked into the cache (a hard link, no copy), so a job
naming that hash needs no download.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from google.cloud import storage

from worker.config import Settings
from worker.errors import ConfigError, WorkerBroken
from worker.models import gcs, manifest, verify
from worker.models.cache import ModelCache
from worker.models.manifest import ModelEntry
from worker.obs import logs

log = logging.getLogger(__name__)
ATTEMPTS = 2


class ModelFetchError(WorkerBroken):
    """A model could not be fetched or did not match the manifest."""


def load_manifest(source: str) -> tuple[ModelEntry, ...]:
    try:
        raw = gcs.read_bytes(source) if source.startswith("gs://") else Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(f"MODEL_MANIFEST={source} can't be read: {exc}") from exc
    return manifest.parse(raw, f"MODEL_MANIFEST={source}")


class Fetch:
    """A running sync; ``wait()`` returns its seconds or raises what stopped it."""

    def __init__(self, sync: ModelSync) -> None:
        self._sync = sync
        self._error: BaseException | None = None
        self._seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="model-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._sync.run()
        except BaseException as exc:  # handed to the caller of wait()
            self._error = exc
        self._seconds = time.perf_counter() - started

    def wait(self) -> float:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._seconds


class ModelSync:
    def __init__(
        self,
        entries: tuple[ModelEntry, ...],
        cache_dir: Path,
        chunk_bytes: int,
        workers: int,
        cas_max_bytes: int | None = None,
    ) -> None:
        self.entries = entries
        self.cache_dir = cache_dir
        self._chunk_bytes = chunk_bytes
        self._workers = workers
        self._cas_max_bytes = cas_max_bytes  # share with jobs' model cache (None: don't)
        self._cas: ModelCache | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelSync | None:
        c = settings.comfy
        if c.model_manifest is None:
            return None
        cache_dir = settings.model_cache_dir
        return cls(
            load_manifest(c.model_manifest),
            cache_dir,
            c.model_chunk_mib * 1024 * 1024,
            c.model_download_workers,
            settings.models.cache_max_bytes,
        )

    def folders(self) -> dict[str, Path]:
        """ComfyUI model folders to register: each manifest folder inside the cache."""
        return {e.folder: self.cache_dir / e.folder for e in self.entries}

    def missing(self) -> list[ModelEntry]:
        """Entries not in the cache at their size (no hashing: the quick pre-flight check)."""
        return [e for e in self.entries if not verify.present(self.cache_dir, e)]

    def start(self) -> Fetch:
        return Fetch(self)

    def run(self) -> None:
        started = time.perf_counter()
        fetched = skipped = 0
        gcs_client: storage.Client | None = None
        if self._cas_max_bytes is not None:
            self._cas = ModelCache(self.cache_dir, self._cas_max_bytes)
        try:
            for entry in self.entries:
                if self._verified(entry) or self._from_cache(entry):
                    skipped += 1
                else:
                    gcs_client = gcs_client or gcs.client()
                    self._fetch(gcs_client, entry)
                    fetched += 1
                self._share(entry)
        finally:
            if self._cas is not None:
                self._cas.close()
        logs.event(
            log,
            "models.synced",
            fetched=fetched,
            skipped=skipped,
            cache_dir=str(self.cache_dir),
            seconds=round(time.perf_counter() - started, 3),
        )

    def _verified(self, entry: ModelEntry) -> bool:
        if verify.is_marked(self.cache_dir, entry):
            return True
        path = entry.path_in(self.cache_dir)
        if not path.exists():
            return False
        problem = verify.check(path, entry)
        if problem is None:
            verify.mark(self.cache_dir, entry)
            return True
        logs.event(log, "models.stale", logging.WARNING, model=entry.relpath, problem=problem)
        return False

    def _from_cache(self, entry: ModelEntry) -> bool:
        """Link the file from the jobs' model cache when a job brought the same bytes."""
        if self._cas is None or entry.sha256 is None:
            return False
        dest = entry.path_in(self.cache_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not self._cas.link_out(entry.sha256, dest):
            return False
        if verify.check(dest, entry) is None:
            verify.mark(self.cache_dir, entry)
            return True
        dest.unlink(missing_ok=True)  # a cached blob that no longer matches: download instead
        return False

    def _share(self, entry: ModelEntry) -> None:
        path = entry.path_in(self.cache_dir)
        if self._cas is not None and entry.sha256 is not None and path.exists():
            self._cas.adopt(path, entry.sha256)

    def _fetch(self, gcs_client: storage.Client, entry: ModelEntry) -> None:
        dest = entry.path_in(self.cache_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        problem = "not attempted"
        for attempt in range(1, ATTEMPTS + 1):
            started = time.perf_counter()
            try:
                size = gcs.object_size(gcs_client, entry.source)
                if size is None:
                    raise ModelFetchError(f"{entry.source} does not exist (model {entry.relpath})")
                if size != entry.size:
                    raise ModelFetchError(
                        f"{entry.source} is {size} bytes, the manifest says "
                        f"{entry.size}: update the manifest or the object"
                    )
                gcs.download(gcs_client, entry.source, partial, self._chunk_bytes, self._workers)
                problem = verify.check(partial, entry) or ""
            except ModelFetchError:
                partial.unlink(missing_ok=True)
                raise
            except Exception as exc:  # network or GCS errors: retry, then report
                problem = f"download failed: {type(exc).__name__}: {exc}"
            if not problem:
                os.replace(partial, dest)
                verify.mark(self.cache_dir, entry)
                seconds = time.perf_counter() - started
                logs.event(
                    log,
                    "models.fetched",
                    model=entry.relpath,
                    bytes=entry.size,
                    seconds=round(seconds, 3),
                    mib_per_s=round(entry.size / 2**20 / max(seconds, 1e-6), 1),
                )
                return
            partial.unlink(missing_ok=True)
            logs.event(
                log,
                "models.fetch_failed",
                logging.WARNING,
                model=entry.relpath,
                attempt=attempt,
                problem=problem,
            )
        raise ModelFetchError(f"model {entry.relpath} from {entry.source}: {problem}")
