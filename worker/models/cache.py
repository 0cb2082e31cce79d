"""The model cache: content-addressed model files, bounded in size, shared by the processes of a
host and with the boot manifest.

Files live in ``MODEL_CACHE_DIR`` beside the manifest's ``<folder>/<name>`` files, under
``.cas/`` (a name no manifest folder can take)::

    .cas/blobs/<sha256>        a verified model file, named by its SHA-256
    .cas/blobs/<sha256>.json   its record: size, mtime and inode when verified, last use (LRU)
    .cas/aliases/<digest>      the SHA-256 of one source version (a gs:// object generation)
    .cas/holders/<id>.lock     a live process: an flock held for its life; <id>.json says what
                               its jobs pin and what space its downloads reserve
    .cas/locks/<key>.lock      one download of a model at a time, across threads and processes
    .cas/tmp/                  downloads in progress
    .cas/index.lock            taken (flock) by every change of the above

Every file under ``MODEL_CACHE_DIR`` counts against ``max_bytes`` (``MODEL_CACHE_MAX_GB``),
manifest files included, each inode once. Making room evicts the least recently used blobs that
no live process pins (a job's models are pinned from its preparation until its message is
settled: the running and the prefetched job's models are never evicted) and that have no other
link (a manifest file shares its blob's inode: evicting it would free nothing). A process that
dies loses its pins and reservations with its flock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import Stopped

POLL_S = 0.05  # waiting for another download of the same model, or for space


@dataclass(frozen=True)
class Blob:
    sha256: str
    path: Path
    size: int
    trusted: bool  # verified by this process and unchanged since; else hash it before use


class CacheFull(Exception):
    """Even with every evictable model gone, ``need`` bytes don't fit."""

    def __init__(self, need: int, capacity: int, used: int, kept: int) -> None:
        super().__init__(
            f"needs {need} bytes; the model cache holds {capacity} (MODEL_CACHE_MAX_GB), "
            f"{used} in use of which {kept} can't be evicted (the manifest's models and this "
            "job's own)"
        )
        self.need, self.capacity, self.used, self.kept = need, capacity, used, kept


class CacheBusy(Exception):
    """Room would come once other jobs let go of their models, and it did not come in time."""


