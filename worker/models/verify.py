"""Check a model file against its manifest entry, remembering files already verified.

Hashing a multi-GB checkpoint takes seconds, so a verified file gets a small marker under
``<cache>/.verified/`` recording its size, mtime and checksum; while those still match, the file
is not hashed again (a persistent cache or a GCS volume mount pays once).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import google_crc32c

from worker.models.manifest import ModelEntry

_crc32c: Any = google_crc32c  # untyped C extension
BLOCK = 8 * 1024 * 1024


def digest(path: Path, algorithm: str) -> str:
    """The file's checksum in the manifest's notation (sha256 hex, crc32c base64)."""
    if algorithm == "sha256":
        sha = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(BLOCK):
                sha.update(block)
        return sha.hexdigest()
    crc: Any = _crc32c.Checksum()
    with path.open("rb") as f:
        while block := f.read(BLOCK):
            crc.update(block)
    return base64.b64encode(crc.digest()).decode()


def _marker(cache_dir: Path, entry: ModelEntry) -> Path:
    return cache_dir / ".verified" / f"{entry.relpath}.json"


def _stamp(path: Path, entry: ModelEntry) -> dict[str, object]:
    st = path.stat()
    algorithm, expected = entry.checksum()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, algorithm: expected}


def is_marked(cache_dir: Path, entry: ModelEntry) -> bool:
    path, marker = entry.path_in(cache_dir), _marker(cache_dir, entry)
    try:
        return bool(json.loads(marker.read_text()) == _stamp(path, entry))
    except (OSError, ValueError):
        return False


def mark(cache_dir: Path, entry: ModelEntry) -> None:
    marker = _marker(cache_dir, entry)
    marker.parent.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(_stamp(entry.path_in(cache_dir), entry)))
    os.replace(tmp, marker)


def check(path: Path, entry: ModelEntry) -> str | None:
    """``None`` when ``path`` is the file the entry describes, else what is wrong."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    if size != entry.size:
        return f"size is {size} bytes, the manifest says {entry.size}"
    algorithm, expected = entry.checksum()
    actual = digest(path, algorithm)
    if actual != expected:
        return f"{algorithm} is {actual}, the manifest says {expected}"
    return None


def present(cache_dir: Path, entry: ModelEntry) -> bool:
    """Quick presence check (size only, or a marker): what ``check`` the command uses."""
    if is_marked(cache_dir, entry):
        return True
    try:
        return entry.path_in(cache_dir).stat().st_size == entry.size
    except FileNotFoundError:
        return False