def sha256_file(path: Path, stop: threading.Event | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(8 * 1024 * 1024):
            digest.update(block)  # releases the GIL: the executor's Python keeps running
            if stop is not None and stop.is_set():
                raise Stopped("stopped while hashing a model")
    return digest.hexdigest()


def alias_key(source: str) -> str:
    """The cache key of a source version, such as ``gs://b/k#1712345``."""
    return "src-" + hashlib.sha256(source.encode()).hexdigest()[:40]


class ModelCache:
    def __init__(self, root: Path, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self._clock = clock
        self._cas = root / ".cas"
        for sub in ("blobs", "aliases", "holders", "locks", "tmp"):
            (self._cas / sub).mkdir(parents=True, exist_ok=True)
        self._mutex = threading.Lock()
        self._pins: dict[str, set[str]] = {}  # owner (a job) -> the blobs it uses
        self._reserved: dict[str, int] = {}  # key -> bytes of a download in progress
        self._verified: set[str] = set()
        self._id = uuid.uuid4().hex[:12]
        with self._locked():  # a holder appears under the index lock: never swept half-made
            self._holder_fd = os.open(
                self._cas / "holders" / f"{self._id}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
            )
            fcntl.flock(self._holder_fd, fcntl.LOCK_EX)
            self._write_holder()

    def close(self) -> None:
        with self._locked():
            for suffix in (".json", ".lock"):
                (self._cas / "holders" / f"{self._id}{suffix}").unlink(missing_ok=True)
        os.close(self._holder_fd)

    # -- using what is cached ---------------------------------------------------------------

    def blob_path(self, sha256: str) -> Path:
        return self._cas / "blobs" / sha256

    def acquire(self, sha256: str, owner: str) -> Blob | None:
        """Pin the cached blob for ``owner`` and mark it used; None when it isn't cached."""
        with self._locked():
            path = self.blob_path(sha256)
            record = self._record(sha256)
            try:
                st = path.stat()
            except FileNotFoundError:
                return None
            self._pins.setdefault(owner, set()).add(sha256)
            self._write_holder()
            intact = record.get("stamp") == _stamp(st)
            self._write_record(sha256, record | {"used_at": self._clock()})
            trusted = intact and sha256 in self._verified
            return Blob(sha256, path, st.st_size, trusted)

    def verified(self, blob: Blob) -> None:
        """``blob`` was hashed and matches: trust it while it stays unchanged."""
        with self._locked():
            st = blob.path.stat()
            self._write_record(blob.sha256, self._record(blob.sha256) | {"stamp": _stamp(st)})
            self._verified.add(blob.sha256)

    def discard(self, sha256: str, owner: str) -> None:
        """A corrupt blob: unpin it and delete it (the caller fetches it again)."""
        with self._locked():
            self._pins.get(owner, set()).discard(sha256)
            self._write_holder()
            self.blob_path(sha256).unlink(missing_ok=True)
            self._record_path(sha256).unlink(missing_ok=True)
            self._verified.discard(sha256)

    def release(self, owner: str) -> None:
        """``owner``'s job is over: its models may be evicted again."""
        with self._locked():
            if self._pins.pop(owner, None) is not None:
                self._write_holder()

    def pinned(self, owner: str) -> set[str]:
        with self._mutex:
            return set(self._pins.get(owner, set()))

    def resolve(self, key: str) -> str | None:
        """The SHA-256 a source version key names, when it was fetched before."""
        try:
            sha = (self._cas / "aliases" / key).read_text().strip()
        except FileNotFoundError:
            return None
        return sha if len(sha) == 64 else None

    # -- fetching ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def fetching(self, key: str, stop: threading.Event) -> Iterator[bool]:
        """Hold the download lock of ``key``; yields whether another download held it first
        (the caller then looks in the cache again before downloading)."""
        fd = os.open(self._cas / "locks" / f"{key}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        waited = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                        raise
                waited = True
                if stop.wait(POLL_S):
                    raise Stopped("stopped while another download of the model ran")
            yield waited
        finally:
            os.close(fd)  # drops the lock

    def tmp_path(self, key: str) -> Path:
        return self._cas / "tmp" / f"{key}.{self._id}.partial"

    def reserve(
        self, key: str, need: int, owner: str, stop: threading.Event, wait_s: float
    ) -> None:
        """Make room for ``need`` bytes, evicting what may go; wait (up to ``wait_s``) while
        only other jobs' models are in the way. ``CacheFull`` when waiting can't help."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._locked():
                if self._make_room(key, need, owner):
                    return
            if time.monotonic() >= deadline:
                raise CacheBusy(
                    f"waited {wait_s:.0f} s for other jobs to release the model cache "
                    f"(MODEL_CACHE_MAX_GB) for {need} bytes"
                )
            if stop.wait(POLL_S * 4):
                raise Stopped("stopped while waiting for room in the model cache")

    def unreserve(self, key: str) -> None:
        with self._locked():
            if self._reserved.pop(key, None) is not None:
                self._write_holder()

    def put(self, tmp: Path, sha256: str, owner: str, alias: str | None = None) -> Blob:
        """Move a verified download into the cache, pinned for ``owner``."""
        with self._locked():
            path = self.blob_path(sha256)
            if path.exists():  # the same content came by another key meanwhile
                tmp.unlink(missing_ok=True)
            else:
                os.replace(tmp, path)
            st = path.stat()
            self._write_record(sha256, {"stamp": _stamp(st), "used_at": self._clock()})
            self._verified.add(sha256)
            if alias is not None:
                _write_atomic(self._cas / "aliases" / alias, sha256)
            self._pins.setdefault(owner, set()).add(sha256)
            self._write_holder()
            return Blob(sha256, path, st.st_size, True)

    # -- the manifest's files ---------------------------------------------------------------

    def adopt(self, path: Path, sha256: str) -> bool:
        """Share a verified manifest file as the blob of ``sha256`` (a hard link: no copy)."""
        with self._locked():
            blob = self.blob_path(sha256)
            if not blob.exists():
                try:
                    os.link(path, blob)
                except OSError:
                    return False  # another file system (EXDEV) or links not allowed
            st = blob.stat()
            self._write_record(sha256, {"stamp": _stamp(st), "used_at": self._clock()})
            return True

    def link_out(self, sha256: str, dest: Path) -> bool:
        """Make ``dest`` the cached blob of ``sha256`` (a hard link), if it is cached."""
        with self._locked():
            blob = self.blob_path(sha256)
            if not blob.is_file():
                return False
            try:
                dest.unlink(missing_ok=True)
                os.link(blob, dest)
            except OSError:
                return False
            return True

    # -- bookkeeping ------------------------------------------------------------------------

    def usage(self) -> int:
        """Bytes of every file under the cache directory, each inode once (downloads in
        progress are counted by their reservations instead)."""
        seen: set[tuple[int, int]] = set()
        total = 0
        for dirpath, dirs, files in os.walk(self.root):
            if Path(dirpath) == self._cas:
                dirs[:] = [d for d in dirs if d != "tmp"]
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    continue
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
        return total

    def _make_room(self, key: str, need: int, owner: str) -> bool:
        holders = self._live_holders()
        pinned = set().union(*(h["pins"] for h in holders), *self._pins.values())
        reserved = sum(h["reserved"] for h in holders) + sum(
            v for k, v in self._reserved.items() if k != key
        )
        used = self.usage()
        free = self.max_bytes - used - reserved
        blobs = self._blobs()
        evictable = sorted(
            ((used_at, sha, size) for sha, size, used_at in blobs if used_at is not None),
        )
        for _, sha, size in evictable:
            if free >= need:
                break
            if sha in pinned:
                continue
            self.blob_path(sha).unlink(missing_ok=True)
            self._record_path(sha).unlink(missing_ok=True)
            self._verified.discard(sha)
            free += size
            used -= size
        if free >= need:
            self._reserved[key] = need
            self._write_holder()
            return True
        mine = self._pins.get(owner, set())
        sizes = {sha: size for sha, size, _ in blobs}
        others = sum(sizes.get(s, 0) for s in pinned - mine)
        if free + others + reserved < need:
            raise CacheFull(need, self.max_bytes, used, used - others)
        return False

    def _blobs(self) -> list[tuple[str, int, float | None]]:
        """(sha, size, last use or None when it can't be evicted: another link holds it)."""
        out: list[tuple[str, int, float | None]] = []
        for entry in os.scandir(self._cas / "blobs"):
            if len(entry.name) != 64:
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            used_at = self._record(entry.name).get("used_at", st.st_mtime)
            out.append((entry.name, st.st_size, None if st.st_nlink > 1 else float(used_at)))
        return out

    def _live_holders(self) -> list[dict[str, Any]]:
        """Other processes' pins and reservations; a dead one's files are swept."""
        live: list[dict[str, Any]] = []
        for lock in (self._cas / "holders").glob("*.lock"):
            holder = lock.stem
            if holder == self._id:
                continue
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                live.append(self._holder_state(holder))
                continue
            for leftover in (self._cas / "tmp").glob(f"*.{holder}.partial"):
                leftover.unlink(missing_ok=True)
            (self._cas / "holders" / f"{holder}.json").unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
            os.close(fd)
        return live

    def _holder_state(self, holder: str) -> dict[str, Any]:
        try:
            doc = json.loads((self._cas / "holders" / f"{holder}.json").read_text())
            return {
                "pins": set(doc.get("pins", [])),
                "reserved": sum(doc.get("reserved", {}).values()),
            }
        except (OSError, ValueError, AttributeError):
            return {"pins": set(), "reserved": 0}

    def _write_holder(self) -> None:
        doc = {
            "pid": os.getpid(),
            "pins": sorted(set().union(*self._pins.values())),
            "reserved": self._reserved,
        }
        _write_atomic(self._cas / "holders" / f"{self._id}.json", json.dumps(doc))

    def _record_path(self, sha256: str) -> Path:
        return self._cas / "blobs" / f"{sha256}.json"

    def _record(self, sha256: str) -> dict[str, Any]:
        try:
            doc = json.loads(self._record_path(sha256).read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _write_record(self, sha256: str, record: dict[str, Any]) -> None:
        _write_atomic(self._record_path(sha256), json.dumps(record))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._mutex:
            fd = os.open(self._cas / "index.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
